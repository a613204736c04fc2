/**
 * The connections of the forward output to one node: where and how to connect (TCP, a Unix
 * socket, or TLS with the options and PEM files of outputs/tls.ts), and the connections kept open
 * between batches. Each connection (./client.ts) runs the handshake when it opens and carries one
 * request at a time, reading the ack when it asks for one; a pool keeps at most `maxIdle` of them
 * idle (the output's `workers`), each closed after `net.keepalive_idle_timeout` unused.
 */
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { DeliveryError } from '../../core/plugin.js';
import { type ClientTlsConfig, clientTlsConnect, type PosOf, readTlsFiles } from '../tls.js';
import { type Auth, type ClientTimeouts, type Endpoint, ForwardConnection } from './client.js';

/** The endpoint of a node, its TLS options built and PEM files read (relative to `baseDir`) when `tls` is on. */
export function endpointOf(c: ClientTlsConfig & { tls: boolean }, base: Omit<Endpoint, 'tls'>, baseDir: string, posOf: PosOf): Endpoint {
  if (!c.tls) return { ...base };
  const host = base.host ?? '';
  const tls: ConnectionOptions = clientTlsConnect(c, readTlsFiles(c, baseDir, posOf), { name: host, sni: !isIP(host) });
  return { ...base, tls };
}

export interface PoolSettings {
  timeouts: ClientTimeouts;
  keepalive: boolean;
  idleMs: number;
  /** At most this many idle connections are kept (one per batch in flight: the output's workers). */
  maxIdle: number;
  onUnsolicited: (err: DeliveryError) => void;
}

/** A connection taken from a pool for a sequence of requests. */
export interface Lease {
  conn: ForwardConnection;
  /** A kept connection: the server may have closed it while it sat idle. */
  reused: boolean;
}

/** The kept connections to one node. */
export class ConnectionPool {
  private readonly idle: ForwardConnection[] = [];
  /** Every open connection, idle or in use (closed with the output). */
  private readonly all = new Set<ForwardConnection>();
  private closed = false;
  private readonly idleTimers = new Map<ForwardConnection, NodeJS.Timeout>();

  constructor(
    private readonly endpoint: Endpoint,
    private readonly auth: Auth | undefined,
    private readonly settings: PoolSettings,
  ) {}

  /** A kept connection when one is alive, else a new one (connect + handshake). */
  async acquire(signal?: AbortSignal): Promise<Lease> {
    while (this.idle.length) {
      const conn = this.idle.pop()!;
      clearTimeout(this.idleTimers.get(conn));
      this.idleTimers.delete(conn);
      if (conn.alive) return { conn, reused: true };
    }
    return { conn: await this.open(signal), reused: false };
  }

  private async open(signal?: AbortSignal): Promise<ForwardConnection> {
    if (this.closed) throw new DeliveryError(`${this.endpoint.label}: output closed`, true, 'shutdown');
    const conn = await ForwardConnection.open(this.endpoint, this.auth, this.settings.timeouts, this.settings.onUnsolicited, signal);
    this.all.add(conn);
    conn.onClose(() => this.all.delete(conn));
    if (this.closed) conn.destroy();
    return conn;
  }

  /**
   * Runs one request on the lease's connection; `build` makes its parts (and the chunk id whose
   * ack is awaited) afresh for every attempt. A kept connection the server closed while it sat
   * idle gets one fresh connection, then the error counts against the node.
   */
  async request(lease: Lease, build: () => { parts: Buffer[]; chunk: string | undefined }, signal?: AbortSignal): Promise<void> {
    const attempt = () => {
      const { parts, chunk } = build();
      return lease.conn.request(parts, chunk);
    };
    try {
      await attempt();
    } catch (e) {
      if (!lease.reused || lease.conn.used !== 1 || !(e instanceof DeliveryError) || e.reason !== 'connection') throw e;
      lease.conn.destroy();
      lease.conn = await this.open(signal);
      lease.reused = false;
      await attempt();
    }
    lease.reused = false;
  }

  /** Gives a connection back after its requests: kept for the next batch, or closed. */
  release(lease: Lease): void {
    const conn = lease.conn;
    if (!conn.alive) {
      conn.destroy();
      return;
    }
    if (this.closed || !this.settings.keepalive || !conn.keepalive || this.idle.length >= this.settings.maxIdle) {
      conn.end();
      return;
    }
    this.idle.push(conn);
    const t = setTimeout(() => {
      this.idleTimers.delete(conn);
      const i = this.idle.indexOf(conn);
      if (i >= 0) this.idle.splice(i, 1);
      conn.end();
    }, this.settings.idleMs);
    t.unref();
    this.idleTimers.set(conn, t);
  }

  close(): void {
    this.closed = true;
    for (const t of this.idleTimers.values()) clearTimeout(t);
    this.idleTimers.clear();
    // Idle connections are closed cleanly; one still in a request is abandoned.
    for (const c of this.idle.splice(0)) c.end();
    for (const c of [...this.all]) c.destroy();
  }
}
