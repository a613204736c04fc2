/** The pipeline health panel: inputs → filters → outputs as cards, each with its numbers and a rate sparkline. */
import { readinessBadge, type Health } from '../health-shape.js';
import { byId, clear, fmtBytes, fmtDuration, fmtNum, fmtRate, h, svg } from './dom.js';

const HISTORY = 60;

type Row = [label: string, value: string, cls?: string];

export class HealthView {
  private readonly history = new Map<string, number[]>();

  private spark(key: string, value: number | null): SVGElement {
    let hist = this.history.get(key);
    if (!hist) this.history.set(key, (hist = []));
    hist.push(value ?? 0);
    if (hist.length > HISTORY) hist.shift();
    const w = 120;
    const ht = 24;
    const max = Math.max(1, ...hist);
    const step = w / (HISTORY - 1);
    const x0 = w - (hist.length - 1) * step;
    const d = hist.map((v, i) => `${i === 0 ? 'M' : 'L'}${(x0 + i * step).toFixed(1)},${(ht - 1 - (v / max) * (ht - 2)).toFixed(1)}`).join('');
    const el = svg('svg', { viewBox: `0 0 ${w} ${ht}`, class: 'spark', 'aria-hidden': 'true', preserveAspectRatio: 'none' });
    el.append(svg('path', { d, fill: 'none', 'stroke-width': '1.5' }));
    return el;
  }

  private card(kind: string, name: string, rate: number | null, rows: Row[], state: 'ok' | 'warn' | 'bad'): HTMLElement {
    const dl = h('dl');
    for (const [label, value, cls] of rows) dl.append(h('dt', null, label), h('dd', cls ? { class: cls } : null, value));
    return h(
      'article',
      { class: `card ${state}`, 'data-name': name },
      h('header', null, h('span', { class: 'name' }, name), h('span', { class: 'rate' }, fmtRate(rate))),
      this.spark(`${kind}:${name}`, rate),
      dl,
    );
  }

  render(hl: Health): void {
    const ready = byId('ready');
    const badge = readinessBadge(hl);
    ready.textContent = badge.text;
    ready.className = `badge ${badge.level}`;
    ready.title = badge.title;
    byId('proc').textContent = `up ${fmtDuration(hl.process.uptime_s)} · RSS ${fmtBytes(hl.process.rss_bytes)}`;
    const inRate = hl.inputs.reduce((n, i) => n + (i.records_per_s ?? 0), 0);
    const outRate = hl.outputs.reduce((n, o) => n + (o.records_per_s ?? 0), 0);
    const problems = hl.outputs.filter((o) => o.last_error || o.dropped).length;
    byId('health-sum').textContent = `${hl.inputs.length} in · ${fmtRate(inRate)} → ${hl.outputs.length} out · ${fmtRate(outRate)}` + (problems ? ` · ${problems} output(s) with errors` : '');

    const inputs = byId('inputs');
    clear(inputs);
    for (const i of hl.inputs) {
      inputs.append(
        this.card(
          'i',
          i.name,
          i.records_per_s,
          [
            ['connections', fmtNum(i.connections)],
            ['records', fmtNum(i.records)],
            ['bytes', fmtBytes(i.bytes)],
            ['errors', fmtNum(i.errors), i.errors ? 'bad' : undefined],
            ...(i.paused ? ([['state', 'paused', 'warn']] as Row[]) : []),
          ],
          i.paused ? 'warn' : i.errors ? 'warn' : 'ok',
        ),
      );
    }
    if (hl.inputs.length === 0) inputs.append(h('p', { class: 'muted' }, 'none'));

    const filters = byId('filters');
    clear(filters);
    for (const f of hl.filters) {
      filters.append(
        this.card(
          'f',
          f.name,
          f.in_per_s,
          [
            ['in', fmtNum(f.in)],
            ['out', fmtNum(f.out)],
            ['dropped', fmtNum(f.dropped)],
            ['emitted', fmtNum(f.emitted)],
            ['errors', fmtNum(f.errors), f.errors ? 'bad' : undefined],
          ],
          f.errors ? 'bad' : 'ok',
        ),
      );
    }
    if (hl.filters.length === 0) filters.append(h('p', { class: 'muted' }, 'none'));

    const outputs = byId('outputs');
    clear(outputs);
    for (const o of hl.outputs) {
      const reasons = Object.keys(o.dropped_by_reason)
        .map((r) => `${r}: ${o.dropped_by_reason[r]}`)
        .join(', ');
      const rows: Row[] = [
        ['delivered', fmtNum(o.delivered)],
        ['queued', `${fmtNum(o.queue_records)} (${fmtBytes(o.queue_bytes)})`, o.queue_records > 0 ? 'warn' : undefined],
        ['retries', fmtNum(o.retries), o.retries ? 'warn' : undefined],
        ['dead letters', reasons ? `${fmtNum(o.dropped)} (${reasons})` : fmtNum(o.dropped), o.dropped ? 'bad' : undefined],
      ];
      const card = this.card('o', o.name, o.records_per_s, rows, o.dropped || o.retries_failed ? 'bad' : o.last_error ? 'warn' : 'ok');
      if (o.last_error) card.append(h('p', { class: 'last-error', title: o.last_error }, o.last_error));
      outputs.append(card);
    }
    if (hl.outputs.length === 0) outputs.append(h('p', { class: 'muted' }, 'none'));

    const pct = Math.min(100, hl.buffer.usage * 100);
    const fill = byId('buffer-fill');
    fill.style.width = `${pct.toFixed(1)}%`;
    fill.className = pct > 80 ? 'bad' : pct > 50 ? 'warn' : '';
    byId('buffer-text').textContent =
      `${fmtNum(hl.buffer.records)} records, ${fmtBytes(hl.buffer.bytes)} of ${fmtBytes(hl.buffer.limit_bytes)} (${pct.toFixed(pct < 1 ? 2 : 0)}%)` +
      (hl.unrouted ? ` · ${fmtNum(hl.unrouted)} unrouted` : '');
  }
}
