import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import { parseArgs, UsageError, type Command } from './command.js';
import { readRecords } from './replay.js';
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

export const sendCommand: Command = {
  name: 'send',
  summary: 'Send a file of events to a forward receiver (a forward client for testing)',
  usage: `Usage: logwarden send -H HOST -p PORT -t TAG FILE [options]

Reads JSON lines, a JSON array or a Kubernetes EventList from FILE ('-' for stdin) and sends the
records with the Forward protocol (logwarden's own forward client, the one of the forward
output: the same handshake and acks). Chunks go one at a time over one connection. Prints a
summary; on a terminal, a progress line.

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
  --tls                    connect with TLS
  --ca FILE                CA bundle to verify the server (with --tls)
  --insecure               do not verify the server certificate (with --tls)
  --batch N                records per chunk (default 1000)
  --timeout SECONDS        connect, handshake and ack timeout (default 30)

Example:
  logwarden send -H 127.0.0.1 -p 24224 -t kube.audit --ack examples/events/audit.jsonl`,
  async run(args) {
    const a = parseArgs(args, {
      values: {
        '-H': 'host', '--host': 'host', '-p': 'port', '--port': 'port', '-t': 'tag', '--tag': 'tag', '--mode': 'mode',
        '--compress': 'compress', '--shared-key': 'shared-key', '--hostname': 'hostname', '--username': 'username',
        '--password': 'password', '--ca': 'ca', '--batch': 'batch', '--timeout': 'timeout',
      },
      booleans: { '--ack': 'ack', '--tls': 'tls', '--insecure': 'insecure' },
    });
    const get = (k: string) => a.flags.get(k)?.[0];
    const file = a.positionals[0];
    if (!file) throw new UsageError('missing FILE');
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

    const records = readRecords(readFileSync(file === '-' ? 0 : file, 'utf8'), file);
    const sharedKey = get('shared-key');
    const host = get('host') ?? '127.0.0.1';
    const endpoint: Endpoint = {
      label: `${host}:${port}`,
      host,
      port,
      ...(a.flags.has('tls') ? { tls: { ...(get('ca') ? { ca: readFileSync(get('ca')!) } : {}), rejectUnauthorized: !a.flags.has('insecure') } } : {}),
    };
    const auth: Auth | undefined =
      sharedKey !== undefined || get('username') !== undefined
        ? { sharedKey: sharedKey ?? '', selfHostname: get('hostname') ?? 'logwarden-send', username: get('username') ?? '', password: get('password') ?? '' }
        : undefined;
    const timeouts = { connectMs: timeoutMs, ioMs: timeoutMs };

    const tty = process.stderr.isTTY;
    const started = Date.now();
    let sent = 0;
    let failed = 0;
    let firstError: string | undefined;
    let conn: ForwardConnection | undefined;
    // Consecutive records of one tag, at most `batch` per chunk (Message mode: one per frame).
    for (let i = 0; i < records.length; ) {
      const tag = records[i]!.tag ?? get('tag') ?? 'send';
      const chunk: LogEvent[] = [];
      const limit = mode === 'Message' ? 1 : batch;
      while (i < records.length && chunk.length < limit && (records[i]!.tag ?? get('tag') ?? 'send') === tag) {
        const r = records[i++]!;
        chunk.push({ tag, time: r.time ?? EventTime.now(), record: r.record });
      }
      const id = ack ? randomBytes(16).toString('base64') : undefined;
      try {
        if (!conn?.alive || !conn.keepalive) {
          conn?.destroy();
          conn = await ForwardConnection.open(endpoint, auth, timeouts, () => undefined);
        }
        await conn.request([await frameOf(mode, tag, chunk, id)], id);
        sent += chunk.length;
        if (tty && sent % 1000 < chunk.length) process.stderr.write(`\rsent ${sent}/${records.length}`);
      } catch (e) {
        failed += chunk.length;
        firstError ??= (e as Error).message;
        conn?.destroy();
        conn = undefined;
        // A receiver that does not answer within the timeout would hold every further chunk as
        // long: give up on the rest.
        if (e instanceof DeliveryError && e.reason === 'timeout') {
          failed += records.length - i;
          break;
        }
      }
    }
    conn?.end();
    const secs = (Date.now() - started) / 1000;
    if (tty) process.stderr.write('\r');
    const summary = {
      records: records.length,
      sent,
      failed,
      acked: ack ? sent : undefined,
      mode: mode,
      seconds: Number(secs.toFixed(3)),
      records_per_s: Math.round(sent / Math.max(secs, 0.001)),
      ...(firstError ? { first_error: firstError } : {}),
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return failed ? 1 : 0;
  },
};
