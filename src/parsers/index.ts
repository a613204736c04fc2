/**
 * Named parsers: the built-in ones (Fluent Bit's conf/parsers.conf), `parsers:` entries of the
 * pipeline file, and `service.parsers_file` files (YAML with a `parsers:` list, or Fluent Bit's
 * classic `[PARSER]` format). Built once at load time; every error is a ConfigError with the
 * file:line:col of the offending key.
 *
 * Plugins reach them through `ctx.parsers.get(name)`, which returns a LogParser whose
 * `parse(text)` gives `{ record, time? }` or null.
 */
import { existsSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { ConfigError, ConfigErrors, formatPos, type SourcePos } from '../config/errors.js';
import { loadConfigFile } from '../config/load.js';
import { applyOptions, type RawSection } from '../config/schema.js';
import type { ServiceConfig } from '../config/service.js';
import type { LogParser, ParserRegistry } from '../core/plugin.js';
import { builtinSections } from './builtin.js';
import { readClassicParsersFile } from './classic.js';
import { createParser, parserOptions } from './parser.js';

export { createParser, parserOptions, type ParserConfig } from './parser.js';

export class Parsers implements ParserRegistry {
  private readonly byName = new Map<string, LogParser>();

  add(parser: LogParser): void {
    this.byName.set(parser.name, parser);
  }

  get(name: string): LogParser | undefined {
    return this.byName.get(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  names(): string[] {
    return [...this.byName.keys()].sort();
  }
}

/** Reads one parsers_file; errors are collected. */
function readParsersFile(file: string, from: SourcePos, errors: ConfigError[]): RawSection[] {
  if (!existsSync(file)) {
    errors.push(new ConfigError(`parsers file not found: ${file}`, from, 'parsers_file'));
    return [];
  }
  const ext = extname(file).toLowerCase();
  if (ext === '.yaml' || ext === '.yml') {
    try {
      const loaded = loadConfigFile(file, process.env);
      const extra = loaded.inputs.length + loaded.filters.length + loaded.outputs.length + Object.keys(loaded.service.values).length;
      if (extra > 0) {
        errors.push(new ConfigError(`a parsers file holds only a parsers: list; ${file} also has service or pipeline sections`, from, 'parsers_file'));
      }
      return loaded.parsers;
    } catch (e) {
      if (e instanceof ConfigErrors) errors.push(...e.errors);
      else errors.push(new ConfigError(`cannot read parsers file ${file}: ${(e as Error).message}`, from, 'parsers_file'));
      return [];
    }
  }
  try {
    return readClassicParsersFile(file, process.env, errors);
  } catch (e) {
    errors.push(new ConfigError(`cannot read parsers file ${file}: ${(e as Error).message}`, from, 'parsers_file'));
    return [];
  }
}

/**
 * Registry.buildParsers: built-ins, then `parsers:` sections, then parsers_file files in order.
 * A name defined twice by the configuration is an error; a configured name replaces a built-in.
 */
export function buildParsers(sections: RawSection[], service: ServiceConfig, errors: ConfigError[], serviceSection?: RawSection): Parsers {
  const parsers = new Parsers();
  for (const section of builtinSections()) {
    parsers.add(createParser(applyOptions(parserOptions, section, 'parser', []), section));
  }

  const all = [...sections];
  const files = service.parsers_file ?? [];
  const baseDir = serviceSection?.baseDir ?? process.cwd();
  const filesPos = serviceSection?.valuePos.parsers_file ?? serviceSection?.pos ?? { file: '<config>', line: 1, col: 1 };
  for (const f of files) all.push(...readParsersFile(resolve(baseDir, f), filesPos, errors));

  const definedAt = new Map<string, SourcePos>();
  for (const section of all) {
    const before = errors.length;
    const config = applyOptions(parserOptions, section, 'parser', errors);
    if (errors.length > before) continue;
    const namePos = section.valuePos[Object.keys(section.values).find((k) => k.toLowerCase() === 'name') ?? 'name'] ?? section.pos;
    const first = definedAt.get(config.name);
    if (first) {
      errors.push(new ConfigError(`parser '${config.name}' is already defined at ${formatPos(first)}`, namePos, 'name'));
      continue;
    }
    definedAt.set(config.name, namePos);
    try {
      parsers.add(createParser(config, section));
    } catch (e) {
      if (e instanceof ConfigError) errors.push(e);
      else throw e;
    }
  }
  return parsers;
}
