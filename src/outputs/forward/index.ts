/**
 * The `forward` output: Fluent Bit's out_forward, chaining logwarden into another Fluent Bit,
 * Fluentd or logwarden over Forward Protocol v1 (TCP, TLS or a Unix socket).
 *
 * Each batch becomes one frame per outgoing tag (Forward mode, or CompressedPackedForward with
 * `compress gzip`). Records that nothing in the chain read are written as the msgpack bytes they
 * arrived as. With `require_ack_response`, a frame counts as delivered only when the server
 * answered `{ack: chunk}`; otherwise once it is written to the socket.
 *
 * With `upstream`, frames go round robin over the nodes of a Fluent Bit upstream file; a node
 * that fails (connect, handshake, write or ack) is skipped for `recover_wait` and the frame goes
 * to the next node at once. Connections are kept open between batches, one request in flight per
 * connection: `workers` batches in flight means at most `workers` connections per node.
 *
 * The client is written on node:net / node:tls with the project's msgpack codec rather than
 * @fluent-org/logger: that library encodes records itself (no pass-through of received bytes),
 * acks per emitted record rather than per batch, and has no notion of an upstream of nodes.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { ConfigError, type SourcePos } from '../../config/errors.js';
import { coerceOption, type OptionTable, type RawSection } from '../../config/schema.js';
import type { LogEvent } from '../../core/event.js';
import { definePlugin, DeliveryError, EncodeError, type OutputInstance, type PluginConfig, type PluginContext } from '../../core/plugin.js';
import { compileTemplate, type Template } from '../../core/record-accessor.js';
import { ForwardConnection, type Auth, type ClientTimeouts, type Endpoint } from './client.js';
import { formatKey, optionsBytes, prepareFrame, type FrameFormat, type PreparedFrame } from './frame.js';
import { readUpstreamFile } from './upstream.js';
import { checkClientTls, clientTlsConnect, clientTlsOptions, keyPasswdOption, readTlsFiles } from '../tls.js';
import { deliveryOptions } from '../../core/common-options.js';

const options = {
  ...deliveryOptions({ batch_size: 5000, workers: 2 }),
  host: { type: 'string', default: '127.0.0.1', description: 'Server host (Fluent Bit, Fluentd or logwarden forward input)' },
  port: { type: 'int', default: 24224, min: 1, max: 65535, description: 'Server port' },
  unix_path: { type: 'string', description: 'Send over this Unix socket instead of TCP' },
  upstream: {
    type: 'string',
    description: 'Fluent Bit upstream file ([UPSTREAM] + [NODE] sections, or YAML upstream_servers) relative to the config file: frames go round robin over its nodes',
  },
  recover_wait: {
    type: 'duration',
    default: 10,
    description: "How long a node that failed is skipped before it is tried again (Fluentd out_forward's recover_wait)",
  },
  tag: {
    type: 'string',
    description: "Outgoing tag, a record accessor template ($TAG, $TAG[n], $key['sub']); default: the event's tag",
  },
  time_as_integer: { type: 'bool', default: false, description: 'Send times as integer seconds (Fluentd v0.12); drops nanoseconds and metadata' },
  retain_metadata_in_forward_mode: {
    type: 'bool',
    default: true,
    description: 'Send event metadata as [[time, metadata], record] entries (Fluent Bit >= 5.0.5 default); off for receivers that only read [time, record]',
  },
  send_options: { type: 'bool', default: false, description: 'Always send the options map with size (implied by require_ack_response, compress gzip and add_option)' },
  require_ack_response: {
    type: 'bool',
    default: false,
    description: 'Send a chunk id and count a frame as delivered only when the server acks it (at-least-once); off: delivered once written',
  },
  compress: { type: 'enum', values: ['text', 'gzip'], default: 'text', description: 'gzip: send CompressedPackedForward frames' },
  add_option: { type: 'multi', description: "Extra entry of the options map, 'key value' (may be given several times)" },
  shared_key: { type: 'string', description: 'Shared key of the HELO/PING/PONG handshake (the server must have the same)' },
  empty_shared_key: { type: 'bool', default: false, description: 'Run the handshake with an empty shared key' },
  self_hostname: { type: 'string', default: 'localhost', description: 'Client hostname sent in PING' },
  username: { type: 'string', description: 'User for servers with user authentication (needs shared_key)' },
  password: { type: 'string', description: 'Password of username' },
  tls: { type: 'bool', default: false, description: 'Use TLS' },
  ...clientTlsOptions('host'),
  ...keyPasswdOption,
  'net.connect_timeout': { type: 'duration', fluentBit: 'time', default: 10, description: 'Seconds to connect, including TLS and waiting for HELO (Fluent Bit default 10)' },
  'net.io_timeout': { type: 'duration', fluentBit: 'time', default: 60, description: 'Seconds to wait for PONG and for each ack before the attempt fails' },
  'net.keepalive': { type: 'bool', default: true, description: 'Keep connections open between batches' },
  'net.keepalive_idle_timeout': { type: 'duration', fluentBit: 'time', default: 30, description: 'Close a kept connection unused this long (Fluent Bit default 30)' },
} as const satisfies OptionTable;

type ForwardConfig = PluginConfig<'output', typeof options>;

/**
 * Keys a [NODE] may set (Fluent Bit reads these per node: flb_upstream_ha.c create_node for the
 * network and TLS keys, out_forward config_set_properties for the rest). A node value overrides
 * the output's; a key the node leaves out takes the output's value.
 */
