/**
 * An Alertmanager stand-in on loopback for tests that count requests: it answers
 * POST /api/v2/alerts with 200 as Alertmanager does, keeps every request's alerts, and can be
 * told to answer the next requests with another status (and headers) or to hold its answers
 * until released. The real Alertmanager (./alertmanager.ts) is for end-to-end tests.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface StubAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt?: string;
}

export interface StubRequest {
  alerts: StubAlert[];
  status: number;
}

export class AlertmanagerStub {
  readonly requests: StubRequest[] = [];
  private readonly script: Array<{ status: number; headers: Record<string, string> }> = [];
  private held: Array<() => void> | undefined;
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    this.release();
    const s = this.server;
    this.server = undefined;
    for (const sock of this.sockets) sock.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** The next `times` requests are answered with `status` (and `headers`), their alerts not kept as accepted. */
  failNext(status: number, times = 1, headers: Record<string, string> = {}): void {
    for (let k = 0; k < times; k++) this.script.push({ status, headers });
  }

  /** Requests are read and counted but not answered until `release()`. */
  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const held = this.held;
    this.held = undefined;
    for (const answer of held ?? []) answer();
  }

  /** Requests answered 2xx. */
  get accepted(): StubRequest[] {
    return this.requests.filter((r) => r.status === 200);
  }

  /** Resolves once `n` requests have come in, polling with setImmediate (tests may mock the timers). */
  async waitForRequests(n: number, timeoutMs = 10_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.requests.length < n) {
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${n} requests; have ${this.requests.length}`);
      await new Promise((r) => setImmediate(r));
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const c of req) body += String(c);
    if (req.method !== 'POST' || req.url !== '/api/v2/alerts') {
      res.writeHead(404).end('404 page not found\n');
      return;
    }
    const scripted = this.script.shift();
    const status = scripted?.status ?? 200;
    let alerts: StubAlert[] = [];
    try {
      alerts = JSON.parse(body) as StubAlert[];
    } catch {
      res.writeHead(400).end('{"code":400,"message":"cannot parse the body"}');
      return;
    }
    this.requests.push({ alerts, status });
    const answer = () => {
      res.writeHead(status, { 'content-type': 'application/json', ...scripted?.headers });
      res.end(status === 200 ? '' : JSON.stringify({ code: status, message: 'scripted' }));
    };
    if (this.held) this.held.push(answer);
    else answer();
  }
}
