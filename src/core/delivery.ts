/**
 * The delivery engine every output runs on: a bounded queue (records and bytes), batching by size
 * and age, a concurrency limit (p-queue), retries with exponential backoff and full jitter
 * (Fluent Bit's scheduler: wait = rand(base, min(cap, base * 2^n)), longer when the destination
 * sent a Retry-After, never past cap), retryable vs non-retryable errors, a dead-letter file,
 * metrics, and backpressure to the inputs through FlowControl.
 *
 * Commit semantics: every part of a chunk held here keeps a reference on the chunk's Commit.
 * - delivered: released ok;
 * - rejected (non-retryable, e.g. Loki 400): written to the dead letter and released ok when that
 *   write succeeded (resending would be rejected again; the data is on disk);
 * - retries exhausted: dead-lettered and released as failed, so the sender is not acked and
 *   resends. A release also says whether the data is safe (delivered or in the dead letter),
 *   which the filesystem buffer needs to delete a chunk;
 * - not delivered when shutdown's grace period ends: the request is aborted and the batch released
 *   as failed and not safe, without a dead letter (Fluent Bit's grace: what is not flushed by then
 *   stays in the filesystem buffer for the next start, or is not acked to its sender).
 * Backpressure is scoped to this output: only inputs whose chunks reached it pause.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { Commit } from './commit.js';
import type { LogEvent } from './event.js';
import type { FlowControl } from './flow.js';
import { DeliveryError, EncodeError, RecordsFailed, type OutputInstance } from './plugin.js';
import type { Metrics } from '../observe/metrics.js';
import { recordJSON } from './json.js';
import { clip } from '../observe/log.js';
import type { ServiceConfig } from '../config/service.js';
import { parseRetryLimit, type DeliveryConfig } from './common-options.js';

export interface DeliveryOptions {
  batchSize: number;
  batchBytes: number;
  /** Seconds a partial batch may wait. */
  batchWait: number;
  workers: number;
  /** Number of retries; Infinity for no limit. */
  retryLimit: number;
  /** Backoff base and cap in seconds. */
  base: number;
  cap: number;
  queueRecords: number;
  queueBytes: number;
  deadLetterFile?: string;
}

/** Records per queue before inputs pause, at least, when queue_max_records is not set. */
const MIN_QUEUE_RECORDS = 1000;

/**
 * The engine's options from an output's resolved config: the one place the delivery options
 * become numbers. Defaults come from the output's option table (deliveryOptions()); what is
 * left unset there follows the service: batch_wait its flush, scheduler.* its backoff, the
 * queue bounds a share (`1 / share`) of its memory_limit.
 */
export function resolveDelivery(
  id: string,
  c: DeliveryConfig,
  service: Pick<ServiceConfig, 'flush' | 'scheduler.base' | 'scheduler.cap' | 'memory_limit' | 'storage.path'>,
  share: number,
  baseDir: string,
): DeliveryOptions {
  const queueBytes = c.queue_max_bytes ?? Math.floor(service.memory_limit / Math.max(1, share));
  const deadLetterFile =
    c.dead_letter_file !== undefined
      ? resolve(baseDir, c.dead_letter_file)
      : service['storage.path']
        ? join(service['storage.path'], 'dead-letter', `${id.replace(/[^A-Za-z0-9_.-]/g, '_')}.jsonl`)
        : undefined;
  return {
    batchSize: c.batch_size,
    batchBytes: c.batch_bytes,
    batchWait: c.batch_wait ?? service.flush,
    workers: c.workers,
    retryLimit: parseRetryLimit(c.retry_limit),
    base: c['scheduler.base'] ?? service['scheduler.base'],
    cap: c['scheduler.cap'] ?? service['scheduler.cap'],
    queueRecords: c.queue_max_records ?? Math.max(MIN_QUEUE_RECORDS, Math.floor(queueBytes / 1024)),
    queueBytes,
    deadLetterFile,
  };
}

interface Part {
  events: LogEvent[];
  commit: Commit;
  bytes: number;
}

interface Batch {
  parts: Part[];
  records: number;
  bytes: number;
  attempts: number;
  /** What the output is handed, the same object on every attempt (its events and attempt are set before each). */
  out: { events: readonly LogEvent[]; attempt: number; accepted: Set<string> };
  /** Released at the end of the grace period while queued, in flight or waiting to retry. */
  abandoned?: boolean;
}

