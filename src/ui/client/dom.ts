/**
 * DOM building without HTML parsing: every piece of data reaches the page as a Text node or an
 * attribute value set through the DOM, never through innerHTML (the CSP's Trusted Types rule
 * makes such an assignment throw anyway).
 */

type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Record<string, string> | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) for (const k of Object.keys(attrs)) el.setAttribute(k, attrs[k]!);
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'number' ? String(c) : c);
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';

export function svg(tag: string, attrs: Record<string, string>): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const k of Object.keys(attrs)) el.setAttribute(k, attrs[k]!);
  return el;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page element #${id} missing`);
  return el as T;
}

export function clear(el: Element): void {
  el.replaceChildren();
}

export function fmtNum(n: number): string {
  if (!Number.isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

export function fmtRate(n: number | null): string {
  return n === null ? '–/s' : `${fmtNum(n < 10 ? Math.round(n * 10) / 10 : Math.round(n))}/s`;
}

export function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export function fmtDuration(s: number): string {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** Local time, with the date when it is not today. */
export function fmtTime(ms: number): string {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return '?';
  const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const today = new Date();
  if (d.toDateString() === today.toDateString()) return t;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${t}`;
}

const pad3 = (n: number) => String(n).padStart(3, '0');

function offset(d: Date): string {
  const m = -d.getTimezoneOffset();
  const a = Math.abs(m);
  return `${m < 0 ? '-' : '+'}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

/** ISO 8601 in local time with its UTC offset, to the millisecond: `2026-12-02T18:09:00.123+01:00`. */
export function fmtLocalISO(ms: number, fraction?: string): string {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return '?';
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${fraction ?? pad3(d.getMilliseconds())}`;
  return `${date}T${time}${offset(d)}`;
}

/**
 * A nanosecond timestamp (Falco writes evt.time and evt.rawtime in output_fields as integer
 * nanoseconds since the epoch) as a local ISO date with all nine digits; undefined when the value
 * is not one (an integer from 1e17 to 1e19: the years 1973 to 2286).
 */
export function fmtNanos(v: unknown): string | undefined {
  let ns: bigint;
  if (typeof v === 'bigint') ns = v;
  else if (typeof v === 'number' && Number.isInteger(v)) ns = BigInt(v);
  else if (typeof v === 'string' && /^\d{18,19}$/.test(v)) ns = BigInt(v);
  else return undefined;
  if (ns < 10n ** 17n || ns >= 10n ** 19n) return undefined;
  const ms = Number(ns / 1_000_000n);
  return fmtLocalISO(ms, String(ns % 1_000_000_000n).padStart(9, '0'));
}

/** A string date (ISO 8601, as Falco's `time`) in local time; the text itself when it is not one. */
export function fmtDateText(text: string): string {
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) return text;
  const frac = /\.(\d+)/.exec(text)?.[1];
  return fmtLocalISO(ms, frac && frac.length > 3 ? frac.slice(0, 9) : undefined);
}
