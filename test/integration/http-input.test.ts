/**
 * The `http` input over real sockets: undici as the client, curl where it is installed, and raw
 * TCP for what no well-behaved client sends (slow headers, lying lengths).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gzipSync, deflateSync } from 'node:zlib';
import { getGlobalDispatcher, request } from 'undici';
import { httpInput } from '../../src/inputs/http/index.js';
import { fileOutput } from '../../src/outputs/file/index.js';
import { DeliveryError } from '../../src/core/plugin.js';
import { startInput, type StartedInput } from '../support/input-server.js';
import { pack } from '../support/forward-client.js';
import { gateOutput, gates, Gate } from '../support/gate-output.js';
import { until } from '../support/harness.js';

const plugins = [httpInput, fileOutput, gateOutput];
const run = promisify(execFile);

type Server = StartedInput & { url: string };

async function server(options = '', outputs?: string): Promise<Server> {
  const s = await startInput('http', plugins, { options, outputs });
  return { ...s, url: `http://127.0.0.1:${s.port}` };
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function post(url: string, body: string | Buffer | Readable, headers: Record<string, string> = {}, method = 'POST'): Promise<Reply> {
  const res = await request(url, { method: method as 'POST', headers, body });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

const json = { 'content-type': 'application/json' };

/** Sends raw bytes on a fresh TCP connection; resolves with what came back once the server closed it (or after `waitMs`). */
function raw(port: number, chunks: Array<string | Buffer>, waitMs = 3000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve({ text, closed });
    };
    sock.on('connect', () => {
      for (const c of chunks) sock.write(c);
    });
    sock.on('data', (d) => (text += d.toString('latin1')));
    sock.on('error', () => finish(true));
    sock.on('close', () => finish(true));
    setTimeout(() => finish(false), waitMs);
  });
}

async function stillServes(s: Server): Promise<void> {
  const r = await post(`${s.url}/alive`, '{"alive":true}', json);
  assert.equal(r.status, 201, 'a fresh request is still served');
}

