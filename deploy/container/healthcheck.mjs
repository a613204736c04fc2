// Container HEALTHCHECK: GET /healthz on logwarden's HTTP server with node itself, since the
// runtime image has no curl or wget. Exit 0 on a 2xx answer, 1 otherwise (Docker's contract).
// LOGWARDEN_HEALTH_URL overrides the address when the pipeline sets another http_port.
import { get } from 'node:http';

const url = process.env.LOGWARDEN_HEALTH_URL ?? 'http://127.0.0.1:2020/healthz';
const timeoutMs = Number(process.env.LOGWARDEN_HEALTH_TIMEOUT_MS ?? 3000);

const req = get(url, { timeout: timeoutMs }, (res) => {
  res.resume();
  const ok = res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300;
  if (!ok) process.stderr.write(`healthcheck: ${url} answered ${res.statusCode}\n`);
  process.exitCode = ok ? 0 : 1;
});
req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
req.on('error', (err) => {
  process.stderr.write(`healthcheck: ${url}: ${err.message}\n`);
  process.exitCode = 1;
});
