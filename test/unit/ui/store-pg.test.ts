/**
 * The PostgreSQL store's SQL, checked without a database: filters give the same answers as the
 * memory store's predicate (the condition is evaluated here on the same summaries), one INSERT
 * per batch with a constant parameter count, migrations in order, error classification. The
 * store against a real PostgreSQL: test/e2e/ui-postgres.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import { ChartSeries, compileQuery, haystack, parseQuery, summarize, type AlertSummary } from '../../../src/ui/alerts.js';
import { insertBatch, isUnavailable, MIGRATIONS, redactUrl, rowSummary, whereClause } from '../../../src/ui/store-pg.js';
import { isPostgresUrl } from '../../../src/ui/store.js';

const ev = (rule: string, priority: string, fields: Record<string, unknown> = {}, tags = ['k8s']): LogEvent => ({
  tag: 'falco',
  time: new EventTime(1_700_000_000, 5),
  record: { rule, priority, output: `${rule} by ${String(fields['ka.user.name'])}`, tags, output_fields: fields, hostname: 'node-1', source: 'k8s_audit' },
});

/**
 * Evaluates a whereClause() condition on a row, for the operators it emits (a tiny interpreter:
 * `col = $n`, `col = ANY($n::text[])`, `tags && $n::text[]`, `strpos(hay, $n) > 0`,
 * `received >= $n`, `received < $n`, joined by AND). An operator it does not know fails the test.
 */
function evaluate(sql: string, params: unknown[], row: Record<string, unknown>): boolean {
  if (sql === 'TRUE') return true;
  return sql.split(' AND ').every((c) => {
    let m: RegExpExecArray | null;
    const arg = (n: string) => params[Number(n) - 1];
    if ((m = /^(\w+) = ANY\(\$(\d+)::text\[\]\)$/.exec(c))) return (arg(m[2]!) as string[]).includes(row[m[1]!] as string);
    if ((m = /^(\w+) = \$(\d+)$/.exec(c))) return row[m[1]!] === arg(m[2]!);
    if ((m = /^tags && \$(\d+)::text\[\]$/.exec(c))) return (row.tags as string[]).some((t) => (arg(m![1]!) as string[]).includes(t));
    if ((m = /^strpos\(hay, \$(\d+)\) > 0$/.exec(c))) return (row.hay as string).includes(arg(m[1]!) as string);
    if ((m = /^received >= \$(\d+)$/.exec(c))) return (row.received as number) >= (arg(m[1]!) as number);
    if ((m = /^received < \$(\d+)$/.exec(c))) return (row.received as number) < (arg(m[1]!) as number);
    throw new Error(`unknown condition ${c}`);
  });
}

const rowOf = (s: AlertSummary) => ({ ...s, username: s.user ?? null, namespace: s.namespace ?? null, hostname: s.hostname ?? null, hay: haystack(s) });

test('whereClause selects exactly what compileQuery selects, for every filter and combination', () => {
  const sums = [
    ev('Create Privileged Pod', 'Warning', { 'ka.user.name': 'alice', 'ka.target.namespace': 'prod' }),
    ev('Attach/Exec Pod', 'Notice', { 'ka.user.name': 'bob', 'ka.target.namespace': 'dev' }),
    ev('Create Privileged Pod', 'warning', { 'ka.user.name': 'Carol', 'ka.target.namespace': 'dev' }),
    ev('K8s Secret Created', 'info', { 'ka.user.name': 'alice' }, ['k8s', 'secrets']),
  ].map((e, i) => summarize(i + 1, 1000 * (i + 1), e.tag, e.record, ''));
  const queries = [
    '',
    'priority=Warning',
    'priority=notice,informational',
    'rule=Attach/Exec Pod',
    'tag=secrets',
    'namespace=dev',
    'user=alice&namespace=prod',
    'q=ATTACH',
    'q=carol',
    'q=%20%20',
    'q=nothing',
    'priority=Warning&namespace=dev&q=create&tag=k8s',
    'rule=Attach/Exec Pod&rule=K8s Secret Created',
    'tag=secrets&tag=nothing',
    'hostname=node-1',
    'hostname=node-2&hostname=node-1&rule=Create Privileged Pod',
    'source=k8s_audit',
    'source=syscall',
    'from=2000',
    'to=3000',
    'from=2000&to=3001&priority=Warning',
  ];
  for (const text of queries) {
    const q = parseQuery(new URLSearchParams(text));
    const w = whereClause(q);
    const m = compileQuery(q);
    assert.deepEqual(
      sums.filter((s) => evaluate(w.sql, w.params, rowOf(s))).map((s) => s.id),
      sums.filter(m).map((s) => s.id),
      text,
    );
  }
  // Retention cutoff and parameters numbered after others.
  const w = whereClause({ rule: ['Create Privileged Pod'] }, { cutoff: 2500, first: 2 });
  assert.equal(w.sql, 'received >= $2 AND rule = ANY($3::text[])');
  assert.deepEqual(w.params, [2500, ['Create Privileged Pod']]);
  // Facets leave out their own filter.
  assert.equal(whereClause({ priority: ['Warning'], rule: ['R'] }, { omit: 'priority' }).sql, 'rule = ANY($1::text[])');
  assert.equal(whereClause({ priority: ['Warning'], rule: ['R'] }, { omit: 'rule' }).sql, 'priority = ANY($1::text[])');
  // since (should a store see it) is taken from now; muted tests the active mutes of the group.
  assert.deepEqual(whereClause({ since: 60 }, { now: 100_000 }), { sql: 'received >= $1', params: [40_000] });
  const hide = whereClause({ muted: 'hide' }, { now: 5000 });
  assert.equal(
    hide.sql,
    'NOT EXISTS (SELECT 1 FROM logwarden_mutes m WHERE m.until > $1 AND m.rule = logwarden_alerts.rule AND (m.namespace IS NULL OR m.namespace = logwarden_alerts.namespace) AND (m.username IS NULL OR m.username = logwarden_alerts.username))',
  );
  assert.deepEqual(hide.params, [5000]);
  assert.equal(whereClause({ muted: 'only' }, { now: 5000 }).sql, hide.sql.slice('NOT '.length));
  // Values are parameters, never SQL text.
  const hostile = whereClause({ rule: ["x' OR 1=1 --"], q: "'; DROP TABLE logwarden_alerts; --" });
  assert.ok(!hostile.sql.includes("'"), hostile.sql);
});

