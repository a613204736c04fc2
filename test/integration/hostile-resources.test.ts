/**
 * Hostile input against a real `logwarden run` child process: frames that would take far more
 * memory than they weigh on the wire, slow and silent sockets, pre-authentication memory, silent
 * TLS clients, and values that would flood the logs. Each case asserts the process is alive, a
 * bystander connection is served within a second, what was acked before is delivered once, RSS
 * stays within memory_limit plus the idle baseline, and the case shows as a log line and a metric.
 * Every case after a describe's first runs against a new process (same config, same output
 * directory): the heap an earlier case grew and the runtime kept is not charged to the next one.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { tempDir } from '../support/output-pipeline.js';
import { LogwardenProcess, RssSampler, sleep, writeConfig, type LogLine } from '../support/fault.js';
import { pack, RawClient, WireTime } from '../support/forward-client.js';
import selfsigned from 'selfsigned';

const MEMORY_LIMIT = 64 * 1024 * 1024;
/** The bystander's frame must be acked this soon while the hostile input is being handled. */
const BYSTANDER_MS = 1000;
/** Interval of the summarized warnings (many refusals or timeouts: one line per interval). */
const SUMMARY_S = 10;

let seq = 0;

/** A Forward-mode frame of `n` records with a chunk id, as a bystander sends it. */
function bystanderFrame(tag: string, n = 3): { frame: Buffer; chunk: string; seqs: number[] } {
  const chunk = `by-${++seq}`;
  const seqs = Array.from({ length: n }, () => ++seq);
  const frame = pack([tag, seqs.map((s) => [new WireTime(1_700_000_000, 0), { seq: s, by: 'stander' }]), { chunk }]);
  return { frame, chunk, seqs };
}

/** Sends a frame on a new connection and resolves with the ms until its ack. */
async function served(port: number, tag: string, acked: number[]): Promise<number> {
  const c = await RawClient.connect(port);
  try {
    const t0 = Date.now();
    const { frame, chunk, seqs } = bystanderFrame(tag);
    await c.write(frame);
    await c.until(() => c.replies.some((r) => (r as { ack?: string }).ack === chunk), 10_000, `ack of ${chunk}`);
    acked.push(...seqs);
    return Date.now() - t0;
  } finally {
    c.close();
  }
}

/** PackedForward of `n` entries [0, {}] (3 bytes each): tiny on the wire, n events in memory. */
function tinyEntries(n: number): Buffer {
  return Buffer.alloc(3 * n, Buffer.from([0x92, 0x00, 0x80]));
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
    s.resume(); // read (and drop) what the server sends, so its close is seen
  });
}

function closed(s: net.Socket): Promise<void> {
  return new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));
}

/** Lines logged since `from` whose msg matches. */
function linesSince(lw: LogwardenProcess, from: number, re: RegExp): LogLine[] {
  return lw.logs.slice(from).filter((l) => re.test(String(l.msg)));
}

function fileSeqs(dir: string, tag: string): Map<number, number> {
  const seen = new Map<number, number>();
  let text = '';
  try {
    text = readFileSync(join(dir, 'out', tag), 'utf8');
  } catch {
    return seen;
  }
  for (const m of text.matchAll(/"seq":(\d+),"by":"stander"/g)) seen.set(Number(m[1]), (seen.get(Number(m[1])) ?? 0) + 1);
  return seen;
}

