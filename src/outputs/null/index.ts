/**
 * The `null` output (Fluent Bit out_null): discards every record and reports it delivered. As in
 * Fluent Bit, `format` json, json_lines (or json_stream, its alias) serialises each batch first
 * and then discards the text, so that the cost of formatting can be measured alone; the default
 * (msgpack) does no work at all.
 */
import type { OptionTable } from '../../config/schema.js';
import { definePlugin, type OutgoingBatch, type OutputInstance } from '../../core/plugin.js';
import { compileFormat, jsonDateOptions } from '../format.js';
import { deliveryOptions } from '../../core/common-options.js';

const options = {
  ...deliveryOptions({ batch_size: 5000, batch_wait: 0, workers: 1 }),
  format: {
    type: 'enum',
    values: ['msgpack', 'json', 'json_lines', 'json_stream'],
    default: 'msgpack',
    description: 'msgpack discards the records as they are; json, json_lines and json_stream serialise them first',
  },
  ...jsonDateOptions,
} as const satisfies OptionTable;

export const nullOutput = definePlugin({
  kind: 'output',
  name: 'null',
  description: 'Discards records (Fluent Bit out_null); with a json format it serialises them first',
  options,
  create(c): OutputInstance {
    if (c.format === 'msgpack') return { send: () => Promise.resolve() };
    const fmt = compileFormat({ ...c, format: c.format === 'json' ? 'json' : 'json_lines' });
    return {
      send: (batch: OutgoingBatch) => {
        fmt(batch.events);
        return Promise.resolve();
      },
    };
  },
});
