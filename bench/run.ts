/**
 * `npm run bench`: end-to-end figures of a real `logwarden run` receiving from a load generator
 * in another process. CPU seconds come from the OS (/proc/PID/stat utime + stime of the
 * receiver), peak RSS from /proc/PID/status (VmHWM). Each scenario runs RUNS times (default 5);
 * the median is reported. Results: a table on stdout and bench/results/latest.json.
 *
 *   npm run bench                      all scenarios
 *   npm run bench -- relay-forward     one scenario (names below)
 *   BENCH_RUNS=3 BENCH_RECORDS=100000 npm run bench
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const shared = process.env.LOGWARDEN_SHARED ?? join(root, '..', 'shared');
const work = process.env.BENCH_DIR ?? '/tmp/logwarden-bench';
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const RECORDS = Number(process.env.BENCH_RECORDS ?? 200_000);
const TICK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

export interface Scenario {
  name: string;
  what: string;
  pipeline: string;
  loadgen: string[];
  env?: Record<string, string>;
  nodeFlags?: string[];
  /** Pins the receiver (all its threads and worker processes) to these CPUs (taskset -c). */
  cpus?: string;
  /** Extra processes the scenario needs (test servers); returns a stop function. */
  setup?: () => Promise<Downstreams>;
}

interface Downstreams {
  env: Record<string, string>;
  stop: () => Promise<void>;
  /** Called when the load generator has every ack (e.g. Loki comes back). */
  afterSend?: () => void;
}

export function eventsFile(n = RECORDS): string {
  const file = join(work, `audit-events-${n}-42.jsonl`);
  if (!existsSync(file)) {
    mkdirSync(work, { recursive: true });
    const tool = join(shared, 'tools', 'gen-audit-events.py');
    if (!existsSync(tool)) throw new Error(`event generator not found at ${tool} (set LOGWARDEN_SHARED)`);
    execFileSync('python3', [tool, file, String(n), '42'], { stdio: 'inherit' });
  }
  return file;
}

/** The receiver and its worker processes (service.workers). */
export function tree(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) for (const [c, pp] of parent) if (pp === out[i]) out.push(c);
  return out;
}

export function cpuSeconds(pid: number): number {
  let sum = 0;
  for (const p of tree(pid)) {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    sum += (Number(fields[11]) + Number(fields[12])) / TICK; // utime, stime (fields 14 and 15)
  }
  return sum;
}

