/**
 * A real Grafana Loki 2.8.0 for the e2e tests: the binary from test/e2e/setup.sh (peerBinary), a
 * configuration derived from test/fixtures/loki/loki-local.yaml with its own free HTTP and gRPC
 * ports, its own data folder and the test's limits, started once per test file and read back
 * through Loki's query API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import YAML from 'yaml';
import { freePort, tempDir } from './harness.js';
import { repoRoot } from './paths.js';
import { peerBinary } from './peers.js';

export interface RealLokiOptions {
  /** Loki's auth_enabled: every request needs X-Scope-OrgID. */
  authEnabled?: boolean;
  /** Merged into limits_config. */
  limits?: Record<string, unknown>;
  /** Per-tenant limits (Loki's runtime overrides file). */
  overrides?: Record<string, Record<string, unknown>>;
  /** Merged into the ingester section (chunk_block_size...). */
  ingester?: Record<string, unknown>;
}

export interface LokiAnswer {
  status: number;
  body: string;
  headers: Record<string, string>;
}

export interface QueriedEntry {
  labels: Record<string, string>;
  /** Nanoseconds since the epoch. */
  ts: bigint;
  line: string;
}

export class RealLoki {
  private exited: Promise<void>;

  private constructor(
    readonly proc: ChildProcess,
    readonly port: number,
    readonly dir: string,
  ) {
    this.exited = new Promise((r) => proc.once('exit', () => r()));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Loki's own log so far (for failure messages). */
  log(): string {
    try {
      return readFileSync(join(this.dir, 'loki.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Writes the configuration, starts Loki and waits until GET /ready answers `ready`. */
  static async start(opts: RealLokiOptions = {}, readyWithinMs = 60_000): Promise<RealLoki> {
    const dir = tempDir('logwarden-loki-');
    const data = join(dir, 'data');
    mkdirSync(data);
    const [httpPort, grpcPort] = [await freePort(), await freePort()];
    const cfg = YAML.parse(readFileSync(join(repoRoot, 'test', 'fixtures', 'loki', 'loki-local.yaml'), 'utf8')) as Record<string, any>;
    cfg.auth_enabled = opts.authEnabled ?? false;
    cfg.server.http_listen_port = httpPort;
    cfg.server.grpc_listen_port = grpcPort;
    cfg.server.log_level = 'warn';
    cfg.common.path_prefix = data;
    cfg.common.storage.filesystem = { chunks_directory: join(data, 'chunks'), rules_directory: join(data, 'rules') };
    cfg.limits_config = { ...cfg.limits_config, ...opts.limits };
    // Ready at once instead of after Loki's default 15 s, and no sleep at shutdown.
    cfg.ingester = { lifecycler: { min_ready_duration: '0s', final_sleep: '0s' }, ...opts.ingester };
    if (opts.overrides) {
      const file = join(dir, 'overrides.yaml');
      writeFileSync(file, YAML.stringify({ overrides: opts.overrides }));
      cfg.runtime_config = { file, period: '1s' };
    }
    const file = join(dir, 'loki.yaml');
    writeFileSync(file, YAML.stringify(cfg));
    const out = openSync(join(dir, 'loki.log'), 'a');
    const proc = spawn(peerBinary('loki'), [`-config.file=${file}`], { stdio: ['ignore', out, out] });
    const loki = new RealLoki(proc, httpPort, dir);
    const deadline = Date.now() + readyWithinMs;
    let exited = false;
    proc.once('exit', () => (exited = true));
    for (;;) {
      if (exited) throw new Error(`loki exited before it was ready:\n${loki.log().slice(-3000)}`);
      try {
        const res = await request(`${loki.url}/ready`);
        const text = await res.body.text();
        if (res.statusCode === 200 && text.trim() === 'ready') return loki;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await loki.stop();
        throw new Error(`loki not ready within ${readyWithinMs} ms:\n${loki.log().slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** POSTs a raw push body and returns Loki's answer as it is. */
  async push(body: Uint8Array | string, headers: Record<string, string>, path = '/loki/api/v1/push'): Promise<LokiAnswer> {
    const res = await request(`${this.url}${path}`, { method: 'POST', body, headers });
    const text = await res.body.text();
    const h: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h[k] = v;
    return { status: res.statusCode, body: text, headers: h };
  }

  /**
   * Every entry matching `query` between `startNs` and `endNs` (default: the last 3 h up to 10 min
   * ahead), oldest first, read with one query_range of up to 5000 entries (Loki's
   * max_entries_limit_per_query): a result that large fails, so tests keep their queries narrower.
   */
  async entries(query: string, opts: { tenant?: string; startNs?: bigint; endNs?: bigint } = {}): Promise<QueriedEntry[]> {
    const now = BigInt(Date.now()) * 1_000_000n;
    const start = opts.startNs ?? now - 3n * 3600n * 1_000_000_000n;
    const end = opts.endNs ?? now + 600n * 1_000_000_000n;
    const params = new URLSearchParams({ query, start: String(start), end: String(end), limit: '5000', direction: 'forward' });
    const res = await request(`${this.url}/loki/api/v1/query_range?${params}`, { headers: opts.tenant ? { 'x-scope-orgid': opts.tenant } : {} });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`query_range ${query}: HTTP ${res.statusCode}: ${text}`);
    const doc = JSON.parse(text) as { data: { result: Array<{ stream: Record<string, string>; values: Array<[string, string]> }> } };
    const out: QueriedEntry[] = [];
    for (const r of doc.data.result) for (const [ts, line] of r.values) out.push({ labels: r.stream, ts: BigInt(ts), line });
    if (out.length >= 5000) throw new Error(`query_range ${query}: 5000 entries or more, narrow the query`);
    return out.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  }

  /** Polls `entries(query)` until there are at least `n` (or the time is up); returns the last read. */
  async waitForEntries(query: string, n: number, opts: { tenant?: string; ms?: number } = {}): Promise<QueriedEntry[]> {
    const deadline = Date.now() + (opts.ms ?? 15_000);
    for (;;) {
      const got = await this.entries(query, opts.tenant ? { tenant: opts.tenant } : {});
      if (got.length >= n || Date.now() > deadline) return got;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(t);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
