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
import type { InputContext, InputInstance, InputPlugin } from '../../core/plugin.js';
import { FrameTooLarge, Framer, MalformedFrame } from './framer.js';
import { answerPing, newHandshake, type AuthConfig, type HandshakeState } from './handshake.js';
import { decodeFrame, ProtocolError } from './protocol.js';
import {
  addressesOf,
  guardServer,
  listen,
  listenOptions,
  resolveTlsPaths,
  serverTlsOptions,
  tlsServerOptions,
  validateTlsServer,
  type ListenConfig,
  type TlsServerConfig,
} from '../listener.js';

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
  connection_limit: { type: 'int', default: 1024, min: 1, description: 'Connections accepted at once; more are closed with a log line' },
  receive_timeout: {
    type: 'duration',
    default: 60,
    description: 'A connection that holds a partial frame (or has not finished the handshake) this long without new bytes is closed',
  },
} satisfies OptionTable;

interface ForwardConfig extends ListenConfig, TlsServerConfig {
  unix_path?: string;
  unix_perm?: string;
  tag?: string;
  tag_prefix?: string;
  buffer_chunk_size: number;
  buffer_max_size: number;
  shared_key?: string;
  empty_shared_key: boolean;
  self_hostname: string;
  'security.users'?: string[];
  connection_limit: number;
  receive_timeout: number;
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

  constructor(
    private readonly c: ForwardConfig,
    private readonly ctx: InputContext,
  ) {
    this.auth = authOf(c);
    this.m = { ...ctx.metrics.inputSeries(ctx.id), authFail: (reason: string) => ctx.metrics.inputAuthFailures.labels(ctx.id, reason) };
    this.tlsOptions = serverTlsOptions(c);
    ctx.flow.on('pause', this.onPause);
    ctx.flow.on('resume', this.onResume);
  }

  private readonly onPause = (who: string, why: string): void => {
    this.ctx.logger.warn({ by: who, why }, 'backpressure: pausing reads from senders');
    this.m.paused.set(1);
    for (const s of this.sockets) s.pause();
  };

  private readonly onResume = (): void => {
    this.ctx.logger.info('backpressure released: resuming reads');
    this.m.paused.set(0);
    for (const s of this.sockets) s.resume();
  };

