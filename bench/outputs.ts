/**
 * Throughput of the loki and alertmanager outputs through a real pipeline against local servers:
 * the Loki test server (in a worker thread, so its decoding does not share the pipeline's
 * thread) and, when installed, a real Alertmanager. Prints records/s, requests/s and bytes on
 * the wire per record for Loki protobuf+snappy, JSON and JSON+gzip.
 *
 *   npx tsc -p . && node dist/bench/outputs.js [records]
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { EventTime, type LogEvent, type LogRecord } from '../src/core/event.js';
import { alertmanagerOutput } from '../src/outputs/alertmanager/index.js';
import { lokiOutput } from '../src/outputs/loki/index.js';
import { LokiServer } from '../test/support/loki-server.js';
import { startPipeline } from '../test/support/output-pipeline.js';
import { falcoCorpus } from '../test/support/paths.js';

const CHUNK = 500;

if (!isMainThread) {
  // Worker: the Loki test server, reporting what it received on request.
  const server = await new LokiServer().start();
  parentPort!.postMessage({ port: server.port });
  parentPort!.on('message', () => {
    parentPort!.postMessage({
      requests: server.pushes.length,
      bytes: server.pushes.reduce((n, p) => n + p.bytes, 0),
      entries: server.pushes.reduce((n, p) => n + p.streams.reduce((m, s) => m + s.entries.length, 0), 0),
      statuses: [...new Set(server.pushes.map((p) => p.status))],
    });
  });
} else {
  await main();
}

interface ServerStats {
  requests: number;
  bytes: number;
  entries: number;
  statuses: number[];
}

function auditRecords(n: number): LogRecord[] {
  const dir = join(falcoCorpus, 'events');
  const samples = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .flatMap((f) =>
      readFileSync(join(dir, f), 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as LogRecord),
    )
    .filter((r) => r && typeof r === 'object' && !Array.isArray(r) && r.kind === 'Event');
  return Array.from({ length: n }, (_, i) => ({ ...samples[i % samples.length]!, auditID: `${i.toString(16).padStart(8, '0')}-bench` }));
}

async function chunks(run: { ingest(e: LogEvent[]): Promise<{ ok: boolean }> }, tag: string, records: LogRecord[]): Promise<number> {
  const t0 = process.hrtime.bigint();
  const now = EventTime.now();
  const pending: Array<Promise<{ ok: boolean }>> = [];
  for (let i = 0; i < records.length; i += CHUNK) {
    const evs = records.slice(i, i + CHUNK).map((record, j) => ({ tag, time: new EventTime(now.sec, (i + j) % 1e9), record }));
    pending.push(run.ingest(evs));
    // Let the engine work between chunks, as socket reads would.
    if (pending.length % 8 === 0) await new Promise((r) => setImmediate(r));
  }
  const outcomes = await Promise.all(pending);
  if (outcomes.some((o) => !o.ok)) throw new Error('some chunks failed');
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function benchLoki(records: LogRecord[]): Promise<void> {
  console.log(
    `loki: ${records.length} Kubernetes audit events (${Math.round(records.reduce((n, r) => n + JSON.stringify(r).length, 0) / records.length)} bytes of JSON each on average), chunks of ${CHUNK}`,
  );
  console.log('encoding        records/s  requests/s  wire bytes/record  (batch_size 1000, workers 2)');
  for (const [name, extra] of [
    ['protobuf', 'encoding: protobuf'],
    ['json', 'encoding: json'],
    ['json+gzip', 'encoding: json\n      compress: gzip'],
  ] as const) {
    const worker = new Worker(new URL(import.meta.url));
    const { port } = await new Promise<{ port: number }>((r) => worker.once('message', r));
    const yaml = `service:\n  log_level: warn\n  memory_limit: 1Gi\npipeline:\n  outputs:\n    - name: loki\n      match: '*'\n      port: ${port}\n      labels: "job=k8s-audit, $verb, namespace=$objectRef['namespace']"\n      batch_size: 1000\n      batch_wait: 0.2\n      ${extra}\n`;
    const run = await startPipeline(yaml, [lokiOutput]);
    const secs = await chunks(run, 'kube.audit', records);
    await run.stop(5);
    worker.postMessage('stats');
    const s = await new Promise<ServerStats>((r) => worker.once('message', r));
    await worker.terminate();
    if (s.entries !== records.length) throw new Error(`${name}: server got ${s.entries} of ${records.length} (statuses ${s.statuses})`);
    console.log(`${name.padEnd(14)} ${String(Math.round(records.length / secs)).padStart(9)}  ${(s.requests / secs).toFixed(1).padStart(10)}  ${(s.bytes / records.length).toFixed(1).padStart(17)}`);
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function benchAlertmanager(n: number): Promise<void> {
  const bin = '/usr/bin/prometheus-alertmanager';
  if (!existsSync(bin)) {
    console.log('alertmanager: skipped (prometheus-alertmanager not installed; see test/e2e/setup.sh)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'logwarden-bench-am-'));
  writeFileSync(join(dir, 'am.yml'), 'route:\n  receiver: none\n  group_wait: 1h\nreceivers:\n  - name: none\n');
  const port = await freePort();
  const am = spawn(bin, [`--config.file=${join(dir, 'am.yml')}`, `--storage.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--cluster.listen-address='], { stdio: 'ignore' });
  try {
    for (let k = 0; ; k++) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/-/ready`)).ok) break;
      } catch {
        // starting
      }
      if (k > 100) throw new Error('alertmanager did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    // Distinct rules and users: every alert is a distinct label set for Alertmanager.
    const records = Array.from({ length: n }, (_, i) => ({
      time: new Date().toISOString(),
      rule: `Rule ${i % 50}`,
      priority: ['Critical', 'Warning', 'Error'][i % 3],
      source: 'k8s_audit',
      tags: ['k8s'],
      output: `Something happened (user=user-${i})`,
      output_fields: { 'ka.user.name': `user-${i}`, 'ka.verb': 'create' },
      hostname: 'bench',
    }));
    const yaml = `service:\n  log_level: warn\npipeline:\n  outputs:\n    - name: alertmanager\n      match: falco\n      url: http://127.0.0.1:${port}\n      expires_after: 600\n      batch_size: 500\n      batch_wait: 0.2\n`;
    const run = await startPipeline(yaml, [alertmanagerOutput]);
    const secs = await chunks(run, 'falco', records);
    const batches = await run.counter('logwarden_output_proc_batches_total');
    await run.stop(5);
    console.log(`alertmanager: ${n} alerts → ${Math.round(n / secs)} alerts/s, ${(batches / secs).toFixed(1)} requests/s (batch_size 500, one real Alertmanager ${'0.25'})`);
  } finally {
    am.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 50_000);
  console.log(`node ${process.version}, ${process.platform}/${process.arch}`);
  await benchLoki(auditRecords(n));
  await benchAlertmanager(Math.min(n, 20_000));
}
