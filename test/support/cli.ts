/** Runs the logwarden CLI as a child process, as users do. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './paths.js';

export const bin = join(repoRoot, 'bin', 'logwarden.js');

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`logwarden ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** A long-running `logwarden run`; resolves once the log says it is running. */
export interface Daemon {
  child: ChildProcess;
  logs: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  waitLog(re: RegExp, ms?: number): Promise<string>;
}

export function startDaemon(config: string, env: Record<string, string> = {}): Promise<Daemon> {
  const child = spawn(process.execPath, [bin, 'run', '-c', config], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  const onData = (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    logs.push(...parts);
    for (const w of waiters.splice(0)) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const daemon: Daemon = {
    child,
    logs,
    async stop(signal = 'SIGTERM') {
      child.kill(signal);
      return exited;
    },
    async waitLog(re, ms = 15_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = logs.find((l) => re.test(l));
        if (hit) return hit;
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new Error(`log ${re} not seen (exit ${child.exitCode}):\n${logs.join('\n')}`);
        }
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
  };
  return daemon.waitLog(/logwarden running/).then(() => daemon);
}

export { freePort } from './harness.js';
