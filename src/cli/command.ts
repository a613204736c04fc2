/** A CLI command: one file per command under src/cli/, listed in src/cli/commands.ts. */
export interface Command {
  name: string;
  summary: string;
  /** Full --help text: usage line, options, examples. */
  usage: string;
  /** Runs the command; resolves to the process exit code. */
  run(args: string[]): Promise<number>;
}

/** A minimal flag parser: `-x V`, `--long V`, `--long=V`, boolean flags, repeated flags, positionals. */
export interface ParsedArgs {
  flags: Map<string, string[]>;
  positionals: string[];
}

export class UsageError extends Error {}

export function parseArgs(args: string[], spec: { values: Record<string, string>; booleans: Record<string, string> }): ParsedArgs {
  const flags = new Map<string, string[]>();
  const positionals: string[] = [];
  const canon = (f: string) => spec.values[f] ?? spec.booleans[f];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith('-') && a.length > 1) {
      const eq = a.indexOf('=');
      const flag = eq > 0 ? a.slice(0, eq) : a;
      const name = canon(flag);
      if (!name) throw new UsageError(`unknown option ${flag}`);
      if (spec.booleans[flag]) {
        flags.set(name, ['true']);
        continue;
      }
      const value = eq > 0 ? a.slice(eq + 1) : args[++i];
      if (value === undefined) throw new UsageError(`option ${flag} needs a value`);
      const list = flags.get(name) ?? [];
      list.push(value);
      flags.set(name, list);
    } else positionals.push(a);
  }
  return { flags, positionals };
}
