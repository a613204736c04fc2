/**
 * Child processes of the e2e tests: wait until one answers its readiness URL, and stop one.
 */
import type { ChildProcess } from 'node:child_process';

/** Polls `url` until it answers 2xx; fails with the process's output if it exits or the time runs out. */
export async function waitReady(proc: ChildProcess, url: string, what: string, log: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`${what} did not start:\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM, then waits for the exit; nothing to do for a process that is gone. */
export async function stopChild(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  await exited;
}
