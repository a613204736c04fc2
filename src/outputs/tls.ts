/**
 * The client side of TLS for outputs, with Fluent Bit's option names: the `tls.*` options, the
 * check that a client certificate comes with its key, the PEM files read once (relative to the
 * file that names them; unreadable is a ConfigError at the option's position), and the options
 * Node's TLS client takes. As Fluent Bit, the chain is checked with `tls.verify` and the host name
 * only with `tls.verify_hostname`. Listening inputs have the server side in src/inputs/listener.ts.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { checkServerIdentity, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { ConfigError, type SourcePos } from '../config/errors.js';
import type { ConfigOf } from '../config/schema.js';

/**
 * The `tls.*` options every output that connects with TLS has (`tls` itself, which says what it
 * switches on, and `tls.key_passwd` where supported are the output's own); `host` names what
 * tls.verify_hostname checks without tls.vhost.
 */
export function clientTlsOptions<H extends string>(host: H) {
  return {
    'tls.verify': { type: 'bool', default: true, description: 'Verify the server certificate chain against tls.ca_file (default: the system CAs)' },
    'tls.verify_hostname': { type: 'bool', default: false, description: `Also check that the certificate names the host (tls.vhost, else ${host}), as Fluent Bit (default off)` },
    'tls.ca_file': { type: 'string', description: 'PEM file of CA certificates to trust (default: the system CAs)' },
    'tls.crt_file': { type: 'string', description: 'PEM client certificate (mutual TLS)' },
    'tls.key_file': { type: 'string', description: 'PEM private key of tls.crt_file' },
    'tls.vhost': { type: 'string', description: 'Host name sent as SNI and checked by tls.verify_hostname (default: the host)' },
  } as const;
}

/** The `tls.*` options as a config holds them; `tls.key_passwd` for the outputs that declare it. */
export type ClientTlsConfig = ConfigOf<ReturnType<typeof clientTlsOptions>> & ConfigOf<typeof keyPasswdOption>;

/** `tls.key_passwd`, for the outputs whose TLS library takes an encrypted key. */
export const keyPasswdOption = {
  'tls.key_passwd': { type: 'string', description: 'Password of tls.key_file' },
} as const;

/** The PEM files of the tls.* options, read. */
export interface TlsFiles {
  ca: Buffer | undefined;
  cert: Buffer | undefined;
  key: Buffer | undefined;
}

export type PosOf = (key: string) => SourcePos | undefined;

/** tls.crt_file and tls.key_file go together. */
export function checkClientTls(c: ClientTlsConfig, posOf: PosOf): void {
  if ((c['tls.crt_file'] === undefined) !== (c['tls.key_file'] === undefined)) {
    const k = c['tls.crt_file'] === undefined ? 'tls.key_file' : 'tls.crt_file';
    throw new ConfigError('tls.crt_file and tls.key_file go together (client certificate and its key)', posOf(k), k);
  }
}

/** Reads the PEM file option `key` names, relative to `baseDir`. */
export function readPem(file: string | undefined, baseDir: string, key: string, posOf: PosOf): Buffer | undefined {
  if (file === undefined) return undefined;
  const path = resolve(baseDir, file);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ConfigError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, posOf(key), key);
  }
}

/** tls.ca_file, tls.crt_file and tls.key_file, read. */
export function readTlsFiles(c: ClientTlsConfig, baseDir: string, posOf: PosOf): TlsFiles {
  return {
    ca: readPem(c['tls.ca_file'], baseDir, 'tls.ca_file', posOf),
    cert: readPem(c['tls.crt_file'], baseDir, 'tls.crt_file', posOf),
    key: readPem(c['tls.key_file'], baseDir, 'tls.key_file', posOf),
  };
}

/**
 * The TLS client options. `host`, when the caller connects to a known host, is the name checked
 * (without tls.vhost) and, unless an IP address (`sni` false), the SNI name; without it the
 * client's own defaults apply (undici: the URL's host).
 */
export function clientTlsConnect(c: ClientTlsConfig, files: TlsFiles, host?: { name: string; sni: boolean }): ConnectionOptions {
  const vhost = c['tls.vhost'];
  const checked = vhost ?? host?.name;
  const servername = vhost ?? (host?.sni ? host.name : undefined);
  return {
    rejectUnauthorized: c['tls.verify'],
    ...(c['tls.verify_hostname']
      ? checked !== undefined
        ? { checkServerIdentity: (_h: string, peer: PeerCertificate) => checkServerIdentity(checked, peer) }
        : {}
      : { checkServerIdentity: () => undefined }),
    ...(servername ? { servername } : {}),
    ...(files.ca ? { ca: files.ca } : {}),
    ...(files.cert ? { cert: files.cert } : {}),
    ...(files.key ? { key: files.key } : {}),
    ...(c['tls.key_passwd'] !== undefined ? { passphrase: c['tls.key_passwd'] } : {}),
  };
}
