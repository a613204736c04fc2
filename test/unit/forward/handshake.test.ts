/**
 * The forward handshake, byte-exact in both directions: salts, nonces, hostnames and usernames
 * holding every byte value 0x00-0xff, packed as msgpack str the way Fluent Bit packs its random
 * bytes (in_forward's HELO, out_forward's PING), and as bin. Digests are computed here
 * independently (node:crypto over the raw bytes) and compared with what logwarden sends and accepts.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { decodeRaw } from '../../../src/core/msgpack-scan.js';
import { decodeFrame } from '../../../src/inputs/forward/protocol.js';
import { answerPing, newHandshake, type AuthConfig } from '../../../src/inputs/forward/handshake.js';
import { buildPing, checkPong, readHelo } from '../../../src/outputs/forward/handshake.js';
import { ForwardConnection } from '../../../src/outputs/forward/client.js';
import { DeliveryError } from '../../../src/core/plugin.js';

/** Every byte value, in 16 slices of 16 bytes (salts and nonces are 16 bytes). */
const ALL = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const SLICES = Array.from({ length: 16 }, (_, i) => ALL.subarray(i * 16, i * 16 + 16));
/** Slices that are not valid UTF-8 (bytes >= 0x80): these broke the handshake when read as text. */
const slice = (i: number) => Buffer.from(SLICES[i]!);

// msgpack written by hand, as msgpack-c's msgpack_pack_str / msgpack_pack_bin write it.
function str(b: Buffer | string): Buffer {
  const x = Buffer.isBuffer(b) ? b : Buffer.from(b);
  if (x.length < 32) return Buffer.concat([Buffer.from([0xa0 | x.length]), x]);
  if (x.length < 256) return Buffer.concat([Buffer.from([0xd9, x.length]), x]);
  const h = Buffer.from([0xda, 0, 0]);
  h.writeUInt16BE(x.length, 1);
  return Buffer.concat([h, x]);
}
function bin(b: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0xc4, b.length]), b]);
}
const arr = (...items: Buffer[]) => Buffer.concat([Buffer.from([0x90 | items.length]), ...items]);
const map = (...kv: Buffer[]) => Buffer.concat([Buffer.from([0x80 | (kv.length / 2)]), ...kv]);
const TRUE = Buffer.from([0xc3]);
const FALSE = Buffer.from([0xc2]);

