/**
 * The forward input over real sockets: @fluent-org/logger in every mode it has, and frames
 * crafted from the Forward Protocol v1 spec for what no client library sends.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { FluentClient, EventTime as FluentEventTime, type EventModes } from '@fluent-org/logger';
import { forwardInput } from '../../src/inputs/forward/index.js';
import { fileOutput } from '../../src/outputs/file/index.js';
import { DeliveryError } from '../../src/core/plugin.js';
import { tempDir } from '../support/output-pipeline.js';
import { startInput, type StartedInput } from '../support/input-server.js';
import { pki, selfSigned, writePki } from '../support/certs.js';
import { RawClient, pack, WireTime, ext8Time, str32Header, bin32Header, fixarray } from '../support/forward-client.js';
import { gateOutput, gates, Gate } from '../support/gate-output.js';
import { until } from '../support/harness.js';

const plugins = [forwardInput, fileOutput, gateOutput];

type Server = StartedInput;

function server(options = '', outputs?: string, dir?: string): Promise<Server> {
  return startInput('forward', plugins, { options, outputs, dir, grace: 2 });
}

/** After a failure on one connection, another connection must still be served. */
async function stillServes(s: Server): Promise<void> {
  const c = await RawClient.connect(s.port);
  await c.write(pack(['alive', [[new WireTime(1, 0), { ok: true }]], { chunk: 'alive-1' }]));
  await c.until(() => c.replies.some((r) => (r as { ack?: string }).ack === 'alive-1'), 5000, 'ack on a fresh connection');
  c.close();
}

describe('forward input with @fluent-org/logger', () => {
  let s: Server;
  before(async () => {
    s = await server();
  });
  after(async () => {
    await s.run.stop(1);
  });

  for (const mode of ['Message', 'Forward', 'PackedForward', 'CompressedPackedForward'] as EventModes[]) {
    test(`${mode} mode with acks: every record lands in the file, times keep nanoseconds`, async () => {
      const tag = `fluent.${mode}`;
      const client = new FluentClient(undefined, {
        eventMode: mode,
        socket: { host: '127.0.0.1', port: s.port },
        ack: { ackTimeout: 5000 },
        flushInterval: 5,
      });
      const sends: Promise<void>[] = [];
      for (let i = 0; i < 250; i++) sends.push(client.emit(tag, { i, mode, msg: 'x'.repeat(i % 50) }, new FluentEventTime(1_700_000_000 + i, 123_456_789)));
      await Promise.all(sends);
      await client.disconnect();
      const lines = s.lines(tag).map((l) => JSON.parse(l) as { i: number });
      assert.equal(lines.length, 250);
      assert.deepEqual(
        lines.map((l) => l.i).sort((a, b) => a - b),
        Array.from({ length: 250 }, (_, i) => i),
      );
      const ev = s.seen.find((e) => e.tag === tag && e.record.i === 7)!;
      assert.equal(ev.time.sec, 1_700_000_007);
      assert.equal(ev.time.nsec, 123_456_789);
    });
  }
});

