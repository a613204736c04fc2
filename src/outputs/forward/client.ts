/**
 * One connection to a forward server, client side of Forward Protocol v1:
 * - connect over TCP, TLS or a Unix socket within net.connect_timeout;
 * - with a shared key, the handshake of ./handshake.ts (HELO, PING, PONG with the server's
 *   digest checked), every handshake value read as the bytes it is on the wire;
 * - one request in flight: write a frame; with `chunk`, wait for `{ack: chunk}` within
 *   net.io_timeout. Anything else from the server closes the connection.
 * Every failure is a DeliveryError (retryable: the engine retries, the output fails over).
 */
import net from 'node:net';
import tls from 'node:tls';
import { DeliveryError } from '../../core/plugin.js';
import { decode } from '../../core/msgpack.js';
import { decodeRaw } from '../../core/msgpack-scan.js';
import { Framer } from '../../forward-protocol/framer.js';
import { buildPing, checkPong, describeRaw, HandshakeError, readHelo, type Auth } from './handshake.js';

export type { Auth } from './handshake.js';

export interface Endpoint {
  /** For messages: `host:port` or the socket path. */
  label: string;
  host?: string;
  port?: number;
  path?: string;
  tls?: tls.ConnectionOptions;
}

export interface ClientTimeouts {
  connectMs: number;
  ioMs: number;
}

/** Replies are tiny ({ack}, HELO, PONG); a server sending more than this is not a forward server. */
const MAX_REPLY = 64 * 1024;

function describe(frame: Buffer): string {
  try {
    return describeRaw(decodeRaw(frame));
  } catch {
    return `<${frame.length} unreadable bytes>`;
  }
}

function textOf(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  return undefined;
}

function describeValue(v: unknown): string {
  try {
    const s = JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x instanceof Uint8Array ? `<${x.length} bytes>` : x));
    return s.length > 200 ? `${s.slice(0, 200)}...` : s;
  } catch {
    return typeof v;
  }
}

export class ForwardConnection {
  private readonly framer = new Framer(1024, MAX_REPLY);
  /** Whole frames from the server, not yet read. */
  private replies: Buffer[] = [];
  private waiter: ((err?: DeliveryError) => void) | undefined;
  private failure: DeliveryError | undefined;
  /** The server said keepalive false in HELO: use the connection for one request only. */
  keepalive = true;
  /** Requests sent on this connection (a reused connection may have been closed by the server). */
  used = 0;

  private constructor(
    private readonly socket: net.Socket,
    readonly endpoint: Endpoint,
    private readonly timeouts: ClientTimeouts,
    onUnsolicited: (err: DeliveryError) => void,
  ) {
    socket.on('data', (d: Buffer) => {
      if (this.failure) return;
      try {
        this.framer.push(d, (frame) => {
          this.replies.push(Buffer.from(frame));
        });
      } catch (e) {
        this.fail(new DeliveryError(`${endpoint.label}: unreadable reply from server: ${(e as Error).message}`, true, 'protocol'));
        return;
      }
      if (this.waiter) this.wake();
      else if (this.replies.length) {
        // Nobody asked: the server speaks out of turn (a HELO when no shared_key is set, a stray ack).
        const err = new DeliveryError(`${endpoint.label}: unexpected message from server: ${describe(this.replies[0]!)}${unexpectedHint(safeDecode(this.replies[0]!))}`, true, 'protocol');
        this.fail(err);
        onUnsolicited(err);
      }
    });
    socket.on('error', (e: NodeJS.ErrnoException) => this.fail(transportError(endpoint, e)));
    socket.on('close', () => this.fail(new DeliveryError(`${endpoint.label}: connection closed by the server`, true, 'connection')));
  }

  get alive(): boolean {
    return this.failure === undefined && !this.socket.destroyed;
  }

