/**
 * The web page: live alerts (newest first) with filters, counts over time, an alert's full record,
 * and the pipeline's health. Filters live in the URL so a view can be shared.
 */
import { muteMatches, OTHER_RULES, PRIORITIES, parseQuery, priorityRank, queryParams, type AlertQuery, type AlertStats, type AlertSummary, type Mute } from '../alerts.js';
import type { Health } from '../health-shape.js';
import { AlertChart } from './chart.js';
import { byId, clear, fmtDateText, fmtLocalISO, fmtNanos, fmtNum, fmtTime, h } from './dom.js';
import { HealthView } from './health-view.js';
import { MultiSelect } from './multiselect.js';
import { LiveStream, type StreamState } from './stream.js';
import './style.css';

const PAGE_SIZES = [25, 50, 100, 200];
const HEALTH_EVERY_MS = 2000;
const MUTES_EVERY_MS = 10_000;
const TOKEN_KEY = 'logwarden.token';
const SIZE_KEY = 'logwarden.pageSize';
const HEALTH_KEY = 'logwarden.healthOpen';
/** Sent with every request that changes something (the server refuses such requests without it). */
const WRITE_HEADER = 'x-logwarden-ui';

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

async function api<T>(path: string, init?: { method: string; body?: unknown }): Promise<T> {
  const headers: Record<string, string> = { ...authHeaders() };
  if (init) headers[WRITE_HEADER] = '1';
  if (init?.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    headers,
    cache: 'no-store',
    ...(init ? { method: init.method } : {}),
    ...(init?.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
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
  if (!res.ok) {
    let detail = '';
    try {
      detail = ((await res.json()) as { error?: string }).error ?? '';
    } catch {
      // no JSON body
    }
    throw new Error(`${path.split('?')[0]}: HTTP ${res.status}${detail ? `: ${detail}` : ''}`);
  }
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
let pageSize = PAGE_SIZES.includes(Number(localStorage.getItem(SIZE_KEY))) ? Number(localStorage.getItem(SIZE_KEY)) : 50;
/** The `before` cursor of each page shown before this one (page 1 has none): "Newer" goes back. */
let cursors: Array<number | undefined> = [];
/** The `before` cursor of the page shown (undefined: the newest page, which live alerts join). */
let pageBefore: number | undefined;
/** Live alerts that arrived while an older page is shown. */
let unseen = 0;
let mutes: Mute[] = [];
let alertmanager: string | null = null;

const stream = new LiveStream(authHeaders, onLiveAlert, onStreamState);
const chart = new AlertChart(byId('chart'), byId('legend'), (g, name) => {
  if (g === 'priority') setQuery({ ...query, priority: [name] });
  else if (name !== OTHER_RULES) setQuery({ ...query, rule: [name] });
});
const health = new HealthView();
const multi = {
  rule: new MultiSelect('rule', 'Rule', (v) => setQuery({ ...query, rule: v })),
  tag: new MultiSelect('tag', 'Tag', (v) => setQuery({ ...query, tag: v })),
  hostname: new MultiSelect('hostname', 'Hostname', (v) => setQuery({ ...query, hostname: v })),
  source: new MultiSelect('source', 'Source', (v) => setQuery({ ...query, source: v })),
};
for (const m of Object.values(multi)) byId('multi').append(m.root);

// ---- filters

function priorityClass(p: string): string {
  return (PRIORITIES as readonly string[]).includes(p) ? `p-${p.toLowerCase()}` : 'p-unknown';
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
      { type: 'button', class: `rule-item${query.rule?.includes(rule) ? ' active' : ''}`, title: `Show only ${rule}`, 'data-rule': rule },
      h('span', { class: 'rule-name' }, rule),
      h('b', null, fmtNum(n)),
      bar,
    );
    item.addEventListener('click', () => setQuery({ ...query, rule: query.rule?.includes(rule) ? query.rule.filter((r) => r !== rule) : [rule] }));
    box.append(item);
  }
}

/** `datetime-local` text of a time (local), and back. */
const toLocalInput = (ms: number | undefined) => (ms === undefined ? '' : fmtLocalISO(ms).slice(0, 19));
const fromLocalInput = (v: string) => (v === '' ? undefined : Number.isNaN(new Date(v).getTime()) ? undefined : new Date(v).getTime());

const SINCE_PRESETS: Record<string, number> = { '5m': 300, '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800, '30d': 2592000 };

function rangeValue(): string {
  if (query.from !== undefined || query.to !== undefined) return 'custom';
  if (query.since === undefined) return '';
  return Object.keys(SINCE_PRESETS).find((k) => SINCE_PRESETS[k] === query.since) ?? 'custom';
}

function syncForm(): void {
  byId<HTMLInputElement>('f-namespace').value = query.namespace ?? '';
  byId<HTMLInputElement>('f-user').value = query.user ?? '';
  byId<HTMLInputElement>('f-q').value = query.q ?? '';
  byId<HTMLSelectElement>('f-muted').value = query.muted ?? '';
  for (const k of ['rule', 'tag', 'hostname', 'source'] as const) multi[k].setSelected(query[k]);
  const range = byId<HTMLSelectElement>('f-range');
  const custom = range.value === 'custom' || rangeValue() === 'custom';
  range.value = custom ? 'custom' : rangeValue();
  byId('range-custom').hidden = !custom;
  if (document.activeElement?.id !== 'f-from') byId<HTMLInputElement>('f-from').value = toLocalInput(query.from);
  if (document.activeElement?.id !== 'f-to') byId<HTMLInputElement>('f-to').value = toLocalInput(query.to);
  renderFilterToggle();
}

/** The phone's "Filters & counts" button says how many filters beyond priority are set. */
function renderFilterToggle(): void {
  const n = Object.keys(query).filter((k) => k !== 'priority').length;
  const b = byId('f-toggle');
  b.textContent = n ? `Filters & counts (${n} set)` : 'Filters & counts';
  b.classList.toggle('set', n > 0);
}

function setQuery(q: AlertQuery): void {
  const clean: AlertQuery = {};
  if (q.priority?.length) clean.priority = q.priority;
  for (const k of ['rule', 'tag', 'hostname', 'source'] as const) if (q[k]?.length) clean[k] = q[k];
  for (const k of ['namespace', 'user', 'q'] as const) {
    const v = q[k]?.trim();
    if (v) clean[k] = v;
  }
  if (q.since !== undefined) clean.since = q.since;
  if (q.from !== undefined) clean.from = q.from;
  if (q.to !== undefined) clean.to = q.to;
  if (q.muted) clean.muted = q.muted;
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

function activeMutes(): Mute[] {
  const now = Date.now();
  return mutes.filter((m) => m.until > now);
}

function muteOf(a: AlertSummary): Mute | undefined {
  return activeMutes().find((m) => muteMatches(m, a));
}

/** The output text with the output_fields values emphasised (as text nodes: never HTML). */
function outputText(a: AlertSummary): Node[] {
  const out: Node[] = [];
  let at = 0;
  for (const [start, end, name] of a.marks ?? []) {
    if (start < at || end > a.output.length) continue;
    if (start > at) out.push(document.createTextNode(a.output.slice(at, start)));
    out.push(h('mark', { title: name }, a.output.slice(start, end)));
    at = end;
  }
  if (at < a.output.length) out.push(document.createTextNode(a.output.slice(at)));
  return out;
}

function row(a: AlertSummary, fresh: boolean): HTMLTableRowElement {
  const mute = muteOf(a);
  const title = `received ${fmtLocalISO(a.received)}\nalert time ${fmtDateText(a.time)} (${a.time})`;
  const tr = h(
    'tr',
    { tabindex: '0', 'data-id': String(a.id), class: `${fresh ? 'fresh' : ''}${mute ? ' muted-row' : ''}` },
    h('td', { class: 'time', title }, fmtTime(a.received)),
    h(
      'td',
      { class: 'c-prio' },
      h('span', { class: `prio ${priorityClass(a.priority)}`, title: a.priority }, a.priority),
      mute ? h('span', { class: 'mute-tag', title: `muted until ${fmtLocalISO(mute.until)}${mute.comment ? `: ${mute.comment}` : ''}` }, 'muted') : null,
    ),
    h('td', { class: 'rule', title: a.rule }, a.rule),
    h('td', { class: 'wide ns' }, a.namespace ?? ''),
    h('td', { class: 'wide user' }, a.user ?? ''),
    h('td', { class: 'output', title: a.output }, ...outputText(a)),
    h('td', { class: 'wide tags', title: a.tags.join(', ') }, ...a.tags.map((t) => h('span', { class: 'tag' }, t))),
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

function filtered(): boolean {
  return Object.keys(query).length > 0;
}

function renderPager(): void {
  const first = cursors.length * pageSize;
  const total = lastStats?.total;
  byId('page-info').textContent = rows.length ? `${fmtNum(first + 1)}–${fmtNum(first + rows.length)}${total !== undefined ? ` of ${fmtNum(Math.max(total, first + rows.length))}` : ''}` : '';
  byId('older').hidden = !more;
  byId('newer').hidden = cursors.length === 0;
  const newestBtn = byId('newest');
  newestBtn.hidden = cursors.length === 0;
  newestBtn.textContent = unseen ? `Newest (${fmtNum(unseen)} new)` : 'Newest';
}

function renderRows(): void {
  const body = byId('rows');
  clear(body);
  for (const a of rows) body.append(row(a, false));
  const empty = byId('empty');
  empty.classList.remove('error');
  empty.hidden = rows.length > 0;
  if (!rows.length) {
    empty.textContent = filtered() ? 'No alert matches these filters.' : 'No alerts yet. Alerts appear here live when the detect filter’s alerts are routed to a ui output (match: falco).';
  }
  renderPager();
}

function onLiveAlert(a: AlertSummary): void {
  if (a.id <= newest) return;
  newest = a.id;
  refreshStatsSoon();
  if (cursors.length > 0) {
    // An older page stays as it is; the button back to the newest counts what came.
    unseen++;
    renderPager();
    return;
  }
  rows.unshift(a);
  const body = byId('rows');
  body.prepend(row(a, true));
  if (rows.length > pageSize) {
    rows.length = pageSize;
    more = true;
    while (body.children.length > pageSize) body.lastElementChild!.remove();
  }
  byId('empty').hidden = true;
  renderPager();
}

function onStreamState(s: StreamState, res?: Response): void {
  const el = byId('live');
  el.dataset.state = s;
  el.textContent = s === 'live' ? 'live' : s === 'connecting' ? 'connecting' : s === 'down' ? 'reconnecting' : 'not authorized';
  if (s === 'unauthorized' && res) askToken(res);
}

/** Shows the page that starts after the alert `before` (none: the newest). */
async function showPage(before: number | undefined): Promise<void> {
  const params = queryParams(query);
  params.set('limit', String(pageSize));
  if (before !== undefined) params.set('before', String(before));
  const page = await api<{ alerts: AlertSummary[]; more: boolean }>(`/api/v1/alerts?${params}`);
  rows = page.alerts;
  more = page.more;
  renderRows();
  byId('list').scrollIntoView({ block: 'nearest' });
}

async function loadOlder(): Promise<void> {
  const last = rows[rows.length - 1];
  if (!last) return;
  cursors.push(pageBefore);
  pageBefore = last.id;
  await showPage(pageBefore);
}

async function loadNewer(): Promise<void> {
  pageBefore = cursors.pop();
  if (cursors.length === 0) return reload();
  await showPage(pageBefore);
}

// ---- stats

async function refreshStats(): Promise<void> {
  const params = queryParams(query);
  params.set('window', String(windowS));
  params.set('buckets', '60');
  const stats = await api<AlertStats>(`/api/v1/alerts/stats?${params}`);
  lastStats = stats;
  byId('total').textContent = filtered() ? `${fmtNum(stats.total)} matching` : `${fmtNum(stats.total)} kept`;
  renderChips(stats);
  renderRules(stats);
  multi.rule.setValues(stats.values.rules, stats.byRule);
  multi.tag.setValues(stats.values.tags);
  multi.hostname.setValues(stats.values.hostnames ?? []);
  multi.source.setValues(stats.values.sources ?? []);
  fillDatalist(byId('l-namespace'), stats.values.namespaces);
  fillDatalist(byId('l-user'), stats.values.users);
  chart.draw(stats, group);
  renderPager();
}

const refreshStatsSoon = debounce(() => void refreshStats().catch(report), 800);

function report(e: unknown): void {
  if (e instanceof Unauthorized) return;
  console.warn(e);
}

async function reload(): Promise<void> {
  stream.stop();
  cursors = [];
  pageBefore = undefined;
  unseen = 0;
  const params = queryParams(query);
  params.set('limit', String(pageSize));
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

// ---- export

/** Downloads the filtered list (fetched with the page's credentials, then saved from a Blob). */
async function exportList(format: 'jsonl' | 'csv'): Promise<void> {
  const params = queryParams(query);
  params.set('format', format);
  const res = await fetch(`/api/v1/alerts/export?${params}`, { headers: authHeaders(), cache: 'no-store' });
  if (res.status === 401) {
    askToken(res);
    return;
  }
  if (!res.ok) throw new Error(`export: HTTP ${res.status}`);
  const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? `logwarden-alerts.${format}`;
  const url = URL.createObjectURL(await res.blob());
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// ---- mutes

async function loadMutes(): Promise<void> {
  const r = await api<{ mutes: Mute[]; alertmanager: string | null }>('/api/v1/mutes');
  const before = JSON.stringify(mutes);
  mutes = r.mutes;
  alertmanager = r.alertmanager;
  renderMutes();
  if (JSON.stringify(mutes) !== before) {
    // Rows change their look; with a muted filter, which rows match changes too.
    if (query.muted) void reload();
    else renderRows();
  }
}

function muteLabel(m: Pick<Mute, 'rule' | 'namespace' | 'user'>): string {
  return `${m.rule} · namespace ${m.namespace ?? 'any'} · user ${m.user ?? 'any'}`;
}

function renderMutes(): void {
  const list = byId('mute-list');
  clear(list);
  const active = activeMutes();
  byId('mutes').hidden = active.length === 0;
  for (const m of active) {
    const un = h('button', { type: 'button', class: 'small', 'data-mute': String(m.id) }, 'Un-mute');
    un.addEventListener('click', () => void unmute(m.id).catch((e) => showNotice((e as Error).message, true)));
    list.append(
      h(
        'li',
        { 'data-mute': String(m.id) },
        h('span', { class: 'mute-what' }, muteLabel(m)),
        h('span', { class: 'muted', title: fmtLocalISO(m.until) }, ` until ${fmtTime(m.until)}`),
        m.by ? h('span', { class: 'muted' }, ` by ${m.by}`) : null,
        m.comment ? h('span', { class: 'muted' }, ` — ${m.comment}`) : null,
        m.silence ? h('span', { class: 'badge', title: `Alertmanager silence ${m.silence}` }, 'silenced') : null,
        un,
      ),
    );
  }
}

let noticeTimer: ReturnType<typeof setTimeout> | undefined;
function showNotice(text: string, error = false): void {
  const el = byId('notice');
  el.textContent = text;
  el.className = error ? 'notice error' : 'notice';
  el.hidden = false;
  if (noticeTimer) clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (el.hidden = true), error ? 15_000 : 5000);
}

async function mute(body: { rule: string; namespace?: string; user?: string; duration: number; comment?: string }): Promise<void> {
  const r = await api<{ mute: Mute; silence_error?: string }>('/api/v1/mutes', { method: 'POST', body });
  if (r.silence_error) showNotice(`Muted here, but the Alertmanager silence failed: ${r.silence_error}`, true);
  else showNotice(`Muted ${muteLabel(r.mute)} until ${fmtTime(r.mute.until)}${r.mute.silence ? ' (Alertmanager silence created)' : ''}`);
  await loadMutes();
}

async function unmute(id: number): Promise<void> {
  const r = await api<{ mute: Mute; silence_error?: string }>(`/api/v1/mutes/${id}`, { method: 'DELETE' });
  if (r.silence_error) showNotice(`Un-muted here, but the Alertmanager silence was not expired: ${r.silence_error}`, true);
  else showNotice(`Un-muted ${muteLabel(r.mute)}`);
  await loadMutes();
}

// ---- detail

type JsonWithRaw = typeof JSON & { rawJSON?: (text: string) => unknown };

/**
 * JSON text to values, integers beyond 2^53 kept whole as BigInt (where the browser gives the
 * reviver the source text: Chromium 114+), so nanosecond times and 64-bit ids keep their digits.
 */
function parseExact(text: string): unknown {
  return JSON.parse(text, (_k, v: unknown, ctx?: { source?: string }) => (typeof v === 'number' && !Number.isSafeInteger(v) && ctx?.source && /^-?\d+$/.test(ctx.source) ? BigInt(ctx.source) : v));
}

/** Values to JSON text, BigInts written as their digits (JSON.rawJSON where there is one). */
function stringifyExact(v: unknown, indent?: number): string {
  const raw = (JSON as JsonWithRaw).rawJSON;
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? (raw ? raw(String(x)) : String(x)) : x), indent);
}

function jsonBlock(v: unknown): HTMLElement {
  return h('pre', { class: 'json' }, stringifyExact(v, 2));
}

function fieldValue(name: string, v: unknown): Node {
  if (v === null || v === undefined) return h('span', { class: 'muted' }, '<NA>');
  const text = typeof v === 'string' ? v : stringifyExact(v);
  // Falco writes evt.time / evt.rawtime (and other *time fields) as integer nanoseconds.
  const date = /time/i.test(name) ? fmtNanos(v) : undefined;
  if (date) return h('time', { class: 'ns-time', title: `${text} ns since the epoch`, datetime: date }, date);
  return document.createTextNode(text);
}

/** The triggering audit event, when the alert record carries it. */
function triggeringEvent(record: Record<string, unknown>): unknown {
  const ev = record.audit_event;
  if (typeof ev === 'string') {
    try {
      return parseExact(ev);
    } catch {
      return ev;
    }
  }
  return ev;
}

async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (a page not served over https or localhost): the old way.
    const area = h('textarea', { class: 'copy-area', readonly: '' });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    if (!ok) throw new Error('the browser refused to copy');
  }
}

const MUTE_DURATIONS: Array<[string, number]> = [
  ['15 minutes', 900],
  ['1 hour', 3600],
  ['4 hours', 14400],
  ['24 hours', 86400],
  ['7 days', 604800],
];

function muteForm(a: AlertSummary | undefined, rule: string, ns: string | undefined, user: string | undefined): HTMLElement {
  const nsBox = h('input', { type: 'checkbox', id: 'm-ns' });
  nsBox.checked = ns !== undefined;
  nsBox.disabled = ns === undefined;
  const userBox = h('input', { type: 'checkbox', id: 'm-user' });
  userBox.checked = user !== undefined;
  userBox.disabled = user === undefined;
  const dur = h('select', { id: 'm-duration' });
  for (const [label, s] of MUTE_DURATIONS) dur.append(h('option', { value: String(s) }, label));
  dur.value = '3600';
  const comment = h('input', { id: 'm-comment', placeholder: 'why (optional)', maxlength: '1000' });
  const go = h('button', { type: 'submit', class: 'small', id: 'm-go' }, 'Mute');
  const current = a ? muteOf(a) : undefined;
  const form = h(
    'form',
    { class: 'mute-form', id: 'mute-form' },
    h('strong', null, current ? `Muted until ${fmtTime(current.until)}` : 'Mute this group'),
    h('label', null, nsBox, ` namespace ${ns ?? '(none)'}`),
    h('label', null, userBox, ` user ${user ?? '(none)'}`),
    h('label', null, 'for ', dur),
    comment,
    go,
    alertmanager ? h('span', { class: 'muted' }, ' also silences it in Alertmanager') : null,
  );
  if (current) {
    // Muting again would add a second mute over the same alerts: offer to lift this one instead.
    const un = h('button', { type: 'button', class: 'small', id: 'm-unmute' }, 'Un-mute');
    un.addEventListener('click', () => {
      un.disabled = true;
      void unmute(current.id)
        .then(() => byId<HTMLDialogElement>('detail').close())
        .catch((err) => showNotice((err as Error).message, true))
        .finally(() => (un.disabled = false));
    });
    form.insertBefore(un, form.children[1] ?? null);
    go.textContent = 'Mute again';
  }
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    go.disabled = true;
    const body: { rule: string; namespace?: string; user?: string; duration: number; comment?: string } = { rule, duration: Number(dur.value) };
    if (nsBox.checked && ns !== undefined) body.namespace = ns;
    if (userBox.checked && user !== undefined) body.user = user;
    if (comment.value.trim()) body.comment = comment.value.trim();
    void mute(body)
      .then(() => byId<HTMLDialogElement>('detail').close())
      .catch((err) => showNotice((err as Error).message, true))
      .finally(() => (go.disabled = false));
  });
  return form;
}

