/**
 * Every command in README.md's ```sh blocks runs here, in README order, so the README cannot show
 * a command that does not work. `node bin/logwarden.js …` lines run as child processes; `npm …`
 * lines are checked against package.json (and `npm start` runs its pipeline as a daemon); the few
 * plain shell lines of the tour (cat, tail, curl) have an explicit equivalent below. A README line
 * that is none of these fails the test: a new kind of command needs a new entry here.
 *
 * The daemon runs from a temporary copy of pipelines/, examples/ and rules/ laid out as in the
 * repository (pipelines/default.yaml writes to ../data), on free ports, so the repository's data/
 * is never written and parallel runs do not collide.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, runCli, startDaemon, type Daemon } from '../support/cli.js';
import { repoRoot } from '../support/paths.js';

/** The ports README.md shows, as pipelines/default.yaml defaults them, and the env vars that move them. */
const DEFAULT_PORTS = { forward: 24224, http: 2020, webhook: 9765 } as const;

interface Ports {
  forward: number;
  http: number;
  webhook: number;
}

/** One shell command of README.md: its text as written, and the block's position for messages. */
interface ReadmeCommand {
  text: string;
  line: number;
}

/** Commands of the ```sh blocks: comments stripped, `\` continuations joined, `&&` chains split. */
export function readmeCommands(markdown: string): ReadmeCommand[] {
  const out: ReadmeCommand[] = [];
  const lines = markdown.split('\n');
  let inSh = false;
  let pending = '';
  let pendingLine = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const fence = /^\s*```(\S*)/.exec(raw);
    if (fence) {
      if (inSh) {
        assert.equal(pending, '', `README.md:${pendingLine}: a command ends in '\\' at the end of its block`);
        inSh = false;
      } else inSh = fence[1] === 'sh' || fence[1] === 'bash' || fence[1] === 'shell' || fence[1] === 'console';
      continue;
    }
    if (!inSh) continue;
    const text = stripComment(raw).trim();
    if (!pending) pendingLine = i + 1;
    if (text.endsWith('\\')) {
      pending += `${text.slice(0, -1).trim()} `;
      continue;
    }
    const full = (pending + text).trim();
    pending = '';
    if (!full) continue;
    for (const part of full.split('&&')) out.push({ text: part.trim().replace(/\s+/g, ' '), line: pendingLine });
  }
  return out;
}

/** Removes a `#` comment: a `#` at the start or after whitespace, outside quotes. */
function stripComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

/** Splits a command into words (single and double quotes); shell operators are refused. */
function words(cmd: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let quote: string | null = null;
  for (const c of cmd) {
    if (quote) {
      if (c === quote) quote = null;
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) out.push(cur);
      cur = '';
      has = false;
    } else if ('|<>;`$&'.includes(c)) {
      throw new Error(`shell syntax '${c}' in a logwarden command: ${cmd}`);
    } else cur += c;
  }
  assert.equal(quote, null, `unterminated quote in ${cmd}`);
  if (has || cur) out.push(cur);
  return out;
}

/** README's ports replaced by the test's. */
function withPorts(text: string, ports: Ports): string {
  return text
    .replace(new RegExp(`\\b${DEFAULT_PORTS.forward}\\b`, 'g'), String(ports.forward))
    .replace(new RegExp(`\\b${DEFAULT_PORTS.http}\\b`, 'g'), String(ports.http))
    .replace(new RegExp(`\\b${DEFAULT_PORTS.webhook}\\b`, 'g'), String(ports.webhook));
}

interface Tour {
  work: string;
  ports: Ports;
  daemon: Daemon | undefined;
  /** auditIDs of the events sent to the daemon so far. */
  sent: string[];
}

