/**
 * Fault (a): kill -9 while a client sends 100,000 records with acks. logwarden runs as a child
 * process (bin/logwarden.js run) with a filesystem-buffered forward input and a file output. After
 * the kill it is restarted on the same storage.path; the client then resends what was never
 * acked, as Fluent Bit's out_forward does. Every acked record must reach the file: lost = 0.
 * Duplicates (records delivered before the kill but not yet recorded as done) are counted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/output-pipeline.js';
import { AckingSender, countSeqs, LogwardenProcess, RssSampler, sleep, writeFaultConfig } from '../support/fault.js';

const TOTAL = Number(process.env.LOGWARDEN_FAULT_RECORDS ?? 100_000);
const KILL_AFTER = Math.floor(TOTAL * 0.4);
const PAD = 'x'.repeat(80);

function* records(seqs: Iterable<number>): Generator<[number, Record<string, unknown>]> {
  for (const seq of seqs) yield [seq, { seq, pad: PAD }];
}

test(`kill -9 during ${TOTAL} acked records: every acked record reaches the file output after a restart`, { timeout: 180_000 }, async () => {
  const dir = tempDir('logwarden-fault-kill-');
  const config = writeFaultConfig(dir, {
    service: ['storage.sync: normal', 'storage.checksum: on'],
    http: false,
    outputs: `    - name: file
      match: '*'
      path: out
      mkdir: on
      format: json_lines
      json_date_key: false
      # Batches wait up to a second (as Loki's do by default), so at the kill many acked chunks
      # are in the buffer only.
      batch_size: 20000
      batch_wait: 1`,
  });
  const outFile = join(dir, 'out', 'fault');
  const read = () => (existsSync(outFile) ? readFileSync(outFile, 'utf8') : '');

  let lw = await LogwardenProcess.start(config);
  const rss1 = new RssSampler(lw);
  const sender = new AckingSender(lw.port(), { tag: 'fault', chunk: 500, inFlight: 4000, ackTimeoutMs: 4000 });
  let killedAt = 0;
  const started = Date.now();
  const killed = new Promise<void>((resolve) => {
    const sending = sender.send(records(Array.from({ length: TOTAL }, (_, i) => i)), (n) => {
      if (n >= KILL_AFTER && !killedAt) {
        killedAt = n;
        sender.stop();
        void lw.kill9().then(() => resolve());
      }
    });
    void sending.then(() => {
      if (!killedAt) resolve();
    });
  });
  await killed;
  const peak1 = rss1.stop();
  assert.ok(killedAt > 0, 'the kill happened during the send');
  const deliveredAtKill = countSeqs(read());
  // Records in flight at the kill settle (their acks never come) before the client gives up.
  await sleep(4500);
  await sender.close();
  const acked = new Set(sender.acked);
  const ackedAtKill = acked.size;

  const restart = Date.now();
  lw = await LogwardenProcess.start(config);
  const rss2 = new RssSampler(lw);
  const replay = lw.logs.find((l) => String(l.msg).includes('replaying chunks')) ?? { chunks: 0, records: 0, quarantined: 0 };
  // Every acked record is back before anything new is sent.
  const deadline = Date.now() + 60_000;
  let seen = countSeqs(read());
  while ([...acked].some((s) => !seen.has(s))) {
    if (Date.now() > deadline) break;
    await sleep(100);
    seen = countSeqs(read());
  }
  const recoveredMs = Date.now() - restart;
  const lostAcked = [...acked].filter((s) => !seen.has(s));

  // The client resends what was never acked.
  const unacked = Array.from({ length: TOTAL }, (_, i) => i).filter((s) => !acked.has(s));
  const resender = new AckingSender(lw.port(), { tag: 'fault', chunk: 500, inFlight: 4000, ackTimeoutMs: 10_000 });
  await resender.send(records(unacked));
  await resender.close();
  const deadline2 = Date.now() + 60_000;
  while (countSeqs(read()).size < TOTAL && Date.now() < deadline2) await sleep(100);
  seen = countSeqs(read());
  let duplicated = 0;
  for (const n of seen.values()) duplicated += n - 1;
  const peak2 = rss2.stop();
  await lw.stop();

  const figures = {
    records: TOTAL,
    acked_before_kill: ackedAtKill,
    delivered_before_kill: deliveredAtKill.size,
    replayed_chunks: replay.chunks,
    replayed_records: replay.records,
    quarantined_chunks: replay.quarantined,
    lost_acked: lostAcked.length,
    resent_unacked: unacked.length,
    resent_acked: resender.acked.size,
    delivered_unique: seen.size,
    duplicated,
    lost_total: TOTAL - seen.size,
    recovery_ms: recoveredMs,
    peak_rss_mb_before_kill: Math.round(peak1 / 1048576),
    peak_rss_mb_after_restart: Math.round(peak2 / 1048576),
    total_ms: Date.now() - started,
  };
  process.stdout.write(`# fault-kill figures ${JSON.stringify(figures)}\n`);
  assert.deepEqual(lostAcked.slice(0, 10), [], `acked records lost after kill -9: ${lostAcked.length}`);
  assert.equal(resender.acked.size, unacked.length, 'every resent record acked');
  assert.equal(seen.size, TOTAL, 'every record delivered once the client resent the unacked ones');
});
