/**
 * The compiled form of conditions: the errors and warnings of compilation, the per-event
 * evaluation state, predicates, and the nodes of the shared condition DAG. The operators are in
 * operators.ts, the compiler of a rule set's conditions (Program) in program.ts; resolve.ts
 * inlines macros and substitutes lists before.
 *
 * Missing fields behave as in libsinsp: every comparison on an absent field is false (`!=`
 * included), `exists` is false, and `not` simply negates.
 */
import type { AuditEvent } from './event.js';
import type { FieldValue } from './fields.js';
import type { Pos } from './parser.js';

export class CompileError extends Error {
  constructor(
    message: string,
    readonly pos?: Pos,
  ) {
    super(message);
    this.name = 'CompileError';
  }
}

export interface CompileWarning {
  message: string;
  pos?: Pos;
}

// ---------------------------------------------------------------------------------------------
// Runtime

/** Per-event evaluation state, reused for every event (no allocation per event). */
export class EvalContext {
  ev!: AuditEvent;
  epoch = 0;
  readonly fEpoch: Int32Array;
  readonly fVal: FieldValue[];
  readonly mEpoch: Int32Array;
  readonly mVal: Uint8Array;
  /** Checks that failed at evaluation time (an operator a list field does not support). */
  runtimeErrors = 0;

  constructor(slots: number, memos: number) {
    this.fEpoch = new Int32Array(slots);
    this.fVal = new Array<FieldValue>(slots).fill(undefined);
    this.mEpoch = new Int32Array(memos);
    this.mVal = new Uint8Array(memos);
  }

  begin(ev: AuditEvent): void {
    this.ev = ev;
    if (++this.epoch === 0x7fffffff) {
      this.epoch = 1;
      this.fEpoch.fill(0);
      this.mEpoch.fill(0);
    }
  }
}

export type Pred = (c: EvalContext) => boolean;

/** A node of the shared condition DAG. */
export interface PlanNode {
  id: number;
  key: string;
  kind: 'and' | 'or' | 'not' | 'check';
  children: PlanNode[];
  refs: number;
  /** For checks: the predicate builder. */
  make?: () => Pred;
  /** For checks of the form `plain_field = v` / `in (...)`: the slot and accepted values. */
  constraint?: { slot: number; values: ReadonlySet<string> };
}

/** `a and b and ...`, unrolled for two and three children. */
export function andOf(cs: Pred[]): Pred {
  if (cs.length === 2) {
    const [a, b] = cs as [Pred, Pred];
    return (c) => a(c) && b(c);
  }
  if (cs.length === 3) {
    const [a, b, d] = cs as [Pred, Pred, Pred];
    return (c) => a(c) && b(c) && d(c);
  }
  return (c) => {
    for (let i = 0; i < cs.length; i++) if (!cs[i]!(c)) return false;
    return true;
  };
}

/** `a or b or ...`, unrolled for two children. */
export function orOf(cs: Pred[]): Pred {
  if (cs.length === 2) {
    const [a, b] = cs as [Pred, Pred];
    return (c) => a(c) || b(c);
  }
  return (c) => {
    for (let i = 0; i < cs.length; i++) if (cs[i]!(c)) return true;
    return false;
  };
}
