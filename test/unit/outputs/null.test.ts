import assert from 'node:assert/strict';
import test from 'node:test';
import { ConfigErrors } from '../../../src/config/errors.js';
import { nullOutput } from '../../../src/outputs/null/index.js';
import { events, startPipeline } from '../../support/output-pipeline.js';

const yaml = (extra = '') => `pipeline:\n  outputs:\n    - name: null\n      match: '*'\n      batch_size: 100\n${extra}`;

for (const format of ['msgpack', 'json_lines', 'json']) {
  test(`null output (format ${format}): every record committed and counted as delivered`, async () => {
    const run = await startPipeline(yaml(format === 'msgpack' ? '' : `      format: ${format}\n`), [nullOutput]);
    try {
      const recs = Array.from({ length: 300 }, (_, i) => ({ i, msg: `line ${i}`, nested: { a: [1, 'x'] } }));
      // Whole batches (batch_size 100): the batch_wait timer does not hold the event loop open.
      for (let i = 0; i < 300; i += 100) assert.deepEqual(await run.ingest(events('app', recs.slice(i, i + 100))), { ok: true });
      assert.equal(await run.counter('logwarden_output_proc_records_total', { name: 'null.0' }), 300);
    } finally {
      await run.stop();
    }
  });
}

test("'name: null' is the plugin's name, not YAML's null; an unknown format is a positioned error", async () => {
  const run = await startPipeline(yaml(), [nullOutput]);
  await run.stop();
  await assert.rejects(startPipeline(yaml('      format: csv\n'), [nullOutput]), (e: unknown) => {
    assert.ok(e instanceof ConfigErrors);
    assert.match(e.message, /pipeline\.yaml:6:15: format: found "csv", expected one of msgpack, json, json_lines, json_stream/s);
    return true;
  });
});