const NODE_KEYS = [
  'name',
  'host',
  'port',
  'tls',
  'tls.verify',
  'tls.verify_hostname',
  'tls.vhost',
  'tls.ca_file',
  'tls.crt_file',
  'tls.key_file',
  'tls.key_passwd',
  'shared_key',
  'empty_shared_key',
  'self_hostname',
  'username',
  'password',
  'tag',
  'time_as_integer',
  'retain_metadata_in_forward_mode',
  'send_options',
  'require_ack_response',
  'compress',
] as const;

const NODE_KEY_SET = new Set<string>(NODE_KEYS);

interface NodeSpec {
  name: string;
  endpoint: Endpoint;
  auth: Auth | undefined;
  format: FrameFormat;
  tag: Template | undefined;
}

type PosOf = (key: string) => SourcePos | undefined;

function parseAddOptions(list: string[] | undefined, posOf: PosOf): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const e of list ?? []) {
    const m = /^\s*(\S+)\s+(.*?)\s*$/.exec(e);
    if (!m) throw new ConfigError(`found '${e}', expected 'key value'`, posOf('add_option'), 'add_option');
    if (m[1] === 'chunk' || m[1] === 'size' || m[1] === 'compressed') {
      throw new ConfigError(`'${m[1]}' is set by the output itself`, posOf('add_option'), 'add_option');
    }
    out.push([m[1]!, m[2]!]);
  }
  return out;
}

/** Cross-option checks that apply to the output and to each node (with the node's values). */
function checkCombination(c: ForwardConfig, posOf: PosOf): void {
  if (c.compress === 'gzip' && c.time_as_integer) {
    // forward.c config_set_properties: "compress mode gzip is incompatible with time_as_integer"
    throw new ConfigError('compress gzip cannot be combined with time_as_integer (as in Fluent Bit)', posOf('compress') ?? posOf('time_as_integer'), 'compress');
  }
  if (c.shared_key !== undefined && c.empty_shared_key) {
    throw new ConfigError('set shared_key or empty_shared_key, not both', posOf('empty_shared_key'), 'empty_shared_key');
  }
  const keyed = c.shared_key !== undefined || c.empty_shared_key;
  for (const k of ['username', 'password'] as const) {
    if (c[k] !== undefined && !keyed) {
      throw new ConfigError(`${k} is sent in the handshake, which needs shared_key (or empty_shared_key)`, posOf(k), k);
    }
  }
  if (c.username !== undefined && c.password === undefined) throw new ConfigError('username needs password', posOf('username'), 'username');
  checkClientTls(c, posOf);
}

function compileTag(text: string | undefined, posOf: PosOf): Template | undefined {
  if (text === undefined) return undefined;
  if (text === '') throw new ConfigError('tag must not be empty', posOf('tag'), 'tag');
  try {
    return compileTemplate(text);
  } catch (e) {
    throw new ConfigError((e as Error).message, posOf('tag'), 'tag');
  }
}

