/**
 * A raw forward-protocol client for tests: frames crafted from the spec with @msgpack/msgpack
 * (an encoder independent of the server's), byte by byte where the spec allows forms that no
 * library emits (ext8 EventTime, PackedForward entries as str).
 */
import net from 'node:net';
import { createHash } from 'node:crypto';
import { Decoder, Encoder, ExtensionCodec } from '@msgpack/msgpack';

export class WireTime {
  constructor(
    readonly sec: number,
    readonly nsec: number,
  ) {}
}

const codec = new ExtensionCodec();
codec.register({
  type: 0,
  encode: (v: unknown) => {
    if (!(v instanceof WireTime)) return null;
    const b = Buffer.alloc(8);
    b.writeUInt32BE(v.sec >>> 0, 0);
    b.writeUInt32BE(v.nsec >>> 0, 4);
    return b;
  },
  decode: (d: Uint8Array) => {
    const b = Buffer.from(d);
    return new WireTime(b.readUInt32BE(0), b.readUInt32BE(4));
  },
});

const encoder = new Encoder({ extensionCodec: codec, useBigInt64: true });

export function pack(v: unknown): Buffer {
  return Buffer.from(encoder.encode(v));
}

/** EventTime in the ext8 form (C7 08 00 + 8 bytes) that msgpack libraries do not emit. */
export function ext8Time(sec: number, nsec: number): Buffer {
  const b = Buffer.alloc(11);
  b[0] = 0xc7;
  b[1] = 8;
  b[2] = 0;
  b.writeUInt32BE(sec, 3);
  b.writeUInt32BE(nsec, 7);
  return b;
}

/** msgpack str header (str32 form) for `n` bytes. */
export function str32Header(n: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = 0xdb;
  b.writeUInt32BE(n, 1);
  return b;
}

export function bin32Header(n: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = 0xc6;
  b.writeUInt32BE(n, 1);
  return b;
}

export function fixarray(n: number): Buffer {
  return Buffer.from([0x90 | n]);
}

export class RawClient {
  readonly replies: unknown[] = [];
  closed = false;
  private readonly decoder = new Decoder({ extensionCodec: codec });
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (;;) {
        try {
          const gen = this.decoder.decodeMulti(this.buf);
          const vals = [...gen];
          this.replies.push(...vals);
          this.buf = Buffer.alloc(0);
        } catch {
          // incomplete: wait for more bytes
        }
        break;
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, host, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  write(b: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(b, (e) => (e ? reject(e) : resolve())));
  }

  /** Waits until `pred` holds (re-checked on every reply and on close), or fails after `ms`. */
  async until(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; replies=${JSON.stringify(this.replies)} closed=${this.closed}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Answers a HELO with a PING computed as the spec says. */
  ping(o: { hostname: string; sharedKey: string; username?: string; password?: string }): Buffer {
    const helo = this.replies.find((r) => Array.isArray(r) && r[0] === 'HELO') as [string, { nonce: Uint8Array; auth: Uint8Array | string }];
    if (!helo) throw new Error('no HELO');
    const nonce = Buffer.from(helo[1].nonce);
    const authSalt = typeof helo[1].auth === 'string' ? Buffer.from(helo[1].auth) : Buffer.from(helo[1].auth);
    const salt = Buffer.from('0123456789abcdef');
    const sha = (...parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHash('sha512')).digest('hex');
    const digest = sha(salt, Buffer.from(o.hostname), nonce, Buffer.from(o.sharedKey));
    const user = o.username ?? '';
    const pw = o.username !== undefined ? sha(authSalt, Buffer.from(user), Buffer.from(o.password ?? '')) : '';
    return pack(['PING', o.hostname, salt, digest, user, pw]);
  }

  close(): void {
    this.socket.destroy();
  }
}
