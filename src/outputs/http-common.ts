/**
 * What the HTTP outputs (loki, alertmanager) share: Fluent Bit's TLS (./tls.ts), auth and network
 * option names, one undici dispatcher per output (keep-alive pools with timeouts), and the mapping of an
 * HTTP answer to the delivery engine's retryable / non-retryable errors.
 */
import { Agent, errors as undiciErrors, request, type Dispatcher } from 'undici';
import { ConfigError } from '../config/errors.js';
import type { OptionTable, RawSection } from '../config/schema.js';
import { DeliveryError, type ConfigOf } from '../core/plugin.js';
import { checkClientTls, clientTlsConnect, clientTlsOptions, readTlsFiles, type TlsFiles } from './tls.js';

export const httpClientOptions = {
  tls: { type: 'bool', default: false, description: 'Use TLS (https)' },
  ...clientTlsOptions('the URL host'),
  http_user: { type: 'string', description: 'Basic authentication user' },
  http_passwd: { type: 'string', default: '', description: 'Basic authentication password' },
  bearer_token: { type: 'string', description: 'Bearer token sent as Authorization: Bearer <token>' },
  'net.connect_timeout': { type: 'duration', fluentBit: 'time', default: 10, description: 'Seconds to wait for a connection (Fluent Bit default 10)' },
  'net.io_timeout': {
    type: 'duration',
    fluentBit: 'time',
    default: 60,
    description: 'Seconds to wait for response headers and between body bytes before the attempt fails and is retried',
  },
  'net.keepalive': { type: 'bool', default: true, description: 'Reuse connections between requests' },
  header: {
    type: 'multi',
    description: "Extra HTTP header as 'Name value' (Fluent Bit's header); repeat it or give a list for several",
  },
} as const satisfies OptionTable;

export type HttpClientConfig = ConfigOf<typeof httpClientOptions>;

/**
 * What an output's HTTP client is built from, made when the plan is made: the options checked,
 * the `header` entries parsed and the TLS files read (once: the running output does not read
 * them again).
 */
export interface HttpClientSetup {
  config: HttpClientConfig;
  headers: Record<string, string>;
  files: TlsFiles;
}

/** Headers the client sets itself from the body and the connection; a `header` entry may not replace them. */
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'content-encoding', 'transfer-encoding', 'host', 'connection']);

/** RFC 9110 token: what a header name may be made of. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Parses Fluent Bit's `header` entries (`Name value`: the name, then whitespace, then the value,
 * which may hold spaces) into lower-case names and values. A malformed entry, a reserved header,
 * a name given twice, or `Authorization` together with http_user / bearer_token is a ConfigError
 * at the option's position. `forbidden` names headers an output sets from its own options
 * (name -> the option to use instead).
 */
export function parseHeaders(c: HttpClientConfig, section: RawSection, forbidden: Record<string, string> = {}): Record<string, string> {
  const at = section.valuePos.header ?? section.keyPos.header ?? section.pos;
  const out: Record<string, string> = {};
  for (const raw of c.header ?? []) {
    const entry = String(raw).trim();
    const m = /^(\S+)\s+(.*)$/s.exec(entry);
    if (!m) throw new ConfigError(`invalid header ${JSON.stringify(entry)}: expected 'Name value'`, at, 'header');
    const name = m[1]!.replace(/:$/, '');
    const value = m[2]!.trim();
    if (!HEADER_NAME.test(name)) throw new ConfigError(`invalid header name ${JSON.stringify(name)}`, at, 'header');
    if (/[\r\n\0]/.test(value)) throw new ConfigError(`invalid value for header ${name}: control characters`, at, 'header');
    const lower = name.toLowerCase();
    if (RESERVED_HEADERS.has(lower)) throw new ConfigError(`header ${name} is set by the output itself and cannot be replaced`, at, 'header');
    if (forbidden[lower]) throw new ConfigError(`header ${name}: use ${forbidden[lower]} instead`, at, 'header');
    if (lower === 'authorization' && (c.http_user !== undefined || c.bearer_token !== undefined)) {
      throw new ConfigError('set header Authorization or http_user/bearer_token, not both', at, 'header');
    }
    if (lower in out) throw new ConfigError(`header ${name} is given twice`, at, 'header');
    out[lower] = value;
  }
  return out;
}

