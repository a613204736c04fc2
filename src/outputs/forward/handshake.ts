/**
 * Forward Protocol v1 handshake, client side, as Fluent Bit's out_forward runs it (forward.c):
 *   HELO  ["HELO", {nonce, auth, keepalive}]            from the server
 *   PING  ["PING", self_hostname, shared_key_salt, hex(sha512(salt + self_hostname + nonce + shared_key)),
 *          username, hex(sha512(auth + username + password))]
 *   PONG  ["PONG", auth_result, reason, server_hostname, hex(sha512(salt + server_hostname + nonce + shared_key))]
 * The nonce, the auth salt and the server hostname are used as the bytes they are on the wire,
 * str or bin (Fluent Bit's in_forward sends its random nonce and salt in a msgpack str): read as
 * UTF-8 text they would change and no digest would match. The PONG digest proves the server holds
 * the same key; a PONG without it, or with a wrong one, fails the connection.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { encode } from '../../core/msgpack.js';
import { decodeRaw, type RawValue } from '../../core/msgpack-scan.js';

export interface Auth {
  sharedKey: string;
  selfHostname: string;
  username: string;
  password: string;
}

export interface Helo {
  nonce: Buffer;
  /** The user-auth salt; undefined when the HELO has none (no username/password is sent then). */
  authSalt: Buffer | undefined;
  keepalive: boolean;
}

export class HandshakeError extends Error {
  constructor(
    message: string,
    /** `auth`: the server refused us, or is not who it claims; `protocol`: unreadable messages. */
    readonly reason: 'auth' | 'protocol',
  ) {
    super(message);
  }
}

function sha512hex(...parts: Array<Buffer | string>): string {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/** Short printable form of a handshake message, for error messages. */
export function describeRaw(v: RawValue | undefined): string {
  const show = (x: RawValue | undefined): unknown => {
    if (Buffer.isBuffer(x)) {
      const t = x.toString('utf8');
      return Buffer.from(t, 'utf8').equals(x) && !/[\u0000-\u001f]/.test(t) ? t : `<${x.length} bytes>`;
    }
    if (x instanceof Map) return Object.fromEntries([...x].map(([k, y]) => [k, show(y)]));
    if (Array.isArray(x)) return x.map(show);
    return typeof x === 'bigint' ? String(x) : x;
  };
  const s = JSON.stringify(show(v)) ?? String(v);
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}

function read(frame: Buffer): RawValue {
  try {
    return decodeRaw(frame);
  } catch (e) {
    throw new HandshakeError(`unreadable handshake message: ${(e as Error).message}`, 'protocol');
  }
}

function isText(v: RawValue | undefined, text: string): boolean {
  return Buffer.isBuffer(v) && v.equals(Buffer.from(text));
}

/** Reads a HELO; a HandshakeError when the frame is something else. */
export function readHelo(frame: Buffer): Helo {
  const v = read(frame);
  if (!Array.isArray(v) || v.length < 2 || !isText(v[0], 'HELO') || !(v[1] instanceof Map)) {
    throw new HandshakeError(`expected HELO, got ${describeRaw(v)}`, 'protocol');
  }
  const opts = v[1];
  const nonce = opts.get('nonce');
  if (!Buffer.isBuffer(nonce)) throw new HandshakeError('HELO without a nonce', 'protocol');
  const auth = opts.get('auth');
  return { nonce, authSalt: Buffer.isBuffer(auth) ? auth : undefined, keepalive: opts.get('keepalive') !== false };
}

/**
 * The PING answering `helo`, and the salt it used (needed to check the PONG). The salt is 16
 * random bytes as hex text, as Fluentd makes it: valid in a msgpack str for every server.
 */
export function buildPing(auth: Auth, helo: Helo, salt: string = randomBytes(16).toString('hex')): { ping: Buffer; salt: string } {
  const digest = sha512hex(salt, auth.selfHostname, helo.nonce, auth.sharedKey);
  // As Fluent Bit: user credentials go with a HELO that carries an auth salt.
  const user = helo.authSalt !== undefined && auth.username !== '';
  const passwordDigest = user ? sha512hex(helo.authSalt!, auth.username, auth.password) : '';
  return { ping: encode(['PING', auth.selfHostname, salt, digest, user ? auth.username : '', passwordDigest]), salt };
}

/** Checks a PONG: resolves with the server's hostname, or throws a HandshakeError. */
export function checkPong(frame: Buffer, auth: Auth, helo: Helo, salt: string): string {
  const v = read(frame);
  if (!Array.isArray(v) || v.length !== 5 || !isText(v[0], 'PONG')) throw new HandshakeError(`expected PONG [type, auth_result, reason, server_hostname, digest], got ${describeRaw(v)}`, 'protocol');
  if (v[1] !== true) {
    const reason = Buffer.isBuffer(v[2]) && v[2].length ? v[2].toString('utf8') : 'no reason given';
    const hint = helo.authSalt?.length && !auth.username ? ' (the server requires username and password)' : '';
    throw new HandshakeError(`authentication failed: ${reason}${hint}`, 'auth');
  }
  const host = v[3];
  const got = v[4];
  if (!Buffer.isBuffer(host)) throw new HandshakeError(`PONG server_hostname is not a string: ${describeRaw(v)}`, 'protocol');
  const want = Buffer.from(sha512hex(salt, host, helo.nonce, auth.sharedKey), 'latin1');
  const g = Buffer.isBuffer(got) ? Buffer.from(got.toString('latin1').toLowerCase(), 'latin1') : Buffer.alloc(0);
  if (g.length !== want.length || !timingSafeEqual(g, want)) {
    throw new HandshakeError(`PONG digest mismatch from server '${host.toString('utf8')}': it does not hold the same shared_key (or is not the server it claims to be)`, 'auth');
  }
  return host.toString('utf8');
}
