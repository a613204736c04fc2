/**
 * Where the real peer programs are: Fluent Bit and Loki (test/e2e/setup.sh installs them and
 * writes their folder to test-artifacts/peers-bin), and Debian's promtool. A missing binary is an
 * error naming the setup script, never a skipped test.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { repoRoot } from './paths.js';

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not in this folder
    }
  }
  return undefined;
}

/** The absolute path of a peer binary (`fluent-bit`, `loki`, `promtool`, ...). */
export function peerBinary(name: string): string {
  let recorded: string | undefined;
  try {
    recorded = readFileSync(join(repoRoot, 'test-artifacts', 'peers-bin'), 'utf8').trim();
  } catch {
    recorded = undefined;
  }
  if (recorded) {
    const p = join(recorded, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // fall through to PATH
    }
  }
  const found = onPath(name);
  if (found) return found;
  throw new Error(`${name} not found: run test/e2e/setup.sh (it installs the real peers) or put ${name} on PATH`);
}