/** Sum over the receiver's processes of a memory figure of /proc/PID/status (VmHWM, VmRSS). */
export function statusBytes(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  let sum = 0;
  for (const p of tree(pid)) {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${p}/status`, 'utf8'));
    sum += m ? Number(m[1]) * 1024 : 0;
  }
  return sum;
}

export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function drained(httpPort: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${httpPort}/api/v1/status`);
    const s = (await res.json()) as { outputs: Record<string, { records: number }>; storage?: { chunks: number } };
    // Queues can be empty for a moment while the filesystem buffer still holds chunks to load.
    if (Object.values(s.outputs).every((o) => o.records === 0) && (s.storage === undefined || s.storage.chunks === 0)) return;
    if (Date.now() > deadline) throw new Error(`outputs did not drain: ${JSON.stringify(s.outputs)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function waitForPort(port: number, exited: () => number | null, log: () => string): Promise<void> {
  const net = await import('node:net');
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (exited() !== null || Date.now() > deadline) throw new Error(`receiver did not start: ${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface RunResult {
  records_per_s: number;
  acked_per_s: number;
  mb_per_s: number;
  cpu_s: number;
  cpu_us_per_record: number;
  records_per_cpu_s: number;
  peak_rss_mb: number;
  steady_rss_mb: number;
  ack_ms_p50: number;
  ack_ms_p99: number;
  /** CPU of the load generator while sending, and of this process (the downstream test servers). */
  loadgen_cpu_s: number;
  downstream_cpu_s: number;
  /** (receiver + load generator + downstream CPU) / wall time: how much of the machine was busy. */
  cores_busy: number;
  json_bytes_per_record: number;
}

export async function runOnce(s: Scenario, events: string): Promise<RunResult> {
  const port = await freePort();
  const httpPort = await freePort();
  const out = join(work, 'out');
  rmSync(out, { recursive: true, force: true });
  const extra = s.setup ? await s.setup() : undefined;
  const argv = [...(s.nodeFlags ?? []), ...nodeFlagsFromEnv(), join(root, 'bin', 'logwarden.js'), 'run', '-c', join(root, 'bench', 'pipelines', s.pipeline)];
  // taskset execs node: the child's pid is the receiver's.
  const receiver = spawn(s.cpus ? 'taskset' : process.execPath, s.cpus ? ['-c', s.cpus, process.execPath, ...argv] : argv, {
    env: { ...process.env, BENCH_PORT: String(port), BENCH_HTTP_PORT: String(httpPort), BENCH_OUT: out, LOGWARDEN_SHARED: shared, ...s.env, ...extra?.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  receiver.stderr!.on('data', (d) => (log += d));
  await waitForPort(
    port,
    () => receiver.exitCode,
    () => log,
  );
  // Resident memory of the receiver's processes every 100 ms: the steady value is the median.
  const rssSamples: number[] = [];
  const sampler = setInterval(() => {
    try {
      rssSamples.push(statusBytes(receiver.pid!, 'VmRSS'));
    } catch {
      /* exiting */
    }
  }, 100);
  let cpu0 = cpuSeconds(receiver.pid!);
  let own0 = process.cpuUsage();
  // Async: the downstream test servers run in this process and must keep answering.
  const gen = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'dist', 'bench', 'loadgen.js'), '--port', String(port), '--events', events, ...loadgenArgs(s)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      out += d;
      if (out.startsWith('{"warm":true}\n')) {
        // --warmup: measure from here, once the warm-up records are delivered.
        out = out.slice(out.indexOf('\n') + 1);
        drained(httpPort).then(() => {
          cpu0 = cpuSeconds(receiver.pid!);
          own0 = process.cpuUsage();
          child.stdin!.write('go\n');
        }, reject);
      }
    });
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`loadgen exited ${code}`))));
  });
  extra?.afterSend?.();
  // Sustained means delivered: wait until every output queue is empty before reading the CPU.
  // The load generator's clock starts with its first chunk (after it pre-encoded them all).
  const t1 = process.hrtime.bigint();
  await drained(httpPort);
  const drainSeconds = Number(process.hrtime.bigint() - t1) / 1e9;
  const cpu1 = cpuSeconds(receiver.pid!);
  const own = process.cpuUsage(own0);
  const rss = statusBytes(receiver.pid!, 'VmHWM');
  clearInterval(sampler);
  receiver.kill('SIGTERM');
  await new Promise((r) => receiver.once('exit', r));
  await extra?.stop();
  const g = JSON.parse(gen) as {
    records: number;
    seconds: number;
    records_per_s: number;
    mb_per_s: number;
    ack_ms_p50: number;
    ack_ms_p99: number;
    cpu_s: number;
    json_bytes_per_record: number;
  };
  const wall = g.seconds + drainSeconds;
  const cpu = cpu1 - cpu0;
  // Includes the drain polling and the generator's pre-encoding wait: an upper bound.
  const downstream = (own.user + own.system) / 1e6;
  return {
    records_per_s: g.records / wall,
    acked_per_s: g.records_per_s,
    mb_per_s: g.mb_per_s,
    cpu_s: cpu,
    cpu_us_per_record: (cpu / g.records) * 1e6,
    records_per_cpu_s: g.records / cpu,
    peak_rss_mb: rss / 1e6,
    steady_rss_mb: median(rssSamples) / 1e6,
    ack_ms_p50: g.ack_ms_p50,
    ack_ms_p99: g.ack_ms_p99,
    loadgen_cpu_s: g.cpu_s,
    downstream_cpu_s: downstream,
    cores_busy: (cpu + g.cpu_s + downstream) / wall,
    json_bytes_per_record: g.json_bytes_per_record,
  };
}

/** BENCH_CONNECTIONS overrides the scenario's number of sender connections (chunks in flight). */
function loadgenArgs(s: Scenario): string[] {
  const args = [...s.loadgen];
  const c = process.env.BENCH_CONNECTIONS;
  const i = args.indexOf('--connections');
  if (c && i >= 0) args[i + 1] = c;
  return args;
}

