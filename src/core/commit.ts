/**
 * A Commit follows one received chunk until every output that got a part of it has committed
 * that part (delivered it, or written it durably). Inputs ack the sender only when the commit
 * settles successfully: "acks only for what is committed".
 *
 * Reference counting: the input holds one reference while it routes the chunk; every output
 * that accepts events holds one more and releases it when its batch settles.
 *
 * Besides ok/failed, a release says whether its data is *safe*: delivered, or written to a dead
 * letter. The filesystem buffer deletes a chunk only once every output's part is safe; a part that
 * failed without a dead letter stays in the buffer.
 */
export type CommitListener = (ok: boolean, reason: string | undefined, safe: boolean) => void;

export class Commit {
  private pending = 1;
  private failure: string | undefined;
  private unsafe = false;
  private settled = false;

  constructor(private readonly onSettle?: CommitListener) {}

  /** Take one more reference (an output accepted events of this chunk). */
  hold(): this {
    if (this.settled) throw new Error('commit already settled');
    this.pending++;
    return this;
  }

  /**
   * Release a reference. `ok: false` makes the whole commit fail (the sender will resend).
   * `safe` (default: `ok`) tells whether the released data is delivered or dead-lettered.
   */
  release(ok = true, reason?: string, safe = ok): void {
    if (this.settled) return;
    if (!ok && this.failure === undefined) this.failure = reason ?? 'failed';
    if (!safe) this.unsafe = true;
    if (--this.pending === 0) {
      this.settled = true;
      this.onSettle?.(this.failure === undefined, this.failure, !this.unsafe);
    }
  }

  get isSettled(): boolean {
    return this.settled;
  }
}

/** A commit that nobody waits for (events without a chunk id, replayed events). */
export function detachedCommit(): Commit {
  return new Commit();
}