function specOf(c: ForwardConfig, name: string, endpointBase: Omit<Endpoint, 'tls'>, baseDir: string, posOf: PosOf, extra: Array<[string, string]>): NodeSpec {
  checkCombination(c, posOf);
  let tlsOptions: ConnectionOptions | undefined;
  if (c.tls) {
    const host = endpointBase.host ?? '';
    tlsOptions = clientTlsConnect(c, readTlsFiles(c, baseDir, posOf), { name: host, sni: !isIP(host) });
  }
  const keyed = c.shared_key !== undefined || c.empty_shared_key;
  return {
    name,
    endpoint: { ...endpointBase, ...(tlsOptions ? { tls: tlsOptions } : {}) },
    auth: keyed ? { sharedKey: c.empty_shared_key ? '' : c.shared_key!, selfHostname: c.self_hostname, username: c.username ?? '', password: c.password ?? '' } : undefined,
    format: {
      timeAsInteger: c.time_as_integer,
      retainMetadata: c.retain_metadata_in_forward_mode,
      compress: c.compress,
      sendOptions: c.send_options,
      requireAck: c.require_ack_response,
      extraOptions: extra,
    },
    tag: compileTag(c.tag, posOf),
  };
}

function hostLabel(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The nodes of an output: one (host/port or unix_path) or those of the upstream file. */
function resolveNodes(c: ForwardConfig, section: RawSection): NodeSpec[] {
  const at: PosOf = (k) => section.valuePos[k] ?? section.keyPos[k];
  const explicit = (k: string) => k in section.values;
  const extra = parseAddOptions(c.add_option, at);
  if (c.upstream === undefined) {
    if (c.unix_path !== undefined) {
      for (const k of ['host', 'port', 'tls']) {
        if (explicit(k) && (k !== 'tls' || c.tls)) throw new ConfigError(`set unix_path or ${k}, not both`, section.keyPos[k], k);
      }
      const path = resolve(section.baseDir, c.unix_path);
      return [specOf(c, path, { label: path, path }, section.baseDir, at, extra)];
    }
    const label = hostLabel(c.host, c.port);
    return [specOf(c, label, { label, host: c.host, port: c.port }, section.baseDir, at, extra)];
  }
  for (const k of ['host', 'port', 'unix_path']) {
    if (explicit(k)) throw new ConfigError(`set upstream or ${k}, not both (the nodes of the upstream file say where to send)`, section.keyPos[k], k);
  }
  const file = resolve(section.baseDir, c.upstream);
  const up = readUpstreamFile(file, at('upstream'));
  const names = new Set<string>();
  return up.nodes.map((n) => {
    const nodeAt: PosOf = (k) => n.valuePos[k] ?? n.keyPos[k] ?? at(k);
    for (const k of Object.keys(n.values)) {
      if (!NODE_KEY_SET.has(k)) {
        throw new ConfigError(`unknown node option '${k}'; a node takes ${NODE_KEYS.join(', ')}`, n.keyPos[k], k);
      }
    }
    for (const k of ['name', 'host', 'port']) {
      if (!(k in n.values)) throw new ConfigError(`node needs ${k} (name, host and port are mandatory in Fluent Bit)`, n.pos, k);
    }
    // A node's values are read by the output's own option specs, so they have the config's types.
    const own: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(n.values)) {
      if (k === 'name') continue;
      own[k] = coerceOption(k, options[k as (typeof NODE_KEYS)[number] & keyof typeof options], v, n.valuePos[k]);
    }
    const cfg: ForwardConfig = Object.assign({}, c, own);
    const name = String(n.values.name);
    if (names.has(name)) throw new ConfigError(`two nodes are named '${name}'`, n.valuePos.name, 'name');
    names.add(name);
    const label = `${name} (${hostLabel(cfg.host, cfg.port)})`;
    // TLS files named in the upstream file are relative to it; inherited ones to the config file.
    const ownTls = (k: string) => k in n.values;
    const baseDir = ['tls.ca_file', 'tls.crt_file', 'tls.key_file'].some(ownTls) ? n.baseDir : section.baseDir;
    return specOf(cfg, name, { label, host: cfg.host, port: cfg.port }, baseDir, nodeAt, extra);
  });
}

/** What a forward output is built from, made once when the plan is made: its nodes, their TLS files read. */
interface Prepared {
  config: ForwardConfig;
  nodes: NodeSpec[];
}

function prepare(config: ForwardConfig, section: RawSection): Prepared {
  return { config, nodes: resolveNodes(config, section) };
}

const newChunk = () => randomBytes(16).toString('base64');

/** A node and its kept connections. */
class Node {
  private readonly idle: ForwardConnection[] = [];
  /** Every open connection, idle or in use (closed with the output). */
  private readonly all = new Set<ForwardConnection>();
  private closed = false;
  private readonly idleTimers = new Map<ForwardConnection, NodeJS.Timeout>();
  downUntil = 0;
  down = false;

