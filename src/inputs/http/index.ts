/**
 * The `http` input: Fluent Bit's in_http (plugins/in_http) — records POSTed as JSON or form
 * data, tagged by the URL path — plus newline-delimited JSON and msgpack bodies. Each request
 * is one chunk, answered with successful_response_code once it is committed (see
 * ../http-common.ts for limits, timeouts and backpressure).
 */
import type http from 'node:http';
import { ConfigError } from '../../config/errors.js';
import type { OptionTable } from '../../config/schema.js';
import { EventTime, type LogEvent } from '../../core/event.js';
import { definePlugin, type PluginConfig } from '../../core/plugin.js';
import { AccessorSyntaxError, compileAccessor, setField, type RecordAccessor } from '../../core/record-accessor.js';
import { HttpError, HttpInput, httpServerOptions, mediaType, prepareHttpServer, type HttpEndpoint, type RequestLog } from '../http-common.js';
import { MEDIA_TYPES, decodeJSON, decodeMsgpack, decodeNDJSON, decodeURLEncoded, sanitizeTag, tagFromPath, type BodyType } from './decode.js';

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const options = {
  ...httpServerOptions({
    port: 9880,
    buffer_max_size: '4M',
    buffer_max_size_note: 'Fluent Bit default: 4M.',
    retry_after: 1,
  }),
  buffer_chunk_size: {
    type: 'size',
    default: '512K',
    min: 1024,
    description: "Initial size of a request's body buffer (Fluent Bit: its connection buffer); it doubles as the body arrives, up to buffer_max_size",
  },
  tag_key: {
    type: 'string',
    description: "Record key (or record accessor, e.g. $meta['tag']) whose string value becomes the record's tag",
  },
  successful_response_code: {
    type: 'int',
    default: 201,
    description: 'Status of a committed request: 200, 201 or 204',
    check: (v) => ([200, 201, 204].includes(v as number) ? undefined : 'expected 200, 201 or 204'),
  },
  success_header: {
    type: 'multi',
    description: "Header added to successful answers, each 'Name value' (may be given several times)",
  },
  add_remote_addr: {
    type: 'bool',
    default: false,
    description: 'Add the first address of the X-Forwarded-For header to each record under remote_addr_key',
  },
  remote_addr_key: { type: 'string', default: 'REMOTE_ADDR', description: 'Key of the address added by add_remote_addr' },
  http2: {
    type: 'bool',
    default: false,
    description: 'HTTP/2 is not served (HTTP/1.1 only); only off is accepted',
    check: (v) => (v === false ? undefined : 'HTTP/2 is not supported by this input; remove the option or set it to off'),
  },
} as const satisfies OptionTable;

type HttpConfig = PluginConfig<'input', typeof options>;

function parseHeaders(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of list ?? []) {
    const t = h.trim();
    const sp = t.search(/\s/);
    if (sp === -1) throw new Error(`found '${h}', expected 'Name value'`);
    const name = t.slice(0, sp);
    if (!HEADER_NAME.test(name)) throw new Error(`'${name}' is not a valid header name`);
    out[name] = t.slice(sp).trim();
  }
  return out;
}

const ACCEPTED = Object.keys(MEDIA_TYPES).join(', ');

interface Checked {
  type: BodyType;
  tag: string;
}

class HttpEndpointImpl implements HttpEndpoint<Checked> {
  readonly successStatus: number;
  readonly successHeaders: Record<string, string>;
  private readonly tagKey: RecordAccessor | undefined;

  constructor(
    private readonly c: HttpConfig,
    private readonly defaultTag: string,
  ) {
    this.successStatus = c.successful_response_code;
    this.successHeaders = parseHeaders(c.success_header);
    this.tagKey = c.tag_key === undefined ? undefined : compileAccessor(c.tag_key);
  }

  check(req: http.IncomingMessage, path: string): Checked {
    if (!path.startsWith('/')) throw new HttpError(400, `invalid request target '${path}'`, 'bad_request');
    if (req.method !== 'POST') throw new HttpError(405, `method ${req.method} not allowed; POST records`, 'bad_method', { Allow: 'POST' });
    const media = mediaType(req);
    if (media === undefined) throw new HttpError(415, `header 'Content-Type' is not set; expected one of ${ACCEPTED}`, 'bad_content_type');
    const type = MEDIA_TYPES[media];
    if (type === undefined) throw new HttpError(415, `Content-Type '${media}' is not supported; expected one of ${ACCEPTED}`, 'bad_content_type');
    return { type, tag: tagFromPath(path) ?? this.defaultTag };
  }

  decode(body: Buffer, state: Checked, req: http.IncomingMessage, log: RequestLog): LogEvent[] {
    // Fluent Bit stamps every record of a request with the time it was received.
    const time = EventTime.now();
    let records: Record<string, unknown>[];
    switch (state.type) {
      case 'json':
        records = decodeJSON(body.toString('utf8'));
        break;
      case 'ndjson':
        records = decodeNDJSON(body.toString('utf8'));
        break;
      case 'msgpack':
        records = decodeMsgpack(body);
        break;
      case 'urlencoded':
        records = decodeURLEncoded(body.toString('utf8'), (key) => log.report('bad_percent_encoding', 1, 'invalid percent-encoding in a form value; value kept as sent', { key }));
        break;
    }
    let remote: string | undefined;
    if (this.c.add_remote_addr) {
      const xff = req.headers['x-forwarded-for'];
      const first = (Array.isArray(xff) ? xff[0] : xff)?.split(',', 1)[0]?.trim();
      if (first) remote = first;
    }
    const events: LogEvent[] = new Array(records.length);
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      let tag = state.tag;
      if (this.tagKey) {
        const v = this.tagKey.get(record);
        if (typeof v === 'string' && v !== '') tag = sanitizeTag(v);
      }
      if (remote !== undefined) setField(record, this.c.remote_addr_key, remote);
      events[i] = { tag, time, record };
    }
    return events;
  }
}

export const httpInput = definePlugin({
  kind: 'input',
  name: 'http',
  description: 'Receives records over HTTP(S) POST: JSON, newline-delimited JSON, form data, msgpack (Fluent Bit in_http)',
  options,
  prepare(c, section) {
    const serverTls = prepareHttpServer(c, section);
    if (section.values.buffer_chunk_size !== undefined && c.buffer_chunk_size > c.buffer_max_size) {
      throw new ConfigError('buffer_chunk_size must not exceed buffer_max_size', section.keyPos.buffer_chunk_size ?? section.pos, 'buffer_chunk_size');
    }
    if (c.tag_key !== undefined) {
      try {
        compileAccessor(c.tag_key);
      } catch (e) {
        if (!(e instanceof AccessorSyntaxError)) throw e;
        throw new ConfigError(e.message, section.valuePos.tag_key ?? section.pos, 'tag_key');
      }
    }
    try {
      parseHeaders(c.success_header);
    } catch (e) {
      throw new ConfigError((e as Error).message, section.valuePos.success_header ?? section.pos, 'success_header');
    }
    return { config: c, serverTls };
  },
  create({ config: c, serverTls }, ctx) {
    return new HttpInput(c, ctx, new HttpEndpointImpl(c, c.tag ?? ctx.id), 'http input', serverTls);
  },
});
