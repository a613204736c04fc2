/**
 * A Loki push endpoint for tests: a real HTTP server on 127.0.0.1 that decodes what Loki's
 * distributor decodes (snappy-compressed protobuf per pkg/push/push.proto, JSON with or without
 * gzip), validates as Loki does with its default limits, answers 204, and records everything it
 * accepted. A control API makes it fail (400/429/500/503...), slow down, or go down.
 *
 * Validation follows Loki's pkg/validation messages: invalid or missing labels, more than 15 label
 * names, lines over 256KB, timestamps more than 10m in the future or older than 168h, and (when
 * unorderedWrites is false) entries older than the newest of their stream. Like Loki, it keeps the
 * valid entries of a push with invalid ones and answers 400 naming the first errors; identical
 * entries (same stream, time and line) are stored once.
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
  /** Require this Authorization header value (401 otherwise). */
  authorization?: string;
  /** Serve HTTPS with this key and certificate; with `ca`, require a client certificate it signed. */
  tls?: { key: Buffer; cert: Buffer; ca?: Buffer };
}

interface Scripted {
  status: number;
  body: string;
}

const pushProto = new protobuf.Root().loadSync(join(repoRoot, 'test', 'support', 'loki-push.proto'));
const PushRequest = pushProto.lookupType('logproto.PushRequest');

