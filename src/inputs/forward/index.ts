/**
 * The `forward` input: Fluentd Forward Protocol v1 as Fluent Bit 5.x and Fluentd speak it, over
 * TCP, TLS or a Unix socket. Option names and defaults follow Fluent Bit's in_forward.
 *
 * A chunk with a `chunk` option is acked ({ack: chunk}) only once it is committed by every
 * output it was routed to; a chunk whose commit fails is not acked and its connection is closed,
 * so the sender resends. Under backpressure the input stops reading its sockets (TCP flow control
 * reaches the sender) instead of closing them.
 */
import net from 'node:net';
import { resolve } from 'node:path';
import tls from 'node:tls';
import { ConfigError } from '../../config/errors.js';
import type { OptionTable } from '../../config/schema.js';
import { Commit } from '../../core/commit.js';
import { encode } from '../../core/msgpack.js';
import { clip } from '../../observe/log.js';
import { definePlugin, type InputContext, type InputInstance, type PluginConfig } from '../../core/plugin.js';
import { BudgetExhausted, BufferBudget, FrameTooLarge, Framer, MalformedFrame } from '../../forward-protocol/framer.js';
import { answerPing, newHandshake, type AuthConfig, type HandshakeState } from './handshake.js';
import { decodeFrame, FrameOverBudget, ProtocolError } from './protocol.js';
import { addressesOf, guardServer, SummarizedLog, listen, listenOptions, tlsServerOptions, prepareTlsServer } from '../listener.js';

const options = {
  ...listenOptions(24224),
  unix_path: { type: 'string', description: 'Listen on this Unix socket instead of TCP' },
  unix_perm: { type: 'string', description: 'Permissions of the Unix socket, octal (e.g. 0660)', check: (v) => (/^0?[0-7]{3}$/.test(String(v)) ? undefined : 'expected an octal mode like 0660') },
  tag_prefix: { type: 'string', description: 'Prefix added to the incoming tag' },
  buffer_chunk_size: { type: 'size', default: '1024000', min: 1024, description: 'Initial size of a connection buffer; it grows in steps up to buffer_max_size' },
  buffer_max_size: { type: 'size', default: '6144000', min: 1024, description: 'Largest frame accepted; a larger one closes that connection with a log line' },
  shared_key: { type: 'string', description: 'Shared key for the HELO/PING/PONG handshake' },
  empty_shared_key: { type: 'bool', default: false, description: 'Run the handshake with an empty shared key' },
  self_hostname: { type: 'string', default: 'localhost', description: 'Hostname this server announces in PONG (Fluent Bit default: localhost)' },
  'security.users': { type: 'multi', description: "Users for the handshake, each 'username password'" },
  ...tlsServerOptions('TLS'),
  connection_limit: {
    type: 'int',
    default: 1024,
    min: 1,
    description:
      'Connections that sent a complete message, at once; connections still in the TLS handshake, and connections that have not sent a complete message yet, each have as many slots of their own (when those are full the oldest is closed)',
  },
  receive_timeout: {
    type: 'duration',
    default: 60,
    description: 'A frame must be complete this long after its first byte, and a new connection must send a complete message within it; else the connection is closed',
  },
  'net.accept_timeout': {
    type: 'duration',
    fluentBit: 'time',
    default: 10,
    description: 'A connection must finish its TLS handshake and, with shared_key, its HELO/PING/PONG handshake this long after it was accepted (Fluent Bit: 10s)',
  },
} as const satisfies OptionTable;

const SUMMARIZED = new Set(['timeout', 'idle', 'connection_limit', 'memory_budget']);

/** Largest frame read before the handshake completes: a PING is a few hundred bytes. */
export const PING_MAX_SIZE = 4096;

type ForwardConfig = PluginConfig<'input', typeof options>;

/** One connection's phase and clocks (ms since epoch), checked by ForwardInput.sweep. */
interface Conn {
  /** Accepted, or (TLS) handshake done. */
  since: number;
  /** First byte of the frame being received; 0 between frames. */
  frameStart: number;
  /** Last bytes received. */
  last: number;
  authed: boolean;
  /** Has sent a complete message (holds one of connection_limit's slots). */
  established: boolean;
  /** Closes the connection with a log line (`summarize`: folded into one line per interval). */
  kill(reason: string, message: string, extra?: Record<string, unknown>, summarize?: boolean): void;
}

