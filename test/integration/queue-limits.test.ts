/**
 * The bounds of each output's queue and of the filesystem buffer, as /metrics of a real
 * `logwarden run` shows them: configured and default values, and usage / limit reaching 1
 * exactly when the inputs routed to that output pause.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, startDaemon } from '../support/cli.js';
import { freePort, silentServer, tempDir } from '../support/harness.js';

/** The value of one sample in Prometheus text, or undefined when the series is absent. */
function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

test('/metrics exports every output queue bound and the filesystem buffer bounds; usage reaching the bound pauses the input', async () => {
  const dir = tempDir('logwarden-limits-');
  // A Loki that takes requests and never answers: what reaches it stays in its queue.
  const loki = await silentServer();
  const [memPort, fsPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(
    file,
    `service:
  http_server: on
  http_listen: 127.0.0.1
  http_port: ${httpPort}
  grace: 1
  memory_limit: 64Mi
  storage.path: ${join(dir, 'buffer')}
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: ${memPort}
    - name: forward
      listen: 127.0.0.1
      port: ${fsPort}
      storage.type: filesystem
  outputs:
    - name: loki
      match: q.*
      host: 127.0.0.1
      port: ${loki.port}
      batch_wait: 0.1
      queue_max_records: 50
      queue_max_bytes: 1M
    - name: file
      match: s.*
      path: ${join(dir, 'out')}
      storage.total_limit_size: 10M
    - name: file
      match: t.*
      path: ${join(dir, 'out')}
      storage.total_limit_size: off
`,
  );
  const d = await startDaemon(file);
  const metrics = async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  try {
    const m = await metrics();
    const limit = (metric: string, name: string) => sample(m, `logwarden_output_queue_limit_${metric}`, `name="${name}"`);
    assert.equal(limit('records', 'loki.0'), 50);
    assert.equal(limit('bytes', 'loki.0'), 1_000_000); // 1M, as Fluent Bit reads it
    // Defaults: memory_limit split evenly between the three outputs; records: bytes / 1 KiB.
    const share = Math.floor((64 * 1024 * 1024) / 3);
    for (const o of ['file.0', 'file.1']) {
      assert.equal(limit('bytes', o), share, o);
      assert.equal(limit('records', o), Math.floor(share / 1024), o);
    }
    assert.equal(sample(m, 'logwarden_storage_memory_limit_bytes', 'state="up"'), 32 * 1024 * 1024);
    assert.equal(sample(m, 'logwarden_storage_memory_limit_bytes', 'state="writing"'), 8 * 1024 * 1024);
    assert.equal(sample(m, 'logwarden_storage_output_limit_bytes', 'name="file.0"'), 10_000_000); // storage.total_limit_size 10M, as Fluent Bit
    assert.equal(sample(m, 'logwarden_storage_output_limit_bytes', 'name="file.1"'), undefined, 'total_limit_size off: no limit (as Fluent Bit), no series');
    assert.match(m, /# HELP logwarden_output_queue_limit_records /);

    const recs = join(dir, 'recs.jsonl');
    const send = async (n: number) => {
      writeFileSync(recs, Array.from({ length: n }, (_, i) => JSON.stringify({ i })).join('\n'));
      const r = await runCli(['send', '-p', String(memPort), '-t', 'q.x', recs]);
      assert.equal(r.code, 0, r.stderr);
    };
    const usage = async () => {
      const text = await metrics();
      return {
        ratio: sample(text, 'logwarden_output_queue_records', 'name="loki.0"')! / sample(text, 'logwarden_output_queue_limit_records', 'name="loki.0"')!,
        paused: sample(text, 'logwarden_input_paused', 'name="forward.0"') === 1,
      };
    };
    await send(49);
    for (let i = 0; i < 50 && (await usage()).ratio < 49 / 50; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await usage(), { ratio: 49 / 50, paused: false });
    await send(1);
    for (let i = 0; i < 50 && (await usage()).ratio < 1; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await usage(), { ratio: 1, paused: true });
  } finally {
    loki.release();
    assert.equal(await d.stop(), 0, d.logs.join('\n'));
  }
});
