/**
 * The filesystem buffer through real forward sockets and real files: acks once stored, replay
 * after a restart to the outputs that had not committed, quarantine of torn and corrupt chunks,
 * storage.total_limit_size (block and drop_oldest_chunk), storage.max_chunks_up, memory_limit over
 * the buffered events held in memory, and backpressure scoped by routing.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { forwardInput } from '../../src/inputs/forward/index.js';
import { fileOutput } from '../../src/outputs/file/index.js';
import { ConfigErrors } from '../../src/config/errors.js';
import { startPipeline, tempDir, type RunningPipeline } from '../support/output-pipeline.js';
import { RawClient, pack, WireTime } from '../support/forward-client.js';
import { gateOutput, gates, Gate } from '../support/gate-output.js';
import { until } from '../support/harness.js';
import { HEAP_FACTOR } from '../../src/core/storage/buffer.js';

const plugins = [forwardInput, fileOutput, gateOutput];

interface Server {
  run: RunningPipeline;
  ports: number[];
  dir: string;
}

let gateSeq = 0;
function newGate(open = true): { name: string; gate: Gate } {
  const name = `storage-${gateSeq++}`;
  const gate = new Gate();
  gate.open = open;
  gates.set(name, gate);
  return { name, gate };
}

async function server(o: { service?: string; inputs?: string; outputs: string; dir?: string }): Promise<Server> {
  const yaml = `
service:
  grace: 1
  storage.path: buf
  storage.checksum: on
${(o.service ?? '').replace(/^/gm, '  ')}
pipeline:
  inputs:
${
  o.inputs ??
  `    - name: forward
      listen: 127.0.0.1
      port: 0
      storage.type: filesystem`
}
  outputs:
${o.outputs}
`;
  const run = await startPipeline(yaml, plugins, o.dir);
  const ports = run.pipeline.inputs.map((i) => Number(i.instance.addresses!()[0]!.split(':').pop()));
  return { run, ports, dir: run.dir };
}

const gateOut = (name: string, extra = '') => `    - name: gate\n      match: '*'\n      gate: ${name}\n      retry_limit: no_limits\n${extra.replace(/^/gm, '      ')}`;

/** A forward chunk of `n` records of ~250 bytes asking for an ack. */
function bigFrame(tag: string, id: string, n: number, from = 0): Buffer {
  return pack([tag, Array.from({ length: n }, (_, k) => [new WireTime(1_700_000_000, from + k), { id, k: from + k, pad: 'x'.repeat(200) }]), { chunk: id }]);
}

/** A forward chunk of `n` records asking for an ack. */
function frame(tag: string, id: string, n: number, from = 0): Buffer {
  return pack([tag, Array.from({ length: n }, (_, k) => [new WireTime(1_700_000_000, from + k), { id, k: from + k }]), { chunk: id }]);
}

function chunkFiles(dir: string, input = 'forward.0'): string[] {
  const d = join(dir, 'buf', input);
  return existsSync(d)
    ? readdirSync(d)
        .filter((n) => n.endsWith('.lwc'))
        .sort()
    : [];
}

function acks(c: RawClient): string[] {
  return c.replies.map((r) => (r as { ack?: string }).ack).filter((x): x is string => x !== undefined);
}

