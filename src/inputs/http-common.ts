/**
 * What the HTTP inputs (`http`, `k8s_audit_webhook`) share: the HTTP(S) server on the listener of
 * ./listener.ts, limits, timeouts, backpressure, and answering a request only once its events are
 * committed.
 *
 * A request goes through these steps; a refusal answers only that request, with a log line and
 * `logwarden_input_errors_total{reason}`:
 * 1. before any body byte is read: connection limit (503), path (404), method (405), content
 *    type (415), Content-Length above buffer_max_size (413), backpressure (503 + Retry-After),
 *    content encoding (415). `Expect: 100-continue` is answered only after these checks, so a
 *    refused sender never sends its body;
 * 2. the body is read up to buffer_max_size (a chunked body that goes past it: 413) within
 *    request_timeout (408); gzip/deflate bodies are inflated up to buffer_max_size;
 * 3. the endpoint decodes the body into events (malformed: 400 with the parser's message);
 * 4. the events are routed as one chunk; the success status is sent when the chunk's commit
 *    settles ok, 503 + Retry-After when it fails, so the sender retries.
 *
 * Why 503 (not 429) for "retry later": the Kubernetes API server's audit webhook retries every
 * error (plugin/pkg/audit/webhook retryOnError) with its backoff (--audit-webhook-initial-backoff,
 * factor 1.5, 5 steps), and its REST client first retries by itself a 429 *or any 5xx* that
 * carries an integer Retry-After (client-go rest/with_retry.go checkWait, up to 10 times). Both
 * codes get the same handling there; 503 says what happened (this receiver is temporarily
 * unable to take data; the sender did nothing wrong), is retried by generic HTTP clients and
 * proxies that do not retry a 429, and keeps 429 free for what RFC 6585 defines it as.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import zlib from 'node:zlib';
import { ConfigError } from '../config/errors.js';
import type { OptionTable, RawSection } from '../config/schema.js';
import { Commit } from '../core/commit.js';
import type { LogEvent } from '../core/event.js';
import type { ConfigOf, InputContext, InputInstance } from '../core/plugin.js';
import { arrayHeader, skipValue } from '../core/msgpack-scan.js';
import { addressesOf, guardServer, listen, listenOptions, SummarizedLog, tlsServerOptions, prepareTlsServer } from './listener.js';

export type HttpServerConfig = ConfigOf<ReturnType<typeof httpServerOptions>>;

/** The listener's options; each plugin picks its own defaults where they differ. */
export function httpServerOptions(d: { port: number; buffer_max_size: string; buffer_max_size_note: string; retry_after: number }) {
  return {
    ...listenOptions(d.port),
    ...tlsServerOptions('HTTPS'),
    buffer_max_size: {
      type: 'size',
      default: d.buffer_max_size,
      min: 1024,
      description: `Largest request body accepted (after gzip/deflate inflation); larger: 413. ${d.buffer_max_size_note}`,
    },
    connection_limit: {
      type: 'int',
      default: 1024,
      min: 1,
      description: 'Open connections served at once; a connection beyond it gets 503 on its request, beyond twice it is closed at once',
    },
    headers_timeout: {
      type: 'duration',
      default: 10,
      description: 'A request whose headers have not all arrived this long after its first byte gets 408 and its connection is closed',
    },
    request_timeout: {
      type: 'duration',
      default: 60,
      description: 'A request (headers and body) not fully received this long after its first byte gets 408 and its connection is closed',
    },
    keepalive_timeout: {
      type: 'duration',
      default: 120,
      description: "Idle keep-alive connections are closed after this long (above Go's 90 s client idle timeout, so the sender closes first)",
    },
    inflight_max_size: {
      type: 'size',
      description:
        'Bytes of request bodies held at once, across requests, as they arrive (inflated size once inflated) until their events are routed; a request that would go past it gets 503 + Retry-After, after the slowest upload older than headers_timeout is closed to make room (default: 4 x buffer_max_size)',
    },
    retry_after: {
      type: 'int',
      default: d.retry_after,
      min: 1,
      max: 3600,
      description: 'Seconds in the Retry-After header of 503 answers (backpressure, failed commit, connection limit)',
    },
  } satisfies OptionTable;
}

