/**
 * Test certificates: a CA, a server certificate it signs, a client certificate it signs, and on
 * request certificates from outside that CA. Written into a directory under the names pipelines
 * and CLI flags refer to.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import selfsigned from 'selfsigned';

export interface Pem {
  cert: string;
  private: string;
}

export interface Pki {
  ca: Pem;
  server: Pem;
  client: Pem;
}

export interface PkiOptions {
  /** The CA's common name. */
  caName?: string;
  /** The server certificate's common name and DNS subjectAltName. */
  host?: string;
  /** Also an IP subjectAltName 127.0.0.1 on the server certificate (default on). */
  ip?: boolean;
  /** The client certificate's common name. */
  clientName?: string;
}

type PkiFile = 'ca.pem' | 'server.pem' | 'server.key' | 'client.pem' | 'client.key';

const rsa = { keySize: 2048, algorithm: 'sha256' } as const;

/** A CA with a server and a client certificate it signs. */
export async function pki(o: PkiOptions = {}): Promise<Pki> {
  const host = o.host ?? 'localhost';
  const ca = await selfsigned.generate([{ name: 'commonName', value: o.caName ?? 'test-ca' }], {
    ...rsa,
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true },
    ],
  });
  const altNames =
    (o.ip ?? true)
      ? [
          { type: 2 as const, value: host },
          { type: 7 as const, ip: '127.0.0.1' },
        ]
      : [{ type: 2 as const, value: host }];
  const server = await selfsigned.generate([{ name: 'commonName', value: host }], {
    ...rsa,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [{ name: 'subjectAltName', altNames }],
  });
  const client = await selfsigned.generate([{ name: 'commonName', value: o.clientName ?? 'client' }], {
    ...rsa,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [{ name: 'extKeyUsage', clientAuth: true }],
  });
  return { ca, server, client };
}

/** A self-signed certificate no test CA signed. */
export async function selfSigned(name: string): Promise<Pem> {
  return selfsigned.generate([{ name: 'commonName', value: name }], rsa);
}

/**
 * Writes ca.pem, server.pem, server.key, client.pem and client.key (and `extra`, name → text) into
 * `dir`; returns each name's path.
 */
export function writePki<E extends string = never>(dir: string, p: Pki, extra?: Record<E, string>): Record<PkiFile | E, string> {
  const files: Record<string, string> = {
    'ca.pem': p.ca.cert,
    'server.pem': p.server.cert,
    'server.key': p.server.private,
    'client.pem': p.client.cert,
    'client.key': p.client.private,
    ...extra,
  };
  const paths: Record<string, string> = {};
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(join(dir, name), text);
    paths[name] = join(dir, name);
  }
  return paths as Record<PkiFile | E, string>;
}
