/**
 * Alert counts over time as stacked bars (uPlot). uPlot has no stacking of its own: series k is
 * drawn as the sum of groups k..n-1, tallest first, so each group shows as its own segment.
 * The legend is ours (uPlot's is off) and shows each group's count in the window.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { PRIORITIES, type AlertStats } from '../alerts.js';
import { clear, h } from './dom.js';

export const PRIORITY_COLORS: Record<string, string> = {
  Emergency: '#7f0000',
  Alert: '#b71c1c',
  Critical: '#e53935',
  Error: '#f4511e',
  Warning: '#fb8c00',
  Notice: '#1e88e5',
  Informational: '#00897b',
  Debug: '#8d8d8d',
};
const RULE_COLORS = ['#3366cc', '#dc3912', '#ff9900', '#109618', '#990099', '#0099c6', '#dd4477', '#66aa00', '#8d8d8d'];

export function priorityColor(p: string): string {
  return PRIORITY_COLORS[p] ?? '#8d8d8d';
}

/** Whole-number steps for the count axis, up to the largest ui.max_alerts. */
const Y_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000];

/** The count axis as wide as its longest label (`1,000,000` is not cut off at the left edge). */
function yAxisSize(u: uPlot, values: string[] | null): number {
  const longest = Math.max(1, ...(values ?? []).map((v) => v.length));
  const ctx = u.ctx;
  const width = ctx ? ctx.measureText('0'.repeat(longest)).width / (devicePixelRatio || 1) : longest * 7;
  return Math.ceil(Math.max(width, longest * 6.5)) + 22;
}

export class AlertChart {
  private plot: uPlot | undefined;
  private readonly observer: ResizeObserver;

  constructor(
    private readonly box: HTMLElement,
    private readonly legend: HTMLElement,
    private readonly onPick: (group: 'priority' | 'rule', name: string) => void,
  ) {
    this.observer = new ResizeObserver(() => this.plot?.setSize(this.size()));
    this.observer.observe(box);
  }

  private size(): { width: number; height: number } {
    return { width: Math.max(200, this.box.clientWidth), height: this.box.clientWidth < 500 ? 130 : 150 };
  }

  draw(stats: AlertStats, group: 'priority' | 'rule'): void {
    const series = group === 'priority' ? stats.series.byPriority : stats.series.byRule;
    const names = Object.keys(series);
    const n = Math.max(0, ...names.map((k) => series[k]!.length));
    const buckets = n || Math.max(1, Math.round(3600_000 / stats.series.step));
    const xs = Array.from({ length: buckets }, (_, i) => (stats.series.start + (i + 0.5) * stats.series.step) / 1000);
    const stacked: number[][] = [];
    let acc = new Array<number>(buckets).fill(0);
    for (let k = names.length - 1; k >= 0; k--) {
      acc = acc.map((v, i) => v + (series[names[k]!]![i] ?? 0));
      stacked.unshift(acc);
    }
    const colorOf = (name: string, k: number) => (group === 'priority' ? priorityColor(name) : RULE_COLORS[k % RULE_COLORS.length]!);
    const styles = getComputedStyle(document.documentElement);
    const axis = styles.getPropertyValue('--muted').trim() || '#777';
    const grid = styles.getPropertyValue('--line').trim() || '#ddd';
    const bars = uPlot.paths.bars!({ size: [0.85, 48], align: 0 });
    const opts: uPlot.Options = {
      ...this.size(),
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: yAxisSize, incrs: Y_INCRS },
      ],
      series: [{}, ...names.map((name, k) => ({ label: name, fill: colorOf(name, k), stroke: colorOf(name, k), width: 0, paths: bars, points: { show: false } }))],
    };
    this.plot?.destroy();
    clear(this.box);
    this.plot = new uPlot(opts, [xs, ...stacked] as uPlot.AlignedData, this.box);

    clear(this.legend);
    if (names.length === 0) this.legend.append(h('span', { class: 'muted' }, 'No alerts in this window.'));
    names.forEach((name, k) => {
      const count = series[name]!.reduce((a, b) => a + b, 0);
      const swatch = h('span', { class: 'swatch' });
      swatch.style.background = colorOf(name, k);
      const item = h('button', { type: 'button', class: 'legend-item', title: `Show only ${name}` }, swatch, name, h('b', null, count));
      item.addEventListener('click', () => this.onPick(group, name));
      this.legend.append(item);
    });
  }
}

export { PRIORITIES };
