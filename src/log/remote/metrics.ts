/**
 * The log server's /metrics (`ftcp logserver --metrics ip:port`): what it served (appends,
 * reads, lists, STABLE notices), what it refused (malformed, forged, fenced writes, gateways
 * over --max-peers), the fencing epoch, the store's usage against its bounds, and each attached
 * gateway's link (retransmissions, duplicates, replays, REJECTs…). Every bound is an
 * `ftcp_limit{name=…}` sample, as on the gateway. It reads the server; it changes nothing.
 *
 *   GET /metrics   → 200 text/plain (Prometheus 0.0.4)
 *   anything else  → 404; not GET 405; a body 400 (util/http-endpoint.ts bounds the rest)
 */
import type { LogStore } from '../types.js';
import type { UdpLogServer } from './udp-server.js';
import { PromText, snake } from '../../util/prom.js';
import { HTTP_LIMITS, HttpStats, plainGet, refuse, startHttpEndpoint, type HttpEndpoint } from '../../util/http-endpoint.js';
import type { Logger } from '../../util/logger.js';

export function logServerMetricsText(udp: UdpLogServer, store: LogStore, http: HttpStats | null = null): string {
  const p = new PromText();
  const server = udp.server;
  p.counters('logserver', 'log server', server.counters);
  p.put('logserver_peers', 'gateways attached now', 'gauge', server.peerCount);
  p.put('logserver_peers_refused_total', 'datagrams of a new gateway ignored: --max-peers gateways were attached', 'counter', udp.peersRefused);
  p.put('logserver_store_ok', '1 when the store\'s status is OK', 'gauge', store.status() === 'OK' ? 1 : 0);
  const fence = server.epochs.describe();
  const limits: [string, number][] = [];
  for (const [k, v] of Object.entries(fence)) {
    if (k === 'epoch') p.put('logserver_epoch', 'the newest fencing epoch granted (0: none yet)', 'gauge', v);
    else if (k === 'holder') p.put('logserver_epoch_holder', 'the session (boot id) holding the newest epoch (0: none)', 'gauge', v);
    else if (k.startsWith('limit')) limits.push([snake(k.slice('limit'.length).replace(/^./, (c) => c.toLowerCase())), v]);
    else p.put(`logserver_fence_${snake(k)}_total`, `fencing ${k}`, 'counter', v);
  }
  const stats = store.stats?.();
  if (stats !== undefined) p.counters('logserver_store', 'store', stats);
  const u = store.usage?.();
  if (u !== undefined) {
    p.put('logserver_bytes', 'stream bytes the store holds, counted against --max-bytes', 'gauge', u.bytes);
    p.put('logserver_memory_bytes', 'memory the store holds for them (memory store: its slabs)', 'gauge', u.memory);
    p.put('logserver_connections', 'open connections in the store', 'gauge', u.connections);
    if (Number.isFinite(u.maxBytes)) limits.push(['max_bytes', u.maxBytes]);
    if (Number.isFinite(u.maxBytesPerConn)) limits.push(['max_bytes_per_conn', u.maxBytesPerConn]);
  }
  for (const [k, v] of Object.entries(server.limits())) limits.push([snake(k), v]);
  limits.push(['max_peers', udp.maxPeers]);
  p.family('limit', 'configured bounds of the log server, by name', 'gauge', limits.map(([k, v]) => [`name="${k}"`, v]));
  const links = udp.links();
  p.family('logserver_link_active', '1 when the gateway is active on its link, by the gateway\'s boot id', 'gauge', links.map((l) => [`gateway="${l.boot}"`, l.state === 'active' ? 1 : 0]));
  const keys = links.length > 0 ? Object.keys(links[0]!.counters) : [];
  for (const k of keys) {
    p.family(`logserver_link_${snake(k)}_total`, `link ${k}, by the gateway's boot id`, 'counter', links.map((l) => [`gateway="${l.boot}"`, (l.counters as unknown as Record<string, number>)[k] ?? 0]));
  }
  if (udp.impairable) {
    p.family('logserver_impaired_total', 'TESTS ONLY (--impair-file): datagrams in and out dropped, duplicated or delayed', 'counter', Object.entries(udp.impaired).map(([k, v]) => [`what="${k}"`, v]));
  }
  if (http !== null) p.counters('logserver_metrics', 'metrics endpoint', http);
  return p.text();
}

/** Serves logServerMetricsText on `addr:port` (bounded as util/http-endpoint.ts says). */
export async function startLogServerMetrics(udp: UdpLogServer, store: LogStore, addr: string, port: number, logger?: Logger): Promise<HttpEndpoint> {
  const stats = new HttpStats();
  return startHttpEndpoint({
    addr,
    port,
    limits: { ...HTTP_LIMITS },
    stats,
    what: `--metrics ${addr}:${port}`,
    bindErrorCode: 'FTCP_METRICS_BIND',
    ...(logger !== undefined ? { logger } : {}),
    onHandlerError: (err) => logger?.error({ err }, 'logserver: /metrics failed'),
    handle: (req, res) => {
      const url = req.url ?? '';
      if (url !== '/metrics') {
        stats.notFound++;
        refuse(res, 404, 'try /metrics\n');
        return;
      }
      if (!plainGet(req, res, stats)) return;
      stats.answered++;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'cache-control': 'no-store' }).end(logServerMetricsText(udp, store, stats));
    },
  });
}