  private wake(err?: DeliveryError): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.(err);
  }

  private fail(err: DeliveryError): void {
    if (this.failure) return;
    this.failure = err;
    this.socket.destroy();
    this.wake(err);
  }

  /** Calls `f` once the connection is closed (by either side). */
  onClose(f: () => void): void {
    if (this.socket.destroyed) f();
    else this.socket.once('close', f);
  }

  /**
   * Closes an idle connection cleanly: TCP FIN, and TLS close_notify first (Fluent Bit logs an
   * error for a TLS connection that just disappears). Destroyed if still open after a second.
   */
  end(): void {
    if (this.failure) return;
    this.failure = new DeliveryError(`${this.endpoint.label}: connection closed`, true, 'connection');
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.wake(this.failure);
  }

  destroy(): void {
    this.fail(new DeliveryError(`${this.endpoint.label}: connection closed`, true, 'connection'));
  }

  /** Opens a connection and runs the handshake when `auth` is set; `signal` abandons both. */
  static async open(endpoint: Endpoint, auth: Auth | undefined, timeouts: ClientTimeouts, onUnsolicited: (err: DeliveryError) => void, signal?: AbortSignal): Promise<ForwardConnection> {
    const socket = await connect(endpoint, timeouts.connectMs, signal);
    socket.setNoDelay(true);
    const c = new ForwardConnection(socket, endpoint, timeouts, onUnsolicited);
    if (auth) {
      const cut = () => c.destroy();
      signal?.addEventListener('abort', cut, { once: true });
      try {
        await c.handshake(auth);
      } catch (e) {
        c.destroy();
        throw e;
      } finally {
        signal?.removeEventListener('abort', cut);
      }
    }
    return c;
  }

  /** Next reply from the server, or a DeliveryError after `ms` / when the connection fails. */
  private async next(ms: number, what: string, option: string): Promise<Buffer> {
    for (;;) {
      if (this.replies.length) return this.replies.shift()!;
      if (this.failure) throw this.failure;
      const err = await new Promise<DeliveryError | undefined>((resolve) => {
        const t = setTimeout(() => {
          this.waiter = undefined;
          resolve(new DeliveryError(`${this.endpoint.label}: no ${what} within ${option} (${ms / 1000}s)`, true, 'timeout'));
        }, ms);
        this.waiter = (e) => {
          clearTimeout(t);
          resolve(e);
        };
      });
      if (err) {
        if (err.reason === 'timeout') this.fail(err);
        throw err;
      }
    }
  }

  private protocolError(message: string, reason = 'protocol'): DeliveryError {
    const err = new DeliveryError(`${this.endpoint.label}: ${message}`, true, reason);
    this.fail(err);
    return err;
  }

  private async handshake(auth: Auth): Promise<void> {
    try {
      // Forward Protocol v1: the server sends HELO as soon as it accepts the connection.
      const helo = readHelo(await this.next(this.timeouts.connectMs, 'HELO (the server may not require a shared key)', 'net.connect_timeout'));
      if (!helo.keepalive) this.keepalive = false;
      const { ping, salt } = buildPing(auth, helo);
      this.socket.write(ping);
      let pong: Buffer;
      try {
        pong = await this.next(this.timeouts.ioMs, 'PONG', 'net.io_timeout');
      } catch (e) {
        // Fluent Bit's in_forward closes without a PONG when the shared key does not match.
        if (e instanceof DeliveryError && e.reason === 'connection') {
          throw new HandshakeError(`the server closed the connection after PING: authentication failed (Fluent Bit does this on a shared_key mismatch)`, 'auth');
        }
        throw e;
      }
      checkPong(pong, auth, helo, salt);
    } catch (e) {
      if (e instanceof HandshakeError) throw this.protocolError(e.message, e.reason);
      throw e;
    }
  }

  /**
   * Writes one frame (its parts corked into one segment train); with `chunk`, waits for the
   * matching ack. Resolves once written (no chunk) or acked.
   */
  async request(parts: Buffer[], chunk: string | undefined): Promise<void> {
    if (this.failure) throw this.failure;
    this.used++;
    const written = new Promise<void>((resolve, reject) => {
      this.socket.cork();
      for (let i = 0; i < parts.length; i++) {
        if (i === parts.length - 1) {
          this.socket.write(parts[i]!, (e) => (e ? reject(transportError(this.endpoint, e as NodeJS.ErrnoException)) : resolve()));
        } else this.socket.write(parts[i]!);
      }
      this.socket.uncork();
    });
    if (chunk === undefined) {
      // A destroyed socket calls the write callback with an error; a server that stops reading
      // would leave it pending, hence the timer.
      const t = setTimeout(
        () => this.fail(new DeliveryError(`${this.endpoint.label}: frame not written within net.io_timeout (${this.timeouts.ioMs / 1000}s): the server stopped reading`, true, 'timeout')),
        this.timeouts.ioMs,
      );
      try {
        await written;
      } catch (e) {
        throw this.failure ?? e;
      } finally {
        clearTimeout(t);
      }
      return;
    }
    written.catch(() => undefined);
    const frame = await this.next(this.timeouts.ioMs, `ack for chunk ${chunk}`, 'net.io_timeout');
    let reply: unknown;
    try {
      reply = decode(frame);
    } catch (e) {
      throw this.protocolError(`unreadable reply from server: ${(e as Error).message}`);
    }
    const ack = reply !== null && typeof reply === 'object' && !Array.isArray(reply) ? textOf((reply as Record<string, unknown>).ack) : undefined;
    if (ack === undefined) throw this.protocolError(`expected {ack: "${chunk}"}, got ${describeValue(reply)}${unexpectedHint(reply)}`, 'ack');
    if (ack !== chunk) throw this.protocolError(`ack mismatch: sent chunk ${chunk}, got ack ${ack}`, 'ack');
  }
}

