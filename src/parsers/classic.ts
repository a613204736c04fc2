/**
 * Reads Fluent Bit's classic parsers files (`parsers.conf`): `[PARSER]` sections of `Key Value`
 * lines, keys case-insensitive, `#` comment lines, `@SET name=value` variables and `${VAR}`
 * references, `@INCLUDE file`. Each section becomes a RawSection with the file:line:col of every
 * key and value, so parser errors point into the file.
 *
 * A key written twice in one section keeps its first value, as Fluent Bit reads it (its own
 * parsers.conf lists Time_Format twice for syslog-rfc3164).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../config/errors.js';
import { substituteEnv } from '../config/load.js';
import type { RawSection } from '../config/schema.js';

export function readClassicParsersFile(file: string, env: Record<string, string | undefined>, errors: ConfigError[], seen: Set<string> = new Set()): RawSection[] {
  const abs = resolve(file);
  const sections: RawSection[] = [];
  if (seen.has(abs)) {
    errors.push(new ConfigError(`@INCLUDE cycle: ${abs} is already included`, { file: abs, line: 1, col: 1 }));
    return sections;
  }
  seen.add(abs);
  const text = readFileSync(abs, 'utf8');
  const vars: Record<string, string | undefined> = { ...env };
  let current: RawSection | null = null;
  let skipping = false;
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n]!;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const col = raw.indexOf(line) + 1;
    const pos = { file: abs, line: n + 1, col };
    if (line.startsWith('@')) {
      const m = /^@(\S+)\s*(.*)$/.exec(line)!;
      const cmd = m[1]!.toUpperCase();
      if (cmd === 'SET') {
        const kv = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(m[2]!.trim());
        if (!kv) errors.push(new ConfigError('@SET expects NAME=VALUE', pos));
        else vars[kv[1]!] = kv[2]!.trim();
      } else if (cmd === 'INCLUDE') {
        const target = resolve(dirname(abs), m[2]!.trim());
        try {
          sections.push(...readClassicParsersFile(target, vars, errors, seen));
        } catch (e) {
          errors.push(new ConfigError(`cannot read @INCLUDE file ${target}: ${(e as Error).message}`, pos));
        }
      } else errors.push(new ConfigError(`unknown command @${m[1]} (expected @SET or @INCLUDE)`, pos));
      continue;
    }
    const header = /^\[([^\]]*)\]$/.exec(line);
    if (header) {
      const name = header[1]!.trim().toUpperCase();
      current = null;
      skipping = false;
      if (name === 'PARSER') {
        current = { values: Object.create(null), keyPos: Object.create(null), valuePos: Object.create(null), pos, baseDir: dirname(abs) };
        sections.push(current);
      } else if (name === 'MULTILINE_PARSER') {
        errors.push(new ConfigError('[MULTILINE_PARSER] sections are not supported', pos));
        skipping = true;
      } else {
        errors.push(new ConfigError(`unexpected section [${header[1]}] in a parsers file (expected [PARSER])`, pos));
        skipping = true;
      }
      continue;
    }
    if (skipping) continue;
    if (!current) {
      errors.push(new ConfigError(`'${line}' is outside a [PARSER] section`, pos));
      continue;
    }
    const kv = /^(\S+)(?:\s+(.*))?$/.exec(line)!;
    const key = kv[1]!.toLowerCase();
    if (key in current.values) continue;
    const valueCol = kv[2] === undefined ? col + kv[1]!.length : raw.indexOf(kv[2], col - 1 + kv[1]!.length) + 1;
    const value = substituteEnv((kv[2] ?? '').trim(), vars, (name) =>
      errors.push(new ConfigError(`variable '${name}' is not set (environment or @SET) and has no default`, { file: abs, line: n + 1, col: valueCol })),
    );
    // flb_parser.c get_parser_key: an empty value is no value.
    if (value === '') continue;
    current.values[key] = value;
    current.keyPos[key] = pos;
    current.valuePos[key] = { file: abs, line: n + 1, col: valueCol };
  }
  return sections;
}
