/**
 * Forward Protocol v1 handshake, server side (HELO / PING / PONG), as Fluent Bit's in_forward
 * runs it (fw_prot.c):
 *   HELO  ["HELO", {nonce, auth, keepalive}]
 *   PING  ["PING", client_hostname, shared_key_salt, hex(sha512(salt + client_hostname + nonce + shared_key)),
 *          username, hex(sha512(auth_salt + username + password))]
 *   PONG  ["PONG", auth_result, reason, server_hostname, hex(sha512(salt + server_hostname + nonce + shared_key))]
 * Nonce and auth salt are 16 random bytes. Every PING field enters the digests as the bytes it
 * was on the wire (Fluent Bit sends its random salt in a msgpack str): nothing is read as text.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { encode } from '../../core/msgpack.js';
import type { PingMessage } from './protocol.js';

export interface AuthUser {
  name: Buffer;
  password: Buffer;
}

export interface AuthConfig {
  sharedKey: string;
  selfHostname: string;
  /** `security.users`, in order; a name may appear more than once (any matching entry passes). */
  users: AuthUser[];
}

export interface HandshakeState {
  nonce: Buffer;
  authSalt: Buffer;
}

/** Builds the HELO for a new connection; `random` is for tests (16 bytes each call). */
export function newHandshake(auth: AuthConfig, random: (n: number) => Buffer = randomBytes): { state: HandshakeState; helo: Buffer } {
  const nonce = random(16);
  const authSalt = auth.users.length ? random(16) : Buffer.alloc(0);
  // Fluentd sends auth '' when it has no users; a client then sends no user credentials.
  const helo = encode(['HELO', { nonce, auth: auth.users.length ? authSalt : '', keepalive: true }]);
  return { state: { nonce, authSalt }, helo };
}

export function sha512hex(...parts: Array<Buffer | string>): Buffer {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return Buffer.from(h.digest('hex'), 'latin1');
}

/** Fluent Bit compares the 128 hex digits as they are; upper-case hex is accepted too. */
function sameHex(expected: Buffer, got: Buffer): boolean {
  const g = Buffer.from(got.toString('latin1').toLowerCase(), 'latin1');
  return g.length === expected.length && timingSafeEqual(expected, g);
}

export type PingResult = { ok: true; pong: Buffer; username: string } | { ok: false; pong: Buffer; reason: string; metric: string };

export function answerPing(auth: AuthConfig, state: HandshakeState, ping: PingMessage): PingResult {
  const fail = (reason: string, metric: string): PingResult => ({
    ok: false,
    reason,
    metric,
    pong: encode(['PONG', false, reason, '', '']),
  });
  const expected = sha512hex(ping.sharedKeySalt, ping.hostname, state.nonce, auth.sharedKey);
  if (!sameHex(expected, ping.sharedKeyDigest)) return fail('shared_key mismatch', 'shared_key');
  if (auth.users.length) {
    const ok = auth.users.some((u) => u.name.equals(ping.username) && sameHex(sha512hex(state.authSalt, u.name, u.password), ping.passwordDigest));
    if (!ok) return fail('username/password mismatch', 'user');
  }
  const serverDigest = sha512hex(ping.sharedKeySalt, auth.selfHostname, state.nonce, auth.sharedKey).toString('latin1');
  return { ok: true, username: ping.username.toString('utf8'), pong: encode(['PONG', true, '', auth.selfHostname, serverDigest]) };
}
