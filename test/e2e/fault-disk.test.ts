/**
 * Fault (d): the disk of storage.path fills up. storage.path is a real 8 MiB tmpfs (mount -t tmpfs,
 * needs root; the test is skipped with the reason otherwise), mostly taken by a filler file, and
 * Loki answers 503 so chunks pile up. When a write fails with ENOSPC: a clear error line and a
 * metric, the filesystem input pauses, the chunk that did not fit is not acked (it waits in memory
 * for delivery). When the filler is removed the input resumes; when Loki recovers every acked
 * record is delivered.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LokiServer } from '../support/loki-server.js';
import { tempDir } from '../support/output-pipeline.js';
import { AckingSender, countSeqs, LogwardenProcess, sleep, writeFaultConfig } from '../support/fault.js';

const TOTAL = 30_000;
const PAD = 'x'.repeat(100);

function mountTmpfs(dir: string, size: string): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (e) {
    return `cannot mount a tmpfs (${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim()}); run as root`;
  }
}

const probeDir = tempDir('logwarden-fault-disk-probe-');
const cannot = mountTmpfs(probeDir, '1m');
if (!cannot) execFileSync('umount', [probeDir]);

test('disk full: ENOSPC pauses the filesystem input with an error and a metric; it resumes when space returns; nothing acked is lost', { skip: cannot, timeout: 180_000 }, async () => {
  const dir = tempDir('logwarden-fault-disk-');
  const buf = join(dir, 'buf');
  mkdirSync(buf);
  assert.equal(mountTmpfs(buf, '8m'), undefined);
  const loki = await new LokiServer().start();
  let lw: LogwardenProcess | undefined;
  let sender: AckingSender | undefined;
  try {
    const filler = join(buf, 'filler');
    writeFileSync(filler, Buffer.alloc(6 * 1024 * 1024 + 512 * 1024));
    loki.failAlways(503);
    const config = writeFaultConfig(dir, {
      service: ['scheduler.base: 0.2', 'scheduler.cap: 1', 'storage.checksum: on'],
      outputs: `    - name: loki
      match: '*'
      port: ${loki.port}
      labels: job=fault
      retry_limit: no_limits
      batch_size: 1000`,
    });
    lw = await LogwardenProcess.start(config);
    const t0 = Date.now();
    sender = new AckingSender(lw.port(), { tag: 'disk', chunk: 250, inFlight: 2000, ackTimeoutMs: 120_000 });
    const s = sender;
    const sending = s.send(
      (function* () {
        for (let seq = 0; seq < TOTAL; seq++) yield [seq, { seq, pad: PAD }] as [number, Record<string, unknown>];
      })(),
    );

    const full = await lw.waitLog((l) => String(l.msg).includes('no space left'), 'the ENOSPC error line', 60_000);
    const fullAt = Date.now();
    assert.equal(full.code, 'ENOSPC');
    assert.ok((await lw.metric('logwarden_storage_write_errors_total', { reason: 'enospc' })) >= 1);
    await lw.waitLog((l) => String(l.msg).includes('pausing reads'), 'the input pausing', 5000);
    assert.equal(await lw.metric('logwarden_input_paused'), 1);
    const ready = await fetch(`${lw.httpUrl}/readyz`);
    assert.equal(ready.status, 503, 'not ready while paused');
    await sleep(1500);
    const ackedWhileFull = sender.acked.size;
    await sleep(1500);
    assert.equal(sender.acked.size, ackedWhileFull, 'no ack while the disk is full');
    assert.ok(ackedWhileFull < TOTAL);

    rmSync(filler);
    const freedAt = Date.now();
    await lw.waitLog((l) => String(l.msg).includes('space available again'), 'resume after space returns', 10_000);
    const resumeMs = Date.now() - freedAt;
    await lw.waitLog((l) => String(l.msg).includes('resuming reads'), 'the input resuming', 5000);
    const deadline = Date.now() + 30_000;
    while (sender.acked.size <= ackedWhileFull && Date.now() < deadline) await sleep(50);
    assert.ok(sender.acked.size > ackedWhileFull, 'acks flow again');

    loki.clearFailure();
    const recoverAt = Date.now();
    await Promise.race([sending, sleep(90_000)]);
    const lines = () =>
      loki
        .entries()
        .map((e) => e.line)
        .join('\n');
    const deadline2 = Date.now() + 60_000;
    let seen = countSeqs(lines());
    while (seen.size < TOTAL && Date.now() < deadline2) {
      await sleep(200);
      seen = countSeqs(lines());
    }
    const lostAcked = [...sender.acked].filter((s) => !seen.has(s));
    const figures = {
      records: TOTAL,
      acked_when_disk_full: ackedWhileFull,
      ms_to_enospc: fullAt - t0,
      resume_ms_after_space_returned: resumeMs,
      acked: sender.acked.size,
      delivered_unique: seen.size,
      loki_duplicates: loki.duplicates,
      lost_acked: lostAcked.length,
      delivery_ms_after_loki_recovered: Date.now() - recoverAt,
      write_errors: await lw.metric('logwarden_storage_write_errors_total'),
      unbuffered_chunks: await lw.metric('logwarden_storage_unbuffered_chunks_total', { reason: 'disk_full' }),
    };
    process.stdout.write(`# fault-disk figures ${JSON.stringify(figures)}\n`);
    assert.equal(lostAcked.length, 0, 'acked records lost');
    assert.equal(sender.acked.size, TOTAL, 'every record acked in the end');
    assert.equal(seen.size, TOTAL);
  } finally {
    await sender?.close();
    await lw?.stop();
    await loki.stop();
    try {
      execFileSync('umount', [buf]);
    } catch {
      execFileSync('umount', ['-l', buf]);
    }
  }
});
