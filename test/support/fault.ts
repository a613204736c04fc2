/**
 * Fault-test harness: `logwarden run` as a real child process (bin/logwarden.js), its JSON logs,
 * its /metrics, its resident memory read from /proc/PID/status, kill -9, and a forward client
 * (@fluent-org/logger) that records exactly which records were acked.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { FluentClient, EventTime as FluentEventTime } from '@fluent-org/logger';
import { repoRoot } from './paths.js';

export { freePort } from './harness.js';

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

export class LogwardenProcess {
  readonly logs: LogLine[] = [];
  readonly exited: Promise<number | null>;
  private text = '';
  inputs: Record<string, string> = {};
  httpUrl: string | undefined;

  private constructor(readonly proc: ChildProcess) {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += String(d);
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.text += `${line}\n`;
        if (this.text.length > 200_000) this.text = this.text.slice(-100_000);
        try {
          const l = JSON.parse(line) as LogLine;
          this.logs.push(l);
          if (l.msg === 'input started' && typeof l.input === 'string') this.inputs[l.input] = String((l.listen as string[])[0]);
          if (String(l.msg).startsWith('http server listening')) this.httpUrl = `http://${String(l.listen)}`;
        } catch {
          // not a log line
        }
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    this.exited = new Promise((r) => proc.once('exit', (code) => r(code)));
  }

  /**
   * Starts `logwarden run -c config` and waits for "logwarden running". With `containerLimit`
   * (bytes), it starts as the container does: through deploy/container/entrypoint.sh, which
   * derives the V8 heap flags from a cgroup memory limit of that size.
   */
  static async start(config: string, timeoutMs = 30_000, opts: { containerLimit?: number } = {}): Promise<LogwardenProcess> {
    const env: NodeJS.ProcessEnv = { ...process.env, CI: '1' };
    let proc: ChildProcess;
    if (opts.containerLimit !== undefined) {
      const cgroup = mkdtempSync(join(tmpdir(), 'logwarden-cgroup-'));
      writeFileSync(join(cgroup, 'memory.max'), `${opts.containerLimit}\n`);
      proc = spawn('sh', [join(repoRoot, 'deploy', 'container', 'entrypoint.sh'), 'run', '-c', config], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...env, LOGWARDEN_HOME: repoRoot, LOGWARDEN_CGROUP_ROOT: cgroup, PATH: `${dirname(process.execPath)}:${env.PATH ?? ''}` },
      });
    } else {
      proc = spawn(process.execPath, [join(repoRoot, 'bin', 'logwarden.js'), 'run', '-c', config], { stdio: ['ignore', 'pipe', 'pipe'], env });
    }
    const p = new LogwardenProcess(proc);
    await p.waitLog((l) => l.msg === 'logwarden running', 'logwarden running', timeoutMs);
    return p;
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get output(): string {
    return this.text;
  }

  /** Port of an input, from its "input started" log line. */
  port(input = 'forward.0'): number {
    const a = this.inputs[input];
    if (!a) throw new Error(`input ${input} not started; logs:\n${this.text}`);
    return Number(a.split(':').pop());
  }

  async waitLog(pred: (l: LogLine) => boolean, what: string, timeoutMs = 30_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const l = this.logs.find(pred);
      if (l) return l;
      if (this.proc.exitCode !== null) throw new Error(`logwarden exited (${this.proc.exitCode}) before ${what}:\n${this.text}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${this.text.slice(-5000)}`);
      await sleep(20);
    }
  }

  /** Resident set size in bytes (VmRSS of /proc/PID/status). */
  rss(): number {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  }

  /** Sum of a metric's samples from /metrics whose labels include `labels`. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    if (!this.httpUrl) throw new Error('http_server is off');
    const text = await (await fetch(`${this.httpUrl}/metrics`)).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(name)) continue;
      const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const ls = m[2] ?? '';
      if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[3]);
    }
    return sum;
  }

  kill9(): Promise<number | null> {
    this.proc.kill('SIGKILL');
    return this.exited;
  }

  async stop(timeoutMs = 15_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(t);
  }
}

/** Samples a process's RSS every `everyMs`; `peak` is the largest seen. */
export class RssSampler {
  peak = 0;
  samples = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(p: LogwardenProcess, everyMs = 100) {
    const tick = () => {
      try {
        const r = p.rss();
        this.samples++;
        if (r > this.peak) this.peak = r;
      } catch {
        // exited
      }
    };
    tick();
    this.timer = setInterval(tick, everyMs);
  }

