/**
 * The plugin table: the one place plugins are registered. The core never names a plugin; it
 * looks them up here by kind and name.
 */
import type { AnyPlugin } from './core/plugin.js';
import { forwardInput } from './inputs/forward/index.js';
import { auditPolicy } from './filters/audit_policy/index.js';
import { lookup } from './filters/lookup/index.js';
import { lokiOutput } from './outputs/loki/index.js';
import { alertmanagerOutput } from './outputs/alertmanager/index.js';
import { fileOutput } from './outputs/file/index.js';
import { stdoutOutput } from './outputs/stdout/index.js';
import type { Registry } from './core/pipeline.js';
import { buildParsers } from './parsers/index.js';

export const plugins: AnyPlugin[] = [
  // inputs
  forwardInput,
  // filters
  auditPolicy,
  lookup,
  // outputs
  fileOutput,
  lokiOutput,
  alertmanagerOutput,
  stdoutOutput,
];

export const registry: Registry = {
  find: (kind, name) => plugins.find((p) => p.kind === kind && p.name === name.toLowerCase()),
  names: (kind) => plugins.filter((p) => p.kind === kind).map((p) => p.name),
  buildParsers,
};
