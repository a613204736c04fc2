/**
 * logwarden's own logs: JSON lines (pino), readable at a terminal with pino-pretty. No string in a
 * log line is longer than LOG_VALUE_CHARS: a received value (a 1 MB tag, an error quoting it) is
 * cut, with its length noted.
 */
import pino, { type Logger } from 'pino';

/** Longest text one received value (a tag, a hostname, an error about it) puts into the status. */
export const CLIP_CHARS = 1024;

/** `s` cut to `max` characters, with its full length noted. */
export function clip(s: string, max = CLIP_CHARS): string {
  return s.length <= max ? s : `${s.slice(0, max)}... (${s.length} characters)`;
}

/** Longest string of a log line: its message and each field (one level into objects, errors). */
export const LOG_VALUE_CHARS = 4096;

function clipValue(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return v.length > LOG_VALUE_CHARS ? clip(v, LOG_VALUE_CHARS) : v;
  if (depth > 1 || v === null || typeof v !== 'object') return v;
  if (v instanceof Error) {
    if (v.message.length <= LOG_VALUE_CHARS && (v.stack ?? '').length <= LOG_VALUE_CHARS) return v;
    return { type: v.name, message: clip(v.message, LOG_VALUE_CHARS), stack: clip(v.stack ?? '', LOG_VALUE_CHARS) };
  }
  if (Array.isArray(v)) return v.some((x) => typeof x === 'string' && x.length > LOG_VALUE_CHARS) ? v.map((x) => clipValue(x, depth + 1)) : v;
  if (Object.getPrototypeOf(v) !== Object.prototype) return v;
  let out: Record<string, unknown> | undefined;
  for (const [k, x] of Object.entries(v)) {
    const c = clipValue(x, depth + 1);
    if (c !== x) (out ??= { ...(v as Record<string, unknown>) })[k] = c;
  }
  return out ?? v;
}

const clipping = {
  formatters: { log: (obj: Record<string, unknown>) => clipValue(obj, 0) as Record<string, unknown> },
  hooks: {
    logMethod(this: Logger, args: unknown[], method: (...a: unknown[]) => void) {
      for (let i = 0; i < args.length; i++) {
        const a = args[i];
        if (typeof a === 'string' && a.length > LOG_VALUE_CHARS) args[i] = clip(a, LOG_VALUE_CHARS);
      }
      method.apply(this, args);
    },
  },
};

export function createLogger(level: string, format: string, destination: NodeJS.WritableStream | number = 2): Logger {
  const lvl = level === 'warning' ? 'warn' : level === 'off' ? 'silent' : level;
  const fd = typeof destination === 'number' ? destination : undefined;
  const pretty = format === 'pretty' || (format === 'auto' && fd !== undefined && process.stderr.isTTY && !process.env.CI);
  if (pretty) {
    return pino({ level: lvl, base: undefined, ...clipping }, pino.transport({ target: 'pino-pretty', options: { destination: fd ?? 2, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } }));
  }
  return pino(
    { level: lvl, base: undefined, timestamp: pino.stdTimeFunctions.isoTime, ...clipping },
    fd !== undefined ? pino.destination({ fd, sync: false }) : (destination as NodeJS.WritableStream),
  );
}