/** Load-time checks of the listener options (positions for every error); the server's TLS options, files read. */
export function prepareHttpServer(c: HttpServerConfig, section: RawSection): tls.TlsOptions | undefined {
  const at = (k: string) => section.keyPos[k] ?? section.pos;
  if (!c.tls) {
    for (const k of ['tls.crt_file', 'tls.key_file', 'tls.ca_file', 'tls.verify', 'tls.verify_client_cert'] as const) {
      if (section.values[k] !== undefined) throw new ConfigError(`${k} has no effect without tls: on`, at(k), k);
    }
  }
  const serverTls = prepareTlsServer(c, section);
  if (c.inflight_max_size !== undefined && c.inflight_max_size < c.buffer_max_size) {
    throw new ConfigError(
      `inflight_max_size (${c.inflight_max_size}) must not be below buffer_max_size (${c.buffer_max_size}): a largest request would never fit`,
      at('inflight_max_size'),
      'inflight_max_size',
    );
  }
  if (c.headers_timeout <= 0) throw new ConfigError('must be above 0', section.valuePos.headers_timeout ?? at('headers_timeout'), 'headers_timeout');
  if (c.request_timeout < c.headers_timeout) {
    throw new ConfigError(
      `request_timeout (${c.request_timeout}s) must not be below headers_timeout (${c.headers_timeout}s)`,
      at('request_timeout') === section.pos ? at('headers_timeout') : at('request_timeout'),
      'request_timeout',
    );
  }
  return serverTls;
}

/** A refused request: its status, the message the sender reads, the metric reason. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reason: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** `type/subtype` of a Content-Type header, lower-cased, without parameters. */
export function mediaType(req: http.IncomingMessage): string | undefined {
  const h = req.headers['content-type'];
  if (h === undefined) return undefined;
  return h.split(';', 1)[0]!.trim().toLowerCase();
}

/** The plugin-specific part of an HTTP input. */
export interface HttpEndpoint<S> {
  /**
   * Checks a request before any body byte is read (method, path, content type); throws
   * HttpError. The value returned is handed to decode.
   */
  check(req: http.IncomingMessage, path: string): S;
  /** Decodes a whole (inflated) body into events; throws HttpError (400) for malformed data. */
  decode(body: Buffer, state: S, req: http.IncomingMessage, log: RequestLog): LogEvent[];
  /** Status and headers of a committed request. */
  readonly successStatus: number;
  readonly successHeaders: Record<string, string>;
}

/** How decode reports data it skips or repairs while the request still succeeds. */
export interface RequestLog {
  /** Counts `n` items under `reason` (logwarden_input_errors_total) and logs one line for them. */
  report(reason: string, n: number, message: string, extra?: Record<string, unknown>): void;
}

const ENCODINGS = new Set(['identity', 'gzip', 'x-gzip', 'deflate']);

/**
 * What one request's events may take in memory once decoded: a quarter of service.memory_limit,
 * estimated before decoding as 2 x the body's bytes + 128 bytes per object it may hold (every `{`
 * of a JSON body; every record of a msgpack body counts 256). An empty JSON object is ~56 bytes
 * on the heap and its event ~93 (measured on Node 20).
 */
export function estimateHeap(body: Buffer, msgpack: boolean): number {
  if (msgpack) return 2 * body.length + 256 * countMsgpackRecords(body);
  let braces = 0;
  for (let i = body.indexOf(0x7b); i !== -1; i = body.indexOf(0x7b, i + 1)) braces++;
  return 2 * body.length + 128 * braces;
}

/** Top-level values of a msgpack body, an array counting its elements (what become records). */
function countMsgpackRecords(b: Buffer): number {
  let n = 0;
  let pos = 0;
  try {
    while (pos < b.length) {
      const h = arrayHeader(b, pos);
      n += h ? h[0] : 1;
      pos = skipValue(b, pos);
    }
  } catch {
    // malformed: the decoder says what is wrong
  }
  return n;
}

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

const inflate = (fn: typeof zlib.gunzip, buf: Buffer, max: number) => new Promise<Buffer>((resolve, reject) => fn(buf, { maxOutputLength: max }, (err, out) => (err ? reject(err) : resolve(out))));