function safeDecode(frame: Buffer): unknown {
  try {
    return decode(frame);
  } catch {
    return undefined;
  }
}

function unexpectedHint(v: unknown): string {
  if (Array.isArray(v) && v[0] === 'HELO') return ' — the server requires authentication: set shared_key (and username/password if it has users)';
  return '';
}

function transportError(endpoint: Endpoint, e: NodeJS.ErrnoException): DeliveryError {
  const code = e.code ?? '';
  if (/CERT|SSL|TLS|SELF_SIGNED|HOSTNAME|UNABLE_TO_|VERIFY|EPROTO/.test(code) || e.message.includes('TLS')) {
    return new DeliveryError(`${endpoint.label}: TLS error ${code}: ${e.message}`, true, 'tls');
  }
  return new DeliveryError(`${endpoint.label}: ${code ? `${code} ` : ''}${e.message}`, true, 'connection');
}

function connect(endpoint: Endpoint, timeoutMs: number, signal?: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DeliveryError(`${endpoint.label}: connect abandoned at shutdown`, true, 'shutdown'));
      return;
    }
    let socket: net.Socket;
    const event = endpoint.tls ? 'secureConnect' : 'connect';
    if (endpoint.path !== undefined) socket = net.connect({ path: endpoint.path });
    else if (endpoint.tls) socket = tls.connect({ host: endpoint.host, port: endpoint.port, ...endpoint.tls });
    else socket = net.connect({ host: endpoint.host!, port: endpoint.port! });
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(new DeliveryError(`${endpoint.label}: connect timeout (net.connect_timeout ${timeoutMs / 1000}s)`, true, 'timeout'));
    }, timeoutMs);
    const onAbort = () => {
      clearTimeout(timer);
      socket.destroy();
      reject(new DeliveryError(`${endpoint.label}: connect abandoned at shutdown`, true, 'shutdown'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const onError = (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(transportError(endpoint, e));
    };
    socket.once('error', onError);
    socket.once(event, () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
