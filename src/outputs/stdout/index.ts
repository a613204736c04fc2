/**
 * The `stdout` output (Fluent Bit out_stdout): `format` msgpack (Fluent Bit's readable print of
 * each event: `[N] tag: [sec.nsec, {record}]`), json_lines or json, with json_date_key and
 * json_date_format.
 */
import type { OptionTable } from '../../config/schema.js';
import { recordJSON } from '../../core/json.js';
import { definePlugin, type OutgoingBatch, type OutputInstance } from '../../core/plugin.js';
import { compileFormat, jsonDateOptions } from '../format.js';
import { deliveryOptions } from '../../core/common-options.js';

const options = {
  ...deliveryOptions({ batch_size: 2000, batch_wait: 0, workers: 1 }),
  format: { type: 'enum', values: ['msgpack', 'json_lines', 'json'], default: 'msgpack', description: 'Output format' },
  ...jsonDateOptions,
} as const satisfies OptionTable;

function write(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (err) => (err ? reject(err) : resolve()));
  });
}

export const stdoutOutput = definePlugin({
  kind: 'output',
  name: 'stdout',
  description: 'Prints records on standard output (Fluent Bit out_stdout)',
  options,
  create(c): OutputInstance {
    if (c.format === 'msgpack') {
      let n = 0;
      return {
        send: (batch: OutgoingBatch) => {
          let s = '';
          for (const ev of batch.events) s += `[${n++}] ${ev.tag}: [${ev.time.toFixed9()}, ${recordJSON(ev.record)}]\n`;
          return write(s);
        },
      };
    }
    const fmt = compileFormat(c);
    return { send: (batch: OutgoingBatch) => write(fmt(batch.events) as string) };
  },
});
