/**
 * The `k8s_audit_webhook` input: the receiving end of the Kubernetes API server's audit webhook
 * backend (--audit-webhook-config-file), as Falco's k8saudit plugin serves it (default
 * `http://:9765/k8s-audit`). The API server POSTs `audit.k8s.io/v1` EventLists as
 * application/json (batch mode; blocking mode sends one Event per list); every item becomes one
 * event tagged `kube.audit`, timed by its stageTimestamp with nanoseconds.
 *
 * The answer is 200 only once the events are committed: the API server retries any other
 * answer (503 + Retry-After under backpressure or when the commit failed), so no audit event is
 * lost while the pipeline is full or an output is down, within the API server's own retry
 * budget. See ../http-common.ts for the listener, limits and the 503 rationale.
 */
import type http from 'node:http';
import type { OptionTable } from '../../config/schema.js';
import { auditEventTime } from '../../k8s-audit/audit-event.js';
import { nestedDeeperThan } from '../../core/json.js';
import { MAX_DEPTH } from '../../core/msgpack-scan.js';
import { EventTime, type LogEvent } from '../../core/event.js';
import { definePlugin } from '../../core/plugin.js';
import { HttpError, HttpInput, httpServerOptions, mediaType, prepareHttpServer, type HttpEndpoint, type RequestLog } from '../http-common.js';
import { expandWebhookBody } from './events.js';

export const DEFAULT_TAG = 'kube.audit';

const options = {
  ...httpServerOptions({
    port: 9765,
    // Falco k8saudit's webhookMaxBatchSize: 20% above the API server's
    // --audit-webhook-truncate-max-batch-size default (10485760).
    buffer_max_size: '12Mi',
    buffer_max_size_note: "Falco k8saudit's webhookMaxBatchSize: 12Mi (12582912).",
    retry_after: 5,
  }),
  path: {
    type: 'string',
    default: '/k8s-audit',
    description: 'URL path the API server POSTs to (the path of the server URL in its webhook kubeconfig)',
    check: (v) => (String(v).startsWith('/') && !String(v).includes('?') ? undefined : "expected a path starting with '/', without a query"),
  },
} as const satisfies OptionTable;

function describe(v: unknown): string {
  if (v === null || typeof v !== 'object') return `a JSON ${v === null ? 'null' : typeof v}`;
  if (Array.isArray(v)) return 'an array without audit Events';
  const o = v as Record<string, unknown>;
  const show = (x: unknown) => (x === undefined ? 'none' : JSON.stringify(x).slice(0, 60));
  return `an object with kind ${show(o.kind)} and apiVersion ${show(o.apiVersion)}`;
}

class WebhookEndpoint implements HttpEndpoint<null> {
  readonly successStatus = 200;
  readonly successHeaders = {};

  constructor(
    private readonly path: string,
    private readonly tag: string,
  ) {}

  check(req: http.IncomingMessage, path: string): null {
    if (path !== this.path) throw new HttpError(404, `not found: the audit webhook listens on ${this.path}`, 'not_found');
    if (req.method !== 'POST') throw new HttpError(405, `method ${req.method} not allowed; POST audit EventLists`, 'bad_method', { Allow: 'POST' });
    const media = mediaType(req);
    if (media !== 'application/json') {
      throw new HttpError(
        415,
        `Content-Type ${media === undefined ? 'is not set' : `'${media}' is not supported`}; expected application/json (an audit.k8s.io EventList or Event)`,
        'bad_content_type',
      );
    }
    return null;
  }

  decode(body: Buffer, _state: null, _req: http.IncomingMessage, log: RequestLog): LogEvent[] {
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw new HttpError(400, `invalid JSON: ${(e as Error).message}`, 'malformed');
    }
    // Serialising or evaluating a deeper value would recurse past the stack, far from here.
    if (nestedDeeperThan(value, MAX_DEPTH)) throw new HttpError(400, `refused: JSON nested deeper than ${MAX_DEPTH} levels`, 'too_deep');
    const found = expandWebhookBody(value);
    if (found === null || (found.events.length === 0 && found.skipped > 0)) {
      throw new HttpError(
        400,
        `not Kubernetes audit data: expected an audit.k8s.io EventList or Event, found ${found === null ? describe(value) : `${found.skipped} items none of which is an audit Event (an object with an auditID)`}`,
        'not_audit',
      );
    }
    const items = found.events;
    if (found.skipped > 0) log.report('not_audit_event', found.skipped, 'list items that are not audit Events (objects with an auditID) skipped');
    let received: EventTime | undefined;
    let untimed = 0;
    const events: LogEvent[] = new Array(items.length);
    for (let i = 0; i < items.length; i++) {
      const record = items[i]!;
      let time = auditEventTime(record);
      if (time === null) {
        untimed++;
        time = received ??= EventTime.now();
      }
      events[i] = { tag: this.tag, time, record };
    }
    if (untimed > 0) {
      log.report('no_timestamp', untimed, 'audit Events without an RFC 3339 stageTimestamp or requestReceivedTimestamp; timed at receipt');
    }
    return events;
  }
}

export const k8sAuditWebhookInput = definePlugin({
  kind: 'input',
  name: 'k8s_audit_webhook',
  description: "Receives the Kubernetes API server's audit webhook (audit.k8s.io EventLists over HTTP(S)), as Falco's k8saudit plugin does",
  options,
  prepare(c, section) {
    const serverTls = prepareHttpServer(c, section);
    return { config: c, serverTls };
  },
  create({ config: c, serverTls }, ctx) {
    return new HttpInput(c, ctx, new WebhookEndpoint(c.path, c.tag ?? DEFAULT_TAG), 'audit webhook input', serverTls);
  },
});
