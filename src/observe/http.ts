/**
 * The service HTTP server (`service.http_server`, `http_listen`, `http_port`): /metrics in
 * Prometheus text format, /healthz (the process serves), /readyz (every input listening, not
 * draining for shutdown, not paused by backpressure: 503 with the state and reasons otherwise).
 * Other components may mount routes.
 */
import http from 'node:http';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';
import type { RawSection } from '../config/schema.js';
import { bindError } from '../inputs/listener.js';

export type Route = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => boolean | Promise<boolean>;

export class ServiceHttp {
  private server: http.Server | undefined;
  private readonly routes: Route[] = [];

  constructor(
    private readonly metrics: Metrics,
    private readonly status: () => { ready: boolean; paused: Record<string, string>; outputs: Record<string, unknown> },
    private readonly log: Logger,
  ) {}

  /** Adds a route; it returns true when it answered the request. */
  mount(route: Route): void {
    this.routes.push(route);
  }

  /** `section`: the service section, so that a failed bind names http_port / http_listen and where they are set. */
  async listen(host: string, port: number, section?: RawSection): Promise<string> {
    const server = http.createServer((req, res) => {
      this.handle(req, res).catch((e) => {
        this.log.error({ err: (e as Error).message, url: req.url }, 'http handler failed');
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => reject(section ? bindError(e, section, { host, port, hostKey: 'http_listen', portKey: 'http_port' }) : e);
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    const a = server.address();
    const where = typeof a === 'string' ? a : `${a?.address}:${a?.port}`;
    this.log.info({ listen: where }, 'http server listening (/metrics, /healthz, /readyz)');
    return where;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      for (const r of this.routes) if (await r(req, res, url)) return;
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch (url.pathname) {
      case '/metrics': {
        const body = await this.metrics.registry.metrics();
        res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(body);
        return;
      }
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      case '/readyz': {
        const s = this.status();
        res.writeHead(s.ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(s)}\n`);
        return;
      }
      case '/api/v1/status': {
        res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(this.status())}\n`);
        return;
      }
    }
    for (const r of this.routes) if (await r(req, res, url)) return;
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    s.closeAllConnections?.();
    await new Promise<void>((r) => s.close(() => r()));
  }
}
