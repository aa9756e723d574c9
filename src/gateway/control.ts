/**
 * The gateway's control endpoint (HTTP): GET /status (JSON), GET /metrics (Prometheus text).
 * Bound to the address given by --control; read-only. GET /status?gc=1 collects garbage first
 * (only under node --expose-gc), so the snapshot's `memory` shows the live heap.
 */
import http from 'node:http';
import type { Gateway } from './gateway.js';
import { FtcpError } from '../util/errors.js';

export async function startControl(gw: Gateway, addr: string, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (req.url === '/status' || req.url === '/status?gc=1') {
      // ?gc=1: a full garbage collection first when the gateway runs with --expose-gc (the
      // scale benchmark's heap reading); without the flag it is the plain snapshot.
      const gc = (globalThis as { gc?: () => void }).gc;
      if (req.url.endsWith('gc=1') && typeof gc === 'function') gc();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(gw.snapshot()));
    } else if (req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(gw.metrics());
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('try /status or /metrics\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new FtcpError('FTCP_CONTROL_BIND', `--control ${addr}:${port}: ${(err as Error).message}`, { cause: err })),
    );
    server.listen(port, addr, () => resolve());
  });
  server.unref();
  return server;
}
