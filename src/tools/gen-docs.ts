/**
 * Writes docs/configuration.md from the option tables: the service section, the options every
 * plugin of a kind has, and each plugin's own table. `npm run docs` regenerates it; a test fails
 * when the committed file is stale.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { OptionSpec, OptionTable } from '../config/schema.js';
import { serviceOptions } from '../config/service.js';
import { commonInputOptions, commonFilterOptions, commonOutputOptions, deliveryOptionTable, optionTableFor } from '../core/common-options.js';
import { plugins } from '../plugins.js';

function typeOf(s: OptionSpec): string {
  if (s.type === 'enum') return s.values!.join(' \\| ');
  return s.type;
}

function cell(v: unknown): string {
  if (v === undefined) return '';
  const text = Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return `\`${text.replace(/\|/g, '\\|')}\``;
}

function table(t: OptionTable, skip: ReadonlySet<string> = new Set()): string {
  const rows = Object.entries(t)
    .filter(([k]) => !skip.has(k))
    .map(([k, s]) => `| \`${k}\` | ${typeOf(s)} | ${s.required ? 'required' : (s.docDefault ?? cell(s.default))} | ${s.description.replace(/\|/g, '\\|').replace(/\n/g, ' ')} |`);
  return ['| option | type | default | description |', '|---|---|---|---|', ...rows].join('\n');
}

export function configurationReference(): string {
  const out: string[] = [
    '# Configuration reference',
    '',
    "Generated from the plugins' option tables by `npm run docs` — do not edit by hand.",
    "Pipelines use Fluent Bit's YAML schema (`service`, `pipeline.inputs/filters/outputs`, `parsers`, `includes`, `env`);",
    'option names are case-insensitive. Booleans take `on/off`, `true/false`, `yes/no`. `${VAR}`, `${VAR:-default}` and',
    '`${VAR:+word}` are substituted; relative paths resolve against the directory of the file that names them.',
    '',
    '## Sizes and durations',
    '',
    'A **size** is a number of bytes with an optional unit, read as Fluent Bit 5.1 reads its size options',
    '(`flb_utils_size_to_bytes`: `mem_buf_limit`, `storage.total_limit_size`, `storage.backlog.mem_limit`,',
    '`buffer_chunk_size`, `buffer_max_size`, `rotate_max_size`, ...), so an option both have gets the same number:',
    '',
    '| written | bytes | |',
    '|---|---|---|',
    '| `1024`, `1.9` | 1024, 1 | no unit: bytes, a fraction is cut off |',
    '| `2k`, `2K`, `2kb`, `2KB` | 2000 | `k`, `M`, `G` with an optional `B`, in any case, are powers of **1000** (Fluent Bit) |',
    '| `1.5M`, `100M`, `1G` | 1500000, 100000000, 1000000000 | fractions are allowed; the product is cut to whole bytes (`1.9999k` = 1999) |',
    '| `64Ki`, `512Mi`, `1Gi`, `4MiB` | 65536, 536870912, 1073741824, 4194304 | `Ki`, `Mi`, `Gi` (Kubernetes quantities), also as `KiB`, `MiB`, `GiB`, in any case, are powers of **1024** |',
    '| `false` | 0 | as in Fluent Bit |',
    '',
    'The same rule holds for options only logwarden has (`memory_limit`, `queue_max_bytes`, `batch_bytes`,',
    '`inflight_max_size`, `max_line_size`): their defaults are written in binary units where the number comes from',
    "a binary source (`memory_limit` `256Mi`, half a `512Mi` container limit; Loki's 256KB line limit is 262144",
    "bytes, `256Ki`; Falco's 12582912-byte webhook batch, `12Mi`). Copy a Kubernetes memory limit as written",
    "(`512Mi`), not as `512M` (512000000). Refused with an error at the value's position, where Fluent Bit 5.1",
    'turns the value into its -1 error value (a limit of 2^64-1, or a config error): a bare `B` (`100B`), a space',
    'before the unit (`1 M`), other units (`T`), negative numbers and text; also `1e3` and `0x10` (which Fluent',
    "Bit's `atof()` reads as 1000 and 16) and sizes above 2^53 bytes. Fluent Bit's binary parser serves only",
    '`multiline_buffer_limit` (it takes `KiB` but not `Ki`, and reads `K`/`KB` as 1024 there); logwarden has no such',
    'option. `test/e2e/sizes-fluent-bit.test.ts` compares these forms with what the Fluent Bit 5.1.1 binary logs.',
    '',
    'A **duration** is seconds, with an optional fraction and unit `s`, `m`, `h` or `d` in any case (`1.5`, `10s`, `5m`,',
    '`7d`). Fluent Bit 5.1 has four readers for the duration options logwarden shares with it, and logwarden reads',
    'those options so that a value means there what it means in Fluent Bit:',
    '',
    '| Fluent Bit reads | options | `1.5` | `10s` | `5m` | `1.5h` | `500ms` |',
    '|---|---|---|---|---|---|---|',
    '| `flb_utils_time_to_seconds`: whole number, then `d`, `h` or `m` as the last character | `net.connect_timeout`, `net.io_timeout`, `net.keepalive_idle_timeout`, `net.accept_timeout` | 1 | 10 | 300 | 3600 | 500 |',
    '| a plain number (`atof`) | service `flush` | 1.5 | 10 | 5 | 1.5 | 500 |',
    '| a whole number (`atoi`) | service `grace`, `scheduler.base`, `scheduler.cap` | 1 | 10 | 5 | 1 | 500 |',
    '| number, then one lowercase `s`, `m`, `h` or `d`, cut to whole seconds | throttle `interval` | 1 | 10 | 300 | 5400 | 500 (with a warning) |',
    '',
    "On these options logwarden refuses, with an error at the value's file:line:col that says what Fluent Bit would",
    'read and what to write instead, every form whose whole seconds differ between the two: `ms` (Fluent Bit reads',
    '`500ms` as 500 seconds), a unit Fluent Bit ignores (`flush: 5m` is 5 seconds there; write `300`), a fraction',
    'Fluent Bit drops before the unit (`net.io_timeout: 1.5h` is an hour there; write `5400`), `1H` for throttle.',
    'A fraction Fluent Bit only cuts off (`1.5`, `0.2`, `2.5s`) keeps its sub-second meaning in logwarden; in',
    'Fluent Bit it is the whole seconds (for `net.io_timeout`, `0.5` is 0 there: no timeout). Every other duration',
    "option is logwarden's own and also takes `ms` (`reload_interval: 500ms`). Not durations anywhere: `1h30m`,",
    '`5min`, `1w`, `1e3`, negative numbers. `test/e2e/durations-fluent-bit.test.ts` checks these readings',
    'against what the Fluent Bit 5.1.1 binary logs.',
    '',
    '`storage.total_limit_size` unset, `off`, `false`, `no`, or any size of 0 bytes (`0`, `0k`) means no limit, as in',
    'Fluent Bit 5.1 (which logs `unlimited filesystem buffer` for `off`); `on` is not a size there or here.',
    '',
    '## service',
    '',
    table(serviceOptions),
    '',
  ];
  const kinds = [
    ['input', 'Inputs', commonInputOptions],
    ['filter', 'Filters', commonFilterOptions],
    ['output', 'Outputs', commonOutputOptions],
  ] as const;
  for (const [kind, title, common] of kinds) {
    out.push(`## ${title}`, '', `Options every ${kind} has:`, '', table(common), '');
    for (const p of plugins.filter((x) => x.kind === kind).sort((a, b) => a.name.localeCompare(b.name))) {
      out.push(`### ${kind} \`${p.name}\``, '', p.description, '');
      if (p.kind === 'output') {
        // What the engine gets when the section sets none of them: the output's own
        // deliveryOptions() over the common table.
        const effective = optionTableFor(p);
        const d = Object.keys(deliveryOptionTable)
          .map((k) => `\`${k}\` ${effective[k]!.docDefault ?? effective[k]!.default}`)
          .join(', ');
        out.push(`Delivery defaults for this output: ${d}.`, '');
      }
      // Common options an output restates with its own default are shown above, not as its own.
      const own = new Set(Object.keys(p.options).filter((k) => !(k in common)));
      out.push(own.size ? table(p.options, new Set(Object.keys(p.options).filter((k) => !own.has(k)))) : '_No options of its own._', '');
    }
  }
  return `${out.join('\n').trimEnd()}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const target = fileURLToPath(new URL('../../../docs/configuration.md', import.meta.url));
  writeFileSync(target, configurationReference());
  process.stdout.write(`wrote ${target}\n`);
}
