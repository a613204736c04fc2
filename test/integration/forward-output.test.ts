/**
 * The forward output over real sockets: into logwarden's own forward input (two pipelines in one
 * process, or `logwarden run` child processes for failover), and into a capture server that
 * decodes the wire with @msgpack/msgpack (a decoder independent of the project's) to pin the
 * frame shapes Fluent Bit's out_forward sends.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Decoder } from '@msgpack/msgpack';
import { forwardInput } from '../../src/inputs/forward/index.js';
import { forwardOutput } from '../../src/outputs/forward/index.js';
import { fileOutput } from '../../src/outputs/file/index.js';
import { EventTime, type LogEvent } from '../../src/core/event.js';
import { ConfigErrors } from '../../src/config/errors.js';
import { loadConfigFile } from '../../src/config/load.js';
import { Commit } from '../../src/core/commit.js';
import { Pipeline } from '../../src/core/pipeline.js';
import { plan } from '../../src/core/plan.js';
import { jsonLogger, registryOf } from '../support/harness.js';
import { events, startPipeline, tempDir, type RunningPipeline } from '../support/output-pipeline.js';
import { startInput, type StartedInput } from '../support/input-server.js';
import { pki, writePki } from '../support/certs.js';
import { pack, RawClient } from '../support/forward-client.js';
import type { Daemon } from '../support/cli.js';

const plugins = [forwardInput, forwardOutput, fileOutput];

interface Receiver extends Omit<StartedInput, 'lines'> {
  lines(tag: string): Array<Record<string, unknown>>;
}

/** A logwarden pipeline: forward input on a free port -> json_lines files per tag. */
async function receiver(options = '', dir?: string): Promise<Receiver> {
  const s = await startInput('forward', plugins, { options, dir });
  return { ...s, lines: (tag) => s.lines(tag).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/** A pipeline without inputs whose only output is `forward` with these options (tests ingest). */
async function sender(outputOptions: string, dir?: string, service = ''): Promise<RunningPipeline> {
  return startPipeline(
    `
service:
  grace: 2
${service.replace(/^/gm, '  ')}
pipeline:
  outputs:
    - name: forward
      match: '*'
      batch_wait: 0.05
      scheduler.base: 0.05
      scheduler.cap: 0.2
${outputOptions.replace(/^/gm, '      ')}
`,
    plugins,
    dir,
  );
}

/** A forward server that records decoded frames (independent decoder) and can ack them. */
class CaptureServer {
  readonly frames: unknown[][] = [];
  readonly raw: Buffer[] = [];
  connections = 0;
  private readonly sockets = new Set<net.Socket>();
  private server!: net.Server;
  port = 0;
  ack = true;

  async start(onConnect?: (s: net.Socket) => void, onFrame?: (s: net.Socket, frame: unknown[]) => boolean): Promise<this> {
    this.server = net.createServer((s) => {
      this.connections++;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      onConnect?.(s);
      const dec = new Decoder({ extensionCodec: undefined, useBigInt64: true });
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        // Decode as many complete values as the buffer holds.
        for (;;) {
          let consumed = 0;
          let value: unknown;
          try {
            const r = decodeOne(dec, buf);
            if (!r) break;
            [value, consumed] = r;
          } catch {
            break;
          }
          this.raw.push(buf.subarray(0, consumed));
          buf = buf.subarray(consumed);
          const frame = value as unknown[];
          if (onFrame?.(s, frame)) continue;
          this.frames.push(frame);
          const opts = frame[2] as { chunk?: string } | undefined;
          if (this.ack && opts?.chunk !== undefined) s.write(pack({ ack: opts.chunk }));
        }
      });
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  dropAll(): void {
    for (const c of this.sockets) c.destroy();
  }

  async stop(): Promise<void> {
    this.dropAll();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Decodes the first msgpack value of `buf`; returns it and its length, or null when incomplete. */
function decodeOne(dec: Decoder, buf: Buffer): [unknown, number] | null {
  if (buf.length === 0) return null;
  // @msgpack/msgpack has no "bytes consumed": decode growing prefixes is quadratic, so use its
  // stream API on the whole buffer and measure by re-encoding-free scanning of the first value.
  const len = valueLength(buf, 0);
  if (len < 0) return null;
  return [dec.decode(buf.subarray(0, len)), len];
}

/** Length of the msgpack value at `p`, or -1 when the buffer ends first (test-side scanner). */
function valueLength(b: Buffer, p: number): number {
  const end = skip(b, p);
  return end < 0 ? -1 : end - p;
}

function skip(b: Buffer, p: number): number {
  if (p >= b.length) return -1;
  const t = b[p]!;
  const need = (n: number) => (p + n <= b.length ? p + n : -1);
  const items = (start: number, n: number) => {
    let q = start;
    for (let i = 0; i < n; i++) {
      if (q < 0) return -1;
      q = skip(b, q);
    }
    return q;
  };
  if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) return need(1);
  if (t >= 0x80 && t <= 0x8f) return items(p + 1, (t & 0x0f) * 2);
  if (t >= 0x90 && t <= 0x9f) return items(p + 1, t & 0x0f);
  if (t >= 0xa0 && t <= 0xbf) return need(1 + (t & 0x1f));
  const len8 = () => (p + 2 <= b.length ? b[p + 1]! : -1);
  const len16 = () => (p + 3 <= b.length ? b.readUInt16BE(p + 1) : -1);
  const len32 = () => (p + 5 <= b.length ? b.readUInt32BE(p + 1) : -1);
  switch (t) {
    case 0xc4:
    case 0xd9: {
      const n = len8();
      return n < 0 ? -1 : need(2 + n);
    }
    case 0xc5:
    case 0xda: {
      const n = len16();
      return n < 0 ? -1 : need(3 + n);
    }
    case 0xc6:
    case 0xdb: {
      const n = len32();
      return n < 0 ? -1 : need(5 + n);
    }
    case 0xc7: {
      const n = len8();
      return n < 0 ? -1 : need(3 + n);
    }
    case 0xc8: {
      const n = len16();
      return n < 0 ? -1 : need(4 + n);
    }
    case 0xc9: {
      const n = len32();
      return n < 0 ? -1 : need(6 + n);
    }
    case 0xca:
      return need(5);
    case 0xcb:
      return need(9);
    case 0xcc:
    case 0xd0:
      return need(2);
    case 0xcd:
    case 0xd1:
      return need(3);
    case 0xce:
    case 0xd2:
      return need(5);
    case 0xcf:
    case 0xd3:
      return need(9);
    case 0xd4:
      return need(3);
    case 0xd5:
      return need(4);
    case 0xd6:
      return need(6);
    case 0xd7:
      return need(10);
    case 0xd8:
      return need(18);
    case 0xdc: {
      const n = len16();
      return n < 0 ? -1 : items(p + 3, n);
    }
    case 0xdd: {
      const n = len32();
      return n < 0 ? -1 : items(p + 5, n);
    }
    case 0xde: {
      const n = len16();
      return n < 0 ? -1 : items(p + 3, n * 2);
    }
    case 0xdf: {
      const n = len32();
      return n < 0 ? -1 : items(p + 5, n * 2);
    }
  }
  throw new Error(`bad type byte ${t}`);
}

const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ id: from + i, msg: `record ${from + i}` }));

function sortedIds(lines: Array<Record<string, unknown>>): number[] {
  return lines.map((l) => l.id as number).sort((a, b) => a - b);
}

async function waitFor(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('forward output into the forward input', () => {
  test('acks, shared key and users: every record arrives once, nanoseconds kept, one frame per tag', async () => {
    const r = await receiver('shared_key: s3cret\nself_hostname: relay-b\nsecurity.users:\n  - alice wonder land');
    const s = await sender(`host: 127.0.0.1\nport: ${r.port}\nrequire_ack_response: on\nshared_key: s3cret\nself_hostname: relay-a\nusername: alice\npassword: wonder land`);
    try {
      const start = new EventTime(1_700_000_000, 123_456_789);
      const batch = [...events('app.a', ids(300), start), ...events('app.b', ids(200, 300), start)];
      const res = await s.ingest(batch);
      assert.deepEqual(res, { ok: true });
      assert.deepEqual(
        sortedIds(r.lines('app.a')),
        ids(300).map((x) => x.id),
      );
      assert.deepEqual(
        sortedIds(r.lines('app.b')),
        ids(200, 300).map((x) => x.id),
      );
      const ev = r.seen.find((e) => e.tag === 'app.a' && e.record.id === 7)!;
      assert.equal(ev.time.sec, 1_700_000_000);
      assert.equal(ev.time.nsec, 123_456_796);
      assert.equal(await r.run.counter('logwarden_input_acks_total'), 2, 'one acked frame per tag');
      assert.equal(await r.run.counter('logwarden_input_auth_failures_total'), 0);
    } finally {
      await s.stop(1);
      await r.run.stop(1);
    }
  });

  test('connections are kept between batches (keepalive)', async () => {
    const r = await receiver();
    const s = await sender(`port: ${r.port}\nrequire_ack_response: on\nworkers: 1`);
    try {
      for (let i = 0; i < 5; i++) assert.deepEqual(await s.ingest(events('keep', ids(10, i * 10))), { ok: true });
      assert.equal(await r.run.counter('logwarden_input_connections'), 1, 'one connection, kept open');
      assert.equal(r.lines('keep').length, 50);
    } finally {
      await s.stop(1);
      await r.run.stop(1);
    }
  });

  test('gzip: CompressedPackedForward frames decode on the receiver', async () => {
    const r = await receiver();
    const s = await sender(`port: ${r.port}\ncompress: gzip\nrequire_ack_response: on`);
    try {
      const records = ids(500).map((x) => ({ ...x, pad: 'x'.repeat(200) }));
      assert.deepEqual(await s.ingest(events('gz', records)), { ok: true });
      assert.deepEqual(
        sortedIds(r.lines('gz')),
        ids(500).map((x) => x.id),
      );
      const wire = await r.run.counter('logwarden_input_bytes_total');
      assert.ok(wire < (500 * 200) / 5, `gzip frame is small (${wire} bytes)`);
    } finally {
      await s.stop(1);
      await r.run.stop(1);
    }
  });

  test('time_as_integer: seconds only', async () => {
    const r = await receiver();
    const s = await sender(`port: ${r.port}\ntime_as_integer: on\nrequire_ack_response: on`);
    try {
      assert.deepEqual(await s.ingest(events('tai', ids(3), new EventTime(1_700_000_005, 999_999_999))), { ok: true });
      const evs = r.seen.filter((e) => e.tag === 'tai');
      assert.equal(evs.length, 3);
      for (const e of evs) assert.equal(e.time.nsec, 0);
      assert.deepEqual(
        evs.map((e) => e.time.sec),
        [1_700_000_005, 1_700_000_006, 1_700_000_006],
      );
    } finally {
      await s.stop(1);
      await r.run.stop(1);
    }
  });

  test('metadata is retained by default and dropped with retain_metadata_in_forward_mode off', async () => {
    const r = await receiver();
    const on = await sender(`port: ${r.port}\nrequire_ack_response: on`);
    const off = await sender(`port: ${r.port}\nrequire_ack_response: on\nretain_metadata_in_forward_mode: off`);
    try {
      const t = new EventTime(1_700_000_000, 5);
      const mk = (tag: string): LogEvent[] => [
        { tag, time: t, record: { n: 1 }, metadata: { otlp: { trace_id: 'abc' }, source: 'k8s' } },
        { tag, time: t, record: { n: 2 } },
      ];
      assert.deepEqual(await on.ingest(mk('meta.on')), { ok: true });
      assert.deepEqual(await off.ingest(mk('meta.off')), { ok: true });
      const got = (tag: string) => r.seen.filter((e) => e.tag === tag).map((e) => ({ n: e.record.n, metadata: e.metadata }));
      assert.deepEqual(got('meta.on'), [
        { n: 1, metadata: { otlp: { trace_id: 'abc' }, source: 'k8s' } },
        { n: 2, metadata: undefined },
      ]);
      assert.deepEqual(got('meta.off'), [
        { n: 1, metadata: undefined },
        { n: 2, metadata: undefined },
      ]);
    } finally {
      await on.stop(1);
      await off.stop(1);
      await r.run.stop(1);
    }
  });

  test('tag override: a static template and a record accessor template', async () => {
    const r = await receiver();
    const fixed = await sender(`port: ${r.port}\nrequire_ack_response: on\ntag: relay.$TAG[1]`);
    const dynamic = await sender(`port: ${r.port}\nrequire_ack_response: on\ntag: kind.$kind`);
    try {
      assert.deepEqual(await fixed.ingest([...events('app.web', ids(2)), ...events('app.db', ids(3, 2))]), { ok: true });
      assert.deepEqual(sortedIds(r.lines('relay.web')), [0, 1]);
      assert.deepEqual(sortedIds(r.lines('relay.db')), [2, 3, 4]);
      const recs = [{ id: 0, kind: 'audit' }, { id: 1, kind: 'app' }, { id: 2, kind: 'audit' }, { id: 3 }];
      assert.deepEqual(await dynamic.ingest(events('dyn', recs)), { ok: true });
      assert.deepEqual(sortedIds(r.lines('kind.audit')), [0, 2]);
      assert.deepEqual(sortedIds(r.lines('kind.app')), [1]);
      // A missing key renders as nothing: "kind." is still a tag (Fluent Bit's translation).
      assert.deepEqual(sortedIds(r.lines('kind.')), [3]);
    } finally {
      await fixed.stop(1);
      await dynamic.stop(1);
      await r.run.stop(1);
    }
  });

  test('TLS with a CA file and the host name checked', async () => {
    const p = await pki({ ip: false });
    const { ca, server: srv } = p;
    const dir = tempDir();
    writePki(dir, p);
    const r = await receiver('tls: on\ntls.crt_file: server.pem\ntls.key_file: server.key', dir);
    const sdir = tempDir();
    writeFileSync(join(sdir, 'ca.pem'), ca.cert);
    const good = await sender(`host: 127.0.0.1\nport: ${r.port}\ntls: on\ntls.ca_file: ca.pem\ntls.vhost: localhost\nrequire_ack_response: on`, sdir);
    // As Fluent Bit: tls.verify checks the chain; the name only with tls.verify_hostname.
    const wrongName = await sender(
      `host: 127.0.0.1\nport: ${r.port}\ntls: on\ntls.ca_file: ca.pem\ntls.vhost: elsewhere\ntls.verify_hostname: on\nrequire_ack_response: on\nretry_limit: no_retries`,
      tempDirWith('ca.pem', ca.cert),
    );
    const anyName = await sender(`host: 127.0.0.1\nport: ${r.port}\ntls: on\ntls.ca_file: ca.pem\ntls.vhost: elsewhere\nrequire_ack_response: on`, tempDirWith('ca.pem', ca.cert));
    const rightName = await sender(
      `host: 127.0.0.1\nport: ${r.port}\ntls: on\ntls.ca_file: ca.pem\ntls.vhost: localhost\ntls.verify_hostname: on\nrequire_ack_response: on`,
      tempDirWith('ca.pem', ca.cert),
    );
    try {
      assert.deepEqual(await good.ingest(events('tls.ok', ids(4))), { ok: true });
      assert.deepEqual(sortedIds(r.lines('tls.ok')), [0, 1, 2, 3]);
      assert.deepEqual(await anyName.ingest(events('tls.any', ids(2))), { ok: true });
      assert.deepEqual(await rightName.ingest(events('tls.right', ids(2))), { ok: true });
      const res = await wrongName.ingest(events('tls.bad', ids(1)));
      assert.equal(res.ok, false);
      assert.match(String(wrongName.logs.find((l) => l.msg === 'batch failed, retries exhausted')?.err), /TLS error|altnames|does not match/i);

      // An idle connection is closed cleanly (close_notify, then FIN), not just dropped: Fluent
      // Bit's in_forward logs "unexpected eof while reading" for a TLS connection that vanishes.
      // A TCP relay in front of a TLS 1.2 server sees the records: the last one must be an alert.
      const tls = await import('node:tls');
      const raw = tls.createServer({ cert: srv.cert, key: srv.private, maxVersion: 'TLSv1.2' }, (sock) => {
        sock.on('data', () => undefined);
        sock.on('error', () => undefined);
      });
      await new Promise<void>((res) => raw.listen(0, '127.0.0.1', () => res()));
      const fromClient: Buffer[] = [];
      let relayClosed = false;
      const relay = net.createServer((c) => {
        const up = net.connect((raw.address() as net.AddressInfo).port, '127.0.0.1');
        c.on('data', (d) => {
          fromClient.push(d);
          up.write(d);
        });
        up.on('data', (d) => c.write(d));
        c.on('end', () => up.end());
        up.on('end', () => c.end());
        c.on('close', () => {
          relayClosed = true;
          up.destroy();
        });
        c.on('error', () => undefined);
        up.on('error', () => undefined);
      });
      await new Promise<void>((res) => relay.listen(0, '127.0.0.1', () => res()));
      const idle = await sender(`host: 127.0.0.1\nport: ${(relay.address() as net.AddressInfo).port}\ntls: on\ntls.ca_file: ca.pem\nnet.keepalive_idle_timeout: 0.2`, tempDirWith('ca.pem', ca.cert));
      try {
        assert.deepEqual(await idle.ingest(events('tls.idle', ids(2))), { ok: true });
        const deadline = Date.now() + 5000;
        while (!relayClosed && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
        assert.ok(relayClosed, 'the idle connection was closed');
        // Walk the TLS records the client sent: [type, version(2), length(2), body].
        const bytes = Buffer.concat(fromClient);
        let last = -1;
        for (let p = 0; p + 5 <= bytes.length; p += 5 + bytes.readUInt16BE(p + 3)) last = bytes[p]!;
        assert.equal(last, 0x15, 'the last TLS record is an alert (close_notify)');
      } finally {
        await idle.stop(1);
        relay.close();
        raw.close();
      }
    } finally {
      await good.stop(1);
      await wrongName.stop(1);
      await anyName.stop(1);
      await rightName.stop(1);
      await r.run.stop(1);
    }
  });

  test('Unix socket', async () => {
    const sock = join(tempDir(), 'fw.sock');
    const r = await receiver(`unix_path: ${sock}`);
    const s = await sender(`unix_path: ${sock}\nrequire_ack_response: on`);
    try {
      assert.deepEqual(await s.ingest(events('unix', ids(5))), { ok: true });
      assert.deepEqual(sortedIds(r.lines('unix')), [0, 1, 2, 3, 4]);
    } finally {
      await s.stop(1);
      await r.run.stop(1);
    }
  });
});

function tempDirWith(name: string, content: string): string {
  const d = tempDir();
  writeFileSync(join(d, name), content);
  return d;
}

describe('forward output: what goes on the wire', () => {
  let cap: CaptureServer;
  before(async () => {
    cap = await new CaptureServer().start();
  });
  after(async () => {
    await cap.stop();
  });

  test('Forward mode with EventTime ext, chunk = Base64 of 16 bytes, size, add_option', async () => {
    const s = await sender(`port: ${cap.port}\nrequire_ack_response: on\nadd_option:\n  - fluent_signal 0`);
    try {
      cap.frames.length = 0;
      assert.deepEqual(await s.ingest(events('wire.fwd', ids(3), new EventTime(1_700_000_000, 42))), { ok: true });
      assert.equal(cap.frames.length, 1);
      const [tag, entries, opts] = cap.frames[0] as [string, Array<[unknown, Record<string, unknown>]>, Record<string, unknown>];
      assert.equal(tag, 'wire.fwd');
      assert.equal(entries.length, 3);
      // With no extension codec, @msgpack/msgpack gives ExtData {type, data}.
      const t0 = entries[0]![0] as { type: number; data: Uint8Array };
      assert.equal(t0.type, 0);
      const db = Buffer.from(t0.data);
      assert.equal(db.readUInt32BE(0), 1_700_000_000);
      assert.equal(db.readUInt32BE(4), 42);
      assert.deepEqual(entries[2]![1], { id: 2, msg: 'record 2' });
      assert.deepEqual(Object.keys(opts), ['chunk', 'size', 'fluent_signal']);
      assert.equal(opts.size, 3);
      assert.equal(opts.fluent_signal, '0');
      assert.equal(Buffer.from(String(opts.chunk), 'base64').length, 16);
      assert.equal(Buffer.from(String(opts.chunk), 'base64').toString('base64'), opts.chunk);
    } finally {
      await s.stop(1);
    }
  });

  test('a kept connection the server closed is replaced by a new one', async () => {
    const s = await sender(`port: ${cap.port}\nrequire_ack_response: on\nworkers: 1`);
    try {
      const before = cap.connections;
      for (let i = 0; i < 3; i++) assert.deepEqual(await s.ingest(events('wire.keep', ids(2))), { ok: true });
      assert.equal(cap.connections - before, 1);
      cap.dropAll();
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(await s.ingest(events('wire.keep', ids(2))), { ok: true });
      assert.equal(cap.connections - before, 2);
      assert.equal(s.logs.filter((l) => l.msg === 'batch failed, will retry').length, 0);
    } finally {
      await s.stop(1);
    }
  });

  test('large frames: 70 000 entries (array32 header) under a 300-byte tag (str16)', async () => {
    const s = await sender(`port: ${cap.port}\nrequire_ack_response: on\nbatch_size: 100000\nbatch_bytes: 100M`);
    try {
      cap.frames.length = 0;
      const tag = `t.${'x'.repeat(298)}`;
      assert.deepEqual(
        await s.ingest(
          events(
            tag,
            Array.from({ length: 70_000 }, (_, i) => ({ i })),
          ),
        ),
        { ok: true },
      );
      assert.equal(cap.frames.length, 1);
      const [t, entries, opts] = cap.frames[0] as [string, Array<[unknown, { i: number }]>, { size: number }];
      assert.equal(t, tag);
      assert.equal(entries.length, 70_000);
      assert.equal(opts.size, 70_000);
      assert.equal(entries[69_999]![1].i, 69_999);
      const raw = cap.raw[cap.raw.length - 1]!;
      assert.equal(raw[1], 0xda, 'tag as str16');
      assert.equal(raw[4 + 300], 0xdd, 'entries behind an array32 header');
    } finally {
      await s.stop(1);
    }
  });

  test('no options map by default; send_options adds size only', async () => {
    const plain = await sender(`port: ${cap.port}`);
    const withSize = await sender(`port: ${cap.port}\nsend_options: on`);
    try {
      cap.frames.length = 0;
      assert.deepEqual(await plain.ingest(events('wire.plain', ids(2))), { ok: true });
      await waitFor(() => cap.frames.length === 1, 5000, 'plain frame');
      assert.equal(cap.frames[0]!.length, 2);
      assert.deepEqual(await withSize.ingest(events('wire.size', ids(2))), { ok: true });
      await waitFor(() => cap.frames.length === 2, 5000, 'frame with size');
      assert.deepEqual(cap.frames[1]![2], { size: 2 });
    } finally {
      await plain.stop(1);
      await withSize.stop(1);
    }
  });

  test('gzip: [tag, bin(gzip entries), {chunk, size, compressed: gzip}]', async () => {
    const s = await sender(`port: ${cap.port}\ncompress: gzip\nrequire_ack_response: on`);
    try {
      cap.frames.length = 0;
      assert.deepEqual(await s.ingest(events('wire.gz', ids(4))), { ok: true });
      const [tag, payload, opts] = cap.frames[0] as [string, Uint8Array, Record<string, unknown>];
      assert.equal(tag, 'wire.gz');
      assert.ok(payload instanceof Uint8Array);
      assert.deepEqual(Object.keys(opts), ['chunk', 'size', 'compressed']);
      assert.equal(opts.compressed, 'gzip');
      const entries = [...new Decoder().decodeMulti(gunzipSync(payload))] as Array<[unknown, Record<string, unknown>]>;
      assert.deepEqual(
        entries.map((e) => e[1].id),
        [0, 1, 2, 3],
      );
    } finally {
      await s.stop(1);
    }
  });

  test('time_as_integer entries are [uint seconds, record]; metadata entries are [[EventTime, meta], record]', async () => {
    const tai = await sender(`port: ${cap.port}\ntime_as_integer: on`);
    const meta = await sender(`port: ${cap.port}`);
    try {
      cap.frames.length = 0;
      const t = new EventTime(1_700_000_001, 7);
      await tai.ingest([{ tag: 'wire.tai', time: t, record: { a: 1 }, metadata: { m: 1 } }]);
      await waitFor(() => cap.frames.length === 1);
      assert.deepEqual((cap.frames[0]![1] as unknown[])[0], [1_700_000_001, { a: 1 }]);
      await meta.ingest([
        { tag: 'wire.meta', time: t, record: { a: 1 }, metadata: { m: 1 } },
        { tag: 'wire.meta', time: t, record: { a: 2 } },
      ]);
      await waitFor(() => cap.frames.length === 2);
      const [e1, e2] = cap.frames[1]![1] as unknown[][];
      assert.ok(Array.isArray(e1![0]));
      assert.deepEqual((e1![0] as unknown[])[1], { m: 1 });
      assert.deepEqual(e1![1], { a: 1 });
      assert.ok(!Array.isArray(e2![0]), 'an event without metadata is a plain [time, record] entry');
    } finally {
      await tai.stop(1);
      await meta.stop(1);
    }
  });
});

describe('forward output: raw bytes relayed unchanged', () => {
  test('a record with a 64-bit integer and a binary value crosses two hops byte for byte, never decoded by the relay', async () => {
    // B: forward input -> msgpack file ([time, record] as received).
    const bDir = tempDir();
    const b = await startInput('forward', plugins, {
      outputs: `    - name: file
      match: '*'
      path: out
      mkdir: on
      format: msgpack`,
      dir: bDir,
    });
    // A: forward input -> forward output to B.
    const a = await startInput('forward', plugins, {
      outputs: `    - name: forward
      match: '*'
      port: ${b.port}
      require_ack_response: on
      batch_wait: 0.05`,
    });
    const relayed = a.seen;
    const aPort = a.port;
    try {
      // The record as the original sender encodes it: uint64 beyond 2^53, a bin value, a str
      // encoded in str16 form although it is short (a choice a re-encoder would not repeat).
      const record = Buffer.concat([
        Buffer.from([0x83]),
        pack('big'),
        Buffer.from([0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]),
        pack('blob'),
        Buffer.from([0xc4, 0x04, 0x00, 0xff, 0x10, 0x80]),
        pack('s'),
        Buffer.from([0xda, 0x00, 0x02]),
        Buffer.from('hi'),
      ]);
      const time = Buffer.from([0xd7, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x00, 0x00, 0x00, 0x07]);
      const frame = Buffer.concat([Buffer.from([0x93]), pack('raw.relay'), Buffer.from([0x91, 0x92]), time, record, pack({ chunk: 'c1' })]);
      const c = await RawClient.connect(aPort);
      await c.write(frame);
      await c.until(() => c.replies.some((r) => (r as { ack?: string }).ack === 'c1'), 10_000, 'ack from A (after B acked A)');
      c.close();
      const written = readFileSync(join(bDir, 'out', 'raw.relay'));
      assert.deepEqual(written, Buffer.concat([Buffer.from([0x92]), time, record]));
      assert.equal(relayed.length, 1);
      assert.ok(relayed[0]!.raw, 'the relay never decoded the record (its bytes are still attached)');
      assert.equal(Buffer.compare(Buffer.from(relayed[0]!.raw!), record), 0);
    } finally {
      await a.run.stop(1);
      await b.run.stop(1);
    }
  });
});

describe('forward output: handshake failures', () => {
  test('wrong shared key: authentication error, retried, then dead-lettered', async () => {
    const r = await receiver('shared_key: right');
    const dl = join(tempDir(), 'dead.jsonl');
    const s = await sender(`port: ${r.port}\nshared_key: wrong\nrequire_ack_response: on\nretry_limit: 2\ndead_letter_file: ${dl}`);
    try {
      const res = await s.ingest(events('auth.bad', ids(3)));
      assert.equal(res.ok, false);
      const retries = s.logs.filter((l) => l.msg === 'batch failed, will retry');
      assert.equal(retries.length, 2);
      assert.match(String(retries[0]!.err), /authentication failed: shared_key mismatch/);
      assert.equal(await s.counter('logwarden_output_errors_total', { reason: 'auth' }), 3);
      const dead = readFileSync(dl, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { record: { id: number }; error: string });
      assert.deepEqual(
        dead.map((d) => d.record.id),
        [0, 1, 2],
      );
      assert.match(dead[0]!.error, /shared_key mismatch/);
      assert.equal(r.lines('auth.bad').length, 0);
    } finally {
      await s.stop(1);
      await r.run.stop(1);
    }
  });

  test('a server whose PONG digest is wrong is refused', async () => {
    let pings = 0;
    const fake = await new CaptureServer().start(
      (sock) => sock.write(pack(['HELO', { nonce: Buffer.alloc(16, 1), auth: '', keepalive: true }])),
      (sock, frame) => {
        if (frame[0] !== 'PING') return false;
        pings++;
        // auth_result true, but a digest computed without the shared key.
        const digest = createHash('sha512').update(String(frame[2])).update('impostor').update(Buffer.alloc(16, 1)).digest('hex');
        sock.write(pack(['PONG', true, '', 'impostor', digest]));
        return true;
      },
    );
    const s = await sender(`port: ${fake.port}\nshared_key: k\nrequire_ack_response: on\nretry_limit: no_retries`);
    try {
      const res = await s.ingest(events('auth.fake', ids(2)));
      assert.equal(res.ok, false);
      assert.equal(pings, 1);
      const err = String(s.logs.find((l) => l.msg === 'batch failed, retries exhausted')?.err);
      assert.match(err, /PONG digest mismatch from server 'impostor'/);
      assert.equal(fake.frames.length, 0, 'no data after a failed handshake');
    } finally {
      await s.stop(1);
      await fake.stop();
    }
  });

  test('a server that requires a handshake while no shared_key is set: clear error', async () => {
    const r = await receiver('shared_key: k');
    const s = await sender(`port: ${r.port}\nrequire_ack_response: on\nretry_limit: no_retries`);
    try {
      const res = await s.ingest(events('auth.none', ids(1)));
      assert.equal(res.ok, false);
      const err = String(s.logs.find((l) => l.msg === 'batch failed, retries exhausted')?.err);
      assert.match(err, /HELO.*set shared_key/);
    } finally {
      await s.stop(1);
      await r.run.stop(1);
    }
  });
});

describe('forward output: acks that do not come', () => {
  test('no ack within net.io_timeout, or an ack for another chunk: retryable errors, the batch is not committed', async () => {
    const silent = await new CaptureServer().start(undefined, () => true);
    const liar = await new CaptureServer().start(undefined, (sock) => {
      sock.write(pack({ ack: 'c29tZXRoaW5nIGVsc2U=' }));
      return true;
    });
    const a = await sender(`port: ${silent.port}\nrequire_ack_response: on\nnet.io_timeout: 0.3\nretry_limit: no_retries`);
    const b = await sender(`port: ${liar.port}\nrequire_ack_response: on\nretry_limit: no_retries`);
    try {
      assert.equal((await a.ingest(events('ack.none', ids(2)))).ok, false);
      assert.match(String(a.logs.find((l) => l.msg === 'batch failed, retries exhausted')?.err), /no ack for chunk \S+ within net\.io_timeout \(0\.3s\)/);
      assert.equal(await a.counter('logwarden_output_errors_total', { reason: 'timeout' }), 1);
      assert.equal((await b.ingest(events('ack.wrong', ids(2)))).ok, false);
      assert.match(String(b.logs.find((l) => l.msg === 'batch failed, retries exhausted')?.err), /ack mismatch: sent chunk \S+, got ack c29tZXRoaW5nIGVsc2U=/);
      assert.equal(await b.counter('logwarden_output_errors_total', { reason: 'ack' }), 1);
    } finally {
      await a.stop(1);
      await b.stop(1);
      await silent.stop();
      await liar.stop();
    }
  });
});

describe('forward output: configuration errors', () => {
  const load = async (opts: string, files: Record<string, string> = {}) => {
    const dir = tempDir();
    for (const [n, t] of Object.entries(files)) writeFileSync(join(dir, n), t);
    try {
      const s = await sender(opts, dir);
      await s.stop(1);
      return '';
    } catch (e) {
      assert.ok(e instanceof ConfigErrors || e instanceof Error);
      return (e as Error).message;
    }
  };

  test('gzip with time_as_integer, username without shared_key, upstream with host', async () => {
    assert.match(await load('compress: gzip\ntime_as_integer: on'), /pipeline\.yaml:\d+:\d+: compress: compress gzip cannot be combined with time_as_integer/);
    assert.match(await load('username: u\npassword: p'), /username: username is sent in the handshake, which needs shared_key/);
    assert.match(await load('upstream: up.conf\nport: 1234', { 'up.conf': '[UPSTREAM]\n  name x\n[NODE]\n  name a\n  host 127.0.0.1\n  port 1\n' }), /port: set upstream or port, not both/);
  });

  test('errors inside the upstream file point at its line and column', async () => {
    const bad = '[UPSTREAM]\n    name up\n\n[NODE]\n    name a\n    host 127.0.0.1\n    port 24224\n    tls.debug 4\n';
    assert.match(await load('upstream: up.conf', { 'up.conf': bad }), /up\.conf:8:5: tls\.debug: unknown node option 'tls\.debug'/);
    const badPort = 'upstream_servers:\n  - name: up\n    nodes:\n      - name: a\n        host: 127.0.0.1\n        port: eighty\n';
    assert.match(await load('upstream: up.yaml', { 'up.yaml': badPort }), /up\.yaml:6:15: port: found "eighty", expected an integer/);
    const mixed = '[UPSTREAM]\n    name up\n[NODE]\n    name a\n    host h\n    port 1\n    compress gzip\n';
    assert.match(await load('upstream: up.conf\ntime_as_integer: on', { 'up.conf': mixed }), /up\.conf:7:14: compress: compress gzip cannot be combined/);
    assert.match(await load('upstream: missing.conf'), /cannot read upstream file .*missing\.conf: ENOENT/);
    assert.match(await load('fluentd_compat: on'), /fluentd_compat/);
  });
});

describe('forward output: upstream nodes', () => {
  test('round robin over two nodes of a classic upstream file, each with its own shared key', async () => {
    const r1 = await receiver('shared_key: one');
    const r2 = await receiver('shared_key: two\nself_hostname: second');
    const dir = tempDir();
    writeFileSync(
      join(dir, 'upstream.conf'),
      `# two receivers
[UPSTREAM]
    name   pair

[NODE]
    name       first
    host       127.0.0.1
    port       ${r1.port}
    shared_key one

[NODE]
    name       second
    host       127.0.0.1
    port       \${LW_TEST_SECOND_PORT}
    shared_key \${LW_TEST_MISSING_KEY:-two}
`,
    );
    // Environment variables are substituted in upstream files, defaults included.
    process.env.LW_TEST_SECOND_PORT = String(r2.port);
    const s = await sender('upstream: upstream.conf\nrequire_ack_response: on\nworkers: 1', dir);
    delete process.env.LW_TEST_SECOND_PORT;
    try {
      for (let i = 0; i < 6; i++) assert.deepEqual(await s.ingest(events('rr', ids(10, i * 10))), { ok: true });
      const a = sortedIds(r1.lines('rr'));
      const b = sortedIds(r2.lines('rr'));
      assert.equal(a.length, 30, 'three batches each');
      assert.equal(b.length, 30, 'three batches each');
      assert.deepEqual(
        [...a, ...b].sort((x, y) => x - y),
        ids(60).map((x) => x.id),
      );
      // Batches alternate: 0-9 first, 10-19 second, ...
      assert.deepEqual(
        a.slice(0, 10),
        ids(10).map((x) => x.id),
      );
      assert.equal(await s.counter('logwarden_output_errors_total'), 0);
    } finally {
      await s.stop(1);
      await r1.run.stop(1);
      await r2.run.stop(1);
    }
  });

  test('the upstream file is read once, when the plan is made: removed before the output starts, its nodes are still used', async () => {
    const r = await receiver('shared_key: once');
    const dir = tempDir();
    writeFileSync(join(dir, 'upstream.conf'), `[UPSTREAM]\n    name one\n\n[NODE]\n    name       only\n    host       127.0.0.1\n    port       ${r.port}\n    shared_key once\n`);
    const file = join(dir, 'pipeline.yaml');
    writeFileSync(file, `pipeline:\n  outputs:\n    - name: forward\n      match: '*'\n      upstream: upstream.conf\n      require_ack_response: on\n`);
    const planned = plan(loadConfigFile(file, {}), registryOf(...plugins));
    rmSync(join(dir, 'upstream.conf'));
    const pipeline = new Pipeline(planned, { logger: jsonLogger().logger });
    await pipeline.start();
    try {
      const ok = await new Promise<boolean>((done) => {
        const c = new Commit((delivered) => done(delivered));
        pipeline.ingest(events('once', ids(5)), c, 500);
        c.release();
      });
      assert.equal(ok, true);
      assert.deepEqual(
        sortedIds(r.lines('once')),
        ids(5).map((x) => x.id),
      );
    } finally {
      await pipeline.stop(1);
      await r.run.stop(1);
    }
  });

  test('failover: a killed receiver process loses no acked record; its node is skipped, retried after recover_wait, and back in rotation once restarted', async () => {
    const { startDaemon, freePort } = await import('../support/cli.js');
    const dir = tempDir();
    const ports = [await freePort(), await freePort()];
    const daemons: Daemon[] = [];
    const confs: string[] = [];
    for (const [i, port] of ports.entries()) {
      const conf = join(dir, `receiver${i}.yaml`);
      writeFileSync(
        conf,
        `
service:
  grace: 1
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: ${port}
  outputs:
    - name: file
      match: '*'
      path: out${i}
      mkdir: on
      format: json_lines
      json_date_key: false
      batch_wait: 0.02
`,
      );
      confs.push(conf);
      daemons.push(await startDaemon(conf));
    }
    writeFileSync(
      join(dir, 'upstream.yaml'),
      `upstream_servers:
  - name: pair
    nodes:
      - name: r0
        host: 127.0.0.1
        port: ${ports[0]}
      - name: r1
        host: 127.0.0.1
        port: ${ports[1]}
`,
    );
    const s = await sender('upstream: upstream.yaml\nrequire_ack_response: on\nrecover_wait: 1\nnet.io_timeout: 3\nnet.connect_timeout: 2\nretry_limit: no_limits', dir);
    const read = (i: number) => {
      const f = join(dir, `out${i}`, 'fo');
      return existsSync(f)
        ? readFileSync(f, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => (JSON.parse(l) as { id: number }).id)
        : [];
    };
    try {
      const batches = 30;
      const results: Array<Promise<{ ok: boolean }>> = [];
      let killed = false;
      for (let i = 0; i < batches; i++) {
        results.push(s.ingest(events('fo', ids(20, i * 20))));
        // Killed while batches are in flight (once r0 has stored some, however loaded the
        // machine): those not acked by r0 must go to r1.
        if (!killed && i >= 10 && read(0).length > 0) {
          daemons[0]!.child.kill('SIGKILL');
          killed = true;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(killed, 'r0 was killed mid-stream');
      const settled = await Promise.all(results);
      assert.ok(
        settled.every((x) => x.ok),
        'every batch acked',
      );
      const got = new Set([...read(0), ...read(1)]);
      const missing = ids(batches * 20)
        .map((x) => x.id)
        .filter((id) => !got.has(id));
      assert.deepEqual(missing, [], 'no record lost');
      assert.ok(s.logs.some((l) => l.msg === 'forward node failed; skipping it and trying the next node'));
      assert.ok(read(0).length > 0 && read(1).length > 0);
      // While r0 is down (and its recover_wait over) the output keeps trying it and failing over.
      const failed = await s.counter('logwarden_forward_node_failures_total', { node: 'r0' });
      assert.ok(failed >= 1);
      assert.equal(await s.counter('logwarden_forward_node_failures_total', { node: 'r1' }), 0);
      assert.equal(await s.counter('logwarden_forward_node_up', { node: 'r0' }), 0);
      // After recover_wait the dead node is back among the candidates: of two batches, one starts
      // with it (round robin), fails and goes to r1.
      await new Promise((r) => setTimeout(r, 1100));
      assert.deepEqual(await s.ingest(events('fo', ids(20, 10_000))), { ok: true });
      assert.deepEqual(await s.ingest(events('fo', ids(20, 10_020))), { ok: true });
      assert.ok((await s.counter('logwarden_forward_node_failures_total', { node: 'r0' })) > failed);
      // Restarted on the same port, it is back in rotation.
      daemons[0] = await startDaemon(confs[0]!);
      await new Promise((r) => setTimeout(r, 1100));
      const before = read(0).length;
      for (let i = 0; i < 4; i++) assert.deepEqual(await s.ingest(events('fo', ids(20, 20_000 + i * 20))), { ok: true });
      assert.ok(read(0).length > before, 'records reach the restarted node');
      assert.ok(s.logs.some((l) => l.msg === 'forward node recovered'));
      assert.equal(await s.counter('logwarden_forward_node_up', { node: 'r0' }), 1);
    } finally {
      await s.stop(1);
      for (const d of daemons) if (d.child.exitCode === null && d.child.signalCode === null) await d.stop();
    }
  });
});

/**
 * The fault between the output and a real receiver (a logwarden forward input): relays both ways
 * and counts the frames it relayed per tag; on its first connection, once `acks` acks went back
 * to the client, it drops the connection at the next frame instead of relaying it (the frame
 * never reaches the receiver, so sending it again is right; sending an acked one is not).
 */
class AckThenDrop {
  /** Frames relayed to the receiver, per tag. */
  readonly relayed = new Map<string, number>();
  connections = 0;
  dropped = false;
  port = 0;
  private server!: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    private readonly target: number,
    private readonly acks: number,
  ) {}

  async start(): Promise<this> {
    this.server = net.createServer((client) => {
      const faulty = ++this.connections === 1;
      const server = net.connect(this.target, '127.0.0.1');
      for (const s of [client, server]) {
        this.sockets.add(s);
        s.on('close', () => {
          this.sockets.delete(s);
          client.destroy();
          server.destroy();
        });
        s.on('error', () => undefined);
      }
      const dec = new Decoder({ useBigInt64: true });
      let acked = 0;
      let up = Buffer.alloc(0);
      let down = Buffer.alloc(0);
      client.on('data', (d: Buffer) => {
        up = Buffer.concat([up, d]);
        for (let len = valueLength(up, 0); len > 0; len = valueLength(up, 0)) {
          const frame = up.subarray(0, len);
          up = up.subarray(len);
          if (faulty && !this.dropped && acked >= this.acks) {
            this.dropped = true;
            client.destroy();
            return;
          }
          const tag = String((dec.decode(frame) as unknown[])[0]);
          this.relayed.set(tag, (this.relayed.get(tag) ?? 0) + 1);
          server.write(frame);
        }
      });
      server.on('data', (d: Buffer) => {
        down = Buffer.concat([down, d]);
        for (let len = valueLength(down, 0); len > 0; len = valueLength(down, 0)) {
          const reply = dec.decode(down.subarray(0, len)) as { ack?: unknown };
          down = down.subarray(len);
          if (reply && typeof reply === 'object' && 'ack' in reply) acked++;
        }
        client.write(d);
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

describe('forward output: frames a node acked are not sent again on retry', () => {
  /** One batch of three tags: three frames, sent in this order. */
  const batch = () => [...events('fr.a', ids(5, 0)), ...events('fr.b', ids(5, 100)), ...events('fr.c', ids(5, 200))];
  const retry = 'retry_limit: 5\nworkers: 1\nrecover_wait: 0.05';

  test('one node acks the first frame, then the connection drops: the retry sends the other two only', async () => {
    const r = await receiver();
    const fault = await new AckThenDrop(r.port, 1).start();
    const s = await sender(`port: ${fault.port}\nrequire_ack_response: on\n${retry}`);
    try {
      assert.deepEqual(await s.ingest(batch()), { ok: true });
      assert.ok(fault.dropped, 'the connection was dropped after the first ack');
      assert.equal(fault.connections, 2, 'the batch was retried on a new connection');
      assert.ok(s.logs.some((l) => l.msg === 'batch failed, will retry'));
      // Each frame reached the receiver once: the acked one before the drop, the others on the retry.
      assert.deepEqual(Object.fromEntries(fault.relayed), { 'fr.a': 1, 'fr.b': 1, 'fr.c': 1 });
      assert.deepEqual(
        sortedIds(r.lines('fr.a')),
        ids(5, 0).map((x) => x.id),
      );
      assert.deepEqual(
        sortedIds(r.lines('fr.b')),
        ids(5, 100).map((x) => x.id),
      );
      assert.deepEqual(
        sortedIds(r.lines('fr.c')),
        ids(5, 200).map((x) => x.id),
      );
    } finally {
      await s.stop(1);
      await fault.stop();
      await r.run.stop(1);
    }
  });

  test('two upstream nodes: the first acks one frame and drops, the second drops at once; the retry sends no acked frame again', async () => {
    const r1 = await receiver();
    const r2 = await receiver();
    const f1 = await new AckThenDrop(r1.port, 1).start();
    const f2 = await new AckThenDrop(r2.port, 0).start();
    const dir = tempDir();
    writeFileSync(
      join(dir, 'upstream.conf'),
      `[UPSTREAM]\n    name pair\n\n[NODE]\n    name n1\n    host 127.0.0.1\n    port ${f1.port}\n\n[NODE]\n    name n2\n    host 127.0.0.1\n    port ${f2.port}\n`,
    );
    const s = await sender(`upstream: upstream.conf\nrequire_ack_response: on\n${retry}`, dir);
    try {
      assert.deepEqual(await s.ingest(batch()), { ok: true });
      assert.ok(f1.dropped && f2.dropped, 'both nodes failed the first attempt');
      assert.ok(s.logs.some((l) => l.msg === 'batch failed, will retry'));
      const relayed: Record<string, number> = {};
      for (const f of [f1, f2]) for (const [tag, n] of f.relayed) relayed[tag] = (relayed[tag] ?? 0) + n;
      assert.deepEqual(relayed, { 'fr.a': 1, 'fr.b': 1, 'fr.c': 1 });
      for (const [tag, from] of [
        ['fr.a', 0],
        ['fr.b', 100],
        ['fr.c', 200],
      ] as const) {
        assert.deepEqual(
          sortedIds([...r1.lines(tag), ...r2.lines(tag)]),
          ids(5, from).map((x) => x.id),
          tag,
        );
      }
    } finally {
      await s.stop(1);
      await f1.stop();
      await f2.stop();
      await r1.run.stop(1);
      await r2.run.stop(1);
    }
  });
});
