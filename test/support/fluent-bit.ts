/**
 * The real Fluent Bit (5.1.1, from test/e2e/setup.sh) as a child process for interop tests: a YAML
 * configuration written to a temporary folder, the process started, its log collected, waits for
 * a log line or its exit, and stop (SIGTERM, as Kubernetes does) or kill -9.
 *
 * Fluent Bit exits 0 even when a chunk was refused, so tests count what the receiver stored, and
 * use the log (`service has stopped (0 pending tasks)`, `cannot be retried`) only to explain.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { peerBinary } from './peers.js';

export type FluentBitConfig = {
  service?: Record<string, unknown>;
  parsers?: Array<Record<string, unknown>>;
  pipeline: { inputs: Array<Record<string, unknown>>; filters?: Array<Record<string, unknown>>; outputs: Array<Record<string, unknown>> };
};

/** Service settings for tests: quick flushes and retries, a short grace, info logs. */
export const testService = { flush: 0.5, grace: 2, log_level: 'info', 'scheduler.base': 1, 'scheduler.cap': 2 };

export class FluentBit {
  private text = '';
  readonly exited: Promise<number | null>;
  private waiters: Array<() => void> = [];

  private constructor(
    readonly proc: ChildProcess,
    readonly configFile: string,
  ) {
    const onData = (d: Buffer) => {
      this.text += String(d);
      if (this.text.length > 2_000_000) this.text = this.text.slice(-1_000_000);
      for (const w of this.waiters.splice(0)) w();
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    this.exited = new Promise((r) =>
      proc.once('exit', (code) => {
        for (const w of this.waiters.splice(0)) w();
        r(code);
      }),
    );
  }

  /** Writes `config` as `name`.yaml in `dir` and starts `fluent-bit -c` on it. */
  static start(config: FluentBitConfig, dir: string, name = 'fluent-bit'): FluentBit {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, stringify({ service: { ...testService, ...config.service }, ...(config.parsers ? { parsers: config.parsers } : {}), pipeline: config.pipeline }));
    const proc = spawn(peerBinary('fluent-bit'), ['-c', file], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    return new FluentBit(proc, file);
  }

  /** Starts a receiver and waits for its forward/http input to listen. */
  static async listening(config: FluentBitConfig, dir: string, name?: string, timeoutMs = 15_000): Promise<FluentBit> {
    const fb = FluentBit.start(config, dir, name);
    await fb.waitLog(/listening on /, timeoutMs);
    return fb;
  }

  get log(): string {
    return this.text;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Resolves once a log line matches `re`; rejects after `timeoutMs` or when Fluent Bit exits first. */
  async waitLog(re: RegExp, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.text.split('\n').find((l) => re.test(l));
      if (line !== undefined) return line;
      if (!this.running) throw new Error(`fluent-bit exited (${this.proc.exitCode ?? this.proc.signalCode}) before ${re}:\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`fluent-bit: ${re} not seen within ${timeoutMs} ms:\n${this.tail()}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Waits for the process to exit on its own (a tail with exit_on_eof); kills it after `timeoutMs`. */
  async waitExit(timeoutMs = 60_000): Promise<number | null> {
    const t = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }

  /** SIGTERM (Fluent Bit flushes within its grace period), SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (!this.running) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(t);
  }

  kill9(): Promise<number | null> {
    if (this.running) this.proc.kill('SIGKILL');
    return this.exited;
  }

  /** The last lines of the log, for failure messages. */
  tail(lines = 40): string {
    return this.text.split('\n').slice(-lines).join('\n');
  }

  /** Log lines at warn or error level, except the notice of a requested shutdown. */
  problems(): string[] {
    return this.text.split('\n').filter((l) => /\[ ?(warn|error)\]/.test(l) && !/service will shutdown in max/.test(l));
  }
}
