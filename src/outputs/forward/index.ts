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
 *
 * Files: `options.ts` the option table; `nodes.ts` the nodes (upstream file read by
 * `upstream.ts`) and the round robin with failover; `pool.ts` the kept connections to a node and
 * its TLS; `client.ts` one connection (handshake in `handshake.ts`, acks); `frame.ts` the frames.
 * This file batches events into frames and sends them.
 */
import { randomBytes } from 'node:crypto';
import type { RawSection } from '../../config/schema.js';
import type { LogEvent } from '../../core/event.js';
import { type DeliveryError, definePlugin, EncodeError, type OutgoingBatch, type OutputInstance, type PluginContext } from '../../core/plugin.js';
import type { Template } from '../../core/record-accessor.js';
import { formatKey, optionsBytes, type PreparedFrame, prepareFrame } from './frame.js';
import { type NodeSpec, resolveNodes, Upstream, type UpstreamNode } from './nodes.js';
import { type ForwardConfig, options } from './options.js';
import { ConnectionPool, type PoolSettings } from './pool.js';

/** What a forward output is built from, made once when the plan is made: its nodes, their TLS files read. */
interface Prepared {
  config: ForwardConfig;
  nodes: NodeSpec[];
}

function prepare(config: ForwardConfig, section: RawSection): Prepared {
  return { config, nodes: resolveNodes(config, section) };
}

const newChunk = () => randomBytes(16).toString('base64');

/**
 * What a frame is known by in `batch.accepted`: the tag template of the node it was made for and
 * its outgoing tag. A batch's events are the same on every attempt, so its frames are too; nodes
 * with the same tag template send the same frames, so a frame one node accepted is not sent to
 * another. (The frame's chunk id is new on every attempt, so it cannot be the key.)
 */
const frameKey = (spec: NodeSpec, tag: string) => `frame\0${spec.tag?.pattern ?? ''}\0${tag}`;

/** Groups events by outgoing tag, keeping their order within each tag. */
function group(events: readonly LogEvent[], tag: Template | undefined): Map<string, LogEvent[]> {
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

class ForwardOutput implements OutputInstance {
  private readonly upstream: Upstream;

  constructor(c: ForwardConfig, ctx: PluginContext, specs: NodeSpec[]) {
    const settings: PoolSettings = {
      timeouts: { connectMs: c['net.connect_timeout'] * 1000, ioMs: c['net.io_timeout'] * 1000 },
      keepalive: c['net.keepalive'],
      idleMs: c['net.keepalive_idle_timeout'] * 1000,
      maxIdle: c.workers,
      onUnsolicited: (err: DeliveryError) => ctx.logger.error({ err: err.message }, 'forward server sent an unexpected message; connection closed'),
    };
    this.upstream = new Upstream(specs, (s) => new ConnectionPool(s.endpoint, s.auth, settings), c.recover_wait * 1000, ctx);
  }

  /**
   * Sends the batch's frames, one per outgoing tag, trying the nodes in turn. A frame a node
   * acked (or, without require_ack_response, that was written) is recorded in `batch.accepted`,
   * so neither the next node nor a retry of the batch sends it again: each acked frame reaches
   * the upstream once.
   */
  async send(batch: OutgoingBatch, signal?: AbortSignal): Promise<void> {
    const { events, accepted } = batch;
    // Frames depend on the node's tag and format options; nodes that share them share frames.
    // Those already accepted are not encoded again.
    const prepared = new Map<string, Promise<PreparedFrame[]>>();
    const framesFor = (spec: NodeSpec): Promise<PreparedFrame[]> => {
      const key = `${spec.tag?.pattern ?? ''}\0${formatKey(spec.format)}`;
      let p = prepared.get(key);
      if (!p) {
        const groups = [...group(events, spec.tag)].filter(([t]) => !accepted.has(frameKey(spec, t)));
        p = Promise.all(groups.map(([t, evs]) => prepareFrame(t, evs, spec.format)));
        prepared.set(key, p);
      }
      return p;
    };
    await this.upstream.failover(async (node) => {
      let frames: PreparedFrame[];
      try {
        frames = await framesFor(node.spec);
      } catch (e) {
        // Not the node's fault, and the same records would fail the same way on a retry.
        throw new EncodeError(`cannot encode the batch: ${(e as Error).message}`);
      }
      await this.sendTo(node, frames, accepted, signal);
    }, signal);
  }

  private async sendTo({ spec, pool }: UpstreamNode, frames: PreparedFrame[], accepted: Set<string>, signal?: AbortSignal): Promise<void> {
    const pending = frames.filter((f) => !accepted.has(frameKey(spec, f.tag)));
    if (pending.length === 0) return;
    const lease = await pool.acquire(signal);
    // Aborted when shutdown's grace period is over: a frame waiting for its ack is cut.
    const cut = () => lease.conn.destroy();
    signal?.addEventListener('abort', cut, { once: true });
    try {
      for (const frame of pending) {
        await pool.request(
          lease,
          () => {
            const chunk = spec.format.requireAck ? newChunk() : undefined;
            const opts = optionsBytes(frame, spec.format, chunk);
            return { parts: opts ? [frame.head, frame.body, opts] : [frame.head, frame.body], chunk };
          },
          signal,
        );
        accepted.add(frameKey(spec, frame.tag));
      }
    } catch (e) {
      lease.conn.destroy();
      throw e;
    } finally {
      signal?.removeEventListener('abort', cut);
    }
    pool.release(lease);
  }

  async close(): Promise<void> {
    this.upstream.close();
  }
}

export const forwardOutput = definePlugin({
  kind: 'output',
  name: 'forward',
  description: "Send to Fluent Bit, Fluentd or logwarden over the forward protocol (Fluent Bit's out_forward: acks, shared key, gzip, upstream nodes)",
  options,
  prepare,
  create: ({ config, nodes }, ctx) => new ForwardOutput(config, ctx, nodes),
});
