/**
 * Shutdown within service.grace, with real `logwarden run` child processes. Fluent Bit's rule:
 * on SIGTERM, flush for up to `grace` seconds, then exit. An output whose downstream accepted the
 * connection and never answers (a hung Loki, Alertmanager or forward receiver) must not hold the
 * process until net.io_timeout: when the grace period ends its requests are cut, their batches
 * are not committed, a log line counts the records each output left undelivered, and the process
 * exits. With storage.type filesystem those records stay in the buffer and go out after a restart.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../support/cli.js';
import { countSeqs, LogwardenProcess, writeConfig, type LogLine } from '../support/fault.js';
import { silentServer, tempDir, until } from '../support/harness.js';
import { LokiServer } from '../support/loki-server.js';

const GRACE = 2;
/** What the exit may take beyond the grace period: the process's own shutdown on a busy machine. */
const MARGIN_MS = 2500;

/** `n` records {"seq":i,"pad":"x..."} as JSON lines. */
function recordsFile(dir: string, n: number, from = 0): string {
  const file = join(dir, `records-${from}.jsonl`);
  let text = '';
  for (let i = from; i < from + n; i++) text += `${JSON.stringify({ seq: i, pad: 'x'.repeat(32) })}\n`;
  writeFileSync(file, text);
  return file;
}

/** `logwarden send`; with `ackTimeout`, waits that many seconds for acks. */
function send(port: number, file: string, tag: string, ackTimeout?: number) {
  const ack = ackTimeout === undefined ? [] : ['--ack', '--timeout', String(ackTimeout)];
  return runCli(['send', '-H', '127.0.0.1', '-p', String(port), '-t', tag, ...ack, file], { timeoutMs: 40_000 });
}

/** SIGTERM; resolves with the exit code and the milliseconds from the signal to the exit. */
async function terminate(p: LogwardenProcess): Promise<{ code: number | null; ms: number }> {
  const t = performance.now();
  p.proc.kill('SIGTERM');
  const guard = setTimeout(() => p.proc.kill('SIGKILL'), 90_000);
  const code = await p.exited;
  clearTimeout(guard);
  return { code, ms: performance.now() - t };
}

function assertPromptExit(t: TestContext, r: { code: number | null; ms: number }, output: string): void {
  t.diagnostic(`exit ${r.ms.toFixed(0)} ms after SIGTERM (grace ${GRACE} s)`);
  assert.equal(r.code, 0, output);
  assert.ok(r.ms >= GRACE * 1000 - 100, `exited after ${r.ms.toFixed(0)} ms, before the grace period (${GRACE} s) was over`);
  assert.ok(r.ms < GRACE * 1000 + MARGIN_MS, `exited ${r.ms.toFixed(0)} ms after SIGTERM; grace is ${GRACE} s:\n${output.slice(-4000)}`);
}

/** The shutdown summary line: records left undelivered, per output. */
function undelivered(logs: LogLine[]): Record<string, number> | undefined {
  return logs.find((l) => l.undelivered !== undefined && /undelivered/.test(String(l.msg)))?.undelivered as Record<string, number> | undefined;
}

function bufferedChunks(storage: string, input = 'forward.0'): string[] {
  const dir = join(storage, input);
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.lwc')) : [];
}

function forwardInput(storageType: 'memory' | 'filesystem'): string {
  return `  inputs:
    - name: forward
      listen: 127.0.0.1
      port: 0
      storage.type: ${storageType}
`;
}

/**
 * With the filesystem buffer: starts logwarden on `pipeline(port)` against a downstream that
 * never answers, sends `n` records (acked once stored), waits until the downstream has the first
 * bytes, then SIGTERM: the exit is prompt, the log counts the `n` records of `output` as
 * undelivered, and their chunk is still in the buffer.
 */
async function stopWhileHung(t: TestContext, dir: string, storage: string, pipeline: (port: number) => string, n: number, output: string): Promise<void> {
  const hung = await silentServer();
  const p = await LogwardenProcess.start(writeConfig(dir, pipeline(hung.port)));
  try {
    const sent = await send(p.port(), recordsFile(dir, n), 'kube.audit', 20);
    assert.equal(sent.code, 0, `acked once stored: ${sent.stdout}${sent.stderr}`);
    await until(() => hung.received() > 0, `the first bytes to reach ${output}`, 15_000);
    const r = await terminate(p);
    assertPromptExit(t, r, p.output);
    assert.deepEqual(undelivered(p.logs), { [output]: n }, p.output);
    assert.ok(bufferedChunks(storage).length > 0, 'the undelivered chunk stays in the filesystem buffer');
  } finally {
    await p.stop();
    hung.release();
  }
}

test('loki, memory storage: a hung Loki does not hold SIGTERM past grace; the records are reported lost and not acked', async (t) => {
  const dir = tempDir('logwarden-shutdown-');
  const loki = await silentServer();
  const config = writeConfig(
    dir,
    `service:
  grace: ${GRACE}
pipeline:
${forwardInput('memory')}  outputs:
    - name: loki
      match: kube.*
      host: 127.0.0.1
      port: ${loki.port}
      batch_wait: 0
      retry_limit: no_limits
`,
  );
  const p = await LogwardenProcess.start(config);
  try {
    const sender = send(p.port(), recordsFile(dir, 30), 'kube.audit', GRACE + 4);
    await until(() => loki.received() > 0, 'the push to reach Loki', 15_000);
    const r = await terminate(p);
    assertPromptExit(t, r, p.output);
    assert.deepEqual(undelivered(p.logs), { 'loki.0': 30 }, p.output);
    const sent = await sender;
    assert.equal(sent.code, 1, `the sender was acked for records that were not delivered: ${sent.stdout}`);
    assert.equal((JSON.parse(sent.stdout) as { sent: number }).sent, 0, sent.stdout);
  } finally {
    await p.stop();
    loki.release();
  }
});

