/**
 * Backpressure. Outputs and the storage buffer report when they are over their bound; while a
 * blocker applies to an input, that input stops reading its sockets so TCP flow control reaches
 * the sender. It resumes once every blocker that applies to it has dropped below its low-water
 * mark.
 *
 * A blocker may carry a scope. Unscoped blockers apply to every input. Scoped ones apply only
 * where routing says they matter (see InputFlow): an output's full queue pauses the inputs whose
 * chunks reached that output, a storage limit pauses the filesystem-buffered inputs.
 */
import { EventEmitter } from 'node:events';

export interface BlockScope {
  /** The output whose bound is reached: only inputs whose chunks were routed to it pause. */
  output?: string;
  /** A storage-buffer bound: only inputs with storage.type filesystem pause. */
  storage?: boolean;
}

export interface Blocker {
  why: string;
  scope: BlockScope | undefined;
}

export class FlowControl extends EventEmitter {
  private readonly blockers = new Map<string, Blocker>();

  /** Mark `who` as over its bound (`why` is for logs and /readyz). */
  block(who: string, why: string, scope?: BlockScope): void {
    const was = this.blockers.size;
    this.blockers.set(who, { why, scope });
    if (was === 0) this.emit('pause', who, why);
    this.emit('change');
  }

  unblock(who: string): void {
    if (!this.blockers.delete(who)) return;
    if (this.blockers.size === 0) this.emit('resume');
    this.emit('change');
  }

  /** True while any blocker is set (global readiness). */
  get paused(): boolean {
    return this.blockers.size > 0;
  }

  /** Current blockers and reasons. */
  reasons(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [who, b] of this.blockers) out[who] = b.why;
    return out;
  }

  /** Current blockers with their scopes. */
  entries(): IterableIterator<[string, Blocker]> {
    return this.blockers.entries();
  }
}

/**
 * One input's view of the shared FlowControl: the same API ('pause'/'resume' events, `paused`,
 * `reasons()`), but only the blockers that apply to this input count. `applies` is asked again
 * whenever a blocker changes or the input's routing knowledge grows (`update()`).
 */
export class InputFlow extends FlowControl {
  private isPaused = false;

  constructor(
    private readonly shared: FlowControl,
    private readonly applies: (who: string, scope: BlockScope | undefined) => boolean,
  ) {
    super();
    shared.on('change', this.update);
    this.isPaused = this.compute() !== undefined;
  }

  override block(who: string, why: string, scope?: BlockScope): void {
    this.shared.block(who, why, scope);
  }

  override unblock(who: string): void {
    this.shared.unblock(who);
  }

  override get paused(): boolean {
    return this.isPaused;
  }

  override reasons(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [who, b] of this.shared.entries()) if (this.applies(who, b.scope)) out[who] = b.why;
    return out;
  }

  override entries(): IterableIterator<[string, Blocker]> {
    return [...this.shared.entries()].filter(([who, b]) => this.applies(who, b.scope))[Symbol.iterator]();
  }

  private compute(): [string, string] | undefined {
    for (const [who, b] of this.shared.entries()) if (this.applies(who, b.scope)) return [who, b.why];
    return undefined;
  }

  /** Re-evaluates the blockers; emits 'pause' or 'resume' on a change. */
  readonly update = (): void => {
    const first = this.compute();
    const now = first !== undefined;
    if (now === this.isPaused) return;
    this.isPaused = now;
    if (first) this.emit('pause', first[0], first[1]);
    else this.emit('resume');
    this.emit('change');
  };

  detach(): void {
    this.shared.off('change', this.update);
  }
}