/** BENCH_NODE_FLAGS: extra node flags for the receiver, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`. */
function nodeFlagsFromEnv(): string[] {
  return (process.env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** A Loki push-API test server and an Alertmanager API stub, in this process. */
export async function downstreams(opts: { lokiDown?: boolean } = {}): Promise<Downstreams> {
  const { LokiServer } = await import('../test/support/loki-server.js');
  const http = await import('node:http');
  const loki = await new LokiServer().start();
  if (opts.lokiDown) loki.failAlways(503);
  let alerts = 0;
  const am = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/api/v2/alerts') {
        alerts += (JSON.parse(body) as unknown[]).length;
        res.writeHead(200).end();
      } else res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => am.listen(0, '127.0.0.1', () => r()));
  const amPort = (am.address() as { port: number }).port;
  return {
    env: { BENCH_LOKI_URL: `${loki.url}/loki/api/v1/push`, BENCH_ALERTMANAGER_URL: `http://127.0.0.1:${amPort}` },
    afterSend: () => loki.clearFailure(),
    stop: async () => {
      process.stderr.write(`  downstreams: loki ${loki.requests} requests, alertmanager ${alerts} alerts\n`);
      await loki.stop();
      await new Promise((r) => am.close(r));
    },
  };
}

/** How a scenario's load generator sends, and what the receiver runs with. */
interface Load {
  mode?: 'forward' | 'packed';
  chunk?: number;
  connections?: number;
  /** Extra load generator arguments (--rate, --warmup, --records, --pad-to). */
  args?: string[];
  env?: Record<string, string>;
  nodeFlags?: string[];
  cpus?: string;
}

function loadgenFor(l: Load, extra: string[] = []): string[] {
  return ['--mode', l.mode ?? 'forward', '--chunk', String(l.chunk ?? 2000), '--connections', String(l.connections ?? 2), ...extra, ...(l.args ?? [])];
}

function receiverOptions(l: Load): Pick<Scenario, 'nodeFlags' | 'cpus'> {
  return { ...(l.nodeFlags ? { nodeFlags: l.nodeFlags } : {}), ...(l.cpus ? { cpus: l.cpus } : {}) };
}

/** forward (Forward mode or PackedForward, acks) -> file json_lines. */
function relay(name: string, what: string, l: Load & { pipeline?: string } = {}): Scenario {
  return { name, what, pipeline: l.pipeline ?? 'relay-file.yaml', loadgen: loadgenFor(l), ...(l.env ? { env: l.env } : {}), ...receiverOptions(l) };
}

/** Memory storage (acked after delivery) with batch_wait 50 ms, instead of the filesystem buffer. */
const MEMORY = { BENCH_STORAGE: 'memory', BENCH_BATCH_WAIT: '0.05' };

/** The security pipeline against the in-process Loki and Alertmanager test servers. */
function security(name: string, what: string, l: Load & { lokiDown?: boolean; pipeline?: string; parsed?: boolean } = {}): Scenario {
  const env = { ...l.env, ...(l.lokiDown ? { BENCH_LOKI_RETRY_LIMIT: 'no_limits' } : {}) };
  return {
    name,
    what,
    pipeline: l.pipeline ?? 'security.yaml',
    loadgen: loadgenFor(l, l.parsed ? [] : ['--wrap-log']),
    env,
    ...receiverOptions(l),
    ...(l.pipeline ? {} : { setup: () => downstreams({ lokiDown: l.lokiDown }) }),
  };
}

const warm = (n = 5000): string[] => ['--warmup', String(n)];