function sha512hex(...parts: Array<Buffer | string>): string {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/** A PING exactly as Fluent Bit's out_forward packs it (forward.c secure_forward_ping). */
function fluentBitPing(o: { hostname: Buffer; salt: Buffer; nonce: Buffer; key: string; user?: { name: Buffer; password: string; auth: Buffer } }, pack: (b: Buffer) => Buffer = str): Buffer {
  const digest = sha512hex(o.salt, o.hostname, o.nonce, o.key);
  const pw = o.user ? sha512hex(o.user.auth, o.user.name, o.user.password) : '';
  return arr(str('PING'), pack(o.hostname), pack(o.salt), str(digest), pack(o.user?.name ?? Buffer.alloc(0)), str(pw));
}

describe('raw msgpack reading', () => {
  test('str and bin keep every byte; maps, booleans, integers', () => {
    for (const b of [ALL, ...SLICES]) {
      assert.deepEqual(decodeRaw(str(b)), Buffer.from(b));
      assert.deepEqual(decodeRaw(bin(b.subarray(0, 200))), Buffer.from(b.subarray(0, 200)));
    }
    const v = decodeRaw(arr(str('HELO'), map(str('nonce'), str(slice(15)), str('keepalive'), FALSE))) as unknown[];
    assert.deepEqual(v[0], Buffer.from('HELO'));
    const m = v[1] as Map<string, unknown>;
    assert.deepEqual(m.get('nonce'), slice(15));
    assert.equal(m.get('keepalive'), false);
    assert.deepEqual(decodeRaw(Buffer.from([0xcd, 0x01, 0x00])), 256);
    assert.deepEqual(decodeRaw(Buffer.from([0xff])), -1);
  });

  test('truncated, trailing and deeply nested input is refused, not thrown as anything else', () => {
    assert.throws(() => decodeRaw(Buffer.from([0xd9, 10, 1, 2])), /truncated/);
    assert.throws(() => decodeRaw(Buffer.from([0xc0, 0xc0])), /bytes after/);
    assert.throws(() => decodeRaw(Buffer.alloc(100, 0x91)), /nested deeper/);
  });
});

describe('input side: PING from Fluent Bit with raw bytes', () => {
  const users = [
    { name: Buffer.from('alice'), password: Buffer.from('wonder land') },
    // A user name that is not valid UTF-8: compared as bytes.
    { name: Buffer.concat([Buffer.from('u'), slice(9)]), password: Buffer.from('p') },
  ];
  for (let i = 0; i < 16; i++) {
    test(`salt and nonce bytes 0x${(i * 16).toString(16).padStart(2, '0')}-0x${(i * 16 + 15).toString(16)}: digests match, PONG is the spec's`, () => {
      const auth: AuthConfig = { sharedKey: 'k€y', selfHostname: 'recv-ü', users: [] };
      // The server's nonce holds the bytes of slice i, the client's salt those of slice 15 - i.
      const { state, helo } = newHandshake(auth, () => slice(i));
      const h = decodeRaw(helo) as [Buffer, Map<string, Buffer>];
      assert.deepEqual(h[1].get('nonce'), slice(i), 'the nonce leaves as its bytes');
      for (const pack of [str, bin]) {
        const hostname = Buffer.concat([Buffer.from('node-'), slice((i + 3) % 16)]);
        const ping = decodeFrame(fluentBitPing({ hostname, salt: slice(15 - i), nonce: state.nonce, key: 'k€y' }, pack));
        assert.equal(ping.type, 'ping');
        if (ping.type !== 'ping') return;
        assert.deepEqual(ping.sharedKeySalt, slice(15 - i));
        assert.deepEqual(ping.hostname, hostname);
        const r = answerPing(auth, state, ping);
        assert.equal(r.ok, true, `accepted (${pack === str ? 'str' : 'bin'})`);
        const pong = decodeRaw(r.pong) as Buffer[];
        assert.deepEqual(pong[0], Buffer.from('PONG'));
        assert.equal(pong[1] as unknown, true);
        assert.deepEqual(pong[3], Buffer.from('recv-ü'));
        assert.equal(pong[4]!.toString('latin1'), sha512hex(slice(15 - i), 'recv-ü', slice(i), 'k€y'));
        const wrong = answerPing({ ...auth, sharedKey: 'other' }, state, ping);
        assert.equal(wrong.ok, false);
      }
    });
  }

  test('hostname with all 256 byte values, users with raw-byte salts and names', () => {
    const auth: AuthConfig = { sharedKey: 's3cret', selfHostname: 'localhost', users };
    let n = 0;
    const { state } = newHandshake(auth, () => slice(n++ % 16 === 0 ? 8 : 12));
    assert.deepEqual(state.authSalt, slice(12));
    for (const user of users) {
      const ping = decodeFrame(
        fluentBitPing({ hostname: ALL, salt: slice(14), nonce: state.nonce, key: 's3cret', user: { name: user.name, password: user.password.toString(), auth: state.authSalt } }),
      );
      assert.equal(ping.type, 'ping');
      if (ping.type !== 'ping') return;
      assert.equal(answerPing(auth, state, ping).ok, true, `user ${user.name.toString('hex')}`);
      const bad = decodeFrame(fluentBitPing({ hostname: ALL, salt: slice(14), nonce: state.nonce, key: 's3cret', user: { name: user.name, password: 'nope', auth: state.authSalt } }));
      const r = bad.type === 'ping' ? answerPing(auth, state, bad) : undefined;
      assert.equal(r?.ok, false);
      assert.equal(r && !r.ok && r.reason, 'username/password mismatch');
    }
  });

  test('a PING field that is neither str nor bin is a protocol error', () => {
    const f = arr(str('PING'), str('h'), Buffer.from([0x01]), str('d'), str(''), str(''));
    assert.throws(() => decodeFrame(f), /PING shared_key_salt is not a str or bin/);
  });
});

/** HELO exactly as Fluent Bit's in_forward packs it (fw_prot.c send_helo: 2 entries, raw str). */
function fluentBitHelo(nonce: Buffer, auth: Buffer): Buffer {
  return arr(str('HELO'), map(str('nonce'), str(nonce), str('auth'), str(auth)));
}

describe('output side: HELO from Fluent Bit with raw bytes', () => {
  for (let i = 0; i < 16; i++) {
    test(`nonce and auth bytes 0x${(i * 16).toString(16).padStart(2, '0')}-0x${(i * 16 + 15).toString(16)}: PING digests over the raw bytes, PONG checked`, () => {
      const auth = { sharedKey: 'k€y', selfHostname: 'sender-ß', username: 'alice', password: 'wonder land' };
      const helo = readHelo(fluentBitHelo(slice(i), slice(15 - i)));
      assert.deepEqual(helo.nonce, slice(i));
      assert.deepEqual(helo.authSalt, slice(15 - i));
      assert.equal(helo.keepalive, true, 'keepalive defaults to true, as the spec says');
      const { ping, salt } = buildPing(auth, helo);
      const p = decodeRaw(ping) as Buffer[];
      assert.deepEqual(p[1], Buffer.from('sender-ß'));
      assert.deepEqual(p[2], Buffer.from(salt));
      assert.equal(p[3]!.toString(), sha512hex(salt, 'sender-ß', slice(i), 'k€y'));
      assert.deepEqual(p[4], Buffer.from('alice'));
      assert.equal(p[5]!.toString(), sha512hex(slice(15 - i), 'alice', 'wonder land'));
      // The PONG: a server hostname with raw bytes enters the digest as those bytes.
      const host = Buffer.concat([Buffer.from('fb-'), slice((i + 5) % 16)]);
      const good = arr(str('PONG'), TRUE, str(''), str(host), str(sha512hex(salt, host, slice(i), 'k€y')));
      assert.equal(checkPong(good, auth, helo, salt), host.toString('utf8'));
      const forged = arr(str('PONG'), TRUE, str(''), str(host), str(sha512hex(salt, host, slice(i), 'other')));
      assert.throws(() => checkPong(forged, auth, helo, salt), /PONG digest mismatch/);
      const refused = arr(str('PONG'), FALSE, str('username/password mismatch'), str(''), str(''));
      assert.throws(() => checkPong(refused, auth, helo, salt), /authentication failed: username\/password mismatch/);
    });
  }

  test('HELO without auth: no user credentials in PING, as Fluent Bit', () => {
    const helo = readHelo(arr(str('HELO'), map(str('nonce'), bin(slice(10)), str('keepalive'), FALSE)));
    assert.equal(helo.authSalt, undefined);
    assert.equal(helo.keepalive, false);
    const p = decodeRaw(buildPing({ sharedKey: 'k', selfHostname: 'h', username: 'u', password: 'p' }, helo).ping) as Buffer[];
    assert.deepEqual(p[4], Buffer.alloc(0));
    assert.deepEqual(p[5], Buffer.alloc(0));
  });
});

describe('both directions: logwarden output against logwarden input', () => {
  for (let i = 0; i < 16; i++) {
    test(`nonce/auth bytes of slice ${i}`, () => {
      const server: AuthConfig = { sharedKey: 'shared', selfHostname: 'relay-b', users: [{ name: Buffer.from('bob'), password: Buffer.from('builder') }] };
      let n = 0;
      const { state, helo } = newHandshake(server, () => slice(n++ === 0 ? i : 15 - i));
      const client = { sharedKey: 'shared', selfHostname: 'relay-a', username: 'bob', password: 'builder' };
      const h = readHelo(helo);
      const { ping, salt } = buildPing(client, h);
      const msg = decodeFrame(ping);
      assert.equal(msg.type, 'ping');
      if (msg.type !== 'ping') return;
      const r = answerPing(server, state, msg);
      assert.equal(r.ok, true);
      assert.equal(checkPong(r.pong, client, h, salt), 'relay-b');
    });
  }
});

describe('ForwardConnection over a socket, against a server that speaks as Fluent Bit in_forward', () => {
  async function fakeServer(onPing: (ping: Buffer[], sock: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
    const srv = net.createServer((sock) => {
      sock.write(fluentBitHelo(slice(15), slice(8)));
      let buf = Buffer.alloc(0);
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        try {
          const ping = decodeRaw(buf) as Buffer[];
          buf = Buffer.alloc(0);
          onPing(ping, sock);
        } catch {
          // incomplete
        }
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    return { port: (srv.address() as net.AddressInfo).port, close: () => new Promise((r) => srv.close(() => r())) };
  }
  const auth = { sharedKey: 'k', selfHostname: 'me', username: 'alice', password: 'pw' };
  const timeouts = { connectMs: 2000, ioMs: 2000 };

  test('the handshake completes with raw-byte nonce and auth salt', async () => {
    const s = await fakeServer((ping, sock) => {
      const salt = ping[2]!;
      const ok = ping[3]!.toString() === sha512hex(salt, ping[1]!, slice(15), 'k') && ping[5]!.toString() === sha512hex(slice(8), 'alice', 'pw');
      sock.write(ok ? arr(str('PONG'), TRUE, str(''), str('fb'), str(sha512hex(salt, 'fb', slice(15), 'k'))) : arr(str('PONG'), FALSE, str('mismatch'), str(''), str('')));
    });
    try {
      const c = await ForwardConnection.open({ label: 'fb', host: '127.0.0.1', port: s.port }, auth, timeouts, () => undefined);
      assert.equal(c.alive, true);
      c.destroy();
    } finally {
      await s.close();
    }
  });

  test('a server that closes after PING (Fluent Bit on a wrong shared_key): auth error that says so', async () => {
    const s = await fakeServer((_ping, sock) => sock.destroy());
    try {
      await assert.rejects(
        ForwardConnection.open({ label: 'fb', host: '127.0.0.1', port: s.port }, auth, timeouts, () => undefined),
        (e: unknown) => {
          assert.ok(e instanceof DeliveryError);
          assert.equal(e.reason, 'auth');
          assert.match(e.message, /closed the connection after PING/);
          return true;
        },
      );
    } finally {
      await s.close();
    }
  });
});
