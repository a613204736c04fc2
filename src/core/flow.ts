/**
 * Backpressure. Outputs (and later the storage buffer) report when they are over their bound;
 * while any of them is, inputs stop reading their sockets so TCP flow control reaches the
 * sender. They resume once every blocker has dropped below its low-water mark.
 */
import { EventEmitter } from 'node:events';

export class FlowControl extends EventEmitter {
  private readonly blockers = new Map<string, string>();

  /** Mark `who` as over its bound (`why` is for logs and /readyz). */
  block(who: string, why: string): void {
    const was = this.blockers.size;
    this.blockers.set(who, why);
    if (was === 0) this.emit('pause', who, why);
  }

  unblock(who: string): void {
    if (this.blockers.delete(who) && this.blockers.size === 0) this.emit('resume');
  }

  get paused(): boolean {
    return this.blockers.size > 0;
  }

  /** Current blockers and reasons. */
  reasons(): Record<string, string> {
    return Object.fromEntries(this.blockers);
  }
}
