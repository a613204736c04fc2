/**
 * Fault (b): Loki answers 503 for 60 seconds while a client keeps sending with acks, then
 * recovers. logwarden runs as a child process with a filesystem-buffered forward input; its
 * memory bounds are small (memory_limit, storage.max_chunks_up, storage.backlog.mem_limit) so the
 * backlog stays on disk. Checked: nothing lost, RSS (sampled from /proc/PID/status) under the
 * bound, and how long the backlog takes to drain once Loki is back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LokiServer } from '../support/loki-server.js';
import { tempDir } from '../support/output-pipeline.js';
import { AckingSender, countSeqs, LogwardenProcess, RssSampler, sleep, writeFaultConfig } from '../support/fault.js';

const OUTAGE_S = Number(process.env.LOGWARDEN_FAULT_OUTAGE_S ?? 60);
const RATE = 1000; // records per second during the outage
const RSS_BOUND = 256 * 1024 * 1024;
const PAD = 'x'.repeat(200);

test(`Loki answers 503 for ${OUTAGE_S}s, then recovers: nothing lost, RSS under ${RSS_BOUND / 1048576} MiB`, { timeout: (OUTAGE_S + 150) * 1000 }, async () => {
  const dir = tempDir('logwarden-fault-loki-');
  const loki = await new LokiServer().start();
  loki.failAlways(503, 'Ingester is unavailable');
  const config = writeFaultConfig(dir, {
    service: ['scheduler.base: 0.5', 'scheduler.cap: 3', 'memory_limit: 32Mi', 'storage.checksum: on', 'storage.max_chunks_up: 16', 'storage.backlog.mem_limit: 8Mi'],
    outputs: `    - name: loki
      match: '*'
      port: ${loki.port}
      labels: job=fault
      retry_limit: no_limits
      batch_size: 2000`,
  });
  const lw = await LogwardenProcess.start(config);
  const rss = new RssSampler(lw);
  let peakDuringOutage = 0;
  const sender = new AckingSender(lw.port(), { tag: 'loki', chunk: 250, inFlight: 2000, ackTimeoutMs: 30_000 });
  try {
    const outageStart = Date.now();
    let seq = 0;
    while (Date.now() - outageStart < OUTAGE_S * 1000) {
      const slice = Array.from({ length: RATE / 4 }, () => seq++);
      await sender.send(slice.map((s) => [s, { seq: s, pad: PAD }] as [number, Record<string, unknown>]));
      await sleep(250 - ((Date.now() - outageStart) % 250));
    }
    const sent = seq;
    const failedPushes = loki.pushes.filter((p) => p.status === 503).length;
    const bufferedBytes = await lw.metric('logwarden_storage_bytes');
    const downChunks = await lw.metric('logwarden_storage_chunks', { state: 'down' });
    peakDuringOutage = rss.peak;
    assert.equal(sender.acked.size, sent, 'every record acked during the outage (stored on disk)');
    assert.equal(loki.entries().length, 0);

    loki.clearFailure();
    const recoverAt = Date.now();
    const deadline = recoverAt + 120_000;
    let seen = countSeqs(
      loki
        .entries()
        .map((e) => e.line)
        .join('\n'),
    );
    while (seen.size < sent && Date.now() < deadline) {
      await sleep(250);
      seen = countSeqs(
        loki
          .entries()
          .map((e) => e.line)
          .join('\n'),
      );
    }
    const drainMs = Date.now() - recoverAt;
    await sleep(500);
    const peak = rss.stop();
    const figures = {
      outage_s: OUTAGE_S,
      records_sent: sent,
      acked: sender.acked.size,
      pushes_answered_503: failedPushes,
      buffered_bytes_at_recovery: bufferedBytes,
      chunks_down_at_recovery: downChunks,
      delivered_unique: seen.size,
      loki_duplicates: loki.duplicates,
      lost: sent - seen.size,
      drain_ms_after_recovery: drainMs,
      peak_rss_mb_outage: Math.round(peakDuringOutage / 1048576),
      peak_rss_mb_total: Math.round(peak / 1048576),
      rss_samples: rss.samples,
      buffer_bytes_after: await lw.metric('logwarden_storage_bytes'),
    };
    process.stdout.write(`# fault-loki figures ${JSON.stringify(figures)}\n`);
    assert.ok(failedPushes > 0, 'the outage was seen');
    assert.equal(seen.size, sent, 'nothing lost');
    assert.ok(peak < RSS_BOUND, `peak RSS ${peak} over ${RSS_BOUND}`);
    assert.equal(figures.buffer_bytes_after, 0, 'buffer empty once delivered');
  } finally {
    rss.stop();
    await sender.close();
    await lw.stop();
    await loki.stop();
  }
});
