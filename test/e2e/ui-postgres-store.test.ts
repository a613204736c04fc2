/**
 * The PostgreSQL alert store against a real PostgreSQL (a throw-away cluster of Debian's
 * package), differentially: the same alerts go into a memory store and into the database, and
 * every filter, page, count and catch-up must answer the same. Also: a database at schema 1 is
 * migrated in place, two stores on one database share mutes, and max_alerts / retention are
 * enforced in the database.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { EventTime, type LogEvent } from '../../src/core/event.js';
import { parseQuery, resolveQuery } from '../../src/ui/alerts.js';
import { MIGRATIONS, PgAlertStore } from '../../src/ui/store-pg.js';
import { MemoryAlertStore } from '../../src/ui/store.js';
import { PgCluster } from '../support/postgres.js';

const logger = pino({ level: 'silent' });
let pg: PgCluster;
let db = 0;

before(async () => {
  pg = await PgCluster.create();
  process.env.PGPASSWORD = 'secret';
});

after(async () => {
  await pg?.destroy();
});

async function freshDatabase(): Promise<string> {
  const name = `store${++db}`;
  await pg.createDatabase(name);
  return name;
}

class Clock {
  t = 1_800_000_000_000;
  now = () => this.t;
}

const users = ['alice', 'bob', 'carol', undefined];
const namespaces = ['prod', 'dev', undefined];
const rules = ['Create Privileged Pod', 'Attach/Exec Pod', 'K8s Secret Created', 'ClusterRole With Wildcard Created'];
const priorities = ['Warning', 'Notice', 'Critical', 'info'];

function alert(i: number): LogEvent {
  const fields: Record<string, unknown> = {};
  const user = users[i % users.length];
  const ns = namespaces[i % namespaces.length];
  if (user) fields['ka.user.name'] = user;
  if (ns) fields['ka.target.namespace'] = ns;
  fields['ka.target.name'] = `pod-${i % 7}`;
  const record: Record<string, unknown> = {
    time: new EventTime(1_700_000_000 + i, 0).toISO(),
    rule: rules[i % rules.length],
    priority: priorities[(i >> 1) % priorities.length],
    source: i % 5 === 0 ? 'syscall' : 'k8s_audit',
    tags: i % 3 === 0 ? ['k8s', 'secrets'] : ['k8s'],
    output: `${String(rules[i % rules.length])} (user=${user ?? '<NA>'} ns=${ns ?? '<NA>'} name=pod-${i % 7}) ${i % 11 === 0 ? 'ÄÖ special' : ''}`,
    output_fields: fields,
  };
  if (i % 4 !== 3) record.hostname = `node-${i % 3}`;
  return { tag: 'falco', time: new EventTime(1_700_000_000 + i, 0), record };
}

test('the database answers every filter, page, count and catch-up as the memory store does', async () => {
  const name = await freshDatabase();
  const clock = new Clock();
  const mem = await MemoryAlertStore.open({ maxAlerts: 150, retention: 0, logger, now: clock.now });
  const pgs = await PgAlertStore.open({ maxAlerts: 150, retention: 0, logger, now: clock.now, store: pg.url(false, name) });
  try {
    // 200 alerts in batches over 20 simulated minutes: 50 are pushed out by max_alerts.
    for (let b = 0; b < 20; b++) {
      const batch = Array.from({ length: 10 }, (_, k) => alert(b * 10 + k));
      const [x, y] = [await mem.add(batch), await pgs.add(batch)];
      assert.deepEqual(
        y.map((a) => a.summary.rule),
        x.map((a) => a.summary.rule),
      );
      clock.t += 60_000;
    }
    assert.equal(Number(await pg.sql('SELECT COUNT(*) FROM logwarden_alerts', name)), 150, 'max_alerts enforced in the database');
    // Ids differ (the database's sequence); compare everything else, and ids through their order.
    const mute = { rule: 'Create Privileged Pod', namespace: 'dev', until: clock.t + 3600_000 };
    await mem.addMute(mute);
    await pgs.addMute(mute);
    await pgs.addMute({ rule: 'Attach/Exec Pod', until: clock.t - 1 }); // already ended: no effect
    await mem.addMute({ rule: 'Attach/Exec Pod', until: clock.t - 1 });
    const memIds = (await mem.since(0, {}, 1000)).map((a) => a.summary.id);
    const pgIds = (await pgs.since(0, {}, 1000)).map((a) => a.summary.id);
    assert.equal(pgIds.length, 150);
    const toPg = new Map(memIds.map((id, i) => [id, pgIds[i]!]));
    const strip = <T extends { id: number }>(a: T) => ({ ...a, id: 0 });
    const queries = [
      '',
      'priority=Warning',
      'priority=notice,critical',
      'rule=Attach/Exec Pod&rule=K8s Secret Created',
      'tag=secrets',
      'hostname=node-1&hostname=node-2',
      'source=syscall',
      'namespace=dev',
      'user=alice&namespace=prod',
      'q=pod-3',
      'q=äö',
      'since=600',
      `from=${clock.t - 900_000}&to=${clock.t - 300_000}`,
      'muted=hide',
      'muted=only',
      'muted=only&priority=Warning',
    ];
    const empty: string[] = [];
    for (const text of queries) {
      const q = resolveQuery(parseQuery(new URLSearchParams(text)), clock.now());
      const [a, b] = [await mem.query(q, { limit: 20 }), await pgs.query(q, { limit: 20 })];
      assert.deepEqual(b.alerts.map(strip), a.alerts.map(strip), `list ${text}`);
      assert.deepEqual(
        b.alerts.map((x) => x.id),
        a.alerts.map((x) => toPg.get(x.id)),
        `ids ${text}`,
      );
      assert.deepEqual([b.more, b.total], [a.more, a.total], `more/total ${text}`);
      if (a.alerts.length === 0) empty.push(text);
      if (a.alerts.length) {
        const last = a.alerts[a.alerts.length - 1]!.id;
        const [a2, b2] = [await mem.query(q, { limit: 1000, before: last }), await pgs.query(q, { limit: 1000, before: toPg.get(last)! })];
        assert.deepEqual(b2.alerts.map(strip), a2.alerts.map(strip), `older page ${text}`);
      }
      const [sa, sb] = [await mem.counts(q, 3600_000, 30), await pgs.counts(q, 3600_000, 30)];
      assert.deepEqual(JSON.parse(JSON.stringify(sb)), JSON.parse(JSON.stringify(sa)), `counts ${text}`);
      const mid = memIds[100]!;
      const [ca, cb] = [await mem.since(mid, q, 30), await pgs.since(toPg.get(mid)!, q, 30)];
      assert.deepEqual(
        cb.map((x) => strip(x.summary)),
        ca.map((x) => strip(x.summary)),
        `since ${text}`,
      );
    }
    assert.deepEqual(empty, [], 'every query selects some alerts (and not all: see the counts)');
    // The full record reads back byte for byte.
    const one = memIds[42]!;
    assert.equal((await pgs.get(toPg.get(one)!))!.json.replace(/^\{"id":\d+/, ''), (await mem.get(one))!.json.replace(/^\{"id":\d+/, ''));
    assert.equal(await pgs.get(pgIds[0]! - 1), undefined, 'pushed out by max_alerts');
    assert.deepEqual(
      (await pgs.mutes()).map((m) => ({ ...m, id: 0 })),
      (await mem.mutes()).map((m) => ({ ...m, id: 0 })),
    );
  } finally {
    await mem.close();
    await pgs.close();
  }
});

test('a database at schema 1 is migrated in place; its rows stay readable', async () => {
  const name = await freshDatabase();
  await pg.sql(
    `CREATE TABLE logwarden_schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now()); ${MIGRATIONS[0]} INSERT INTO logwarden_schema_version (version) VALUES (1);` +
      ` INSERT INTO logwarden_alerts (received, tag, event_time, alert_time, rule, priority, source, output, tags, namespace, username, hostname, hay, record)` +
      ` VALUES (1, 'falco', 't', 't', 'Old Rule', 'Warning', 'k8s_audit', 'old output', '{k8s}', NULL, 'alice', NULL, 'old rule', '{"rule":"Old Rule"}');`,
    name,
  );
  const s = await PgAlertStore.open({ maxAlerts: 100, retention: 0, logger, store: pg.url(false, name) });
  try {
    assert.equal(await pg.sql("SELECT string_agg(version::text, ',' ORDER BY version) FROM logwarden_schema_version", name), MIGRATIONS.map((_, i) => i + 1).join(','));
    const list = await s.query({}, { limit: 10 });
    assert.deepEqual(
      list.alerts.map((a) => [a.rule, a.user, a.marks]),
      [['Old Rule', 'alice', undefined]],
    );
    await s.add([alert(1)]);
    assert.equal((await s.query({}, { limit: 10 })).total, 2);
  } finally {
    await s.close();
  }
  // A database from a newer logwarden is refused, not misread.
  await pg.sql(`INSERT INTO logwarden_schema_version (version) VALUES (${MIGRATIONS.length + 1})`, name);
  await assert.rejects(PgAlertStore.open({ maxAlerts: 100, retention: 0, logger, store: pg.url(false, name) }), /migrated by a newer logwarden/);
});

test('two stores on one database: mutes are shared, live listeners see both writers in id order, retention deletes in the database', async () => {
  const name = await freshDatabase();
  const clock = new Clock();
  const opts = { maxAlerts: 1000, retention: 60, logger, now: clock.now, store: pg.url(false, name) };
  const [a, b] = await Promise.all([PgAlertStore.open(opts), PgAlertStore.open(opts)]);
  try {
    const seen: number[] = [];
    b.subscribe((added) => seen.push(...added.map((x) => x.summary.id)));
    const m = await a.addMute({ rule: 'Attach/Exec Pod', user: 'bob', until: clock.t + 60_000, by: 'admin', comment: 'known job' });
    assert.deepEqual(await b.mutes(), [m], 'a mute made on one replica is seen by the other');
    assert.equal(await b.removeMute(m.id + 1000), undefined);
    // Concurrent writers: ids strictly increase in the order listeners get them.
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).add([alert(i), alert(i + 100)])));
    const ids = (await a.since(0, {}, 1000)).map((x) => x.summary.id);
    assert.equal(ids.length, 20);
    const deadline = Date.now() + 10_000;
    while (seen.length < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen, ids, 'every alert once, in id order');
    assert.deepEqual(await b.removeMute(m.id), m);
    assert.deepEqual(await a.mutes(), []);
    // Past retention: hidden at once, deleted by the periodic DELETE (one replica at a time).
    clock.t += 61_000;
    assert.equal((await a.query({}, { limit: 10 })).total, 0);
    const deleted = Date.now() + 20_000;
    while (Number(await pg.sql('SELECT COUNT(*) FROM logwarden_alerts', name)) > 0 && Date.now() < deleted) await new Promise((r) => setTimeout(r, 200));
    assert.equal(Number(await pg.sql('SELECT COUNT(*) FROM logwarden_alerts', name)), 0, 'expired rows deleted in the database');
  } finally {
    await a.close();
    await b.close();
  }
});