describe('http input: bodies, tags and times', () => {
  let s: Server;
  before(async () => {
    s = await server('tag: fallback');
  });
  after(async () => {
    await s.run.stop(1);
  });

  test('a JSON object is one record tagged by the URL path, stamped with the receive time (ns), answered 201', async (t) => {
    // The clock stands still at a known time: the event must carry exactly that millisecond.
    const received = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
    t.mock.timers.enable({ apis: ['Date'], now: received });
    const r = await post(`${s.url}/app.log`, '{"msg":"hello","n":1}', json);
    t.mock.timers.reset();
    assert.equal(r.status, 201);
    assert.equal(r.text, '');
    const ev = s.seen.find((e) => e.tag === 'app.log')!;
    assert.deepEqual(ev.record, { msg: 'hello', n: 1 });
    // EventTime.now() takes its sub-millisecond digits from the monotonic clock: compare milliseconds.
    const ms = ev.time.sec * 1000 + Math.floor(ev.time.nsec / 1e6);
    assert.equal(ms, received, 'time is the receive time');
    assert.notEqual(ev.time.nsec % 1_000_000, 0, 'sub-millisecond digits are kept');
    const line = readFileSync(join(s.run.dir, 'out', 'app.log'), 'utf8').trim();
    assert.deepEqual(JSON.parse(line), { msg: 'hello', n: 1 });
  });

  test('a JSON array gives one record per element, all with the same time', async () => {
    const r = await post(`${s.url}/arr`, JSON.stringify([{ i: 0 }, { i: 1 }, { i: 2 }]), json);
    assert.equal(r.status, 201);
    const evs = s.seen.filter((e) => e.tag === 'arr');
    assert.deepEqual(
      evs.map((e) => e.record.i),
      [0, 1, 2],
    );
    assert.equal(new Set(evs.map((e) => e.time.toNanoString())).size, 1);
  });

  test('newline-delimited JSON: application/x-ndjson, and lines of objects sent as application/json', async () => {
    let r = await post(`${s.url}/nd`, '{"i":0}\n\n{"i":1}\r\n[{"i":2},{"i":3}]\n', { 'content-type': 'application/x-ndjson' });
    assert.equal(r.status, 201);
    r = await post(`${s.url}/nd2`, '{"i":0}\n{"i":1}\n', { 'content-type': 'application/json; charset=utf-8' });
    assert.equal(r.status, 201);
    assert.deepEqual(
      s.seen.filter((e) => e.tag === 'nd').map((e) => e.record.i),
      [0, 1, 2, 3],
    );
    assert.deepEqual(
      s.seen.filter((e) => e.tag === 'nd2').map((e) => e.record.i),
      [0, 1],
    );
  });

  test('form data: one record, values percent-decoded with + as space, keys trimmed (Fluent Bit semantics)', async () => {
    const r = await post(`${s.url}/form`, 'user=al%20ice&msg=a+b%2Bc& n = 5 &novalue&=x&broken=%zz', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    assert.equal(r.status, 201);
    const ev = s.seen.find((e) => e.tag === 'form')!;
    assert.deepEqual(ev.record, { user: 'al ice', msg: 'a b+c', n: '5', broken: '%zz' });
    assert.equal(await s.errors('bad_percent_encoding'), 1);
  });

  test('msgpack: a map, an array of maps, and several values in one body', async () => {
    const body = Buffer.concat([pack({ a: 1 }), pack([{ a: 2 }, { a: 3 }])]);
    for (const ct of ['application/msgpack', 'application/x-msgpack']) {
      const r = await post(`${s.url}/mp`, body, { 'content-type': ct });
      assert.equal(r.status, 201);
    }
    assert.deepEqual(
      s.seen.filter((e) => e.tag === 'mp').map((e) => e.record.a),
      [1, 2, 3, 1, 2, 3],
    );
  });

  test('tags: / takes the input tag, paths are URL-decoded and sanitized, the query string is dropped', async () => {
    await post(`${s.url}/`, '{"p":"root"}', json);
    await post(`${s.url}/kube/audit%20x?x=1`, '{"p":"sanitized"}', json);
    assert.equal(s.seen.find((e) => e.record.p === 'root')!.tag, 'fallback');
    assert.equal(s.seen.find((e) => e.record.p === 'sanitized')!.tag, 'kube_audit_x');
  });

  test('gzip and deflate bodies are inflated', async () => {
    let r = await post(`${s.url}/gz`, gzipSync('{"z":"gzip"}'), { ...json, 'content-encoding': 'gzip' });
    assert.equal(r.status, 201);
    r = await post(`${s.url}/gz`, deflateSync('{"z":"deflate"}'), { ...json, 'content-encoding': 'deflate' });
    assert.equal(r.status, 201);
    assert.deepEqual(
      s.seen.filter((e) => e.tag === 'gz').map((e) => e.record.z),
      ['gzip', 'deflate'],
    );
  });

  test('a __proto__ key in a record stays data', async () => {
    const r = await post(`${s.url}/proto`, '{"__proto__":{"polluted":true},"ok":1}', json);
    assert.equal(r.status, 201);
    const ev = s.seen.find((e) => e.tag === 'proto')!;
    assert.equal(Object.getPrototypeOf(ev.record), Object.prototype);
    assert.deepEqual(Object.keys(ev.record), ['__proto__', 'ok']);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe('http input: options', () => {
  test('without tag the instance name is the tag of /; tag_key (plain key and record accessor) overrides the path', async () => {
    const s = await server("tag_key: $meta['tag']");
    try {
      await post(`${s.url}/`, '{"n":0}', json);
      await post(`${s.url}/path.tag`, JSON.stringify([{ n: 1, meta: { tag: 'from record/x' } }, { n: 2, meta: { tag: 5 } }, { n: 3 }]), json);
      const tagOf = (n: number) => s.seen.find((e) => e.record.n === n)!.tag;
      assert.equal(tagOf(0), 'http.0');
      assert.equal(tagOf(1), 'from_record_x');
      assert.equal(tagOf(2), 'path.tag', 'a non-string value keeps the path tag');
      assert.equal(tagOf(3), 'path.tag');
    } finally {
      await s.run.stop(1);
    }
    const p = await server('tag_key: kind');
    try {
      await post(`${p.url}/x`, '{"kind":"k.one"}', json);
      assert.equal(p.seen[0]!.tag, 'k.one');
    } finally {
      await p.run.stop(1);
    }
  });

  test('successful_response_code 204 and success_header; add_remote_addr from X-Forwarded-For', async () => {
    const s = await server('successful_response_code: 204\nsuccess_header:\n  - X-Custom custom-answer\n  - X-Other two words\nadd_remote_addr: on');
    try {
      const r = await post(`${s.url}/ok`, '{"a":1}', { ...json, 'x-forwarded-for': '10.0.0.7, 10.0.0.1' });
      assert.equal(r.status, 204);
      assert.equal(r.headers['x-custom'], 'custom-answer');
      assert.equal(r.headers['x-other'], 'two words');
      assert.deepEqual(s.seen[0]!.record, { a: 1, REMOTE_ADDR: '10.0.0.7' });
      const bad = await post(`${s.url}/ok`, '{', json);
      assert.equal(bad.headers['x-custom'], undefined, 'success headers only on success');
    } finally {
      await s.run.stop(1);
    }
  });

  test('load-time errors: response code, header syntax, tag_key syntax, chunk above max, http2 on, tls without files', async () => {
    const cases: Array<[string, RegExp]> = [
      ['successful_response_code: 202', /pipeline\.yaml:\d+:\d+: successful_response_code: .*expected 200, 201 or 204/],
      ["success_header: 'X-Only'", /success_header: found 'X-Only', expected 'Name value'/],
      ["tag_key: $a['b'", /tag_key: /],
      ['buffer_chunk_size: 8M', /pipeline\.yaml:\d+:\d+: buffer_chunk_size: buffer_chunk_size must not exceed buffer_max_size/],
      ['http2: on', /HTTP\/2 is not supported/],
      ['tls: on', /tls on needs tls.crt_file and tls.key_file/],
      ['buffer_max_size: 8M\ninflight_max_size: 4M', /inflight_max_size \(4000000\) must not be below buffer_max_size \(8000000\)/],
      ['tls.verify: on', /tls.verify has no effect without tls: on/],
      ['headers_timeout: 30\nrequest_timeout: 10', /request_timeout \(10s\) must not be below headers_timeout \(30s\)/],
    ];
    for (const [opt, re] of cases) {
      await assert.rejects(server(opt), (e: Error) => {
        assert.match(e.message, re, opt);
        return true;
      });
    }
  });
});

describe('http input: bad requests get a clear 4xx, a log line and a metric; nothing else is affected', () => {
  let s: Server;
  before(async () => {
    s = await server('buffer_max_size: 64k\nbuffer_chunk_size: 4k\nheaders_timeout: 300ms\nrequest_timeout: 600ms');
  });
  after(async () => {
    await s.run.stop(1);
  });

  test('malformed JSON: 400 with the parse error', async () => {
    const r = await post(`${s.url}/bad`, '{"a":1,', json);
    assert.equal(r.status, 400);
    assert.match(r.text, /^invalid JSON: .+/);
    assert.equal(await s.errors('malformed'), 1);
    const logged = s.run.logs.find((l) => l.reason === 'malformed');
    assert.ok(logged, 'one log line');
    assert.equal(logged.status, 400);
    await stillServes(s);
  });

  test('JSON that is no object or array of objects; a broken NDJSON line; broken msgpack; empty body: 400', async () => {
    const cases: Array<[string | Buffer, string, RegExp]> = [
      ['"just a string"', 'application/json', /found a string; expected an object or an array of objects/],
      ['[{"a":1}, 2]', 'application/json', /element 1 is a number; each record must be an object/],
      ['{"a":1}\n{"a":\n', 'application/x-ndjson', /invalid JSON on line 2/],
      [Buffer.from([0x82, 0xa1, 0x61]), 'application/msgpack', /invalid msgpack: Unexpected end/],
      [Buffer.from([0xc1]), 'application/msgpack', /found a C1Type value; expected an object/],
      ['', 'application/json', /no payload found/],
      ['novalue&=x', 'application/x-www-form-urlencoded', /no key=value pair/],
    ];
    for (const [body, ct, re] of cases) {
      const r = await post(`${s.url}/bad`, body, { 'content-type': ct });
      assert.equal(r.status, 400, String(body));
      assert.match(r.text, re);
    }
    assert.equal(s.seen.filter((e) => e.tag === 'bad').length, 0, 'a refused request routes nothing');
  });

  test('wrong or missing content type: 415; wrong encoding: 415; wrong method: 405 with Allow', async () => {
    let r = await post(`${s.url}/x`, 'hello', { 'content-type': 'text/plain' });
    assert.equal(r.status, 415);
    assert.match(r.text, /Content-Type 'text\/plain' is not supported; expected one of application\/json/);
    r = await post(`${s.url}/x`, 'hello', {});
    assert.equal(r.status, 415);
    assert.match(r.text, /'Content-Type' is not set/);
    r = await post(`${s.url}/x`, 'x', { ...json, 'content-encoding': 'br' });
    assert.equal(r.status, 415);
    assert.match(r.text, /Content-Encoding 'br' is not supported/);
    r = await post(`${s.url}/x`, '', {}, 'GET');
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, 'POST');
    assert.equal(await s.errors('bad_content_type'), 2);
    assert.equal(await s.errors('bad_encoding'), 1);
    assert.equal(await s.errors('bad_method'), 1);
    await stillServes(s);
  });

  test('Content-Length above buffer_max_size: 413 before any body byte is read, then the connection closes', async () => {
    const before = await s.errors('too_large');
    const r = await raw(s.port, [`POST /big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n`]);
    assert.match(r.text, /^HTTP\/1\.1 413 Payload Too Large\r\n/);
    assert.match(r.text, /Connection: close/i);
    assert.match(r.text, /body of 100000000 bytes exceeds buffer_max_size \(64000 bytes\)/);
    assert.equal(r.closed, true);
    assert.equal(await s.errors('too_large'), before + 1);
  });

  test('a chunked body that grows past buffer_max_size is cut off with 413', async () => {
    const before = await s.errors('too_large');
    const part = Buffer.alloc(16 * 1024, 0x20);
    let sent = 0;
    const body = new Readable({
      read() {
        // 1 MiB of JSON whitespace, far above the 64k limit; the server stops it early.
        if (sent >= 64) this.push(null);
        else {
          sent++;
          this.push(part);
        }
      },
    });
    const r = await post(`${s.url}/chunked`, body, json);
    assert.equal(r.status, 413);
    assert.match(r.text, /body exceeds buffer_max_size \(64000 bytes\)/);
    assert.equal(await s.errors('too_large'), before + 1);
    await stillServes(s);
  });

  test('a gzip body that inflates past buffer_max_size: 413', async () => {
    const bomb = gzipSync(Buffer.alloc(10 * 1024 * 1024, 0x20));
    assert.ok(bomb.length < 64 * 1024);
    const r = await post(`${s.url}/bomb`, bomb, { ...json, 'content-encoding': 'gzip' });
    assert.equal(r.status, 413);
    assert.match(r.text, /inflated body exceeds buffer_max_size/);
  });

  test('slow headers: 408 after headers_timeout and the connection closes', async () => {
    const before = await s.errors('timeout');
    // headers_timeout is 300 ms, checked every 75 ms: closed well before raw() gives up at 2.5 s.
    const r = await raw(s.port, ['POST /slow HTTP/1.1\r\nHost: x\r\n'], 2500);
    assert.match(r.text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.equal(r.closed, true, 'closed within the timeout plus the check interval');
    assert.equal(await s.errors('timeout'), before + 1);
    assert.ok(s.run.logs.some((l) => l.reason === 'timeout'));
  });

  test('slow body: 408 after request_timeout, nothing routed', async () => {
    const r = await raw(s.port, ['POST /slowbody HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":']);
    assert.match(r.text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.equal(r.closed, true);
    assert.equal(s.seen.filter((e) => e.tag === 'slowbody').length, 0);
    await stillServes(s);
  });

  test('headers above 16 KiB: 431 and close', async () => {
    const r = await raw(s.port, [`POST /h HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`]);
    assert.match(r.text, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    assert.equal(r.closed, true);
    assert.equal(await s.errors('headers_too_large'), 1);
  });

  test('garbage instead of HTTP: 400 and close', async () => {
    const before = await s.errors('bad_request');
    const r = await raw(s.port, ['\x16\x03\x01 this is not http\r\n\r\n']);
    assert.match(r.text, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.equal(r.closed, true);
    assert.equal(await s.errors('bad_request'), before + 1);
  });
});

describe('http input: connections, commits and backpressure', () => {
  test('beyond connection_limit a connection gets 503 + Retry-After and is closed; beyond twice the limit it is closed at once', async () => {
    const s = await server('connection_limit: 1');
    try {
      const first = net.connect(s.port, '127.0.0.1');
      await new Promise((r) => first.once('connect', r));
      await new Promise((r) => setTimeout(r, 50));
      const second = raw(s.port, ['POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}']);
      const r = await second;
      assert.match(r.text, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
      assert.match(r.text, /Retry-After: 1\r\n/);
      assert.match(r.text, /connection_limit \(1\) reached/);
      assert.equal(r.closed, true);
      assert.equal(await s.errors('connection_limit'), 1);
      // Two open connections now (first + a held one): a third is dropped by the listener.
      const held = net.connect(s.port, '127.0.0.1');
      await new Promise((r) => held.once('connect', r));
      await new Promise((r) => setTimeout(r, 50));
      const dropped = await raw(s.port, [], 2000);
      assert.equal(dropped.closed, true);
      assert.equal(dropped.text, '');
      assert.equal(await s.errors('connection_limit'), 2);
      first.destroy();
      held.destroy();
      await new Promise((r) => setTimeout(r, 100));
      await stillServes(s);
    } finally {
      await s.run.stop(1);
    }
  });

  test('inflight_max_size: a request that would hold too many body bytes at once gets 503 busy; holds are released on abort', async () => {
    const s = await server('buffer_max_size: 4k\ninflight_max_size: 6k');
    try {
      const head = (n: number) => `POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${n}\r\n\r\n`;
      // A sends its headers and 3500 bytes of a 4000-byte body, then stalls: what arrived is held
      // (a declared length alone holds nothing).
      const a = net.connect(s.port, '127.0.0.1');
      await new Promise((r) => a.once('connect', r));
      a.write(head(4000) + '[' + ' '.repeat(3499));
      await new Promise((r) => setTimeout(r, 100));
      const body = `[${'{"k":1},'.repeat(370)}{"k":1}]`;
      let r = await post(`${s.url}/b`, body, json);
      assert.equal(r.status, 503);
      assert.equal(r.headers['retry-after'], '1');
      assert.match(r.text, /busy: 3500 bytes of other requests in flight \(inflight_max_size 6000\)/);
      assert.equal(await s.errors('busy'), 1);
      // A goes away mid-body: its hold is released and B fits again.
      a.destroy();
      await until(async () => (await s.errors('aborted')) === 1, 'the abort counted');
      r = await post(`${s.url}/b`, body, json);
      assert.equal(r.status, 201);
      assert.equal(s.seen.length, 371);
    } finally {
      await s.run.stop(1);
    }
  });

  test('201 only once the output committed; a failed commit is answered 503 + Retry-After', async () => {
    const gate = new Gate();
    gates.set('http-commit', gate);
    const s = await server('', `    - name: gate\n      match: '*'\n      gate: http-commit\n      retry_limit: no_retries`);
    try {
      gate.open = false;
      let answered = false;
      const pending = post(`${s.url}/held`, '{"n":1}', json).then((r) => {
        answered = true;
        return r;
      });
      await until(() => gate.batches === 1, 'the batch at the output');
      assert.equal(s.seen.length, 1, 'the record was routed');
      assert.equal(answered, false, 'no answer while the output holds the batch');
      gate.release();
      assert.equal((await pending).status, 201);
      assert.equal(gate.delivered.length, 1);
      assert.equal(await s.run.counter('logwarden_input_acks_total'), 1);

      gate.failWith = new DeliveryError('downstream refused', true, 'test');
      const r = await post(`${s.url}/held`, '{"n":2}', json);
      assert.equal(r.status, 503);
      assert.equal(r.headers['retry-after'], '1');
      assert.match(r.text, /events not committed/);
      assert.equal(await s.run.counter('logwarden_input_unacked_chunks_total'), 1);
    } finally {
      gate.failWith = undefined;
      await s.run.stop(1);
    }
  });

  test('while paused by backpressure, new requests get 503 + Retry-After; an accepted request still completes', async () => {
    const gate = new Gate();
    gates.set('http-bp', gate);
    const s = await server('retry_after: 7', `    - name: gate\n      match: '*'\n      gate: http-bp\n      queue_max_records: 10\n      batch_size: 10`);
    try {
      gate.open = false;
      const accepted = post(`${s.url}/bp`, JSON.stringify(Array.from({ length: 10 }, (_, i) => ({ i }))), json);
      await until(() => s.run.pipeline.flow.paused, 'the queue bound to pause the flow');
      assert.equal(await s.run.counter('logwarden_input_paused'), 1);
      const r = await post(`${s.url}/bp`, '{"late":true}', json);
      assert.equal(r.status, 503);
      assert.equal(r.headers['retry-after'], '7');
      assert.match(r.text, /backpressure/);
      assert.equal(await s.errors('paused'), 1);
      gate.release();
      assert.equal((await accepted).status, 201);
      await until(() => !s.run.pipeline.flow.paused, 'the flow to resume');
      assert.equal(await s.run.counter('logwarden_input_paused'), 0);
      assert.equal((await post(`${s.url}/bp`, '{"late":true}', json)).status, 201);
      assert.equal(gate.delivered.length, 11);
    } finally {
      await s.run.stop(1);
    }
  });
});

describe('http input with curl', () => {
  const curl = ['/usr/bin/curl', '/usr/local/bin/curl', '/bin/curl'].find((p) => existsSync(p));

  test('curl posts NDJSON from a file; Expect: 100-continue above buffer_max_size is refused before the body is sent', async (t) => {
    if (!curl) {
      t.skip('curl is not installed');
      return;
    }
    const s = await server('buffer_max_size: 8k');
    try {
      const file = join(s.run.dir, 'lines.ndjson');
      writeFileSync(file, Array.from({ length: 20 }, (_, i) => JSON.stringify({ i, via: 'curl' })).join('\n'));
      const ok = await run(curl, ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Content-Type: application/x-ndjson', '--data-binary', `@${file}`, `${s.url}/curl.lines`]);
      assert.equal(ok.stdout, '201');
      assert.equal(s.seen.filter((e) => e.tag === 'curl.lines').length, 20);

      const big = join(s.run.dir, 'big.json');
      writeFileSync(big, JSON.stringify({ pad: 'x'.repeat(100_000) }));
      const refused = await run(curl, [
        '-s',
        '-w',
        '\n%{http_code} %{size_upload}',
        '-H',
        'Content-Type: application/json',
        '-H',
        'Expect: 100-continue',
        '--expect100-timeout',
        '10',
        '--data-binary',
        `@${big}`,
        `${s.url}/curl.big`,
      ]);
      const lines = refused.stdout.split('\n');
      const summary = lines.pop();
      assert.match(lines.join('\n'), /exceeds buffer_max_size \(8000 bytes\)/);
      assert.equal(summary, '413 0', 'refused with nothing uploaded');
    } finally {
      await s.run.stop(1);
    }
  });
});

// undici's global agent keeps connections alive; close it so the test process can exit.
after(async () => {
  await getGlobalDispatcher().close();
});