/** Cross-option checks shared by the HTTP outputs, then the headers parsed and the TLS files read. */
export function prepareHttpClient(c: HttpClientConfig, section: RawSection): HttpClientSetup {
  const at = (k: string) => section.keyPos[k] ?? section.pos;
  if (c.http_user !== undefined && c.bearer_token !== undefined) {
    throw new ConfigError('set http_user/http_passwd or bearer_token, not both', at('bearer_token'), 'bearer_token');
  }
  checkClientTls(c, at);
  const headers = parseHeaders(c, section);
  return { config: c, headers, files: readTlsFiles(c, section.baseDir, (k) => section.valuePos[k] ?? section.pos) };
}

export interface HttpResponse {
  status: number;
  body: string;
  /** The answer's Retry-After header, when it has one. */
  retryAfter?: string;
}

/** Most of a response body worth keeping in an error message. */
const MAX_ERROR_BODY = 1024;

/**
 * One output's HTTP client: a keep-alive agent sized to the output's workers, with the TLS
 * material read when the plan was made, and the Authorization header computed once.
 */
export class HttpClient {
  readonly dispatcher: Dispatcher;
  private readonly auth: string | undefined;
  private readonly ioTimeoutMs: number;
  /** The `header` entries, sent with every request. */
  readonly extraHeaders: Record<string, string>;

  constructor(setup: HttpClientSetup, connections: number) {
    const { config: c, files } = setup;
    this.ioTimeoutMs = c['net.io_timeout'] * 1000;
    this.dispatcher = new Agent({
      connections,
      connectTimeout: c['net.connect_timeout'] * 1000,
      headersTimeout: this.ioTimeoutMs,
      bodyTimeout: this.ioTimeoutMs,
      pipelining: c['net.keepalive'] ? 1 : 0,
      connect: clientTlsConnect(c, files),
    });
    this.extraHeaders = setup.headers;
    if (c.bearer_token !== undefined) this.auth = `Bearer ${c.bearer_token}`;
    else if (c.http_user !== undefined) this.auth = `Basic ${Buffer.from(`${c.http_user}:${c.http_passwd}`).toString('base64')}`;
  }

  /**
   * POSTs a body; resolves with the status and (text) body of any HTTP answer. Transport failures
   * (refused, reset, timeouts, TLS) reject with a retryable DeliveryError. `signal` aborts the
   * request (undici then destroys its connection).
   */
  async post(url: string, body: Uint8Array | string, headers: Record<string, string>, signal?: AbortSignal): Promise<HttpResponse> {
    // The output's own headers (content type, tenant) win over `header` entries.
    const h: Record<string, string> = { 'user-agent': 'logwarden', ...this.extraHeaders, ...headers };
    if (this.auth) h.authorization = this.auth;
    try {
      const res = await request(url, { method: 'POST', body, headers: h, dispatcher: this.dispatcher, ...(signal ? { signal } : {}) });
      const text = await res.body.text();
      const retryAfter = res.headers['retry-after'];
      const out: HttpResponse = { status: res.statusCode, body: text };
      if (retryAfter !== undefined) out.retryAfter = Array.isArray(retryAfter) ? retryAfter[0] : retryAfter;
      return out;
    } catch (e) {
      if (signal?.aborted) throw new DeliveryError(`${safeUrl(url)}: request aborted at shutdown`, true, 'shutdown');
      throw transportError(url, e);
    }
  }

  /**
   * Closes every connection at once. By then the delivery engine has delivered or abandoned
   * every batch; what may still be in flight (an Alertmanager re-send) must not hold the
   * shutdown until net.io_timeout.
   */
  async close(): Promise<void> {
    await this.dispatcher.destroy();
  }
}

function transportError(url: string, e: unknown): DeliveryError {
  const err = e as NodeJS.ErrnoException;
  const where = safeUrl(url);
  if (e instanceof undiciErrors.HeadersTimeoutError || e instanceof undiciErrors.BodyTimeoutError) {
    return new DeliveryError(`${where}: no answer within net.io_timeout (${err.message})`, true, 'timeout');
  }
  if (e instanceof undiciErrors.ConnectTimeoutError) {
    return new DeliveryError(`${where}: connect timeout (${err.message})`, true, 'timeout');
  }
  const code = err.code ?? (err.cause as NodeJS.ErrnoException | undefined)?.code;
  const detail = (err.cause as Error | undefined)?.message ?? err.message;
  if (typeof code === 'string' && /CERT|SSL|TLS|SELF_SIGNED|HOSTNAME|UNABLE_TO_|VERIFY|EPROTO/.test(code)) {
    return new DeliveryError(`${where}: TLS error ${code}: ${detail}`, true, 'tls');
  }
  return new DeliveryError(`${where}: ${code ? `${code} ` : ''}${detail}`, true, 'connection');
}

