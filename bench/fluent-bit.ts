/**
 * Benchmarks with the real sender: Fluent Bit 5.1.1 tails the reference mix of audit events and
 * forwards it with `require_ack_response`, as the sidecar does, to one receiver per scenario —
 * a real Fluent Bit (forward -> null, forward -> file) or a real `logwarden run` (the same two,
 * and the security pipelines) — all in the same run, scenarios taken in turns so that the
 * machine's slower and faster periods fall on every receiver alike. The own load generator's
 * scenarios of the same receivers (bench/run.ts) take their turns in the same rounds.
 *
 * Receiver CPU comes from the OS (/proc/PID/stat utime + stime, all threads and worker
 * processes), read once the receiver is ready and idle (start-up excluded) and again when it
 * has delivered every record; peak RSS is VmHWM.
 *
 *   npm run build && node dist/bench/fluent-bit.js                 every scenario
 *   node dist/bench/fluent-bit.js fb-null lw-null                   some of them
 *   node dist/bench/fluent-bit.js --capture                         only what Fluent Bit sends
 *   node dist/bench/fluent-bit.js --capture fb-null                  the capture, then fb-null
 *   BENCH_RUNS=5 BENCH_RECORDS=100000 node dist/bench/fluent-bit.js
 *   BENCH_NODE_FLAGS='--max-old-space-size=262' ...   node flags for the logwarden receivers
 *
 * Needs ../shared (the event generator; LOGWARDEN_SHARED elsewhere) and the fluent-bit binary
 * (test/e2e/setup.sh, ../shared/tools/peers/install.sh, or fluent-bit on PATH).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Decoder, Encoder, ExtensionCodec } from '@msgpack/msgpack';
import { Framer } from '../src/forward-protocol/framer.js';
import { peerBinary } from '../test/support/peers.js';
import { cpuSeconds, downstreams, eventsFile, freePort, median, runOnce, scenarios as loadgenScenarios, statusBytes, type RunResult } from './run.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const shared = process.env.LOGWARDEN_SHARED ?? join(root, '..', 'shared');
const work = process.env.BENCH_DIR ?? '/tmp/logwarden-bench';
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const RECORDS = Number(process.env.BENCH_RECORDS ?? 200_000);
const TAG = 'kube.audit';

/** The fluent-bit binary: the one the e2e setup recorded, on PATH, or unpacked from ../shared. */
export function fluentBit(): string {
  try {
    return peerBinary('fluent-bit');
  } catch {
    // not installed by test/e2e/setup.sh, not on PATH
  }
  const unpacked = '/tmp/logwarden-peers/bin/fluent-bit';
  try {
    accessSync(unpacked, constants.X_OK);
    return unpacked;
  } catch {
    // not unpacked yet
  }
  const install = join(shared, 'tools', 'peers', 'install.sh');
  if (!existsSync(install)) {
    throw new Error(
      `fluent-bit not found and ${install} is missing: these benchmarks need the real Fluent Bit 5.1.1 ` +
        '(put fluent-bit on PATH, run test/e2e/setup.sh, or set LOGWARDEN_SHARED to the folder with tools/peers)',
    );
  }
  const dir = execFileSync('bash', [install], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    .trim()
    .split('\n')
    .pop()!;
  const bin = join(dir, 'fluent-bit');
  accessSync(bin, constants.X_OK);
  return bin;
}

// ---------------------------------------------------------------------------------------------
// Fluent Bit configurations

/** The sender, as deploy/kustomize/overlays/sidecar runs it, reading the events file once. */
function senderConfig(o: { events: string; port: number; httpPort: number; dir: string; parse: boolean }): string {
  return `# The sidecar's Fluent Bit (deploy/kustomize/overlays/sidecar/fluent-bit), reading one file to its end.
service:
  flush: 1
  log_level: info
  grace: 300
  http_server: on
  http_listen: 127.0.0.1
  http_port: ${o.httpPort}
  storage.path: ${o.dir}/storage
  storage.sync: normal
  storage.backlog.mem_limit: 16M
  storage.max_chunks_up: 32
parsers:
  # The sidecar's k8s_audit_json without time_key: events are stamped when read (the generated
  # events are from 2024, and Loki refuses entries older than a week).
  - name: audit_json
    format: json
pipeline:
  inputs:
    - name: tail
      tag: ${TAG}
      path: ${o.events}
${o.parse ? '      parser: audit_json\n' : ''}      read_from_head: true
      exit_on_eof: true
      buffer_chunk_size: 256K
      buffer_max_size: 4M
      skip_long_lines: on
      storage.type: filesystem
  outputs:
    - name: forward
      match: ${TAG}
      host: 127.0.0.1
      port: ${o.port}
      require_ack_response: true
      retry_limit: no_limits
`;
}

/** A Fluent Bit receiver: forward -> null or file (`plain`: one JSON record per line). */
function receiverConfig(o: { output: 'null' | 'file'; port: number; httpPort: number; out: string }): string {
  const output = o.output === 'null' ? '    - name: null\n      match: "*"\n' : `    - name: file\n      match: "*"\n      path: ${o.out}\n      mkdir: on\n      format: plain\n`;
  return `service:
  flush: 1
  log_level: info
  http_server: on
  http_listen: 127.0.0.1
  http_port: ${o.httpPort}
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: ${o.port}
  outputs:
${output}`;
}

// ---------------------------------------------------------------------------------------------
// Processes and probes

async function getJSON<T>(url: string): Promise<T | undefined> {
  try {
    const res = await fetch(url);
    if (!res.ok) return undefined;
    return (await res.json()) as T;
  } catch {
    return undefined;
  }
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** TCP connections established to `port` on this machine (/proc/net/tcp, state 01): the sender's. */
function connectionsTo(port: number): number {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let n = 0;
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(hex) && cols[3] === '01') n++;
    }
  }
  return n;
}

