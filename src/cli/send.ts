import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { checkServerIdentity, type ConnectionOptions } from 'node:tls';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import { parseArgs, UsageError, type Command } from './command.js';
import { fileRecords, Progress, type FileRecord } from './stream-json.js';
import { EventTime, type LogEvent } from '../core/event.js';
import { encode } from '../core/msgpack.js';
import { DeliveryError } from '../core/plugin.js';
import { ForwardConnection, type Auth, type Endpoint } from '../outputs/forward/client.js';

const gzip = promisify(gzipCb);

type EventMode = 'Message' | 'Forward' | 'PackedForward' | 'CompressedPackedForward';
const MODES: Record<string, EventMode> = { message: 'Message', forward: 'Forward', packed: 'PackedForward' };

/** One frame in `mode`; with `chunk`, the options ask for an ack. */
async function frameOf(mode: EventMode, tag: string, events: LogEvent[], chunk: string | undefined): Promise<Buffer> {
  if (mode === 'Message') {
    const e = events[0]!;
    return encode(chunk === undefined ? [tag, e.time, e.record] : [tag, e.time, e.record, { chunk }]);
  }
  if (mode === 'Forward') {
    const entries = events.map((e) => [e.time, e.record]);
    return encode(chunk === undefined ? [tag, entries] : [tag, entries, { chunk }]);
  }
  let stream: Buffer = Buffer.concat(events.map((e) => encode([e.time, e.record])));
  const options: Record<string, unknown> = { size: events.length, ...(chunk === undefined ? {} : { chunk }) };
  if (mode === 'CompressedPackedForward') {
    stream = await gzip(stream);
    options.compressed = 'gzip';
  }
  return encode([tag, stream, options]);
}

/**
 * A send failure in words: for TLS, what was refused and which option fixes it, rather than the
 * OpenSSL text alone.
 */
export function explainSendError(message: string, tls: boolean): string {
  if (!tls) return message;
  if (/CERTIFICATE_REQUIRED|certificate required|alert number 116/i.test(message)) {
    return `TLS: the server requires a client certificate (--tls-cert, --tls-key): ${message}`;
  }
  if (/BAD_CERTIFICATE|UNKNOWN_CA|alert number (42|48)\b|bad certificate|unknown ca/i.test(message)) {
    return `TLS: the server refused the client certificate (not signed by a CA it trusts?): ${message}`;
  }
  if (/ERR_TLS_CERT_ALTNAME_INVALID|Hostname\/IP does not match/i.test(message)) {
    return `TLS: the server certificate does not name the host (--tls-vhost sets the name to check): ${message}`;
  }
  if (/UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|certificate/i.test(message)) {
    return `TLS: the server certificate was not accepted (--tls-ca names the CA that signed it): ${message}`;
  }
  if (/TLS|SSL|EPROTO|ECONNRESET|socket hang up|wrong version/i.test(message)) return `TLS handshake failed: ${message}`;
  return message;
}

