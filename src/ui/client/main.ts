/**
 * The web page: live alerts (newest first) with filters, counts over time, an alert's full record,
 * and the pipeline's health. Filters live in the URL so a view can be shared.
 */
import { OTHER_RULES, PRIORITIES, parseQuery, priorityRank, queryParams, type AlertQuery, type AlertStats, type AlertSummary } from '../alerts.js';
import type { Health } from '../health-shape.js';
import { AlertChart, priorityColor } from './chart.js';
import { byId, clear, fmtNum, fmtTime, h } from './dom.js';
import { HealthView } from './health-view.js';
import { LiveStream, type StreamState } from './stream.js';
import './style.css';

/** Rows kept on the page; older ones are a click away ("Older alerts"). */
const MAX_ROWS = 500;
const PAGE = 100;
const HEALTH_EVERY_MS = 2000;
const TOKEN_KEY = 'logwarden.token';

class Unauthorized extends Error {}

let token = sessionStorage.getItem(TOKEN_KEY) ?? undefined;
const authHeaders = (): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

function askToken(res: Response): void {
  const challenge = res.headers.get('www-authenticate') ?? '';
  if (!/bearer/i.test(challenge)) {
    showError('Not authorized: reload the page to enter the user and password again.');
    return;
  }
  const dlg = byId<HTMLDialogElement>('auth');
  if (!dlg.open) dlg.showModal();
}

async function api<T>(path: string): Promise<T> {
  const res = await fetch(path, { headers: authHeaders(), cache: 'no-store' });
  if (res.status === 401) {
    askToken(res);
    throw new Unauthorized('unauthorized');
  }
  if (res.status === 503 && path.startsWith('/api/v1/alerts')) {
    // The alert store (a shared database) is unreachable: say so until an answer comes back.
    const body = (await res.json().catch(() => ({}))) as { error?: string };
    storeDown(body.error ?? 'alert store unreachable');
    throw new Error(body.error ?? `${path.split('?')[0]}: HTTP 503`);
  }
  if (!res.ok) throw new Error(`${path.split('?')[0]}: HTTP ${res.status}`);
  if (path.startsWith('/api/v1/alerts')) storeDown(undefined);
  return (await res.json()) as T;
}

/** The banner over the page while the alert store cannot be reached (undefined: hide it). */
function storeDown(reason: string | undefined): void {
  const el = byId('store-down');
  el.hidden = reason === undefined;
  el.textContent = reason === undefined ? '' : `${reason[0]!.toUpperCase()}${reason.slice(1)}. Alerts are kept in the pipeline's queue and appear once it is back.`;
}

function showError(text: string): void {
  const el = byId('empty');
  el.hidden = false;
  el.textContent = text;
  el.classList.add('error');
}

// ---- state

let query: AlertQuery = parseQuery(new URLSearchParams(location.search));
let rows: AlertSummary[] = [];
let more = false;
let newest = 0;
let group: 'priority' | 'rule' = 'priority';
let windowS = 3600;
let lastStats: AlertStats | undefined;

const stream = new LiveStream(authHeaders, onLiveAlert, onStreamState);
const chart = new AlertChart(byId('chart'), byId('legend'), (g, name) => {
  if (g === 'priority') setQuery({ ...query, priority: [name] });
  else if (name !== OTHER_RULES) setQuery({ ...query, rule: name });
});
const health = new HealthView();

// ---- filters

function priorityClass(p: string): string {
  return (PRIORITIES as readonly string[]).includes(p) ? `p-${p.toLowerCase()}` : 'p-unknown';
}

function fillSelect(sel: HTMLSelectElement, values: string[], current: string | undefined): void {
  const keep = current && !values.includes(current) ? [current, ...values] : values;
  clear(sel);
  sel.append(h('option', { value: '' }, 'any'));
  for (const v of keep) {
    const o = h('option', { value: v }, v);
    if (v === current) o.selected = true;
    sel.append(o);
  }
}

function fillDatalist(list: HTMLElement, values: string[]): void {
  clear(list);
  for (const v of values.slice(0, 200)) list.append(h('option', { value: v }));
}

function renderChips(stats: AlertStats | undefined): void {
  const box = byId('priorities');
  clear(box);
  const selected = new Set(query.priority ?? []);
  const seen = Object.keys(stats?.byPriority ?? {});
  const names = [...new Set([...PRIORITIES, ...seen, ...selected])].sort((a, b) => priorityRank(a) - priorityRank(b));
  for (const p of names) {
    const count = stats?.byPriority[p] ?? 0;
    if (count === 0 && !selected.has(p) && priorityRank(p) > 4 && !seen.includes(p)) continue; // Notice and below only when present
    const chip = h('button', { type: 'button', class: `chip ${priorityClass(p)}`, 'aria-pressed': String(selected.has(p)), 'data-priority': p }, p, h('b', null, fmtNum(count)));
    chip.addEventListener('click', () => {
      const next = new Set(selected);
      if (next.has(p)) next.delete(p);
      else next.add(p);
      setQuery({ ...query, priority: [...next] });
    });
    box.append(chip);
  }
}