/** `username password`: the name up to the first blank, the password the rest (Fluent Bit splits once). */
function parseUser(entry: string): { name: string; password: string } | null {
  const m = /^(\S+)\s+(.*\S)\s*$/.exec(entry.trim());
  return m ? { name: m[1]!, password: m[2]! } : null;
}

function authOf(c: ForwardConfig): AuthConfig | null {
  const users = (c['security.users'] ?? []).map((u) => {
    const { name, password } = parseUser(u)!;
    return { name: Buffer.from(name), password: Buffer.from(password) };
  });
  if (c.shared_key === undefined && !c.empty_shared_key) return null;
  return { sharedKey: c.empty_shared_key ? '' : c.shared_key!, selfHostname: c.self_hostname, users };
}

class ForwardInput implements InputInstance {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly auth: AuthConfig | null;
  private readonly m;
  private readonly tlsOptions: tls.TlsOptions | undefined;
  /** Every open connection (insertion order: oldest first). */
  private readonly conns = new Map<net.Socket, Conn>();
  /** Connections without a complete message yet, oldest first. */
  private readonly fresh = new Set<net.Socket>();
  private established = 0;
  /** TCP connections of the TLS server still in their handshake, by remote address:port, oldest first. */
  private readonly handshaking = new Map<string, net.Socket>();
  /** Partial frames of all connections share a quarter of service.memory_limit. */
  private readonly budget: BufferBudget;
  /** What one frame's decoded events may take in memory: a quarter of service.memory_limit. */
  private readonly frameHeap: number;
  private readonly summarized: SummarizedLog;
  private sweeper: NodeJS.Timeout | undefined;
  private pausedAt = 0;

  constructor(
    private readonly c: ForwardConfig,
    private readonly ctx: InputContext,
    serverTls: tls.TlsOptions | undefined,
  ) {
    this.auth = authOf(c);
    this.m = { ...ctx.metrics.inputSeries(ctx.id), authFail: (reason: string) => ctx.metrics.inputAuthFailures.labels(ctx.id, reason) };
    if (serverTls) this.tlsOptions = { ...serverTls, handshakeTimeout: c['net.accept_timeout'] * 1000 };
    this.budget = new BufferBudget(Math.max(c.buffer_max_size, Math.floor(ctx.service.memory_limit / 4)));
    this.frameHeap = Math.floor(ctx.service.memory_limit / 4);
    this.summarized = new SummarizedLog(ctx.logger);
    ctx.flow.on('pause', this.onPause);
    ctx.flow.on('resume', this.onResume);
  }

  private readonly onPause = (who: string, why: string): void => {
    this.ctx.logger.warn({ by: who, why }, 'backpressure: pausing reads from senders');
    this.m.paused.set(1);
    this.pausedAt = Date.now();
    for (const s of this.sockets) s.pause();
  };

  private readonly onResume = (): void => {
    this.ctx.logger.info('backpressure released: resuming reads');
    this.m.paused.set(0);
    // Time spent paused does not count against a sender's frame or first message.
    if (this.pausedAt) {
      const shift = Date.now() - this.pausedAt;
      this.pausedAt = 0;
      for (const conn of this.conns.values()) {
        if (conn.frameStart) conn.frameStart += shift;
        if (!conn.established) conn.since += shift;
      }
    }
    for (const s of this.sockets) s.resume();
  };

  /**
   * connection_limit is reached and a new sender has a message: the established connection idle
   * the longest (between frames, for more than receive_timeout) is closed to make room. A sender
   * that keeps a connection open without using it reconnects when it has data again.
   */
  private evictIdle(): boolean {
    const now = Date.now();
    let victim: Conn | undefined;
    for (const conn of this.conns.values()) {
      if (conn.established && conn.frameStart === 0 && now - conn.last > this.c.receive_timeout * 1000 && (!victim || conn.last < victim.last)) victim = conn;
    }
    if (!victim) return false;
    victim.established = false;
    this.established--;
    victim.kill('idle', `idle for ${((now - victim.last) / 1000).toFixed(0)}s while connection_limit is reached: closing it for a new sender`, { limit: this.c.connection_limit }, true);
    return true;
  }