interface FluentBitMetrics {
  input: Record<string, { records: number; bytes: number }>;
  output: Record<string, { proc_records: number; proc_bytes: number; errors: number; retries: number; retries_failed: number; dropped_records: number }>;
}

function spawnLogged(cmd: string, args: string[], log: string, env?: NodeJS.ProcessEnv): ChildProcess {
  const out = createWriteStream(log);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  return child;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Lines of a Fluent Bit log at level error or warn, but the shutdown notice. */
function problems(log: string): string[] {
  let text = '';
  try {
    text = readFileSync(log, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => /\[(error|\s?warn)\]/.test(l) && !/service will shutdown/.test(l));
}

// ---------------------------------------------------------------------------------------------
// Receivers

interface Receiver {
  pid: number;
  port: number;
  /** Test servers the receiver delivers to (stopped after it). */
  extra?: { stop(): Promise<void> };
  /** Records the receiver has received and delivered (undefined while it cannot tell). */
  progress(): Promise<{ received: number; done: boolean } | undefined>;
  stop(): Promise<void>;
  /** After the run: what its outputs hold, for the check that nothing was lost. */
  delivered(): Promise<string>;
}

async function fluentBitReceiver(output: 'null' | 'file', dir: string): Promise<Receiver> {
  const port = await freePort();
  const httpPort = await freePort();
  const out = join(dir, 'out');
  const cfg = join(dir, 'receiver.yaml');
  writeFileSync(cfg, receiverConfig({ output, port, httpPort, out }));
  const log = join(dir, 'receiver.log');
  const child = spawnLogged(fluentBit(), ['-c', cfg], log);
  const url = `http://127.0.0.1:${httpPort}/api/v1/metrics`;
  await until(`the Fluent Bit receiver (${log}: ${tail(log, 3)})`, 30_000, async () => {
    if (child.exitCode !== null) throw new Error(`the Fluent Bit receiver exited ${child.exitCode}: ${tail(log)}`);
    return (await listening(port)) && (await getJSON<FluentBitMetrics>(url)) !== undefined ? true : undefined;
  });
  const key = `${output}.0`;
  return {
    pid: child.pid!,
    port,
    async progress() {
      const m = await getJSON<FluentBitMetrics>(url);
      if (!m) return undefined;
      const received = m.input['forward.0']?.records ?? 0;
      return { received, done: (m.output[key]?.proc_records ?? 0) >= received };
    },
    async delivered() {
      const m = await getJSON<FluentBitMetrics>(url);
      const o = m?.output[key];
      const lines = output === 'file' ? countLines(join(out, TAG)) : undefined;
      return `${key} proc_records ${o?.proc_records}, errors ${o?.errors}, dropped ${o?.dropped_records}${lines === undefined ? '' : `, ${lines} lines in ${TAG}`}`;
    },
    async stop() {
      child.kill('SIGTERM');
      await exited(child);
    },
  };
}

function countLines(file: string): number {
  try {
    const b = readFileSync(file);
    let n = 0;
    for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) n++;
    return n;
  } catch {
    return 0;
  }
}

interface LogwardenStatus {
  ready: boolean;
  outputs: Record<string, { records: number }>;
  storage?: { chunks: number; writing: number };
}

/** `logwarden_input_records_total` and the per-output delivered counters from /metrics. */
async function logwardenCounters(httpPort: number): Promise<{ received: number; delivered: Record<string, number> } | undefined> {
  let text: string;
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
    text = await res.text();
  } catch {
    return undefined;
  }
  let received = 0;
  const delivered: Record<string, number> = {};
  for (const line of text.split('\n')) {
    let m = /^logwarden_input_records_total\{name="([^"]+)"\} (\d+)/.exec(line);
    if (m) received += Number(m[2]);
    m = /^logwarden_output_proc_records_total\{name="([^"]+)"\} (\d+)/.exec(line);
    if (m) delivered[m[1]!] = Number(m[2]);
  }
  return { received, delivered };
}

