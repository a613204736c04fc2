/**
 * A multiple-choice filter: a button showing the choice ("any", one value, or "N selected") that
 * opens a panel of checkboxes with a search box. Values come from the store's stats; a selected
 * value no longer seen stays listed so it can be unticked.
 */
import { clear, fmtNum, h } from './dom.js';

export class MultiSelect {
  readonly root: HTMLElement;
  private readonly button: HTMLButtonElement;
  private readonly panel: HTMLElement;
  private readonly list: HTMLElement;
  private readonly search: HTMLInputElement;
  private values: string[] = [];
  private counts: Record<string, number> | undefined;
  private selected: string[] = [];

  constructor(
    readonly key: string,
    private readonly label: string,
    private readonly onChange: (selected: string[]) => void,
  ) {
    this.button = h('button', { type: 'button', class: 'ms-button', id: `f-${key}`, 'aria-haspopup': 'true', 'aria-expanded': 'false' });
    this.search = h('input', { type: 'search', placeholder: `find a ${label.toLowerCase()}…`, 'aria-label': `Find a ${label.toLowerCase()}` });
    this.list = h('div', { class: 'ms-list', role: 'group', 'aria-label': label });
    const none = h('button', { type: 'button', class: 'small' }, 'Any');
    none.addEventListener('click', () => this.set([]));
    this.panel = h('div', { class: 'ms-panel', hidden: '' }, h('div', { class: 'ms-tools' }, this.search, none), this.list);
    this.root = h('div', { class: 'ms', 'data-filter': key }, h('span', { class: 'ms-label' }, label), this.button, this.panel);
    this.button.addEventListener('click', () => this.toggle());
    this.search.addEventListener('input', () => this.renderList());
    this.root.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !this.panel.hidden) {
        e.stopPropagation();
        this.toggle(false);
        this.button.focus();
      }
    });
    document.addEventListener('click', (e) => {
      if (!this.panel.hidden && !this.root.contains(e.target as Node)) this.toggle(false);
    });
    this.renderButton();
  }

  toggle(open = this.panel.hidden): void {
    this.panel.hidden = !open;
    this.button.setAttribute('aria-expanded', String(open));
    if (open) {
      this.renderList();
      this.search.focus();
    }
  }

  /** New choices (and their counts, when known). */
  setValues(values: string[], counts?: Record<string, number>): void {
    this.values = values;
    this.counts = counts;
    if (!this.panel.hidden) this.renderList();
  }

  /** The current selection, from the query (no change event). */
  setSelected(selected: string[] | undefined): void {
    this.selected = [...(selected ?? [])];
    this.renderButton();
    if (!this.panel.hidden) this.renderList();
  }

  private set(next: string[]): void {
    this.selected = next;
    this.renderButton();
    this.renderList();
    this.onChange(next);
  }

  private renderButton(): void {
    const n = this.selected.length;
    this.button.textContent = n === 0 ? 'any' : n === 1 ? this.selected[0]! : `${n} selected`;
    this.button.title = n ? this.selected.join('\n') : `any ${this.label.toLowerCase()}`;
    this.button.classList.toggle('set', n > 0);
  }

  private renderList(): void {
    clear(this.list);
    const find = this.search.value.trim().toLowerCase();
    const chosen = new Set(this.selected);
    const all = [...this.selected.filter((v) => !this.values.includes(v)), ...this.values];
    let shown = 0;
    for (const v of all) {
      if (find && !v.toLowerCase().includes(find)) continue;
      if (++shown > 300) break;
      const box = h('input', { type: 'checkbox', value: v });
      box.checked = chosen.has(v);
      box.addEventListener('change', () => this.set(box.checked ? [...this.selected, v] : this.selected.filter((x) => x !== v)));
      const count = this.counts?.[v];
      this.list.append(h('label', { class: 'ms-item', title: v }, box, h('span', { class: 'ms-name' }, v), count === undefined ? null : h('b', null, fmtNum(count))));
    }
    if (shown === 0) this.list.append(h('p', { class: 'muted' }, all.length ? 'none matches' : 'none seen yet'));
  }
}
