/** The `service` section: Fluent Bit's names and defaults where it has them. */
import type { OptionTable } from './schema.js';

export const serviceOptions = {
  flush: { type: 'duration', default: 1, description: 'Default flush interval (seconds) of outputs that batch by age (batch_wait default)' },
  grace: { type: 'duration', default: 5, description: 'Seconds to drain queued events on SIGTERM/SIGINT before exiting' },
  log_level: {
    type: 'enum',
    values: ['off', 'error', 'warn', 'warning', 'info', 'debug', 'trace'],
    default: 'info',
    description: 'Level of logwarden\'s own logs',
  },
  log_format: { type: 'enum', values: ['auto', 'json', 'pretty'], default: 'auto', description: 'Own logs as JSON, or readable (auto: readable on a terminal)' },
  http_server: { type: 'bool', default: false, description: 'Serve /metrics, /healthz and /readyz' },
  http_listen: { type: 'string', default: '0.0.0.0', description: 'Address of the HTTP server' },
  http_port: { type: 'int', default: 2020, min: 0, max: 65535, description: 'Port of the HTTP server' },
  'scheduler.base': { type: 'duration', default: 5, description: 'Base of the retry backoff in seconds (Fluent Bit: 5)' },
  'scheduler.cap': { type: 'duration', default: 2000, description: 'Cap of the retry backoff in seconds (Fluent Bit: 2000)' },
  'storage.path': { type: 'string', description: 'Directory for dead letters and (with storage.type filesystem) the chunk buffer' },
  parsers_file: { type: 'multi', description: 'Parser files (YAML with a parsers: list, or Fluent Bit classic [PARSER] sections)' },
  memory_limit: {
    type: 'size',
    default: '256M',
    description: 'Upper bound for queued records across outputs; each output queue gets its share unless it sets its own',
  },
} satisfies OptionTable;

export interface ServiceConfig {
  flush: number;
  grace: number;
  log_level: string;
  log_format: string;
  http_server: boolean;
  http_listen: string;
  http_port: number;
  'scheduler.base': number;
  'scheduler.cap': number;
  'storage.path'?: string;
  parsers_file?: string[];
  memory_limit: number;
  [key: string]: unknown;
}
