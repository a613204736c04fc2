/**
 * The Loki output's push bodies are snappy-compressed by a native addon. snappy 7.3.0 to 7.4.3
 * (glibc builds) never give that memory back (Brooooooklyn/snappy#323): a process pushing 2,000
 * audit-sized entries per batch grew by ~2 MiB of RSS per push, ~1.2 GiB in the end, which no
 * memory_limit could bound. This runs the project's encoder in a child process and checks that RSS
 * stops growing once warm.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../support/paths.js';

const script = `
const [dist, warm, more] = process.argv.slice(1);
const { encodeBody } = await import(dist + '/src/outputs/loki/encode.js');
const { EventTime } = await import(dist + '/src/core/event.js');
const { readFileSync } = await import('node:fs');
const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
const entries = Array.from({ length: 2000 }, (_, i) => ({
  time: new EventTime(1_700_000_000, i),
  line: JSON.stringify({ kind: 'Event', auditID: 'a' + i, verb: i % 3 ? 'get' : 'list', requestURI: '/api/v1/namespaces/ns-' + (i % 50) + '/pods/p-' + i, user: { username: 'system:serviceaccount:ns:sa-' + (i % 7), groups: ['system:serviceaccounts', 'system:authenticated'] }, pad: 'x'.repeat(600 + (i % 100)) }),
  meta: undefined,
}));
const streams = [{ labels: [['job', 'k8s-audit']], entries }];
const settle = async () => { globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); globalThis.gc(); };
for (let i = 0; i < Number(warm); i++) await encodeBody(streams, 'protobuf', false);
await settle();
const before = rss();
for (let i = 0; i < Number(more); i++) await encodeBody(streams, 'protobuf', false);
await settle();
process.stdout.write(JSON.stringify({ before, after: rss() }));
`;

test('encoding Loki push bodies does not grow the process without bound', () => {
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script, join(repoRoot, 'dist'), '20', '200'], { encoding: 'utf8' });
  const { before, after } = JSON.parse(out) as { before: number; after: number };
  const grew = (after - before) / 2 ** 20;
  // 200 bodies of ~1.6 MB: a retained copy of each would be ~300 MiB.
  assert.ok(grew < 64, `RSS grew by ${grew.toFixed(0)} MiB over 200 more bodies (${(before / 2 ** 20).toFixed(0)} -> ${(after / 2 ** 20).toFixed(0)} MiB)`);
});
