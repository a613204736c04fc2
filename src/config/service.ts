/** The `service` section: Fluent Bit's names and defaults where it has them. */
import { resolve } from 'node:path';
import { isPostgresUrl } from '../ui/store.js';
import { ConfigError } from './errors.js';
import type { OptionTable, RawSection } from './schema.js';

export const serviceOptions = {
  flush: { type: 'duration', fluentBit: 'atof', default: 1, description: 'Default flush interval (seconds) of outputs that batch by age (batch_wait default)' },
  grace: {
    type: 'duration',
    fluentBit: 'atoi',
    default: 5,
    description: 'Seconds to drain queued events on SIGTERM/SIGINT before exiting; requests still in flight then are aborted and their events not committed',
  },
  log_level: {
    type: 'enum',
    values: ['off', 'error', 'warn', 'warning', 'info', 'debug', 'trace'],
    default: 'info',
    description: "Level of logwarden's own logs",
  },
  log_format: { type: 'enum', values: ['auto', 'json', 'pretty'], default: 'auto', description: 'Own logs as JSON, or readable (auto: readable on a terminal)' },
  http_server: { type: 'bool', default: false, description: 'Serve /metrics, /healthz and /readyz' },
  http_listen: { type: 'string', default: '0.0.0.0', description: 'Address of the HTTP server' },
  http_port: { type: 'int', default: 2020, min: 0, max: 65535, description: 'Port of the HTTP server' },
  'scheduler.base': { type: 'duration', fluentBit: 'atoi', default: 5, description: 'Base of the retry backoff in seconds (Fluent Bit: 5)' },
  'scheduler.cap': { type: 'duration', fluentBit: 'atoi', default: 2000, description: 'Cap of the retry backoff in seconds (Fluent Bit: 2000), also of a wait a Retry-After asks for' },
  'storage.path': { type: 'string', description: 'Directory for dead letters and (with storage.type filesystem) the chunk buffer' },
  'storage.sync': {
    type: 'enum',
    values: ['normal', 'full'],
    default: 'normal',
    description: 'normal: a chunk is acked once written (survives a crash of logwarden, not of the machine); full: once fsynced with its directory (survives power loss)',
  },
  'storage.checksum': { type: 'bool', default: false, description: 'CRC32 over each buffered chunk, verified when it is read back (Fluent Bit default: off)' },
  'storage.max_chunks_up': {
    type: 'int',
    default: 128,
    min: 1,
    description: 'Filesystem-buffered chunks held in memory and queued to outputs at once (within memory_limit); the others wait on disk ("down")',
  },
  'storage.backlog.mem_limit': {
    type: 'size',
    default: '100M',
    min: 1,
    description: 'Bytes of buffered chunk files read back into memory at once (the backlog after a restart, and chunks that went down)',
  },
  parsers_file: { type: 'multi', description: 'Parser files (YAML with a parsers: list, or Fluent Bit classic [PARSER] sections)' },
  memory_limit: {
    type: 'size',
    default: '256Mi',
    description:
      'Memory for queued records: each output queue gets its share (wire bytes) unless it sets its own; filesystem-buffered events in memory get half of it, estimated at 3x their chunk file bytes, and chunks waiting for their write an eighth. One received frame or request may take a quarter of it once decoded, and the partial frames of a forward input a quarter',
  },
  ui: {
    type: 'bool',
    default: false,
    description: 'Serve the web page (live alerts from ui outputs, pipeline health) at / of the HTTP server; needs http_server',
  },
  'ui.max_alerts': { type: 'int', default: 10000, min: 1, max: 1_000_000, description: 'Alerts the web page keeps (the oldest are dropped first)' },
  'ui.retention': {
    type: 'duration',
    default: 0,
    description: 'Drop alerts this long after they arrived (e.g. 7d); 0: keep them until ui.max_alerts pushes them out',
  },
  'ui.db_path': { type: 'string', description: 'SQLite file that keeps the alerts across restarts (relative paths: from the config file); default: memory only' },
  'ui.store': {
    type: 'string',
    default: 'memory',
    description:
      'Where the page keeps its alerts: memory (with ui.db_path: a SQLite file) for one process, or a postgres:// URL for a PostgreSQL database that all replicas share (password in the URL or PGPASSWORD; TLS by sslmode)',
  },
  'ui.http_user': { type: 'string', description: 'Basic auth user for the web page and its API (with ui.http_passwd)' },
  'ui.http_passwd': { type: 'string', description: 'Basic auth password (with ui.http_user)' },
  'ui.bearer_token': { type: 'string', description: 'Bearer token accepted by the web page API (Authorization: Bearer TOKEN)' },
  'ui.alertmanager_url': {
    type: 'string',
    description: 'Alertmanager base URL (http:// or https://) where muting an alert group on the page also creates a silence (POST /api/v2/silences)',
  },
  workers: {
    type: 'int',
    default: 1,
    min: 1,
    max: 64,
    description:
      'Processes that run the pipeline side by side (one per core); connections are spread over them, each worker acks its own connections, and the service HTTP server aggregates their metrics',
  },
} satisfies OptionTable;

