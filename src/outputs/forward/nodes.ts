/**
 * The nodes of a forward output and the choice among them.
 *
 * `resolveNodes` runs when the plan is made: one node (host/port or unix_path), or one per [NODE]
 * of a Fluent Bit upstream file (./upstream.ts), each read with the output's own option specs and
 * checked with its own values (a key the node leaves out takes the output's), its TLS files read.
 *
 * `Upstream` picks the nodes a batch is tried on: round robin from the next node, nodes that
 * failed (connect, handshake, write or ack) last until their `recover_wait` is over; it keeps the
 * per-node metrics and logs a node leaving and rejoining the rotation.
 */
import { resolve } from 'node:path';
import { ConfigError, type SourcePos } from '../../config/errors.js';
import { coerceOption, type RawSection } from '../../config/schema.js';
import { DeliveryError, EncodeError, type PluginContext } from '../../core/plugin.js';
import { compileTemplate, type Template } from '../../core/record-accessor.js';
import { checkClientTls } from '../tls.js';
import type { Auth, Endpoint } from './client.js';
import type { FrameFormat } from './frame.js';
import { type ForwardConfig, options } from './options.js';
import { type ConnectionPool, endpointOf } from './pool.js';
import { readUpstreamFile } from './upstream.js';

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

/** A node as the plan resolved it: where to connect, the handshake, and how its frames are written. */
export interface NodeSpec {
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
  const keyed = c.shared_key !== undefined || c.empty_shared_key;
  return {
    name,
    endpoint: endpointOf(c, endpointBase, baseDir, posOf),
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
export function resolveNodes(c: ForwardConfig, section: RawSection): NodeSpec[] {
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

/** A node in rotation: its spec, its connections, and whether it is resting after a failure. */
export interface UpstreamNode {
  readonly spec: NodeSpec;
  readonly pool: ConnectionPool;
  downUntil: number;
  down: boolean;
}

const shutdownError = () => new DeliveryError('send abandoned at shutdown', true, 'shutdown');

/** The nodes of one output, tried round robin with failover. */
export class Upstream {
  private readonly nodes: UpstreamNode[];
  private next = 0;
  private readonly m;

  constructor(
    specs: readonly NodeSpec[],
    poolOf: (spec: NodeSpec) => ConnectionPool,
    private readonly recoverWaitMs: number,
    private readonly ctx: PluginContext,
  ) {
    const id = ctx.id;
    const failures = ctx.metrics.counter('logwarden_forward_node_failures_total', 'Failed attempts of a forward output per node, by reason', ['name', 'node', 'reason']);
    const up = ctx.metrics.gauge('logwarden_forward_node_up', '1 while a node of a forward output is in rotation, 0 while it is skipped after a failure', ['name', 'node']);
    this.m = {
      failure: (node: string, reason: string) => failures.labels(id, node, reason).inc(),
      up: (node: string, v: number) => up.labels(id, node).set(v),
    };
    this.nodes = specs.map((spec) => ({ spec, pool: poolOf(spec), downUntil: 0, down: false }));
    for (const n of this.nodes) this.m.up(n.spec.name, 1);
  }

  /** Nodes to try, in round-robin order from the next one; nodes in recover_wait go last. */
  private candidates(): UpstreamNode[] {
    const n = this.nodes.length;
    const start = this.next;
    this.next = (this.next + 1) % n;
    const now = Date.now();
    const ready: UpstreamNode[] = [];
    const resting: UpstreamNode[] = [];
    for (let i = 0; i < n; i++) {
      const node = this.nodes[(start + i) % n]!;
      (node.downUntil > now ? resting : ready).push(node);
    }
    resting.sort((a, b) => a.downUntil - b.downUntil);
    return ready.concat(resting);
  }

  /**
   * Runs `attempt` on the candidates in turn until one succeeds. A node whose attempt fails is
   * skipped for recover_wait and the next is tried at once; an EncodeError (the records' fault,
   * not the node's) ends the send at once. When every node failed: the last node's error (one
   * node) or one naming them all.
   */
  async failover(attempt: (node: UpstreamNode) => Promise<void>, signal?: AbortSignal): Promise<void> {
    const errors: string[] = [];
    let last: DeliveryError | undefined;
    for (const node of this.candidates()) {
      // Past the grace period: the batch is abandoned, and no node is to blame.
      if (signal?.aborted) throw shutdownError();
      try {
        await attempt(node);
        if (node.down) {
          node.down = false;
          this.m.up(node.spec.name, 1);
          this.ctx.logger.info({ node: node.spec.endpoint.label }, 'forward node recovered');
        }
        return;
      } catch (e) {
        if (e instanceof EncodeError) throw e;
        if (signal?.aborted) throw shutdownError();
        const err = e instanceof DeliveryError ? e : new DeliveryError((e as Error).message, true, 'error');
        last = err;
        errors.push(err.message);
        this.failed(node, err);
      }
    }
    if (this.nodes.length === 1) throw last!;
    throw new DeliveryError(`all ${this.nodes.length} upstream nodes failed: ${errors.join('; ')}`, true, last!.reason);
  }

  private failed(node: UpstreamNode, err: DeliveryError): void {
    this.m.failure(node.spec.name, err.reason);
    node.downUntil = Date.now() + this.recoverWaitMs;
    if (!node.down) {
      node.down = true;
      this.m.up(node.spec.name, 0);
    }
    if (this.nodes.length > 1) {
      this.ctx.logger.warn({ node: node.spec.endpoint.label, err: err.message, recover_wait_s: this.recoverWaitMs / 1000 }, 'forward node failed; skipping it and trying the next node');
    }
  }

  close(): void {
    for (const n of this.nodes) n.pool.close();
  }
}
