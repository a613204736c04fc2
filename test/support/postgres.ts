/**
 * A throw-away PostgreSQL cluster for end-to-end tests, from Debian's `postgresql` package
 * (test/e2e/setup.sh installs it): initdb into a temporary directory, the server on a free
 * loopback port (its unix socket in the same directory), stopped and started on demand, removed
 * at the end. As root the server runs as the `postgres` user the package creates (PostgreSQL
 * refuses to run as root).
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './harness.js';

const run = promisify(execFile);

/** The newest installed server's bin directory (/usr/lib/postgresql/N/bin), or undefined. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : undefined;
}

export class PgCluster {
  readonly dir: string;
  readonly data: string;
  port = 0;
  private readonly asPostgres: boolean;

  private constructor(private readonly bin: string) {
    this.dir = mkdtempSync(join(tmpdir(), 'logwarden-pg-'));
    this.data = join(this.dir, 'data');
    this.asPostgres = userInfo().uid === 0;
  }

  /** A new cluster with a `logwarden` superuser (password `secret`) and database, started. */
  static async create(): Promise<PgCluster> {
    const bin = postgresBinDir();
    if (!bin) throw new Error('PostgreSQL is not installed: run bash test/e2e/setup.sh');
    const c = new PgCluster(bin);
    if (c.asPostgres) {
      const { uid, gid } = await c.postgresIds();
      chmodSync(c.dir, 0o700);
      chownSync(c.dir, uid, gid);
    }
    const pw = join(c.dir, 'pw');
    writeFileSync(pw, 'secret\n');
    if (c.asPostgres) chownSync(pw, ...(Object.values(await c.postgresIds()) as [number, number]));
    await c.exec('initdb', ['-D', c.data, '-U', 'logwarden', '--pwfile', pw, '-A', 'scram-sha-256', '--no-sync', '-E', 'UTF8', '--locale', 'C']);
    c.port = await freePort();
    await c.start();
    await c.exec('createdb', ['-h', '127.0.0.1', '-p', String(c.port), '-U', 'logwarden', 'logwarden'], { PGPASSWORD: 'secret' });
    return c;
  }

  /** The URL logwarden is given (password left to PGPASSWORD unless `withPassword`). */
  url(withPassword = false, database = 'logwarden'): string {
    return `postgres://logwarden${withPassword ? ':secret' : ''}@127.0.0.1:${this.port}/${database}`;
  }

  /** Another empty database in the cluster. */
  async createDatabase(name: string): Promise<void> {
    await this.exec('createdb', ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'logwarden', name], { PGPASSWORD: 'secret' });
  }

  private async postgresIds(): Promise<{ uid: number; gid: number }> {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: g } = await run('id', ['-g', 'postgres']);
    return { uid: Number(stdout.trim()), gid: Number(g.trim()) };
  }

  private async exec(tool: string, args: string[], env: Record<string, string> = {}): Promise<string> {
    const path = join(this.bin, tool);
    const [cmd, argv] = this.asPostgres ? ['runuser', ['-u', 'postgres', '--', 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), path, ...args]] : [path, args];
    const { stdout } = await run(cmd as string, argv as string[], { env: { ...process.env, ...env }, cwd: this.dir });
    return stdout;
  }

  async start(): Promise<void> {
    await this.exec('pg_ctl', [
      '-D',
      this.data,
      '-l',
      join(this.dir, 'server.log'),
      '-w',
      '-t',
      '60',
      '-o',
      `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${this.dir} -c fsync=off -c max_connections=50`,
      'start',
    ]);
  }

  /** Stops the server (fast: connections are terminated, as in a database restart). */
  async stop(): Promise<void> {
    await this.exec('pg_ctl', ['-D', this.data, '-m', 'fast', '-w', '-t', '60', 'stop']);
  }

  /** Runs SQL with psql, returns the unaligned output. */
  async sql(query: string, database = 'logwarden'): Promise<string> {
    const out = await this.exec('psql', ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'logwarden', '-d', database, '-At', '-v', 'ON_ERROR_STOP=1', '-c', query], { PGPASSWORD: 'secret' });
    return out.trim();
  }

  async destroy(): Promise<void> {
    await this.stop().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