export const sendCommand: Command = {
  name: 'send',
  summary: 'Send a file of events to a forward receiver (a forward client for testing)',
  usage: `Usage: logwarden send -H HOST -p PORT -t TAG FILE... [options]

Reads JSON lines, a JSON array or a Kubernetes EventList from each FILE in turn ('-' for stdin)
and sends the records with the Forward protocol (logwarden's own forward client, the one of the
forward output: the same handshake and acks). Chunks go one at a time over one connection.
Files are streamed: memory stays bounded for any file size. Prints a summary; on a terminal, a
progress line for runs longer than a second.

Options:
  -H, --host HOST          receiver host (default 127.0.0.1)
  -p, --port PORT          receiver port (default 24224)
  -t, --tag TAG            tag of the events (default: replay-shaped lines keep theirs, else 'send')
  --mode MODE              message | forward | packed (default forward)
  --compress gzip          CompressedPackedForward (implies packed)
  --ack                    request an ack for every chunk and wait for it
  --shared-key KEY         shared key for the handshake
  --hostname NAME          client hostname in the handshake (default: logwarden-send)
  --username USER          user for the handshake (with --password)
  --password PASS
  --tls                    connect with TLS (implied by any --tls-* option)
  --tls-ca FILE            CA bundle to verify the server (also --ca)
  --tls-cert FILE          client certificate (PEM), with --tls-key
  --tls-key FILE           its private key (PEM)
  --tls-vhost NAME         server name sent as SNI and checked in its certificate (default: HOST)
  --insecure               do not verify the server certificate
  --batch N                records per chunk (default 1000)
  --timeout SECONDS        connect, handshake and ack timeout (default 30)

Example:
  logwarden send -H 127.0.0.1 -p 24224 -t kube.audit --ack examples/events/exec_pod.json examples/events/attach_cluster_admin_role.json`,
  async run(args) {
    const a = parseArgs(args, {
      values: {
        '-H': 'host',
        '--host': 'host',
        '-p': 'port',
        '--port': 'port',
        '-t': 'tag',
        '--tag': 'tag',
        '--mode': 'mode',
        '--compress': 'compress',
        '--shared-key': 'shared-key',
        '--hostname': 'hostname',
        '--username': 'username',
        '--password': 'password',
        '--ca': 'tls-ca',
        '--tls-ca': 'tls-ca',
        '--tls-cert': 'tls-cert',
        '--tls-key': 'tls-key',
        '--tls-vhost': 'tls-vhost',
        '--batch': 'batch',
        '--timeout': 'timeout',
      },
      booleans: { '--ack': 'ack', '--tls': 'tls', '--insecure': 'insecure' },
    });
    const get = (k: string) => a.flags.get(k)?.[0];
    const files = a.positionals;
    if (!files.length) throw new UsageError('missing FILE');
    if (files.filter((f) => f === '-').length > 1) throw new UsageError("stdin ('-') can be read once");
    const port = Number(get('port') ?? 24224);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new UsageError(`invalid port ${get('port')}`);
    const compress = get('compress');
    if (compress !== undefined && compress !== 'gzip') throw new UsageError(`--compress takes gzip, found ${compress}`);
    const modeName = get('mode') ?? (compress ? 'packed' : 'forward');
    if (!MODES[modeName]) throw new UsageError(`--mode takes message, forward or packed, found ${modeName}`);
    const mode: EventMode = compress ? 'CompressedPackedForward' : MODES[modeName]!;
    const batch = Number(get('batch') ?? 1000);
    if (!Number.isInteger(batch) || batch < 1) throw new UsageError(`invalid --batch ${get('batch')}`);
    const ack = a.flags.has('ack');
    const timeoutMs = Number(get('timeout') ?? 30) * 1000;

    const sharedKey = get('shared-key');
    const host = get('host') ?? '127.0.0.1';
    if ((get('tls-cert') === undefined) !== (get('tls-key') === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
    const useTls = a.flags.has('tls') || a.flags.has('insecure') || ['tls-ca', 'tls-cert', 'tls-key', 'tls-vhost'].some((k) => get(k) !== undefined);
    const pem = (k: string) => {
      const f = get(k);
      if (f === undefined) return undefined;
      try {
        return readFileSync(f);
      } catch (e) {
        throw new UsageError(`--${k} ${f}: ${(e as Error).message}`);
      }
    };
    let tls: ConnectionOptions | undefined;
    if (useTls) {
      const vhost = get('tls-vhost');
      const [ca, cert, key] = [pem('tls-ca'), pem('tls-cert'), pem('tls-key')];
      tls = {
        ...(ca ? { ca } : {}),
        ...(cert ? { cert } : {}),
        ...(key ? { key } : {}),
        rejectUnauthorized: !a.flags.has('insecure'),
        servername: vhost ?? host,
        ...(vhost ? { checkServerIdentity: (_h: string, c: Parameters<typeof checkServerIdentity>[1]) => checkServerIdentity(vhost, c) } : {}),
      };
    }
    const endpoint: Endpoint = { label: `${host}:${port}`, host, port, ...(tls ? { tls } : {}) };
    const auth: Auth | undefined =
      sharedKey !== undefined || get('username') !== undefined
        ? { sharedKey: sharedKey ?? '', selfHostname: get('hostname') ?? 'logwarden-send', username: get('username') ?? '', password: get('password') ?? '' }
        : undefined;
    const timeouts = { connectMs: timeoutMs, ioMs: timeoutMs };

    const progress = new Progress('send');
    const started = Date.now();
    let read = 0;
    let sent = 0;
    let failed = 0;
    let firstError: string | undefined;
    let readError: string | undefined;
    let gaveUp = false;
    let conn: ForwardConnection | undefined;
    const perFile: Array<{ file: string; records: number }> = [];
    const tagOf = (r: FileRecord) => r.tag ?? get('tag') ?? 'send';
    const limit = mode === 'Message' ? 1 : batch;

    /** Sends one chunk of consecutive records of one tag. */
    const sendChunk = async (tag: string, chunk: LogEvent[]) => {
      if (gaveUp) {
        failed += chunk.length;
        return;
      }
      const id = ack ? randomBytes(16).toString('base64') : undefined;
      try {
        if (!conn?.alive || !conn.keepalive) {
          conn?.destroy();
          conn = await ForwardConnection.open(endpoint, auth, timeouts, () => undefined);
        }
        await conn.request([await frameOf(mode, tag, chunk, id)], id);
        sent += chunk.length;
      } catch (e) {
        failed += chunk.length;
        firstError ??= explainSendError((e as Error).message, useTls);
        conn?.destroy();
        conn = undefined;
        // A receiver that does not answer within the timeout would hold every further chunk as
        // long: give up on the rest.
        if (e instanceof DeliveryError && e.reason === 'timeout') gaveUp = true;
      }
      progress.update(sent, failed ? `, ${failed} failed` : '');
    };

    // Every file in turn, streamed: at most one chunk of records is in memory.
    for (const file of files) {
      let n = 0;
      let tag: string | undefined;
      let chunk: LogEvent[] = [];
      try {
        for await (const r of fileRecords(file)) {
          n++;
          read++;
          const t = tagOf(r);
          if (chunk.length && (t !== tag || chunk.length >= limit)) {
            await sendChunk(tag!, chunk);
            chunk = [];
          }
          tag = t;
          chunk.push({ tag: t, time: r.time ?? EventTime.now(), record: r.record });
        }
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        readError = err.code ? `cannot read ${file}: ${err.message}` : err.message;
      }
      if (chunk.length) await sendChunk(tag!, chunk);
      perFile.push({ file, records: n });
      if (readError) break;
    }
    conn?.end();
    progress.done();
    const secs = (Date.now() - started) / 1000;
    const summary = {
      files: perFile,
      records: read,
      sent,
      failed,
      acked: ack ? sent : undefined,
      mode: mode,
      seconds: Number(secs.toFixed(3)),
      records_per_s: Math.round(sent / Math.max(secs, 0.001)),
      ...(firstError ? { first_error: firstError } : {}),
      ...(readError ? { read_error: readError } : {}),
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    if (firstError) process.stderr.write(`logwarden send: ${firstError}\n`);
    if (readError) process.stderr.write(`logwarden send: ${readError}\n`);
    return failed || readError ? 1 : 0;
  },
};