  /** Closes connections past their deadlines (see receive_timeout and net.accept_timeout). */
  private sweep(): void {
    const now = Date.now();
    const frameMs = this.c.receive_timeout * 1000;
    const acceptMs = this.c['net.accept_timeout'] * 1000;
    const paused = this.ctx.flow.paused;
    for (const conn of [...this.conns.values()]) {
      if (!conn.authed && now - conn.since > acceptMs) {
        conn.kill('timeout', `no handshake within net.accept_timeout (${this.c['net.accept_timeout']}s)`);
      } else if (paused) {
      } else if (conn.frameStart && now - conn.frameStart > frameMs) {
        conn.kill('timeout', `frame not complete within receive_timeout (${this.c.receive_timeout}s) of its first byte`);
      } else if (!conn.established && conn.frameStart === 0 && now - conn.since > frameMs) {
        conn.kill('idle', `no message within receive_timeout (${this.c.receive_timeout}s) of connecting`);
      }
    }
  }

  async start(): Promise<void> {
    const handler = (socket: net.Socket) => this.accept(socket);
    const server = this.tlsOptions ? tls.createServer(this.tlsOptions, handler) : net.createServer(handler);
    const limit = this.c.connection_limit;
    if (this.tlsOptions) {
      // Sockets still in the TLS handshake have slots of their own: silent clients cannot take
      // those of working senders, and each is closed after net.accept_timeout (guardServer).
      // When they are full the oldest is closed: a real client's handshake takes milliseconds.
      server.on('connection', (raw: net.Socket) => {
        if (raw.remoteAddress === undefined) return; // Unix socket: bounded by maxConnections only
        if (this.handshaking.size >= limit) {
          const [oldestKey, oldest] = this.handshaking.entries().next().value as [string, net.Socket];
          this.handshaking.delete(oldestKey);
          this.m.error('connection_limit').inc();
          this.summarized.warn('tls_pending', { remote: oldest.remoteAddress, limit }, 'closing connection: connection_limit connections are in their TLS handshake; closing the oldest');
          oldest.destroy();
        }
        const key = `${raw.remoteAddress}:${raw.remotePort}`;
        this.handshaking.set(key, raw);
        raw.once('close', () => {
          if (this.handshaking.get(key) === raw) this.handshaking.delete(key);
        });
      });
    }
    guardServer(server, {
      tls: this.tlsOptions !== undefined,
      maxConnections: (this.tlsOptions ? 3 : 2) * limit,
      limit,
      dropped: 'connection refused: connection_limit reached',
      error: this.m.error,
      logger: this.ctx.logger,
      summarized: this.summarized,
    });
    const tick = Math.min(1000, Math.max(20, (Math.min(this.c.receive_timeout, this.c['net.accept_timeout']) * 1000) / 4));
    this.sweeper = setInterval(() => this.sweep(), tick).unref();
    this.server = server;
    await listen(server, { host: this.c.listen, port: this.c.port, unixPath: this.c.unix_path, unixPerm: this.c.unix_perm }, this.ctx.logger, this.ctx.section);
    this.ctx.logger.info({ listen: this.addresses(), tls: this.c.tls, auth: this.auth ? (this.auth.users.length ? 'shared_key+users' : 'shared_key') : 'none' }, 'forward input listening');
  }

  addresses(): string[] {
    return addressesOf(this.server);
  }