test('loki, filesystem storage: SIGTERM exits within grace; after a restart the buffered records reach Loki', async (t) => {
  const dir = tempDir('logwarden-shutdown-');
  const storage = join(dir, 'buffer');
  const pipeline = (port: number) => `service:
  grace: ${GRACE}
  storage.path: ${storage}
pipeline:
${forwardInput('filesystem')}  outputs:
    - name: loki
      match: kube.*
      host: 127.0.0.1
      port: ${port}
      batch_wait: 0
      retry_limit: no_limits
`;
  await stopWhileHung(t, dir, storage, pipeline, 40, 'loki.0');
  let loki: LokiServer | undefined;
  let again: LogwardenProcess | undefined;
  try {
    loki = await new LokiServer().start();
    again = await LogwardenProcess.start(writeConfig(dir, pipeline(loki.port), 'restart.yaml'));
    await loki.waitForEntries(40);
    const seqs = countSeqs(
      loki
        .entries()
        .map((e) => e.line)
        .join('\n'),
    );
    assert.deepEqual(
      [...seqs.keys()].sort((a, b) => a - b),
      Array.from({ length: 40 }, (_, i) => i),
    );
    await until(() => bufferedChunks(storage).length === 0, 'the delivered chunk to leave the buffer', 15_000);
    const r2 = await terminate(again);
    assert.equal(r2.code, 0, again.output);
    assert.equal(undelivered(again.logs), undefined, 'nothing left undelivered once Loki answers');
  } finally {
    await again?.stop();
    await loki?.stop();
  }
});

test('forward, filesystem storage: a receiver that never acks does not hold SIGTERM past grace; a restart delivers to a working receiver', async (t) => {
  const dir = tempDir('logwarden-shutdown-');
  const storage = join(dir, 'buffer');
  const pipeline = (port: number) => `service:
  grace: ${GRACE}
  storage.path: ${storage}
pipeline:
${forwardInput('filesystem')}  outputs:
    - name: forward
      match: kube.*
      host: 127.0.0.1
      port: ${port}
      require_ack_response: on
      batch_wait: 0
      retry_limit: no_limits
`;
  await stopWhileHung(t, dir, storage, pipeline, 25, 'forward.0');
  let receiver: LogwardenProcess | undefined;
  let again: LogwardenProcess | undefined;
  try {
    // A working receiver: another logwarden writing what it receives to a file.
    const out = join(dir, 'received');
    receiver = await LogwardenProcess.start(
      writeConfig(
        dir,
        `service:
  grace: 1
pipeline:
${forwardInput('memory')}  outputs:
    - name: file
      match: '*'
      path: ${out}
      mkdir: on
      format: plain
`,
        'receiver.yaml',
      ),
    );
    again = await LogwardenProcess.start(writeConfig(dir, pipeline(receiver.port()), 'restart.yaml'));
    const file = join(out, 'kube.audit');
    await until(() => existsSync(file) && countSeqs(readFileSync(file, 'utf8')).size === 25, '25 records at the receiver', 15_000);
    assert.deepEqual(
      [...countSeqs(readFileSync(file, 'utf8')).keys()].sort((a, b) => a - b),
      Array.from({ length: 25 }, (_, i) => i),
    );
    await until(() => bufferedChunks(storage).length === 0, 'the delivered chunk to leave the buffer', 15_000);
  } finally {
    await again?.stop();
    await receiver?.stop();
  }
});

test('alertmanager: a hung Alertmanager does not hold SIGTERM past grace; the alerts are counted as undelivered', async (t) => {
  const dir = tempDir('logwarden-shutdown-');
  const am = await silentServer();
  const config = writeConfig(
    dir,
    `service:
  grace: ${GRACE}
pipeline:
${forwardInput('memory')}  outputs:
    - name: alertmanager
      match: falco
      host: 127.0.0.1
      port: ${am.port}
      batch_wait: 0
`,
  );
  const p = await LogwardenProcess.start(config);
  try {
    const file = join(dir, 'alerts.jsonl');
    let text = '';
    for (let i = 0; i < 5; i++) {
      text += `${JSON.stringify({ rule: `Rule ${i}`, priority: 'Warning', output: `alert ${i}`, time: new Date().toISOString(), output_fields: {} })}\n`;
    }
    writeFileSync(file, text);
    const sender = send(p.port(), file, 'falco');
    await until(() => am.received() > 0, 'the alerts to reach Alertmanager', 15_000);
    const r = await terminate(p);
    assertPromptExit(t, r, p.output);
    assert.deepEqual(undelivered(p.logs), { 'alertmanager.0': 5 }, p.output);
    await sender;
  } finally {
    await p.stop();
    am.release();
  }
});
