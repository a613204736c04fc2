/**
 * A real Alertmanager (Debian's prometheus-alertmanager, installed by test/e2e/setup.sh) on
 * loopback for end-to-end tests: start, stop, restart on the same port and data directory (a new
 * instance on the same port starts with an empty one: an Alertmanager that lost its state), read
 * back alerts from GET /api/v2/alerts and count what it received.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild, waitReady } from './child.js';

export const ALERTMANAGER_BINARY = '/usr/bin/prometheus-alertmanager';

export interface AmAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  status: { state: string };
}

export class Alertmanager {
  proc: ChildProcess | undefined;
  log = '';
  readonly dir = mkdtempSync(join(tmpdir(), 'logwarden-am-'));

  constructor(readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts (or restarts) on the same port and data directory. */
  async start(timeoutMs = 15_000): Promise<this> {
    const config = join(this.dir, 'alertmanager.yml');
    writeFileSync(config, 'route:\n  receiver: none\n  group_wait: 1h\nreceivers:\n  - name: none\n');
    this.proc = spawn(ALERTMANAGER_BINARY, [`--config.file=${config}`, `--storage.path=${join(this.dir, 'data')}`, `--web.listen-address=127.0.0.1:${this.port}`, '--cluster.listen-address='], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout!.on('data', (d) => (this.log += String(d)));
    this.proc.stderr!.on('data', (d) => (this.log += String(d)));
    await waitReady(this.proc, `${this.url}/-/ready`, 'alertmanager', () => this.log, timeoutMs);
    return this;
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    await stopChild(p);
  }

  async alerts(): Promise<AmAlert[]> {
    const res = await fetch(`${this.url}/api/v2/alerts`);
    if (res.status !== 200) throw new Error(`GET /api/v2/alerts: ${res.status}`);
    return (await res.json()) as AmAlert[];
  }

  /** alertmanager_alerts_received_total summed over statuses. */
  async received(): Promise<number> {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    let n = 0;
    for (const m of text.matchAll(/^alertmanager_alerts_received_total\{[^}]*\} (\S+)$/gm)) n += Number(m[1]);
    return n;
  }

  async waitFor(pred: (a: AmAlert[]) => boolean, what: string, timeoutMs = 10_000): Promise<AmAlert[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const a = await this.alerts();
      if (pred(a)) return a;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; alerts: ${JSON.stringify(a)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
