/**
 * Load generator (its own process): pre-encodes Forward-mode or PackedForward chunks of audit
 * events, as Fluent Bit's out_forward sends them (EventTime, `chunk` option for acks), and sends
 * them over W connections, each waiting for its ack before the next chunk (Fluent Bit's
 * require_ack_response with W workers). Prints one JSON line of results.
 *
 *   node dist/bench/loadgen.js --port P --events FILE [--mode forward|packed] [--chunk 2000]
 *        [--connections 2] [--records N] [--wrap-log] [--rate R] [--tag kube.audit] [--pad-to BYTES] [--warmup N]
 *        [--metadata]
 *
 * --warmup N first sends N records (acked, not measured), prints {"warm":true} and waits for a
 * line on stdin before the measured run.
 * --metadata sends Fluent Bit 5.x's entries, [[time, {}], record], instead of [time, record].
 * --pad-to grows every event to about BYTES of JSON with an annotation of filler text (the
 * record-size sweep); its CPU time (sending only, after pre-encoding) is part of the results.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Encoder, ExtensionCodec, Decoder } from '@msgpack/msgpack';

interface Args {
  port: number;
  events: string;
  mode: 'forward' | 'packed';
  chunk: number;
  connections: number;
  records: number;
  wrapLog: boolean;
  rate: number;
  tag: string;
  padTo: number;
  warmup: number;
  metadata: boolean;
}

function parse(argv: string[]): Args {
  const get = (k: string, d?: string) => {
    const i = argv.indexOf(`--${k}`);
    return i >= 0 ? argv[i + 1]! : d;
  };
  return {
    port: Number(get('port')),
    events: get('events')!,
    mode: get('mode', 'forward') as 'forward' | 'packed',
    chunk: Number(get('chunk', '2000')),
    connections: Number(get('connections', '2')),
    records: Number(get('records', '0')),
    wrapLog: argv.includes('--wrap-log'),
    rate: Number(get('rate', '0')),
    tag: get('tag', 'kube.audit')!,
    padTo: Number(get('pad-to', '0')),
    warmup: Number(get('warmup', '0')),
    metadata: argv.includes('--metadata'),
  };
}

class EventTime {
  constructor(
    readonly sec: number,
    readonly nsec: number,
  ) {}
}
const codec = new ExtensionCodec();
codec.register({
  type: 0,
  encode: (v: unknown) => {
    if (!(v instanceof EventTime)) return null;
    const b = Buffer.alloc(8);
    b.writeUInt32BE(v.sec, 0);
    b.writeUInt32BE(v.nsec, 4);
    return b;
  },
  decode: (d: Uint8Array) => d,
});
const enc = new Encoder({ extensionCodec: codec });

function encodeChunks(a: Args, records: Record<string, unknown>[]): Array<{ frame: Buffer; id: string; n: number }> {
  const chunks: Array<{ frame: Buffer; id: string; n: number }> = [];
  // Fluent Bit's tail stamps each line when it reads it: times end at "now", one millisecond
  // apart, so Loki (which refuses entries older than a week) accepts them.
  const t0 = Math.floor(Date.now() / 1000) - Math.ceil(records.length / 1000);
  for (let i = 0; i < records.length; i += a.chunk) {
    const part = records.slice(i, i + a.chunk);
    const id = randomBytes(16).toString('base64');
    const entries = part.map((r, k) => {
      const t = new EventTime(t0 + Math.floor((i + k) / 1000), ((i + k) % 1000) * 1_000_000 + 123);
      // --metadata: Fluent Bit 5.x's entry form, [[time, {metadata}], record], with the empty map it sends.
      return a.metadata ? [[t, {}], r] : [t, r];
    });
    let frame: Buffer;
    if (a.mode === 'packed') {
      const blob = Buffer.concat(entries.map((e) => Buffer.from(enc.encode(e))));
      frame = Buffer.from(enc.encode([a.tag, blob, { chunk: id, size: part.length }]));
    } else {
      // Fluent Bit's uncompressed wire format: [tag, [entries...], {chunk, size, fluent_signal}]
      frame = Buffer.from(enc.encode([a.tag, entries, { chunk: id, size: part.length, fluent_signal: 0 }]));
    }
    chunks.push({ frame, id, n: part.length });
  }
  return chunks;
}

const FILLER = 'The quick brown fox jumps over the lazy dog; 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ. ';

/** The event with an annotation that brings its JSON to about `size` bytes. */
function pad(line: string, size: number): string {
  const ev = JSON.parse(line) as { annotations?: Record<string, string> };
  const missing = size - Buffer.byteLength(line) - 40;
  if (missing <= 0) return line;
  ev.annotations = { ...ev.annotations, 'bench.logwarden.io/padding': FILLER.repeat(Math.ceil(missing / FILLER.length)).slice(0, missing) };
  return JSON.stringify(ev);
}

