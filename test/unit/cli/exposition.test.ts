/**
 * The primary of service.workers reads the merged /metrics text back into samples for the web
 * page's health panel: checked against prom-client's own JSON of the same registry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseExposition } from '../../../src/cli/workers.js';
import { Metrics } from '../../../src/observe/metrics.js';

test('parseExposition gives the samples getMetricsAsJSON gives, labels unescaped', async () => {
  const m = new Metrics(false);
  m.inputRecords.labels('forward.0').inc(12);
  m.inputRecords.labels('in "quoted" \\ back\nslash').inc(3);
  m.outputQueueRecords.labels('ui.0').set(7.5);
  m.outputDropped.labels('file.0', 'retries').inc(2);
  const parsed = parseExposition(await m.registry.metrics());
  const json = await m.registry.getMetricsAsJSON();
  for (const name of ['logwarden_input_records_total', 'logwarden_output_queue_records', 'logwarden_output_dropped_records_total']) {
    const want = json.find((x) => x.name === name)!.values.map((v) => ({ labels: Object.fromEntries(Object.entries(v.labels).map(([k, x]) => [k, String(x)])), value: v.value }));
    assert.deepEqual(parsed.find((x) => x.name === name)?.values, want, name);
  }
  assert.deepEqual(parsed.find((x) => x.name === 'logwarden_input_records_total')!.values.find((v) => v.value === 3)!.labels, { name: 'in "quoted" \\ back\nslash' });
  assert.deepEqual(parseExposition('# HELP x y\n\nnot a sample line\nx_total 4\n'), [{ name: 'x_total', values: [{ labels: {}, value: 4 }] }]);
});
