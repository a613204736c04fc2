/**
 * The `k8s_audit_webhook` input over real sockets, fed the Falco k8s-audit corpus
 * (test/fixtures/conformance/falco-k8saudit/events) the way the API server's webhook backend sends
 * it: EventLists whose items carry no kind/apiVersion, as application/json.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, getGlobalDispatcher, request, type Dispatcher } from 'undici';
import { parse } from 'yaml';
import { k8sAuditWebhookInput } from '../../src/inputs/k8s_audit_webhook/index.js';
import { auditPolicy } from '../../src/filters/audit_policy/index.js';
import { fileOutput } from '../../src/outputs/file/index.js';
import { EventTime } from '../../src/core/event.js';
import { DeliveryError } from '../../src/core/plugin.js';
import { tempDir } from '../support/output-pipeline.js';
import { startInput, type InputOptions, type StartedInput } from '../support/input-server.js';
import { pki, selfSigned, writePki } from '../support/certs.js';
import { gateOutput, gates, Gate } from '../support/gate-output.js';
import { repoRoot, falcoCorpus } from '../support/paths.js';

const plugins = [k8sAuditWebhookInput, auditPolicy, fileOutput, gateOutput];
const exec = promisify(execFile);
const eventsDir = join(falcoCorpus, 'events');

type Obj = Record<string, unknown>;

/** Every JSON value of the corpus, file by file (the trace files hold one value per line). */
function corpus(): Array<{ file: string; values: unknown[] }> {
  return readdirSync(eventsDir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({
      file,
      values: readFileSync(join(eventsDir, file), 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as unknown),
    }));
}

const isEvent = (v: unknown): v is Obj => typeof v === 'object' && v !== null && (v as Obj).kind === 'Event';

/** An item as the webhook's EventList carries it: the Event without kind and apiVersion. */
function asItem(e: Obj): Obj {
  const { kind: _k, apiVersion: _v, ...rest } = e;
  return rest;
}