/**
 * Checks across service options, and paths made absolute; `section` is the raw service section
 * (positions, and the directory relative paths resolve against).
 */
export function checkService(service: ServiceConfig, section: RawSection): ConfigError[] {
  const errors: ConfigError[] = [];
  const at = (k: string) => {
    const key = Object.keys(section.values).find((x) => x.toLowerCase() === k);
    return (key === undefined ? undefined : (section.keyPos[key] ?? section.valuePos[key])) ?? section.pos;
  };
  const valueAt = (k: string) => {
    const key = Object.keys(section.values).find((x) => x.toLowerCase() === k);
    return (key === undefined ? undefined : (section.valuePos[key] ?? section.keyPos[key])) ?? section.pos;
  };
  if (service.ui && !service.http_server) {
    errors.push(new ConfigError('the web page is served by the service HTTP server: set http_server: on', at('ui'), 'ui'));
  }
  if (!service.ui) {
    for (const key of Object.keys(section.values)) {
      if (key.toLowerCase().startsWith('ui.')) errors.push(new ConfigError('has no effect unless ui: on', at(key.toLowerCase()), key));
    }
  }
  if ((service['ui.http_user'] === undefined) !== (service['ui.http_passwd'] === undefined)) {
    const missing = service['ui.http_user'] === undefined ? 'ui.http_user' : 'ui.http_passwd';
    const given = missing === 'ui.http_user' ? 'ui.http_passwd' : 'ui.http_user';
    errors.push(new ConfigError(`set ${missing} too: basic auth needs both`, at(given), given));
  }
  for (const k of ['ui.http_user', 'ui.http_passwd', 'ui.bearer_token'] as const) {
    if (service[k] === '') errors.push(new ConfigError('found an empty string, expected a non-empty credential', at(k), k));
  }
  if (service['ui.db_path']) service['ui.db_path'] = resolve(section.baseDir, service['ui.db_path']);
  const store = service['ui.store'];
  const shared = store !== undefined && isPostgresUrl(store);
  if (store !== undefined && store !== 'memory' && !shared) {
    errors.push(new ConfigError(`found ${JSON.stringify(store.slice(0, 40))}, expected memory or a postgres:// URL`, valueAt('ui.store'), 'ui.store'));
  } else if (shared) {
    try {
      new URL(store);
    } catch {
      errors.push(new ConfigError('not a valid URL (special characters in the password must be percent-encoded)', valueAt('ui.store'), 'ui.store'));
    }
    if (service['ui.db_path'] !== undefined) {
      errors.push(new ConfigError("keeps one process's alerts in a file: remove it, ui.store is a shared database", at('ui.db_path'), 'ui.db_path'));
    }
  }
  const am = service['ui.alertmanager_url'];
  if (am !== undefined) {
    let ok = false;
    try {
      const u = new URL(am);
      ok = (u.protocol === 'http:' || u.protocol === 'https:') && u.search === '' && u.hash === '';
    } catch {
      ok = false;
    }
    if (!ok)
      errors.push(
        new ConfigError(`found ${JSON.stringify(am)}, expected an http:// or https:// URL without query (the Alertmanager's base URL)`, valueAt('ui.alertmanager_url'), 'ui.alertmanager_url'),
      );
  }
  if (service.workers > 1 && service.ui && !shared) {
    errors.push(new ConfigError('the web page keeps its alerts in one process: set workers: 1 with ui: on, or a shared ui.store (postgres://...)', at('workers'), 'workers'));
  }
  return errors;
}

export interface ServiceConfig {
  workers: number;
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
  'storage.sync': string;
  'storage.checksum': boolean;
  'storage.max_chunks_up': number;
  'storage.backlog.mem_limit': number;
  parsers_file?: string[];
  memory_limit: number;
  ui: boolean;
  'ui.max_alerts': number;
  'ui.retention': number;
  'ui.db_path'?: string;
  'ui.store'?: string;
  'ui.http_user'?: string;
  'ui.http_passwd'?: string;
  'ui.bearer_token'?: string;
  'ui.alertmanager_url'?: string;
  [key: string]: unknown;
}