export const scenarios: Scenario[] = [
  relay('relay-forward', 'forward (Forward mode, 2000/chunk, ack) -> file json_lines'),
  relay('relay-null', 'forward (Forward mode, 2000/chunk, ack) -> null: the input and routing alone', { pipeline: 'relay-null.yaml' }),
  // relay-null with one difference of the real Fluent Bit sender at a time, then all of them
  // (bench/fluent-bit.ts measures what it sends: metadata entries, ~2,600 records per chunk,
  // several chunks in flight on their own connections, 10-30k records/s).
  relay('relay-null-metadata', 'relay-null with [[time, {}], record] entries (Fluent Bit 5.x)', { pipeline: 'relay-null.yaml', args: ['--metadata'] }),
  relay('relay-null-2600', 'relay-null with 2,600 records per chunk (~2 MB, as Fluent Bit fills them)', { pipeline: 'relay-null.yaml', chunk: 2600 }),
  relay('relay-null-c8', 'relay-null over 8 connections (8 chunks in flight)', { pipeline: 'relay-null.yaml', connections: 8 }),
  relay('relay-null-12k', 'relay-null paced at 12,000 records/s', { pipeline: 'relay-null.yaml', args: ['--rate', '12000'] }),
  relay('relay-null-as-fluent-bit', 'relay-null with all four: metadata entries, 2,600 per chunk, 8 connections, 12,000 records/s', {
    pipeline: 'relay-null.yaml',
    chunk: 2600,
    connections: 8,
    args: ['--metadata', '--rate', '12000'],
  }),
  relay('relay-packed', 'forward (PackedForward, 2000/chunk, ack) -> file json_lines', { mode: 'packed' }),
  relay('relay-forward-semi64', 'relay-forward with node --max-semi-space-size=64', { nodeFlags: ['--max-semi-space-size=64'] }),
  security('security', 'forward ({log: JSON line}, 2000/chunk, ack) -> parser -> audit_policy -> modify -> detect -> file + loki + alertmanager'),
  security('security-file', 'forward (records as Fluent Bit parsed them, 2000/chunk, ack) -> audit_policy -> modify -> detect -> file (events and alerts)', {
    pipeline: 'security-file.yaml',
    parsed: true,
  }),
  security('security-memory', 'security with memory storage (acked after delivery) and batch_wait 50 ms', { env: MEMORY }),
  security('security-memory-w2', 'security-memory with service.workers 2 (two processes)', { env: { ...MEMORY, BENCH_WORKERS: '2' } }),
  security('security-memory-1cpu', 'security-memory with the receiver pinned to one CPU (taskset -c 1): the 1-core rate', {
    env: MEMORY,
    connections: 4,
    cpus: '1',
  }),
  security('security-memory-w2-c4', 'security-memory with service.workers 2 and 4 sender connections (2 chunks in flight per worker)', {
    env: { ...MEMORY, BENCH_WORKERS: '2' },
    connections: 4,
  }),
  security('security-overload', 'security with 20 sender connections (10x the chunks in flight of the 2 of the other scenarios)', { connections: 20 }),
  security('security-loki-down', 'security while Loki answers 503 until the sender has every ack, then recovers (retry_limit no_limits)', { lokiDown: true }),
  // The V8 flags deploy/container/entrypoint.sh derives for a 512 MiB container (the manifests'
  // limit), and a tighter heap (4 MiB semi-space, 160 MiB old space) that trades CPU for RSS.
  ...[['container-512mi', ['--max-semi-space-size=32', '--max-old-space-size=262']] as const, ['bounded-heap', ['--max-semi-space-size=4', '--max-old-space-size=160']] as const].flatMap(
    ([suffix, flags]) => [
      security(`security-${suffix}`, `security with node ${flags.join(' ')}`, { nodeFlags: [...flags] }),
      security(`security-overload-${suffix}`, `security-overload with node ${flags.join(' ')}`, { nodeFlags: [...flags], connections: 20 }),
      security(`security-loki-down-${suffix}`, `security-loki-down with node ${flags.join(' ')}`, { nodeFlags: [...flags], lokiDown: true }),
    ],
  ),
  relay('relay-forward-warm', 'relay-forward measured after a 5,000-record warm-up (JIT, heap growth): the steady-state cost', { args: warm() }),
  security('security-memory-warm', 'security-memory measured after a 5,000-record warm-up', { env: MEMORY, args: warm() }),
  security('security-memory-1cpu-warm', 'security-memory-1cpu measured after a 5,000-event warm-up', {
    env: MEMORY,
    connections: 4,
    cpus: '1',
    args: warm(),
  }),
  security('security-memory-w2-c4-warm', 'security-memory-w2-c4 measured after a 10,000-event warm-up (5 chunks to each worker)', {
    env: { ...MEMORY, BENCH_WORKERS: '2' },
    connections: 4,
    args: warm(10_000),
  }),
  relay('relay-forward-half', 'relay-forward paced at 50,000 records/s (about half the sustained rate): ack latency', { args: ['--rate', '50000'] }),
  relay('relay-forward-w2', 'relay-forward with service.workers 2', { env: { BENCH_WORKERS: '2' } }),
];

