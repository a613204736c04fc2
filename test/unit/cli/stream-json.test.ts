/** The streaming reader of detect/replay/send: every file shape, every chunk boundary, and the progress line. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileRecords, jsonItems, jsonItemsOf, Progress, type JsonItem } from '../../../src/cli/stream-json.js';
import { tempDir } from '../../support/harness.js';

async function all(items: AsyncIterable<JsonItem>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const it of items) out.push('error' in it ? { line: it.line, error: it.error.split(':')[0] } : { line: it.line, value: it.value });
  return out;
}

function file(text: string): string {
  const f = join(tempDir(), 'events.json');
  writeFileSync(f, text);
  return f;
}

test('JSON lines: one value per line with its line number; a bad line is an error, the rest still read', async () => {
  assert.deepEqual(await all(jsonItems(file('{"a":1}\n\n{"b":"x,]}"}\nnot json\n{"c":[1,2]}\n'))), [
    { line: 1, value: { a: 1 } },
    { line: 3, value: { b: 'x,]}' } },
    { line: 4, error: 'invalid JSON' },
    { line: 5, value: { c: [1, 2] } },
  ]);
});

test('documents: array elements and EventList items one by one; other multi-line objects whole', async () => {
  assert.deepEqual(await all(jsonItems(file('[{"a":1}, {"b":"q\\"]"},\n {"c":{"d":[1,2]}}, 3]'))), [
    { line: 1, value: { a: 1 } },
    { line: 1, value: { b: 'q"]' } },
    { line: 2, value: { c: { d: [1, 2] } } },
    { line: 2, value: 3 },
  ]);
  const list = '{\n  "kind": "EventList",\n  "apiVersion": "audit.k8s.io/v1",\n  "items": [\n    {"kind":"Event","n":1},\n    {"kind":"Event","n":2}\n  ]\n}\n';
  assert.deepEqual(await all(jsonItems(file(list))), [
    { line: 5, value: { kind: 'Event', n: 1 } },
    { line: 6, value: { kind: 'Event', n: 2 } },
  ]);
  // items before kind: not known to be a list while reading, so read whole (and still a list).
  assert.deepEqual(await all(jsonItems(file('{\n"items":[{"n":1}],\n"kind":"EventList"\n}'))), [{ line: 1, value: { items: [{ n: 1 }], kind: 'EventList' } }]);
  assert.deepEqual(await all(jsonItems(file('[{"a":1}, {"b":'))), [
    { line: 1, value: { a: 1 } },
    { line: 1, error: 'invalid JSON' },
  ]);
});

test('the same values whatever the chunk boundaries (strings, escapes, multi-byte characters)', async () => {
  const docs = [
    JSON.stringify([{ a: 'x,]}"\\' }, { b: [1, { c: 'é中"' }] }, 5, 's', null], null, 2),
    JSON.stringify(
      {
        kind: 'EventList',
        apiVersion: 'v1',
        items: [
          { kind: 'Event', s: 'a"b,c]' },
          { kind: 'Event', n: [1, 2, { x: '}' }] },
        ],
        metadata: {},
      },
      null,
      2,
    ),
  ];
  const want = [JSON.parse(docs[0]!), JSON.parse(docs[1]!).items];
  for (let d = 0; d < docs.length; d++) {
    const buf = Buffer.from(docs[d]!);
    for (let size = 1; size <= 11; size++) {
      async function* chunks(): AsyncGenerator<Buffer> {
        for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
      }
      const got: unknown[] = [];
      for await (const it of jsonItemsOf(chunks())) got.push('value' in it ? it.value : it);
      assert.deepEqual(got, want[d], `document ${d}, chunks of ${size} bytes`);
    }
  }
});

test('records: List items and arrays flattened, replay-shaped lines keep tag and time, non-objects refused with file:line', async () => {
  const f = file('{"kind":"EventList","items":[{"n":1},{"n":2}]}\n[{"n":3}]\n{"tag":"t","time":"2024-01-01T00:00:00.000000001Z","record":{"n":4}}\n');
  const got = [];
  for await (const r of fileRecords(f)) got.push({ ...r, time: r.time?.toISO() });
  assert.deepEqual(got, [
    { record: { n: 1 }, time: undefined },
    { record: { n: 2 }, time: undefined },
    { record: { n: 3 }, time: undefined },
    { record: { n: 4 }, tag: 't', time: '2024-01-01T00:00:00.000000001Z' },
  ]);
  const bad = file('{"n":1}\n42\n');
  await assert.rejects(
    async () => {
      for await (const _ of fileRecords(bad)) void _;
    },
    new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:2: expected a JSON object, found 42`),
  );
});

test('progress: nothing off a terminal or in the first second; then records, rate and elapsed time, cleared at the end', async () => {
  const written: string[] = [];
  const fake = (isTTY: boolean) => ({ isTTY, write: (s: string) => written.push(s) }) as unknown as NodeJS.WriteStream;
  const off = new Progress('send', fake(false));
  const on = new Progress('send', fake(true));
  on.update(10);
  off.update(10);
  assert.deepEqual(written, []);
  await new Promise((r) => setTimeout(r, 1100));
  off.update(20);
  assert.deepEqual(written, []);
  on.update(5000);
  assert.equal(written.length, 1);
  assert.match(written[0]!, /^\r\x1b\[Ksend 5000 records, \d+\/s, 1\.\ds$/);
  on.done();
  assert.equal(written.at(-1), '\r\x1b[K');
});

test("every repository file a command's help names exists", async () => {
  const { commands } = await import('../../../src/cli/commands.js');
  const { existsSync } = await import('node:fs');
  const { repoRoot } = await import('../../support/paths.js');
  let named = 0;
  for (const c of commands) {
    for (const m of c.usage.matchAll(/\b((?:examples|pipelines|rules)\/[\w./-]+\.(?:json|jsonl|ya?ml))\b/g)) {
      named++;
      assert.ok(existsSync(join(repoRoot, m[1]!)), `logwarden ${c.name} --help names ${m[1]}, which does not exist`);
    }
  }
  assert.ok(named >= 4);
});
