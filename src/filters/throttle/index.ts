/**
 * throttle: Fluent Bit's filter_throttle. Records pass while the average rate over the sliding
 * window stays under `rate`; then they are dropped until it falls again.
 *
 * From plugins/filter_throttle (throttle.c, window.c): the window has `window` panes of
 * `interval` each; every interval a new pane replaces the oldest; a record is dropped when the
 * window's total divided by the number of panes is at least `rate`, otherwise it counts in the
 * current pane. Panes advance by elapsed time on each chunk (no timer thread); with
 * print_status the current rate is logged at info level every interval.
 */
import type { OptionTable } from '../../config/schema.js';
import { definePlugin, type FilterInstance } from '../../core/plugin.js';

const options = {
  rate: { type: 'float', default: 1, min: 0, description: 'Average number of records allowed per interval' },
  window: { type: 'int', default: 5, min: 1, description: 'Number of intervals the average is taken over' },
  interval: {
    type: 'duration',
    fluentBit: 'throttle',
    default: 1,
    description: 'Length of one interval (e.g. 1s, 1.5m, 0.5h)',
    check: (v) => ((v as number) > 0 ? undefined : 'the interval must be above 0'),
  },
  print_status: { type: 'bool', default: false, description: 'Log the current rate and the limit every interval' },
} as const satisfies OptionTable;

/** The sliding window: `size` panes, advanced by elapsed intervals. */
export class ThrottleWindow {
  private readonly panes: number[];
  private current = 0;
  private total = 0;
  private tick: number;

  constructor(
    readonly rate: number,
    readonly size: number,
    private readonly intervalMs: number,
    now: number,
  ) {
    this.panes = new Array<number>(size).fill(0);
    this.tick = Math.floor(now / intervalMs);
  }

  /** Moves to the pane of `now`, clearing the panes of the intervals that went by. */
  advance(now: number): void {
    const t = Math.floor(now / this.intervalMs);
    const steps = Math.min(t - this.tick, this.size);
    for (let i = 0; i < steps; i++) {
      this.current = (this.current + 1) % this.size;
      this.total -= this.panes[this.current]!;
      this.panes[this.current] = 0;
    }
    if (t > this.tick) this.tick = t;
  }

  /** Whether one more record may pass now (and counts it when it may). */
  admit(): boolean {
    if (this.total / this.size >= this.rate) return false;
    this.panes[this.current]!++;
    this.total++;
    return true;
  }

  /** Average records per interval over the window. */
  get average(): number {
    return this.total / this.size;
  }
}

export const throttleFilter = definePlugin({
  kind: 'filter',
  name: 'throttle',
  description: "Drops records above an average rate over a sliding window, as Fluent Bit's throttle filter",
  options,
  create(config, ctx): FilterInstance {
    const intervalMs = config.interval * 1000;
    const w = new ThrottleWindow(config.rate, config.window, intervalMs, Date.now());
    let timer: NodeJS.Timeout | undefined;
    if (config.print_status) {
      timer = setInterval(() => {
        w.advance(Date.now());
        ctx.logger.info(
          { limit: config.rate, interval_seconds: config.interval, window: config.window, rate: w.average },
          `limit is ${config.rate} per ${config.interval}s with window size of ${config.window}, current rate is ${w.average} per interval`,
        );
      }, intervalMs);
      timer.unref();
    }
    return {
      filter(events) {
        w.advance(Date.now());
        let out: typeof events | undefined;
        for (let i = 0; i < events.length; i++) {
          if (w.admit()) out?.push(events[i]!);
          else out ??= events.slice(0, i);
        }
        return out ?? events;
      },
      close() {
        if (timer) clearInterval(timer);
      },
    };
  },
});