/** Sends the chunks over `a.connections` connections, each waiting for its ack. */
async function send(a: Args, chunks: Array<{ frame: Buffer; id: string; n: number }>, rate: number, latencies: number[]): Promise<void> {
  let next = 0;
  const interval = rate > 0 ? (a.chunk / rate) * 1000 * a.connections : 0;
  const worker = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const sock = net.connect(a.port, '127.0.0.1');
      const dec = new Decoder();
      let pending: { id: string; t: bigint } | undefined;
      let nextAt = Date.now();
      const sendNext = () => {
        if (next >= chunks.length) {
          sock.end();
          resolve();
          return;
        }
        const c = chunks[next++]!;
        const go = () => {
          pending = { id: c.id, t: process.hrtime.bigint() };
          sock.write(c.frame);
        };
        if (interval > 0) {
          nextAt += interval;
          const wait = nextAt - Date.now();
          if (wait > 0) setTimeout(go, wait);
          else go();
        } else go();
      };
      let buf = Buffer.alloc(0);
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        try {
          for (const v of dec.decodeMulti(buf)) {
            const ack = (v as { ack?: string }).ack;
            if (!pending || ack !== pending.id) throw new Error(`unexpected reply ${JSON.stringify(v)}`);
            latencies.push(Number(process.hrtime.bigint() - pending.t) / 1e6);
            pending = undefined;
            sendNext();
          }
          buf = Buffer.alloc(0);
        } catch (e) {
          if ((e as Error).message.startsWith('unexpected')) reject(e);
        }
      });
      sock.on('error', reject);
      sock.on('connect', sendNext);
    });

  await Promise.all(Array.from({ length: a.connections }, worker));
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  let lines = readFileSync(a.events, 'utf8').split('\n').filter(Boolean);
  if (a.records > 0 && lines.length > a.records) lines = lines.slice(0, a.records);
  if (a.padTo > 0) lines = lines.map((l) => pad(l, a.padTo));
  let records = lines.map((l) => (a.wrapLog ? { log: l, stream: 'stdout' } : (JSON.parse(l) as Record<string, unknown>)));
  if (a.records > 0) {
    while (records.length < a.records) records = records.concat(records.slice(0, a.records - records.length));
    records = records.slice(0, a.records);
  }
  const chunks = encodeChunks(a, records);
  const wireBytes = chunks.reduce((s, c) => s + c.frame.length, 0);
  if (a.warmup > 0) {
    // Warm-up: the first records again (new chunk ids), acked but not measured; then tell the
    // bench and wait for its go (it reads the receiver's CPU in between).
    await send(a, encodeChunks(a, records.slice(0, a.warmup)), 0, []);
    process.stdout.write('{"warm":true}\n');
    await new Promise<void>((resolve) =>
      process.stdin.once('data', () => {
        process.stdin.destroy();
        resolve();
      }),
    );
  }
  const latencies: number[] = [];
  const started = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  await send(a, chunks, a.rate, latencies);
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((x, y) => x - y);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  process.stdout.write(
    `${JSON.stringify({
      records: records.length,
      chunks: chunks.length,
      wire_bytes: wireBytes,
      seconds: secs,
      records_per_s: records.length / secs,
      mb_per_s: wireBytes / 1e6 / secs,
      ack_ms_p50: pct(0.5),
      ack_ms_p99: pct(0.99),
      cpu_s: (cpu.user + cpu.system) / 1e6,
      json_bytes_per_record: Math.round(lines.reduce((n, l) => n + Buffer.byteLength(l), 0) / lines.length),
    })}\n`,
  );
}

main().catch((e) => {
  process.stderr.write(`loadgen: ${(e as Error).stack}\n`);
  process.exit(1);
});