  stop(): number {
    clearInterval(this.timer);
    return this.peak;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function writeConfig(dir: string, yaml: string, name = 'pipeline.yaml'): string {
  const f = join(dir, name);
  writeFileSync(f, yaml);
  return f;
}

export interface FaultPipeline {
  /** `service` settings after the common ones (JSON logs at info, grace 2, storage.path buf): `key: value`. */
  service?: string[];
  /** /metrics served on 127.0.0.1 at an ephemeral port, for `metric()` (default on). */
  http?: boolean;
  /** The `inputs:` list indented by four spaces; by default one forward input with filesystem storage. */
  inputs?: string;
  /** More options for the default forward input: `key: value`. */
  input?: string[];
  /** The `filters:` list indented by four spaces. */
  filters?: string;
  /** The `outputs:` list indented by four spaces. */
  outputs: string;
}

/**
 * Writes the pipeline of a fault test: `logwarden run` logging JSON (which LogwardenProcess
 * reads), its chunks under `buf` in `dir`, receiving on forward inputs at ephemeral ports.
 */
export function writeFaultConfig(dir: string, p: FaultPipeline): string {
  const lines = (settings: string[] = [], indent: string) => settings.map((l) => `${indent}${l}\n`).join('');
  const http = (p.http ?? true) ? '  http_server: on\n  http_listen: 127.0.0.1\n  http_port: 0\n' : '';
  const inputs = p.inputs ?? `    - name: forward\n      listen: 127.0.0.1\n      port: 0\n${lines(p.input, '      ')}      storage.type: filesystem`;
  return writeConfig(
    dir,
    `service:
  log_format: json
  log_level: info
${http}  grace: 2
  storage.path: buf
${lines(p.service, '  ')}pipeline:
  inputs:
${inputs}
${p.filters ? `  filters:\n${p.filters}\n` : ''}  outputs:
${p.outputs}
`,
  );
}

/**
 * Sends records with acks through @fluent-org/logger and records which ones were acked. `records`
 * yields [seq, record]; at most `inFlight` records are unacked at once. `stop()` makes it stop
 * emitting (after a kill); `done` resolves once every emitted record has settled.
 */
export class AckingSender {
  readonly acked = new Set<number>();
  readonly failed = new Set<number>();
  emitted = 0;
  private stopped = false;
  private readonly client: FluentClient;

  constructor(
    port: number,
    private readonly o: { tag: string; chunk?: number; inFlight?: number; ackTimeoutMs?: number; mode?: 'Forward' | 'PackedForward' } = { tag: 'fault' },
  ) {
    const chunk = o.chunk ?? 500;
    const ackTimeout = o.ackTimeoutMs ?? 5000;
    this.client = new FluentClient(undefined, {
      eventMode: o.mode ?? 'PackedForward',
      socket: { host: '127.0.0.1', port, timeout: ackTimeout, reconnect: { backoff: 2, delay: 100, maxDelay: 500 } },
      ack: { ackTimeout },
      flushInterval: 5,
      sendQueueSyncFlushLimit: { length: chunk },
      sendQueueIntervalFlushLimit: { length: chunk },
      disconnect: { waitForPending: false, waitForPendingDelay: 0, socketDisconnectDelay: 0 },
    });
  }

  stop(): void {
    this.stopped = true;
  }

  /** Emits every record unless stopped; resolves when all emitted records have settled. */
  async send(records: Iterable<[number, Record<string, unknown>]>, onAck?: (n: number) => void): Promise<void> {
    const inFlight = this.o.inFlight ?? 5000;
    const pending = new Set<Promise<void>>();
    for (const [seq, rec] of records) {
      if (this.stopped) break;
      const now = Date.now();
      const p = this.client
        .emit(this.o.tag, rec, new FluentEventTime(Math.floor(now / 1000), (now % 1000) * 1e6 + (seq % 1e6)))
        .then(() => {
          this.acked.add(seq);
          onAck?.(this.acked.size);
        })
        .catch(() => {
          this.failed.add(seq);
        })
        .finally(() => pending.delete(p));
      pending.add(p);
      this.emitted++;
      while (pending.size >= inFlight && !this.stopped) await Promise.race(pending);
    }
    await Promise.allSettled([...pending]);
  }

  async close(): Promise<void> {
    await Promise.race([this.client.disconnect().catch(() => undefined), sleep(2000)]);
    await Promise.race([this.client.shutdown().catch(() => undefined), sleep(2000)]);
  }
}

/** Counts `"seq":N` records in JSON-lines text; a line cut by a kill is not a record. */
export function countSeqs(text: string, re = /\{"seq":(\d+),"pad":"x+"\}/g): Map<number, number> {
  const seen = new Map<number, number>();
  for (const m of text.matchAll(re)) {
    const n = Number(m[1]);
    seen.set(n, (seen.get(n) ?? 0) + 1);
  }
  return seen;
}
