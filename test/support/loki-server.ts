/**
 * A Loki push endpoint for tests: a real HTTP server on 127.0.0.1 that decodes what Loki's
 * distributor decodes (snappy-compressed protobuf per pkg/push/push.proto, JSON with or without
 * gzip), validates as Loki 2.8.0 does with its default limits, answers 204, and records everything
 * it accepted. A control API makes it fail (400/429/500/503...), slow down, or go down: what the
 * real Loki cannot be made to do on demand. Everything else is tested against the real Loki
 * (test/e2e/loki-real.test.ts), which also checks that this server answers the same requests
 * with the same status, body and content headers.
 *
 * As Loki 2.8.0 (seen): invalid or missing labels, more than 30 label names, label values over
 * 2048 characters, lines over `maxLineSize` (no limit by default), timestamps more than 10m in the
 * future, and entries more than 1h behind their stream's newest (or any older entry when
 * unorderedWrites is false) are refused; the valid entries of the same push are stored anyway and
 * the answer is a 400 naming only the last refused entry (ingester refusals list up to 10 and
 * count them). An entry identical (stream, time, line) to one in its stream's head block is
 * stored once; once the block is cut (after 256 KiB), a resent entry is stored again.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTLSServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';
import { uncompressSync } from 'snappy';
import { repoRoot } from './paths.js';

export interface ReceivedEntry {
  /** Nanoseconds since the epoch. */
  ts: bigint;
  line: string;
  meta: Record<string, string>;
}

export interface ReceivedStream {
  labels: Record<string, string>;
  entries: ReceivedEntry[];
}

export interface ReceivedPush {
  encoding: 'protobuf' | 'json';
  gzip: boolean;
  tenant: string | undefined;
  headers: IncomingMessage['headers'];
  /** Bytes of the body on the wire. */
  bytes: number;
  streams: ReceivedStream[];
  status: number;
  error?: string;
}

export interface LokiServerOptions {
  /** Loki's unordered_writes (true by default since 2.4). */
  unorderedWrites?: boolean;
  /** Loki's limits_config.max_line_size in bytes (0, the 2.8 default: no limit; Loki 3: 256 KiB). */
  maxLineSize?: number;
  /** Loki's max_label_names_per_series (30 in 2.8, 15 in Loki 3). */
  maxLabelNames?: number;
  /** Loki's auth_enabled: a push without X-Scope-OrgID is a 401 `no org id`. */
  authEnabled?: boolean;
  /**
   * Whether Loki knows structured metadata (3.0 and later; the default here). false is Loki 2.x:
   * a JSON value with a third element is a 400 parse error for the whole push, and protobuf
   * metadata is ignored.
   */
  structuredMetadata?: boolean;
  /** Loki's ingester chunk_block_size: identical entries are stored once within a block. */
  blockSize?: number;
  /** Require this Authorization header value (401 otherwise). */
  authorization?: string;
  /** Loki's reject_old_samples (default true: entries older than 168h are refused). */
  rejectOldSamples?: boolean;
  /** Serve HTTPS with this key and certificate; with `ca`, require a client certificate it signed. */
  tls?: { key: Buffer; cert: Buffer; ca?: Buffer };
}

interface Scripted {
  status: number;
  body: string;
  /** Only pushes of this tenant ('' : none) are answered so. */
  tenant?: string;
  /** Extra response headers (Retry-After). */
  headers?: Record<string, string>;
}

const pushProto = new protobuf.Root().loadSync(join(repoRoot, 'test', 'support', 'loki-push.proto'));
const PushRequest = pushProto.lookupType('logproto.PushRequest');

const MAX_LABEL_NAMES = 30;
const MAX_LABEL_NAME_LENGTH = 1024;
const MAX_LABEL_VALUE_LENGTH = 2048;
const BLOCK_SIZE = 262144;
const CREATION_GRACE_NS = 10n * 60n * 1_000_000_000n;
const MAX_AGE_NS = 168n * 3600n * 1_000_000_000n;
const TOO_FAR_BEHIND_NS = 3600n * 1_000_000_000n;