  constructor(
    readonly spec: NodeSpec,
    private readonly timeouts: ClientTimeouts,
    private readonly keepalive: boolean,
    private readonly idleMs: number,
    private readonly maxIdle: number,
    private readonly onUnsolicited: (err: DeliveryError) => void,
  ) {}

  /** A kept connection when one is alive, else a new one (connect + handshake). */
  async acquire(signal?: AbortSignal): Promise<{ conn: ForwardConnection; reused: boolean }> {
    while (this.idle.length) {
      const conn = this.idle.pop()!;
      clearTimeout(this.idleTimers.get(conn));
      this.idleTimers.delete(conn);
      if (conn.alive) return { conn, reused: true };
    }
    return { conn: await this.open(signal), reused: false };
  }

  async open(signal?: AbortSignal): Promise<ForwardConnection> {
    if (this.closed) throw new DeliveryError(`${this.spec.endpoint.label}: output closed`, true, 'shutdown');
    const conn = await ForwardConnection.open(this.spec.endpoint, this.spec.auth, this.timeouts, this.onUnsolicited, signal);
    this.all.add(conn);
    conn.onClose(() => this.all.delete(conn));
    if (this.closed) conn.destroy();
    return conn;
  }

  release(conn: ForwardConnection): void {
    if (!conn.alive) {
      conn.destroy();
      return;
    }
    if (this.closed || !this.keepalive || !conn.keepalive || this.idle.length >= this.maxIdle) {
      conn.end();
      return;
    }
    this.idle.push(conn);
    const t = setTimeout(() => {
      this.idleTimers.delete(conn);
      const i = this.idle.indexOf(conn);
      if (i >= 0) this.idle.splice(i, 1);
      conn.end();
    }, this.idleMs);
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

class ForwardOutput implements OutputInstance {
  private readonly nodes: Node[];
  private next = 0;
  private readonly m;

  constructor(
    private readonly c: ForwardConfig,
    private readonly ctx: PluginContext,
    specs: NodeSpec[],
    workers: number,
  ) {
    const id = ctx.id;
    const failures = ctx.metrics.counter('logwarden_forward_node_failures_total', 'Failed attempts of a forward output per node, by reason', ['name', 'node', 'reason']);
    const up = ctx.metrics.gauge('logwarden_forward_node_up', '1 while a node of a forward output is in rotation, 0 while it is skipped after a failure', ['name', 'node']);
    this.m = {
      failure: (node: string, reason: string) => failures.labels(id, node, reason).inc(),
      up: (node: string, v: number) => up.labels(id, node).set(v),
    };
    const timeouts: ClientTimeouts = { connectMs: c['net.connect_timeout'] * 1000, ioMs: c['net.io_timeout'] * 1000 };
    const onUnsolicited = (err: DeliveryError) => ctx.logger.error({ err: err.message }, 'forward server sent an unexpected message; connection closed');
    this.nodes = specs.map((s) => new Node(s, timeouts, c['net.keepalive'], c['net.keepalive_idle_timeout'] * 1000, workers, onUnsolicited));
    for (const n of this.nodes) this.m.up(n.spec.name, 1);
  }

  /** Nodes to try, in round-robin order from the next one; nodes in recover_wait go last. */
  private candidates(): Node[] {
    const n = this.nodes.length;
    const start = this.next;
    this.next = (this.next + 1) % n;
    const now = Date.now();
    const ready: Node[] = [];
    const resting: Node[] = [];
    for (let i = 0; i < n; i++) {
      const node = this.nodes[(start + i) % n]!;
      (node.downUntil > now ? resting : ready).push(node);
    }
    resting.sort((a, b) => a.downUntil - b.downUntil);
    return ready.concat(resting);
  }

  /** Groups events by outgoing tag, keeping their order within each tag. */
  private group(events: readonly LogEvent[], tag: Template | undefined): Map<string, LogEvent[]> {
    const out = new Map<string, LogEvent[]>();
    const add = (t: string, ev: LogEvent) => {
      const list = out.get(t);
      if (list) list.push(ev);
      else out.set(t, [ev]);
    };
    if (!tag) {
      for (const ev of events) add(ev.tag, ev);
    } else if (tag.isStatic) {
      const cache = new Map<string, string>();
      for (const ev of events) {
        let t = cache.get(ev.tag);
        if (t === undefined) {
          t = tag.render(ev.tag, {}) || ev.tag;
          cache.set(ev.tag, t);
        }
        add(t, ev);
      }
    } else {
      // Fluent Bit falls back to the event's tag when the template renders nothing.
      for (const ev of events) add(tag.render(ev.tag, ev.record) || ev.tag, ev);
    }
    return out;
  }

  async send(events: LogEvent[], signal?: AbortSignal): Promise<void> {
    // Frames depend on the node's tag and format options; nodes that share them share frames.
    const prepared = new Map<string, Promise<PreparedFrame[]>>();
    const framesFor = (spec: NodeSpec): Promise<PreparedFrame[]> => {
      const key = `${spec.tag?.pattern ?? ''}\0${formatKey(spec.format)}`;
      let p = prepared.get(key);
      if (!p) {
        p = Promise.all([...this.group(events, spec.tag)].map(([t, evs]) => prepareFrame(t, evs, spec.format)));
        prepared.set(key, p);
      }
      return p;
    };
    // Frames already delivered are not sent again to the next node.
    const done = new Set<string>();
    const errors: string[] = [];
    let last: DeliveryError | undefined;
    for (const node of this.candidates()) {
      // Past the grace period: the batch is abandoned, and no node is to blame.
      if (signal?.aborted) throw new DeliveryError('send abandoned at shutdown', true, 'shutdown');
      let frames: PreparedFrame[];
      try {
        frames = await framesFor(node.spec);
      } catch (e) {
        // Not the node's fault, and the same records would fail the same way on a retry.
        throw new EncodeError(`cannot encode the batch: ${(e as Error).message}`);
      }
      try {
        await this.sendTo(node, frames, done, signal);
        if (node.down) {
          node.down = false;
          this.m.up(node.spec.name, 1);
          this.ctx.logger.info({ node: node.spec.endpoint.label }, 'forward node recovered');
        }
        return;
      } catch (e) {
        if (signal?.aborted) throw new DeliveryError('send abandoned at shutdown', true, 'shutdown');
        const err = e instanceof DeliveryError ? e : new DeliveryError((e as Error).message, true, 'error');
        last = err;
        errors.push(err.message);
        this.m.failure(node.spec.name, err.reason);
        node.downUntil = Date.now() + this.c.recover_wait * 1000;
        if (!node.down) {
          node.down = true;
          this.m.up(node.spec.name, 0);
        }
        if (this.nodes.length > 1) {
          this.ctx.logger.warn({ node: node.spec.endpoint.label, err: err.message, recover_wait_s: this.c.recover_wait }, 'forward node failed; skipping it and trying the next node');
        }
      }
    }
    if (this.nodes.length === 1) throw last!;
    throw new DeliveryError(`all ${this.nodes.length} upstream nodes failed: ${errors.join('; ')}`, true, last!.reason);
  }

  private async sendTo(node: Node, frames: PreparedFrame[], done: Set<string>, signal?: AbortSignal): Promise<void> {
    let { conn, reused } = await node.acquire(signal);
    // Aborted when shutdown's grace period is over: a frame waiting for its ack is cut.
    const cut = () => conn.destroy();
    signal?.addEventListener('abort', cut, { once: true });
    try {
      const tagKey = node.spec.tag?.pattern ?? '';
      for (const frame of frames) {
        const key = `${tagKey}\0${frame.tag}`;
        if (done.has(key)) continue;
        const attempt = () => {
          const chunk = node.spec.format.requireAck ? newChunk() : undefined;
          const opts = optionsBytes(frame, node.spec.format, chunk);
          return conn.request(opts ? [frame.head, frame.body, opts] : [frame.head, frame.body], chunk);
        };
        try {
          await attempt();
        } catch (e) {
          // A kept connection the server closed while it sat idle: one fresh connection, then
          // the error counts against the node.
          if (!reused || conn.used !== 1 || !(e instanceof DeliveryError) || e.reason !== 'connection') throw e;
          conn.destroy();
          conn = await node.open(signal);
          reused = false;
          await attempt();
        }
        reused = false;
        done.add(key);
      }
    } catch (e) {
      conn.destroy();
      throw e;
    } finally {
      signal?.removeEventListener('abort', cut);
    }
    node.release(conn);
  }

  async close(): Promise<void> {
    for (const n of this.nodes) n.close();
  }
}

export const forwardOutput = definePlugin({
  kind: 'output',
  name: 'forward',
  description: "Send to Fluent Bit, Fluentd or logwarden over the forward protocol (Fluent Bit's out_forward: acks, shared key, gzip, upstream nodes)",
  options,
  prepare,
  create: ({ config, nodes }, ctx) => new ForwardOutput(config, ctx, nodes, config.workers),
});