/** A batch of its own: the output has not sent it anywhere yet. */
function newBatch(parts: Part[], records: number, bytes: number, attempts: number): Batch {
  return { parts, records, bytes, attempts, out: { events: [], attempt: attempts, accepted: new Set() } };
}

export class DeliveryEngine {
  private open: Part[] = [];
  private openRecords = 0;
  private openBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly pq: PQueue;
  private pendingRecords = 0;
  private pendingBytes = 0;
  private blocked = false;
  private readonly retryTimers = new Map<NodeJS.Timeout, Batch>();
  /** Batches cut and not settled yet: waiting for a worker, in flight, or waiting to retry. */
  private readonly live = new Set<Batch>();
  /** Aborts the requests in flight when the grace period is over. */
  private readonly shutdown = new AbortController();
  private closing = false;
  private closingHard = false;
  private readonly idleWaiters: Array<() => void> = [];
  lastError: string | undefined;

  private readonly m;

  constructor(
    readonly id: string,
    private readonly sink: OutputInstance,
    readonly opts: DeliveryOptions,
    private readonly flow: FlowControl,
    metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.pq = new PQueue({ concurrency: opts.workers });
    this.m = {
      records: metrics.outputRecords.labels(id),
      batches: metrics.outputBatches.labels(id),
      retries: metrics.outputRetries.labels(id),
      retriesFailed: metrics.outputRetriesFailed.labels(id),
      queueRecords: metrics.outputQueueRecords.labels(id),
      queueBytes: metrics.outputQueueBytes.labels(id),
      latency: metrics.outputLatency.labels(id),
      dropped: (reason: string) => metrics.outputDropped.labels(id, reason),
      errors: (reason: string) => metrics.outputErrors.labels(id, reason),
    };
    metrics.outputQueueLimitRecords.labels(id).set(opts.queueRecords);
    metrics.outputQueueLimitBytes.labels(id).set(opts.queueBytes);
  }

  /** False while the queue is over its bound (until it drains below the low-water mark). */
  get hasRoom(): boolean {
    return !this.blocked;
  }

  /** Records queued or in flight. */
  get depth(): { records: number; bytes: number } {
    return { records: this.pendingRecords, bytes: this.pendingBytes };
  }

  /** Accept events of a chunk. Synchronous; holds the commit until the events settle. */
  enqueue(events: LogEvent[], commit: Commit, bytes: number): void {
    if (events.length === 0) return;
    if (this.closingHard) {
      // Past the grace period nothing more is sent: the chunk is not committed.
      commit.hold().release(false, 'shutdown', false);
      return;
    }
    commit.hold();
    this.open.push({ events, commit, bytes });
    this.openRecords += events.length;
    this.openBytes += bytes;
    this.pendingRecords += events.length;
    this.pendingBytes += bytes;
    this.updateDepth();
    if (this.closing) this.cut(true);
    else if (this.openRecords >= this.opts.batchSize || this.openBytes >= this.opts.batchBytes) this.cut(false);
    else this.arm();
  }

  /**
   * Sends the open partial batch now instead of after batch_wait: the filesystem buffer calls this
   * when it cannot queue more to this output until some of what it holds is delivered.
   */
  flush(): void {
    if (this.open.length) this.cut(true);
  }

