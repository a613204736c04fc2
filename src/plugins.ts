/**
 * The plugin table: the one place plugins are registered. The core never names a plugin; it
 * looks them up here by kind and name.
 */
import type { AnyPlugin } from './core/plugin.js';
import { forwardInput } from './inputs/forward/index.js';
import { httpInput } from './inputs/http/index.js';
import { k8sAuditWebhookInput } from './inputs/k8s_audit_webhook/index.js';
import { auditPolicy } from './filters/audit_policy/index.js';
import { parserFilter } from './filters/parser/index.js';
import { grepFilter } from './filters/grep/index.js';
import { modifyFilter } from './filters/modify/index.js';
import { recordModifierFilter } from './filters/record_modifier/index.js';
import { nestFilter } from './filters/nest/index.js';
import { rewriteTagFilter } from './filters/rewrite_tag/index.js';
import { throttleFilter } from './filters/throttle/index.js';
import { lookup } from './filters/lookup/index.js';
import { detect } from './filters/detect/index.js';
import { lokiOutput } from './outputs/loki/index.js';
import { alertmanagerOutput } from './outputs/alertmanager/index.js';
import { fileOutput } from './outputs/file/index.js';
import { stdoutOutput } from './outputs/stdout/index.js';
import { uiOutput } from './outputs/ui/index.js';
import { forwardOutput } from './outputs/forward/index.js';
import { nullOutput } from './outputs/null/index.js';
import type { Registry } from './core/plan.js';
import { buildParsers } from './parsers/index.js';

export const plugins: AnyPlugin[] = [
  // inputs
  forwardInput,
  httpInput,
  k8sAuditWebhookInput,
  // filters
  auditPolicy,
  parserFilter,
  grepFilter,
  modifyFilter,
  recordModifierFilter,
  nestFilter,
  rewriteTagFilter,
  throttleFilter,
  lookup,
  detect,
  // outputs
  fileOutput,
  lokiOutput,
  alertmanagerOutput,
  stdoutOutput,
  uiOutput,
  forwardOutput,
  nullOutput,
];

export const registry: Registry = {
  find: (kind, name) => plugins.find((p) => p.kind === kind && p.name === name.toLowerCase()),
  names: (kind) => plugins.filter((p) => p.kind === kind).map((p) => p.name),
  buildParsers,
};