/** Parses a Prometheus label set `{a="b", c="d"}` as Loki's syntax.ParseLabels does. */
export function parseLabelString(s: string): Record<string, string> {
  let i = 0;
  const out = new Map<string, string>();
  const ws = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  const fail = (why: string): never => {
    throw new Error(`1:${i + 1}: parse error: ${why}`);
  };
  ws();
  if (s[i] !== '{') fail(`unexpected character, expected '{'`);
  i++;
  ws();
  while (s[i] !== '}') {
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(s.slice(i));
    if (!m) fail(`unexpected character inside braces: '${s[i] ?? 'end of input'}'`);
    const name = m![0];
    i += name.length;
    if (i < s.length && !/[\s=!~,{}"]/.test(s[i]!)) fail(`unexpected character inside braces: '${s[i]}'`);
    ws();
    if (s[i] !== '=') fail(`unexpected '${s[i] ?? 'end of input'}' in label matching, expected '='`);
    i++;
    ws();
    if (s[i] !== '"') fail('expected a quoted label value');
    let j = i + 1;
    while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
    if (j >= s.length) fail('unterminated quoted string');
    let value: string;
    try {
      value = JSON.parse(s.slice(i, j + 1)) as string;
    } catch {
      value = fail('invalid escape in quoted string');
    }
    if (out.has(name)) throw new Error(`duplicate label name: ${name}`);
    out.set(name, value);
    i = j + 1;
    ws();
    if (s[i] === ',') {
      i++;
      ws();
    } else if (s[i] !== '}') fail(`unexpected character after label value: '${s[i] ?? 'end of input'}'`);
  }
  i++;
  ws();
  if (i !== s.length) fail('unexpected characters after the label set');
  return Object.fromEntries(out);
}

/** Go's strconv.Quote for the label values Loki prints. */
function goQuote(v: string): string {
  return JSON.stringify(v);
}

/** The labels as Loki's LabelSet.String() writes them (JSON pushes are parsed from this text). */
function labelText(labels: Record<string, string>): string {
  return `{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${goQuote(labels[k]!)}`)
    .join(', ')}}`;
}

function canonical(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(', ');
}

export class LokiServer {
  readonly pushes: ReceivedPush[] = [];
  /** Accepted entries per tenant and stream (canonical label string). */
  private readonly store = new Map<string, { labels: Record<string, string>; entries: ReceivedEntry[]; max: bigint; seen: Set<string>; headBytes: number; byTime: Map<bigint, string[]> }>();
  private readonly script: Scripted[] = [];
  private sticky: Scripted | undefined;
  private delayMs = 0;
  private cutNext = 0;
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  port = 0;
  requests = 0;
  /** Entries stored a second time (resent after their block was cut). */
  duplicates = 0;
  /** Identical entries Loki ignored (resent while their block was still the head block). */
  ignoredDuplicates = 0;
  /** Called for every request after its status is decided (tests await specific counts). */
  onRequest?: (push: ReceivedPush) => void;

  constructor(private readonly opts: LokiServerOptions = {}) {}

  get url(): string {
    return `${this.opts.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<this> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    const tls = this.opts.tls;
    this.server = tls ? createTLSServer({ key: tls.key, cert: tls.cert, ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}) }, handler) : createServer(handler);
    this.server.keepAliveTimeout = 5000;
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Stops listening and drops open connections (Loki going down). `start(port)` brings it back. */
  async stop(): Promise<void> {
    if (!this.server) return;
    const s = this.server;
    this.server = undefined;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** The next `times` pushes are answered with `status` (and `body`) without being stored. */
  failNext(status: number, times = 1, body = defaultBody(status), headers?: Record<string, string>): void {
    for (let k = 0; k < times; k++) this.script.push({ status, body, ...(headers ? { headers } : {}) });
  }

  /** The next `times` pushes of `tenant` ('' for none) are answered with `status` (and `body`). */
  failTenant(tenant: string, status: number, times = 1, body = defaultBody(status)): void {
    for (let k = 0; k < times; k++) this.script.push({ status, body, tenant });
  }

  /** Every push is answered with `status` until `clearFailure()`. */
  failAlways(status: number, body = defaultBody(status)): void {
    this.sticky = { status, body };
  }

  clearFailure(): void {
    this.sticky = undefined;
    this.script.length = 0;
  }

  /**
   * The next `times` pushes are stored (as Loki would), then their connection is closed in the
   * middle of the answer: the client sees the headers and part of a body, never the end.
   */
  closeMidResponse(times = 1): void {
    this.cutNext += times;
  }

  /** Delays every answer by `ms`. */
  setDelay(ms: number): void {
    this.delayMs = ms;
  }

  /** Accepted streams, merged across pushes, per tenant ('' when none). */
  streams(tenant = ''): ReceivedStream[] {
    const out: ReceivedStream[] = [];
    for (const [key, st] of this.store) if (key.startsWith(`${tenant}\0`)) out.push({ labels: st.labels, entries: st.entries });
    return out;
  }

  /** All accepted entries with their stream labels, in the order stored. */
  entries(tenant = ''): Array<ReceivedEntry & { labels: Record<string, string> }> {
    return this.streams(tenant).flatMap((s) => s.entries.map((e) => ({ ...e, labels: s.labels })));
  }

  /** Resolves once `n` entries in total have been accepted. */
  async waitForEntries(n: number, timeoutMs = 10_000, tenant = ''): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.entries(tenant).length < n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} entries; have ${this.entries(tenant).length}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Resolves once `n` requests have been answered. */
  async waitForRequests(n: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.pushes.length < n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} requests; have ${this.pushes.length}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests++;
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    const answer = (status: number, body: string, push?: ReceivedPush, headers: Record<string, string> = {}) => {
      if (push) {
        push.status = status;
        if (status >= 300) push.error = body;
        this.pushes.push(push);
        this.onRequest?.(push);
      }
      if (this.cutNext > 0 && push) {
        this.cutNext--;
        // A 200 with a declared body that never completes: the socket closes mid-response.
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': '100' });
        res.write('partial');
        setImmediate(() => res.socket?.destroy());
        return;
      }
      // Go's http.Error: text/plain, nosniff, the message and a newline. 204 and 405 have no body.
      if (status === 204 || status === 405) res.writeHead(status, { ...headers, 'content-length': '0' });
      else res.writeHead(status, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
      res.end(status === 204 || status === 405 ? undefined : `${body}\n`);
    };
    if (req.url !== '/loki/api/v1/push') return answer(404, '404 page not found');
    if (req.method !== 'POST') return answer(405, '');
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    const gzip = req.headers['content-encoding'] === 'gzip';
    const tenant = req.headers['x-scope-orgid'] as string | undefined;
    const push: ReceivedPush = {
      encoding: type === 'application/x-protobuf' ? 'protobuf' : 'json',
      gzip,
      tenant,
      headers: req.headers,
      bytes: raw.length,
      streams: [],
      status: 0,
    };
    if (this.opts.authorization !== undefined && req.headers.authorization !== this.opts.authorization) {
      return answer(401, 'unauthorized', push);
    }
    if (this.opts.authEnabled && !tenant) return answer(401, 'no org id', push);
    const at = this.script.findIndex((x) => x.tenant === undefined || x.tenant === (tenant ?? ''));
    const scripted = (at >= 0 ? this.script.splice(at, 1)[0] : undefined) ?? this.sticky;
    if (scripted) return answer(scripted.status, scripted.body, push, scripted.headers);
    let decoded: Array<{ labelText: string | undefined; labels?: Record<string, string>; entries: Array<{ ts: bigint; line: string; meta: Record<string, string> }> }>;
    try {
      let body = raw;
      if (gzip) {
        // Go's gzip reader: a body shorter than the 10-byte header is an unexpected EOF.
        if (raw.length < 10) throw new Error('unexpected EOF');
        try {
          body = gunzipSync(raw);
        } catch {
          throw new Error('gzip: invalid header');
        }
      }
      decoded = type === 'application/x-protobuf' ? decodeProtobuf(body) : decodeJSON(body, this.opts.structuredMetadata !== false);
      if (this.opts.structuredMetadata === false) for (const st of decoded) for (const e of st.entries) e.meta = {};
    } catch (e) {
      return answer(400, (e as Error).message, push);
    }
    // The distributor validates every entry and keeps the last refusal; the ingester then stores
    // the valid entries and reports its own refusals per stream (the last stream's wins).
    let validationError: string | undefined;
    let ingesterError: string | undefined;
    const now = BigInt(Date.now()) * 1_000_000n;
    const maxLine = this.opts.maxLineSize ?? 0;
    const maxNames = this.opts.maxLabelNames ?? MAX_LABEL_NAMES;
    const blockSize = this.opts.blockSize ?? BLOCK_SIZE;
    for (const st of decoded) {
      let labels: Record<string, string>;
      try {
        labels = parseLabelString(st.labelText ?? labelText(st.labels ?? {}));
      } catch (e) {
        validationError = (e as Error).message;
        continue;
      }
      const names = Object.keys(labels);
      const streamText = labelText(labels);
      if (names.length === 0) {
        validationError = 'error at least one label pair is required per stream';
        continue;
      }
      if (names.length > maxNames) {
        validationError = `entry for stream '${streamText}' has ${names.length} label names; limit ${maxNames}`;
        continue;
      }
      const longName = names.find((n) => n.length > MAX_LABEL_NAME_LENGTH);
      if (longName) {
        validationError = `stream '${streamText}' has label name too long: '${longName}'`;
        continue;
      }
      const longValue = names.map((n) => labels[n]!).find((v) => v.length > MAX_LABEL_VALUE_LENGTH);
      if (longValue !== undefined) {
        validationError = `stream '${streamText}' has label value too long: '${longValue}'`;
        continue;
      }
      const valid: ReceivedEntry[] = [];
      for (const e of st.entries) {
        const size = Buffer.byteLength(e.line);
        if (maxLine > 0 && size > maxLine) {
          validationError = `Max entry size '${maxLine}' bytes exceeded for stream '${streamText}' while adding an entry with length '${size}' bytes`;
          continue;
        }
        if (e.ts > now + CREATION_GRACE_NS) {
          validationError = `entry for stream '${streamText}' has timestamp too new: ${rfc3339(e.ts)}`;
          continue;
        }
        if (e.ts < now - MAX_AGE_NS && this.opts.rejectOldSamples !== false) {
          validationError = `entry for stream '${streamText}' has timestamp too old: ${rfc3339(e.ts)}, oldest acceptable timestamp is: ${rfc3339(now - MAX_AGE_NS)}`;
          continue;
        }
        valid.push(e);
      }
      if (valid.length === 0) continue;
      const key = `${tenant ?? ''}\0${canonical(labels)}`;
      let stored = this.store.get(key);
      if (!stored) this.store.set(key, (stored = { labels, entries: [], max: 0n, seen: new Set(), headBytes: 0, byTime: new Map() }));
      const accepted: ReceivedEntry[] = [];
      const refused: string[] = [];
      for (const e of valid) {
        const max = stored.max;
        if (this.opts.unorderedWrites === false ? e.ts < max : max > 0n && e.ts < max - TOO_FAR_BEHIND_NS) {
          const reason = this.opts.unorderedWrites === false ? 'entry out of order' : `entry too far behind, oldest acceptable timestamp is: ${rfc3339(max - TOO_FAR_BEHIND_NS)}`;
          refused.push(`entry with timestamp ${goTime(e.ts)} ignored, reason: '${reason}' for stream: ${streamText},\n`);
          continue;
        }
        const id = `${e.ts}\0${e.line}`;
        if (stored.seen.has(id)) {
          this.ignoredDuplicates++;
          continue;
        }
        const same = stored.byTime.get(e.ts);
        if (same?.includes(e.line)) this.duplicates++;
        if (same) same.push(e.line);
        else stored.byTime.set(e.ts, [e.line]);
        stored.seen.add(id);
        stored.headBytes += Buffer.byteLength(e.line);
        if (stored.headBytes >= blockSize) {
          stored.seen.clear();
          stored.headBytes = 0;
        }
        stored.entries.push(e);
        if (e.ts > stored.max) stored.max = e.ts;
        accepted.push(e);
      }
      if (refused.length) ingesterError = `${refused.slice(0, 10).join('')}user '${tenant ?? 'fake'}', total ignored: ${refused.length} out of ${valid.length}`;
      push.streams.push({ labels, entries: accepted });
    }
    const error = ingesterError ?? validationError;
    if (error !== undefined) return answer(400, error, push);
    answer(204, '', push);
  }
}