async function until(pred: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

interface Figures {
  [k: string]: number | string;
}

/** A running logwarden with a forward input and a file output, and the bookkeeping of one case. */
class Target {
  lw!: LogwardenProcess;
  dir = tempDir('logwarden-hostile-');
  idle = 0;
  readonly acked: number[] = [];
  private args: [string, string, string | undefined] = ['', '', undefined];
  private cases = 0;

  /**
   * Before each case but the first: a new process with the same config. What was acked so far is
   * in the output directory and is checked again after the case.
   */
  async fresh(): Promise<void> {
    if (this.cases++ === 0) return;
    await this.lw.stop();
    await this.start(...this.args);
  }

  /** `forward`: the forward input's options; `input`: a whole input section instead. */
  async start(forward: string, service = '', input?: string): Promise<this> {
    this.args = [forward, service, input];
    const config = writeConfig(
      this.dir,
      `service:
  log_format: json
  log_level: info
  http_server: on
  http_listen: 127.0.0.1
  http_port: 0
  grace: 1
  memory_limit: ${MEMORY_LIMIT}
${service}pipeline:
  inputs:
${
  input ??
  `    - name: forward
      listen: 127.0.0.1
      port: 0
${forward}`
}
  outputs:
    - name: file
      match: '*'
      path: ${join(this.dir, 'out')}
      mkdir: on
      format: json_lines
`,
    );
    this.lw = await LogwardenProcess.start(config);
    await sleep(300);
    this.idle = this.lw.rss();
    return this;
  }

  /**
   * Runs `attack` while sampling RSS and sending a bystander frame once `ready` (default: at
   * once) resolves; then checks the process, the bystander, RSS, the log line and the metric.
   */
  async run(
    name: string,
    o: {
      attack: () => Promise<void>;
      bystanderWhen?: Promise<void>;
      log: RegExp;
      metric: Record<string, string>;
      maxLines?: number;
      bystander?: (port: number) => Promise<number>;
      input?: string;
    },
  ): Promise<Figures> {
    const lw = this.lw;
    const from = lw.logs.length;
    const before = await lw.metric('logwarden_input_errors_total', o.metric);
    const rss = new RssSampler(lw, 50);
    const t0 = Date.now();
    const attack = o.attack();
    await (o.bystanderWhen ?? sleep(50));
    const bystanderMs = await (o.bystander ?? ((p) => served(p, 'bystander', this.acked)))(lw.port(o.input));
    await attack;
    const attackMs = Date.now() - t0;
    await until(async () => (await lw.metric('logwarden_input_errors_total', o.metric)) > before, 10_000, `metric ${JSON.stringify(o.metric)}`);
    await sleep(300); // the child's last lines of this case are still in the pipe
    const peak = rss.stop();
    assert.equal(lw.proc.exitCode, null, `${name}: logwarden is alive`);
    assert.ok(bystanderMs < BYSTANDER_MS, `${name}: bystander acked in ${bystanderMs} ms`);
    // Refusals and timeouts are summarized: after one like it, the line comes at the interval's end.
    await until(() => linesSince(lw, from, o.log).length > 0, SUMMARY_S * 1000 + 2000, `a log line ${o.log}`).catch(() => undefined);
    const lines = linesSince(lw, from, o.log);
    assert.ok(lines.length >= 1, `${name}: a log line ${o.log}`);
    assert.ok(lines.length <= (o.maxLines ?? 3), `${name}: ${lines.length} log lines ${o.log}, expected a few`);
    assert.ok(peak <= this.idle + MEMORY_LIMIT, `${name}: peak RSS ${peak >> 20} MiB within idle ${this.idle >> 20} MiB + memory_limit`);
    const figures = { case: name, idle_rss_mib: this.idle >> 20, peak_rss_mib: peak >> 20, attack_ms: attackMs, bystander_ms: bystanderMs, log_lines: lines.length };
    console.log(JSON.stringify(figures));
    return figures;
  }

  /** Every bystander record acked so far is in the file once. */
  async checkAcked(): Promise<void> {
    await until(() => fileSeqs(this.dir, 'bystander').size >= new Set(this.acked).size, 10_000, 'acked records in the file');
    const seen = fileSeqs(this.dir, 'bystander');
    for (const s of this.acked) assert.equal(seen.get(s), 1, `acked record ${s} delivered once`);
  }

  async stop(): Promise<void> {
    await this.lw?.stop();
  }
}

describe('hostile input: memory and connections (forward)', { timeout: 180_000 }, () => {
  const t = new Target();
  before(async () => {
    await t.start(`      receive_timeout: 2
      net.accept_timeout: 1
      connection_limit: 40
      buffer_max_size: 6144000`);
    await served(t.lw.port(), 'bystander', t.acked); // acked before any attack
  });
  after(() => t.stop());
  beforeEach(() => t.fresh());

  test('a 100 KB CompressedPackedForward inflating to 99 MiB of 3-byte entries is refused', async () => {
    const inflated = tinyEntries(Math.floor((99 * 1024 * 1024) / 3));
    const gz = gzipSync(inflated, { level: 9 });
    assert.ok(gz.length < 200_000, `compressed ${gz.length}`);
    const frame = pack(['bomb', gz, { compressed: 'gzip', chunk: 'bomb-1' }]);
    await t.run('compressed 99 MiB of [0,{}]', {
      attack: async () => {
        const s = await connect(t.lw.port());
        s.on('error', () => undefined);
        s.write(frame);
        await closed(s);
      },
      log: /frame refused: .*inflate past/,
      metric: { reason: 'memory_limit' },
    });
    await t.checkAcked();
  });

  test('three 6 MB PackedForward frames of 2 M tiny entries at once are refused; a bystander is served', async () => {
    const frame = pack(['tiny', tinyEntries(2_000_000), { chunk: 'tiny' }]);
    const sockets = await Promise.all([0, 1, 2].map(() => connect(t.lw.port())));
    let sent!: () => void;
    const written = new Promise<void>((r) => (sent = r));
    await t.run('3 x 6 MB PackedForward of 2 M entries', {
      attack: async () => {
        await Promise.all(sockets.map((s) => new Promise<void>((r) => s.write(frame, () => r()))));
        sent();
        await Promise.all(sockets.map(closed));
      },
      bystanderWhen: written,
      log: /frame refused: .*events/,
      metric: { reason: 'memory_limit' },
    });
    await t.checkAcked();
  });

  test('slowloris: 30 connections dripping a big frame are closed receive_timeout after its first byte', async () => {
    const sockets = await Promise.all(Array.from({ length: 30 }, () => connect(t.lw.port())));
    // A 1 MB str32 frame header, then one byte every 200 ms: each byte would reset an idle timer.
    const header = Buffer.concat([Buffer.from([0x92, 0xa4]), Buffer.from('slow'), Buffer.from([0xdb, 0x00, 0x10, 0x00, 0x00])]);
    const started = Date.now();
    let closedAt = 0;
    await t.run('30 connections x 1 byte / 200 ms', {
      attack: async () => {
        for (const s of sockets) {
          s.on('error', () => undefined);
          s.write(header);
        }
        const drip = setInterval(() => {
          for (const s of sockets) if (!s.destroyed) s.write(Buffer.from('x'));
        }, 200);
        await Promise.all(sockets.map(closed));
        closedAt = Date.now();
        clearInterval(drip);
      },
      log: /frame not complete within receive_timeout/,
      metric: { reason: 'timeout' },
    });
    const s = (closedAt - started) / 1000;
    assert.ok(s >= 2 && s < 5, `closed ${s.toFixed(1)} s after the first byte (receive_timeout 2 s)`);
    await t.checkAcked();
  });

  test('200 idle TCP connections do not take the slots of senders; one summary line, not one per refusal', async () => {
    const sockets: net.Socket[] = [];
    await t.run('200 silent plain TCP connections (connection_limit 40)', {
      attack: async () => {
        for (let i = 0; i < 200; i++) {
          const s = await connect(t.lw.port()).catch(() => undefined);
          if (s) {
            s.on('error', () => undefined);
            sockets.push(s);
          }
        }
        await Promise.all(sockets.map(closed));
      },
      log: /closing connection: no message/,
      metric: { reason: 'idle' },
      maxLines: 4,
    });
    await t.checkAcked();
  });

  test('40 connections that sent one message and then idle do not lock a new sender out', async () => {
    const sockets: RawClient[] = [];
    for (let i = 0; i < 40; i++) {
      const c = await RawClient.connect(t.lw.port());
      const { frame, chunk, seqs } = bystanderFrame('bystander');
      await c.write(frame);
      await c.until(() => c.replies.some((r) => (r as { ack?: string }).ack === chunk), 10_000, `ack of ${chunk}`);
      t.acked.push(...seqs);
      sockets.push(c);
    }
    await t.run('40 established idle connections (connection_limit 40)', {
      attack: async () => {
        await sleep(2500); // idle past receive_timeout
      },
      bystanderWhen: sleep(2500),
      log: /while connection_limit is reached: closing it for a new sender/,
      metric: { reason: 'idle' },
    });
    assert.equal(sockets.filter((c) => c.closed).length, 1, 'one idle connection made room');
    for (const c of sockets) c.close();
    await t.checkAcked();
  });

  test('partial frames of many connections share a quarter of memory_limit', async () => {
    const sockets = await Promise.all(Array.from({ length: 12 }, () => connect(t.lw.port())));
    // Each sends 5 MB of a 6 MB frame and stops: 60 MB held without a budget.
    const head = Buffer.concat([Buffer.from([0x92, 0xa4]), Buffer.from('held'), Buffer.from([0xdb, 0x00, 0x5b, 0x8d, 0x80])]);
    const body = Buffer.alloc(5_000_000, 0x61);
    let sent!: () => void;
    const written = new Promise<void>((r) => (sent = r));
    await t.run('12 connections x 5 MB partial frame', {
      attack: async () => {
        await Promise.all(
          sockets.map((s) => {
            s.on('error', () => undefined);
            return new Promise<void>((r) => s.write(Buffer.concat([head, body]), () => r()));
          }),
        );
        sent();
        await Promise.all(sockets.map(closed));
      },
      bystanderWhen: written,
      log: /no memory for this frame/,
      metric: { reason: 'memory_budget' },
    });
    await t.checkAcked();
  });

  test('a 1 MB tag does not put megabytes into log lines or the status', async () => {
    const tag = `t${'x'.repeat(1024 * 1024)}`;
    const from = t.lw.logs.length;
    const c = await RawClient.connect(t.lw.port());
    // A record the framer accepts but whose time is invalid: logged with the message.
    await c.write(pack([tag, [[new WireTime(1, 0), { a: 1 }]], { chunk: 'big-tag' }]));
    await c.until(() => c.replies.length > 0 || c.closed, 10_000, 'ack or close');
    c.close();
    await sleep(1500); // the file output fails on the name and records last_error
    const longest = Math.max(
      0,
      ...t.lw.output
        .split('\n')
        .slice(-200)
        .map((l) => l.length),
    );
    const status = await (await fetch(`${t.lw.httpUrl}/api/v1/status`)).text();
    console.log(JSON.stringify({ case: '1 MB tag', longest_log_line: longest, status_bytes: status.length, lines: t.lw.logs.length - from }));
    assert.ok(longest < 64 * 1024, `longest log line ${longest} chars`);
    assert.ok(status.length < 16 * 1024, `status ${status.length} bytes`);
    assert.equal(t.lw.proc.exitCode, null);
    assert.ok((await served(t.lw.port(), 'bystander', t.acked)) < BYSTANDER_MS);
    await t.checkAcked();
  });
});

describe('hostile input: before the handshake (forward with shared_key)', { timeout: 120_000 }, () => {
  const t = new Target();
  const key = 'hostile-test-key';
  before(() =>
    t.start(`      shared_key: ${key}
      receive_timeout: 2
      net.accept_timeout: 1
      connection_limit: 200`),
  );
  after(() => t.stop());
  beforeEach(() => t.fresh());

  /** A client that answers HELO, waits for PONG, then sends a frame. */
  async function authedServed(port: number): Promise<number> {
    const c = await RawClient.connect(port);
    try {
      const t0 = Date.now();
      await c.until(() => c.replies.some((r) => Array.isArray(r) && r[0] === 'HELO'), 5000, 'HELO');
      await c.write(c.ping({ hostname: 'bystander', sharedKey: key }));
      await c.until(() => c.replies.some((r) => Array.isArray(r) && r[0] === 'PONG'), 5000, 'PONG');
      const { frame, chunk, seqs } = bystanderFrame('bystander');
      await c.write(frame);
      await c.until(() => c.replies.some((r) => (r as { ack?: string }).ack === chunk), 10_000, `ack of ${chunk}`);
      t.acked.push(...seqs);
      return Date.now() - t0;
    } finally {
      c.close();
    }
  }

  test('150 connections that never answer HELO and send 5.9 MB each hold a PING size each', async () => {
    const sockets = await Promise.all(Array.from({ length: 150 }, () => connect(t.lw.port())));
    const junk = Buffer.concat([Buffer.from([0x92, 0xa4]), Buffer.from('junk'), Buffer.from([0xdb, 0x00, 0x5a, 0x07, 0x80]), Buffer.alloc(5_900_000, 0x62)]);
    await t.run('150 pre-auth connections x 5.9 MB', {
      attack: async () => {
        for (const s of sockets) {
          s.on('error', () => undefined);
          s.write(junk);
        }
        await Promise.all(sockets.map(closed));
      },
      log: /before the handshake completed/,
      metric: { reason: 'too_large' },
      bystander: authedServed,
    });
    await t.checkAcked();
  });

  test('connections that never answer HELO are closed after net.accept_timeout', async () => {
    const sockets = await Promise.all(Array.from({ length: 50 }, () => connect(t.lw.port())));
    const t0 = Date.now();
    let closedAt = 0;
    await t.run('50 silent pre-auth connections', {
      attack: async () => {
        for (const s of sockets) s.on('error', () => undefined);
        await Promise.all(sockets.map(closed));
        closedAt = Date.now();
      },
      log: /no handshake within net.accept_timeout|more like it/,
      metric: { reason: 'timeout' },
      bystander: authedServed,
    });
    const s = (closedAt - t0) / 1000;
    assert.ok(s >= 1 && s < 4, `closed after ${s.toFixed(1)} s (net.accept_timeout 1 s)`);
  });
});

describe('hostile input: silent TLS clients (forward with tls)', { timeout: 120_000 }, () => {
  const t = new Target();
  let established: tls.TLSSocket;
  before(async () => {
    const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], { keySize: 2048, algorithm: 'sha256' });
    writeFileSync(join(t.dir, 'server.pem'), pems.cert);
    writeFileSync(join(t.dir, 'server.key'), pems.private);
    await t.start(`      tls: on
      tls.crt_file: server.pem
      tls.key_file: server.key
      receive_timeout: 5
      net.accept_timeout: 1
      connection_limit: 20`);
    established = await tlsConnect(t.lw.port());
  });
  after(async () => {
    established?.destroy();
    await t.stop();
  });

  function tlsConnect(port: number): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    });
  }

  /** Sends a bystander frame on `s` and resolves with the ms until its ack. */
  function tlsServed(s: tls.TLSSocket): Promise<number> {
    const { frame, chunk, seqs } = bystanderFrame('bystander');
    const t0 = Date.now();
    return new Promise((resolve, reject) => {
      const onData = (d: Buffer) => {
        if (d.includes(Buffer.from(chunk))) {
          s.off('data', onData);
          t.acked.push(...seqs);
          resolve(Date.now() - t0);
        }
      };
      s.on('data', onData);
      s.write(frame);
      setTimeout(() => reject(new Error(`no ack of ${chunk}`)), 10_000).unref();
    });
  }

  test('100 TCP connections that never send a ClientHello: an established session and a new client are served', async () => {
    const sockets: net.Socket[] = [];
    await t.run('100 silent TLS clients (connection_limit 20)', {
      attack: async () => {
        for (let i = 0; i < 100; i++) {
          const s = await connect(t.lw.port()).catch(() => undefined);
          if (s) {
            s.on('error', () => undefined);
            sockets.push(s);
          }
        }
        await Promise.all(sockets.map(closed));
      },
      bystander: async (port) => {
        const a = await tlsServed(established);
        const fresh = await tlsConnect(port);
        try {
          return Math.max(a, await tlsServed(fresh));
        } finally {
          fresh.destroy();
        }
      },
      log: /TLS handshake|in their TLS handshake/,
      metric: { reason: 'connection_limit' },
      maxLines: 6,
    });
    await t.checkAcked();
  });
});

