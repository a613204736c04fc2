/**
 * Cost of Falco rule evaluation per audit event, next to the cost of decoding the same event
 * from msgpack (what the forward input pays for every event anyway).
 *
 *   npx tsc -p . && node dist/bench/detect.js [events] [seed]
 *
 * Events: ../shared/tools/gen-audit-events.py (the reference mix: ~894 bytes of JSON per event,
 * pods created with full specs, a mix of verbs, resources, namespaces and users).
 * Measured, each as the best of several rounds over all events, in one thread:
 *  - decode: msgpackr unpack() of each event packed with msgpackr;
 *  - detect: the newest upstream k8s_audit_rules.yaml (bundled copy) evaluated on each decoded
 *    event, alerts built, with rule_matching first and all;
 *  - detect x10: the same rule set plus 9 renamed copies of every rule (10x the rules);
 *  - detect from bytes: the same, each event read through a RecordView over its msgpack bytes
 *    (the forward input's WireEvent path) instead of a decoded object.
 * Prints one JSON line, then a table.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pack, unpack } from 'msgpackr';
import { isMap, isSeq, parseDocument, type YAMLMap } from 'yaml';
import { Engine, newStats } from '../src/falco/engine.js';
import { newAuditEvent } from '../src/falco/event.js';
import { RuleLoader } from '../src/falco/loader.js';
import { RecordView } from '../src/core/record-view.js';
import { encode } from '../src/core/msgpack.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const sharedDir = process.env.LOGWARDEN_SHARED ?? join(root, '..', 'shared');
const rulesFile = join(root, 'rules', 'k8s_audit_rules.yaml');

const n = Number(process.argv[2] ?? 20000);
const seed = Number(process.argv[3] ?? 42);
const ROUNDS = 7;

function generate(): Array<Record<string, unknown>> {
  const out = join(mkdtempSync(join(tmpdir(), 'bench-detect-')), 'events.jsonl');
  execFileSync('python3', [join(sharedDir, 'tools', 'gen-audit-events.py'), out, String(n), String(seed)], { stdio: 'inherit' });
  return readFileSync(out, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The upstream rule file with `copies - 1` renamed copies of every rule appended. */
function multiplied(copies: number): string {
  const text = readFileSync(rulesFile, 'utf8');
  if (copies === 1) return text;
  const doc = parseDocument(text);
  const items = doc.contents;
  if (!isSeq(items)) throw new Error('rules file is not a sequence');
  const rules = items.items.filter((it) => isMap(it) && it.has('rule'));
  for (let k = 2; k <= copies; k++) {
    for (const r of rules) {
      const copy = (r as { clone(): typeof r }).clone();
      if (isMap(copy)) (copy as YAMLMap).set('rule', `${String(copy.get('rule'))} (copy ${k})`);
      items.items.push(copy);
    }
  }
  return doc.toString({ lineWidth: 0 });
}

function engineFor(copies: number, ruleMatching: 'first' | 'all'): Engine {
  const loader = new RuleLoader();
  loader.loadText(multiplied(copies), copies === 1 ? 'k8s_audit_rules.yaml' : `k8s_audit_rules.yaml x${copies}`);
  return new Engine(loader.result(), { ruleMatching, minPriority: 7, hostname: 'bench' });
}

/** Best time of several rounds, in nanoseconds per event. */
function best(fn: () => void): number {
  let min = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    const dt = Number(process.hrtime.bigint() - t0);
    if (dt < min) min = dt;
  }
  return min / n;
}

const events = generate();
const packed = events.map((e) => pack(e));
const jsonBytes = events.reduce((s, e) => s + JSON.stringify(e).length, 0) / n;
const msgpackBytes = packed.reduce((s, b) => s + b.length, 0) / n;

let sink = 0;
const decodeNs = best(() => {
  for (const b of packed) sink += (unpack(b) as Record<string, unknown>).verb === 'get' ? 1 : 0;
});

function detectRun(e: Engine): { ns: number; alerts: number; rules: number } {
  let alerts = 0;
  const stats = newStats();
  const onAlert = () => {
    alerts++;
  };
  const ns = best(() => {
    alerts = 0;
    for (const ev of events) e.detect(ev, onAlert, stats);
  });
  return { ns, alerts, rules: e.active.length };
}

/** detect through a view over each event's msgpack bytes (nothing decoded but the values read). */
const ownPacked = events.map((e) => encode(e));
function detectBytesRun(e: Engine): { ns: number; alerts: number; rules: number } {
  let alerts = 0;
  const stats = newStats();
  const view = new RecordView();
  const onAlert = () => {
    alerts++;
  };
  const ns = best(() => {
    alerts = 0;
    for (const b of ownPacked) e.detectView(view.reset(b), onAlert, stats);
  });
  return { ns, alerts, rules: e.active.length };
}