/**
 * The record-size sweep: the same events grown to 1-16 KB of JSON (an annotation of filler
 * text), about 200 MB per run, chunks of about 2 MB as Fluent Bit sends them. The first 5,000
 * records are a warm-up (JIT, heap growth) outside the measurement, so that runs of 12,500 and
 * of 100,000 records compare.
 */
for (const kb of [1, 2, 4, 8, 16]) {
  const size = kb * 1024;
  const sweep: Load = {
    chunk: Math.max(16, Math.round(2e6 / size)),
    args: ['--records', String(Math.min(100_000, Math.round(200e6 / size))), '--pad-to', String(size), ...warm()],
  };
  scenarios.push(relay(`relay-size-${kb}k`, `relay-forward with ${kb} KB records`, sweep), security(`security-size-${kb}k`, `security-memory with ${kb} KB audit events`, { ...sweep, env: MEMORY }));
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const events = eventsFile();
  const results: Record<string, unknown> = {};
  const commit = (() => {
    try {
      return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }).toString().trim();
    } catch {
      return 'unknown';
    }
  })();
  const rows: string[] = [];
  for (const s of scenarios) {
    if (only.length && !only.includes(s.name)) continue;
    const runs: RunResult[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await runOnce(s, events);
      runs.push(r);
      process.stderr.write(
        `${s.name} run ${i + 1}/${RUNS}: ${Math.round(r.records_per_s)} rec/s, ${r.cpu_us_per_record.toFixed(2)} us CPU/rec, RSS ${r.steady_rss_mb.toFixed(0)} / ${r.peak_rss_mb.toFixed(0)} MB, cores busy ${r.cores_busy.toFixed(2)} (loadgen ${r.loadgen_cpu_s.toFixed(1)} s, downstream ${r.downstream_cpu_s.toFixed(1)} s)\n`,
      );
    }
    const med = Object.fromEntries((Object.keys(runs[0]!) as Array<keyof RunResult>).map((k) => [k, Number(median(runs.map((r) => r[k])).toFixed(3))])) as unknown as RunResult;
    results[s.name] = { what: s.what, median: med, runs };
    rows.push(
      `| ${s.name} | ${Math.round(med.records_per_s).toLocaleString('en')} | ${Math.round(med.acked_per_s).toLocaleString('en')} | ${med.mb_per_s.toFixed(1)} | ${med.cpu_us_per_record.toFixed(2)} | ${Math.round(med.records_per_cpu_s).toLocaleString('en')} | ${med.steady_rss_mb.toFixed(0)} / ${med.peak_rss_mb.toFixed(0)} | ${med.ack_ms_p50.toFixed(1)} / ${med.ack_ms_p99.toFixed(1)} | ${med.json_bytes_per_record} | ${((med.cpu_us_per_record * 1024) / med.json_bytes_per_record).toFixed(2)} | ${med.cores_busy.toFixed(2)} (${med.loadgen_cpu_s.toFixed(1)} / ${med.downstream_cpu_s.toFixed(1)} s) |`,
    );
  }
  const header = [
    `commit ${commit}, node ${process.version}, ${RECORDS} records/run, median of ${RUNS} runs`,
    '| scenario | records/s delivered | acked/s | MB/s (wire) | receiver CPU µs/record | records per CPU-second | steady / peak RSS MB | ack ms p50 / p99 | JSON bytes/record | receiver CPU µs/KB | cores busy (load generator / downstream CPU) |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  process.stdout.write(`${[...header, ...rows].join('\n')}\n`);
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(
    join(root, 'bench', 'results', 'latest.json'),
    `${JSON.stringify({ commit, node: process.version, records: RECORDS, runs: RUNS, date: new Date().toISOString(), results }, null, 2)}\n`,
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    process.stderr.write(`bench: ${(e as Error).stack}\n`);
    process.exit(1);
  });
}