describe('forward handshake', () => {
  let s: Server;
  before(async () => {
    s = await server('shared_key: s3cret\nself_hostname: receiver\nsecurity.users:\n  - alice wonder land\n  - bob builder');
  });
  after(async () => {
    await s.run.stop(1);
  });

  test('@fluent-org/logger with shared key and user delivers with acks', async () => {
    const client = new FluentClient(undefined, {
      eventMode: 'Forward',
      socket: { host: '127.0.0.1', port: s.port },
      security: { clientHostname: 'sender', sharedKey: 's3cret', username: 'alice', password: 'wonder land' },
      ack: { ackTimeout: 5000 },
    });
    await client.emit('auth.ok', { hello: 'world' }, new FluentEventTime(1_700_000_000, 1));
    await client.disconnect();
    assert.equal(s.lines('auth.ok').length, 1);
  });

  test('PONG carries the server digest the spec defines', async () => {
    const c = await RawClient.connect(s.port);
    await c.until(() => c.replies.length > 0, 5000, 'HELO');
    const helo = c.replies[0] as [string, { nonce: Uint8Array; auth: Uint8Array; keepalive: boolean }];
    assert.equal(helo[0], 'HELO');
    assert.equal(Buffer.from(helo[1].nonce).length, 16);
    assert.equal(Buffer.from(helo[1].auth).length, 16, 'users configured: auth salt is sent');
    await c.write(c.ping({ hostname: 'crafted', sharedKey: 's3cret', username: 'bob', password: 'builder' }));
    await c.until(() => c.replies.length > 1, 5000, 'PONG');
    const pong = c.replies[1] as [string, boolean, string, string, string];
    assert.equal(pong[0], 'PONG');
    assert.equal(pong[1], true);
    assert.equal(pong[3], 'receiver');
    const { createHash } = await import('node:crypto');
    const expected = createHash('sha512').update(Buffer.from('0123456789abcdef')).update('receiver').update(Buffer.from(helo[1].nonce)).update('s3cret').digest('hex');
    assert.equal(pong[4], expected);
    await c.write(pack(['after.auth', [[new WireTime(5, 5), { a: 1 }]], { chunk: 'c1' }]));
    await c.until(() => c.replies.some((r) => (r as { ack?: string }).ack === 'c1'), 5000, 'ack');
    c.close();
  });

  for (const [name, creds, metric] of [
    ['wrong shared key', { hostname: 'x', sharedKey: 'nope', username: 'alice', password: 'wonder land' }, 'shared_key'],
    ['wrong password', { hostname: 'x', sharedKey: 's3cret', username: 'alice', password: 'wonder' }, 'user'],
    ['unknown user', { hostname: 'x', sharedKey: 's3cret', username: 'mallory', password: 'x' }, 'user'],
  ] as const) {
    test(`${name}: PONG false with a reason, disconnect, log line, metric`, async () => {
      const before = await s.run.counter('logwarden_input_auth_failures_total', { reason: metric });
      const c = await RawClient.connect(s.port);
      await c.until(() => c.replies.length > 0, 5000, 'HELO');
      await c.write(c.ping(creds));
      await c.until(() => c.closed, 5000, 'disconnect');
      const pong = c.replies[1] as [string, boolean, string];
      assert.equal(pong[0], 'PONG');
      assert.equal(pong[1], false);
      assert.match(pong[2], /mismatch/);
      assert.equal(await s.run.counter('logwarden_input_auth_failures_total', { reason: metric }), before + 1);
      assert.ok(s.run.logs.some((l) => l.msg === 'forward handshake failed'));
      await stillServesAuthed(s);
    });
  }

  test('data before the handshake closes the connection', async () => {
    const c = await RawClient.connect(s.port);
    await c.write(pack(['sneaky', [[new WireTime(1, 0), { a: 1 }]]]));
    await c.until(() => c.closed, 5000, 'disconnect');
    assert.equal(s.lines('sneaky').length, 0);
  });
});

async function stillServesAuthed(s: Server): Promise<void> {
  const client = new FluentClient(undefined, {
    eventMode: 'Message',
    socket: { host: '127.0.0.1', port: s.port },
    security: { clientHostname: 'sender', sharedKey: 's3cret', username: 'bob', password: 'builder' },
    ack: { ackTimeout: 5000 },
  });
  await client.emit('auth.after', { ok: 1 });
  await client.disconnect();
}

