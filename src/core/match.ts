/** Fluent Bit tag routing: `match` with '*' wildcards, or `match_regex` (RE2: linear time). */
import { compileRegex } from './safe-regex.js';

export type TagMatcher = (tag: string) => boolean;

export function compileMatch(match: string | undefined, matchRegex: string | undefined): TagMatcher | null {
  if (matchRegex !== undefined) {
    const re = compileRegex(matchRegex, { syntax: 'plain' });
    return (tag) => re.test(tag);
  }
  if (match === undefined) return null;
  if (match === '*') return () => true;
  if (!match.includes('*')) return (tag) => tag === match;
  const re = new RegExp(
    `^${match
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return (tag) => re.test(tag);
}