/** Rule evaluation alone: matches found, no alert record built. */
function evaluateRun(e: Engine): { ns: number; matches: number } {
  let matches = 0;
  const onMatch = () => {
    matches++;
  };
  const ns = best(() => {
    matches = 0;
    for (const ev of events) e.evaluate(newAuditEvent(ev, 'bench'), onMatch);
  });
  return { ns, matches };
}

const eval1 = evaluateRun(engineFor(1, 'all'));
const eval10 = evaluateRun(engineFor(10, 'all'));
const first1 = detectRun(engineFor(1, 'first'));
const all1 = detectRun(engineFor(1, 'all'));
const first10 = detectRun(engineFor(10, 'first'));
const all10 = detectRun(engineFor(10, 'all'));
const bytes1 = detectBytesRun(engineFor(1, 'first'));
const bytes10 = detectBytesRun(engineFor(10, 'first'));

const result = {
  bench: 'detect',
  events: n,
  seed,
  json_bytes_per_event: Math.round(jsonBytes),
  msgpack_bytes_per_event: Math.round(msgpackBytes),
  decode_ns_per_event: Math.round(decodeNs),
  evaluate_ns_per_event: Math.round(eval1.ns),
  evaluate_x10_ns_per_event: Math.round(eval10.ns),
  matches: eval1.matches,
  matches_x10: eval10.matches,
  detect_first_ns_per_event: Math.round(first1.ns),
  detect_all_ns_per_event: Math.round(all1.ns),
  detect_x10_first_ns_per_event: Math.round(first10.ns),
  detect_x10_all_ns_per_event: Math.round(all10.ns),
  detect_bytes_first_ns_per_event: Math.round(bytes1.ns),
  detect_bytes_x10_first_ns_per_event: Math.round(bytes10.ns),
  rules: first1.rules,
  rules_x10: first10.rules,
  alerts_first: first1.alerts,
  alerts_all: all1.alerts,
  ratio_evaluate_to_decode: +(eval1.ns / decodeNs).toFixed(3),
  ratio_evaluate_x10_to_x1: +(eval10.ns / eval1.ns).toFixed(3),
  ratio_detect_to_decode: +(first1.ns / decodeNs).toFixed(3),
  ratio_all_to_decode: +(all1.ns / decodeNs).toFixed(3),
  ratio_x10_to_x1_first: +(first10.ns / first1.ns).toFixed(3),
  ratio_x10_to_x1_all: +(all10.ns / all1.ns).toFixed(3),
  node: process.version,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
const eps = (ns: number) => Math.round(1e9 / ns).toLocaleString('en-US');
const rows: Array<[string, number, string]> = [
  ['msgpackr unpack (decode)', decodeNs, ''],
  [`evaluate, ${first1.rules} rules, all matches`, eval1.ns, `${eval1.matches} matches`],
  [`evaluate, ${first10.rules} rules (x10), all`, eval10.ns, `${eval10.matches} matches`],
  [`detect, ${first1.rules} rules, first`, first1.ns, `${first1.alerts} alerts`],
  [`detect, ${all1.rules} rules, all`, all1.ns, `${all1.alerts} alerts`],
  [`detect, ${first10.rules} rules (x10), first`, first10.ns, `${first10.alerts} alerts`],
  [`detect, ${all10.rules} rules (x10), all`, all10.ns, `${all10.alerts} alerts`],
  [`detect from bytes, ${bytes1.rules} rules, first`, bytes1.ns, `${bytes1.alerts} alerts`],
  [`detect from bytes, ${bytes10.rules} rules (x10)`, bytes10.ns, `${bytes10.alerts} alerts`],
];
process.stdout.write(`\n${'step'.padEnd(36)} ${'ns/event'.padStart(9)} ${'events/s'.padStart(12)}\n`);
for (const [name, ns, note] of rows) process.stdout.write(`${name.padEnd(36)} ${Math.round(ns).toString().padStart(9)} ${eps(ns).padStart(12)}  ${note}\n`);
process.stdout.write(
  `\nevaluate/decode: ${result.ratio_evaluate_to_decode}; evaluate x10/x1: ${result.ratio_evaluate_x10_to_x1}\ndetect/decode: ${result.ratio_detect_to_decode} (first), ${result.ratio_all_to_decode} (all); x10 rules/x1: ${result.ratio_x10_to_x1_first} (first), ${result.ratio_x10_to_x1_all} (all); from bytes x10/x1: ${(bytes10.ns / bytes1.ns).toFixed(3)}\n`,
);
if (sink < 0) process.stdout.write('');