  /** Starts the batch_wait timer of the open batch unless it runs already. */
  private arm(): void {
    if (this.timer || this.open.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.cut(true);
    }, this.opts.batchWait * 1000);
    this.timer.unref?.();
  }

  private updateDepth(): void {
    this.m.queueRecords.set(this.pendingRecords);
    this.m.queueBytes.set(this.pendingBytes);
    const over = this.pendingRecords >= this.opts.queueRecords || this.pendingBytes >= this.opts.queueBytes;
    if (over && !this.blocked) {
      this.blocked = true;
      this.log.warn({ output: this.id, records: this.pendingRecords, bytes: this.pendingBytes }, 'output queue full: pausing inputs until it drains');
      this.flow.block(this.id, `queue full (${this.pendingRecords} records, ${this.pendingBytes} bytes)`, { output: this.id });
    } else if (this.blocked && this.pendingRecords <= this.opts.queueRecords / 2 && this.pendingBytes <= this.opts.queueBytes / 2) {
      this.blocked = false;
      this.log.info({ output: this.id }, 'output queue below low-water mark: resuming inputs');
      this.flow.unblock(this.id);
    }
  }

  /**
   * Dispatches full batches (splitting a part that overflows batch_size). With `all`, the last
   * partial batch goes too (batch_wait expired, or shutdown); otherwise it stays open and waits
   * for more records or for batch_wait.
   */
  private cut(all: boolean): void {
    if (all && this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.open.length) {
      if (!all && this.openRecords < this.opts.batchSize && this.openBytes < this.opts.batchBytes) break;
      const parts: Part[] = [];
      let records = 0;
      let bytes = 0;
      while (this.open.length && records < this.opts.batchSize && bytes < this.opts.batchBytes) {
        const p = this.open[0]!;
        const room = this.opts.batchSize - records;
        if (p.events.length > room) {
          // Split: the head goes in this batch, the rest stays; both hold the commit.
          const share = Math.round((p.bytes * room) / p.events.length);
          parts.push({ events: p.events.slice(0, room), commit: p.commit.hold(), bytes: share });
          p.events = p.events.slice(room);
          p.bytes -= share;
          records += room;
          bytes += share;
          break;
        }
        this.open.shift();
        parts.push(p);
        records += p.events.length;
        bytes += p.bytes;
      }
      this.openRecords -= records;
      this.openBytes -= bytes;
      this.dispatch(newBatch(parts, records, bytes, 0));
    }
    if (this.open.length) this.arm();
    else if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private dispatch(batch: Batch): void {
    this.live.add(batch);
    // p-queue 9 leaves a started task in its array until it compacts, after 100 dequeues, unless the
    // queue drains first (fixed in p-queue 10, which needs Node 22). A task that owned its batch
    // would keep up to 100 batches of events reachable behind a busy output; this one lets go.
    const slot: { batch: Batch | undefined } = { batch };
    void this.pq.add(() => {
      const b = slot.batch!;
      slot.batch = undefined;
      if (b.abandoned) return Promise.resolve();
      // Whatever throws under one batch fails that batch, never the process.
      return this.attempt(b).catch((e: unknown) => {
        this.log.error({ output: this.id, records: b.records, err: (e as Error)?.message ?? String(e) }, 'batch failed unexpectedly; not committed');
        this.settle(b, false, `internal error: ${(e as Error)?.message ?? String(e)}`, false);
      });
    });
  }

  private async attempt(batch: Batch): Promise<void> {
    const events = batch.parts.length === 1 ? batch.parts[0]!.events : batch.parts.flatMap((p) => p.events);
    batch.out.events = events;
    batch.out.attempt = batch.attempts;
    const end = this.m.latency.startTimer();
    try {
      await this.sink.send(batch.out, this.shutdown.signal);
      end();
      // Released as undelivered when the grace period ended; an answer after that changes nothing.
      if (batch.abandoned) return;
      this.m.records.inc(events.length);
      this.m.batches.inc();
      this.settle(batch, true);
    } catch (e) {
      end();
      if (batch.abandoned) return;
      if (e instanceof RecordsFailed) {
        await this.partial(batch, events, e);
        return;
      }
      if (!(e instanceof DeliveryError) || e instanceof EncodeError) {
        // The records are at fault, not the destination: find them (each alone) and deliver the rest.
        const err = e instanceof EncodeError ? e : new EncodeError(`cannot encode: ${(e as Error)?.message ?? String(e)}`);
        if (events.length > 1) this.split(batch);
        else await this.poison(batch, [{ event: events[0]!, error: err }]);
        return;
      }
      await this.failed(batch, events, e);
    }
  }

  /** A batch failed as a whole: retried with backoff when it may heal, else dead-lettered. */
  private async failed(batch: Batch, events: LogEvent[], err: DeliveryError): Promise<void> {
    this.lastError = `${new Date().toISOString()} ${clip(err.message)}`;
    this.m.errors(err.reason).inc();
    if (!err.retryable) {
      this.log.error({ output: this.id, records: events.length, reason: err.reason, err: err.message }, 'batch rejected, not retryable');
      await this.deadLetter(batch, events, err, true);
      return;
    }
    if (batch.attempts < this.opts.retryLimit) {
      batch.attempts++;
      this.m.retries.inc();
      const wait = this.retryWait(batch.attempts, err);
      this.log.warn(
        {
          output: this.id,
          records: events.length,
          attempt: batch.attempts,
          retry_in_s: Number(wait.toFixed(3)),
          ...(err.retryAfter !== undefined ? { retry_after_s: err.retryAfter } : {}),
          err: err.message,
        },
        'batch failed, will retry',
      );
      const t = setTimeout(
        () => {
          this.retryTimers.delete(t);
          this.dispatch(batch);
        },
        (this.closing ? Math.min(wait, 0.25) : wait) * 1000,
      );
      this.retryTimers.set(t, batch);
      return;
    }
    this.m.retriesFailed.inc();
    this.log.error({ output: this.id, records: events.length, attempts: batch.attempts + 1, err: err.message }, 'batch failed, retries exhausted');
    await this.deadLetter(batch, events, err, false);
  }

  /**
   * Splits a batch whose encoding failed in two halves, each sent on its own at once: halving
   * again finds every record at fault in about 2·log2(n) sends, and each record is sent once.
   */
  private split(batch: Batch): void {
    if (!this.live.delete(batch)) return;
    // Records already settled by a partial failure stay counted in the first half.
    const total = batch.parts.reduce((s, p) => s + p.events.length, 0);
    const half = Math.ceil(total / 2);
    const a: Part[] = [];
    const b: Part[] = [];
    let n = 0;
    for (const p of batch.parts) {
      if (n >= half) b.push(p);
      else if (n + p.events.length <= half) a.push(p);
      else {
        // The part is cut in two; the second half takes a reference of its own on the commit.
        const k = half - n;
        const share = Math.round((p.bytes * k) / p.events.length);
        a.push({ events: p.events.slice(0, k), commit: p.commit, bytes: share });
        b.push({ events: p.events.slice(k), commit: p.commit.hold(), bytes: p.bytes - share });
      }
      n += p.events.length;
    }
    const bytesA = a.reduce((s, p) => s + p.bytes, 0);
    this.log.debug({ output: this.id, records: batch.records }, 'batch cannot be encoded: sending it in halves to find the records at fault');
    this.dispatch(newBatch(a, batch.records - (total - half), bytesA, batch.attempts));
    this.dispatch(newBatch(b, total - half, batch.bytes - bytesA, batch.attempts));
  }

  /**
   * Some records failed for reasons of their own and will never be delivered here: each goes to
   * the dead letter (dropped with a log line and a metric without one). Their chunks are still
   * committed: everything else was delivered (or is still pending below), and resending the same
   * records would only fail again and deliver the others twice.
   */
  private async poison(batch: Batch, failed: ReadonlyArray<{ event: LogEvent; error: DeliveryError }>): Promise<void> {
    for (const f of failed) {
      this.m.errors(f.error.reason).inc();
      this.m.dropped(f.error.reason).inc();
      this.lastError = `${new Date().toISOString()} ${clip(f.error.message)}`;
    }
    const written = await this.writeDeadLetter(
      failed.map((f) => ({ ev: f.event, err: f.error })),
      batch.attempts + 1,
    );
    for (const f of failed) {
      this.log.error(
        { output: this.id, tag: f.event.tag, reason: f.error.reason, err: f.error.message, ...(written ? { dead_letter: this.opts.deadLetterFile } : {}) },
        written ? 'record cannot be delivered by this output: written to the dead letter' : 'record cannot be delivered by this output: dropped',
      );
    }
    this.settle(batch, true);
  }

  private async partial(batch: Batch, events: LogEvent[], e: RecordsFailed): Promise<void> {
    const delivered = events.length - e.failed.length - e.pending.length;
    if (delivered > 0) this.m.records.inc(delivered);
    if (e.pending.length === 0) {
      this.m.batches.inc();
      await this.poison(batch, e.failed);
      return;
    }
    if (e.failed.length) {
      // Taken out of the batch: only the pending records are sent again.
      for (const f of e.failed) {
        this.m.errors(f.error.reason).inc();
        this.m.dropped(f.error.reason).inc();
      }
      const written = await this.writeDeadLetter(
        e.failed.map((f) => ({ ev: f.event, err: f.error })),
        batch.attempts + 1,
      );
      for (const f of e.failed) {
        this.log.error(
          { output: this.id, tag: f.event.tag, reason: f.error.reason, err: f.error.message },
          written ? 'record cannot be delivered by this output: written to the dead letter' : 'record cannot be delivered by this output: dropped',
        );
      }
    }
    const keep = new Set(e.pending);
    for (const p of batch.parts) p.events = p.events.filter((ev) => keep.has(ev));
    await this.failed(batch, [...e.pending], e.pendingError ?? new DeliveryError(e.message, true, e.reason));
  }

  /**
   * Seconds before retry `attempt`: the backoff, or longer when the destination asked for it
   * (Retry-After), but never longer than scheduler.cap for that: a destination that asks for an
   * hour is tried again after cap seconds, as it would be without asking.
   */
  retryWait(attempt: number, err: DeliveryError): number {
    const backoff = this.backoff(attempt);
    const asked = err.retryAfter;
    if (asked === undefined || !(asked > 0)) return backoff;
    return Math.max(backoff, Math.min(asked, this.opts.cap));
  }

  /** Full jitter between base and min(cap, base * 2^n), as Fluent Bit's scheduler. */
  backoff(attempt: number): number {
    const ceiling = Math.min(this.opts.cap, this.opts.base * 2 ** attempt);
    return this.opts.base + Math.random() * Math.max(0, ceiling - this.opts.base);
  }

  private async deadLetter(batch: Batch, events: LogEvent[], err: DeliveryError, rejected: boolean): Promise<void> {
    this.m.dropped(err.reason).inc(events.length);
    let written = false;
    if (this.opts.deadLetterFile)
      written = await this.writeDeadLetter(
        events.map((ev) => ({ ev, err })),
        batch.attempts + 1,
      );
    else this.log.error({ output: this.id, records: events.length, reason: err.reason }, 'records dropped (no dead_letter_file / storage.path)');
    // A rejected batch is committed once it is on disk; otherwise the sender must resend. Either
    // way a written dead letter makes the data safe (the filesystem buffer may let it go).
    this.settle(batch, rejected && written, err.message, written);
  }

  /**
   * Appends one line per record to the dead-letter file; false when there is none or the write
   * failed (logged). Never throws: a record that cannot be serialised is written without it,
   * with the error instead.
   */
  private async writeDeadLetter(items: ReadonlyArray<{ ev: LogEvent; err: DeliveryError }>, attempts: number): Promise<boolean> {
    const file = this.opts.deadLetterFile;
    if (!file) return false;
    try {
      const at = new Date().toISOString();
      let text = '';
      for (const { ev, err } of items) {
        const head = `{"dead_letter_time":"${at}","output":${JSON.stringify(this.id)},"reason":${JSON.stringify(err.reason)},"error":${JSON.stringify(err.message)},"attempts":${attempts},"tag":${JSON.stringify(ev.tag)},"time":${JSON.stringify(ev.time.toISO())}`;
        let record: string;
        try {
          record = `"record":${recordJSON(ev.record)}`;
        } catch (e) {
          record = `"record_error":${JSON.stringify(`cannot serialise the record: ${(e as Error)?.message ?? String(e)}`)}`;
        }
        text += `${head},${record}}\n`;
      }
      await mkdir(dirname(file), { recursive: true });
      await appendFile(file, text);
      return true;
    } catch (e) {
      this.log.error({ output: this.id, file, err: (e as Error)?.message ?? String(e) }, 'cannot write dead letter');
      return false;
    }
  }

  private settle(batch: Batch, ok: boolean, reason?: string, safe = ok): void {
    // Once: a batch abandoned at the end of the grace period may still finish its dead letter.
    if (!this.live.delete(batch)) return;
    for (const p of batch.parts) p.commit.release(ok, reason, safe);
    this.pendingRecords -= batch.records;
    this.pendingBytes -= batch.bytes;
    this.updateDepth();
    if (this.pendingRecords === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /**
   * Sends what is queued now (retries are brought forward) and waits up to `graceMs`. Resolves
   * with the number of records still undelivered then (0: drained). Those batches are released as
   * failed and not safe, and their requests aborted: their senders were not acked and resend, the
   * filesystem buffer keeps their chunks for the next start.
   */
  async drain(graceMs: number): Promise<number> {
    this.closing = true;
    this.cut(true);
    for (const [t, batch] of this.retryTimers) {
      clearTimeout(t);
      this.retryTimers.delete(t);
      this.dispatch(batch);
    }
    if (this.pendingRecords === 0) return 0;
    const idle = new Promise<void>((r) => this.idleWaiters.push(r));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      idle.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (!timedOut) return 0;
    return this.abandon();
  }

  /** The grace period is over: releases every unsettled batch as undelivered and aborts the requests in flight. */
  private abandon(): number {
    this.closingHard = true;
    const records = this.pendingRecords;
    for (const t of this.retryTimers.keys()) clearTimeout(t);
    this.retryTimers.clear();
    this.pq.clear();
    const batches = [...this.live];
    for (const b of batches) {
      b.abandoned = true;
      this.settle(b, false, 'shutdown: grace period over', false);
    }
    this.shutdown.abort(new DeliveryError('shutdown: grace period over', true, 'shutdown'));
    this.log.warn({ output: this.id, records, batches: batches.length }, `grace period over: ${records} records of this output left undelivered (requests aborted, not committed)`);
    return records;
  }
}