async function logwardenReceiver(pipeline: string, dir: string, env: Record<string, string>, flags: string[] = []): Promise<Receiver> {
  const port = await freePort();
  const httpPort = await freePort();
  const out = join(dir, 'out');
  const log = join(dir, 'receiver.log');
  const nodeFlags = [...flags, ...(process.env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean)];
  const child = spawnLogged(process.execPath, [...nodeFlags, join(root, 'bin', 'logwarden.js'), 'run', '-c', join(root, 'bench', 'pipelines', pipeline)], log, {
    ...process.env,
    BENCH_PORT: String(port),
    BENCH_HTTP_PORT: String(httpPort),
    BENCH_OUT: out,
    LOGWARDEN_SHARED: shared,
    ...env,
  });
  const statusUrl = `http://127.0.0.1:${httpPort}/api/v1/status`;
  await until(`logwarden (${log})`, 60_000, async () => {
    if (child.exitCode !== null) throw new Error(`logwarden exited ${child.exitCode}: ${tail(log)}`);
    return (await getJSON<LogwardenStatus>(statusUrl))?.ready && (await listening(port)) ? true : undefined;
  });
  return {
    pid: child.pid!,
    port,
    async progress() {
      // Both answer in well under a millisecond of the receiver's CPU.
      const c = await logwardenCounters(httpPort);
      const s = await getJSON<LogwardenStatus>(statusUrl);
      if (!c || !s) return undefined;
      const empty = Object.values(s.outputs).every((o) => o.records === 0) && (!s.storage || (s.storage.chunks === 0 && s.storage.writing === 0));
      return { received: c.received, done: empty };
    },
    async delivered() {
      const c = await logwardenCounters(httpPort);
      const files = ['kube.audit', 'falco'].map((f) => [f, countLines(join(out, f))] as const).filter(([, n]) => n > 0);
      return `received ${c?.received}, delivered ${JSON.stringify(c?.delivered)}${files.map(([f, n]) => `, ${n} lines in ${f}`).join('')}`;
    },
    async stop() {
      child.kill('SIGTERM');
      await exited(child);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Scenarios

interface RealScenario {
  name: string;
  what: string;
  /** Fluent Bit's tail parses each line (the sidecar), or sends it as {"log": line}. */
  parse: boolean;
  start(dir: string): Promise<Receiver>;
}

const real: RealScenario[] = [
  { name: 'fb-null', what: 'Fluent Bit forward -> null', parse: true, start: (d) => fluentBitReceiver('null', d) },
  { name: 'fb-file', what: 'Fluent Bit forward -> file (format plain)', parse: true, start: (d) => fluentBitReceiver('file', d) },
  { name: 'lw-null', what: 'logwarden forward -> null (bench/pipelines/relay-null.yaml)', parse: true, start: (d) => logwardenReceiver('relay-null.yaml', d, {}) },
  { name: 'lw-file', what: 'logwarden forward -> file json_lines (relay-file.yaml)', parse: true, start: (d) => logwardenReceiver('relay-file.yaml', d, {}) },
  {
    name: 'lw-security-file',
    what: 'logwarden audit_policy -> modify -> detect -> file (security-file.yaml)',
    parse: true,
    start: (d) => logwardenReceiver('security-file.yaml', d, {}),
  },
  {
    name: 'lw-security',
    what: 'logwarden security pipeline: filesystem buffer, file + Loki + Alertmanager test servers (security.yaml)',
    parse: true,
    async start(d) {
      const extra = await downstreams();
      return { ...(await logwardenReceiver('security.yaml', d, extra.env)), extra };
    },
  },
  {
    name: 'lw-security-512mi',
    what: 'lw-security with the V8 flags deploy/container/entrypoint.sh derives for the 512 MiB container (--max-semi-space-size=32 --max-old-space-size=262)',
    parse: true,
    async start(d) {
      const extra = await downstreams();
      return { ...(await logwardenReceiver('security.yaml', d, extra.env, ['--max-semi-space-size=32', '--max-old-space-size=262'])), extra };
    },
  },
  {
    name: 'lw-security-raw',
    what: 'lw-security with lines sent unparsed ({"log": line}) and parsed by logwarden, as the load generator sends them',
    parse: false,
    async start(d) {
      const extra = await downstreams();
      return { ...(await logwardenReceiver('security.yaml', d, extra.env)), extra };
    },
  },
];

/** The load generator's scenarios of the same receivers, run in the same rounds (any of bench/run.ts when named). */
const LOADGEN = ['relay-null', 'relay-forward', 'security-file', 'security'];

interface RealResult {
  records: number;
  /** From the sender's connection to the receiver having every record delivered. */
  records_per_s: number;
  /** From the sender's connection to the receiver's input having counted every record. */
  received_per_s: number;
  cpu_s: number;
  cpu_us_per_record: number;
  peak_rss_mb: number;
  sender_cpu_s: number;
  /** Most connections the sender had open to the receiver at once (sampled every 50 ms). */
  max_connections: number;
  seconds: number;
  delivered: string;
  sender_problems: string[];
}

async function runReal(s: RealScenario, events: string, n: number): Promise<RealResult> {
  const dir = join(work, 'fluent-bit', s.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const receiver = await s.start(dir);
  try {
    // Start-up excluded: the receiver is ready; let it settle, then read its CPU.
    await new Promise((r) => setTimeout(r, 1000));
    const cpu0 = cpuSeconds(receiver.pid);
    const senderHttp = await freePort();
    const cfg = join(dir, 'sender.yaml');
    writeFileSync(cfg, senderConfig({ events, port: receiver.port, httpPort: senderHttp, dir, parse: s.parse }));
    const slog = join(dir, 'sender.log');
    const sender = spawnLogged(fluentBit(), ['-c', cfg], slog);
    const senderExit = exited(sender);
    const t0 = await until(
      'the sender to connect',
      60_000,
      () => {
        if (connectionsTo(receiver.port) > 0) return process.hrtime.bigint();
        if (sender.exitCode !== null) throw new Error(`the sender exited ${sender.exitCode}: ${tail(slog)}`);
        return undefined;
      },
      2,
    );
    let senderCpu = 0;
    let received: bigint | undefined;
    let connections = 0;
    const timeout = Math.max(120_000, (n / 2000) * 1000);
    const done = await until(
      `${s.name}: every record delivered`,
      timeout,
      async () => {
        try {
          senderCpu = cpuSeconds(sender.pid!);
        } catch {
          // exited: its last reading stands
        }
        connections = Math.max(connections, connectionsTo(receiver.port));
        const p = await receiver.progress();
        if (!p) return undefined;
        if (received === undefined && p.received >= n) received = process.hrtime.bigint();
        return p.done && p.received >= n ? process.hrtime.bigint() : undefined;
      },
      50,
    );
    const cpu1 = cpuSeconds(receiver.pid);
    const rss = statusBytes(receiver.pid, 'VmHWM');
    const code = await Promise.race([senderExit, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
    if (code === 'timeout') {
      sender.kill('SIGTERM');
      throw new Error(`the sender did not exit after its last ack: ${tail(slog)}`);
    }
    if (code !== 0) throw new Error(`the sender exited ${code}: ${tail(slog)}`);
    const delivered = await receiver.delivered();
    const p = await receiver.progress();
    if (!p || p.received !== n) throw new Error(`${s.name}: the receiver got ${p?.received} records, sent ${n} (${delivered})`);
    const seconds = Number(done - t0) / 1e9;
    const cpu = cpu1 - cpu0;
    return {
      records: n,
      records_per_s: n / seconds,
      received_per_s: n / (Number(received! - t0) / 1e9),
      cpu_s: cpu,
      cpu_us_per_record: (cpu / n) * 1e6,
      peak_rss_mb: rss / 1e6,
      sender_cpu_s: senderCpu,
      max_connections: connections,
      seconds,
      delivered,
      sender_problems: problems(slog),
    };
  } finally {
    await receiver.stop();
    await receiver.extra?.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// What Fluent Bit sends: a capture receiver that acks each chunk at once

class EventTimeBytes {
  constructor(readonly bytes: Uint8Array) {}
}
const codec = new ExtensionCodec();
codec.register({ type: 0, encode: () => null, decode: (d: Uint8Array) => new EventTimeBytes(d) });
const decoder = new Decoder({ extensionCodec: codec });
const encoder = new Encoder();

interface Capture {
  records: number;
  connections: number;
  frames: number;
  wall_s: number;
  frame_bytes: { min: number; p50: number; max: number };
  records_per_frame: { min: number; p50: number; max: number };
  wire_bytes_per_record: number;
  modes: Record<string, number>;
  entry_forms: Record<string, number>;
  metadata: Record<string, number>;
  time_types: Record<string, number>;
  options: Record<string, number>;
  chunk_id_bytes: number[];
  /** Per connection, from our ack to the first byte of its next frame. */
  ms_ack_to_next_frame: { p10: number; p50: number; p90: number; max: number };
  /** Most frames in transmission at once, over all connections. */
  max_frames_in_flight: number;
  frames_per_connection: number[];
  /** Frames that arrived in each second of the run: the flush cadence. */
  frames_per_second: number[];
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : 0;
}

function bump(m: Record<string, number>, k: string): void {
  m[k] = (m[k] ?? 0) + 1;
}

export async function capture(events: string, n: number, parse = true): Promise<Capture> {
  const dir = join(work, 'fluent-bit', 'capture');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const c: Capture = {
    records: 0,
    connections: 0,
    frames: 0,
    wall_s: 0,
    frame_bytes: { min: 0, p50: 0, max: 0 },
    records_per_frame: { min: 0, p50: 0, max: 0 },
    wire_bytes_per_record: 0,
    modes: {},
    entry_forms: {},
    metadata: {},
    time_types: {},
    options: {},
    chunk_id_bytes: [],
    ms_ack_to_next_frame: { p10: 0, p50: 0, p90: 0, max: 0 },
    max_frames_in_flight: 0,
    frames_per_connection: [],
    frames_per_second: [],
  };
  const sizes: number[] = [];
  const counts: number[] = [];
  const gaps: number[] = [];
  const arrivals: number[] = [];
  let inFlight = 0;
  let first: number | undefined;
  let last = 0;
  let wire = 0;
  const server = net.createServer((sock) => {
    c.connections++;
    const idx = c.frames_per_connection.push(0) - 1;
    const framer = new Framer(1 << 20, 64 << 20);
    let frameStart: number | undefined;
    let ackedAt: number | undefined;
    sock.on('data', (d: Buffer) => {
      const now = performance.now();
      if (framer.buffered === 0 && frameStart === undefined) {
        frameStart = now;
        first ??= now;
        inFlight++;
        c.max_frames_in_flight = Math.max(c.max_frames_in_flight, inFlight);
        if (ackedAt !== undefined) gaps.push(now - ackedAt);
      }
      framer.push(d, (frame) => {
        const v = decoder.decode(frame) as unknown[];
        c.frames++;
        c.frames_per_connection[idx]!++;
        sizes.push(frame.length);
        wire += frame.length;
        arrivals.push(performance.now());
        const entries = v[1];
        if (Array.isArray(entries)) {
          bump(c.modes, 'forward ([tag, [entries], options])');
          counts.push(entries.length);
          c.records += entries.length;
          for (const e of entries as unknown[][]) {
            const head = e[0];
            if (Array.isArray(head)) {
              bump(c.entry_forms, '[[time, {metadata}], record]');
              const meta = head[1] as Record<string, unknown> | undefined;
              bump(c.metadata, meta && typeof meta === 'object' ? `${Object.keys(meta).length} keys` : String(meta));
              bump(c.time_types, head[0] instanceof EventTimeBytes ? 'EventTime (ext 0)' : typeof head[0]);
            } else {
              bump(c.entry_forms, '[time, record]');
              bump(c.time_types, head instanceof EventTimeBytes ? 'EventTime (ext 0)' : typeof head);
            }
          }
        } else bump(c.modes, typeof entries === 'number' ? 'message' : 'packed');
        const opts = (v[2] ?? {}) as Record<string, unknown>;
        bump(
          c.options,
          Object.entries(opts)
            .map(([k, x]) => (k === 'chunk' ? 'chunk' : `${k}=${JSON.stringify(x)}`))
            .sort()
            .join(', ') || '(none)',
        );
        if (typeof opts.chunk === 'string') {
          c.chunk_id_bytes.push(Buffer.byteLength(opts.chunk));
          sock.write(encoder.encode({ ack: opts.chunk }));
        }
        ackedAt = performance.now();
        last = ackedAt;
        inFlight--;
        frameStart = undefined;
      });
      if (framer.buffered > 0 && frameStart === undefined) {
        // A frame began inside this segment after the previous one ended.
        frameStart = now;
        inFlight++;
        c.max_frames_in_flight = Math.max(c.max_frames_in_flight, inFlight);
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const senderHttp = await freePort();
  const cfg = join(dir, 'sender.yaml');
  writeFileSync(cfg, senderConfig({ events, port, httpPort: senderHttp, dir, parse }));
  const slog = join(dir, 'sender.log');
  const sender = spawnLogged(fluentBit(), ['-c', cfg], slog);
  const code = await exited(sender);
  server.close();
  if (code !== 0) throw new Error(`the sender exited ${code}: ${tail(slog)}`);
  if (c.records !== n) throw new Error(`capture: ${c.records} records arrived, ${n} sent (${slog})`);
  c.wall_s = (last - first!) / 1000;
  c.frame_bytes = { min: Math.min(...sizes), p50: pct(sizes, 0.5), max: Math.max(...sizes) };
  c.records_per_frame = { min: Math.min(...counts), p50: pct(counts, 0.5), max: Math.max(...counts) };
  c.wire_bytes_per_record = wire / c.records;
  c.ms_ack_to_next_frame = { p10: pct(gaps, 0.1), p50: pct(gaps, 0.5), p90: pct(gaps, 0.9), max: Math.max(0, ...gaps) };
  for (const t of arrivals) {
    const sec = Math.floor((t - first!) / 1000);
    while (c.frames_per_second.length <= sec) c.frames_per_second.push(0);
    c.frames_per_second[sec]!++;
  }
  c.chunk_id_bytes = [...new Set(c.chunk_id_bytes)];
  return c;
}

// ---------------------------------------------------------------------------------------------

function fmt(x: number, digits = 0): string {
  return x.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function loadavg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const only = args.filter((a) => !a.startsWith('--'));
  const events = eventsFile(RECORDS);
  const n = countLines(events);
  fluentBit(); // fail early, with the message, when it is missing
  const commit = (() => {
    try {
      return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }).toString().trim();
    } catch {
      return 'unknown';
    }
  })();
  const started = new Date().toISOString();
  const load: string[] = [loadavg()];

  // What the sender sends, into a receiver that acks every chunk at once (skipped when only
  // some scenarios are named, unless --capture is given too).
  let cap: Capture | undefined;
  if (!only.length || args.includes('--capture')) {
    cap = await capture(events, n);
    process.stderr.write(`capture: ${JSON.stringify({ ...cap, options: Object.keys(cap.options).length })}\n`);
  }
  if (args.includes('--capture') && !only.length) {
    process.stdout.write(`${JSON.stringify(cap, null, 2)}\n`);
    return;
  }

  const reals = real.filter((s) => !only.length || only.includes(s.name));
  const gens = loadgenScenarios.filter((s) => (only.length ? only.includes(s.name) : LOADGEN.includes(s.name)));
  const realRuns = new Map<string, RealResult[]>(reals.map((s) => [s.name, []]));
  const genRuns = new Map<string, RunResult[]>(gens.map((s) => [s.name, []]));
  for (let i = 0; i < RUNS; i++) {
    for (const s of reals) {
      const r = await runReal(s, events, n);
      realRuns.get(s.name)!.push(r);
      process.stderr.write(
        `${s.name} run ${i + 1}/${RUNS}: ${fmt(r.records_per_s)} rec/s delivered (${fmt(r.received_per_s)} received), ${r.cpu_us_per_record.toFixed(2)} µs CPU/rec, peak RSS ${r.peak_rss_mb.toFixed(0)} MB, sender ${r.sender_cpu_s.toFixed(2)} s CPU and up to ${r.max_connections} connections, load ${loadavg()}; ${r.delivered}${r.sender_problems.length ? `; sender log: ${r.sender_problems.slice(0, 3).join(' | ')}` : ''}\n`,
      );
    }
    for (const s of gens) {
      const r = await runOnce(s, events);
      genRuns.get(s.name)!.push(r);
      process.stderr.write(
        `${s.name} (load generator) run ${i + 1}/${RUNS}: ${fmt(r.records_per_s)} rec/s, ${r.cpu_us_per_record.toFixed(2)} µs CPU/rec, peak RSS ${r.peak_rss_mb.toFixed(0)} MB, load ${loadavg()}\n`,
      );
    }
    load.push(loadavg());
  }

  const med = (xs: number[]) => median(xs);
  const range = (xs: number[], d = 2) => `${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}`;
  const base = (name: string) => {
    const r = realRuns.get(name);
    return r?.length ? med(r.map((x) => x.cpu_us_per_record)) : undefined;
  };
  const fbNull = base('fb-null');
  const fbFile = base('fb-file');
  const fbNullRate = realRuns.get('fb-null')?.length ? med(realRuns.get('fb-null')!.map((x) => x.records_per_s)) : undefined;
  const ratio = (x: number, b: number | undefined) => (b ? `${(x / b).toFixed(2)}×` : '–');
  // Per-run ratios against the Fluent Bit run of the same round: the spread of the ratio itself.
  const roundRatios = (name: string, baseName: string) => {
    const a = realRuns.get(name) ?? [];
    const b = realRuns.get(baseName) ?? [];
    return a.map((x, i) => (b[i] ? x.cpu_us_per_record / b[i]!.cpu_us_per_record : NaN)).filter((x) => !Number.isNaN(x));
  };
  const rows: string[] = [];
  for (const s of reals) {
    const r = realRuns.get(s.name)!;
    const cpu = med(r.map((x) => x.cpu_us_per_record));
    const rate = med(r.map((x) => x.records_per_s));
    const rn = roundRatios(s.name, 'fb-null');
    const rf = roundRatios(s.name, 'fb-file');
    rows.push(
      `| ${s.name}: ${s.what} | Fluent Bit | **${cpu.toFixed(2)}** (${range(r.map((x) => x.cpu_us_per_record))}) | ${fmt(rate)} (${fmt(Math.min(...r.map((x) => x.records_per_s)))}–${fmt(Math.max(...r.map((x) => x.records_per_s)))}) | ${fmt(med(r.map((x) => x.received_per_s)))} | ${med(r.map((x) => x.peak_rss_mb)).toFixed(0)} | ${Math.max(...r.map((x) => x.max_connections))} | ${ratio(cpu, fbNull)} (${rn.length ? range(rn) : '–'}) | ${ratio(cpu, fbFile)} (${rf.length ? range(rf) : '–'}) | ${fbNullRate ? (rate / fbNullRate).toFixed(2) : '–'} |`,
    );
  }
  for (const s of gens) {
    const r = genRuns.get(s.name)!;
    const cpu = med(r.map((x) => x.cpu_us_per_record));
    const rate = med(r.map((x) => x.records_per_s));
    rows.push(
      `| ${s.name}: ${s.what} | load generator | **${cpu.toFixed(2)}** (${range(r.map((x) => x.cpu_us_per_record))}) | ${fmt(rate)} | ${fmt(med(r.map((x) => x.acked_per_s)))} | ${med(r.map((x) => x.peak_rss_mb)).toFixed(0)} | ${s.loadgen[s.loadgen.indexOf('--connections') + 1]} | ${ratio(cpu, fbNull)} | ${ratio(cpu, fbFile)} | – (another sender) |`,
    );
  }
  const header = [
    `commit ${commit}, node ${process.version}, ${fmt(n)} records/run, median of ${RUNS} runs (range in brackets), started ${started}, load average at the start and after each round: ${load.join(' / ')}`,
    '| receiver | sender | receiver CPU µs/record | records/s delivered | records/s received (load generator: acked) | peak RSS MB | sender connections at once | CPU ÷ Fluent Bit forward → null | CPU ÷ Fluent Bit forward → file | records/s ÷ Fluent Bit forward → null |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  process.stdout.write(`${[...header, ...rows].join('\n')}\n`);
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(
    join(root, 'bench', 'results', 'fluent-bit.json'),
    `${JSON.stringify(
      {
        commit,
        node: process.version,
        records: n,
        runs: RUNS,
        started,
        load,
        capture: cap,
        real: Object.fromEntries(reals.map((s) => [s.name, { what: s.what, runs: realRuns.get(s.name) }])),
        loadgen: Object.fromEntries(gens.map((s) => [s.name, { what: s.what, runs: genRuns.get(s.name) }])),
      },
      null,
      2,
    )}\n`,
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