/** What Loki answers on its own for a status scripted without a body. */
function defaultBody(status: number): string {
  if (status === 429) {
    return "Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) while attempting to ingest '1' lines totaling '100' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased";
  }
  if (status === 503) return 'at least 1 live replicas required, could only find 0';
  return `scripted ${status}`;
}

/** Go's time.RFC3339 in UTC: whole seconds. */
function rfc3339(ns: bigint): string {
  return new Date(Number(ns / 1_000_000_000n) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Go's Time.String() in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`, trailing zeros trimmed. */
function goTime(ns: bigint): string {
  const sec = ns / 1_000_000_000n;
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  const base = new Date(Number(sec) * 1000).toISOString().slice(0, 19).replace('T', ' ');
  return `${base}${frac ? `.${frac}` : ''} +0000 UTC`;
}

interface PbTimestamp {
  seconds?: number | { toString(): string };
  nanos?: number;
}

function decodeProtobuf(body: Buffer) {
  let raw: Buffer;
  try {
    raw = uncompressSync(body) as Buffer;
  } catch {
    throw new Error('snappy: corrupt input');
  }
  const msg = PushRequest.toObject(PushRequest.decode(raw), { defaults: true }) as {
    streams: Array<{ labels: string; entries: Array<{ timestamp?: PbTimestamp; line: string; structuredMetadata: Array<{ name: string; value: string }> }> }>;
  };
  return msg.streams.map((s) => ({
    labelText: s.labels,
    entries: s.entries.map((e) => ({
      ts: BigInt(String(e.timestamp?.seconds ?? 0)) * 1_000_000_000n + BigInt(e.timestamp?.nanos ?? 0),
      line: e.line,
      meta: Object.fromEntries(e.structuredMetadata.map((p) => [p.name, p.value])),
    })),
  }));
}

function decodeJSON(body: Buffer, metadata: boolean) {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new Error(`loghttp.PushRequest.Streams: ${(e as Error).message}`);
  }
  const streams = (doc as { streams?: unknown }).streams;
  if (!Array.isArray(streams)) throw new Error('loghttp.PushRequest.Streams: expected an array');
  return streams.map((s: { stream?: unknown; values?: unknown }) => {
    if (!s || typeof s.stream !== 'object' || s.stream === null) throw new Error('loghttp.PushRequest.Streams: stream must be an object');
    for (const v of Object.values(s.stream)) if (typeof v !== 'string') throw new Error('loghttp.PushRequest.Streams: label values must be strings');
    if (!Array.isArray(s.values)) throw new Error('loghttp.PushRequest.Streams: values must be an array');
    return {
      labelText: undefined,
      labels: { ...(s.stream as Record<string, string>) },
      entries: s.values.map((v: unknown) => {
        if (!metadata && Array.isArray(v) && v.length === 3) {
          // Loki 2.x's decoder expects [ts, line] and stops at the third element.
          throw new Error(`loghttp.PushRequest.Streams: []*loghttp.Stream: unmarshalerDecoder: Value is string, but can't find closing '"' symbol`);
        }
        if (!Array.isArray(v) || v.length < 2 || v.length > 3) throw new Error('Value must be an array of 2 or 3 elements');
        if (typeof v[0] !== 'string') throw new Error('Value timestamp must be a string of unix nanoseconds');
        if (!/^\d+$/.test(v[0])) throw new Error(`Value timestamp '${v[0]}' is not an integer`);
        if (typeof v[1] !== 'string') throw new Error('Value line must be a string');
        const meta = v[2] === undefined ? {} : (v[2] as Record<string, string>);
        for (const x of Object.values(meta)) if (typeof x !== 'string') throw new Error('structured metadata values must be strings');
        return { ts: BigInt(v[0]), line: v[1], meta: { ...meta } };
      }),
    };
  });
}
