/** Shared by the commands that load a pipeline. */
import type { Logger } from 'pino';
import { loadConfigFile } from '../config/load.js';
import { plan, type Plan } from '../core/plan.js';
import { registry } from '../plugins.js';
import { createLogger } from '../observe/log.js';
import { nativeAcceleration } from '../core/msgpack.js';

export function loadPlan(file: string): Plan {
  return plan(loadConfigFile(file), registry);
}

export function loggerFor(p: Plan, levelOverride?: string): Logger {
  const log = createLogger(levelOverride ?? p.service.log_level, p.service.log_format);
  if (!nativeAcceleration) log.warn('msgpackr native addon not available: decoding runs in pure JavaScript (slower)');
  return log;
}
