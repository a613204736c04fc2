/**
 * Writes docs/configuration.md from the option tables: the service section, the options every
 * plugin of a kind has, and each plugin's own table. `npm run docs` regenerates it; a test fails
 * when the committed file is stale.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { OptionSpec, OptionTable } from '../config/schema.js';
import { serviceOptions } from '../config/service.js';
import { commonInputOptions, commonFilterOptions, commonOutputOptions } from '../core/common-options.js';
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
    .map(([k, s]) => `| \`${k}\` | ${typeOf(s)} | ${s.required ? 'required' : s.docDefault ?? cell(s.default)} | ${s.description.replace(/\|/g, '\\|').replace(/\n/g, ' ')} |`);
  return ['| option | type | default | description |', '|---|---|---|---|', ...rows].join('\n');
}

export function configurationReference(): string {
  const out: string[] = [
    '# Configuration reference',
    '',
    'Generated from the plugins\' option tables by `npm run docs` — do not edit by hand.',
    'Pipelines use Fluent Bit\'s YAML schema (`service`, `pipeline.inputs/filters/outputs`, `parsers`, `includes`, `env`);',
    'option names are case-insensitive. Sizes take `k`, `M`, `G` suffixes; durations take `ms`, `s`, `m`, `h`, `d`;',
    'booleans take `on/off`, `true/false`, `yes/no`. `${VAR}`, `${VAR:-default}` and `${VAR:+word}` are substituted;',
    'relative paths resolve against the directory of the file that names them.',
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
      if (p.defaults) {
        const d = Object.entries(p.defaults).map(([k, v]) => `\`${k}\` ${v}`).join(', ');
        out.push(`Delivery defaults for this output: ${d}.`, '');
      }
      out.push(Object.keys(p.options).length ? table(p.options) : '_No options of its own._', '');
    }
  }
  return `${out.join('\n').trimEnd()}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const target = fileURLToPath(new URL('../../../docs/configuration.md', import.meta.url));
  writeFileSync(target, configurationReference());
  process.stdout.write(`wrote ${target}\n`);
}
