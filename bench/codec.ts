/**
 * The msgpack codec on the hot path, chosen by measurement: decode the benchmark's audit events
 * (each packed once) with msgpackr (the codec logwarden uses, with its settings), @msgpack/msgpack
 * and msgpack-lite; and the cost of logwarden's JSON-from-bytes path against decode + stringify.
 *
 *   npx tsc -p . && node dist/bench/codec.js [records]
 */
import { readFileSync } from 'node:fs';
import { Decoder } from '@msgpack/msgpack';
import msgpackLite from 'msgpack-lite';
import { decode, encode, nativeAcceleration } from '../src/core/msgpack.js';
import { JsonWriter, writeRecordJSON } from '../src/core/msgpack-json.js';
import { toJSONLine } from '../src/core/json.js';
import { eventsFile } from './run.js';

const n = Number(process.argv[2] ?? 50_000);
const lines = readFileSync(eventsFile(), 'utf8').split('\n').filter(Boolean).slice(0, n);
const packed = lines.map((l) => encode(JSON.parse(l)));
const bytes = packed.reduce((s, b) => s + b.length, 0);

function time(name: string, f: () => void): void {
  f(); // warm up
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = process.hrtime.bigint();
    f();
    runs.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  runs.sort((a, b) => a - b);
  const s = runs[2]!;
  process.stdout.write(`| ${name} | ${Math.round(n / s).toLocaleString('en')} | ${((s / n) * 1e6).toFixed(2)} |\n`);
}

process.stdout.write(`${n} audit events, ${(bytes / n).toFixed(0)} bytes of msgpack each; msgpackr native addon: ${nativeAcceleration}\n`);
process.stdout.write('| operation | records/s | µs/record |\n|---|---|---|\n');
time('msgpackr decode (logwarden settings)', () => {
  for (const b of packed) decode(b);
});
const dec = new Decoder();
time('@msgpack/msgpack decode', () => {
  for (const b of packed) dec.decode(b);
});
time('msgpack-lite decode', () => {
  for (const b of packed) msgpackLite.decode(b);
});
time('msgpackr decode + JSON.stringify', () => {
  for (const b of packed) toJSONLine(decode(b));
});
time('JSON from msgpack bytes (msgpack-json.ts)', () => {
  const w = new JsonWriter(bytes * 2);
  for (const b of packed) writeRecordJSON(w, b);
});
