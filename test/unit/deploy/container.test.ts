import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../../support/paths.js';

const entrypoint = join(repoRoot, 'deploy', 'container', 'entrypoint.sh');
const healthcheck = join(repoRoot, 'deploy', 'container', 'healthcheck.mjs');

/** Runs the entrypoint with a fake cgroup tree and returns the node command line it builds. */
function nodeCommand(opts: { v2?: string; v1?: string; env?: Record<string, string> }, args = ['run', '-c', '/etc/logwarden/pipeline.yaml']): string {
  const root = mkdtempSync(join(tmpdir(), 'cgroup-'));
  if (opts.v2 !== undefined) writeFileSync(join(root, 'memory.max'), `${opts.v2}\n`);
  if (opts.v1 !== undefined) {
    mkdirSync(join(root, 'memory'));
    writeFileSync(join(root, 'memory', 'memory.limit_in_bytes'), `${opts.v1}\n`);
  }
  return execFileSync('sh', [entrypoint, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, LOGWARDEN_CGROUP_ROOT: root, LOGWARDEN_ENTRYPOINT_PRINT: '1', ...opts.env },
  }).trim();
}

describe('container entrypoint', () => {
  const MiB = 1024 * 1024;

  it('sizes the heap from a cgroup v2 limit', () => {
    // 512 MiB: semi-space 32, old space 512*70% - 3*32 = 262
    assert.equal(nodeCommand({ v2: String(512 * MiB) }), 'node --max-semi-space-size=32 --max-old-space-size=262 /opt/logwarden/bin/logwarden.js run -c /etc/logwarden/pipeline.yaml');
    // 2 GiB: semi-space 64, old space 2048*70% - 192 = 1241
    assert.match(nodeCommand({ v2: String(2048 * MiB) }), /--max-semi-space-size=64 --max-old-space-size=1241 /);
    assert.match(nodeCommand({ v2: String(256 * MiB) }), /--max-semi-space-size=16 --max-old-space-size=131 /);
  });

  it('reads cgroup v1 and treats its huge sentinel as no limit', () => {
    assert.match(nodeCommand({ v1: String(1024 * MiB) }), /--max-semi-space-size=64 --max-old-space-size=524 /);
    const unlimited = nodeCommand({ v1: '9223372036854771712' });
    assert.ok(!unlimited.includes('--max-old-space-size'), unlimited);
    assert.match(unlimited, /--max-semi-space-size=64/);
  });

  it('leaves the heap alone without a limit, and never overrides NODE_OPTIONS', () => {
    assert.equal(nodeCommand({ v2: 'max' }), 'node --max-semi-space-size=64 /opt/logwarden/bin/logwarden.js run -c /etc/logwarden/pipeline.yaml');
    const own = nodeCommand({ v2: String(512 * MiB), env: { NODE_OPTIONS: '--max-old-space-size=100 --max-semi-space-size=8' } });
    assert.equal(own, 'node /opt/logwarden/bin/logwarden.js run -c /etc/logwarden/pipeline.yaml');
    assert.match(nodeCommand({ v2: String(512 * MiB), env: { LOGWARDEN_HEAP_PERCENT: '50' } }), /--max-old-space-size=160 /);
  });

  it('passes arguments through unchanged', () => {
    assert.match(nodeCommand({}, ['validate', '-c', '/x y.yaml']), /logwarden\.js validate -c \/x y\.yaml$/);
  });
});

describe('container healthcheck', () => {
  async function check(status: number | 'closed'): Promise<number> {
    const server = createServer((req, res) => {
      res.statusCode = req.url === '/healthz' && status !== 'closed' ? status : 404;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    if (status === 'closed') await new Promise((r) => server.close(r));
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, [healthcheck], {
        env: { LOGWARDEN_HEALTH_URL: `http://127.0.0.1:${port}/healthz`, LOGWARDEN_HEALTH_TIMEOUT_MS: '2000' },
        stdio: 'ignore',
      });
      child.on('exit', (c) => resolve(c ?? -1));
    });
    if (status !== 'closed') server.close();
    return code;
  }

  it('exits 0 on 200, 1 on 503 and on a refused connection', async () => {
    assert.equal(await check(200), 0);
    assert.equal(await check(503), 1);
    assert.equal(await check('closed'), 1);
  });
});

