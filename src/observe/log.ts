/** logwarden's own logs: JSON lines (pino), readable at a terminal with pino-pretty. */
import pino, { type Logger } from 'pino';

export function createLogger(level: string, format: string, destination: NodeJS.WritableStream | number = 2): Logger {
  const lvl = level === 'warning' ? 'warn' : level === 'off' ? 'silent' : level;
  const fd = typeof destination === 'number' ? destination : undefined;
  const pretty = format === 'pretty' || (format === 'auto' && fd !== undefined && process.stderr.isTTY && !process.env.CI);
  if (pretty) {
    return pino(
      { level: lvl, base: undefined },
      pino.transport({ target: 'pino-pretty', options: { destination: fd ?? 2, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } }),
    );
  }
  return pino(
    { level: lvl, base: undefined, timestamp: pino.stdTimeFunctions.isoTime },
    fd !== undefined ? pino.destination({ fd, sync: false }) : (destination as NodeJS.WritableStream),
  );
}