function eventList(items: Obj[]): string {
  return JSON.stringify({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', metadata: {}, items });
}

type Server = StartedInput & { url: string };

async function server(options = '', outputs?: string, dir?: string, o: InputOptions = {}): Promise<Server> {
  const s = await startInput('k8s_audit_webhook', plugins, { options, outputs, dir, ...o });
  const tls = /tls: on/.test(options);
  return { ...s, url: `${tls ? 'https' : 'http'}://${tls ? 'localhost' : '127.0.0.1'}:${s.port}/k8s-audit` };
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function post(url: string, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }, method = 'POST', dispatcher?: Dispatcher): Promise<Reply> {
  const res = await request(url, { method: method as 'POST', headers, body, ...(dispatcher ? { dispatcher } : {}) });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

describe('k8s_audit_webhook: the Falco k8s-audit corpus as the API server sends it', () => {
  let s: Server;
  before(async () => {
    s = await server();
  });
  after(async () => {
    await s.run.stop(1);
  });

  test('EventLists of every corpus Event: 200 each, one event per item, tagged kube.audit, timed by stageTimestamp with ns', async () => {
    const events = corpus().flatMap((f) => f.values.filter(isEvent));
    assert.ok(events.length >= 50, `corpus read (${events.length} Events)`);
    // Batches of varied size, as the batch backend cuts them.
    let sent = 0;
    for (let size = 1; sent < events.length; size = (size % 7) + 1) {
      const batch = events.slice(sent, sent + size);
      const r = await post(s.url, eventList(batch.map(asItem)));
      assert.equal(r.status, 200, r.text);
      assert.equal(r.text, '');
      sent += batch.length;
    }
    assert.equal(s.seen.length, events.length);
    for (let i = 0; i < events.length; i++) {
      const want = events[i]!;
      const got = s.seen[i]!;
      assert.equal(got.tag, 'kube.audit');
      assert.equal(got.record.kind, 'Event', 'items leave typed as the log backend writes them');
      assert.equal(got.record.apiVersion, 'audit.k8s.io/v1', "the list's apiVersion");
      assert.deepEqual(asItem(got.record), asItem(want));
      const t = EventTime.fromISO(String(want.stageTimestamp))!;
      assert.equal(got.time.sec, t.sec);
      assert.equal(got.time.nsec, t.nsec);
    }
    assert.ok(
      s.seen.some((e) => e.time.nsec % 1_000_000 !== 0),
      'microsecond digits of stageTimestamp are kept',
    );
    const lines = readFileSync(join(s.run.dir, 'out', 'kube.audit'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(lines.length, events.length);
    assert.equal(await s.run.counter('logwarden_input_records_total'), events.length);
  });

  test('a single Event body (as in the trace files) is accepted; its own apiVersion is kept', async () => {
    const before = s.seen.length;
    const v1beta1 = corpus()
      .flatMap((f) => f.values)
      .find((v) => isEvent(v) && v.apiVersion === 'audit.k8s.io/v1beta1') as Obj;
    const r = await post(s.url, JSON.stringify(v1beta1));
    assert.equal(r.status, 200);
    assert.equal(s.seen.length, before + 1);
    assert.equal(s.seen.at(-1)!.record.apiVersion, 'audit.k8s.io/v1beta1');
  });

  test("the corpus' non-audit trace (fal_01_003) is refused with 400 and a clear message", async () => {
    const body = readFileSync(join(eventsDir, 'fal_01_003.json'), 'utf8');
    const r = await post(s.url, body);
    assert.equal(r.status, 400);
    assert.match(r.text, /not Kubernetes audit data: expected an audit\.k8s\.io EventList or Event, found an object with kind 0 and apiVersion none/);
    assert.equal(await s.errors('not_audit'), 1);
  });

  test('an untyped EventList ({"metadata":{},"items":[...]}, as generic API servers send) is accepted', async () => {
    const before = s.seen.length;
    const ev = asItem(corpus()[0]!.values.find(isEvent)!);
    const r = await post(s.url, JSON.stringify({ metadata: {}, items: [ev] }));
    assert.equal(r.status, 200);
    assert.equal(s.seen.length, before + 1);
    assert.equal(s.seen.at(-1)!.record.apiVersion, 'audit.k8s.io/v1');
  });

  test('an empty EventList is answered 200 at once (the API server would otherwise retry it)', async () => {
    const r = await post(s.url, eventList([]));
    assert.equal(r.status, 200);
  });
});

describe('k8s_audit_webhook: bad requests', () => {
  let s: Server;
  before(async () => {
    s = await server('buffer_max_size: 4k');
  });
  after(async () => {
    await s.run.stop(1);
  });

  test('wrong path 404, wrong method 405 + Allow, wrong content type 415, malformed JSON 400 with the parse error', async () => {
    let r = await post(s.url.replace('/k8s-audit', '/audit'), eventList([]));
    assert.equal(r.status, 404);
    assert.match(r.text, /listens on \/k8s-audit/);
    r = await post(s.url, '', {}, 'GET');
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, 'POST');
    r = await post(s.url, eventList([]), { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(r.status, 415);
    assert.match(r.text, /expected application\/json/);
    r = await post(s.url, '{"kind":"EventList","items":[', { 'content-type': 'application/json; charset=utf-8' });
    assert.equal(r.status, 400);
    assert.match(r.text, /^invalid JSON: /);
    for (const reason of ['not_found', 'bad_method', 'bad_content_type', 'malformed']) assert.equal(await s.errors(reason), 1, reason);
    assert.equal(s.seen.length, 0);
  });

  test('non-audit JSON: 400; a list whose items are no Events: 400; a list with some non-Events: 200, those skipped and counted', async () => {
    let r = await post(s.url, JSON.stringify({ apiVersion: 'v1', kind: 'PodList', items: [] }));
    assert.equal(r.status, 400);
    assert.match(r.text, /found an object with kind "PodList" and apiVersion "v1"/);
    r = await post(s.url, JSON.stringify({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items: [{ a: 1 }, 'x'] }));
    assert.equal(r.status, 400);
    assert.match(r.text, /2 items none of which is an audit Event/);
    const ev = asItem(corpus()[0]!.values.find(isEvent)!);
    r = await post(s.url, eventList([ev, { not: 'an event' } as Obj, { ...ev, kind: 'Pod' }]));
    assert.equal(r.status, 200);
    assert.equal(s.seen.length, 1);
    assert.equal(await s.errors('not_audit_event'), 2);
  });

  test('an Event without usable timestamps is timed at receipt, counted and logged', async () => {
    const ev = { ...asItem(corpus()[0]!.values.find(isEvent)!), stageTimestamp: 'yesterday' } as Obj;
    delete ev.requestReceivedTimestamp;
    const t0 = Date.now();
    const r = await post(s.url, eventList([ev]));
    assert.equal(r.status, 200);
    const t = s.seen.at(-1)!.time;
    assert.ok(t.sec * 1000 + Math.floor(t.nsec / 1e6) >= t0, 'timed at receipt (to the millisecond)');
    assert.equal(await s.errors('no_timestamp'), 1);
    assert.ok(s.run.logs.some((l) => l.reason === 'no_timestamp'));
  });

  test('a body above buffer_max_size: 413', async () => {
    const ev = asItem(corpus()[0]!.values.find(isEvent)!);
    const r = await post(s.url, eventList(Array.from({ length: 20 }, () => ev)));
    assert.equal(r.status, 413);
    assert.match(r.text, /exceeds buffer_max_size \(4000 bytes\)/);
  });
});

describe('k8s_audit_webhook: commits and backpressure', () => {
  const ev = () => asItem(corpus()[0]!.values.find(isEvent)!);

  test('200 only once the output committed; a failed commit is answered 503 + Retry-After (the API server retries)', async () => {
    const gate = new Gate();
    gates.set('wh-commit', gate);
    const s = await server('', `    - name: gate\n      match: kube.audit\n      gate: wh-commit\n      retry_limit: no_retries`);
    try {
      gate.open = false;
      let answered = false;
      const pending = post(s.url, eventList([ev(), ev()])).then((r) => {
        answered = true;
        return r;
      });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(answered, false, 'no answer while the output holds the batch');
      gate.release();
      assert.equal((await pending).status, 200);
      assert.equal(gate.delivered.length, 2);

      gate.failWith = new DeliveryError('loki is down', true, 'test');
      const r = await post(s.url, eventList([ev()]));
      assert.equal(r.status, 503);
      assert.equal(r.headers['retry-after'], '5', 'default Retry-After of the webhook input');
      assert.match(r.text, /events not committed/);
      assert.equal(await s.run.counter('logwarden_input_unacked_chunks_total'), 1);
      assert.equal(await s.errors('commit_failed'), 1);
    } finally {
      gate.failWith = undefined;
      await s.run.stop(1);
    }
  });

  test('while paused, new EventLists get 503 + Retry-After without being read; the accepted one is answered 200 after the release', async () => {
    const gate = new Gate();
    gates.set('wh-bp', gate);
    const s = await server('retry_after: 2', `    - name: gate\n      match: '*'\n      gate: wh-bp\n      queue_max_records: 10\n      batch_size: 10`);
    try {
      gate.open = false;
      const accepted = post(s.url, eventList(Array.from({ length: 10 }, ev)));
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(s.run.pipeline.flow.paused, true);
      const refused = await post(s.url, eventList([ev()]));
      assert.equal(refused.status, 503);
      assert.equal(refused.headers['retry-after'], '2');
      assert.equal(s.seen.length, 10, 'the refused list was not routed');
      assert.equal(await s.errors('paused'), 1);
      gate.release();
      assert.equal((await accepted).status, 200);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal((await post(s.url, eventList([ev()]))).status, 200, 'accepted again after the release');
      assert.equal(gate.delivered.length, 11);
    } finally {
      await s.run.stop(1);
    }
  });
});

describe('k8s_audit_webhook: storage.type filesystem', () => {
  test('200 once the events are stored, before the output delivered them', async () => {
    const gate = new Gate();
    gates.set('wh-fs', gate);
    const dir = tempDir();
    const r = await server('storage.type: filesystem', `    - name: gate\n      match: '*'\n      gate: wh-fs`, dir, { service: `storage.path: ${join(dir, 'buffer')}` });
    try {
      gate.open = false;
      const ev = asItem(corpus()[0]!.values.find(isEvent)!);
      const res = await post(r.url, eventList([ev, ev]));
      assert.equal(res.status, 200, 'answered while the output still holds the batch');
      assert.equal(gate.delivered.length, 0);
      gate.release();
      for (let i = 0; i < 50 && gate.delivered.length < 2; i++) await new Promise((x) => setTimeout(x, 20));
      assert.equal(gate.delivered.length, 2);
    } finally {
      await r.run.stop(1);
    }
  });
});

describe('k8s_audit_webhook: stopping', () => {
  test('on stop the listener closes; a request waiting for its commit is still answered 200 when the output drains', async () => {
    const gate = new Gate();
    gates.set('wh-stop', gate);
    const s = await server('', `    - name: gate\n      match: '*'\n      gate: wh-stop`);
    gate.open = false;
    const ev = asItem(corpus()[0]!.values.find(isEvent)!);
    const pending = post(s.url, eventList([ev]));
    await new Promise((r) => setTimeout(r, 150));
    const stopped = s.run.stop(5);
    await new Promise((r) => setTimeout(r, 150));
    await assert.rejects(post(s.url, eventList([ev])), /ECONNREFUSED/, 'no new connections once stopping');
    gate.release();
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.headers.connection, 'close');
    assert.equal(await stopped, true, 'drained');
    assert.equal(gate.delivered.length, 1);
  });
});

describe('k8s_audit_webhook: TLS with client certificates (the API server authenticates with its kubeconfig client cert)', () => {
  test('a client certificate signed by tls.ca_file is required; undici and curl', async (t) => {
    const p = await pki({ caName: 'audit-ca', clientName: 'kube-apiserver' });
    const { ca, client: cli } = p;
    const other = await selfSigned('intruder');
    const dir = tempDir();
    writePki(dir, p);
    const s = await server('tls: on\ntls.crt_file: server.pem\ntls.key_file: server.key\ntls.ca_file: ca.pem\ntls.verify_client_cert: on', undefined, dir);
    const agents: Agent[] = [];
    const agent = (connect: Record<string, unknown>) => {
      const a = new Agent({ connect });
      agents.push(a);
      return a;
    };
    try {
      const ev = asItem(corpus()[0]!.values.find(isEvent)!);
      const ok = await post(s.url, eventList([ev]), undefined, 'POST', agent({ ca: ca.cert, cert: cli.cert, key: cli.private }));
      assert.equal(ok.status, 200);
      assert.equal(s.seen.length, 1);

      await assert.rejects(post(s.url, eventList([ev]), undefined, 'POST', agent({ ca: ca.cert })), 'no client certificate: handshake refused');
      await assert.rejects(post(s.url, eventList([ev]), undefined, 'POST', agent({ ca: ca.cert, cert: other.cert, key: other.private })), 'a certificate from another CA: refused');
      assert.equal(s.seen.length, 1);
      assert.ok((await s.errors('tls')) >= 2);

      const curl = ['/usr/bin/curl', '/usr/local/bin/curl', '/bin/curl'].find((p) => existsSync(p));
      if (!curl) {
        t.diagnostic('curl is not installed: the curl part was skipped');
        return;
      }
      const file = join(dir, 'list.json');
      writeFileSync(file, eventList([ev, ev]));
      const r = await exec(curl, [
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--cacert',
        join(dir, 'ca.pem'),
        '--cert',
        join(dir, 'client.pem'),
        '--key',
        join(dir, 'client.key'),
        '-H',
        'Content-Type: application/json',
        '--data-binary',
        `@${file}`,
        s.url,
      ]);
      assert.equal(r.stdout, '200');
      assert.equal(s.seen.length, 3);
    } finally {
      for (const a of agents) await a.close();
      await s.run.stop(1);
    }
  });
});

describe('k8s_audit_webhook: into the audit pipeline', () => {
  test('webhook items reach audit_policy as audit Events (non_audit: drop keeps them) and get its levels', async () => {
    const dir = tempDir();
    const r = await server('', undefined, dir, {
      filters: `    - name: audit_policy
      match: kube.audit
      policy_file: ${join(repoRoot, 'examples', 'audit-policy.yaml')}
      non_audit: drop`,
    });
    try {
      const events = corpus().flatMap((f) => f.values.filter(isEvent));
      const pods = events.filter((e) => (e.objectRef as Obj | undefined)?.resource === 'pods' && !(e.objectRef as Obj).subresource && e.stage !== 'RequestReceived');
      assert.ok(pods.length > 0, 'the corpus has pod events');
      const res = await post(r.url, eventList(events.map(asItem)));
      assert.equal(res.status, 200);
      const out = readFileSync(join(dir, 'out', 'kube.audit'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Obj);
      assert.ok(out.length >= pods.length, `events kept by the policy (${out.length})`);
      for (const p of pods) {
        const got = out.find((o) => o.auditID === p.auditID && o.stage === p.stage)!;
        assert.ok(got, `pod event ${String(p.auditID)} kept`);
        assert.equal(got.level, 'RequestResponse', 'the example policy logs pods in full');
      }
      assert.equal(await r.run.counter('logwarden_filter_records_total', { result: 'in' }), events.length);
    } finally {
      await r.run.stop(1);
    }
  });
});

describe('k8s_audit_webhook: defaults', () => {
  test('the example kubeconfig points at the default port and path', () => {
    const kc = parse(readFileSync(join(repoRoot, 'examples', 'webhook', 'kubeconfig.yaml'), 'utf8')) as { clusters: Array<{ cluster: { server: string } }> };
    const url = new URL(kc.clusters[0]!.cluster.server);
    assert.equal(Number(url.port), k8sAuditWebhookInput.options.port!.default);
    assert.equal(url.pathname, k8sAuditWebhookInput.options.path!.default);
  });

  test('port 9765, path /k8s-audit, tag kube.audit, 12 MiB bodies', async () => {
    assert.equal(k8sAuditWebhookInput.options.port!.default, 9765);
    assert.equal(k8sAuditWebhookInput.options.path!.default, '/k8s-audit');
    assert.equal(k8sAuditWebhookInput.options.buffer_max_size!.default, '12Mi');
    const s = await server('tag: audit.custom');
    try {
      await post(s.url, eventList([asItem(corpus()[0]!.values.find(isEvent)!)]));
      assert.equal(s.seen[0]!.tag, 'audit.custom');
    } finally {
      await s.run.stop(1);
    }
  });
});

after(async () => {
  await getGlobalDispatcher().close();
});
