/**
 * A test output whose deliveries the test controls: batches wait at the gate until opened, or
 * fail (retryable or not). It stands for a slow or broken downstream when testing the engine,
 * acks and backpressure; real downstreams have their own tests.
 */
import type { LogEvent } from '../../src/core/event.js';
import type { DeliveryError, OutputPlugin } from '../../src/core/plugin.js';
import { deliveryOptions } from '../../src/core/common-options.js';

export class Gate {
  open = true;
  failWith: DeliveryError | undefined;
  readonly delivered: LogEvent[] = [];
  private waiting: Array<() => void> = [];
  batches = 0;

  release(): void {
    this.open = true;
    for (const w of this.waiting.splice(0)) w();
  }

  async pass(events: readonly LogEvent[]): Promise<void> {
    this.batches++;
    while (!this.open) await new Promise<void>((r) => this.waiting.push(r));
    if (this.failWith) throw this.failWith;
    this.delivered.push(...events);
  }
}

export const gates = new Map<string, Gate>();

export const gateOutput: OutputPlugin<{ gate: string }> = {
  kind: 'output',
  name: 'gate',
  description: 'test output controlled by the test',
  options: { ...deliveryOptions({ batch_wait: 0 }), gate: { type: 'string', required: true, description: 'name of the Gate in `gates`' } },
  create(c) {
    const gate = gates.get(c.gate) ?? new Gate();
    gates.set(c.gate, gate);
    return { send: (batch) => gate.pass(batch.events) };
  },
};
