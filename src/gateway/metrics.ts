/**
 * The gateway's Prometheus text exposition (`/metrics`): every counter of the gateway and its
 * parts, the drops by reason (`ftcp_drops_total{reason}`), the configured bounds, the log's
 * usage and link, the control endpoint. It reads the gateway; it changes nothing.
 */
import type { GatewayView } from './view.js';
import { authDrops, dropReasons, gatewayLimits } from './snapshot.js';
import type { LogStore } from '../log/types.js';
import { PromText, snake } from '../util/prom.js';

export function metricsText(gw: GatewayView, log: LogStore): string {
  const p = new PromText();
  const put = p.put.bind(p);
  for (const [k, v] of Object.entries(gw.stats)) put(`gateway_${snake(k)}_total`, `gateway ${k}`, 'counter', v as number);
  for (const [k, v] of Object.entries(gw.south.stats)) put(`south_${snake(k)}_total`, `south wrapper ${k}`, 'counter', v as number);
  for (const [k, v] of Object.entries(gw.north.stats)) put(`north_${snake(k)}_total`, `north wrapper ${k}`, 'counter', v as number);
  if (gw.vnet !== null) for (const [k, v] of Object.entries(gw.vnet.stats)) put(`offload_${snake(k)}_total`, `offload ${k}`, 'counter', v as number);
  const notices = (gw.masking.describe().notices ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(notices)) if (typeof v === 'number') put(`oracle_${snake(k)}_total`, `supervisor notices: ${k}`, 'counter', v);
  for (const [k, v] of Object.entries(gw.adoption)) if (typeof v === 'number') put(`adoption_${snake(k)}_total`, `connections adopted from the log at start-up: ${k}`, 'counter', v);
  for (const [k, v] of Object.entries(gw.adoptGate.stats)) put(`adoption_incarnation_${snake(k)}_total`, `adopted connections checked against the server incarnation running now: ${k}`, 'counter', v);
  p.raw('# HELP ftcp_role the gateway\'s role (1: this one): active forwards protected traffic, standby and fenced drop it', '# TYPE ftcp_role gauge');
  for (const r of ['active', 'standby', 'fenced'] as const) p.raw(`ftcp_role{role="${r}"} ${gw.role === r ? 1 : 0}`);
  const sb = gw.standby;
  if (sb !== null) {
    const f = sb.follow;
    put('standby_followed', 'open connections of the protected services in the log\'s last list (standby)', 'gauge', f.followed);
    put('standby_refreshes_total', 'lists of the log\'s open connections fetched while standing by', 'counter', f.refreshes);
    put('standby_refresh_failures_total', 'lists that failed while standing by', 'counter', f.failures);
    put('standby_last_refresh_seconds', 'wall-clock time of the last list (0: none yet)', 'gauge', (f.lastRefreshAt ?? 0) / 1000);
    put('takeovers_total', 'takeovers completed', 'counter', sb.takeovers);
    put('takeover_failures_total', 'takeovers that failed (claim or list): still standby', 'counter', sb.takeoverFailures);
    put('releases_total', 'releases back to standby', 'counter', sb.releases);
    if (sb.lastTakeover !== null) put('takeover_last_ms', 'the last takeover\'s time, claim to active (ms)', 'gauge', sb.lastTakeover.totalMs);
  }
  put('recovering', 'connections being masked or rebuilt', 'gauge', gw.north.recovering);
  put('connections', 'protected connections in the flow table', 'gauge', gw.table.size);
  put('max_flows', 'the flow table bound (--max-flows): new connections beyond it pass unprotected', 'gauge', gw.south.limits().maxFlows);
  put('half_open', 'half-open connections in the flow table (handshake not complete, nothing logged)', 'gauge', gw.table.halfOpenCount);
  p.raw('# HELP ftcp_drops_total packets dropped, by reason', '# TYPE ftcp_drops_total counter');
  for (const [reason, v] of Object.entries(dropReasons(gw))) p.raw(`ftcp_drops_total{reason="${reason}"} ${v}`);
  put('log_ok', '1 when the log status is OK', 'gauge', log.status() === 'OK' ? 1 : 0);
  put('fenced', '1 when another gateway claimed the log server (a newer epoch): protected traffic is dropped here (FENCED)', 'gauge', gw.fenced !== null ? 1 : 0);
  p.raw('# HELP ftcp_limit configured bounds of the gateway, by name', '# TYPE ftcp_limit gauge');
  for (const [name, v] of Object.entries(gatewayLimits(gw, log))) p.raw(`ftcp_limit{name="${name}"} ${v}`);
  const dv = gw.north.divergenceStatus() as { byService: Record<string, number>; digestBytes: number; keptBytes: number; digestsAbandoned: number };
  p.raw('# HELP ftcp_divergence_total rebuilt connections whose output differed from what the client may have had, by service', '# TYPE ftcp_divergence_total counter');
  for (const [service, v] of Object.entries(dv.byService)) p.raw(`ftcp_divergence_total{service="${service}"} ${v}`);
  put('digest_bytes', 'memory of the output digests\' block hashes', 'gauge', dv.digestBytes);
  put('digest_kept_bytes', 'output bytes kept until the client acknowledges them (and reordered ones)', 'gauge', dv.keptBytes);
  put('digests_abandoned_total', 'digests given up (a cap, the budget, an incomplete record): connections no longer verified', 'counter', dv.digestsAbandoned);
  const u = log.usage?.();
  if (u !== undefined) {
    put('log_bytes', 'stream bytes the log holds, counted against its budget', 'gauge', u.bytes);
    put('log_memory_bytes', 'memory the log holds for them (memory log: its slabs)', 'gauge', u.memory);
    if (Number.isFinite(u.maxBytes)) put('log_memory_budget_bytes', 'the log budget (--log-budget)', 'gauge', u.maxBytes);
    if (Number.isFinite(u.maxBytesPerConn)) put('log_memory_conn_bound_bytes', 'the per-connection bound (--log-conn-bound)', 'gauge', u.maxBytesPerConn);
  }
  p.raw('# HELP ftcp_unprotected_total connections that continue unprotected, by reason', '# TYPE ftcp_unprotected_total counter');
  p.raw(`ftcp_unprotected_total{reason="conn_bound"} ${gw.boundStats.connection}`);
  p.raw(`ftcp_unprotected_total{reason="budget"} ${gw.boundStats.total}`);
  p.raw(`ftcp_unprotected_total{reason="log_failure"} ${gw.unprotected.size}`);
  p.raw('# HELP ftcp_auth_drops_total control-channel datagrams dropped (authentication, freshness), by channel and reason', '# TYPE ftcp_auth_drops_total counter');
  for (const [channel, reasons] of Object.entries(authDrops(gw, log))) {
    for (const [reason, v] of Object.entries(reasons)) p.raw(`ftcp_auth_drops_total{channel="${snake(channel)}",reason="${snake(reason)}"} ${v}`);
  }
  const c = gw.control;
  if (c !== null) {
    for (const [k, v] of Object.entries(c.stats)) put(`control_${snake(k)}_total`, `control endpoint ${k}`, 'counter', v as number);
    put('control_connections', 'open connections to the control endpoint', 'gauge', c.connections());
  }
  const ll = log.linkStats?.();
  if (ll !== undefined) {
    // The log link (remote log): retransmissions, REJECTs, resyncs, re-registrations...
    put('log_link_peer_active', '1 when the log server is active on the link', 'gauge', ll.peer === 'active' ? 1 : 0);
    for (const [k, v] of Object.entries(ll.link)) put(`log_link_${snake(k)}_total`, `log link ${k}`, 'counter', v);
    const gauges = new Set(['pendingBytes', 'connections', 'requests', 'epoch']);
    for (const [k, v] of Object.entries(ll.client)) {
      put(`log_client_${snake(k)}${gauges.has(k) ? '' : '_total'}`, `log client ${k}`, gauges.has(k) ? 'gauge' : 'counter', v);
    }
  }
  return p.text();
}
