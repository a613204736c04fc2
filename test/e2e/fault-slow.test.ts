/**
 * Fault (e): a slow output next to a fast one. A child `logwarden run` has three forward inputs:
 * slow_in (memory storage) and disk_in (filesystem storage) send tags routed to a Loki that takes
 * 500 ms per push; fast_in sends a tag routed only to a file output. Backpressure is scoped by
 * routing: slow_in pauses when Loki's queue is full, fast_in (whose chunks never reached Loki)
 * keeps flowing at full speed, disk_in keeps being acked while its chunks wait on disk. Memory
 * stays under the bound throughout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LokiServer } from '../support/loki-server.js';
import { tempDir } from '../support/output-pipeline.js';
import { AckingSender, countSeqs, LogwardenProcess, RssSampler, sleep, writeFaultConfig } from '../support/fault.js';

const SLOW = 10_000;
const DISK = 10_000;
const FAST = 50_000;
const RSS_BOUND = 256 * 1024 * 1024;
const PAD = 'x'.repeat(200);

const recs = (from: number, n: number) => Array.from({ length: n }, (_, k) => [from + k, { seq: from + k, pad: PAD }] as [number, Record<string, unknown>]);

test('a slow output pauses only the inputs routed to it; a fast output keeps flowing; memory stays bounded', { timeout: 180_000 }, async () => {
  const dir = tempDir('logwarden-fault-slow-');
  const loki = await new LokiServer().start();
  loki.setDelay(500);
  const config = writeFaultConfig(dir, {
    service: ['memory_limit: 64Mi', 'storage.max_chunks_up: 8'],
    inputs: `    - name: forward
      alias: slow_in
      listen: 127.0.0.1
      port: 0
    - name: forward
      alias: fast_in
      listen: 127.0.0.1
      port: 0
    - name: forward
      alias: disk_in
      listen: 127.0.0.1
      port: 0
      storage.type: filesystem`,
    outputs: `    - name: loki
      match: slow.*
      port: ${loki.port}
      labels: job=slow
      workers: 1
      batch_size: 1000
      queue_max_records: 2000
      retry_limit: no_limits
    - name: file
      match: fast.*
      path: out
      mkdir: on
      format: json_lines
      json_date_key: false`,
  });
  const lw = await LogwardenProcess.start(config);
  const rss = new RssSampler(lw);
  const slow = new AckingSender(lw.port('slow_in'), { tag: 'slow.mem', chunk: 250, inFlight: 8000, ackTimeoutMs: 120_000 });
  const disk = new AckingSender(lw.port('disk_in'), { tag: 'slow.disk', chunk: 250, inFlight: 2000, ackTimeoutMs: 120_000 });
  const fast = new AckingSender(lw.port('fast_in'), { tag: 'fast.a', chunk: 250, inFlight: 2000, ackTimeoutMs: 120_000 });
  const paused: Record<string, number> = { slow_in: 0, fast_in: 0, disk_in: 0 };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (const k of Object.keys(paused)) paused[k] = Math.max(paused[k]!, await lw.metric('logwarden_input_paused', { name: k }));
      await sleep(100);
    }
  })();
  try {
    const t0 = Date.now();
    const times: Record<string, number> = {};
    const timed = (name: string, p: Promise<void>) => p.then(() => (times[name] = Date.now() - t0));
    const slowDone = timed('slow_acked_ms', slow.send(recs(0, SLOW)));
    // The slow input is paused before the others start sending.
    await lw.waitLog((l) => l.msg === 'backpressure: pausing reads from senders' && l.plugin === 'slow_in', 'slow_in paused', 20_000);
    const fastDone = timed('fast_acked_ms', fast.send(recs(0, FAST)));
    const diskDone = timed('disk_acked_ms', disk.send(recs(SLOW, DISK)));
    await Promise.all([fastDone, diskDone]);
    const lokiAtFastDone = loki.entries().length;
    await slowDone;
    const lines = () =>
      loki
        .entries()
        .map((e) => e.line)
        .join('\n');
    const deadline = Date.now() + 90_000;
    while (countSeqs(lines()).size < SLOW + DISK && Date.now() < deadline) await sleep(200);
    times.slow_delivered_ms = Date.now() - t0;
    sampling = false;
    await sampler;
    const peak = rss.stop();
    const outFile = join(dir, 'out', 'fast.a');
    const fastSeen = countSeqs(existsSync(outFile) ? readFileSync(outFile, 'utf8') : '');
    const slowSeen = countSeqs(lines());
    const figures = {
      ...times,
      slow_records: SLOW,
      disk_records: DISK,
      fast_records: FAST,
      loki_entries_when_fast_and_disk_were_acked: lokiAtFastDone,
      max_paused: paused,
      fast_delivered: fastSeen.size,
      slow_and_disk_delivered: slowSeen.size,
      peak_rss_mb: Math.round(peak / 1048576),
    };
    process.stdout.write(`# fault-slow figures ${JSON.stringify(figures)}\n`);
    assert.equal(paused.slow_in, 1, 'the memory input routed to the slow output paused');
    assert.equal(paused.fast_in, 0, 'the input routed only to the fast output never paused');
    assert.equal(paused.disk_in, 0, 'the filesystem input kept buffering');
    assert.equal(fast.acked.size, FAST);
    assert.equal(disk.acked.size, DISK);
    assert.ok(lokiAtFastDone < SLOW + DISK, 'fast and disk inputs were acked before the slow output caught up');
    assert.equal(fastSeen.size, FAST);
    assert.equal(slowSeen.size, SLOW + DISK);
    assert.ok(peak < RSS_BOUND, `peak RSS ${peak}`);
  } finally {
    sampling = false;
    rss.stop();
    for (const s of [slow, disk, fast]) await s.close();
    await lw.stop();
    await loki.stop();
  }
});
