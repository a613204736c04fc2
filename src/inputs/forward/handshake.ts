/**
 * Forward Protocol v1 handshake, server side (HELO / PING / PONG):
 *   HELO  ["HELO", {nonce, auth, keepalive}]
 *   PING  ["PING", client_hostname, shared_key_salt, hex(sha512(salt + client_hostname + nonce + shared_key)),
 *          username, hex(sha512(auth_salt + username + password))]
 *   PONG  ["PONG", auth_result, reason, server_hostname, hex(sha512(salt + server_hostname + nonce + shared_key))]
 * Nonce and auth salt are 16 random bytes, as Fluent Bit's in_forward makes them.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { encode } from '../../core/msgpack.js';
import type { PingMessage } from './protocol.js';

export interface AuthConfig {
  sharedKey: string;
  selfHostname: string;
  /** username -> password */
  users: Map<string, string>;
}

export interface HandshakeState {
  nonce: Buffer;
  authSalt: Buffer;
}

export function newHandshake(auth: AuthConfig): { state: HandshakeState; helo: Buffer } {
  const nonce = randomBytes(16);
  const authSalt = auth.users.size ? randomBytes(16) : Buffer.alloc(0);
  const helo = encode(['HELO', { nonce, auth: auth.users.size ? authSalt : '', keepalive: true }]);
  return { state: { nonce, authSalt }, helo };
}

function sha512hex(...parts: Array<Buffer | string>): string {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a.toLowerCase());
  const y = Buffer.from(b.toLowerCase());
  return x.length === y.length && timingSafeEqual(x, y);
}

export type PingResult = { ok: true; pong: Buffer; username: string } | { ok: false; pong: Buffer; reason: string; metric: string };

export function answerPing(auth: AuthConfig, state: HandshakeState, ping: PingMessage): PingResult {
  const fail = (reason: string, metric: string): PingResult => ({
    ok: false,
    reason,
    metric,
    pong: encode(['PONG', false, reason, auth.selfHostname, '']),
  });
  const expected = sha512hex(ping.sharedKeySalt, ping.hostname, state.nonce, auth.sharedKey);
  if (!sameHex(expected, ping.sharedKeyDigest)) return fail('shared_key mismatch', 'shared_key');
  if (auth.users.size) {
    const password = auth.users.get(ping.username);
    if (password === undefined) return fail('username/password mismatch', 'user');
    const digest = sha512hex(state.authSalt, ping.username, password);
    if (!sameHex(digest, ping.passwordDigest)) return fail('username/password mismatch', 'user');
  }
  const serverDigest = sha512hex(ping.sharedKeySalt, auth.selfHostname, state.nonce, auth.sharedKey);
  return { ok: true, username: ping.username, pong: encode(['PONG', true, '', auth.selfHostname, serverDigest]) };
}
