/**
 * Interop with the real Fluent Bit 5.1.1 (test/e2e/setup.sh installs it), both directions, with
 * 1,500 Kubernetes audit events per case. Every case counts the unique auditIDs the RECEIVER
 * stored, never the sender's exit status (a Fluent Bit whose chunk was refused still exits 0).
 *
 * - Fluent Bit (tail -> forward / http) -> `logwarden run` (one process, one input per feature,
 *   file output): Forward mode with [[time, {metadata}], record] entries (the default since
 *   5.0.5) and without, gzip, acks, shared_key, security.users, empty_shared_key, TLS, mutual
 *   TLS, Unix socket, workers 2, out_http; an upstream of two logwarden nodes, one killed -9
 *   mid-stream; and controls that must deliver nothing (wrong key, no client certificate).
 * - `logwarden run` (forward input fed by `logwarden send --ack`, forward outputs) -> Fluent Bit
 *   in_forward (file output): acks, gzip, shared_key, users, TLS, and an upstream of two Fluent
 *   Bit receivers, one stopped mid-stream.
 *
 * The measured matrix is written to test-artifacts/interop-fluent-bit.json (docs/interop.md).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { Decoder, encode } from '@msgpack/msgpack';
import { auditLines, countAuditIds } from '../support/audit-events.js';
import { pki, writePki } from '../support/certs.js';
import { runCli } from '../support/cli.js';
import { freePort, LogwardenProcess, sleep, writeConfig } from '../support/fault.js';
import { FluentBit, type FluentBitConfig } from '../support/fluent-bit.js';
import { tempDir } from '../support/harness.js';
import { repoRoot } from '../support/paths.js';

const N = Number(process.env.LOGWARDEN_INTEROP_EVENTS ?? 1500);
const KEY = 's3cret-ключ';

interface Row {
  direction: 'fluent-bit → logwarden' | 'logwarden → fluent-bit';
  case: string;
  expected: number;
  delivered: number;
  duplicates: number;
}
const matrix: Row[] = [];

/** Unique auditIDs (and repeats) in every file of `files` that exists. */
function stored(...files: string[]): { unique: number; duplicates: number } {
  const all = new Map<string, number>();
  for (const f of files) {
    if (!existsSync(f)) continue;
    for (const [id, n] of countAuditIds(readFileSync(f, 'utf8'))) all.set(id, (all.get(id) ?? 0) + n);
  }
  let duplicates = 0;
  for (const n of all.values()) duplicates += n - 1;
  return { unique: all.size, duplicates };
}

/** Waits until the files hold `want` unique events (or `ms` pass); returns what they hold then. */
async function settle(want: number, ms: number, ...files: string[]): Promise<{ unique: number; duplicates: number }> {
  const deadline = Date.now() + ms;
  let s = stored(...files);
  while (s.unique < want && Date.now() < deadline) {
    await sleep(200);
    s = stored(...files);
  }
  // A little longer, so that records arriving late (duplicates, or more than wanted) are seen.
  await sleep(300);
  return stored(...files);
}

let dir: string;
let events: string;
const pem: Record<string, string> = {};

async function certificates(at: string): Promise<void> {
  Object.assign(pem, writePki(at, await pki({ caName: 'interop-ca', clientName: 'fluent-bit-sender' })));
}

/** Fluent Bit reading the audit log once (tail, json parser) and sending it with `output`. */
function tailSender(tag: string, output: Record<string, unknown>, file = events): FluentBitConfig {
  return {
    parsers: [{ name: 'audit_json', format: 'json' }],
    pipeline: {
      inputs: [{ name: 'tail', path: file, tag, read_from_head: true, exit_on_eof: true, parser: 'audit_json', buffer_chunk_size: '64k', buffer_max_size: '1M' }],
      outputs: [{ match: tag, retry_limit: 3, ...output }],
    },
  };
}

