/**
 * What every listening input shares (`forward`, `http`, `k8s_audit_webhook`): the listen and TLS
 * options (Fluent Bit's names), their load-time checks, the server's TLS options with optional
 * client-certificate verification, counting and logging of failed TLS handshakes and of
 * connections beyond the limit, and binding to host:port or a Unix socket.
 */
import { readFileSync } from 'node:fs';
import { chmod, unlink } from 'node:fs/promises';
import type net from 'node:net';
import { resolve } from 'node:path';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import { ConfigError } from '../config/errors.js';
import { clip } from '../observe/log.js';
import type { OptionTable, RawSection } from '../config/schema.js';
import type { ConfigOf } from '../core/plugin.js';

export type ListenConfig = ConfigOf<ReturnType<typeof listenOptions>>;

export type TlsServerConfig = ConfigOf<ReturnType<typeof tlsServerOptions>>;

export function listenOptions(defaultPort: number) {
  return {
    listen: { type: 'string', default: '0.0.0.0', description: 'Address to listen on' },
    port: { type: 'int', default: defaultPort, min: 0, max: 65535, description: 'TCP port to listen on (0: any free port)' },
  } satisfies OptionTable;
}

/** `serve`: what tls on serves, for its description (TLS, HTTPS). */
export function tlsServerOptions(serve: string) {
  return {
    tls: { type: 'bool', default: false, description: `Serve ${serve}` },
    'tls.crt_file': { type: 'string', description: 'Server certificate (PEM)' },
    'tls.key_file': { type: 'string', description: 'Server private key (PEM)' },
    'tls.key_passwd': { type: 'string', description: 'Password of the private key' },
    'tls.ca_file': { type: 'string', description: 'CA bundle (PEM) that client certificates are verified against (default: the system CAs)' },
    'tls.verify': {
      type: 'bool',
      default: true,
      description: 'Verify a client certificate when the client presents one (Fluent Bit semantics); clients without one are accepted',
    },
    'tls.verify_client_cert': { type: 'bool', default: false, description: 'Require a client certificate (mutual TLS); it is verified as tls.verify says' },
  } satisfies OptionTable;
}

/**
 * Load-time checks of the TLS options (what tls on needs, files that cannot be read), then the
 * server's TLS options with the certificate files read, once, or undefined without tls. File
 * paths are relative to the config file.
 */
export function prepareTlsServer(c: TlsServerConfig, section: RawSection): tls.TlsOptions | undefined {
  if (c.tls && (!c['tls.crt_file'] || !c['tls.key_file'])) {
    throw new ConfigError('tls on needs tls.crt_file and tls.key_file', section.keyPos.tls ?? section.pos, 'tls');
  }
  if (c['tls.verify_client_cert'] && !c['tls.verify']) {
    throw new ConfigError(
      'tls.verify_client_cert on needs tls.verify on: a required client certificate that is not verified authenticates nobody',
      section.keyPos['tls.verify_client_cert'] ?? section.pos,
      'tls.verify_client_cert',
    );
  }
  const read = (k: 'tls.crt_file' | 'tls.key_file' | 'tls.ca_file'): Buffer | undefined => {
    const p = c[k];
    if (p === undefined) return undefined;
    try {
      return readFileSync(resolve(section.baseDir, p));
    } catch (e) {
      throw new ConfigError(`cannot read ${p}: ${(e as Error).message}`, section.valuePos[k] ?? section.pos, k);
    }
  };
  const cert = read('tls.crt_file');
  const key = read('tls.key_file');
  const ca = read('tls.ca_file');
  if (!c.tls) return undefined;
  return {
    cert,
    key,
    ...(c['tls.key_passwd'] ? { passphrase: c['tls.key_passwd'] } : {}),
    ...(ca ? { ca } : {}),
    // Node's rejectUnauthorized also refuses clients without a certificate, which is
    // tls.verify_client_cert; a presented certificate that fails verification under plain
    // tls.verify is refused by guardServer (rejectPeer).
    requestCert: c['tls.verify'],
    rejectUnauthorized: c['tls.verify'] && c['tls.verify_client_cert'],
  };
}

/**
 * Warnings that many connections may cause at once (refusals, timeouts): the first of each key is
 * logged at once, the others of the next `intervalMs` are counted and logged as one line. The key
 * defaults to the message with its numbers left out.
 */
export class SummarizedLog {
  private readonly pending = new Map<string, { count: number; fields: Record<string, unknown>; message: string; timer: NodeJS.Timeout | undefined }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
  ) {}

  warn(key: string | undefined, fields: Record<string, unknown>, message: string): void {
    key ??= message.replace(/[0-9.]+/g, '#').slice(0, 80);
    const p = this.pending.get(key);
    if (p) {
      p.count++;
      p.fields = fields;
      p.message = message;
      return;
    }
    this.logger.warn(fields, message);
    const entry = { count: 0, fields, message, timer: undefined as NodeJS.Timeout | undefined };
    entry.timer = setTimeout(() => this.report(key), this.intervalMs).unref();
    this.pending.set(key, entry);
  }

  private report(key: string): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    clearTimeout(p.timer);
    if (p.count === 0) return;
    this.logger.warn({ ...p.fields, count: p.count, interval_s: this.intervalMs / 1000 }, `${p.message} (and ${p.count} more like it in the last ${this.intervalMs / 1000}s; last one shown)`);
  }

  /** Logs what is counted now (at stop). */
  flush(): void {
    for (const key of [...this.pending.keys()]) this.report(key);
  }
}