export class HttpInput<S> implements InputInstance {
  private server: http.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  /** Connections accepted beyond connection_limit: their request gets 503 and they are closed. */
  private readonly overLimit = new WeakSet<net.Socket>();
  private stopping = false;
  /** Body bytes held by requests being received or decoded (bounded by inflight_max_size). */
  private inflight = 0;
  private readonly inflightMax: number;
  /** Bodies being received: when inflight_max_size is reached, the slowest old one makes room. */
  private readonly uploads = new Set<{ started: number; received: number; evict(): void }>();
  /** What one request's decoded events may take in memory (a quarter of service.memory_limit). */
  private readonly requestHeap: number;
  private readonly summarized: SummarizedLog;
  private readonly m;
  private readonly tlsOptions: tls.TlsOptions | undefined;

  constructor(
    private readonly c: HttpServerConfig & { buffer_chunk_size?: number },
    private readonly ctx: InputContext,
    private readonly endpoint: HttpEndpoint<S>,
    private readonly what: string,
    serverTls: tls.TlsOptions | undefined,
  ) {
    this.inflightMax = c.inflight_max_size ?? 4 * c.buffer_max_size;
    this.requestHeap = Math.floor(ctx.service.memory_limit / 4);
    this.summarized = new SummarizedLog(ctx.logger);
    this.m = ctx.metrics.inputSeries(ctx.id);
    if (serverTls) this.tlsOptions = { ...serverTls, handshakeTimeout: c.headers_timeout * 1000 };
    ctx.flow.on('pause', this.onPause);
    ctx.flow.on('resume', this.onResume);
    if (ctx.flow.paused) this.m.paused.set(1);
  }

  private readonly onPause = (who: string, why: string): void => {
    this.ctx.logger.warn({ by: who, why, retry_after: this.c.retry_after }, 'backpressure: answering new requests 503 with Retry-After');
    this.m.paused.set(1);
  };

  private readonly onResume = (): void => {
    this.ctx.logger.info('backpressure released: accepting requests');
    this.m.paused.set(0);
  };

