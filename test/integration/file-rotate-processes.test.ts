/**
 * Two processes (as with `service.workers: 2`) append to one file with rotation on: each
 * follows the other's rotations by the inode, so every record is written exactly once, every
 * line whole, and no batch is lost into a file that was renamed away.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRotatedName } from '../../src/outputs/file/rotate.js';
import { tempDir } from '../support/harness.js';

const fileModule = new URL('../../src/outputs/file/index.js', import.meta.url).href;
const schemaModule = new URL('../../src/config/schema.js', import.meta.url).href;
const eventModule = new URL('../../src/core/event.js', import.meta.url).href;
const pluginModule = new URL('../../src/core/plugin.js', import.meta.url).href;

const writer = `
import { FileOutput, fileOutput } from ${JSON.stringify(fileModule)};
import { applySchema } from ${JSON.stringify(schemaModule)};
import { EventTime } from ${JSON.stringify(eventModule)};
import { outgoingBatch } from ${JSON.stringify(pluginModule)};
const [dir, first, batches] = process.argv.slice(2).map((v, i) => (i ? Number(v) : v));
const section = { values: { file: 'shared', format: 'json_lines', json_date_key: false, rotate: true, rotate_max_size: 3000, rotate_max_files: 100000, rotate_gzip: false }, keyPos: {}, valuePos: {}, pos: undefined, baseDir: dir };
const errors = [];
const c = applySchema(fileOutput.options, section, 'file', errors);
if (errors.length) throw errors[0];
const out = new FileOutput(dir, c);
await out.start();
for (let b = 0; b < batches; b++) {
  const evs = [];
  for (let i = 0; i < 7; i++) {
    const n = first + b * 7 + i;
    evs.push({ tag: 't', time: new EventTime(1700000000 + n, 0), record: { n, pad: 'x'.repeat(60) } });
  }
  await out.send(outgoingBatch(evs));
  if (b % 5 === 0) await new Promise((r) => setImmediate(r));
}
await out.close();
`;

function run(script: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += String(d)));
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer exited ${code}: ${err}`))));
  });
}

test('two processes on one rotating file: every record once, every line whole', async () => {
  const dir = tempDir();
  const script = join(tempDir(), 'writer.mjs');
  writeFileSync(script, writer);
  const batches = 150;
  await Promise.all([run(script, [dir, '0', String(batches)]), run(script, [dir, '700000', String(batches)])]);
  const files = readdirSync(dir).filter((f) => f === 'shared' || isRotatedName(f, 'shared'));
  assert.ok(files.length > 10, `rotated: ${files.length}`);
  const seen: number[] = [];
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    if (text === '') continue;
    assert.ok(text.endsWith('\n'), `${f} ends inside a record`);
    const ns = text
      .slice(0, -1)
      .split('\n')
      .map((l) => (JSON.parse(l) as { n: number }).n);
    // Batches are whole: 7 consecutive records of one writer.
    for (let i = 0; i < ns.length; i += 7) {
      assert.equal(ns[i]! % 7, 0, `${f}: a batch does not start at ${i}`);
      for (let k = 1; k < 7; k++) assert.equal(ns[i + k], ns[i]! + k, `${f}: batch split or interleaved`);
    }
    // The batch that reached the size, and at most one of the other writer's in flight: never a
    // file that goes on growing after it was renamed.
    if (f !== 'shared') assert.ok(text.length < 3000 + 3 * 7 * 90, `${f}: ${text.length} bytes`);
    seen.push(...ns);
  }
  seen.sort((a, b) => a - b);
  const expected = [...Array.from({ length: batches * 7 }, (_, i) => i), ...Array.from({ length: batches * 7 }, (_, i) => 700000 + i)];
  assert.deepEqual(seen, expected);
});
