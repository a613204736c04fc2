/**
 * The forward output as a relay hop: load generator -> `logwarden run` A (forward input ->
 * forward output, require_ack_response) -> `logwarden run` B (forward input -> msgpack file).
 * The load generator's chunks are acked only once B acked A, so records/s is the end-to-end rate
 * of the chain; CPU and peak RSS are those of A, the relay. Medians of BENCH_RUNS runs.
 *
 *   npx tsc -p . && node dist/bench/forward-relay.js [text|gzip ...]
 *   BENCH_RUNS=3 BENCH_RECORDS=100000 node dist/bench/forward-relay.js
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { skipValue } from '../src/core/msgpack-scan.js';
import { eventsFile } from './run.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const work = process.env.BENCH_DIR ?? '/tmp/logwarden-bench';
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const TICK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
}

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? (Number(m[1]) * 1024) / 1e6 : 0;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
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
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`logwarden did not start: ${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function start(pipeline: string, env: Record<string, string>): Promise<{ child: ChildProcess; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [join(root, 'bin', 'logwarden.js'), 'run', '-c', join(root, 'bench', 'pipelines', pipeline)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  await waitForPort(Number(env.BENCH_PORT), child, () => log);
  return {
    child,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

interface Result {
  records_per_s: number;
  mb_per_s: number;
  relay_cpu_us_per_record: number;
  relay_peak_rss_mb: number;
  ack_ms_p50: number;
  ack_ms_p99: number;
}

async function runOnce(compress: string, events: string): Promise<Result> {
  const [aPort, bPort] = [await freePort(), await freePort()];
  const out = join(work, 'relay-out');
  rmSync(out, { recursive: true, force: true });
  const b = await start('forward-sink.yaml', { BENCH_PORT: String(bPort), BENCH_OUT: out });
  const a = await start('forward-relay.yaml', { BENCH_PORT: String(aPort), BENCH_NEXT_PORT: String(bPort), BENCH_COMPRESS: compress });
  try {
    const cpu0 = cpuSeconds(a.child.pid!);
    const gen = execFileSync(process.execPath, [join(root, 'dist', 'bench', 'loadgen.js'), '--port', String(aPort), '--events', events, '--mode', 'forward', '--chunk', '2000', '--connections', '2'], {
      maxBuffer: 1 << 20,
    });
    const cpu = cpuSeconds(a.child.pid!) - cpu0;
    const g = JSON.parse(gen.toString()) as { records: number; records_per_s: number; mb_per_s: number; ack_ms_p50: number; ack_ms_p99: number };
    // Every acked record is in B's file ([time, record] values back to back).
    let stored = 0;
    for (const f of readdirSync(out)) {
      const buf = readFileSync(join(out, f));
      for (let p = 0; p < buf.length; p = skipValue(buf, p)) stored++;
    }
    if (stored < g.records) throw new Error(`the sink holds ${stored} records, ${g.records} were acked`);
    return {
      records_per_s: g.records_per_s,
      mb_per_s: g.mb_per_s,
      relay_cpu_us_per_record: (cpu / g.records) * 1e6,
      relay_peak_rss_mb: peakRssMb(a.child.pid!),
      ack_ms_p50: g.ack_ms_p50,
      ack_ms_p99: g.ack_ms_p99,
    };
  } finally {
    await a.stop();
    await b.stop();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const modes = process.argv.slice(2).length ? process.argv.slice(2) : ['text', 'gzip'];
const events = eventsFile();
const rows: string[] = [];
for (const mode of modes) {
  const runs: Result[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await runOnce(mode, events);
    runs.push(r);
    process.stderr.write(`relay ${mode} run ${i + 1}/${RUNS}: ${Math.round(r.records_per_s)} rec/s, relay ${r.relay_cpu_us_per_record.toFixed(2)} us CPU/rec\n`);
  }
  const m = (k: keyof Result) => median(runs.map((r) => r[k]));
  rows.push(
    `| forward -> forward (compress ${mode}, ack) -> msgpack file | ${Math.round(m('records_per_s')).toLocaleString('en')} | ${m('mb_per_s').toFixed(1)} | ${m('relay_cpu_us_per_record').toFixed(2)} | ${m('relay_peak_rss_mb').toFixed(0)} | ${m('ack_ms_p50').toFixed(1)} / ${m('ack_ms_p99').toFixed(1)} |`,
  );
}
process.stdout.write(
  [
    `node ${process.version}, ${readFileSync(events, 'utf8').split('\n').filter(Boolean).length} records/run, median of ${RUNS} runs`,
    '| chain | records/s (end to end) | MB/s into the relay | relay CPU µs/record | relay peak RSS MB | ack ms p50 / p99 |',
    '|---|---|---|---|---|---|',
    ...rows,
  ].join('\n') + '\n',
);
