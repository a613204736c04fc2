/**
 * Falco rule priorities (falco_common.cpp): parsed case-insensitively, `info` is an alias of
 * `informational`; printed capitalised ("Warning") in alert records and output lines.
 */

/** Most severe first, as Falco numbers them (EMERGENCY = 0 ... DEBUG = 7). */
export const PRIORITY_NAMES = ['Emergency', 'Alert', 'Critical', 'Error', 'Warning', 'Notice', 'Informational', 'Debug'] as const;
export type PriorityName = (typeof PRIORITY_NAMES)[number];

/** 0 (Emergency) ... 7 (Debug); undefined when the text is no priority. */
export function parsePriority(text: string): number | undefined {
  const s = text.trim().toLowerCase();
  if (s === 'info') return 6;
  const i = PRIORITY_NAMES.findIndex((p) => p.toLowerCase() === s);
  return i < 0 ? undefined : i;
}

export function priorityName(n: number): PriorityName {
  return PRIORITY_NAMES[n]!;
}

/** Accepted spellings, for error messages and option tables. */
export const PRIORITY_VALUES = ['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'informational', 'info', 'debug'] as const;