test('one INSERT per batch: 15 array parameters whatever the batch size, columns in row order', () => {
  const small = insertBatch([ev('A', 'Warning', { 'ka.user.name': 'alice' })], 42);
  const big = insertBatch(
    Array.from({ length: 5000 }, (_, i) => ev(`R${i}`, 'Notice')),
    42,
  );
  assert.equal(small.params.length, 15);
  assert.equal(big.params.length, 15);
  assert.equal(big.sql, small.sql);
  assert.equal((small.sql.match(/INSERT/g) ?? []).length, 1);
  assert.ok(big.params.every((col) => col.length === 5000));
  assert.deepEqual(big.params[4]!.slice(0, 2), ['R0', 'R1'], 'rules in batch order');
  assert.deepEqual(
    small.params.map((c) => c[0]),
    [
      42,
      'falco',
      '2023-11-14T22:13:20.000000005Z',
      '2023-11-14T22:13:20.000000005Z',
      'A',
      'Warning',
      'k8s_audit',
      'A by alice',
      '["k8s"]',
      null,
      'alice',
      'node-1',
      haystack(small.alerts[0]!.summary),
      small.alerts[0]!.record,
      JSON.stringify([[5, 10, 'ka.user.name']]),
    ],
  );
  assert.match(small.sql, /WITH ORDINALITY .* ORDER BY n RETURNING id$/);
  // A row read back gives the same summary as the memory store builds (same fields, same order).
  const s = small.alerts[0]!.summary;
  const back = rowSummary({
    id: '7',
    received: '42',
    tag: 'falco',
    alert_time: s.time,
    rule: 'A',
    priority: 'Warning',
    source: 'k8s_audit',
    output: s.output,
    tags: ['k8s'],
    namespace: null,
    username: 'alice',
    hostname: 'node-1',
    marks: small.params[14]![0] as string,
  });
  assert.equal(JSON.stringify(back), JSON.stringify({ ...s, id: 7 }));
});

test('migrations: version N is the Nth statement; the first creates the table and the filter indexes', () => {
  assert.ok(MIGRATIONS.length >= 1);
  const first = MIGRATIONS[0]!;
  assert.match(first, /CREATE TABLE logwarden_alerts/);
  for (const idx of ['received', 'rule', 'priority', 'namespace', 'username', 'hostname', 'tags']) assert.match(first, new RegExp(`CREATE INDEX logwarden_alerts_${idx} `));
  assert.match(first, /USING gin \(tags\)/);
  assert.match(MIGRATIONS[1]!, /ALTER TABLE logwarden_alerts ADD COLUMN marks text/);
  assert.match(MIGRATIONS[1]!, /CREATE TABLE logwarden_mutes/);
});

test('errors: unreachable vs wrong query; URLs are logged without their password', () => {
  assert.equal(isUnavailable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })), true);
  assert.equal(isUnavailable(new Error('Connection terminated unexpectedly')), true);
  assert.equal(isUnavailable(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })), true);
  assert.equal(isUnavailable(Object.assign(new Error('password authentication failed'), { code: '28P01' })), true);
  assert.equal(isUnavailable(Object.assign(new Error('syntax error'), { code: '42601' })), false);
  assert.equal(isUnavailable(Object.assign(new Error('invalid input syntax'), { code: '22P02' })), false);
  assert.equal(redactUrl('postgres://lw:s3cr%40t@db:5432/alerts?sslmode=require'), 'postgres://lw:***@db:5432/alerts?sslmode=require');
  assert.equal(redactUrl('postgres://lw@db/alerts'), 'postgres://lw@db/alerts');
  assert.equal(isPostgresUrl('postgresql://db/x'), true);
  assert.equal(isPostgresUrl('POSTGRES://db/x'), true);
  assert.equal(isPostgresUrl('mysql://db/x'), false);
});

test('ChartSeries: buckets by priority (most severe first) and the top rules, the rest as other', () => {
  const pts = [
    { bucket: 9, priority: 'Warning', rule: 'A', n: 2 },
    { bucket: 8, priority: 'Critical', rule: 'A', n: 1 },
    { bucket: 9, priority: 'Warning', rule: 'B', n: 1 },
    ...Array.from({ length: 9 }, (_, i) => ({ bucket: 9, priority: 'Notice', rule: `X${i}`, n: 1 })),
  ];
  const series = new ChartSeries(10);
  for (const p of pts) series.add(p.bucket, p.priority, p.rule, p.n);
  const s = series.result();
  assert.deepEqual(Object.keys(s.byPriority), ['Critical', 'Warning', 'Notice']);
  assert.deepEqual(s.byPriority.Warning!.slice(-2), [0, 3]);
  assert.equal(Object.keys(s.byRule).length, 9);
  assert.deepEqual(Object.keys(s.byRule).slice(0, 2), ['A', 'B']);
  assert.equal(
    s.byRule['(other rules)']!.reduce((a, b) => a + b, 0),
    3,
    'X6..X8 beyond the 8 drawn rules',
  );
});