describe('Containerfile', () => {
  const text = readFileSync(join(repoRoot, 'deploy', 'Containerfile'), 'utf8');
  const lines = text.split('\n').filter((l) => !l.startsWith('#'));
  const runtime = lines.slice(lines.findIndex((l) => /^FROM .* AS runtime/.test(l))).join('\n');

  it('builds native addons, TypeScript and the web page in one stage; the runtime gets production dependencies only', () => {
    assert.match(text, /^FROM node:20-bookworm AS build$/m);
    // Install scripts must run: re2 and better-sqlite3 are built from source, `prepare` compiles.
    assert.match(text, /RUN npm ci --no-audit --no-fund/);
    assert.doesNotMatch(text, /--ignore-scripts/);
    assert.match(text, /npm prune --omit=dev/);
    assert.match(text, /test -d dist\/ui/);
    assert.match(runtime, /COPY --from=build \/src\/node_modules \.\/node_modules/);
    assert.match(runtime, /COPY --from=build \/src\/dist\/src \.\/dist\/src/);
    assert.match(runtime, /COPY --from=build \/src\/dist\/ui \.\/dist\/ui/);
    assert.doesNotMatch(runtime, /npm ci/);
  });

  it('ships what the manifests reference: bin, rules, pipelines, the entrypoint and healthcheck', () => {
    assert.match(runtime, /^WORKDIR \/opt\/logwarden$/m);
    for (const dir of ['bin', 'rules', 'pipelines']) assert.match(runtime, new RegExp(`^COPY ${dir} \\./${dir}$`, 'm'));
    // The pipelines in deploy/ load the bundled rules from here.
    const pipeline = readFileSync(join(repoRoot, 'deploy/kustomize/base/config/pipeline.yaml'), 'utf8');
    assert.match(pipeline, /\/opt\/logwarden\/rules\/k8s_audit_rules\.yaml/);
    assert.match(runtime, /ENTRYPOINT \["\/opt\/logwarden\/deploy\/container\/entrypoint\.sh"\]/);
    assert.match(runtime, /CMD \["run", "-c", "\/etc\/logwarden\/pipeline\.yaml"\]/);
  });

  it('runs as uid 10001, exposes the forward and HTTP ports, and checks health with node', () => {
    assert.match(runtime, /^ARG LOGWARDEN_UID=10001$/m);
    assert.match(runtime, /^USER \$\{LOGWARDEN_UID\}:\$\{LOGWARDEN_UID\}$/m);
    assert.match(runtime, /^EXPOSE 24224 2020$/m);
    assert.match(runtime, /^HEALTHCHECK .*\n\s+CMD \["node", "\/opt\/logwarden\/deploy\/container\/healthcheck\.mjs"\]/m);
    assert.ok(!/curl|wget/.test(runtime), 'no curl or wget in the runtime stage');
    assert.match(runtime, /^VOLUME \["\/var\/lib\/logwarden"\]$/m);
  });

  // The build context is the repository minus Containerfile.dockerignore; a COPY of an
  // excluded path fails the build ("not found").
  const ignore = readFileSync(join(repoRoot, 'deploy', 'Containerfile.dockerignore'), 'utf8');
  const copies = lines
    .filter((l) => /^COPY\s/.test(l) && !/--from=/.test(l))
    .map((l) =>
      l
        .trim()
        .split(/\s+/)
        .slice(1)
        .filter((w) => !w.startsWith('--')),
    )
    .map((words) => ({ sources: words.slice(0, -1), dest: words.at(-1)! }));

  it('every COPY source is in the build context: present, and not excluded by Containerfile.dockerignore', () => {
    assert.ok(copies.length >= 8);
    const excluded = dockerignore(ignore);
    for (const { sources } of copies) {
      for (const src of sources) {
        assert.ok(existsSync(join(repoRoot, src)), `COPY ${src}: missing`);
        for (const f of filesUnder(src)) assert.ok(!excluded(f), `COPY ${src}: ${f} is excluded by Containerfile.dockerignore`);
      }
    }
    // The matcher itself, on the patterns that matter.
    assert.ok(excluded('test/unit/x.ts') && excluded('bench/run.ts') && excluded('node_modules/re2/x') && excluded('a/b.cpuprofile'));
    assert.ok(!excluded('src/cli/main.ts') && !excluded('package-lock.json') && !excluded('deploy/container/entrypoint.sh'));
  });

  it('the build stage compiles with only what it copies (tsc -p . as npm ci runs it)', () => {
    const build = lines.slice(
      0,
      lines.findIndex((l) => /^FROM .* AS runtime/.test(l)),
    );
    const ctx = mkdtempSync(join(tmpdir(), 'lw-build-'));
    try {
      for (const l of build.filter((x) => /^COPY\s/.test(x))) {
        const words = l.trim().split(/\s+/).slice(1);
        for (const src of words.slice(0, -1)) {
          const dest = words.at(-1)!.endsWith('/') || words.length > 3 ? join(ctx, words.at(-1)!, src.split('/').at(-1)!) : join(ctx, words.at(-1)!);
          mkdirSync(dirname(dest), { recursive: true });
          cpSync(join(repoRoot, src), dest, { recursive: true });
        }
      }
      symlinkSync(join(repoRoot, 'node_modules'), join(ctx, 'node_modules'));
      execFileSync(join(repoRoot, 'node_modules', '.bin', 'tsc'), ['-p', '.'], { cwd: ctx, stdio: 'pipe' });
      assert.ok(existsSync(join(ctx, 'dist', 'src', 'cli', 'main.js')));
    } finally {
      rmSync(ctx, { recursive: true, force: true });
    }
  });
});

/** Repository-relative files under a path (the path itself for a file), without dependencies or build output. */
function filesUnder(rel: string): string[] {
  const abs = join(repoRoot, rel);
  if (!statSync(abs).isDirectory()) return [rel];
  return readdirSync(abs)
    .filter((n) => n !== 'node_modules' && n !== 'dist')
    .flatMap((n) => filesUnder(`${rel}/${n}`));
}

/**
 * The .dockerignore rules: one pattern a line, `#` comments, `!` re-includes, `*` and `?` within
 * a path element, `**` across elements; a pattern that matches a folder excludes what is in it;
 * the last matching line wins.
 */
function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pat = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, '');
      const re = pat
        .split('/')
        .map((part) =>
          part === '**'
            ? '.*'
            : part
                .replace(/[.+^${}()|[\]\\]/g, '\\$&')
                .replace(/\*/g, '[^/]*')
                .replace(/\?/g, '[^/]'),
        )
        .join('/')
        .replace(/\.\*\//g, '(?:.*/)?');
      return { negate, re: new RegExp(`^${re}(?:/.*)?$`) };
    });
  return (path) => {
    let out = false;
    for (const r of rules) if (r.re.test(path)) out = !r.negate;
    return out;
  };
}
