/**
 * The plan: a loaded config checked against the plugin registry without starting anything. Each
 * section is read by its plugin's option table (names case-insensitive, defaults applied), its
 * match compiled, and its plugin's prepare() run; errors are collected with their positions and
 * thrown together. `validate` stops at the plan and the instances it builds.
 */
import { resolve } from 'node:path';
import { ConfigError, ConfigErrors } from '../config/errors.js';
import type { LoadedConfig, PluginSection } from '../config/load.js';
import { applySchema, canonicalSection, type RawSection } from '../config/schema.js';
import { checkService, serviceOptions, type ServiceConfig } from '../config/service.js';
import { optionTableFor } from './common-options.js';
import { compileMatch, type TagMatcher } from './match.js';
import type { AnyPlugin, ParserRegistry } from './plugin.js';

export interface Registry {
  find(kind: 'input' | 'filter' | 'output', name: string): AnyPlugin | undefined;
  names(kind: 'input' | 'filter' | 'output'): string[];
  /**
   * Builds named parsers from `parsers:` sections and parsers_file (provided by the parser support).
   * `serviceSection` gives parsers_file's position and the directory relative paths resolve against.
   */
  buildParsers?(sections: RawSection[], service: ServiceConfig, errors: ConfigError[], serviceSection?: RawSection): ParserRegistry;
}

export interface PlannedPlugin {
  kind: 'input' | 'filter' | 'output';
  plugin: AnyPlugin;
  id: string;
  config: Record<string, unknown>;
  /** What the plugin's prepare() made of the config when the plan was made (the config itself without one); create() gets it. */
  prepared: unknown;
  raw: RawSection;
  matcher: TagMatcher | null;
}

export interface Plan {
  file: string;
  service: ServiceConfig;
  inputs: PlannedPlugin[];
  filters: PlannedPlugin[];
  outputs: PlannedPlugin[];
  parsers: ParserRegistry;
  /** The raw service section, for positions in errors found when the service starts. */
  serviceSection?: RawSection;
}

const emptyParsers: ParserRegistry = { get: () => undefined, has: () => false, names: () => [] };

/** Validates everything that can be checked without starting anything; throws ConfigErrors. */
export function plan(loaded: LoadedConfig, registry: Registry): Plan {
  const errors: ConfigError[] = [];
  const service = applySchema(serviceOptions, loaded.service, 'service', errors) as ServiceConfig;
  if (service['storage.path']) service['storage.path'] = resolve(loaded.service.baseDir, service['storage.path']);
  if (errors.length === 0) errors.push(...checkService(service, loaded.service));
  const parsers = registry.buildParsers ? registry.buildParsers(loaded.parsers, service, errors, loaded.service) : emptyParsers;
  if (!registry.buildParsers && loaded.parsers.length) {
    errors.push(new ConfigError('parsers are not supported by this build', loaded.parsers[0]!.pos, 'parsers'));
  }
  const counters = new Map<string, number>();
  const ids = new Set<string>();
  const build = (s: PluginSection): PlannedPlugin | null => {
    const plugin = registry.find(s.kind, s.name);
    if (!plugin) {
      const known = registry.names(s.kind);
      errors.push(new ConfigError(`unknown ${s.kind} plugin '${s.name}'; available: ${known.join(', ')}`, s.raw.valuePos.name ?? s.raw.pos, 'name'));
      return null;
    }
    const table = optionTableFor(plugin);
    const before = errors.length;
    const config = applySchema(table, s.raw, `${s.kind} '${s.name}'`, errors);
    // Plugins and the checks below read the section by the table's option names.
    const raw = canonicalSection(table, s.raw);
    const n = counters.get(`${s.kind}:${s.name}`) ?? 0;
    counters.set(`${s.kind}:${s.name}`, n + 1);
    const id = (config.alias as string | undefined) ?? `${s.name}.${n}`;
    if (ids.has(`${s.kind}:${id}`)) errors.push(new ConfigError(`duplicate ${s.kind} alias '${id}'`, raw.valuePos.alias ?? raw.pos, 'alias'));
    ids.add(`${s.kind}:${id}`);
    let matcher: TagMatcher | null = null;
    if (s.kind !== 'input') {
      if (config.match !== undefined && config.match_regex !== undefined) {
        errors.push(new ConfigError('set match or match_regex, not both', raw.keyPos.match_regex ?? raw.pos, 'match_regex'));
      }
      try {
        matcher = compileMatch(config.match as string | undefined, config.match_regex as string | undefined);
      } catch (e) {
        errors.push(new ConfigError(`invalid regular expression: ${(e as Error).message}`, raw.valuePos.match_regex ?? raw.pos, 'match_regex'));
      }
      if (!matcher && errors.length === before) {
        errors.push(new ConfigError(`${s.kind} '${id}' has no match or match_regex, so no event would reach it`, raw.pos, 'match'));
      }
    }
    let prepared: unknown = config;
    if (errors.length === before && plugin.prepare) {
      try {
        prepared = plugin.prepare(config, raw);
      } catch (e) {
        if (e instanceof ConfigError) errors.push(e);
        else if (e instanceof ConfigErrors) errors.push(...e.errors);
        else errors.push(new ConfigError((e as Error).message, raw.pos));
      }
    }
    return { kind: s.kind, plugin, id, config, prepared, raw, matcher };
  };
  const inputs = loaded.inputs.map(build).filter((x): x is PlannedPlugin => x !== null);
  const filters = loaded.filters.map(build).filter((x): x is PlannedPlugin => x !== null);
  const outputs = loaded.outputs.map(build).filter((x): x is PlannedPlugin => x !== null);
  if (errors.length === 0) checkStorage(loaded, service, inputs, outputs, errors);
  if (errors.length) throw new ConfigErrors(errors);
  return { file: loaded.file, service, inputs, filters, outputs, parsers, serviceSection: loaded.service };
}

/** Storage options only mean something with a filesystem-buffered input; set without one, they are errors. */
function checkStorage(loaded: LoadedConfig, service: ServiceConfig, inputs: PlannedPlugin[], outputs: PlannedPlugin[], errors: ConfigError[]): void {
  const fs = inputs.filter((i) => i.config['storage.type'] === 'filesystem');
  for (const i of fs) {
    if (!service['storage.path']) {
      errors.push(new ConfigError(`storage.type filesystem needs service storage.path (the directory of the buffer)`, i.raw.valuePos['storage.type'] ?? i.raw.pos, 'storage.type'));
    }
  }
  const svc = loaded.service;
  if (fs.length === 0) {
    for (const k of ['storage.sync', 'storage.checksum', 'storage.max_chunks_up', 'storage.backlog.mem_limit']) {
      if (svc.values[k] !== undefined) {
        errors.push(new ConfigError(`${k} has no effect: no input has storage.type filesystem`, svc.keyPos[k] ?? svc.pos, k));
      }
    }
  }
  for (const o of outputs) {
    for (const k of ['storage.total_limit_size', 'storage.overflow_action']) {
      if (o.config[k] !== undefined && fs.length === 0) {
        errors.push(new ConfigError(`${k} has no effect: no input has storage.type filesystem`, o.raw.keyPos[k] ?? o.raw.pos, k));
      }
    }
    if (fs.length && o.config['storage.overflow_action'] !== undefined && o.config['storage.total_limit_size'] === undefined) {
      errors.push(
        new ConfigError('storage.overflow_action needs a storage.total_limit_size above 0 (off, 0 or none: no limit)', o.raw.keyPos['storage.overflow_action'] ?? o.raw.pos, 'storage.overflow_action'),
      );
    }
  }
}