describe('forward frames crafted from the spec', () => {
  let s: Server;
  before(async () => {
    s = await server('buffer_chunk_size: 4k\nbuffer_max_size: 256k\nreceive_timeout: 1');
  });
  after(async () => {
    await s.run.stop(1);
  });

  const entry = (sec: number, rec: Record<string, unknown>) => pack([new WireTime(sec, 42), rec]);

  for (const kind of ['str', 'bin'] as const) {
    test(`PackedForward with entries as ${kind} (read as raw bytes, not UTF-8)`, async () => {
      // A record holding bytes that are not valid UTF-8: decoding the entries as text would corrupt them.
      const entries = Buffer.concat([entry(10, { n: 1, raw: Buffer.from([0xff, 0xfe, 0x00, 0x80]) }), entry(11, { n: 2, s: 'é✓' })]);
      const tag = `packed.${kind}`;
      const frame = Buffer.concat([fixarray(3), pack(tag), kind === 'str' ? str32Header(entries.length) : bin32Header(entries.length), entries, pack({ chunk: `p-${kind}` })]);
      const c = await RawClient.connect(s.port);
      await c.write(frame);
      await c.until(() => c.replies.some((r) => (r as { ack?: string }).ack === `p-${kind}`), 5000, 'ack');
      c.close();
      const evs = s.seen.filter((e) => e.tag === tag);
      assert.equal(evs.length, 2);
      assert.deepEqual([...Buffer.from(evs[0]!.record.raw as Uint8Array)], [0xff, 0xfe, 0x00, 0x80]);
      assert.equal(evs[1]!.record.s, 'é✓');
      assert.equal(evs[1]!.time.sec, 11);
      assert.equal(evs[1]!.time.nsec, 42);
    });
  }

  test('CompressedPackedForward with several concatenated gzip members', async () => {
    const a = Buffer.concat([entry(1, { n: 1 }), entry(2, { n: 2 })]);
    const b = Buffer.concat([entry(3, { n: 3 })]);
    const payload = Buffer.concat([gzipSync(a), gzipSync(b)]);
    const frame = pack(['gz.multi', payload, { compressed: 'gzip', chunk: 'gz1', size: 3 }]);
    const c = await RawClient.connect(s.port);
    await c.write(frame);
    await c.until(() => c.replies.some((r) => (r as { ack?: string }).ack === 'gz1'), 5000, 'ack');
    c.close();
    assert.deepEqual(
      s.seen.filter((e) => e.tag === 'gz.multi').map((e) => e.record.n),
      [1, 2, 3],
    );
  });

  test('EventTime in ext8 form, integer and float seconds', async () => {
    const frame = Buffer.concat([
      fixarray(3),
      pack('times'),
      fixarray(3),
      Buffer.concat([fixarray(2), ext8Time(1_700_000_000, 999_999_999), pack({ k: 'ext8' })]),
      pack([1_700_000_001, { k: 'int' }]),
      pack([1_700_000_002.25, { k: 'float' }]),
      pack({ chunk: 't1' }),
    ]);
    const c = await RawClient.connect(s.port);
    await c.write(frame);
    await c.until(() => c.replies.some((r) => (r as { ack?: string }).ack === 't1'), 5000, 'ack');
    c.close();
    const evs = s.seen.filter((e) => e.tag === 'times');
    assert.deepEqual(
      evs.map((e) => [e.record.k, e.time.sec, e.time.nsec]),
      [
        ['ext8', 1_700_000_000, 999_999_999],
        ['int', 1_700_000_001, 0],
        ['float', 1_700_000_002, 250_000_000],
      ],
    );
  });

  test('metadata entries [[EventTime, {meta}], record] keep metadata; group markers are skipped', async () => {
    const frame = pack([
      'meta',
      [
        [[-1, { group: 'start' }], {}],
        [[new WireTime(7, 8), { otel: { trace_id: 'abc' } }], { log: 'with metadata' }],
        [[new WireTime(9, 0), {}], { log: 'empty metadata' }],
        [[-2, {}], {}],
      ],
      { chunk: 'm1' },
    ]);
    const c = await RawClient.connect(s.port);
    await c.write(frame);
    await c.until(() => c.replies.some((r) => (r as { ack?: string }).ack === 'm1'), 5000, 'ack');
    c.close();
    const evs = s.seen.filter((e) => e.tag === 'meta');
    assert.equal(evs.length, 2);
    assert.deepEqual(evs[0]!.metadata, { otel: { trace_id: 'abc' } });
    assert.equal(evs[0]!.time.nsec, 8);
    assert.equal(evs[1]!.metadata, undefined);
  });

  test('64-bit integers, binary keys and a __proto__ key survive decode and JSON output', async () => {
    const big = 2n ** 63n - 25n;
    // {"big": int64, <bin "k">: "v", "__proto__": {"polluted": true}}
    const rec = Buffer.concat([
      Buffer.from([0x83]),
      pack('big'),
      Buffer.from([0xd3]),
      (() => {
        const b = Buffer.alloc(8);
        b.writeBigInt64BE(big);
        return b;
      })(),
      Buffer.from([0xc4, 0x01, 0x6b]),
      pack('v'),
      pack('__proto__'),
      pack({ polluted: true }),
    ]);
    const frame = Buffer.concat([fixarray(3), pack('safe'), fixarray(1), fixarray(2), pack(new WireTime(1, 0)), rec, pack({ chunk: 's1' })]);
    const c = await RawClient.connect(s.port);
    await c.write(frame);
    await c.until(() => c.replies.some((r) => (r as { ack?: string }).ack === 's1'), 5000, 'ack');
    c.close();
    const line = s.lines('safe')[0]!;
    assert.ok(line.includes(`"big":${big}`), line);
    assert.ok(line.includes('"k":"v"'), line);
    assert.ok(line.includes('"__proto__":{"polluted":true}'), line);
    const ev = s.seen.find((e) => e.tag === 'safe')!;
    assert.equal(Object.getPrototypeOf(ev.record), Object.prototype);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.ok(Object.hasOwn(ev.record, '__proto__'));
  });

  test('a frame split into 1..7-byte TCP segments decodes; a nil heartbeat is ignored; no chunk, no reply', async () => {
    const recs = Array.from({ length: 300 }, (_, i) => [new WireTime(i, i), { i, pad: 'p'.repeat(i % 40) }]);
    const frame = Buffer.concat([pack(null), pack(['split', recs]), pack(['split', recs.slice(0, 1), { chunk: 'sp' }])]);
    const c = await RawClient.connect(s.port);
    c.socket.setNoDelay(true);
    for (let off = 0, k = 1; off < frame.length; k = (k % 7) + 1) {
      await c.write(frame.subarray(off, off + k));
      off += k;
    }
    await c.until(() => c.replies.length > 0, 5000, 'ack');
    assert.deepEqual(c.replies, [{ ack: 'sp' }], 'only the chunk with an ack option is answered');
    c.close();
    assert.equal(s.seen.filter((e) => e.tag === 'split').length, 301);
  });

  const malformed: Array<[string, Buffer, string]> = [
    ['garbage bytes', Buffer.from([0xc1, 0x00, 0x01]), 'malformed'],
    ['a map at the root', pack({ not: 'an array' }), 'not_array'],
    ['a record that is not a map', pack(['bad', [[new WireTime(1, 0), 'string record']]]), 'bad_record'],
    ['a tag that is not a string', pack([42, [[1, {}]]]), 'bad_tag'],
    ['bad gzip', pack(['gz', Buffer.from([0x1f, 0x8b, 1, 2, 3, 4]), { compressed: 'gzip' }]), 'bad_gzip'],
    ['an unknown compression', pack(['gz', Buffer.from([0x92]), { compressed: 'lz4' }]), 'bad_compression'],
    ['a bad time', pack(['t', [['yesterday', {}]]]), 'bad_time'],
    ['a frame over buffer_max_size', pack(['big', [[1, { blob: 'x'.repeat(300 * 1024) }]]]), 'too_large'],
  ];
  for (const [name, bytes, reason] of malformed) {
    test(`${name}: a log line and a metric, only that connection closes`, async () => {
      const bystander = await RawClient.connect(s.port);
      const before = await s.errors(reason);
      const c = await RawClient.connect(s.port);
      await c.write(bytes).catch(() => undefined);
      await c.until(() => c.closed, 5000, 'the offending connection to close');
      assert.equal(await s.errors(reason), before + 1);
      assert.ok(s.run.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('closing connection') && l.reason === reason));
      assert.equal(bystander.closed, false, 'other connections stay open');
      await bystander.write(pack(['bystander', [[new WireTime(1, 0), { ok: 1 }]], { chunk: `b-${reason}` }]));
      await bystander.until(() => bystander.replies.some((r) => (r as { ack?: string }).ack === `b-${reason}`), 5000, 'bystander ack');
      bystander.close();
      await stillServes(s);
    });
  }

  test('a client that stalls mid-frame is closed after receive_timeout; a truncated frame is counted', async () => {
    const frame = pack(['stall', [[new WireTime(1, 0), { a: 'b'.repeat(100) }]], { chunk: 'never' }]);
    const c = await RawClient.connect(s.port);
    await c.write(frame.subarray(0, 20));
    await c.until(() => c.closed, 5000, 'timeout close');
    assert.equal(await s.errors('timeout'), 1);
    const before = await s.errors('truncated');
    const d = await RawClient.connect(s.port);
    await d.write(frame.subarray(0, 30));
    await new Promise((r) => setTimeout(r, 50));
    d.socket.end();
    await d.until(() => d.closed, 5000, 'close');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(await s.errors('truncated'), before + 1);
    await stillServes(s);
  });
});

