/**
 * A Commit follows one received chunk until every output that got a part of it has committed
 * that part (delivered it, or written it durably). Inputs ack the sender only when the commit
 * settles successfully: "acks only for what is committed".
 *
 * Reference counting: the input holds one reference while it routes the chunk; every output
 * that accepts events holds one more and releases it when its batch settles.
 */
export type CommitListener = (ok: boolean, reason?: string) => void;

export class Commit {
  private pending = 1;
  private failure: string | undefined;
  private settled = false;

  constructor(private readonly onSettle?: CommitListener) {}

  /** Take one more reference (an output accepted events of this chunk). */
  hold(): this {
    if (this.settled) throw new Error('commit already settled');
    this.pending++;
    return this;
  }

  /** Release a reference. `ok: false` makes the whole commit fail (the sender will resend). */
  release(ok = true, reason?: string): void {
    if (this.settled) return;
    if (!ok && this.failure === undefined) this.failure = reason ?? 'failed';
    if (--this.pending === 0) {
      this.settled = true;
      this.onSettle?.(this.failure === undefined, this.failure);
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
