import { readFileSync } from 'node:fs';
import { FluentClient, EventTime as FluentEventTime, type EventModes } from '@fluent-org/logger';
import { parseArgs, UsageError, type Command } from './command.js';
import { readRecords } from './replay.js';
import { EventTime } from '../core/event.js';

const MODES: Record<string, EventModes> = { message: 'Message', forward: 'Forward', packed: 'PackedForward' };

export const sendCommand: Command = {
  name: 'send',
  summary: 'Send a file of events to a forward receiver (a forward client for testing)',
  usage: `Usage: logwarden send -H HOST -p PORT -t TAG FILE [options]

Reads JSON lines, a JSON array or a Kubernetes EventList from FILE ('-' for stdin) and sends the
records with the Forward protocol (built on @fluent-org/logger). Prints a summary; on a
terminal, a progress line.

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
  --timeout SECONDS        ack timeout (default 30)

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
    const mode: EventModes = compress ? 'CompressedPackedForward' : MODES[modeName]!;
    const batch = Number(get('batch') ?? 1000);
    if (!Number.isInteger(batch) || batch < 1) throw new UsageError(`invalid --batch ${get('batch')}`);
    const ack = a.flags.has('ack');
    const timeoutMs = Number(get('timeout') ?? 30) * 1000;

    const records = readRecords(readFileSync(file === '-' ? 0 : file, 'utf8'), file);
    const sharedKey = get('shared-key');
    const client = new FluentClient(undefined, {
      eventMode: mode,
      socket: {
        host: get('host') ?? '127.0.0.1',
        port,
        timeout: timeoutMs,
        ...(a.flags.has('tls')
          ? { tls: { ...(get('ca') ? { ca: readFileSync(get('ca')!) } : {}), rejectUnauthorized: !a.flags.has('insecure') } }
          : {}),
      },
      ...(sharedKey !== undefined || get('username') !== undefined
        ? {
            security: {
              clientHostname: get('hostname') ?? 'logwarden-send',
              sharedKey: sharedKey ?? '',
              ...(get('username') !== undefined ? { username: get('username')!, password: get('password') ?? '' } : {}),
            },
          }
        : {}),
      ...(ack ? { ack: { ackTimeout: timeoutMs } } : {}),
      flushInterval: 0,
      sendQueueSyncFlushLimit: { length: batch },
      sendQueueIntervalFlushLimit: { length: batch },
      disconnect: { waitForPending: true, waitForPendingDelay: timeoutMs, socketDisconnectDelay: ack ? 100 : 0 },
    });
    const tty = process.stderr.isTTY;
    const started = Date.now();
    let sent = 0;
    let failed = 0;
    let firstError: string | undefined;
    const pending: Promise<void>[] = [];
    for (const r of records) {
      const t = r.time ?? EventTime.now();
      const p = client
        .emit(r.tag ?? get('tag') ?? 'send', r.record, new FluentEventTime(t.sec, t.nsec))
        .then(() => {
          sent++;
          if (tty && sent % 1000 === 0) process.stderr.write(`\rsent ${sent}/${records.length}`);
        })
        .catch((e: Error) => {
          failed++;
          firstError ??= e.message;
        });
      pending.push(p);
      // Bound the records in flight, so a large file does not sit in memory twice.
      if (pending.length >= batch * 4) await Promise.all(pending.splice(0, batch));
    }
    // A receiver that never answers must not hang the command: give up after the timeout.
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      Promise.all(pending).then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!finished) {
      firstError ??= `no answer from ${get('host') ?? '127.0.0.1'}:${port} within ${timeoutMs / 1000}s`;
      failed = records.length - sent;
    }
    await Promise.race([client.disconnect().catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
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
