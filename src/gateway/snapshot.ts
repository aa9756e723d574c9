/**
 * What `ftcp status` and GET /status show of the gateway: one JSON-able snapshot, with the flow
 * list paged, and the parts /metrics shows as well (the configured bounds, the drops by reason,
 * the control channels' authentication drops). It reads the gateway; it changes nothing.
 */
import type { LogStore } from '../log/types.js';
import { serviceName } from '../flow/table.js';
import { FIRST_DROP, VERDICT_COUNT, verdictName } from '../wire/packet.js';
import { listLimits } from './adopt.js';
import { FLOW_PAGE } from './flow-page.js';
import type { ControlView, GatewayView } from './view.js';

/**
 * A JSON-able snapshot for `ftcp status` and the control endpoint. The flow list is one
 * page: `limit` connections (at most FLOW_PAGE.max) from position `offset` in the table's
 * order; `flowsPage` says the total and the next page's offset (null: the last page).
 */
export function statusSnapshot(gw: GatewayView, log: LogStore, page: { offset?: number; limit?: number } = {}): Record<string, unknown> {
  const offset = Math.max(0, Math.floor(page.offset ?? 0));
  const limit = Math.min(FLOW_PAGE.max, Math.max(1, Math.floor(page.limit ?? FLOW_PAGE.dflt)));
  const total = gw.table.size;
  const flows: Array<Record<string, unknown>> = [];
  let pos = 0;
  for (const [, f] of gw.table.flows()) {
    if (pos++ < offset) continue;
    if (flows.length >= limit) break;
    flows.push({
      flow: f.describe(), state: f.state, logId: f.logId, received: f.received, high: f.high,
      stable: f.stable, complete: f.complete, delivered: f.delivered, sndMax: f.sndMax, cliAcked: f.cliAcked,
      held: f.held !== null, unprotected: f.unprotected, ...gw.north.flowStatus(f), crashes: f.crashes,
      ...gw.north.rebuildStatus(f),
    });
  }
  return {
    uptimeMs: Date.now() - gw.startedAt,
    role: gw.role,
    ...(gw.standby !== null ? { standby: gw.standby.describe() } : {}),
    ...(gw.startState !== null ? { start: gw.startState } : {}),
    memory: process.memoryUsage(),
    tun: gw.tunName,
    services: gw.table.allServices().map(serviceName),
    log: log.status(),
    ...(log.linkStats ? { logLink: log.linkStats() } : {}),
    epoch: gw.epoch,
    fenced: gw.fenced,
    logFailure: { policy: gw.onLogFailure, failures: gw.logFailures, unprotected: gw.unprotected.size },
    logMemory: logMemory(gw, log),
    connections: gw.table.size,
    halfOpen: gw.table.halfOpenCount,
    adoption: adoptionStatus(gw),
    flowLimits: gw.south.limits(),
    stats: { ...gw.stats },
    ...(gw.vnet !== null ? { offload: gw.vnet.describe() } : {}),
    south: { ...gw.south.stats },
    north: { ...gw.north.stats },
    limits: gatewayLimits(gw, log),
    checksums: gw.checksums,
    masking: gw.masking.describe(),
    divergence: gw.north.divergenceStatus(),
    recovery: gw.north.timelines.slice(-50),
    recovering: gw.north.recovering,
    drops: dropReasons(gw),
    authDrops: authDrops(gw, log),
    ...(gw.control !== null ? { control: controlState(gw.control) } : {}),
    flowsPage: { offset, limit, total, next: offset + flows.length < total ? offset + flows.length : null },
    flows,
  };
}

/**
 * Control-channel datagrams dropped for failing authentication or freshness, by channel:
 * supervisor notices (the liveness oracle: forged = wrong key, malformed = garbage, replayed,
 * badGeneration, and socketDrops = datagrams the kernel dropped before the oracle read them)
 * and the log link (forged, malformed, replayed, outOfWindow). A channel not configured is left out.
 */