  async start(): Promise<void> {
    const c = this.c;
    const ms = (s: number) => Math.round(s * 1000);
    const serverOptions: http.ServerOptions = {
      headersTimeout: ms(c.headers_timeout),
      requestTimeout: ms(c.request_timeout),
      keepAliveTimeout: ms(c.keepalive_timeout),
      // Node checks both timeouts on this interval (30 s by default): keep it a fraction of them.
      connectionsCheckingInterval: Math.min(1000, Math.max(50, ms(c.headers_timeout) / 4)),
    };
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => this.onRequest(req, res, false);
    const server = this.tlsOptions ? https.createServer({ ...this.tlsOptions, ...serverOptions }, handler) : http.createServer(serverOptions, handler);
    server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => this.onRequest(req, res, true));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => this.onClientError(err, socket));
    server.on(this.tlsOptions ? 'secureConnection' : 'connection', (socket: net.Socket) => this.onConnection(socket));
    guardServer(server, {
      tls: this.tlsOptions !== undefined,
      maxConnections: c.connection_limit * 2,
      limit: c.connection_limit,
      dropped: 'connection closed at once: twice connection_limit reached',
      error: this.m.error,
      logger: this.ctx.logger,
      summarized: this.summarized,
    });
    this.server = server;
    await listen(server, { host: c.listen, port: c.port }, this.ctx.logger, this.ctx.section);
    this.ctx.logger.info(
      { listen: this.addresses(), tls: c.tls, client_certs: c.tls ? (c['tls.verify_client_cert'] ? 'required' : c['tls.verify'] ? 'verified if presented' : 'not verified') : undefined },
      `${this.what} listening`,
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
    this.stopping = true;
    // Requests waiting for their commit keep their connection so the answer can still be sent;
    // everything is closed once the engine had its grace period.
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), (this.ctx.service.grace + 1) * 1000).unref();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 100))]);
  }

  private onConnection(socket: net.Socket): void {
    this.sockets.add(socket);
    this.m.connections.inc();
    if (this.sockets.size > this.c.connection_limit) this.overLimit.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.m.connections.dec();
    });
  }

  /** Errors Node's HTTP parser reports before a request reaches the handler (or while reading its body). */
  private onClientError(err: NodeJS.ErrnoException, socket: net.Socket): void {
    const code = err.code ?? '';
    let status = 400;
    let reason = 'bad_request';
    let message = `malformed HTTP request: ${err.message}`;
    if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408;
      reason = 'timeout';
      message = `request not received within headers_timeout (${this.c.headers_timeout}s) / request_timeout (${this.c.request_timeout}s)`;
    } else if (code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      reason = 'headers_too_large';
      message = 'request headers too large';
    } else if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
      this.m.error('aborted').inc();
      this.ctx.logger.debug({ remote: socket.remoteAddress, err: err.message }, 'connection reset by the sender');
      socket.destroy();
      return;
    }
    this.m.error(reason).inc();
    this.ctx.logger.warn({ remote: socket.remoteAddress, status, reason, err: err.message }, `closing connection: ${message}`);
    if (socket.writable && socket.bytesWritten === 0) {
      const body = `${message}\n`;
      socket.write(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    }
    socket.destroy();
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse, expectsContinue: boolean): void {
    const socket = req.socket;
    let state: S;
    const length = bodyLength(req);
    try {
      if (this.stopping) throw new HttpError(503, 'shutting down', 'shutdown', { 'Retry-After': String(this.c.retry_after) });
      if (this.overLimit.has(socket)) {
        throw new HttpError(503, `connection_limit (${this.c.connection_limit}) reached; retry on a new connection`, 'connection_limit', {
          'Retry-After': String(this.c.retry_after),
          Connection: 'close',
        });
      }
      state = this.endpoint.check(req, pathOf(req.url ?? '/'));
      if (length !== undefined && length > this.c.buffer_max_size) {
        throw new HttpError(413, `body of ${length} bytes exceeds buffer_max_size (${this.c.buffer_max_size} bytes)`, 'too_large');
      }
      if (this.ctx.flow.paused) {
        throw new HttpError(503, 'backpressure: outputs are full, retry later', 'paused', { 'Retry-After': String(this.c.retry_after) });
      }
      if (length !== undefined && this.inflight > 0 && this.inflight + length > this.inflightMax && !this.makeRoom(length)) {
        throw new HttpError(503, `busy: ${this.inflight} bytes of other requests in flight (inflight_max_size ${this.inflightMax}), retry later`, 'busy', {
          'Retry-After': String(this.c.retry_after),
        });
      }
      const enc = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
      if (!ENCODINGS.has(enc)) throw new HttpError(415, `Content-Encoding '${enc}' is not supported (gzip, deflate, identity)`, 'bad_encoding');
    } catch (e) {
      // A sender that waits for 100 Continue may or may not send its body after a refusal: only
      // closing the connection keeps the next request from being read out of that body.
      this.refuse(req, res, e, true, expectsContinue);
      return;
    }
    if (expectsContinue) res.writeContinue();
    this.readBody(req, res, state, length);
  }

  private readBody(req: http.IncomingMessage, res: http.ServerResponse, state: S, length: number | undefined): void {
    const max = this.c.buffer_max_size;
    const step = Math.min(this.c.buffer_chunk_size ?? 512 * 1024, max);
    // Memory follows the bytes that arrive, not the length a sender declares: they are copied into
    // blocks of buffer_chunk_size (the last one no larger than the declared length needs) as they
    // come. Copied, because a socket's chunk can pin a larger read buffer; in blocks, because a
    // buffer grown by doubling leaves its earlier copies as garbage, which for uploads held open
    // is as much again as what they hold. A body of one block needs no concatenation.
    const cap = Math.min(max, length ?? max);
    const blocks: Buffer[] = [];
    let allocated = 0;
    let len = 0;
    let refused = false;
    // Bytes are held as they arrive (a declared length that never comes holds nothing), and the
    // inflated body replaces them once inflated.
    let held = 0;
    const hold = (n: number) => {
      held += n;
      this.inflight += n;
    };
    const upload = {
      started: Date.now(),
      received: 0,
      evict: () => {
        if (refused) return;
        refused = true;
        release();
        this.refuse(
          req,
          res,
          new HttpError(408, `upload too slow: ${upload.received} bytes in ${((Date.now() - upload.started) / 1000).toFixed(1)} s while inflight_max_size is reached`, 'slow'),
          true,
          true,
        );
      },
    };
    this.uploads.add(upload);
    const release = () => {
      this.inflight -= held;
      held = 0;
      this.uploads.delete(upload);
    };
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      if (len + chunk.length > max) {
        refused = true;
        release();
        this.refuse(req, res, new HttpError(413, `body exceeds buffer_max_size (${max} bytes)`, 'too_large'), true);
        return;
      }
      hold(chunk.length);
      upload.received += chunk.length;
      if (this.inflight > this.inflightMax && this.inflight > held && !this.makeRoom(0, upload)) {
        refused = true;
        release();
        this.refuse(req, res, new HttpError(503, `busy: inflight_max_size (${this.inflightMax} bytes) reached, retry later`, 'busy', { 'Retry-After': String(this.c.retry_after) }), true);
        return;
      }
      for (let off = 0; off < chunk.length; ) {
        if (len === allocated) {
          const rest = cap - allocated;
          const block = Buffer.allocUnsafe(rest > 0 ? Math.min(step, rest) : step);
          blocks.push(block);
          allocated += block.length;
        }
        const block = blocks[blocks.length - 1]!;
        const n = chunk.copy(block, len - (allocated - block.length), off);
        off += n;
        len += n;
      }
    });
    req.on('end', () => {
      this.uploads.delete(upload);
      if (refused) return;
      const body = blocks.length === 1 ? blocks[0]!.subarray(0, len) : Buffer.concat(blocks, len);
      blocks.length = 0;
      void this.process(req, res, state, body, hold).finally(release);
    });
    // An aborted or timed-out request may end without 'error': its hold goes with the request.
    req.on('close', () => {
      if (!req.complete) release();
    });
    req.on('error', (err) => {
      if (refused) return;
      refused = true;
      release();
      this.m.error('aborted').inc();
      this.ctx.logger.debug({ remote: req.socket.remoteAddress, err: err.message, received: len }, 'request aborted by the sender before its body was complete');
    });
  }

  /**
   * Closes the slowest uploads (lowest bytes per second) that have been receiving longer than
   * headers_timeout until `need` more bytes fit under inflight_max_size; `except` is the caller's.
   * True when they fit now: slow senders cannot hold the budget while everyone else gets 503.
   */
  private makeRoom(need: number, except?: object): boolean {
    const now = Date.now();
    const old = [...this.uploads].filter((u) => u !== except && now - u.started > this.c.headers_timeout * 1000).sort((a, b) => a.received / (now - a.started) - b.received / (now - b.started));
    for (const u of old) {
      if (this.inflight + need <= this.inflightMax) break;
      u.evict();
    }
    return this.inflight + need <= this.inflightMax;
  }

  private async process(req: http.IncomingMessage, res: http.ServerResponse, state: S, wire: Buffer, hold: (n: number) => void): Promise<void> {
    this.m.bytes.inc(wire.length);
    let events: LogEvent[];
    try {
      let body = wire;
      const enc = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
      if (enc !== 'identity') {
        try {
          body = await inflate(enc === 'deflate' ? zlib.inflate : zlib.gunzip, wire, this.c.buffer_max_size);
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          if (err.code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
            throw new HttpError(413, `inflated body exceeds buffer_max_size (${this.c.buffer_max_size} bytes)`, 'too_large');
          }
          throw new HttpError(400, `cannot inflate ${enc} body: ${err.message}`, 'bad_encoding');
        }
        // inflight_max_size counts the inflated body (the wire bytes are dropped with it).
        hold(body.length);
        if (this.inflight > this.inflightMax && !this.makeRoom(0)) {
          throw new HttpError(503, `busy: inflight_max_size (${this.inflightMax} bytes) reached by inflated bodies, retry later`, 'busy', {
            'Retry-After': String(this.c.retry_after),
          });
        }
      }
      if (body.length === 0) throw new HttpError(400, 'no payload found', 'empty');
      const heap = estimateHeap(body, (mediaType(req) ?? '').includes('msgpack'));
      if (heap > this.requestHeap) {
        throw new HttpError(
          413,
          `body of ${mib(body.length)} would take about ${mib(heap)} in memory once decoded, above the ${mib(this.requestHeap)} a request may take (a quarter of service.memory_limit); send smaller batches`,
          'memory_limit',
        );
      }
      events = this.endpoint.decode(body, state, req, this.requestLog(req));
    } catch (e) {
      this.refuse(req, res, e, false);
      return;
    }
    if (events.length === 0) {
      this.succeed(res);
      return;
    }
    this.m.records.inc(events.length);
    const remote = req.socket.remoteAddress;
    const commit = new Commit((ok, reason) => {
      if (!ok) this.m.unacked.inc();
      if (res.writableEnded || res.destroyed || req.socket.destroyed) {
        this.ctx.logger.debug({ remote, ok, reason }, 'sender went away before its events were committed; it will resend');
        return;
      }
      if (ok) this.succeed(res);
      else {
        this.refuse(req, res, new HttpError(503, `events not committed (${reason ?? 'failed'}); retry later`, 'commit_failed', { 'Retry-After': String(this.c.retry_after) }), false);
      }
    });
    try {
      this.ctx.ingest(events, commit, wire.length);
    } catch (e) {
      // Whatever throws under one request fails that request (503: the sender resends).
      this.ctx.logger.error({ remote, err: (e as Error)?.message ?? String(e) }, 'request failed while routing its events; not committed');
      commit.release(false, `internal error: ${(e as Error)?.message ?? String(e)}`, false);
      return;
    }
    commit.release();
  }

  private succeed(res: http.ServerResponse): void {
    this.m.acks.inc();
    const headers: Record<string, string> = { ...this.endpoint.successHeaders };
    if (this.stopping) headers.Connection = 'close';
    if (this.endpoint.successStatus !== 204) headers['Content-Length'] = '0';
    res.writeHead(this.endpoint.successStatus, headers).end();
  }

  private requestLog(req: http.IncomingMessage): RequestLog {
    return {
      report: (reason, n, message, extra = {}) => {
        this.m.error(reason).inc(n);
        this.ctx.logger.warn({ remote: req.socket.remoteAddress, path: req.url, reason, count: n, ...extra }, message);
      },
    };
  }

  /**
   * Answers `e` (an HttpError, else 500). When the body was not read and may be large or of
   * unknown length, the connection is closed after the answer instead of reading the body to
   * keep it alive; the socket lingers a second so the sender can read the answer before the
   * close (an immediate close with unread data would reset the connection).
   */
  private refuse(req: http.IncomingMessage, res: http.ServerResponse, e: unknown, bodyUnread: boolean, mustClose = false): void {
    const err = e instanceof HttpError ? e : new HttpError(500, `internal error: ${(e as Error).message}`, 'internal');
    this.m.error(err.reason).inc();
    const quiet = err.reason === 'paused' || err.reason === 'shutdown';
    const fields = { remote: req.socket.remoteAddress, method: req.method, path: req.url, status: err.status, reason: err.reason };
    // Refusals that many senders meet at once (a full budget, the connection limit) are summarized.
    if (!quiet && (err.reason === 'busy' || err.reason === 'slow' || err.reason === 'connection_limit')) this.summarized.warn(err.reason, fields, `request refused: ${err.message}`);
    else this.ctx.logger[quiet ? 'debug' : 'warn'](fields, `request refused: ${err.message}`);
    if (res.headersSent || res.destroyed) return;
    const length = bodyLength(req);
    const close = mustClose || err.headers.Connection === 'close' || (bodyUnread && !req.complete && (length === undefined || length > this.c.buffer_max_size));
    const body = `${err.message}\n`;
    const headers: Record<string, string> = {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(body)),
      ...err.headers,
    };
    if (close || this.stopping) headers.Connection = 'close';
    res.writeHead(err.status, headers).end(body);
    if (close) {
      const socket = req.socket;
      res.once('finish', () => setTimeout(() => socket.destroy(), 1000).unref());
    }
  }
}

/**
 * The declared body length: Content-Length, undefined for a chunked body (unknown until read),
 * 0 when the request has neither (HTTP/1.1 section 6.3 of RFC 9112: no body).
 */
function bodyLength(req: http.IncomingMessage): number | undefined {
  const cl = req.headers['content-length'];
  if (cl !== undefined) return Number(cl);
  return req.headers['transfer-encoding'] === undefined ? 0 : undefined;
}

/** The path of a request target, without the query string. */
export function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