describe('filesystem buffer', () => {
  test('a chunk is acked once stored, before delivery; the file goes once delivered', async () => {
    const { name, gate } = newGate(false);
    const s = await server({ outputs: gateOut(name) });
    try {
      const c = await RawClient.connect(s.ports[0]!);
      await c.write(frame('audit', 'a1', 3));
      await c.until(() => acks(c).includes('a1'), 5000, 'ack while the output is closed');
      assert.equal(gate.delivered.length, 0, 'acked before delivery');
      const files = chunkFiles(s.dir);
      assert.equal(files.length, 1);
      assert.equal(await s.run.counter('logwarden_storage_chunks_written_total'), 1);
      gate.release();
      await until(() => gate.delivered.length === 3, 'delivery');
      await until(() => chunkFiles(s.dir).length === 0, 'chunk deleted after delivery');
      assert.deepEqual(
        gate.delivered.map((e) => e.record.k),
        [0, 1, 2],
      );
      c.close();
    } finally {
      await s.run.stop(1);
    }
  });

  test('after a restart, buffered chunks are replayed only to the outputs that had not committed them', async () => {
    const a = newGate(true);
    const b = newGate(false);
    const dir = tempDir();
    const outputs = (x: string, y: string) => `${gateOut(x, 'alias: a')}\n${gateOut(y, 'alias: b')}`;
    let s = await server({ outputs: outputs(a.name, b.name), dir });
    const c = await RawClient.connect(s.ports[0]!);
    for (let i = 0; i < 4; i++) await c.write(frame('audit', `r${i}`, 5, i * 5));
    await c.until(() => acks(c).length === 4, 5000, 'four acks');
    await until(() => a.gate.delivered.length === 20, 'output a delivered');
    const marker = (f: string) => join(dir, 'buf', 'forward.0', `${f}.done`);
    await until(() => chunkFiles(dir).every((f) => existsSync(marker(f)) && readFileSync(marker(f), 'utf8') === 'a\n'), 'done markers');
    assert.equal(chunkFiles(dir).length, 4, 'output b still needs them');
    c.close();
    await s.run.stop(0.2);

    const a2 = newGate(true);
    const b2 = newGate(true);
    s = await server({ outputs: outputs(a2.name, b2.name), dir });
    try {
      await until(() => b2.gate.delivered.length === 20, 'output b gets the replay');
      await until(() => chunkFiles(dir).length === 0, 'chunks deleted');
      assert.equal(a2.gate.delivered.length, 0, 'output a is not sent them again');
      assert.deepEqual(
        b2.gate.delivered.map((e) => e.record.k),
        Array.from({ length: 20 }, (_, k) => k),
        'replayed in creation order',
      );
      assert.equal(await s.run.counter('logwarden_storage_replayed_chunks_total'), 4);
    } finally {
      await s.run.stop(1);
    }
  });

  test('torn and corrupt chunks go to quarantine with a log line and a metric; the start goes on', async () => {
    const g = newGate(false);
    const dir = tempDir();
    let s = await server({ outputs: gateOut(g.name), dir });
    const c = await RawClient.connect(s.ports[0]!);
    for (let i = 0; i < 4; i++) await c.write(frame('audit', `q${i}`, 4, i * 4));
    await c.until(() => acks(c).length === 4, 5000, 'acks');
    c.close();
    await s.run.stop(0.2);
    const files = chunkFiles(dir).map((f) => join(dir, 'buf', 'forward.0', f));
    assert.equal(files.length, 4);
    truncateSync(files[0]!, statSync(files[0]!).size - 7); // a write cut short
    const buf = readFileSync(files[1]!);
    buf.writeUInt8(buf.readUInt8(buf.length - 3) ^ 0xff, buf.length - 3); // a flipped bit in the body
    writeFileSync(files[1]!, buf);
    truncateSync(files[2]!, 9); // cut inside the preamble

    const g2 = newGate(true);
    s = await server({ outputs: gateOut(g2.name), dir });
    try {
      await until(() => g2.gate.delivered.length === 4, 'the intact chunk is delivered');
      assert.deepEqual(
        g2.gate.delivered.map((e) => e.record.id),
        ['q3', 'q3', 'q3', 'q3'],
      );
      await until(() => chunkFiles(dir).length === 0, 'buffer empty');
      const q = readdirSync(join(dir, 'buf', 'quarantine')).sort();
      assert.equal(q.length, 3);
      assert.equal(await s.run.counter('logwarden_storage_quarantined_chunks_total', { reason: 'torn' }), 2);
      assert.equal(await s.run.counter('logwarden_storage_quarantined_chunks_total', { reason: 'checksum' }), 1);
      const lines = s.run.logs.filter((l) => String(l.msg).includes('moved to quarantine'));
      assert.equal(lines.length, 3);
      assert.ok(lines.some((l) => l.reason === 'checksum' && String(l.err).includes('checksum mismatch')));
    } finally {
      await s.run.stop(1);
    }
  });

  test('storage.max_chunks_up: only that many chunks are queued; the rest wait on disk and follow in order', async () => {
    const g = newGate(false);
    const s = await server({ service: 'storage.max_chunks_up: 2', outputs: gateOut(g.name, 'batch_size: 1000') });
    try {
      const c = await RawClient.connect(s.ports[0]!);
      for (let i = 0; i < 10; i++) await c.write(frame('audit', `m${i}`, 10, i * 10));
      await c.until(() => acks(c).length === 10, 5000, 'every chunk acked from disk');
      await until(() => s.run.pipeline.storage!.depth.writing === 0, 'writes done');
      const out = s.run.pipeline.status().outputs[s.run.pipeline.outputs[0]!.id]!;
      assert.ok(out.records <= 20, `at most two chunks queued in the output, found ${out.records} records`);
      assert.equal(await s.run.counter('logwarden_storage_chunks', { state: 'down' }), 8);
      g.gate.release();
      await until(() => g.gate.delivered.length === 100, 'everything delivered');
      assert.deepEqual(
        g.gate.delivered.map((e) => e.record.k),
        Array.from({ length: 100 }, (_, k) => k),
      );
      await until(() => chunkFiles(s.dir).length === 0, 'buffer empty');
      c.close();
    } finally {
      await s.run.stop(1);
    }
  });

  test('storage.backlog.mem_limit bounds the chunk files read back at once; storage.sync full writes and replays', async () => {
    const g = newGate(false);
    const dir = tempDir();
    const service = 'storage.sync: full\nstorage.backlog.mem_limit: 1k';
    let s = await server({ service, outputs: gateOut(g.name), dir });
    const c = await RawClient.connect(s.ports[0]!);
    for (let i = 0; i < 8; i++) await c.write(frame('audit', `k${i}`, 10, i * 10));
    await c.until(() => acks(c).length === 8, 5000, 'acks');
    c.close();
    await s.run.stop(0.2);
    const size = statSync(join(dir, 'buf', 'forward.0', chunkFiles(dir)[0]!)).size;
    assert.ok(size * 3 < 1024 && size * 4 > 1024, `chunk of ${size} bytes`);

    const g2 = newGate(false);
    s = await server({ service, outputs: gateOut(g2.name, 'batch_size: 1000'), dir });
    try {
      await until(() => s.run.pipeline.status().outputs['gate.0']!.records === 30, 'three chunks read back');
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(s.run.pipeline.status().outputs['gate.0']!.records, 30, 'no more than 1k of chunk files in memory');
      assert.equal(await s.run.counter('logwarden_storage_replayed_chunks_total'), 3);
      g2.gate.release();
      await until(() => g2.gate.delivered.length === 80, 'the rest follows as memory frees');
      assert.deepEqual(
        g2.gate.delivered.map((e) => e.record.k),
        Array.from({ length: 80 }, (_, k) => k),
      );
      await until(() => chunkFiles(dir).length === 0, 'buffer empty');
    } finally {
      await s.run.stop(1);
    }
  });

  test('storage.total_limit_size with block: no ack past the limit until delivered, inputs routed there pause', async () => {
    const g = newGate(false);
    const s = await server({ outputs: gateOut(g.name, 'storage.total_limit_size: 700') });
    try {
      const c = await RawClient.connect(s.ports[0]!);
      await c.write(frame('audit', 'l0', 10));
      await c.until(() => acks(c).length === 1, 5000, 'first chunk stored');
      const size = statSync(join(s.dir, 'buf', 'forward.0', chunkFiles(s.dir)[0]!)).size;
      assert.ok(size * 2 <= 700 && size * 3 > 700, `chunk of ${size} bytes`);
      await c.write(frame('audit', 'l1', 10, 10));
      await c.write(frame('audit', 'l2', 10, 20));
      await until(() => s.run.pipeline.flow.paused, 'limit reached');
      assert.match(s.run.pipeline.flow.reasons()['storage:gate.0'] ?? '', /storage.total_limit_size/);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(acks(c).sort(), ['l0', 'l1'], 'the chunk over the limit is not acked');
      assert.equal(chunkFiles(s.dir).length, 2);
      assert.equal(await s.run.counter('logwarden_storage_unbuffered_chunks_total', { reason: 'total_limit_size' }), 1);
      assert.ok(s.run.logs.some((l) => String(l.msg).includes('reached storage.total_limit_size')));
      g.gate.release();
      await c.until(() => acks(c).length === 3, 5000, 'acked after delivery');
      await until(() => !s.run.pipeline.flow.paused, 'resumed');
      assert.equal(g.gate.delivered.length, 30);
      c.close();
    } finally {
      await s.run.stop(1);
    }
  });

  test('storage.overflow_action drop_oldest_chunk: the oldest chunks leave the output queue, new ones are acked', async () => {
    const g = newGate(false);
    const s = await server({
      service: 'storage.max_chunks_up: 1',
      outputs: gateOut(g.name, 'storage.total_limit_size: 1k\nstorage.overflow_action: drop_oldest_chunk'),
    });
    try {
      const c = await RawClient.connect(s.ports[0]!);
      for (let i = 0; i < 6; i++) {
        await c.write(frame('audit', `d${i}`, 10, i * 10));
        await c.until(() => acks(c).length === i + 1, 5000, `ack of d${i}`);
      }
      await until(() => chunkFiles(s.dir).length <= 3, 'dropped chunks deleted: what is left fits the limit');
      const dropped = await s.run.counter('logwarden_storage_dropped_records_total', { reason: 'drop_oldest_chunk' });
      assert.ok(dropped >= 20, `dropped ${dropped}`);
      assert.ok(s.run.logs.some((l) => String(l.msg).includes('dropped the oldest chunks')));
      g.gate.release();
      // d0 was queued (up) when dropped: it is still delivered from memory. The newest ones come from disk.
      await until(() => g.gate.delivered.length === 60 - dropped, 'the rest delivered');
      const ids = new Set(g.gate.delivered.map((e) => e.record.id));
      assert.ok(ids.has('d0') && ids.has('d5'), [...ids].join(','));
      await until(() => chunkFiles(s.dir).length === 0, 'buffer empty');
      c.close();
    } finally {
      await s.run.stop(1);
    }
  });

  test('a full output queue pauses only the memory inputs routed to it; a filesystem input keeps buffering', async () => {
    const slow = newGate(false);
    const fast = newGate(true);
    const s = await server({
      inputs: `    - name: forward
      alias: slow_in
      listen: 127.0.0.1
      port: 0
    - name: forward
      alias: fast_in
      listen: 127.0.0.1
      port: 0
    - name: forward
      alias: disk_in
      listen: 127.0.0.1
      port: 0
      storage.type: filesystem`,
      outputs: `    - name: gate
      match: slow.*
      gate: ${slow.name}
      queue_max_records: 20
    - name: gate
      match: fast.*
      gate: ${fast.name}`,
    });
    try {
      const [slowPort, fastPort, diskPort] = s.ports as [number, number, number];
      const cs = await RawClient.connect(slowPort);
      for (let i = 0; i < 3; i++) await cs.write(frame('slow.a', `s${i}`, 10, i * 10));
      await until(() => s.run.pipeline.flow.paused, 'slow queue full');
      const [slowIn, fastIn, diskIn] = s.run.pipeline.inputs;
      assert.equal(slowIn!.flow.paused, true);
      assert.equal(fastIn!.flow.paused, false, 'an input that never routed to the slow output keeps reading');
      const cf = await RawClient.connect(fastPort);
      for (let i = 0; i < 5; i++) await cf.write(frame('fast.a', `f${i}`, 10, i * 10));
      await cf.until(() => acks(cf).length === 5, 5000, 'fast input acked while the slow one is paused');
      assert.equal(fast.gate.delivered.length, 50);
      const cd = await RawClient.connect(diskPort);
      for (let i = 0; i < 5; i++) await cd.write(frame('slow.b', `b${i}`, 10, i * 10));
      await cd.until(() => acks(cd).length === 5, 5000, 'filesystem input acked: its chunks wait on disk');
      assert.equal(diskIn!.flow.paused, false);
      assert.equal(acks(cs).length, 0);
      slow.gate.release();
      await cs.until(() => acks(cs).length === 3, 5000, 'slow input acked after delivery');
      await until(() => slow.gate.delivered.length === 80, 'everything reaches the slow output');
      for (const c of [cs, cf, cd]) c.close();
    } finally {
      await s.run.stop(1);
    }
  });

  test('memory_limit bounds the buffered events held in memory; the rest waits on disk, everything is acked and delivered', async () => {
    const g = newGate(false);
    const limit = 512 * 1024;
    const s = await server({ service: `memory_limit: ${limit}`, outputs: gateOut(g.name) });
    const storage = s.run.pipeline.storage!;
    const engine = s.run.pipeline.outputs[0]!.engine;
    let peakMemory = 0;
    let peakQueued = 0;
    const sample = setInterval(() => {
      peakMemory = Math.max(peakMemory, storage.depth.memory);
      peakQueued = Math.max(peakQueued, engine.depth.records);
    }, 2);
    try {
      const c = await RawClient.connect(s.ports[0]!);
      // As Fluent Bit's out_forward with require_ack_response: the next chunk once the last is acked.
      for (let i = 0; i < 40; i++) {
        await c.write(bigFrame('audit', `b${i}`, 50, i * 50));
        await c.until(() => acks(c).length === i + 1, 5000, `ack of b${i} once stored, while the output is stopped`);
      }
      await until(() => storage.depth.writing === 0, 'writes done');
      await new Promise((r) => setTimeout(r, 50));
      clearInterval(sample);
      peakMemory = Math.max(peakMemory, storage.depth.memory);
      peakQueued = Math.max(peakQueued, engine.depth.records);
      const cost = statSync(join(s.dir, 'buf', 'forward.0', chunkFiles(s.dir)[0]!)).size * HEAP_FACTOR;
      // Half of memory_limit for chunks queued to outputs, an eighth for chunks waiting for their write.
      const up = Math.floor(limit / 2 / cost) + 1;
      assert.ok(up < 20, `test chunks too small for the limit (${cost} bytes each)`);
      assert.ok(peakQueued <= up * 50, `${peakQueued} records queued to the stopped output; at most ${up} chunks of 50 fit`);
      assert.ok(peakMemory <= limit * (1 / 2 + 1 / 8) + cost, `estimated memory ${peakMemory} over ${limit * (1 / 2 + 1 / 8)} + one chunk`);
      assert.ok(peakQueued > 0 && peakMemory > 0);
      assert.ok((await s.run.counter('logwarden_storage_chunks', { state: 'down' })) >= 40 - up, 'the rest is on disk only');
      const gauge = await s.run.counter('logwarden_storage_memory_bytes');
      assert.ok(gauge > 0 && gauge <= limit / 2 + cost, `gauge ${gauge}`);
      g.gate.release();
      await until(() => g.gate.delivered.length === 2000, 'everything delivered from disk once the output resumes', 20_000);
      assert.deepEqual(
        g.gate.delivered.map((e) => e.record.k),
        Array.from({ length: 2000 }, (_, k) => k),
      );
      await until(() => chunkFiles(s.dir).length === 0, 'buffer empty');
      assert.equal(storage.depth.memory, 0);
      c.close();
    } finally {
      clearInterval(sample);
      await s.run.stop(1);
    }
  });

  test('a stopped output holds only its share of memory_limit; another output routed the same chunks keeps receiving them', async () => {
    const stuck = newGate(false);
    const live = newGate(true);
    const limit = 512 * 1024;
    const s = await server({ service: `memory_limit: ${limit}`, outputs: `${gateOut(stuck.name, 'alias: stuck')}\n${gateOut(live.name, 'alias: live')}` });
    const storage = s.run.pipeline.storage!;
    const engine = s.run.pipeline.outputs.find((o) => o.id === 'stuck')!.engine;
    let peakQueued = 0;
    const sample = setInterval(() => {
      peakQueued = Math.max(peakQueued, engine.depth.records);
    }, 2);
    try {
      const c = await RawClient.connect(s.ports[0]!);
      for (let i = 0; i < 40; i++) await c.write(bigFrame('audit', `s${i}`, 50, i * 50));
      await c.until(() => acks(c).length === 40, 10_000, 'acks');
      await until(() => live.gate.delivered.length === 2000, 'the live output gets everything while the other is stopped', 20_000);
      clearInterval(sample);
      peakQueued = Math.max(peakQueued, engine.depth.records);
      const cost = statSync(join(s.dir, 'buf', 'forward.0', chunkFiles(s.dir)[0]!)).size * HEAP_FACTOR;
      const share = Math.floor(limit / 2 / 2 / cost) + 1;
      assert.ok(peakQueued <= share * 50, `${peakQueued} records queued to the stopped output; its share holds ${share} chunks of 50`);
      assert.ok(storage.depth.memory <= limit / 2 / 2 + cost, `estimated memory ${storage.depth.memory}`);
      assert.equal(chunkFiles(s.dir).length, 40, 'every chunk still waits for the stopped output');
      stuck.gate.release();
      await until(() => stuck.gate.delivered.length === 2000, 'the stopped output catches up from disk', 20_000);
      assert.deepEqual(
        stuck.gate.delivered.map((e) => e.record.k),
        Array.from({ length: 2000 }, (_, k) => k),
      );
      await until(() => chunkFiles(s.dir).length === 0, 'buffer empty');
      c.close();
    } finally {
      clearInterval(sample);
      await s.run.stop(1);
    }
  });

  test('an output at its memory share sends its partial batch at once instead of waiting for batch_wait', async () => {
    const g = newGate(true);
    const s = await server({ service: 'memory_limit: 128k', outputs: gateOut(g.name, 'batch_size: 10000\nbatch_wait: 30') });
    let stopped = false;
    try {
      const c = await RawClient.connect(s.ports[0]!);
      const t0 = Date.now();
      for (let i = 0; i < 10; i++) {
        await c.write(bigFrame('audit', `w${i}`, 50, i * 50));
        await c.until(() => acks(c).length === i + 1, 5000, `ack of w${i}`);
      }
      // Each chunk but the last had a successor waiting for the output's share: sent at once.
      await until(() => g.gate.delivered.length === 450, 'nine chunks delivered long before one batch_wait', 10_000);
      assert.ok(Date.now() - t0 < 10_000);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(g.gate.delivered.length, 450, 'the last chunk, with nothing behind it, waits for batch_wait');
      c.close();
      stopped = true;
      await s.run.stop(1);
      assert.deepEqual(
        g.gate.delivered.map((e) => e.record.k),
        Array.from({ length: 500 }, (_, k) => k),
        'the last one is sent when the pipeline drains',
      );
    } finally {
      if (!stopped) await s.run.stop(1);
    }
  });

  test('configuration errors name the file, line and option', async () => {
    const dir = tempDir();
    const bad = async (yaml: string) => {
      try {
        await startPipeline(yaml, plugins, dir);
      } catch (e) {
        assert.ok(e instanceof ConfigErrors, String(e));
        return e.message;
      }
      assert.fail('accepted');
    };
    assert.match(
      await bad(`pipeline:\n  inputs:\n    - name: forward\n      port: 0\n      storage.type: filesystem\n  outputs:\n    - name: gate\n      match: '*'\n      gate: x\n`),
      /pipeline\.yaml:5:\d+.*storage\.type filesystem needs service storage\.path/,
    );
    assert.match(
      await bad(`service:\n  storage.path: b\n  storage.sync: full\npipeline:\n  inputs:\n    - name: forward\n      port: 0\n  outputs:\n    - name: gate\n      match: '*'\n      gate: x\n`),
      /pipeline\.yaml:3:\d+.*storage\.sync has no effect/,
    );
    assert.match(
      await bad(
        `service:\n  storage.path: b\npipeline:\n  inputs:\n    - name: forward\n      port: 0\n      storage.type: filesystem\n  outputs:\n    - name: gate\n      match: '*'\n      gate: x\n      storage.overflow_action: drop_oldest_chunk\n`,
      ),
      /pipeline\.yaml:12:\d+.*storage\.overflow_action needs a storage\.total_limit_size above 0/,
    );
    assert.match(
      await bad(`service:\n  storage.path: b\npipeline:\n  inputs:\n    - name: forward\n      port: 0\n      storage.type: disk\n  outputs:\n    - name: gate\n      match: '*'\n      gate: x\n`),
      /storage\.type.*memory, filesystem/,
    );
  });
});