function renderRules(stats: AlertStats): void {
  const box = byId('rules');
  clear(box);
  const entries = Object.keys(stats.byRule)
    .map((r) => [r, stats.byRule[r]!] as const)
    .sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return;
  const max = entries[0]![1];
  for (const [rule, n] of entries.slice(0, 10)) {
    const bar = h('span', { class: 'rule-bar' });
    bar.style.width = `${Math.max(2, (n / max) * 100)}%`;
    const item = h(
      'button',
      { type: 'button', class: `rule-item${query.rule === rule ? ' active' : ''}`, title: `Show only ${rule}`, 'data-rule': rule },
      h('span', { class: 'rule-name' }, rule),
      h('b', null, fmtNum(n)),
      bar,
    );
    item.addEventListener('click', () => setQuery({ ...query, rule: query.rule === rule ? undefined : rule }));
    box.append(item);
  }
}

function syncForm(): void {
  byId<HTMLInputElement>('f-namespace').value = query.namespace ?? '';
  byId<HTMLInputElement>('f-user').value = query.user ?? '';
  byId<HTMLInputElement>('f-q').value = query.q ?? '';
  byId<HTMLSelectElement>('f-rule').value = query.rule ?? '';
  byId<HTMLSelectElement>('f-tag').value = query.tag ?? '';
}

function setQuery(q: AlertQuery): void {
  const clean: AlertQuery = {};
  if (q.priority?.length) clean.priority = q.priority;
  for (const k of ['rule', 'tag', 'namespace', 'user', 'q'] as const) {
    const v = q[k]?.trim();
    if (v) clean[k] = v;
  }
  query = clean;
  const params = queryParams(query).toString();
  history.replaceState(null, '', `${location.pathname}${params ? `?${params}` : ''}${location.hash}`);
  syncForm();
  void reload();
}

function debounce(f: () => void, ms: number): () => void {
  let t: ReturnType<typeof setTimeout> | undefined;
  return () => {
    if (t) clearTimeout(t);
    t = setTimeout(f, ms);
  };
}

// ---- alert list

function row(a: AlertSummary, fresh: boolean): HTMLTableRowElement {
  const tr = h(
    'tr',
    { tabindex: '0', 'data-id': String(a.id), class: fresh ? 'fresh' : '' },
    h('td', { class: 'time', title: `alert time ${a.time}` }, fmtTime(a.received)),
    h('td', null, h('span', { class: `prio ${priorityClass(a.priority)}` }, a.priority)),
    h('td', { class: 'rule' }, a.rule),
    h('td', { class: 'wide' }, a.namespace ?? ''),
    h('td', { class: 'wide user' }, a.user ?? ''),
    h('td', { class: 'output', title: a.output }, a.output),
  );
  const open = () => void openDetail(a.id);
  tr.addEventListener('click', open);
  tr.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      open();
    }
  });
  return tr;
}

function renderRows(): void {
  const body = byId('rows');
  clear(body);
  for (const a of rows) body.append(row(a, false));
  const empty = byId('empty');
  empty.classList.remove('error');
  empty.hidden = rows.length > 0;
  if (!rows.length) {
    empty.textContent =
      Object.keys(query).length > 0
        ? 'No alert matches these filters.'
        : 'No alerts yet. Alerts appear here live when the detect filter’s alerts are routed to a ui output (match: falco).';
  }
  byId('older').hidden = !more;
}

function onLiveAlert(a: AlertSummary): void {
  if (a.id <= newest) return;
  newest = a.id;
  rows.unshift(a);
  const body = byId('rows');
  body.prepend(row(a, true));
  if (rows.length > MAX_ROWS) {
    rows.length = MAX_ROWS;
    more = true;
    while (body.children.length > MAX_ROWS) body.lastElementChild!.remove();
    byId('older').hidden = false;
  }
  byId('empty').hidden = true;
  refreshStatsSoon();
}

function onStreamState(s: StreamState, res?: Response): void {
  const el = byId('live');
  el.dataset.state = s;
  el.textContent = s === 'live' ? 'live' : s === 'connecting' ? 'connecting' : s === 'down' ? 'reconnecting' : 'not authorized';
  if (s === 'unauthorized' && res) askToken(res);
}

