/**
 * Fault (f): memory with a fast sender while Loki is down. A child `logwarden run` with a
 * filesystem-buffered forward input parses audit-sized records ({log: JSON line}, as Fluent Bit's
 * tail sends them) and sends them to Loki and a file. Loki answers 503 while a client sends 100,000
 * records as fast as acks come back, then recovers. The backlog (~100 MB of chunk files) must stay
 * on disk: the estimated memory of buffered events stays within its share of memory_limit, RSS
 * within a bound, and nothing is lost.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LokiServer } from '../support/loki-server.js';
import { tempDir } from '../support/output-pipeline.js';
import { AckingSender, LogwardenProcess, RssSampler, sleep, writeFaultConfig } from '../support/fault.js';

const RECORDS = Number(process.env.LOGWARDEN_FAULT_MEMORY_RECORDS ?? 100_000);
const MEMORY_LIMIT = 128 * 1024 * 1024;
/**
 * Idle RSS (~80-100 MiB), buffered events (at most 5/8 of memory_limit, estimated), and the working
 * set of parsing, encoding and pushing at full rate, which does not grow with the backlog.
 */
const RSS_BOUND = 480 * 1024 * 1024;
/**
 * The receiver runs as the container runs it: through deploy/container/entrypoint.sh with the
 * manifests' 512Mi limit, so V8 sizes its heap from that limit (--max-semi-space-size=32
 * --max-old-space-size=262) rather than from the host's memory. With Node's defaults on a large
 * host the collector is free to leave garbage in place: the drain after recovery then peaked
 * at 375-514 MiB over ten runs, the heap's choice rather than what logwarden holds.
 */
const CONTAINER_LIMIT = 512 * 1024 * 1024;

/** An audit event of ~900 bytes as a JSON line. */
function auditLine(seq: number): string {
  return JSON.stringify({
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    stage: 'ResponseComplete',
    requestURI: `/api/v1/namespaces/team-${seq % 40}/pods/web-${seq % 997}`,
    verb: ['get', 'list', 'watch', 'create', 'patch'][seq % 5],
    user: { username: `system:serviceaccount:team-${seq % 40}:deployer`, groups: ['system:serviceaccounts', 'system:authenticated'] },
    sourceIPs: [`10.0.${seq % 250}.${seq % 200}`],
    userAgent: 'kubectl/v1.30.2 (linux/amd64) kubernetes/3968350',
    objectRef: { resource: 'pods', namespace: `team-${seq % 40}`, name: `web-${seq % 997}`, apiVersion: 'v1' },
    responseStatus: { metadata: {}, code: 200 },
    requestReceivedTimestamp: '2026-11-26T12:00:00.000000Z',
    stageTimestamp: '2026-11-26T12:00:00.004000Z',
    annotations: { 'authorization.k8s.io/decision': 'allow', 'authorization.k8s.io/reason': 'RBAC: allowed by ClusterRoleBinding "deployers"' },
    seq,
    note: 'y'.repeat(200),
  });
}

test(`Loki down while ${RECORDS} records arrive fast: buffered events stay within memory_limit, RSS bounded, nothing lost`, { timeout: 300_000 }, async () => {
  const dir = tempDir('logwarden-fault-memory-');
  const loki = await new LokiServer().start();
  loki.failAlways(503, 'Ingester is unavailable');
  const config = writeFaultConfig(dir, {
    service: ['scheduler.base: 0.5', 'scheduler.cap: 2', `memory_limit: ${MEMORY_LIMIT}`],
    input: ['buffer_max_size: 16Mi'],
    filters: `    - name: parser
      match: kube.audit
      key_name: log
      parser: json`,
    outputs: `    - name: loki
      match: kube.audit
      port: ${loki.port}
      labels: job=fault, verb=$verb
      retry_limit: no_limits
    - name: file
      match: kube.audit
      path: ${join(dir, 'out')}
      mkdir: on
      format: json_lines`,
  });
  const lw = await LogwardenProcess.start(config, 30_000, { containerLimit: CONTAINER_LIMIT });
  const idle = lw.rss();
  const rss = new RssSampler(lw);
  let peakEstimate = 0;
  let sampling = true;
  const estimates = (async () => {
    while (sampling) {
      peakEstimate = Math.max(peakEstimate, await lw.metric('logwarden_storage_memory_bytes').catch(() => 0));
      await sleep(100);
    }
  })();
  const sender = new AckingSender(lw.port(), { tag: 'kube.audit', chunk: 2000, inFlight: 4000, ackTimeoutMs: 60_000 });
  try {
    const t0 = Date.now();
    await sender.send(
      (function* () {
        for (let s = 0; s < RECORDS; s++) yield [s, { log: auditLine(s), stream: 'stdout' }] as [number, Record<string, unknown>];
      })(),
    );
    const sendMs = Date.now() - t0;
    assert.equal(sender.acked.size, RECORDS, 'every record acked while Loki is down (stored on disk)');
    const bufferedBytes = await lw.metric('logwarden_storage_bytes');
    const downChunks = await lw.metric('logwarden_storage_chunks', { state: 'down' });
    const peakOutage = rss.peak;
    assert.equal(loki.entries().length, 0);

    loki.clearFailure();
    const recoverAt = Date.now();
    const deadline = recoverAt + 180_000;
    while (loki.entries().length < RECORDS && Date.now() < deadline) await sleep(250);
    const drainMs = Date.now() - recoverAt;
    const seqs = new Set(loki.entries().map((e) => (JSON.parse(e.line) as { seq: number }).seq));
    await sleep(500);
    sampling = false;
    await estimates;
    const peak = rss.stop();
    const fileLines = readFileSync(join(dir, 'out', 'kube.audit'), 'utf8')
      .split('\n')
      .filter(Boolean).length;
    const figures = {
      records: RECORDS,
      acked: sender.acked.size,
      send_ms: sendMs,
      buffered_mb_at_recovery: Math.round(bufferedBytes / 1e6),
      chunks_down_at_recovery: downChunks,
      pushes_answered_503: loki.pushes.filter((p) => p.status === 503).length,
      delivered_loki_unique: seqs.size,
      delivered_file: fileLines,
      lost: RECORDS - seqs.size,
      drain_ms_after_recovery: drainMs,
      peak_estimate_mb: Math.round(peakEstimate / 1048576),
      idle_rss_mb: Math.round(idle / 1048576),
      peak_rss_mb_outage: Math.round(peakOutage / 1048576),
      peak_rss_mb_total: Math.round(peak / 1048576),
    };
    process.stdout.write(`# fault-memory figures ${JSON.stringify(figures)}\n`);
    assert.ok(downChunks > 0, 'the backlog went to disk');
    assert.equal(seqs.size, RECORDS, 'nothing lost');
    assert.equal(fileLines, RECORDS, 'the file output got everything');
    // Half of memory_limit for chunks queued to outputs, an eighth for chunks waiting for their write, plus one chunk (~6 MB estimated).
    assert.ok(peakEstimate <= MEMORY_LIMIT * (1 / 2 + 1 / 8) + 8 * 2 ** 20, `buffered events estimated at ${peakEstimate} bytes`);
    assert.ok(peak < RSS_BOUND, `peak RSS ${Math.round(peak / 1048576)} MiB over ${RSS_BOUND / 1048576} MiB`);
    assert.equal(await lw.metric('logwarden_storage_bytes'), 0, 'buffer empty once delivered');
  } finally {
    sampling = false;
    rss.stop();
    await sender.close();
    await lw.stop();
    await loki.stop();
  }
});
