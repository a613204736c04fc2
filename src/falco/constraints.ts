/**
 * What the rule index (engine.ts) learns from a planned condition: the values a field must have
 * for the condition to be true, found by walking its and/or/check nodes.
 */
import type { PlanNode } from './compile.js';

/**
 * For index building: the values of slot `slot` that `n` can possibly be true with, or null
 * when any value (or absence) may do.
 */
export function allowedValues(root: PlanNode, slot: number, memo = new Map<number, ReadonlySet<string> | null>()): ReadonlySet<string> | null {
  const stack: Array<{ n: PlanNode; i: number }> = [{ n: root, i: 0 }];
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    const n = f.n;
    if (memo.has(n.id)) {
      stack.pop();
      continue;
    }
    if (f.i < n.children.length) {
      const c = n.children[f.i++]!;
      if (!memo.has(c.id)) stack.push({ n: c, i: 0 });
      continue;
    }
    stack.pop();
    let res: ReadonlySet<string> | null = null;
    if (n.kind === 'check') res = n.constraint && n.constraint.slot === slot ? n.constraint.values : null;
    else if (n.kind === 'and') {
      for (const c of n.children) {
        const a = memo.get(c.id)!;
        if (a === null) continue;
        res = intersect(res as ReadonlySet<string> | null, a);
      }
    } else if (n.kind === 'or') {
      const u = new Set<string>();
      res = u;
      for (const c of n.children) {
        const a = memo.get(c.id)!;
        if (a === null) {
          res = null;
          break;
        }
        for (const x of a) u.add(x);
      }
    }
    memo.set(n.id, res);
  }
  return memo.get(root.id)!;
}

function intersect(a: ReadonlySet<string> | null, b: ReadonlySet<string>): ReadonlySet<string> {
  if (a === null) return b;
  const out = new Set<string>();
  for (const x of a) if (b.has(x)) out.add(x);
  return out;
}