async function loadOlder(): Promise<void> {
  const last = rows[rows.length - 1];
  if (!last) return;
  const params = queryParams(query);
  params.set('limit', String(PAGE));
  params.set('before', String(last.id));
  const page = await api<{ alerts: AlertSummary[]; more: boolean }>(`/api/v1/alerts?${params}`);
  rows.push(...page.alerts);
  more = page.more;
  const body = byId('rows');
  for (const a of page.alerts) body.append(row(a, false));
  byId('older').hidden = !more;
}

// ---- stats

async function refreshStats(): Promise<void> {
  const params = queryParams(query);
  params.set('window', String(windowS));
  params.set('buckets', '60');
  const stats = await api<AlertStats>(`/api/v1/alerts/stats?${params}`);
  lastStats = stats;
  byId('total').textContent = `${fmtNum(stats.total)} kept`;
  renderChips(stats);
  renderRules(stats);
  fillSelect(byId<HTMLSelectElement>('f-rule'), stats.values.rules, query.rule);
  fillSelect(byId<HTMLSelectElement>('f-tag'), stats.values.tags, query.tag);
  fillDatalist(byId('l-namespace'), stats.values.namespaces);
  fillDatalist(byId('l-user'), stats.values.users);
  chart.draw(stats, group);
}

const refreshStatsSoon = debounce(() => void refreshStats().catch(report), 800);

function report(e: unknown): void {
  if (e instanceof Unauthorized) return;
  console.warn(e);
}

async function reload(): Promise<void> {
  stream.stop();
  const params = queryParams(query);
  params.set('limit', String(PAGE));
  try {
    const page = await api<{ alerts: AlertSummary[]; more: boolean }>(`/api/v1/alerts?${params}`);
    rows = page.alerts;
    more = page.more;
    newest = rows[0]?.id ?? 0;
    renderRows();
    stream.start(query, newest);
    await refreshStats();
  } catch (e) {
    if (!(e instanceof Unauthorized)) showError(`Cannot load alerts: ${(e as Error).message}`);
  }
}

// ---- detail

function jsonBlock(v: unknown): HTMLElement {
  return h('pre', { class: 'json' }, JSON.stringify(v, null, 2));
}

function fieldValue(v: unknown): Node {
  if (v === null || v === undefined) return h('span', { class: 'muted' }, '<NA>');
  return document.createTextNode(typeof v === 'string' ? v : JSON.stringify(v));
}

/** The triggering audit event, when the alert record carries it. */
function triggeringEvent(record: Record<string, unknown>): unknown {
  const ev = record.audit_event;
  if (typeof ev === 'string') {
    try {
      return JSON.parse(ev) as unknown;
    } catch {
      return ev;
    }
  }
  return ev;
}

async function openDetail(id: number): Promise<void> {
  const dlg = byId<HTMLDialogElement>('detail');
  const body = byId('d-body');
  clear(body);
  byId('d-rule').textContent = `Alert ${id}`;
  if (!dlg.open) dlg.showModal();
  if (location.hash !== `#alert-${id}`) history.replaceState(null, '', `${location.pathname}${location.search}#alert-${id}`);
  let a: { id: number; received: number; tag: string; time: string; record: Record<string, unknown> };
  try {
    a = await api(`/api/v1/alerts/${id}`);
  } catch (e) {
    body.append(h('p', { class: 'error' }, (e as Error).message.includes('404') ? 'This alert is no longer kept.' : (e as Error).message));
    return;
  }
  const r = a.record;
  const prio = typeof r.priority === 'string' ? r.priority : '';
  byId('d-rule').textContent = typeof r.rule === 'string' ? r.rule : `Alert ${id}`;
  const filterBtn = (label: string, q: AlertQuery) => {
    const b = h('button', { type: 'button', class: 'small' }, label);
    b.addEventListener('click', () => {
      dlg.close();
      setQuery({ ...query, ...q });
    });
    return b;
  };
  const fields = (r.output_fields && typeof r.output_fields === 'object' ? r.output_fields : {}) as Record<string, unknown>;
  const meta = h(
    'dl',
    { class: 'meta' },
    h('dt', null, 'Priority'),
    h('dd', null, h('span', { class: `prio ${priorityClass(prio)}` }, prio || '?')),
    h('dt', null, 'Time'),
    h('dd', null, typeof r.time === 'string' ? r.time : a.time),
    h('dt', null, 'Received'),
    h('dd', null, new Date(a.received).toISOString()),
    h('dt', null, 'Source'),
    h('dd', null, typeof r.source === 'string' ? r.source : ''),
    h('dt', null, 'Tag'),
    h('dd', null, a.tag),
    h('dt', null, 'Hostname'),
    h('dd', null, typeof r.hostname === 'string' ? r.hostname : ''),
    h('dt', null, 'Rule tags'),
    h('dd', null, Array.isArray(r.tags) ? r.tags.map(String).join(', ') : ''),
  );
  const table = h('table', { class: 'fields' });
  for (const k of Object.keys(fields).sort()) table.append(h('tr', null, h('th', null, k), h('td', null, fieldValue(fields[k]))));
  const actions = h('div', { class: 'actions' });
  if (typeof r.rule === 'string') actions.append(filterBtn('Only this rule', { rule: r.rule }));
  const ns = fields['ka.target.namespace'];
  const user = fields['ka.user.name'];
  if (typeof ns === 'string') actions.append(filterBtn('Only this namespace', { namespace: ns }));
  if (typeof user === 'string') actions.append(filterBtn('Only this user', { user }));
  const ev = triggeringEvent(r);
  body.append(
    h('p', { class: 'output' }, typeof r.output === 'string' ? r.output : ''),
    actions,
    meta,
    h('h3', null, 'Output fields'),
    Object.keys(fields).length ? table : h('p', { class: 'muted' }, 'none'),
    h('h3', null, 'Triggering event'),
    ev === undefined ? h('p', { class: 'muted' }, 'The alert record does not carry the audit event that triggered it.') : jsonBlock(ev),
    h('details', null, h('summary', null, 'Full record'), jsonBlock(r)),
  );
}