before(async () => {
  dir = tempDir('logwarden-interop-');
  await certificates(dir);
  events = join(dir, 'audit.log');
  writeFileSync(events, auditLines(N));
  mkdirSync(join(repoRoot, 'test-artifacts'), { recursive: true });
});

after(() => {
  writeFileSync(join(repoRoot, 'test-artifacts', 'interop-fluent-bit.json'), `${JSON.stringify(matrix, null, 2)}\n`);
  const lines = ['| direction | case | delivered / expected | duplicates |', '|---|---|---|---|'];
  for (const r of matrix) lines.push(`| ${r.direction} | ${r.case} | ${r.delivered} / ${r.expected} | ${r.duplicates} |`);
  console.log(lines.join('\n'));
});

describe('Fluent Bit -> logwarden', { concurrency: true }, () => {
  let lw: LogwardenProcess;
  let sock: string;
  const out = (tag: string) => join(dir, 'lw-out', tag);

  before(async () => {
    sock = join(dir, 'forward.sock');
    const tlsFiles = `      tls: on\n      tls.crt_file: ${pem['server.pem']}\n      tls.key_file: ${pem['server.key']}\n`;
    const config = writeConfig(
      dir,
      `service:
  log_format: json
  log_level: info
  grace: 2
pipeline:
  inputs:
    - name: forward
      alias: plain
      listen: 127.0.0.1
      port: 0
    - name: forward
      alias: key
      listen: 127.0.0.1
      port: 0
      shared_key: ${KEY}
      self_hostname: logwarden-receiver
    - name: forward
      alias: users
      listen: 127.0.0.1
      port: 0
      shared_key: ${KEY}
      security.users:
        - alice wonder land
        - bob builder
    - name: forward
      alias: empty
      listen: 127.0.0.1
      port: 0
      empty_shared_key: on
    - name: forward
      alias: tls
      listen: 127.0.0.1
      port: 0
${tlsFiles}    - name: forward
      alias: mtls
      listen: 127.0.0.1
      port: 0
${tlsFiles}      tls.ca_file: ${pem['ca.pem']}
      tls.verify_client_cert: on
    - name: forward
      alias: unix
      unix_path: ${sock}
    - name: http
      alias: http
      listen: 127.0.0.1
      port: 0
  outputs:
    - name: file
      match: '*'
      path: ${join(dir, 'lw-out')}
      mkdir: on
      format: json_lines
      json_date_key: false
`,
      'receiver.yaml',
    );
    lw = await LogwardenProcess.start(config);
  });

  after(async () => {
    await lw?.stop();
    // Only the controls may have made logwarden warn.
    const expected = new Set(['forward handshake failed', 'TLS handshake failed']);
    // A repeated warning is folded into one summary line: "<msg> (and N more like it ...)".
    const base = (msg: unknown) => String(msg).replace(/ \(and \d+ more like it[^)]*\)$/, '');
    const unexpected = (lw?.logs ?? []).filter((l) => (l.level ?? 0) >= 40 && !expected.has(base(l.msg)));
    assert.deepEqual(unexpected, [], 'no other warnings from the receiver');
  });

  // `output` is a function: the certificate paths exist only once before() has run.
  const cases: Array<{ name: string; input: string; output: () => Record<string, unknown>; expect?: number; log?: RegExp; receiverLog?: string }> = [
    { name: 'forward, [[time, {metadata}], record] entries (default) + require_ack_response', input: 'plain', output: () => ({ name: 'forward', require_ack_response: true }) },
    { name: 'forward, retain_metadata_in_forward_mode false', input: 'plain', output: () => ({ name: 'forward', retain_metadata_in_forward_mode: false, require_ack_response: true }) },
    { name: 'forward, no acks', input: 'plain', output: () => ({ name: 'forward' }) },
    { name: 'compress gzip + require_ack_response', input: 'plain', output: () => ({ name: 'forward', compress: 'gzip', require_ack_response: true }) },
    { name: 'workers 2 + require_ack_response', input: 'plain', output: () => ({ name: 'forward', workers: 2, require_ack_response: true }) },
    { name: 'shared_key + self_hostname + require_ack_response', input: 'key', output: () => ({ name: 'forward', shared_key: KEY, self_hostname: 'node-ü-1', require_ack_response: true }) },
    {
      name: 'shared_key + username/password (security.users) + gzip + ack',
      input: 'users',
      output: () => ({ name: 'forward', shared_key: KEY, username: 'alice', password: 'wonder land', compress: 'gzip', require_ack_response: true }),
    },
    { name: 'empty_shared_key + require_ack_response', input: 'empty', output: () => ({ name: 'forward', empty_shared_key: true, require_ack_response: true }) },
    { name: 'tls on + tls.verify on + ack', input: 'tls', output: () => ({ name: 'forward', tls: 'on', 'tls.verify': 'on', 'tls.ca_file': pem['ca.pem'], require_ack_response: true }) },
    {
      name: 'mutual TLS (receiver tls.verify_client_cert on, sender tls.crt_file) + ack',
      input: 'mtls',
      output: () => ({
        name: 'forward',
        tls: 'on',
        'tls.verify': 'on',
        'tls.ca_file': pem['ca.pem'],
        'tls.crt_file': pem['client.pem'],
        'tls.key_file': pem['client.key'],
        require_ack_response: true,
      }),
    },
    { name: 'unix socket (unix_path) + ack', input: 'unix', output: () => ({ name: 'forward', require_ack_response: true }) },
    { name: 'out_http format json -> http input', input: 'http', output: () => ({ name: 'http', host: '127.0.0.1', format: 'json', json_date_key: false }) },
    // Controls: a check that cannot fail proves nothing.
    { name: 'control: wrong shared_key delivers nothing', input: 'key', output: () => ({ name: 'forward', shared_key: 'wrong', require_ack_response: true }), expect: 0, log: /shared_key mismatch/ },
    {
      name: 'control: no client certificate against tls.verify_client_cert delivers nothing',
      input: 'mtls',
      output: () => ({ name: 'forward', tls: 'on', 'tls.verify': 'on', 'tls.ca_file': pem['ca.pem'], require_ack_response: true, retry_limit: 1 }),
      expect: 0,
      receiverLog: 'TLS handshake failed',
    },
  ];

  cases.forEach((c, i) => {
    test(c.name, { timeout: 120_000 }, async () => {
      const tag = `fb.case${i}`;
      const where: Record<string, unknown> = c.input === 'unix' ? { unix_path: sock } : c.input === 'http' ? { port: lw.port('http'), uri: `/${tag}` } : { host: '127.0.0.1', port: lw.port(c.input) };
      const fb = FluentBit.start(tailSender(tag, { ...c.output(), ...where }), dir, `sender-${i}`);
      const code = await fb.waitExit(90_000);
      const want = c.expect ?? N;
      const s = await settle(want, want ? 15_000 : 1_000, out(tag));
      matrix.push({ direction: 'fluent-bit → logwarden', case: c.name, expected: want, delivered: s.unique, duplicates: s.duplicates });
      assert.equal(s.unique, want, `${c.name}: stored ${s.unique} of ${want}; fluent-bit exit ${code}\n${fb.problems().slice(-10).join('\n')}`);
      if (c.log) assert.match(fb.log, c.log);
      if (c.receiverLog)
        assert.ok(
          lw.logs.some((l) => l.msg === c.receiverLog && l.plugin === c.input),
          `logwarden logged '${c.receiverLog}'`,
        );
      if (want) assert.equal(s.duplicates, 0, 'no duplicates without failures');
    });
  });

  test('what the cases above exercise: Fluent Bit 5.1.1 sends [[time, {metadata}], record] entries by default, [time, record] without retain_metadata_in_forward_mode', {
    timeout: 60_000,
  }, async () => {
    // A bare server that records Fluent Bit's first frame and acks it (decoded by @msgpack/msgpack,
    // not by logwarden's code).
    const shapes: string[] = [];
    const server = net.createServer((sock) => {
      const decoder = new Decoder();
      let buf = Buffer.alloc(0);
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        try {
          for (const msg of decoder.decodeMulti(buf) as Iterable<unknown[]>) {
            const entry = (msg[1] as unknown[][])[0]!;
            shapes.push(Array.isArray(entry[0]) ? 'metadata' : 'plain');
            const chunk = (msg[2] as { chunk?: string } | undefined)?.chunk;
            if (chunk) sock.write(Buffer.from(encode({ ack: chunk })));
          }
          buf = Buffer.alloc(0);
        } catch {
          // incomplete frame: wait for more bytes
        }
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    const small = join(dir, 'audit-10.log');
    writeFileSync(small, auditLines(10));
    try {
      for (const [i, retain] of [true, false].entries()) {
        const fb = FluentBit.start(
          tailSender(`fb.shape${i}`, { name: 'forward', host: '127.0.0.1', port, require_ack_response: true, retain_metadata_in_forward_mode: retain }, small),
          dir,
          `shape-${i}`,
        );
        await fb.waitExit(30_000);
      }
      assert.deepEqual(shapes, ['metadata', 'plain'], 'one frame per run: with metadata entries, then without');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  test('upstream of two logwarden nodes, one killed -9 mid-stream: nothing lost', { timeout: 120_000 }, async () => {
    const nodeConfig = (name: string) =>
      writeConfig(
        dir,
        `service:
  log_format: json
  grace: 2
  http_server: on
  http_listen: 127.0.0.1
  http_port: 0
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: 0
  outputs:
    - name: file
      match: '*'
      path: ${join(dir, `node-${name}`)}
      mkdir: on
      format: json_lines
      json_date_key: false
`,
        `node-${name}.yaml`,
      );
    const a = await LogwardenProcess.start(nodeConfig('a'));
    const b = await LogwardenProcess.start(nodeConfig('b'));
    const aPort = a.port();
    const upstream = join(dir, 'upstream.conf');
    writeFileSync(upstream, `[UPSTREAM]\n    name logwarden\n\n[NODE]\n    name a\n    host 127.0.0.1\n    port ${a.port()}\n\n[NODE]\n    name b\n    host 127.0.0.1\n    port ${b.port()}\n`);
    const log = join(dir, 'upstream-audit.log');
    writeFileSync(log, '');
    const tag = 'fb.upstream';
    const cfg = tailSender(tag, { name: 'forward', upstream, require_ack_response: true, retry_limit: 'no_limits', 'net.connect_timeout': 2 }, log);
    delete cfg.pipeline.inputs[0]!.exit_on_eof;
    const fb = FluentBit.start(cfg, dir, 'sender-upstream');
    const files = [join(dir, 'node-a', tag), join(dir, 'node-b', tag)];
    try {
      await fb.waitLog(/inotify_fs_add|scan_glob add/, 15_000);
      // The audit log grows while Fluent Bit sends it; node a dies in the middle.
      const text = auditLines(N).split('\n').filter(Boolean);
      const step = 50;
      let killedAt = -1;
      for (let i = 0; i < text.length; i += step) {
        appendFileSync(log, `${text.slice(i, i + step).join('\n')}\n`);
        await sleep(60);
        if (killedAt < 0 && i >= N / 2) {
          const s = stored(files[0]!);
          if (s.unique > 0) {
            await a.kill9();
            killedAt = i;
          }
        }
      }
      assert.ok(killedAt > 0, `node a was killed mid-stream (it had stored ${stored(files[0]!).unique})`);
      const atA = stored(files[0]!).unique;
      const s = await settle(N, 60_000, ...files);
      const holder =
        s.unique === N
          ? ''
          : (() => {
              try {
                return execFileSync('ss', ['-tlnp', `sport = :${aPort}`], { encoding: 'utf8' });
              } catch (e) {
                return String(e);
              }
            })();
      const bMetrics =
        s.unique === N
          ? ''
          : JSON.stringify({
              input_records: await b.metric('logwarden_input_records_total'),
              output_records: await b.metric('logwarden_output_proc_records_total'),
              unrouted: await b.metric('logwarden_router_unrouted_records_total'),
              bytes: await b.metric('logwarden_input_bytes_total'),
            });
      matrix.push({
        direction: 'fluent-bit → logwarden',
        case: `upstream of 2 logwarden nodes, node a killed -9 mid-stream (a kept ${atA})`,
        expected: N,
        delivered: s.unique,
        duplicates: s.duplicates,
      });
      assert.equal(
        s.unique,
        N,
        `stored ${s.unique} of ${N} (node a ${atA} before the kill)\n${fb.log
          .split('\n')
          .filter((l) => /\[(error| warn)\]|retry|succeeded|upstream|ACK|ack/.test(l))
          .slice(-60)
          .join('\n')}\nnode a's port ${aPort} now: ${holder}\nnode b: ${bMetrics} ${JSON.stringify(b.logs.filter((l) => (l.level ?? 0) >= 40))}`,
      );
      assert.ok(stored(files[1]!).unique > 0, 'node b took part');
    } finally {
      await fb.stop();
      await a.stop();
      await b.stop();
    }
  });
});

describe('logwarden -> Fluent Bit', { concurrency: true }, () => {
  let fb: FluentBit;
  let lw: LogwardenProcess;
  const ports: Record<string, number> = {};
  const out = (tag: string) => join(dir, 'fb-out', tag);
  let jsonl: string;

  before(async () => {
    for (const k of ['plain', 'key', 'users', 'tls']) ports[k] = await freePort();
    mkdirSync(join(dir, 'fb-out'), { recursive: true });
    jsonl = join(dir, 'audit.jsonl');
    writeFileSync(jsonl, auditLines(N));
    fb = await FluentBit.listening(
      {
        pipeline: {
          inputs: [
            { name: 'forward', alias: 'plain', listen: '127.0.0.1', port: ports.plain },
            { name: 'forward', alias: 'key', listen: '127.0.0.1', port: ports.key, shared_key: KEY, self_hostname: 'fluent-bit-ü' },
            { name: 'forward', alias: 'users', listen: '127.0.0.1', port: ports.users, shared_key: KEY, 'security.users': 'alice wonder land' },
            { name: 'forward', alias: 'tls', listen: '127.0.0.1', port: ports.tls, tls: 'on', 'tls.verify': 'off', 'tls.crt_file': pem['server.pem'], 'tls.key_file': pem['server.key'] },
          ],
          outputs: [{ name: 'file', match: '*', path: join(dir, 'fb-out'), format: 'plain' }],
        },
      },
      dir,
      'receiver',
    );
    // Fluent Bit logs "listening" per input: wait for all four.
    const deadline = Date.now() + 10_000;
    while ((fb.log.match(/listening on /g) ?? []).length < 4 && Date.now() < deadline) await sleep(100);
    const output = (tag: string, port: number, extra: string) =>
      `    - name: forward\n      match: ${tag}\n      host: 127.0.0.1\n      port: ${port}\n      require_ack_response: on\n      retry_limit: 5\n${extra.replace(/^/gm, '      ')}\n`;
    const config = writeConfig(
      dir,
      `service:
  log_format: json
  log_level: info
  grace: 2
pipeline:
  inputs:
    - name: forward
      alias: in
      listen: 127.0.0.1
      port: 0
  outputs:
${output('to.ack', ports.plain!, 'self_hostname: logwarden-sender')}${output('to.gzip', ports.plain!, 'compress: gzip')}${output('to.nometa', ports.plain!, 'retain_metadata_in_forward_mode: off')}${output('to.key', ports.key!, `shared_key: ${KEY}\nself_hostname: logwarden-ß`)}${output('to.users', ports.users!, `shared_key: ${KEY}\nusername: alice\npassword: wonder land`)}${output('to.tls', ports.tls!, `tls: on\ntls.ca_file: ${pem['ca.pem']}\ntls.verify_hostname: on\ntls.vhost: localhost`)}`,
      'sender.yaml',
    );
    lw = await LogwardenProcess.start(config);
  });

  after(async () => {
    await lw?.stop();
    await fb?.stop();
    const unexpected = (lw?.logs ?? []).filter((l) => (l.level ?? 0) >= 40);
    assert.deepEqual(unexpected, [], 'no warnings from the sender');
    // Only the wrong-key control of `logwarden send` may have made Fluent Bit complain.
    const expected = /\[input:forward:key\] (shared_key mismatch|handshake error checking PING)/;
    assert.deepEqual(
      (fb?.problems() ?? []).filter((l) => !expected.test(l)),
      [],
      'no other warnings from the Fluent Bit receiver',
    );
  });

  const cases: Array<{ name: string; tag: string }> = [
    { name: 'forward + require_ack_response', tag: 'to.ack' },
    { name: 'compress gzip + ack', tag: 'to.gzip' },
    { name: 'retain_metadata_in_forward_mode off + ack', tag: 'to.nometa' },
    { name: 'shared_key + self_hostname + ack (PONG digest checked)', tag: 'to.key' },
    { name: 'shared_key + username/password (Fluent Bit security.users) + ack', tag: 'to.users' },
    { name: 'tls on + tls.ca_file + tls.verify_hostname + ack', tag: 'to.tls' },
  ];
  for (const c of cases) {
    test(c.name, { timeout: 120_000 }, async () => {
      const r = await runCli(['send', '-p', String(lw.port('in')), '-t', c.tag, '--ack', '--batch', '250', jsonl], { timeoutMs: 90_000 });
      assert.equal(r.code, 0, `logwarden send: ${r.stderr}${r.stdout}`);
      const s = await settle(N, 15_000, out(c.tag));
      matrix.push({ direction: 'logwarden → fluent-bit', case: c.name, expected: N, delivered: s.unique, duplicates: s.duplicates });
      const errs = lw.logs.filter((l) => (l.level ?? 0) >= 40 && JSON.stringify(l).includes(c.tag)).slice(-5);
      assert.equal(s.unique, N, `${c.name}: Fluent Bit stored ${s.unique} of ${N}\n${JSON.stringify(errs)}\n${fb.problems().slice(-10).join('\n')}`);
      assert.equal(s.duplicates, 0);
    });
  }

  test('logwarden send straight to Fluent Bit, every mode, with shared_key + username/password + acks', { timeout: 120_000 }, async () => {
    for (const mode of ['message', 'forward', 'packed', 'gzip']) {
      const tag = `send.${mode}`;
      const how = mode === 'gzip' ? ['--compress', 'gzip'] : ['--mode', mode];
      const r = await runCli(['send', '-p', String(ports.users), '-t', tag, ...how, '--ack', '--shared-key', KEY, '--username', 'alice', '--password', 'wonder land', '--batch', '250', jsonl], {
        timeoutMs: 90_000,
      });
      assert.equal(r.code, 0, `logwarden send --${mode}: ${r.stdout}${r.stderr}`);
      const s = await settle(N, 15_000, out(tag));
      matrix.push({
        direction: 'logwarden → fluent-bit',
        case: `logwarden send --${mode === 'gzip' ? 'compress gzip' : `mode ${mode}`} + shared_key + username/password + --ack`,
        expected: N,
        delivered: s.unique,
        duplicates: s.duplicates,
      });
      assert.equal(s.unique, N, `${mode}: Fluent Bit stored ${s.unique} of ${N}`);
    }
    const wrong = await runCli(['send', '-p', String(ports.key), '-t', 'send.wrong', '--ack', '--shared-key', 'wrong', '--timeout', '5', jsonl], { timeoutMs: 30_000 });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stdout, /authentication failed/);
    assert.equal(stored(out('send.wrong')).unique, 0);
  });

  test('upstream of two Fluent Bit receivers, one stopped mid-stream: nothing lost', { timeout: 120_000 }, async () => {
    const pa = await freePort();
    const pb = await freePort();
    const receiver = (name: string, port: number) =>
      FluentBit.listening(
        {
          pipeline: {
            inputs: [{ name: 'forward', listen: '127.0.0.1', port, shared_key: KEY }],
            outputs: [{ name: 'file', match: '*', path: join(dir, `fb-node-${name}`), format: 'plain' }],
          },
        },
        dir,
        `node-${name}`,
      );
    mkdirSync(join(dir, 'fb-node-a'), { recursive: true });
    mkdirSync(join(dir, 'fb-node-b'), { recursive: true });
    const a = await receiver('a', pa);
    const b = await receiver('b', pb);
    const upstream = join(dir, 'fb-upstream.yaml');
    writeFileSync(
      upstream,
      `upstream_servers:\n  - name: fluent-bit\n    nodes:\n      - name: a\n        host: 127.0.0.1\n        port: ${pa}\n      - name: b\n        host: 127.0.0.1\n        port: ${pb}\n`,
    );
    const config = writeConfig(
      dir,
      `service:
  log_format: json
  grace: 2
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: 0
  outputs:
    - name: forward
      match: '*'
      upstream: ${upstream}
      shared_key: ${KEY}
      require_ack_response: on
      recover_wait: 30
      net.io_timeout: 5
      retry_limit: 10
`,
      'sender-upstream.yaml',
    );
    const lwu = await LogwardenProcess.start(config);
    const tag = 'to.upstream';
    const files = [join(dir, 'fb-node-a', tag), join(dir, 'fb-node-b', tag)];
    try {
      const half = join(dir, 'half-1.jsonl');
      const rest = join(dir, 'half-2.jsonl');
      const lines = auditLines(N).split('\n').filter(Boolean);
      writeFileSync(half, `${lines.slice(0, N / 2).join('\n')}\n`);
      writeFileSync(rest, `${lines.slice(N / 2).join('\n')}\n`);
      const port = String(lwu.port());
      const first = await runCli(['send', '-p', port, '-t', tag, '--ack', '--batch', '50', half], { timeoutMs: 60_000 });
      assert.equal(first.code, 0, first.stderr);
      // The second half is in flight while receiver a stops (SIGTERM, as Kubernetes stops a pod).
      const second = runCli(['send', '-p', port, '-t', tag, '--ack', '--batch', '25', rest], { timeoutMs: 90_000 });
      await sleep(150);
      await a.stop();
      const r = await second;
      assert.equal(r.code, 0, r.stderr);
      const atA = stored(files[0]!).unique;
      const s = await settle(N, 20_000, ...files);
      matrix.push({
        direction: 'logwarden → fluent-bit',
        case: `upstream of 2 Fluent Bit receivers + shared_key + ack, receiver a stopped mid-stream (a kept ${atA})`,
        expected: N,
        delivered: s.unique,
        duplicates: s.duplicates,
      });
      assert.equal(s.unique, N, `stored ${s.unique} of ${N}: a ${atA}, b ${stored(files[1]!).unique}`);
      assert.ok(atA > 0 && stored(files[1]!).unique > 0, 'both receivers took part');
    } finally {
      await lwu.stop();
      await a.stop();
      await b.stop();
    }
  });
});

// Every folder the tests wrote is under the temporary `dir`; list it on failure for debugging.
process.on('exit', (code) => {
  if (code !== 0 && dir) console.error(`interop files: ${dir} (${readdirSync(dir).length} entries)`);
});
