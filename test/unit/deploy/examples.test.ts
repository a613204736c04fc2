import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { repoRoot, falcoCorpus } from '../../support/paths.js';
import { parseClassic, type Obj } from '../../support/deploy.js';
import { loadRuleFiles } from '../../../src/falco/loader.js';
import { auditPolicy } from '../../../src/filters/audit_policy/index.js';
import { EventTime } from '../../../src/core/event.js';
import { buildFilters, counterValue, tempDir, writePipeline } from '../../support/filter-pipeline.js';

const ex = (...p: string[]) => join(repoRoot, 'examples', ...p);
const read = (...p: string[]) => readFileSync(ex(...p), 'utf8');
const upstreamRules = join(falcoCorpus, 'rules', 'k8s_audit_rules.yaml');

describe('examples/fluent-bit', () => {
  const yaml = parse(read('fluent-bit', 'sender.yaml')) as Obj;
  const classic = parseClassic(read('fluent-bit', 'sender.conf'));
  const section = (name: string) => classic.filter((s) => s.name === name).map((s) => s.props);

  it('the YAML and classic senders say the same thing', () => {
    const [yIn] = yaml.pipeline.inputs as Obj[];
    const [yOut] = yaml.pipeline.outputs as Obj[];
    const [cIn] = section('INPUT');
    const [cOut] = section('OUTPUT');
    for (const k of ['name', 'tag', 'path', 'parser', 'db', 'storage.type']) assert.equal(String(cIn![k]), String(yIn![k]), `input ${k}`);
    for (const k of ['name', 'match', 'host', 'port', 'shared_key', 'self_hostname', 'require_ack_response', 'retry_limit', 'tls.ca_file', 'tls.crt_file', 'tls.key_file']) {
      assert.equal(String(cOut![k]), String(yOut![k]), `output ${k}`);
    }
    assert.equal(section('SERVICE')[0]!['storage.path'], yaml.service['storage.path']);
    const [parser] = parseClassic(read('fluent-bit', 'parsers.conf'));
    assert.equal(parser!.props.name, yaml.parsers[0].name);
    assert.equal(parser!.props.time_key, yaml.parsers[0].time_key);
  });

  it('forwards with a shared key, TLS and acks, buffering on disk', () => {
    const [tail] = yaml.pipeline.inputs as Obj[];
    const [out] = yaml.pipeline.outputs as Obj[];
    assert.equal(tail!['storage.type'], 'filesystem');
    assert.equal(out!.name, 'forward');
    assert.equal(out!.match, tail!.tag);
    assert.equal(out!.shared_key, '${FORWARD_SHARED_KEY}');
    assert.equal(out!.require_ack_response, true);
    assert.equal(out!.tls, 'on');
    assert.equal(out!['tls.verify'], 'on');
    assert.equal(out!.port, 24224);
  });

  it('the upstream file lists uniquely named nodes with a key and TLS', () => {
    const sections = parseClassic(read('fluent-bit', 'upstream.conf'));
    assert.equal(sections[0]!.name, 'UPSTREAM');
    const nodes = sections.filter((s) => s.name === 'NODE').map((s) => s.props);
    assert.ok(nodes.length >= 2);
    assert.equal(new Set(nodes.map((n) => n.name)).size, nodes.length);
    for (const n of nodes) {
      assert.ok(n.host && n.port === '24224' && n.tls === 'on');
      assert.match(n.shared_key!, /^REPLACE-ME/, 'a placeholder, never a key');
    }
    const withUpstream = parse(read('fluent-bit', 'sender-upstream.yaml')) as Obj;
    const out = (withUpstream.pipeline.outputs as Obj[])[0]!;
    assert.ok(out.upstream.endsWith('/upstream.conf'));
    assert.equal(out.require_ack_response, true);
  });
});

