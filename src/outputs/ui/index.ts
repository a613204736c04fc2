/**
 * The `ui` output: alerts routed here (the detect filter's alert_tag, `match: falco`) are kept
 * for the web page that `service.ui: on` serves, and pushed live to its viewers. Records that are
 * no Falco alert (no `rule` string) are skipped, counted and logged: the page lists alerts only.
 */
import { ConfigError } from '../../config/errors.js';
import type { OptionTable } from '../../config/schema.js';
import { definePlugin, DeliveryError, type OutgoingBatch, type OutputInstance, type PluginContext } from '../../core/plugin.js';
import { UiServer } from '../../ui/server.js';
import { isPostgresUrl, openAlertStore, StoreUnavailable, type AlertStore } from '../../ui/store.js';
import { deliveryOptions } from '../../core/common-options.js';

const options = { ...deliveryOptions({ batch_size: 500, batch_wait: 0, workers: 1, retry_limit: 'no_limits' }) } as const satisfies OptionTable;

export const uiOutput = definePlugin({
  kind: 'output',
  name: 'ui',
  description: "Shows alerts on the web page of service.ui (live list, filters, counts, full records); route the detect filter's alert_tag here",
  options,
  // Unlimited retries: a store that is down for a while (a shared database restarting) keeps
  // the alerts queued (and buffered, with storage.type filesystem) rather than dead-lettered.
  async create(_c, ctx: PluginContext): Promise<OutputInstance> {
    if (!ctx.service.ui) {
      throw new ConfigError('the ui output shows alerts on the web page: set ui: on (and http_server: on) in the service section', ctx.section.pos, 'name');
    }
    // Absent when the pipeline is only validated: nothing is sent then.
    const page = ctx.http ? UiServer.of(ctx.http) : undefined;
    // A worker of service.workers > 1 (run.ts forks them with LOGWARDEN_WORKER) has no page: the
    // primary serves it from the shared store, so the worker writes its alerts there itself.
    const store = (
      !page && process.env.LOGWARDEN_WORKER !== undefined && isPostgresUrl(ctx.service['ui.store'] ?? '')
        ? await openAlertStore({
            maxAlerts: ctx.service['ui.max_alerts'],
            retention: ctx.service['ui.retention'],
            store: ctx.service['ui.store'],
            metrics: ctx.metrics,
            logger: ctx.logger,
          })
        : page?.store
    ) as AlertStore | undefined;
    const skipped = ctx.metrics.counter('logwarden_output_ui_skipped_records_total', 'Records a ui output skipped because they are no Falco alert', ['name']).labels(ctx.id);
    let skippedCount = 0;
    return {
      async send(batch: OutgoingBatch) {
        const events = batch.events;
        if (!store) throw new DeliveryError('no web page to show alerts on: the service HTTP server is not running', false, 'no_page');
        let alerts = events;
        if (events.some((e) => typeof e.record.rule !== 'string')) {
          alerts = events.filter((e) => typeof e.record.rule === 'string');
          const n = events.length - alerts.length;
          skipped.inc(n);
          if (skippedCount === 0 || Math.floor((skippedCount + n) / 1000) > Math.floor(skippedCount / 1000)) {
            ctx.logger.warn({ tag: events.find((e) => typeof e.record.rule !== 'string')!.tag, skipped_total: skippedCount + n }, 'records without a rule are no alerts: not shown on the web page');
          }
          skippedCount += n;
        }
        if (alerts.length === 0) return;
        try {
          await store.add(alerts);
        } catch (e) {
          // The store wrote nothing: the delivery engine retries the batch (its queue, buffer and
          // dead letter apply as to any output), the other outputs go on meanwhile.
          throw new DeliveryError(`cannot store alerts: ${(e as Error).message}`, true, e instanceof StoreUnavailable ? 'store_unreachable' : 'store');
        }
      },
      async close() {
        // A store of its own (in a worker); the page's store is closed with the page.
        if (!page) await store?.close();
      },
    };
  },
});