describe('hostile input: HTTP bodies that decode to millions of records, slow uploads', { timeout: 120_000 }, () => {
  const t = new Target();
  before(() =>
    t.start(
      '',
      '',
      `    - name: http
      listen: 127.0.0.1
      port: 0
      headers_timeout: 1
      request_timeout: 30`,
    ),
  );
  after(() => t.stop());
  beforeEach(() => t.fresh());

  /** POSTs a small JSON body to /bystander and resolves with the ms until its 201. */
  async function httpServed(port: number): Promise<number> {
    const seqs = [++seq, ++seq];
    const t0 = Date.now();
    const r = await fetch(`http://127.0.0.1:${port}/bystander`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(seqs.map((s) => ({ seq: s, by: 'stander' }))),
    });
    assert.equal(r.status, 201, await r.text());
    t.acked.push(...seqs);
    return Date.now() - t0;
  }

  /** Sends raw HTTP requests at once and resolves with their status lines. */
  function rawPosts(port: number, requests: Buffer[]): Promise<string[]> {
    return Promise.all(
      requests.map(
        (req) =>
          new Promise<string>((resolve) => {
            const sock = net.connect(port, '127.0.0.1', () => sock.write(req));
            let answer = '';
            sock.on('data', (d) => (answer += d.toString('latin1')));
            sock.on('error', () => undefined);
            sock.on('close', () => resolve(answer.split('\r\n', 1)[0] ?? ''));
          }),
      ),
    );
  }

  const post = (path: string, body: Buffer, headers: Record<string, string> = {}) =>
    Buffer.concat([
      Buffer.from(
        `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n${Object.entries(headers)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('')}\r\n`,
      ),
      body,
    ]);

  const emptyObjects = (bytes: number) => {
    const n = Math.floor((bytes - 2) / 3);
    return Buffer.from(`[${'{},'.repeat(n - 1)}{}]`);
  };

  test('four 4 MB JSON arrays of 1.4 M {} at once are refused before they are parsed', async () => {
    const body = emptyObjects(4_000_000);
    let statuses: string[] = [];
    await t.run('4 x 4 MB JSON array of {}', {
      input: 'http.0',
      attack: async () => {
        statuses = await rawPosts(
          t.lw.port('http.0'),
          [0, 1, 2, 3].map(() => post('/many', body)),
        );
      },
      bystander: httpServed,
      log: /would take about .* in memory once decoded/,
      metric: { reason: 'memory_limit' },
      maxLines: 4, // one per request
    });
    assert.deepEqual(statuses, Array(4).fill('HTTP/1.1 413 Payload Too Large'));
    await t.checkAcked();
  });

  test('four 4 KB gzip bodies inflating to 1.4 M records each count their inflated size', async () => {
    const gz = gzipSync(emptyObjects(4_000_000), { level: 9 });
    assert.ok(gz.length < 20_000, `gzip ${gz.length}`);
    let statuses: string[] = [];
    await t.run('4 x gzip inflating to 4 MB of {}', {
      input: 'http.0',
      attack: async () => {
        statuses = await rawPosts(
          t.lw.port('http.0'),
          [0, 1, 2, 3].map(() => post('/many', gz, { 'Content-Encoding': 'gzip' })),
        );
      },
      bystander: httpServed,
      log: /would take about .* in memory once decoded/,
      metric: { reason: 'memory_limit' },
      maxLines: 4, // one per request
    });
    assert.deepEqual(statuses, Array(4).fill('HTTP/1.1 413 Payload Too Large'));
    await t.checkAcked();
  });

  test('four slow uploads of 4 MB holding inflight_max_size: the slowest makes room for a new request', async () => {
    const port = t.lw.port('http.0');
    const sockets: net.Socket[] = [];
    let answers: string[] = [];
    await t.run('4 slow 4 MB uploads (inflight_max_size 16 MB)', {
      input: 'http.0',
      attack: async () => {
        const done: Array<Promise<string>> = [];
        for (let i = 0; i < 4; i++) {
          const s = await connect(port);
          sockets.push(s);
          let answer = '';
          s.on('data', (d) => (answer += d.toString('latin1')));
          s.on('error', () => undefined);
          done.push(new Promise((r) => s.on('close', () => r(answer.split('\r\n', 1)[0] ?? ''))));
          // 3.99 MB declared (buffer_max_size 4M: 4000000 bytes, as Fluent Bit), 3.9 MB sent at once
          // (15.6 of the 16 MB inflight_max_size), then one byte a second.
          s.write(`POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3990000\r\n\r\n[` + ' '.repeat(3_900_000));
        }
        const drip = setInterval(() => {
          for (const s of sockets) if (!s.destroyed) s.write(' ');
        }, 1000);
        await sleep(1500); // past headers_timeout: the uploads are old and slow now
        // A 1 MB request needs room: the slowest upload is closed with 408.
        const big = Buffer.from(JSON.stringify(Array.from({ length: 10_000 }, (_, i) => ({ i, pad: 'p'.repeat(80) }))));
        const [bigStatus] = await rawPosts(port, [post('/bigger', big)]);
        assert.equal(bigStatus, 'HTTP/1.1 201 Created');
        clearInterval(drip);
        for (const s of sockets) s.destroy();
        answers = await Promise.all(done);
      },
      bystanderWhen: sleep(1600),
      bystander: httpServed,
      log: /upload too slow/,
      metric: { reason: 'slow' },
    });
    assert.ok(answers.includes('HTTP/1.1 408 Request Timeout'), JSON.stringify(answers));
    await t.checkAcked();
  });
});