describe('acks follow commits', () => {
  test('ack only after the output committed; a failed commit is not acked and its connection closes', async () => {
    const gate = new Gate();
    gates.set('acks', gate);
    const s = await server('', `    - name: gate\n      match: '*'\n      gate: acks\n      retry_limit: no_retries`);
    try {
      gate.open = false;
      const c = await RawClient.connect(s.port);
      await c.write(pack(['held', [[new WireTime(1, 0), { n: 1 }]], { chunk: 'h1' }]));
      await until(() => gate.batches === 1, 'the chunk at the output');
      assert.deepEqual(c.replies, [], 'no ack while the output has not delivered');
      gate.release();
      await c.until(() => c.replies.length === 1, 5000, 'ack');
      assert.deepEqual(c.replies, [{ ack: 'h1' }]);
      assert.equal(gate.delivered.length, 1);

      gate.failWith = new DeliveryError('downstream refused', true, 'test');
      await c.write(pack(['held', [[new WireTime(2, 0), { n: 2 }]], { chunk: 'h2' }]));
      await c.until(() => c.closed, 5000, 'close after failed commit');
      assert.deepEqual(c.replies, [{ ack: 'h1' }], 'the failed chunk is never acked');
      assert.equal(await s.run.counter('logwarden_input_unacked_chunks_total'), 1);
    } finally {
      gate.failWith = undefined;
      await s.run.stop(1);
    }
  });

  test('backpressure: a full output queue stops reading the sockets; reads resume below the low-water mark', async () => {
    const gate = new Gate();
    gates.set('bp', gate);
    const s = await server('', `    - name: gate\n      match: '*'\n      gate: bp\n      queue_max_records: 50\n      batch_size: 10`);
    try {
      gate.open = false;
      const c = await RawClient.connect(s.port);
      const chunk = (i: number) => pack(['bp', Array.from({ length: 10 }, (_, k) => [new WireTime(i, k), { i, k }]), { chunk: `bp-${i}` }]);
      for (let i = 0; i < 5; i++) await c.write(chunk(i));
      await until(() => s.run.pipeline.flow.paused, 'the queue bound to pause the flow');
      assert.equal(await s.run.counter('logwarden_input_paused'), 1);
      // While paused, more chunks sit in the kernel buffers: none of them reaches the pipeline.
      for (let i = 5; i < 8; i++) c.socket.write(chunk(i));
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(s.seen.length, 50, 'no chunk read while paused');
      gate.release();
      await c.until(() => c.replies.length === 8, 5000, 'all acks after resume');
      assert.equal(gate.delivered.length, 80);
      assert.equal(s.run.pipeline.flow.paused, false);
      c.close();
    } finally {
      await s.run.stop(1);
    }
  });
});

