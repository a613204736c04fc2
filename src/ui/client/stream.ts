/**
 * The live alert stream: Server-Sent Events read with fetch (not EventSource), so that a bearer
 * token can be sent as a header. Reconnects after `retry` ms and asks for what it missed with
 * Last-Event-ID, as EventSource would.
 */
import { queryParams, type AlertQuery, type AlertSummary } from '../alerts.js';

export type StreamState = 'connecting' | 'live' | 'down' | 'unauthorized';

export class LiveStream {
  private ctrl: AbortController | undefined;
  private lastId = 0;
  private retryMs = 2000;

  constructor(
    private readonly headers: () => Record<string, string>,
    private readonly onAlert: (a: AlertSummary) => void,
    private readonly onState: (s: StreamState, res?: Response) => void,
  ) {}

  /** (Re)starts the stream for a query, asking for alerts with ids above `after`. */
  start(query: AlertQuery, after: number): void {
    this.stop();
    this.lastId = after;
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    void this.loop(query, ctrl.signal);
  }

  stop(): void {
    this.ctrl?.abort();
    this.ctrl = undefined;
  }

  private async loop(query: AlertQuery, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      this.onState('connecting');
      try {
        const params = queryParams(query);
        params.set('after', String(this.lastId));
        const res = await fetch(`/api/v1/alerts/stream?${params}`, {
          headers: { ...this.headers(), accept: 'text/event-stream', 'last-event-id': String(this.lastId) },
          cache: 'no-store',
          signal,
        });
        if (res.status === 401) {
          this.onState('unauthorized', res);
          return;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        this.onState('live');
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, '\n');
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            this.dispatch(buf.slice(0, i));
            buf = buf.slice(i + 2);
          }
        }
      } catch {
        if (signal.aborted) return;
      }
      if (signal.aborted) return;
      this.onState('down');
      await new Promise((r) => setTimeout(r, this.retryMs));
    }
  }

  /** One event block (WHATWG HTML, "Interpreting an event stream"). */
  private dispatch(block: string): void {
    let event = 'message';
    let data = '';
    let id: string | undefined;
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let value = c < 0 ? '' : line.slice(c + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data = data === '' ? value : `${data}\n${value}`;
      else if (field === 'id') id = value;
      else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    if (id !== undefined && /^\d+$/.test(id)) this.lastId = Math.max(this.lastId, Number(id));
    if (event === 'alert' && data !== '') this.onAlert(JSON.parse(data) as AlertSummary);
  }
}