/**
 * Under `tls.verify` without `tls.verify_client_cert`: the client certificate it presented did not
 * verify (a client that presented none passes). Returns the reason, or undefined when the
 * connection may go on.
 */
function rejectedPeer(socket: tls.TLSSocket): string | undefined {
  if (socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  return `client certificate rejected: ${String(socket.authorizationError ?? 'not verified')}`;
}

/**
 * Counts (`logwarden_input_errors_total` reasons `tls`, `connection_limit`) and logs what the
 * server refuses before the input sees a connection: failed or timed-out TLS handshakes (the
 * socket is closed: Node only reports a handshake timeout), and connections beyond
 * `maxConnections`, which Node closes at once (`dropped` is that log line). Both are logged
 * through `summarized`: many at once make one line per interval.
 */
export function guardServer(
  server: net.Server,
  o: {
    tls: boolean;
    maxConnections: number;
    limit: number;
    dropped: string;
    error: (reason: string) => { inc(): void };
    logger: Logger;
    summarized?: SummarizedLog;
  },
): void {
  const summarized = o.summarized ?? new SummarizedLog(o.logger);
  if (o.tls) {
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      o.error('tls').inc();
      summarized.warn(`tls:${err.code ?? err.message}`, { remote: socket.remoteAddress, err: clip(err.message) }, 'TLS handshake failed');
      socket.destroy();
    });
    // Before the input's own handler: a refused client never reaches it.
    server.prependListener('secureConnection', (socket: tls.TLSSocket) => {
      const why = rejectedPeer(socket);
      if (why === undefined) return;
      o.error('tls').inc();
      o.logger.warn({ remote: socket.remoteAddress, err: why }, 'TLS handshake failed');
      socket.destroy();
    });
  }
  server.maxConnections = o.maxConnections;
  server.on('drop', (d?: { remoteAddress?: string }) => {
    o.error('connection_limit').inc();
    summarized.warn('drop', { remote: d?.remoteAddress, limit: o.limit }, o.dropped);
  });
}

/**
 * Binds `server` to host:port, or to a Unix socket (a stale socket file is removed first; `perm`
 * is an octal mode such as 0660). Rejects when the bind fails; later errors are logged.
 */
export async function listen(
  server: net.Server,
  at: { host: string; port: number; unixPath?: string | undefined; unixPerm?: string | undefined },
  logger: Logger,
  section?: RawSection,
): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(section ? bindError(e, section, at.unixPath ? { path: at.unixPath, key: 'unix_path' } : { host: at.host, port: at.port, hostKey: 'listen', portKey: 'port' }) : e),
    );
    const done = () => {
      server.removeAllListeners('error');
      server.on('error', (e) => logger.error({ err: e.message }, 'listener error'));
      resolve();
    };
    if (at.unixPath) {
      const path = at.unixPath;
      unlink(path)
        .catch(() => undefined)
        .then(() => server.listen(path, done));
    } else server.listen(at.port, at.host, done);
  });
  if (at.unixPath && at.unixPerm) await chmod(at.unixPath, parseInt(at.unixPerm, 8));
}

/**
 * A failed bind as one configuration error at the option that chose the address (or at its
 * section when the address is a default): `file:line:col: port: 127.0.0.1:24224 is already in use
 * (EADDRINUSE)...` instead of a stack trace.
 */
export function bindError(e: NodeJS.ErrnoException, section: RawSection, at: { host: string; port: number; hostKey: string; portKey: string } | { path: string; key: string }): Error {
  const code = e.code ?? '';
  const isPath = 'path' in at;
  const key = isPath ? at.key : code === 'EADDRNOTAVAIL' ? at.hostKey : at.portKey;
  const where = isPath ? at.path : `${at.host.includes(':') ? `[${at.host}]` : at.host}:${at.port}`;
  const set = key in section.valuePos || key in section.keyPos;
  const pos = section.valuePos[key] ?? section.keyPos[key] ?? section.pos;
  const why =
    code === 'EADDRINUSE'
      ? `${where} is already in use (EADDRINUSE): another process listens there; stop it or choose another ${key}`
      : code === 'EACCES'
        ? `permission denied to listen on ${where} (EACCES)${!isPath && at.port < 1024 ? ': ports below 1024 need privileges' : ''}`
        : code === 'EADDRNOTAVAIL'
          ? `${where}: the address is not on this machine (EADDRNOTAVAIL)`
          : `cannot listen on ${where}: ${e.message}`;
  return new ConfigError(`${why}${set ? '' : ` (${key} not set: the default)`}`, pos, key);
}

/** Where a server listens, as host:port or the socket path; [] before it listens. */
export function addressesOf(server: net.Server | undefined): string[] {
  const a = server?.address();
  if (!a) return [];
  return [typeof a === 'string' ? a : `${a.address}:${a.port}`];
}