async function openDetail(id: number): Promise<void> {
  const dlg = byId<HTMLDialogElement>('detail');
  const body = byId('d-body');
  clear(body);
  byId('d-rule').textContent = `Alert ${id}`;
  if (!dlg.open) dlg.showModal();
  if (location.hash !== `#alert-${id}`) history.replaceState(null, '', `${location.pathname}${location.search}#alert-${id}`);
  let a: { id: number; received: number; tag: string; time: string; record: Record<string, unknown> };
  let text: string;
  try {
    const res = await fetch(`/api/v1/alerts/${id}`, { headers: authHeaders(), cache: 'no-store' });
    if (res.status === 401) {
      askToken(res);
      return;
    }
    if (!res.ok) throw new Error(res.status === 404 ? 'This alert is no longer kept.' : `/api/v1/alerts/${id}: HTTP ${res.status}`);
    text = await res.text();
    a = parseExact(text) as typeof a;
  } catch (e) {
    body.append(h('p', { class: 'error' }, (e as Error).message));
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
  const time = typeof r.time === 'string' ? r.time : a.time;
  const meta = h(
    'dl',
    { class: 'meta' },
    h('dt', null, 'Priority'),
    h('dd', null, h('span', { class: `prio ${priorityClass(prio)}` }, prio || '?')),
    h('dt', null, 'Time'),
    h('dd', null, h('time', { title: time, datetime: time }, fmtDateText(time))),
    h('dt', null, 'Received'),
    h('dd', null, h('time', { title: new Date(a.received).toISOString() }, fmtLocalISO(a.received))),
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
  for (const k of Object.keys(fields).sort()) table.append(h('tr', null, h('th', null, k), h('td', null, fieldValue(k, fields[k]))));
  const actions = h('div', { class: 'actions' });
  if (typeof r.rule === 'string') actions.append(filterBtn('Only this rule', { rule: [r.rule] }));
  const ns = fields['ka.target.namespace'];
  const user = fields['ka.user.name'];
  if (typeof ns === 'string') actions.append(filterBtn('Only this namespace', { namespace: ns }));
  if (typeof user === 'string') actions.append(filterBtn('Only this user', { user }));
  if (typeof r.hostname === 'string') actions.append(filterBtn('Only this host', { hostname: [r.hostname] }));
  const copy = h('button', { type: 'button', class: 'small', id: 'd-copy' }, 'Copy as JSON');
  copy.addEventListener('click', () => {
    void copyText(stringifyExact(a, 2))
      .then(() => {
        copy.textContent = 'Copied';
        setTimeout(() => (copy.textContent = 'Copy as JSON'), 2000);
      })
      .catch((e) => showNotice(`Cannot copy: ${(e as Error).message}`, true));
  });
  actions.append(copy);
  const summary = rows.find((x) => x.id === id);
  const ev = triggeringEvent(r);
  const out = typeof r.output === 'string' ? r.output : '';
  body.append(
    h('p', { class: 'output' }, ...(summary ? outputText(summary) : [document.createTextNode(out)])),
    actions,
    ...(typeof r.rule === 'string' ? [muteForm(summary, r.rule, typeof ns === 'string' ? ns : undefined, typeof user === 'string' ? user : undefined)] : []),
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
  byId('f-muted').addEventListener('change', (e) => {
    const v = (e.target as HTMLSelectElement).value;
    setQuery({ ...query, muted: v === 'hide' || v === 'only' ? v : undefined });
  });
  byId('f-range').addEventListener('change', (e) => {
    const v = (e.target as HTMLSelectElement).value;
    const { since: _s, from: _f, to: _t, ...rest } = query;
    if (v === 'custom') {
      byId('range-custom').hidden = false;
      const from = query.from ?? (query.since !== undefined ? Date.now() - query.since * 1000 : Date.now() - 3600_000);
      setQuery({ ...rest, from, ...(query.to !== undefined ? { to: query.to } : {}) });
    } else setQuery(v ? { ...rest, since: SINCE_PRESETS[v] } : rest);
  });
  for (const id of ['f-from', 'f-to']) {
    byId(id).addEventListener('change', () => {
      const { since: _s, from: _f, to: _t, ...rest } = query;
      const from = fromLocalInput(byId<HTMLInputElement>('f-from').value);
      const to = fromLocalInput(byId<HTMLInputElement>('f-to').value);
      setQuery({ ...rest, ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) });
    });
  }
  byId('f-clear').addEventListener('click', () => {
    byId<HTMLSelectElement>('f-range').value = '';
    setQuery({});
  });
  byId('filter-form').addEventListener('submit', (e) => e.preventDefault());
  byId('older').addEventListener('click', () => void loadOlder().catch(report));
  byId('newer').addEventListener('click', () => void loadNewer().catch(report));
  byId('newest').addEventListener('click', () => void reload());
  const size = byId<HTMLSelectElement>('page-size');
  size.value = String(pageSize);
  size.addEventListener('change', () => {
    pageSize = Number(size.value) || 50;
    localStorage.setItem(SIZE_KEY, String(pageSize));
    void reload();
  });
  byId('export-jsonl').addEventListener('click', () => void exportList('jsonl').catch((e) => showNotice((e as Error).message, true)));
  byId('export-csv').addEventListener('click', () => void exportList('csv').catch((e) => showNotice((e as Error).message, true)));
  byId('f-toggle').addEventListener('click', () => {
    const open = byId('alerts').classList.toggle('show-filters');
    byId('f-toggle').setAttribute('aria-expanded', String(open));
    // The chart sizes itself to its box, which was not laid out while hidden.
    if (open && lastStats) chart.draw(lastStats, group);
  });
  const healthBox = byId<HTMLDetailsElement>('health');
  if (localStorage.getItem(HEALTH_KEY) === 'closed') healthBox.open = false;
  healthBox.addEventListener('toggle', () => localStorage.setItem(HEALTH_KEY, healthBox.open ? 'open' : 'closed'));
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
  const fromHash = () => {
    const m = /^#alert-(\d+)$/.exec(location.hash);
    if (m) void openDetail(Number(m[1]));
  };
  window.addEventListener('hashchange', fromHash);
  fromHash();
}

async function pollMutes(): Promise<void> {
  try {
    await loadMutes();
  } catch (e) {
    report(e);
  } finally {
    setTimeout(() => void pollMutes(), MUTES_EVERY_MS);
  }
}

wire();
void reload();
void pollHealth();
void pollMutes();
// Counts over time move even when no alert arrives.
setInterval(() => void refreshStats().catch(report), 30_000);