  async start(): Promise<void> {
    const handler = (socket: net.Socket) => this.accept(socket);
    const server = this.tlsOptions ? tls.createServer(this.tlsOptions, handler) : net.createServer(handler);
    guardServer(server, {
      tls: this.tlsOptions !== undefined,
      maxConnections: this.c.connection_limit,
      limit: this.c.connection_limit,
      dropped: 'connection refused: connection_limit reached',
      error: this.m.error,
      logger: this.ctx.logger,
    });
    this.server = server;
    await listen(server, { host: this.c.listen, port: this.c.port, unixPath: this.c.unix_path, unixPerm: this.c.unix_perm }, this.ctx.logger);
    this.ctx.logger.info(
      { listen: this.addresses(), tls: this.c.tls, auth: this.auth ? (this.auth.users.length ? 'shared_key+users' : 'shared_key') : 'none' },
      'forward input listening',
    );
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
    const closed = new Promise<void>((r) => server.close(() => r()));
    // Connections stay open while their chunks drain so acks can still be written; they are
    // ended once the engine has settled them (or at exit). Stop reading new data now.
    for (const s of this.sockets) s.pause();
    setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, (this.ctx.service.grace + 1) * 1000).unref();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 100))]);
  }

  private accept(socket: net.Socket): void {
    // A client certificate that failed tls.verify: guardServer has closed the connection.
    if (socket.destroyed) return;
    const log = this.ctx.logger;
    const remote = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : (this.c.unix_path ?? 'unix');
    this.sockets.add(socket);
    this.m.connections.inc();
    if (this.ctx.flow.paused) socket.pause();
    const framer = new Framer(this.c.buffer_chunk_size, this.c.buffer_max_size);
    let hs: HandshakeState | null = null;
    if (this.auth) {
      const h = newHandshake(this.auth);
      hs = h.state;
      socket.write(h.helo);
    }
    let authed = this.auth === null;
    let dead = false;
    const kill = (reason: string, message: string, extra: Record<string, unknown> = {}) => {
      if (dead) return;
      dead = true;
      this.m.error(reason).inc();
      log.warn({ remote, reason, ...extra }, `closing connection: ${message}`);
      socket.destroy();
    };

    const timeoutMs = this.c.receive_timeout * 1000;
    socket.setTimeout(timeoutMs);
    socket.on('timeout', () => {
      if (!authed) kill('timeout', `no handshake within ${this.c.receive_timeout}s`);
      else if (framer.buffered > 0) kill('timeout', `partial frame stalled for ${this.c.receive_timeout}s`, { buffered: framer.buffered });
    });

    const onFrame = (frame: Buffer): void => {
      if (dead) return;
      const msg = decodeFrame(frame);
      if (msg.type === 'heartbeat') return;
      if (msg.type === 'ping') {
        if (!this.auth || !hs || authed) throw new ProtocolError('unexpected PING', 'bad_handshake');
        const r = answerPing(this.auth, hs, msg);
        socket.write(r.pong);
        if (!r.ok) {
          this.m.authFail(r.metric).inc();
          dead = true;
          log.warn({ remote, client_hostname: msg.hostname.toString('utf8'), username: msg.username.toString('utf8') || undefined, reason: r.reason }, 'forward handshake failed');
          socket.end();
          setTimeout(() => socket.destroy(), 1000).unref();
          return;
        }
        authed = true;
        log.debug({ remote, client_hostname: msg.hostname.toString('utf8'), username: r.username || undefined }, 'forward handshake ok');
        return;
      }
      if (!authed) throw new ProtocolError('data before the handshake completed', 'bad_handshake');
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
                if (!socket.destroyed) kill('commit_failed', `chunk not committed (${reason}); not acked, the sender will resend`, { chunk });
              }
            },
      );
      try {
        this.ctx.ingest(events, commit, frame.length);
      } catch (e) {
        // Whatever throws under one chunk fails that chunk (not acked: the sender resends).
        commit.release(false, `internal error: ${(e as Error)?.message ?? String(e)}`, false);
        throw e;
      }
      commit.release();
    };

    socket.on('data', (data: Buffer) => {
      if (dead) return;
      try {
        framer.push(data, onFrame);
      } catch (e) {
        if (e instanceof FrameTooLarge) kill('too_large', `incoming data exceed limit: ${e.message}`, { buffer_max_size: this.c.buffer_max_size });
        else if (e instanceof ProtocolError) kill(e.reason, `malformed message: ${e.message}`);
        else if (e instanceof MalformedFrame) kill('malformed', `malformed msgpack: ${e.message}`);
        else kill('malformed', `cannot decode message: ${(e as Error).message}`);
      }
    });
    socket.on('error', (e) => {
      if (!dead) log.debug({ remote, err: e.message }, 'connection error');
    });
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.m.connections.dec();
      if (framer.buffered > 0 && !dead) {
        this.m.error('truncated').inc();
        log.warn({ remote, buffered: framer.buffered }, 'connection closed in the middle of a frame; partial frame discarded');
      }
    });
  }
}

export const forwardInput: InputPlugin<ForwardConfig> = {
  kind: 'input',
  name: 'forward',
  description: 'Receives Fluentd Forward Protocol v1 from Fluent Bit, Fluentd and forward clients (TCP, TLS, Unix socket)',
  options,
  validate(c, section) {
    validateTlsServer(c, section);
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
  },
  create(c, ctx) {
    // The socket path, like the TLS files, is relative to the config file.
    const resolved: ForwardConfig = { ...resolveTlsPaths(c, ctx.baseDir), unix_path: c.unix_path === undefined ? undefined : resolve(ctx.baseDir, c.unix_path) };
    return new ForwardInput(resolved, ctx);
  },
};