async function waitFor<T>(what: string, f: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function needDaemon(t: Tour, cmd: string): Daemon {
  assert.ok(t.daemon, `'${cmd}' needs the running pipeline, but README.md shows it before npm start`);
  return t.daemon;
}

/**
 * The plain shell lines README.md may show, each with what it is meant to show checked in Node.
 * Keys are the lines as written in README.md (comments stripped, spaces collapsed).
 */
type ShellCheck = (t: Tour, cmd: string) => Promise<void>;
const SHELL_LINES: Record<string, ShellCheck> = {
  // The alerts file of default.yaml: Falco JSON lines, one per alert, also on npm start's stdout.
  'cat data/falco': async (t, cmd) => {
    const d = needDaemon(t, cmd);
    const file = join(t.work, 'data', 'falco');
    const alerts = await waitFor('data/falco', () => (existsSync(file) && readFileSync(file, 'utf8').trim() ? jsonLines(readFileSync(file, 'utf8')) : undefined));
    assert.ok(alerts.length >= 1);
    for (const a of alerts) {
      assert.equal(typeof a.rule, 'string');
      assert.equal(a.source, 'k8s_audit');
      assert.match(String(a.output), new RegExp(String(a.priority)));
      await waitFor(`alert ${String(a.rule)} on npm start's stdout`, () => (d.logs.some((l) => l.includes(`"rule":${JSON.stringify(a.rule)}`)) ? true : undefined));
    }
  },
  // The kept events: JSON lines carrying the sent events, with the field the modify filter adds.
  'tail -c 300 data/kube.audit': async (t, cmd) => {
    needDaemon(t, cmd);
    const file = join(t.work, 'data', 'kube.audit');
    const events = await waitFor('data/kube.audit', () => (existsSync(file) && readFileSync(file, 'utf8').trim() ? jsonLines(readFileSync(file, 'utf8')) : undefined));
    assert.ok(t.sent.length > 0, 'nothing was sent before reading data/kube.audit');
    for (const id of t.sent)
      assert.ok(
        events.some((e) => e.auditID === id),
        `event ${id} not in data/kube.audit`,
      );
    for (const e of events) assert.equal(e.cluster, 'local');
    const tail = readFileSync(file).subarray(-300).toString('utf8');
    assert.ok(tail.length > 0);
  },
  // The metrics page with the alert counter of the detect filter.
  'curl -s http://127.0.0.1:2020/metrics | grep logwarden_detect_alerts_total': async (t, cmd) => {
    needDaemon(t, cmd);
    const res = await fetch(`http://127.0.0.1:${t.ports.http}/metrics`);
    assert.equal(res.status, 200);
    const lines = (await res.text()).split('\n').filter((l) => l.includes('logwarden_detect_alerts_total'));
    const samples = lines.filter((l) => !l.startsWith('#'));
    assert.ok(samples.length >= 1, lines.join('\n'));
    const total = samples.reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    const alerts = jsonLines(readFileSync(join(t.work, 'data', 'falco'), 'utf8'));
    assert.equal(total, alerts.length, 'the counter counts the alerts in data/falco');
  },
};

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

async function startPipeline(t: Tour, script: string): Promise<void> {
  // npm start runs `node bin/logwarden.js run -c FILE`: the same FILE, from the working copy.
  const m = /^node bin\/logwarden\.js run -c (\S+)$/.exec(script);
  assert.ok(m, `npm start is '${script}', expected 'node bin/logwarden.js run -c PIPELINE'`);
  assert.equal(t.daemon, undefined, 'npm start twice');
  t.daemon = await startDaemon(join(t.work, m[1]!), {
    FORWARD_PORT: String(t.ports.forward),
    HTTP_PORT: String(t.ports.http),
    WEBHOOK_PORT: String(t.ports.webhook),
    LOKI_URL: '',
    ALERTMANAGER_URL: '',
  });
  const ready = await fetch(`http://127.0.0.1:${t.ports.http}/readyz`);
  assert.equal(ready.status, 200);
}

async function runNpm(t: Tour, argv: string[], cmd: string): Promise<void> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'ci':
      assert.deepEqual(rest, [], cmd);
      assert.ok(existsSync(join(repoRoot, 'package-lock.json')), 'npm ci needs package-lock.json');
      return;
    case 'start':
    case 'test':
      assert.deepEqual(rest, [], cmd);
      assert.ok(pkg.scripts[sub], `package.json has no '${sub}' script`);
      if (sub === 'start') await startPipeline(t, pkg.scripts.start!);
      return;
    case 'run':
      assert.equal(rest.length, 1, cmd);
      assert.ok(pkg.scripts[rest[0]!], `package.json has no '${rest[0]}' script`);
      return;
    default:
      assert.fail(`README.md shows '${cmd}': not an npm command this test knows`);
  }
}

