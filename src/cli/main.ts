/** `logwarden <command> [options]`. */
import { commands } from './commands.js';
import { UsageError } from './command.js';
import { ConfigErrors, ConfigError } from '../config/errors.js';

function topHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'logwarden — a Fluent Bit-compatible pipeline for Kubernetes audit logs',
    '',
    'Usage: logwarden <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "Run 'logwarden <command> --help' for a command's options.",
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${topHelp()}\n`);
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') {
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`logwarden ${pkg.version}\n`);
    return 0;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`logwarden: unknown command '${name}'\n\n${topHelp()}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${cmd.usage}\n`);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`logwarden ${name}: ${e.message}\n\n${cmd.usage}\n`);
      return 2;
    }
    if (e instanceof ConfigErrors || e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      return 1;
    }
    process.stderr.write(`logwarden ${name}: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}
