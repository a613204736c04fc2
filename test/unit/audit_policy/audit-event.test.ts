/** src/k8s-audit/audit-event.ts: recognising Events, expanding lists, reading them from records. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { auditEventTime, expandAuditEvents, isAuditEvent, isAuditEventList, readAuditValue } from '../../../src/k8s-audit/audit-event.js';
import { EventTime } from '../../../src/core/event.js';

const event = (id: string, extra: Record<string, unknown> = {}) => ({ kind: 'Event', apiVersion: 'audit.k8s.io/v1', auditID: id, ...extra });

test('isAuditEvent / isAuditEventList look at kind and apiVersion', () => {
  assert.ok(isAuditEvent(event('a')));
  assert.ok(isAuditEvent({ kind: 'Event', apiVersion: 'audit.k8s.io/v1beta1' }));
  assert.ok(!isAuditEvent({ kind: 'Event', apiVersion: 'v1' }), 'a core/v1 Event');
  assert.ok(!isAuditEvent({ kind: 'Event', apiVersion: 'events.k8s.io/v1' }));
  assert.ok(!isAuditEvent([event('a')]));
  assert.ok(!isAuditEvent(null));
  assert.ok(isAuditEventList({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items: [] }));
  assert.ok(!isAuditEventList({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1' }), 'items is required');
});

test('expandAuditEvents: an Event, an EventList, an array; null for anything else', () => {
  const a = event('a');
  assert.equal(expandAuditEvents(a)![0], a, 'not copied');
  const skipped = { count: 0 };
  const list = { kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items: [event('b'), { kind: 'Status' }, event('c')] };
  assert.deepEqual(
    expandAuditEvents(list, skipped)!.map((e) => e.auditID),
    ['b', 'c'],
  );
  assert.equal(skipped.count, 1);
  assert.deepEqual(
    expandAuditEvents([event('d'), list, 42], skipped)!.map((e) => e.auditID),
    ['d', 'b', 'c'],
  );
  assert.equal(skipped.count, 3);
  assert.deepEqual(expandAuditEvents({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items: [] }), []);
  assert.equal(expandAuditEvents({ log: 'x' }), null);
  assert.equal(expandAuditEvents('text'), null);
});

test('readAuditValue: the record, a map or a JSON string under key_name, and why not', () => {
  const r = { log: JSON.stringify(event('a')), m: event('b'), n: 5, bad: '{', bin: Buffer.from(JSON.stringify(event('c'))) };
  assert.deepEqual(readAuditValue(r), { value: r, source: 'record' });
  assert.deepEqual(readAuditValue(r, 'log'), { value: event('a'), source: 'string' });
  assert.deepEqual(readAuditValue(r, 'm'), { value: r.m, source: 'map' });
  assert.deepEqual(readAuditValue(r, 'bin'), { value: event('c'), source: 'string' });
  assert.deepEqual(readAuditValue(r, 'absent'), { error: 'missing_key' });
  assert.deepEqual(readAuditValue(r, 'n'), { error: 'wrong_type', detail: 'number' });
  assert.equal((readAuditValue(r, 'bad') as { error: string }).error, 'not_json');
  assert.deepEqual(readAuditValue(Object.create({ inherited: '{}' }) as Record<string, unknown>, 'inherited'), { error: 'missing_key' });
});

test('auditEventTime: stageTimestamp, else requestReceivedTimestamp, with nanoseconds', () => {
  const sec = Date.parse('2025-03-11T14:02:54Z') / 1000;
  assert.deepEqual(auditEventTime(event('a', { stageTimestamp: '2025-03-11T14:02:54.385417123Z', requestReceivedTimestamp: '2025-03-11T14:02:53Z' })), new EventTime(sec, 385417123));
  assert.deepEqual(auditEventTime(event('a', { stageTimestamp: 'yesterday', requestReceivedTimestamp: '2025-03-11T14:02:54.5Z' })), new EventTime(sec, 500000000));
  assert.equal(auditEventTime(event('a')), null);
});
