/**
 * A port that is already taken: `logwarden run` exits 1 with one line naming the option and the
 * file:line:col that set it (or the section, for a default), never a stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { runCli } from '../support/cli.js';
import { freePort, tempDir } from '../support/harness.js';

async function hold(): Promise<{ port: number; close(): void }> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { port: (s.address() as net.AddressInfo).port, close: () => s.close() };
}

test('a busy port is one line: the option and where it is set', async () => {
  const busy = await hold();
  try {
    const dir = tempDir();
    const file = join(dir, 'pipeline.yaml');
    const cases: Array<[string, RegExp]> = [
      [
        `pipeline:\n  inputs:\n    - name: forward\n      listen: 127.0.0.1\n      port: ${busy.port}\n  outputs:\n    - name: stdout\n      match: '*'\n`,
        new RegExp(
          `^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:5:13: port: 127\\.0\\.0\\.1:${busy.port} is already in use \\(EADDRINUSE\\): another process listens there; stop it or choose another port\\n$`,
        ),
      ],
      [
        `pipeline:\n  inputs:\n    - name: http\n      listen: 127.0.0.1\n      port: ${busy.port}\n  outputs:\n    - name: stdout\n      match: '*'\n`,
        /pipeline\.yaml:5:13: port: 127\.0\.0\.1:\d+ is already in use \(EADDRINUSE\)/,
      ],
      [
        `service:\n  http_server: on\n  http_listen: 127.0.0.1\n  http_port: ${busy.port}\npipeline:\n  inputs:\n    - name: forward\n      listen: 127.0.0.1\n      port: ${await freePort()}\n  outputs:\n    - name: stdout\n      match: '*'\n`,
        /pipeline\.yaml:4:14: http_port: 127\.0\.0\.1:\d+ is already in use \(EADDRINUSE\)/,
      ],
    ];
    for (const [yaml, want] of cases) {
      writeFileSync(file, yaml);
      const r = await runCli(['run', '-c', file]);
      assert.equal(r.code, 1, r.stderr);
      const errorLines = r.stderr.split('\n').filter((l) => l && !l.startsWith('{'));
      assert.equal(errorLines.length, 1, r.stderr);
      assert.match(`${errorLines[0]}\n`, want);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  } finally {
    busy.close();
  }
});