/** Runs one logwarden command and checks what its kind promises. */
async function runLogwarden(t: Tour, args: string[], cmd: string): Promise<void> {
  const r = await runCli(args, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${cmd}\nexit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const sub = args[0];
  const files = (flag: string) => args.flatMap((a, i) => (args[i - 1] === flag ? [join(repoRoot, a)] : []));
  if (sub === 'send') {
    needDaemon(t, cmd);
    const summary = JSON.parse(r.stdout) as { records: number; sent: number; failed: number; acked?: number };
    assert.ok(summary.records > 0);
    assert.equal(summary.sent, summary.records);
    assert.equal(summary.failed, 0);
    // With --ack a record counts as sent only once its chunk was acked, i.e. committed by every output.
    if (args.includes('--ack')) assert.equal(summary.acked, summary.records);
    const file = join(repoRoot, args[args.length - 1]!);
    for (const e of jsonLines(readFileSync(file, 'utf8'))) if (typeof e.auditID === 'string') t.sent.push(e.auditID);
  } else if (sub === 'replay') {
    const out = jsonLines(r.stdout);
    assert.ok(out.length > 0, 'replay printed nothing');
    for (const e of out) assert.deepEqual(Object.keys(e), ['tag', 'time', 'record']);
    if (args.includes('--trace')) assert.match(r.stderr, /trace /);
  } else if (sub === 'detect' && (args.includes('-e') || args.includes('--events'))) {
    const alerts = jsonLines(r.stdout);
    assert.ok(alerts.length > 0, `no alert from ${files('-e').join(', ')}`);
    for (const a of alerts) assert.equal(a.source, 'k8s_audit');
    assert.match(r.stderr, /Events detected: [1-9]/);
  } else {
    assert.ok(r.stdout.trim(), `${cmd} printed nothing`);
  }
}

test('README.md: every shell command it shows runs and does what it says', async () => {
  const commands = readmeCommands(readFileSync(join(repoRoot, 'README.md'), 'utf8'));
  assert.ok(commands.length >= 5, 'README.md has shell blocks');
  // The quick start stays `npm ci && npm start` and `npm test`.
  assert.deepEqual(
    commands.slice(0, 3).map((c) => c.text),
    ['npm ci', 'npm start', 'npm test'],
  );

  const work = mkdtempSync(join(tmpdir(), 'logwarden-readme-'));
  for (const dir of ['pipelines', 'examples', 'rules']) cpSync(join(repoRoot, dir), join(work, dir), { recursive: true });
  const ports: Ports = { forward: await freePort(), http: await freePort(), webhook: await freePort() };
  const tour: Tour = { work, ports, daemon: undefined, sent: [] };
  const ran: string[] = [];
  try {
    for (const c of commands) {
      const where = `README.md:${c.line}: ${c.text}`;
      const shell: ShellCheck | undefined = Object.hasOwn(SHELL_LINES, c.text) ? SHELL_LINES[c.text] : undefined;
      try {
        const argv = shell ? [] : words(withPorts(c.text, ports));
        if (shell) await shell(tour, c.text);
        else if (argv[0] === 'node' && argv[1] === 'bin/logwarden.js') await runLogwarden(tour, argv.slice(2), c.text);
        else if (argv[0] === 'npm') await runNpm(tour, argv.slice(1), c.text);
        else assert.fail('neither a logwarden command, an npm command nor a shell line this test checks (add it to SHELL_LINES)');
      } catch (e) {
        (e as Error).message = `${where}\n${(e as Error).message}`;
        throw e;
      }
      ran.push(c.text);
    }
    assert.ok(tour.daemon, 'README.md never starts the pipeline');
    assert.equal(await tour.daemon.stop('SIGTERM'), 0, 'npm start exits 0 on SIGTERM');
    tour.daemon = undefined;
    // Every shell line of the mapping is still in README.md (an unused entry is a stale check).
    for (const k of Object.keys(SHELL_LINES)) assert.ok(ran.includes(k), `SHELL_LINES has '${k}', which README.md no longer shows`);
  } finally {
    if (tour.daemon) await tour.daemon.stop('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  }
});

test('README commands: comments, continuations and && chains are read as a shell would', () => {
  const md = ['text', '```sh', 'npm ci && npm start   # two', '# only a comment', 'node bin/logwarden.js detect \\', '  -e "a b.json"', '```', '```yaml', 'not: a command', '```'].join('\n');
  assert.deepEqual(
    readmeCommands(md).map((c) => [c.text, c.line]),
    [
      ['npm ci', 3],
      ['npm start', 3],
      ['node bin/logwarden.js detect -e "a b.json"', 5],
    ],
  );
  assert.deepEqual(words('node bin/logwarden.js detect -e "a b.json"'), ['node', 'bin/logwarden.js', 'detect', '-e', 'a b.json']);
  assert.throws(() => words('node bin/logwarden.js detect | head'), /shell syntax/);
});