function closeDetail(): void {
  if (location.hash.startsWith('#alert-')) history.replaceState(null, '', `${location.pathname}${location.search}`);
}

// ---- health

async function pollHealth(): Promise<void> {
  try {
    const hl = await api<Health>('/api/v1/health');
    health.render(hl);
    if (hl.store && !hl.store.up) storeDown(`alert store unreachable: ${hl.store.reason ?? 'no answer'}`);
    else if (hl.store && !byId('store-down').hidden) {
      // Back: what arrived meanwhile (held in the pipeline's queue) is in the store now.
      storeDown(undefined);
      void reload();
    }
  } catch (e) {
    if (!(e instanceof Unauthorized)) {
      const ready = byId('ready');
      ready.textContent = 'unreachable';
      ready.className = 'badge bad';
      ready.title = (e as Error).message;
    }
  } finally {
    setTimeout(() => void pollHealth(), HEALTH_EVERY_MS);
  }
}

// ---- wiring

function wire(): void {
  const text = debounce(() => {
    setQuery({ ...query, namespace: byId<HTMLInputElement>('f-namespace').value, user: byId<HTMLInputElement>('f-user').value, q: byId<HTMLInputElement>('f-q').value });
  }, 350);
  for (const id of ['f-namespace', 'f-user', 'f-q']) byId(id).addEventListener('input', text);
  byId('f-rule').addEventListener('change', (e) => setQuery({ ...query, rule: (e.target as HTMLSelectElement).value }));
  byId('f-tag').addEventListener('change', (e) => setQuery({ ...query, tag: (e.target as HTMLSelectElement).value }));
  byId('f-clear').addEventListener('click', () => setQuery({}));
  byId('filter-form').addEventListener('submit', (e) => e.preventDefault());
  byId('older').addEventListener('click', () => void loadOlder().catch(report));
  byId('c-group').addEventListener('change', (e) => {
    group = (e.target as HTMLSelectElement).value === 'rule' ? 'rule' : 'priority';
    if (lastStats) chart.draw(lastStats, group);
  });
  byId('c-window').addEventListener('change', (e) => {
    windowS = Number((e.target as HTMLSelectElement).value) || 3600;
    void refreshStats().catch(report);
  });
  const detail = byId<HTMLDialogElement>('detail');
  byId('d-close').addEventListener('click', () => detail.close());
  detail.addEventListener('close', closeDetail);
  detail.addEventListener('click', (e) => {
    if (e.target === detail) detail.close(); // a click on the backdrop
  });
  byId('auth-form').addEventListener('submit', (e) => {
    e.preventDefault();
    token = byId<HTMLInputElement>('auth-token').value.trim() || undefined;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    byId<HTMLDialogElement>('auth').close();
    void reload();
  });
  syncForm();
  renderChips(undefined);
  const m = /^#alert-(\d+)$/.exec(location.hash);
  if (m) void openDetail(Number(m[1]));
}

wire();
void reload();
void pollHealth();
// Counts over time move even when no alert arrives.
setInterval(() => void refreshStats().catch(report), 30_000);
