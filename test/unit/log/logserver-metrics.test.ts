/**
 * The log server's /metrics (src/log/remote/metrics.ts) on loopback: a UdpLogServer on a
 * memory store, RemoteLog clients in this process. What the server served, its bounds, each
 * gateway's link (duplicates absorbed under an impairment that duplicates every datagram), the
 * gateways refused over --max-peers, and the endpoint's refusals.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryLog } from '../../../src/log/memory.js';
import { LogServer, UdpLogServer, type Impairment } from '../../../src/log/remote/server.js';
import { connectUdp, type RemoteLog } from '../../../src/log/remote/client.js';
import { startLogServerMetrics } from '../../../src/log/remote/metrics.js';
import { parsePromText } from '../../../src/util/prom.js';
import type { HttpEndpoint } from '../../../src/util/http-endpoint.js';
import { openMeta, streamBytes, waitFor } from './helpers.js';
import { rawRequest } from '../../support/raw-http.js';

const LOOP = { address: '127.0.0.1', port: 0 };
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function rig(o: { maxPeers?: number; impair?: Impairment } = {}) {
  const key = randomBytes(32);
  const store = new MemoryLog({ maxBytes: 64 << 20 });
  const server = new LogServer({ store });
  let impairment: Impairment | null = o.impair ?? null;
  const udp = await UdpLogServer.listen({
    server, key, listen: [LOOP, LOOP],
    ...(o.maxPeers !== undefined ? { maxPeers: o.maxPeers } : {}),
    ...(o.impair !== undefined ? { impair: () => impairment } : {}),
  });
  const http: HttpEndpoint = await startLogServerMetrics(udp, store, '127.0.0.1', 0);
  cleanups.push(async () => {
    await http.close();
    await udp.close();
    await store.shutdown();
  });
  const client = (): RemoteLog => {
    const log = connectUdp({ key, servers: [udp.address(0), udp.address(1)], local: [LOOP, LOOP] });
    cleanups.push(() => log.shutdown());
    return log;
  };
  const url = `http://127.0.0.1:${http.address().port}`;
  const metrics = async () => parsePromText(await (await fetch(`${url}/metrics`)).text());
  return { udp, client, url, metrics, clean: () => (impairment = null) };
}

describe('log server /metrics', () => {
  it('shows what was served, the bounds, and each gateway\'s link with the duplicates it absorbed', async () => {
    const r = await rig({ impair: { loss: 0, dup: 1, reorder: 0, reorderMs: 0 } });
    const log = r.client();
    let stable = 0;
    log.onStable((_id, s) => (stable = s));
    const id = await log.open(openMeta());
    const data = streamBytes(5, 0, 200_000);
    for (let o = 0; o < data.length; o += 1448) log.append(id, o, data.subarray(o, Math.min(o + 1448, data.length)));
    await waitFor(() => stable >= data.length, 10_000, 'all stable');
    const m = await r.metrics();
    expect(m.get('ftcp_logserver_appends_total')).toBeGreaterThan(0);
    expect(m.get('ftcp_logserver_append_bytes_total')).toBeGreaterThanOrEqual(data.length);
    expect(m.get('ftcp_logserver_peers')).toBe(1);
    expect(m.get('ftcp_logserver_connections')).toBe(1);
    expect(m.get('ftcp_logserver_bytes')).toBe(data.length);
    expect(m.get('ftcp_limit{name="max_bytes"}')).toBe(64 << 20);
    expect(m.get('ftcp_limit{name="max_peers"}')).toBe(64);
    expect(m.get('ftcp_limit{name="max_pending_claims"}')).toBeGreaterThan(0);
    const boot = r.udp.links()[0]!.boot;
    expect(m.get(`ftcp_logserver_link_active{gateway="${boot}"}`)).toBe(1);
    // Every datagram arrived twice: the second copy of each was refused by the link, and counted.
    const absorbed = (m.get(`ftcp_logserver_link_replayed_total{gateway="${boot}"}`) ?? 0) + (m.get(`ftcp_logserver_link_duplicates_total{gateway="${boot}"}`) ?? 0);
    const dgIn = m.get(`ftcp_logserver_link_datagrams_in_total{gateway="${boot}"}`)!;
    expect(absorbed).toBeGreaterThan(0);
    expect(absorbed).toBeGreaterThanOrEqual(Math.floor(dgIn / 2) - 2); // each pair: one taken, one refused
    expect(m.get('ftcp_logserver_impaired_total{what="duplicated"}')).toBeGreaterThan(0);
    expect(m.get('ftcp_logserver_metrics_answered_total')).toBe(1);
  });

  it('counts the gateways refused over --max-peers, and has no impairment lines unless impairable', async () => {
    const r = await rig({ maxPeers: 1 });
    await r.client().open(openMeta());
    const second = r.client();
    void second.open(openMeta()).catch(() => {});
    await waitFor(() => r.udp.peersRefused > 0, 5_000, 'second gateway refused');
    const m = await r.metrics();
    expect(m.get('ftcp_logserver_peers_refused_total')).toBeGreaterThan(0);
    expect(m.get('ftcp_logserver_peers')).toBe(1);
    expect(m.get('ftcp_limit{name="max_peers"}')).toBe(1);
    expect([...m.keys()].some((k) => k.startsWith('ftcp_logserver_impaired'))).toBe(false);
  });

  it('answers only GET /metrics: 404, 405 and 400 counted', async () => {
    const r = await rig();
    expect((await fetch(`${r.url}/status`)).status).toBe(404);
    expect((await fetch(`${r.url}/metrics`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${r.url}/metrics`, { method: 'PUT', body: 'x' })).status).toBe(405);
    const port = Number(new URL(r.url).port);
    expect(await rawRequest(port, 'GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi')).toMatch(/^HTTP\/1\.1 400 /);
    const m = await r.metrics();
    expect(m.get('ftcp_logserver_metrics_not_found_total')).toBe(1);
    expect(m.get('ftcp_logserver_metrics_method_not_allowed_total')).toBe(2);
    expect(m.get('ftcp_logserver_metrics_bad_requests_total')).toBe(1);
  });
});