/** The URL without credentials, for logs. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url;
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const LONG_DAY = '(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)';
const MONTH = `(${MONTHS.join('|')})`;
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
/** IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`. */
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
/** RFC 850 (obsolete): `Sunday, 06-Nov-94 08:49:37 GMT`. */
const RFC850_DATE = new RegExp(`^${LONG_DAY}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`);
/** asctime (obsolete): `Sun Nov  6 08:49:37 1994`. */
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`);

/** Milliseconds since the epoch of an RFC 9110 HTTP-date (any of its three formats, all GMT); undefined when it is none. */
export function parseHttpDate(text: string, nowMs = Date.now()): number | undefined {
  let day: string;
  let month: string;
  let year: number;
  let time: string[];
  let m = IMF_FIXDATE.exec(text);
  if (m) {
    day = m[1]!;
    month = m[2]!;
    year = Number(m[3]);
    time = m.slice(4, 7);
  } else if ((m = RFC850_DATE.exec(text))) {
    day = m[1]!;
    month = m[2]!;
    // RFC 9110 5.6.7: a two-digit year that would be more than 50 years ahead is in the past century.
    year = 2000 + Number(m[3]);
    if (year > new Date(nowMs).getUTCFullYear() + 50) year -= 100;
    time = m.slice(4, 7);
  } else if ((m = ASCTIME_DATE.exec(text))) {
    month = m[1]!;
    day = m[2]!.trim();
    time = m.slice(3, 6);
    year = Number(m[6]);
  } else return undefined;
  const d = Number(day);
  const [h = 0, min = 0, sec = 0] = time.map(Number);
  if (h > 23 || min > 59 || sec > 60) return undefined;
  const ms = Date.UTC(year, MONTHS.indexOf(month), d, h, min, Math.min(sec, 59));
  // Date.UTC rolls 31 Feb over into March: such a day is not a date.
  return new Date(ms).getUTCDate() === d ? ms : undefined;
}

/**
 * Seconds a `Retry-After` value (RFC 9110 10.2.3: delay-seconds or an HTTP-date) asks the client
 * to wait from `nowMs`; 0 for a date that has passed. Undefined for anything else: a bad value is
 * ignored.
 */
export function parseRetryAfter(value: string | undefined, nowMs = Date.now()): number | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v);
  const at = parseHttpDate(v, nowMs);
  return at === undefined ? undefined : Math.max(0, (at - nowMs) / 1000);
}

/**
 * Of two retryable failures of one batch (two tenants, two URLs), the one to report: the first,
 * unless the other asks for a longer Retry-After, so that the retry waits for the slowest.
 */
export function laterRetry(first: DeliveryError | undefined, other: DeliveryError): DeliveryError {
  if (first === undefined) return other;
  return (other.retryAfter ?? 0) > (first.retryAfter ?? 0) ? other : first;
}

/**
 * Maps an HTTP status to the delivery engine's classification, as Vector's HTTP retry logic and
 * Loki's documented answers: any 2xx is success; 408, 429 and 5xx except 501 are retried; other
 * statuses (400 bad data, 401/403 auth, 404 wrong URI, 413 too large, 501) are not, because the
 * same request would fail the same way. A 429 or 503 with a valid Retry-After carries it (the
 * engine waits that long, up to scheduler.cap). Returns undefined on success.
 */
export function classifyStatus(res: HttpResponse, where: string, nowMs = Date.now()): DeliveryError | undefined {
  const { status } = res;
  if (status >= 200 && status < 300) return undefined;
  const text = res.body.length > MAX_ERROR_BODY ? `${res.body.slice(0, MAX_ERROR_BODY)}...` : res.body;
  const msg = `${where}: HTTP ${status}${text.trim() ? `: ${text.trim()}` : ''}`;
  const retryable = status === 408 || status === 429 || (status >= 500 && status !== 501);
  // RFC 9110 10.2.3: sent with 503, and with 429 (RFC 6585); other statuses do not ask for it.
  const retryAfter = status === 429 || status === 503 ? parseRetryAfter(res.retryAfter, nowMs) : undefined;
  return new DeliveryError(msg, retryable, `http_${status}`, retryAfter);
}