  async stop(): Promise<void> {
    this.ctx.flow.off('pause', this.onPause);
    this.ctx.flow.off('resume', this.onResume);
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    clearInterval(this.sweeper);
    this.summarized.flush();
    const closed = new Promise<void>((r) => server.close(() => r()));
    // Connections stay open while their chunks drain so acks can still be written; they are
    // ended once the engine has settled them (or at exit). Stop reading new data now.
    for (const s of this.sockets) s.pause();
    setTimeout(
      () => {
        for (const s of this.sockets) s.destroy();
      },
      (this.ctx.service.grace + 1) * 1000,
    ).unref();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 100))]);
  }

  private accept(socket: net.Socket): void {
    // A client certificate that failed tls.verify: guardServer has closed the connection.
    if (socket.destroyed) return;
    const log = this.ctx.logger;
    const remote = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : (this.c.unix_path ?? 'unix');
    const isTls = this.tlsOptions !== undefined;
    if (isTls) this.handshaking.delete(`${socket.remoteAddress}:${socket.remotePort}`);
    // Slots of connections without a complete message: the oldest goes when they are full.
    if (this.fresh.size >= this.c.connection_limit) {
      const oldest = this.fresh.values().next().value as net.Socket;
      this.conns.get(oldest)?.kill('idle', 'no message yet and connection_limit new connections are waiting: closing the oldest', {}, true);
    }
    this.sockets.add(socket);
    this.fresh.add(socket);
    this.m.connections.inc();
    if (this.ctx.flow.paused) socket.pause();
    // Before the handshake completes only a PING is read.
    const framer = new Framer(this.c.buffer_chunk_size, this.auth ? Math.min(PING_MAX_SIZE, this.c.buffer_max_size) : this.c.buffer_max_size, this.budget);
    let hs: HandshakeState | null = null;
    if (this.auth) {
      const h = newHandshake(this.auth);
      hs = h.state;
      socket.write(h.helo);
    }
    let dead = false;
    const conn: Conn = {
      since: Date.now(),
      frameStart: 0,
      last: Date.now(),
      authed: this.auth === null,
      established: false,
      // Connections that never sent a complete message, timeouts and refusals come in floods:
      // those are summarized (the first line at once, then one per interval).
      kill: (reason, message, extra = {}, summarize = !conn.established || SUMMARIZED.has(reason)) => {
        if (dead) return;
        dead = true;
        this.m.error(reason).inc();
        if (summarize) this.summarized.warn(undefined, { remote, reason, ...extra }, `closing connection: ${message}`);
        else log.warn({ remote, reason, ...extra }, `closing connection: ${message}`);
        socket.destroy();
        framer.release();
      },
    };
    const kill = conn.kill;
    this.conns.set(socket, conn);

    const establish = (): boolean => {
      if (conn.established) return true;
      if (this.established >= this.c.connection_limit && !this.evictIdle()) {
        kill('connection_limit', 'connection_limit reached', { limit: this.c.connection_limit });
        return false;
      }
      conn.established = true;
      this.established++;
      this.fresh.delete(socket);
      return true;
    };

    const onFrame = (frame: Buffer): void => {
      if (dead) return;
      const msg = decodeFrame(frame, this.frameHeap, true);
      if (msg.type === 'heartbeat') return;
      if (!establish()) return;
      if (msg.type === 'ping') {
        if (!this.auth || !hs || conn.authed) throw new ProtocolError('unexpected PING', 'bad_handshake');
        const r = answerPing(this.auth, hs, msg);
        socket.write(r.pong);
        if (!r.ok) {
          this.m.authFail(r.metric).inc();
          dead = true;
          log.warn({ remote, client_hostname: clip(msg.hostname.toString('utf8')), username: clip(msg.username.toString('utf8')) || undefined, reason: r.reason }, 'forward handshake failed');
          socket.end();
          setTimeout(() => socket.destroy(), 1000).unref();
          return;
        }
        conn.authed = true;
        framer.maxSize = this.c.buffer_max_size;
        log.debug({ remote, client_hostname: clip(msg.hostname.toString('utf8')), username: clip(r.username) || undefined }, 'forward handshake ok');
        return;
      }
      if (!conn.authed) throw new ProtocolError('data before the handshake completed', 'bad_handshake');
      const events = msg.events;
      this.m.bytes.inc(frame.length);
      if (events.length === 0) {
        if (msg.chunk !== undefined) socket.write(encode({ ack: msg.chunk }));
        return;
      }
      const tag = this.c.tag ?? (this.c.tag_prefix ? this.c.tag_prefix + msg.tag : msg.tag);
      if (tag !== msg.tag) for (const ev of events) ev.tag = tag;
      this.m.records.inc(events.length);
      const chunk = msg.chunk;
      const commit = new Commit(
        chunk === undefined
          ? undefined
          : (ok, reason) => {
              if (ok) {
                if (!socket.destroyed) {
                  socket.write(encode({ ack: chunk }));
                  this.m.acks.inc();
                }
              } else {
                this.m.unacked.inc();
                if (!socket.destroyed) kill('commit_failed', `chunk not committed (${reason}); not acked, the sender will resend`, { chunk: clip(chunk) });
              }
            },
      );
      try {
        // Queues count the decoded bytes (an inflated CompressedPackedForward), not the wire bytes.
        this.ctx.ingest(events, commit, msg.size);
      } catch (e) {
        // Whatever throws under one chunk fails that chunk (not acked: the sender resends).
        commit.release(false, `internal error: ${(e as Error)?.message ?? String(e)}`, false);
        throw e;
      }
      commit.release();
    };

    socket.on('data', (data: Buffer) => {
      if (dead) return;
      conn.last = Date.now();
      const frames = framer.frames;
      try {
        framer.push(data, onFrame);
      } catch (e) {
        if (e instanceof FrameTooLarge) {
          if (!conn.authed) kill('too_large', `more than ${framer.maxSize} bytes before the handshake completed: ${e.message}`);
          else kill('too_large', `incoming data exceed limit: ${e.message}`, { buffer_max_size: this.c.buffer_max_size });
        } else if (e instanceof BudgetExhausted) {
          kill('memory_budget', `no memory for this frame: ${e.message} (a quarter of service.memory_limit)`);
        } else if (e instanceof FrameOverBudget) kill(e.reason, `frame refused: ${e.message}`);
        else if (e instanceof ProtocolError) kill(e.reason, `malformed message: ${clip(e.message)}`);
        else if (e instanceof MalformedFrame) kill(e.reason, `${e.reason === 'malformed' ? 'malformed msgpack' : 'refused message'}: ${e.message}`);
        else kill('malformed', `cannot decode message: ${clip((e as Error).message)}`);
        return;
      }
      // A frame's clock starts at its first byte: here, when this segment began a new one.
      if (framer.buffered === 0) conn.frameStart = 0;
      else if (conn.frameStart === 0 || framer.frames !== frames) conn.frameStart = Date.now();
    });
    socket.on('error', (e) => {
      if (!dead) log.debug({ remote, err: e.message }, 'connection error');
    });
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.conns.delete(socket);
      this.fresh.delete(socket);
      if (conn.established) this.established--;
      this.m.connections.dec();
      if (framer.buffered > 0 && !dead) {
        this.m.error('truncated').inc();
        log.warn({ remote, buffered: framer.buffered }, 'connection closed in the middle of a frame; partial frame discarded');
      }
      framer.release();
    });
  }
}