describe('forward transports', () => {
  test('TLS: tls.verify checks a presented client certificate, tls.verify_client_cert requires one', async () => {
    const p = await pki({ clientName: 'fluent-bit' });
    const { ca, client: cli } = p;
    // A client certificate from a CA the server does not trust.
    const stranger = await selfSigned('stranger');
    const dir = tempDir();
    writePki(dir, p);
    const tls = await import('node:tls');
    /** Sends one acked chunk; true when it was acked. */
    const attempt = (port: number, tag: string, cert?: { cert: string; private: string }) =>
      new Promise<boolean>((resolve) => {
        const sock = tls.connect({ host: '127.0.0.1', port, ca: ca.cert, servername: 'localhost', ...(cert ? { cert: cert.cert, key: cert.private } : {}) }, () => {
          sock.write(pack([tag, [[1, { a: 1 }]], { chunk: 'x' }]));
        });
        sock.on('data', () => {
          resolve(true);
          sock.destroy();
        });
        sock.on('error', () => resolve(false));
        sock.on('close', () => resolve(false));
      });

    // tls.verify on (the default): with or without a certificate of its CA, but not a stranger's.
    const lax = await server('tls: on\ntls.crt_file: server.pem\ntls.key_file: server.key\ntls.ca_file: ca.pem', undefined, dir);
    try {
      const port = lax.port;
      assert.equal(await attempt(port, 'lax.nocert'), true);
      assert.equal(await attempt(port, 'lax.cert', cli), true);
      assert.equal(await attempt(port, 'lax.stranger', stranger), false);
      assert.equal(existsSync(join(dir, 'out', 'lax.stranger')), false);
      assert.ok(lax.run.logs.some((l) => l.msg === 'TLS handshake failed' && /client certificate rejected/.test(String(l.err))));
    } finally {
      await lax.run.stop(1);
    }

    // tls.verify_client_cert on: a certificate of the CA is required.
    // Relative paths in a pipeline resolve against the pipeline file's directory.
    const s = await server('tls: on\ntls.crt_file: server.pem\ntls.key_file: server.key\ntls.ca_file: ca.pem\ntls.verify_client_cert: on', undefined, dir);
    const run = s.run;
    try {
      const port = s.port;
      const client = new FluentClient(undefined, {
        eventMode: 'Forward',
        socket: { host: '127.0.0.1', port, tls: { ca: ca.cert, cert: cli.cert, key: cli.private, servername: 'localhost' } },
        ack: { ackTimeout: 5000 },
      });
      await client.emit('tls.ok', { secure: true });
      await client.disconnect();
      assert.equal(readFileSync(join(dir, 'out', 'tls.ok'), 'utf8').trim(), '{"secure":true}');
      assert.equal(await attempt(port, 'tls.nocert'), false);
      assert.equal(await attempt(port, 'tls.stranger', stranger), false);
      assert.equal(existsSync(join(dir, 'out', 'tls.nocert')), false);
      assert.equal(existsSync(join(dir, 'out', 'tls.stranger')), false);
    } finally {
      await run.stop(1);
    }

    // tls.verify off: nothing is checked; verify_client_cert without verify is refused at load.
    const off = await server('tls: on\ntls.crt_file: server.pem\ntls.key_file: server.key\ntls.verify: off', undefined, dir);
    try {
      assert.equal(await attempt(off.port, 'off.stranger', stranger), true);
    } finally {
      await off.run.stop(1);
    }
    await assert.rejects(
      server('tls: on\ntls.crt_file: server.pem\ntls.key_file: server.key\ntls.verify: off\ntls.verify_client_cert: on', undefined, dir),
      /tls.verify_client_cert on needs tls.verify on/,
    );
  });

  test('Unix socket with unix_perm, tag_prefix', async () => {
    const sock = join(tempDir(), 'fw.sock');
    const s = await server(`unix_path: ${sock}\nunix_perm: '0600'\ntag_prefix: 'in.'`);
    try {
      const { statSync } = await import('node:fs');
      assert.equal(statSync(sock).mode & 0o777, 0o600);
      const c = await new Promise<net.Socket>((resolve) => {
        const x = net.connect(sock, () => resolve(x));
      });
      const acked = new Promise<Buffer>((resolve) => c.once('data', resolve));
      c.write(pack(['unix', [[new WireTime(1, 0), { via: 'unix' }]], { chunk: 'u1' }]));
      await acked;
      c.destroy();
      assert.equal(s.lines('in.unix').length, 1);
    } finally {
      await s.run.stop(1);
    }
  });
});