const MAX_LINE_SIZE = 256 * 1024;
const MAX_LABEL_NAMES = 15;
const CREATION_GRACE_NS = 10n * 60n * 1_000_000_000n;
const MAX_AGE_NS = 168n * 3600n * 1_000_000_000n;
const TOO_FAR_BEHIND_NS = 3600n * 1_000_000_000n;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

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
    const m = /^[^\s=!~,{}"]+/.exec(s.slice(i));
    if (!m) fail(`unexpected character inside braces: '${s[i] ?? 'end of input'}'`);
    const name = m![0];
    i += name.length;
    if (!LABEL_NAME.test(name)) fail(`invalid label name "${name}"`);
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

function canonical(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(', ');
}

export class LokiServer {
  readonly pushes: ReceivedPush[] = [];
  /** Accepted entries per tenant and stream (canonical label string). */
  private readonly store = new Map<string, { labels: Record<string, string>; entries: ReceivedEntry[]; max: bigint; seen: Set<string> }>();
  private readonly script: Scripted[] = [];
  private sticky: Scripted | undefined;
  private delayMs = 0;
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  port = 0;
  requests = 0;
  duplicates = 0;
  /** Called for every request after its status is decided (tests await specific counts). */
  onRequest?: (push: ReceivedPush) => void;

  constructor(private readonly opts: LokiServerOptions = {}) {}

  get url(): string {
    return `${this.opts.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<this> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    const tls = this.opts.tls;
    this.server = tls
      ? createTLSServer({ key: tls.key, cert: tls.cert, ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}) }, handler)
      : createServer(handler);
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
  failNext(status: number, times = 1, body = `scripted ${status}`): void {
    for (let k = 0; k < times; k++) this.script.push({ status, body });
  }

  /** Every push is answered with `status` until `clearFailure()`. */
  failAlways(status: number, body = `scripted ${status}`): void {
    this.sticky = { status, body };
  }

  clearFailure(): void {
    this.sticky = undefined;
    this.script.length = 0;
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
    const answer = (status: number, body: string, push?: ReceivedPush) => {
      if (push) {
        push.status = status;
        if (status >= 300) push.error = body;
        this.pushes.push(push);
        this.onRequest?.(push);
      }
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(status === 204 ? undefined : `${body}\n`);
    };
    if (req.method !== 'POST' || req.url !== '/loki/api/v1/push') return answer(404, '404 page not found');
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
    const scripted = this.script.shift() ?? this.sticky;
    if (scripted) return answer(scripted.status, scripted.body, push);
    let decoded: Array<{ labelText: string | undefined; labels?: Record<string, string>; entries: Array<{ ts: bigint; line: string; meta: Record<string, string> }> }>;
    try {
      const body = gzip ? gunzipSync(raw) : raw;
      decoded = type === 'application/x-protobuf' ? decodeProtobuf(body) : decodeJSON(body);
    } catch (e) {
      return answer(400, (e as Error).message, push);
    }
    const errors: string[] = [];
    const now = BigInt(Date.now()) * 1_000_000n;
    for (const st of decoded) {
      let labels: Record<string, string>;
      try {
        labels = st.labels ?? parseLabelString(st.labelText ?? '');
        if (st.labels) for (const k of Object.keys(labels)) if (!LABEL_NAME.test(k)) throw new Error(`invalid label name "${k}"`);
      } catch (e) {
        errors.push(`error parsing labels '${st.labelText ?? JSON.stringify(st.labels)}' with error: ${(e as Error).message}`);
        continue;
      }
      const names = Object.keys(labels);
      const streamText = `{${canonical(labels)}}`;
      if (names.length === 0) {
        errors.push('error at least one label pair is required per stream');
        continue;
      }
      if (names.length > MAX_LABEL_NAMES) {
        errors.push(`entry for stream '${streamText}' has ${names.length} label names; limit ${MAX_LABEL_NAMES}`);
        continue;
      }
      const key = `${tenant ?? ''}\0${canonical(labels)}`;
      let stored = this.store.get(key);
      const accepted: ReceivedEntry[] = [];
      for (const e of st.entries) {
        if (Buffer.byteLength(e.line) > MAX_LINE_SIZE) {
          errors.push(`Max entry size '${MAX_LINE_SIZE}' bytes exceeded for stream '${streamText}' while adding an entry with length '${Buffer.byteLength(e.line)}' bytes`);
          continue;
        }
        if (e.ts > now + CREATION_GRACE_NS) {
          errors.push(`entry for stream '${streamText}' has timestamp too new: ${nsToISO(e.ts)}`);
          continue;
        }
        if (e.ts < now - MAX_AGE_NS) {
          errors.push(`entry for stream '${streamText}' has timestamp too old: ${nsToISO(e.ts)}, oldest acceptable timestamp is: ${nsToISO(now - MAX_AGE_NS)}`);
          continue;
        }
        const max = stored?.max ?? 0n;
        if (this.opts.unorderedWrites === false ? e.ts < max : e.ts < max - TOO_FAR_BEHIND_NS) {
          errors.push(
            this.opts.unorderedWrites === false
              ? `entry with timestamp ${nsToISO(e.ts)} ignored, reason: 'entry out of order' for stream: ${streamText}`
              : `entry too far behind, entry timestamp is: ${nsToISO(e.ts)}, oldest acceptable timestamp is: ${nsToISO(max - TOO_FAR_BEHIND_NS)}`,
          );
          continue;
        }
        if (!stored) this.store.set(key, (stored = { labels, entries: [], max: 0n, seen: new Set() }));
        const id = `${e.ts}\0${e.line}`;
        if (stored.seen.has(id)) {
          this.duplicates++;
          continue;
        }
        stored.seen.add(id);
        stored.entries.push(e);
        if (e.ts > stored.max) stored.max = e.ts;
        accepted.push(e);
      }
      push.streams.push({ labels, entries: accepted });
    }
    if (errors.length) {
      // Loki lists the first errors and counts the rest.
      const shown = errors.slice(0, 10).join('\n');
      return answer(400, errors.length > 10 ? `${shown}\nuser 'fake': total ignored: ${errors.length} out of ${countEntries(decoded)}` : shown, push);
    }
    answer(204, '', push);
  }
}

function countEntries(d: Array<{ entries: unknown[] }>): number {
  return d.reduce((n, s) => n + s.entries.length, 0);
}

function nsToISO(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  return new Date(ms).toISOString();
}

interface PbTimestamp {
  seconds?: number | { toString(): string };
  nanos?: number;
}

function decodeProtobuf(body: Buffer) {
  let raw: Buffer;
  try {
    raw = uncompressSync(body) as Buffer;
  } catch (e) {
    throw new Error(`snappy: corrupt input (${(e as Error).message})`);
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

function decodeJSON(body: Buffer) {
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