export const forwardInput = definePlugin({
  kind: 'input',
  name: 'forward',
  description: 'Receives Fluentd Forward Protocol v1 from Fluent Bit, Fluentd and forward clients (TCP, TLS, Unix socket)',
  options,
  prepare(c, section) {
    const serverTls = prepareTlsServer(c, section);
    if (c.shared_key !== undefined && c.empty_shared_key) {
      throw new ConfigError('set shared_key or empty_shared_key, not both', section.keyPos.empty_shared_key ?? section.pos, 'empty_shared_key');
    }
    for (const u of c['security.users'] ?? []) {
      if (!parseUser(u)) {
        throw new ConfigError(`found '${u}', expected 'username password'`, section.valuePos['security.users'] ?? section.pos, 'security.users');
      }
    }
    if (c['security.users']?.length && c.shared_key === undefined && !c.empty_shared_key) {
      // As Fluent Bit (fw.c): user authentication is part of the shared-key handshake.
      throw new ConfigError(
        'security.users is set but no shared_key or empty_shared_key (user authentication is part of the shared-key handshake)',
        section.keyPos['security.users'] ?? section.pos,
        'security.users',
      );
    }
    if (c.buffer_chunk_size > c.buffer_max_size) {
      throw new ConfigError('buffer_chunk_size must not exceed buffer_max_size', section.keyPos.buffer_chunk_size ?? section.pos, 'buffer_chunk_size');
    }
    return { config: c, serverTls };
  },
  create({ config: c, serverTls }, ctx) {
    // The socket path, like the TLS files, is relative to the config file.
    const resolved: ForwardConfig = { ...c, unix_path: c.unix_path === undefined ? undefined : resolve(ctx.baseDir, c.unix_path) };
    return new ForwardInput(resolved, ctx, serverTls);
  },
});
