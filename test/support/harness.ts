/**
 * What every test harness needs: a plugin registry of just the plugins under test, a fresh
 * temporary directory, a free loopback port, a pino logger whose JSON lines the test can read,
 * and a metric's current value.
 */
import { mkdtempSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import type { AnyPlugin } from '../../src/core/plugin.js';
import type { Registry } from '../../src/core/plan.js';
import type { Metrics } from '../../src/observe/metrics.js';

/** A registry (as src/plugins.ts builds one) holding only `plugins`. */
export function registryOf(...plugins: AnyPlugin[]): Registry {
  return {
    find: (kind, name) => plugins.find((p) => p.kind === kind && p.name === name.toLowerCase()),
    names: (kind) => plugins.filter((p) => p.kind === kind).map((p) => p.name),
  };
}

export function tempDir(prefix = 'logwarden-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A logger at `level` whose lines land, parsed, in `logs`. */
export function jsonLogger(level = 'debug'): { logger: Logger; logs: Array<Record<string, unknown>> } {
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level }, sink), logs };
}

/** The current value of a metric, summed over the series whose labels include `labels` (0 when absent). */
export async function counterValue(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  let sum = 0;
  for (const v of values) {
    if (Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x)) sum += v.value;
  }
  return sum;
}

/**
 * A TCP server on 127.0.0.1 that accepts connections and never answers (a Loki or Alertmanager
 * that hangs): what an output sends there stays in flight until `release()` drops the
 * connections and stops listening.
 */
export async function silentServer(): Promise<{ port: number; received(): number; release(): void }> {
  const held = new Set<Socket>();
  let bytes = 0;
  const server = createServer((s) => {
    held.add(s);
    s.on('data', (d: Buffer) => (bytes += d.length));
    s.on('error', () => undefined);
    s.on('close', () => held.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    /** Bytes read from every connection so far. */
    received: () => bytes,
    release() {
      for (const s of held) s.destroy();
      if (server.listening) server.close();
    },
  };
}

/** Polls `check` every `everyMs` until it holds; fails naming `what` after `ms`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 5000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