export function authDrops(gw: Pick<GatewayView, 'masking'>, log: LogStore): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  const n = gw.masking.describe().notices as Record<string, unknown> | undefined;
  if (n !== undefined) {
    const num = (k: string) => (typeof n[k] === 'number' ? (n[k] as number) : 0);
    out.supervisor = {
      forged: num('forged'), malformed: num('malformed'), replayed: num('replayed'),
      badGeneration: num('badGeneration'), socketDrops: num('socketDrops'),
    };
  }
  const link = log.linkStats?.().link;
  if (link !== undefined) {
    out.logLink = { forged: link.forged ?? 0, malformed: link.malformed ?? 0, replayed: link.replayed ?? 0, outOfWindow: link.outOfWindow ?? 0 };
  }
  return out;
}

function controlState(c: ControlView): Record<string, unknown> {
  const a = c.address();
  return { listen: `${a.address}:${a.port}`, token: c.tokenRequired, connections: c.connections(), ...c.stats };
}

/** /status `adoption`: what was adopted from the log at start-up, and what its first segments taught. */
function adoptionStatus(gw: GatewayView): Record<string, unknown> {
  const a = gw.adoption;
  const st = gw.south.stats;
  return {
    source: a.source, adopted: a.adopted, translated: a.translated, rebuilding: a.rebuilding, closing: a.closing,
    learnt: { client: st.adoptLearntClient, server: st.adoptLearntServer }, uncheckedDrops: st.adoptUnchecked,
    unverified: a.unverified, skipped: a.skipped, overCap: a.overCap, incarnation: gw.adoptGate.describe(),
  };
}

/** The log's memory against its bounds, and the policy (null: the log has no bounds to show). */
function logMemory(gw: GatewayView, log: LogStore): Record<string, unknown> | null {
  const u = log.usage?.();
  if (u === undefined) return null;
  const n = (x: number) => (Number.isFinite(x) ? x : null);
  return {
    bytes: u.bytes, memory: u.memory, budget: n(u.maxBytes), perConnection: n(u.maxBytesPerConn), connections: u.connections,
    policy: 'unprotect', unprotected: { connection: gw.boundStats.connection, total: gw.boundStats.total }, deferred: gw.boundStats.deferred,
  };
}

/** Every configured bound of the gateway, by name (shown in `ftcp status` and /metrics). */
export function gatewayLimits(gw: GatewayView, log: LogStore): Record<string, number> {
  const u = log.usage?.();
  return {
    ...gw.south.limits(),
    ...gw.north.limits(),
    adoptIncarnationWaitMs: gw.adoptGate.waitMs,
    ...listLimits(log),
    ...(u !== undefined && Number.isFinite(u.maxBytes) ? { logBudgetBytes: u.maxBytes } : {}),
    ...(u !== undefined && Number.isFinite(u.maxBytesPerConn) ? { logConnBoundBytes: u.maxBytesPerConn } : {}),
    ...(gw.control !== null ? controlLimits(gw.control.limits) : {}),
    ...(gw.standby !== null ? gw.standby.limits() : {}),
  };
}

/**
 * Packets dropped, by reason, every reason zero or not: malformed packets and bad checksums
 * (the wire verdicts), then the wrappers' reasons (the two vocabularies share no name).
 */
export function dropReasons(gw: Pick<GatewayView, 'drops' | 'wrapperDrops'>): Record<string, number> {
  const r: Record<string, number> = {};
  for (let v = FIRST_DROP; v < VERDICT_COUNT; v++) r[verdictName(v)] = gw.drops.get(v);
  return Object.assign(r, gw.wrapperDrops.snapshot());
}

/** The control endpoint's bounds under limit names: headersTimeoutMs -> controlHeadersTimeoutMs. */
function controlLimits(l: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(l)) out[`control${k[0]!.toUpperCase()}${k.slice(1)}`] = v;
  return out;
}
