/**
 * /readyz of a real `logwarden run`: polled from the moment the process starts, every 200 it
 * gives is checked against the forward port, which must accept a connection right then. The
 * filesystem buffer holds chunks left by a previous run, so the start has a window (the buffer
 * being loaded) in which the service HTTP server answers and the input does not listen yet.
 * After SIGTERM, /readyz answers 503 (`stopping`) while queued events drain.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { EventTime } from '../../src/core/event.js';
import { encodeChunk } from '../../src/core/storage/chunk-file.js';
import { bin } from '../support/cli.js';
import { freePort, silentServer, tempDir } from '../support/harness.js';
import { repoRoot } from '../support/paths.js';

/** Chunks left on disk: enough that loading them takes a while on any machine. */
const CHUNKS = 1000;

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

interface Answer {
  status: number;
  state?: string;
  /** Whether the forward port accepted a connection right after a 200. */
  listening?: boolean;
}

async function readyz(httpPort: number): Promise<Answer | undefined> {
  try {
    const r = await fetch(`http://127.0.0.1:${httpPort}/readyz`, { signal: AbortSignal.timeout(2000) });
    const body = (await r.json()) as { ready: boolean; state: string };
    assert.equal(body.ready, r.status === 200);
    return { status: r.status, state: body.state };
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    return undefined; // not listening yet, or closed
  }
}

async function readiness(workers: number): Promise<void> {
  const dir = tempDir('logwarden-ready-');
  const storage = join(dir, 'buffer');
  // With service.workers, worker i buffers under storage.path/worker-i.
  const chunkDir = join(storage, ...(workers > 1 ? ['worker-0'] : []), 'forward.0');
  mkdirSync(chunkDir, { recursive: true });
  for (let i = 0; i < CHUNKS; i++) {
    const ev = { tag: 'kube.audit', time: new EventTime(1_700_000_000 + i, 0), record: { i } };
    const { head, body } = encodeChunk({ input: 'forward.0', outputs: ['loki.0'], records: 1, created: i }, [{ tag: 'kube.audit', outputs: [0], events: [ev] }], true);
    writeFileSync(join(chunkDir, `${String(i).padStart(14, '0')}-0000001-00000000.lwc`), Buffer.concat([head, body]));
  }
  // A Loki that takes requests and does not answer: the replayed events stay in flight, so the
  // drain after SIGTERM lasts until the test lets go of them.
  const loki = await silentServer();
  const port = await freePort();
  const httpPort = await freePort();
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(
    file,
    `service:
  http_server: on
  http_listen: 127.0.0.1
  http_port: ${httpPort}
  grace: 1
  workers: ${workers}
  storage.path: ${storage}
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: ${port}
      storage.type: filesystem
  outputs:
    - name: loki
      match: kube.*
      host: 127.0.0.1
      port: ${loki.port}
`,
  );
  const child = spawn(process.execPath, [bin, 'run', '-c', file], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  child.stdout.on('data', (d) => (logs += d));
  child.stderr.on('data', (d) => (logs += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const answers: Answer[] = [];
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      assert.equal(child.exitCode, null, `logwarden exited early:\n${logs}`);
      assert.ok(Date.now() < deadline, `never ready:\n${JSON.stringify(answers.slice(-5))}\n${logs}`);
      const a = await readyz(httpPort);
      if (!a) {
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      if (a.status === 200) a.listening = await canConnect(port);
      answers.push(a);
      if (a.status === 200) break;
    }
    assert.equal(answers.at(-1)!.listening, true, 'readyz answered 200 while the forward port refused connections');
    const starting = answers.filter((a) => a.status === 503);
    assert.ok(starting.length > 0, 'the poll reached the server before the input listened');
    assert.ok(
      starting.every((a) => a.state === 'starting'),
      JSON.stringify(starting.find((a) => a.state !== 'starting')),
    );
    assert.match(logs, /filesystem buffer: replaying chunks/);
    for (let i = 0; i < 20; i++) {
      const a = await readyz(httpPort);
      assert.ok(a);
      a.listening = await canConnect(port);
      answers.push(a);
    }
    for (const a of answers) if (a.status === 200) assert.equal(a.listening, true, 'readyz answered 200 while the forward port refused connections');
    assert.ok(
      answers.slice(-20).every((a) => a.status === 200 && a.state === 'running'),
      JSON.stringify(answers.slice(-20)),
    );

    child.kill('SIGTERM');
    const after: Answer[] = [];
    while (child.exitCode === null) {
      const a = await readyz(httpPort);
      if (!a) break;
      after.push(a);
      if (after.filter((x) => x.state === 'stopping').length === 5) {
        loki.release();
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const first = after.findIndex((a) => a.state === 'stopping');
    assert.ok(first >= 0, `no 'stopping' answer while draining: ${JSON.stringify(after)}`);
    assert.ok(
      after.slice(first).every((a) => a.status === 503 && a.state === 'stopping'),
      JSON.stringify(after),
    );
    assert.equal(await exited, 0, logs);
  } finally {
    child.kill('SIGKILL');
    loki.release();
  }
}

test('/readyz answers 200 only while every input listens: not while the buffer loads, not while draining', () => readiness(1));

test('service.workers 2: the primary answers /readyz 200 only once the workers listen, 503 from SIGTERM on', () => readiness(2));