describe('examples/rules', () => {
  const upstream = parse(readFileSync(upstreamRules, 'utf8')) as Obj[];
  const defined = (kind: string) => new Set(upstream.filter((i) => i && kind in i).map((i) => i[kind] as string));
  const files = readdirSync(ex('rules')).filter((f) => f.endsWith('.yaml'));

  it('has append, replace and exceptions examples', () => {
    assert.deepEqual(files.sort(), ['exceptions.yaml', 'override_append.yaml', 'override_replace.yaml']);
  });

  for (const f of files) {
    it(`${f}: every override targets a list, macro or rule of the upstream k8s_audit rules`, () => {
      const items = parse(read('rules', f)) as Obj[];
      assert.ok(items.length > 0);
      for (const item of items) {
        const kind = ['list', 'macro', 'rule'].find((k) => k in item)!;
        assert.ok(kind, `item ${JSON.stringify(item)}`);
        assert.ok(defined(kind).has(item[kind]), `${kind} '${item[kind]}' is not in k8s_audit_rules.yaml`);
        assert.ok(item.override && typeof item.override === 'object', `${item[kind]} uses override:`);
        for (const [field, how] of Object.entries(item.override as Record<string, string>)) {
          assert.ok(['append', 'replace'].includes(how), `${field}: ${how}`);
          assert.ok(field in item, `override of ${field} without a ${field}`);
        }
        for (const e of (item.exceptions ?? []) as Obj[]) {
          assert.equal(e.fields.length, e.comps.length, `${e.name}: one comp per field`);
          for (const v of e.values) assert.equal(v.length, e.fields.length, `${e.name}: one value per field`);
        }
      }
    });
  }
});

describe('rules files load after the bundled rules with the detect loader', () => {
  const bundled = join(repoRoot, 'rules', 'k8s_audit_rules.yaml');
  const files = [
    ...readdirSync(ex('rules'))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => ex('rules', f)),
    join(repoRoot, 'deploy/kustomize/base/config/custom_rules.yaml'),
  ];
  for (const f of files) {
    it(f.slice(repoRoot.length), { skip: existsSync(bundled) ? false : 'rules/k8s_audit_rules.yaml is not in this tree' }, () => {
      const set = loadRuleFiles([{ path: bundled }, { path: f }]);
      assert.deepEqual(set.messages, [], 'no errors or warnings');
    });
  }
});

describe('examples/events', () => {
  it('are audit events, one JSON object per line, with a NOTICE for their origin', () => {
    const files = readdirSync(ex('events')).filter((f) => f.endsWith('.json'));
    assert.ok(files.length >= 4);
    const notice = read('events', 'NOTICE');
    for (const f of files) {
      assert.ok(notice.includes(f), `NOTICE names ${f}`);
      // Copies of Falco's trace files but for the apiVersion they omit on some events (NOTICE).
      const original = join(falcoCorpus, 'events', f);
      const added = ',"apiVersion":"audit.k8s.io/v1beta1"';
      const text = read('events', f);
      if (existsSync(original)) {
        const had = readFileSync(original, 'utf8');
        const ours = text.split('\n');
        const theirs = had.split('\n');
        assert.equal(ours.length, theirs.length, f);
        ours.forEach((l, i) => {
          if (l === theirs[i]) return;
          assert.ok(!('apiVersion' in (JSON.parse(theirs[i]!) as Obj)), `${f}:${i + 1} had an apiVersion`);
          assert.equal(l.replace(added, ''), theirs[i], `${f}:${i + 1} differs from Falco's only by the added apiVersion`);
        });
        if (text !== had) assert.ok(notice.includes(f), `NOTICE says ${f} was changed`);
      }
      for (const line of text.split('\n').filter((l) => l.trim())) {
        const ev = JSON.parse(line) as Obj;
        assert.equal(ev.kind, 'Event');
        assert.match(ev.apiVersion, /^audit\.k8s\.io\/v1(beta1)?$/, `${f}: apiVersion, as the API server writes it`);
        assert.equal(typeof ev.auditID, 'string');
        assert.equal(typeof ev.verb, 'string');
      }
    }
    assert.match(notice, /Apache License/);
  });

  it("the default pipeline's audit policy treats every one as an audit event (the README tour)", async () => {
    // As pipelines/default.yaml configures it, on records as `send` and `replay` produce them.
    const file = writePipeline(tempDir(), {
      pipeline: { filters: [{ name: 'audit_policy', match: '*', key_name: 'log', policy_file: ex('audit-policy.yaml') }] },
    });
    const { filters, metrics, pipeline } = await buildFilters(file, auditPolicy);
    let n = 0;
    for (const f of readdirSync(ex('events')).filter((x) => x.endsWith('.json'))) {
      for (const line of read('events', f)
        .split('\n')
        .filter((l) => l.trim())) {
        n++;
        filters[0]!.filter([{ tag: 'kube.audit', time: new EventTime(1700000000, 0), record: JSON.parse(line) }], { emit: () => assert.fail('no emit') });
      }
    }
    assert.ok(n >= 10);
    assert.equal(await counterValue(metrics, 'logwarden_audit_policy_non_audit_records_total'), 0);
    const kept = await counterValue(metrics, 'logwarden_audit_policy_events_total', { result: 'kept' });
    assert.ok(kept >= 6, `kept ${kept} of ${n}`);
    await pipeline.stop(0);
  });
});

function srcFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? srcFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('examples/grafana', () => {
  const dash = JSON.parse(read('grafana', 'logwarden-dashboard.json')) as Obj;
  const exprs = (dash.panels as Obj[]).flatMap((p) => ((p.targets ?? []) as Obj[]).map((t) => ({ ds: t.datasource.type as string, expr: t.expr as string })));
  const src = srcFiles(join(repoRoot, 'src'))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  const wanted = ['logwarden_input_records_total', 'logwarden_output_proc_records_total', 'logwarden_output_dropped_records_total', 'logwarden_output_queue_records', 'logwarden_detect_alerts_total'];

  it('queries the pipeline metrics from Prometheus and the streams the deploy pipelines write to Loki', () => {
    const prom = exprs.filter((e) => e.ds === 'prometheus').map((e) => e.expr);
    for (const m of wanted)
      assert.ok(
        prom.some((e) => e.includes(m)),
        `a panel for ${m}`,
      );
    const loki = exprs.filter((e) => e.ds === 'loki').map((e) => e.expr);
    const pipeline = readFileSync(join(repoRoot, 'deploy/kustomize/base/config/pipeline.yaml'), 'utf8');
    for (const job of ['k8s-audit', 'logwarden-alerts']) {
      assert.ok(
        loki.some((e) => e.includes(`job="${job}"`)),
        `a Loki panel for job=${job}`,
      );
      assert.ok(pipeline.includes(`job=${job}`), `the deploy pipeline labels its streams job=${job}`);
    }
    assert.ok(loki.some((e) => /by \(rule\)/.test(e)) && loki.some((e) => /by \(priority\)/.test(e)), 'alert counts by rule and by priority');
    const ids = (dash.panels as Obj[]).map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
  });

  for (const m of wanted) {
    // The detect filter declares its own alert counter; until its plugin exists there is nothing to check.
    const pending = m === 'logwarden_detect_alerts_total' && !existsSync(join(repoRoot, 'src/filters/detect/index.ts'));
    it(`${m} is a metric logwarden exports`, { skip: pending ? 'the detect filter plugin is not in this build yet' : false }, () => {
      assert.ok(src.includes(`'${m}'`), `${m} is declared in src/`);
    });
  }
});

describe('examples/alertmanager', () => {
  it('routes on the priority and severity labels and every receiver exists', () => {
    const cfg = parse(read('alertmanager', 'alertmanager.yaml')) as Obj;
    const receivers = new Set((cfg.receivers as Obj[]).map((r) => r.name));
    const routes = [cfg.route, ...(cfg.route.routes as Obj[])];
    for (const r of routes) assert.ok(receivers.has(r.receiver), r.receiver);
    const matchers = (cfg.route.routes as Obj[]).flatMap((r) => r.matchers as string[]);
    assert.ok(matchers.some((m) => m.startsWith('priority')));
    assert.ok(matchers.some((m) => m.startsWith('severity')));
    // The alertmanager output writes priorities capitalised (falcosidekick's format).
    const alert = readFileSync(join(repoRoot, 'src/outputs/alertmanager/alert.ts'), 'utf8');
    assert.match(alert, /set\(labels, 'priority', capitalised\(priority\)\)/);
    assert.ok(matchers.some((m) => m.includes('Critical')));
  });
});

describe('examples/webhook', () => {
  it('points the API server at the k8s_audit_webhook input on 9765 /k8s-audit with a client certificate', () => {
    const kc = parse(read('webhook', 'kubeconfig.yaml')) as Obj;
    const url = new URL(kc.clusters[0].cluster.server);
    assert.equal(url.protocol, 'https:');
    assert.equal(url.port, '9765');
    assert.equal(url.pathname, '/k8s-audit');
    const ctx = (kc.contexts as Obj[]).find((c) => c.name === kc['current-context'])!;
    const user = (kc.users as Obj[]).find((u) => u.name === ctx.context.user)!;
    assert.ok(user.user['client-certificate'] && user.user['client-key']);
    assert.ok(kc.clusters[0].cluster['certificate-authority']);
  });
});
