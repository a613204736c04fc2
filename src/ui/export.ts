/**
 * The filtered alert list as a file: JSON lines (one alert per line, as GET /api/v1/alerts/ID
 * answers it) or CSV (RFC 4180: comma-separated, CRLF line ends, fields with a comma, quote, CR
 * or LF quoted, quotes doubled).
 */
import type { AlertSummary } from './alerts.js';

export type ExportFormat = 'jsonl' | 'csv';

export const EXPORT_TYPES: Record<ExportFormat, string> = {
  jsonl: 'application/x-ndjson; charset=utf-8',
  csv: 'text/csv; charset=utf-8; header=present',
};

export const CSV_COLUMNS = ['id', 'received', 'time', 'priority', 'rule', 'source', 'hostname', 'namespace', 'user', 'tags', 'output'] as const;

/**
 * One CSV field. A value a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`,
 * tab or CR) is prefixed with `'`, as OWASP advises against CSV injection: alert text is chosen
 * by whoever caused the audit event.
 */
export function csvField(v: string): string {
  const safe = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

export function csvHeader(): string {
  return `${CSV_COLUMNS.join(',')}\r\n`;
}

export function csvRow(a: AlertSummary): string {
  const cells: string[] = [String(a.id), new Date(a.received).toISOString(), a.time, a.priority, a.rule, a.source, a.hostname ?? '', a.namespace ?? '', a.user ?? '', a.tags.join(','), a.output];
  return `${cells.map(csvField).join(',')}\r\n`;
}

/** A JSON line of an alert's stored JSON text (which holds no raw newline: JSON escapes them). */
export function jsonLine(json: string): string {
  return `${json}\n`;
}

/** `logwarden-alerts-20260102T030405Z.csv` for a time (ms). */
export function exportFileName(format: ExportFormat, now: number): string {
  const stamp = new Date(now)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `logwarden-alerts-${stamp}.${format}`;
}
