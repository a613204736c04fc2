/**
 * An independent forward client: Fluentd's Python logger (Debian python3-fluent-logger, installed
 * by test/e2e/setup.sh) sends to a real `logwarden run`, in Message mode with EventTime
 * (nanosecond_precision) and with integer seconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startDaemon } from '../support/cli.js';

const PYTHON = '/usr/bin/python3';

const script = `
import sys, time
from fluent import sender, event
port = int(sys.argv[1])
ns = sender.FluentSender('py', host='127.0.0.1', port=port, nanosecond_precision=True)
for i in range(500):
    ok = ns.emit_with_time('ns', sender.EventTime(1700000000.123456789 + i), {'i': i, 'text': u'caf\\u00e9 %d' % i, 'nested': {'k': [1, 2, None]}})
    if not ok:
        print(ns.last_error, file=sys.stderr); sys.exit(1)
ns.close()
sec = sender.FluentSender('py', host='127.0.0.1', port=port)
for i in range(500):
    if not sec.emit_with_time('sec', 1700000000 + i, {'i': i}):
        print(sec.last_error, file=sys.stderr); sys.exit(1)
sec.close()
`;

test('python3-fluent-logger (Message mode, EventTime and integer times) reaches the file output', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'logwarden-py-'));
  const port = await freePort();
  const cfg = join(dir, 'p.yaml');
  writeFileSync(
    cfg,
    `pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: ${port}
  outputs:
    - name: file
      match: 'py.*'
      path: out
      mkdir: on
      format: out_file
`,
  );
  writeFileSync(join(dir, 'send.py'), script);
  const d = await startDaemon(cfg);
  try {
    execFileSync(PYTHON, [join(dir, 'send.py'), String(port)], { stdio: 'pipe', timeout: 60_000 });
    // The Python client sends without acks: wait until the file output has written everything.
    const deadline = Date.now() + 10_000;
    const count = (tag: string) => {
      try {
        return readFileSync(join(dir, 'out', tag), 'utf8')
          .trim()
          .split('\n').length;
      } catch {
        return 0;
      }
    };
    while ((count('py.ns') < 500 || count('py.sec') < 500) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const ns = readFileSync(join(dir, 'out', 'py.ns'), 'utf8')
      .trim()
      .split('\n');
    const sec = readFileSync(join(dir, 'out', 'py.sec'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(ns.length, 500);
    assert.equal(sec.length, 500);
    // out_file format: `tag: [sec.nsec, {record}]`; Python's float keeps ~microsecond precision.
    assert.match(ns[0]!, /^py\.ns: \[1700000000\.1234\d{5}, \{"i":0,"text":"café 0","nested":\{"k":\[1,2,null\]\}\}\]$/);
    assert.equal(sec[499], 'py.sec: [1700000499.000000000, {"i":499}]');
  } finally {
    assert.equal(await d.stop(), 0);
  }
});
