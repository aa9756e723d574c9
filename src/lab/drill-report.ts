/**
 * What `ftcp drill` reports: the report's shape (DrillReport, also its --json), each crash matched
 * with the gateway's recovery timelines (crashTimeline), and the text (formatDrill). runDrill
 * (drill.ts) fills it in.
 */
import type { AckInvariantReport } from '../inspect/ack-invariant.js';
import type { CaptureSummary } from '../inspect/summary.js';
import type { DemoClientReport } from '../demo/client.js';
import type { RandomOutcome } from '../demo/random.js';
import { formatDrops } from '../wrappers/contract.js';
import { formatLogLink, type LogLinkReport } from './logfault.js';
import { formatOutcomes, type DivergenceFigures } from './nondet.js';
import { formatGatewayKill, type GatewayKillReport } from './gwkill.js';
import { formatGatewayFailover, type GatewayFailoverReport } from './gwfailover.js';
import type { Kind, Scenario } from './scenarios.js';

/** A crash's recovery as milliseconds (-1 = never), from the gateway's timeline. */
export interface RecoveryTimes {
  /** From the kill: the gateway knew. */
  detectedMs: number;
  /** From the kill: the restarted program listened again (supervisor). */
  listeningMs: number;
  /** From listening again: every handshake done, every replay done, every connection caught up. */
  handshakesMs: number;
  replayMs: number;
  caughtUpMs: number;
}

/** One crash as the drill saw it and the gateway reported it (ms; -1 = never). */
export interface CrashReport extends RecoveryTimes {
  n: number;
  killedAt: number;
  /** The fraction of the transfer the crash was placed at, and where the leading client really was. */
  target: number;
  atFraction: number;
  /** zero-window: bytes unread in the client's sockets at the kill (their receive queues). */
  clientRecvQ?: number;
  servers: string[];
  connections: number;
  failed: number;
  note?: string;
}

export interface DrillReport {
  scenario: Scenario;
  what: string;
  lab: string;
  log: string;
  seed: number;
  clientSysctls: Record<string, string>;
  offload: boolean;
  ok: boolean;
  failures: string[];
  clients: Array<{
    kind: Kind; connections: number; ok: number; failed: number; bytesSent: number; bytesReceived: number; throughputMbps: number; maxStallMs: number; errors: DemoClientReport['errors'];
    /** random kinds: connections per outcome. */
    outcomes?: Record<RandomOutcome, number>;
  }>;
  /** The gateway's divergence figures (status `divergence`; 0 when it has none). */
  divergence: DivergenceFigures;
  crashes: CrashReport[];
  /** minRateRatio scenarios: the stream's throughput before the first crash and after the last (bytes/s). */
  rate?: { before: number; after: number; ratio: number } | null;
  longestStallMs: number;
  invariant: Omit<AckInvariantReport, 'violations'> & { violations: Array<Omit<AckInvariantReport['violations'][number], 'tNs'> & { tNs: string }> };
  client: CaptureSummary;
  /** `ftcp inspect`'s verdicts on the client-side capture: verdict → connections. */
  verdicts: Record<string, number>;
  gateway: { packets: number; protectedPackets: number; bytesLogged: number; acksLowered: number; acksHeld: number; heldReleased: number; sacksAboveStableRemoved: number; dropped: number };
  north: Record<string, number>;
  /** Packets the gateway dropped, by reason (its status `drops`: wire verdicts and the wrappers' reasons). */
  drops: Record<string, number>;
  /** With log 'remote': the log link's counters (null otherwise). */
  logLink: LogLinkReport | null;
  /** With a gateway fault: its timing, the figure and the adoption (null otherwise). */
  gatewayKill?: GatewayKillReport | null;
  /** With a gateway-failover fault: its timing, the figure, the adoption by gw2, the old primary fenced (null otherwise). */
  gatewayFailover?: GatewayFailoverReport | null;
  durationMs: number;
}

/** The invariant as the report carries it: the first 10 violations, tNs as a decimal string
 *  (a bigint made `ftcp drill --json` throw whenever an ack broke the invariant). */
export function jsonableInvariant(inv: AckInvariantReport): DrillReport['invariant'] {
  return { ...inv, violations: inv.violations.slice(0, 10).map((v) => ({ ...v, tNs: v.tNs.toString() })) };
}

export interface Timeline {
  service: string; crash: number; detectedAt: number; connections: number; listeningAt: number;
  handshakesDoneAt: number; replayDoneAt: number; caughtUpAt: number; failed: number; caughtUp?: number;
}

export interface Kill {
  n: number;
  at: number;
  listenedAt: number;
  target: number;
  atFraction: number;
  clientRecvQ?: number;
}

/**
 * Matches each kill with the gateway's timelines (one per service per crash) that started after it:
 * the drill's view of each crash. `divergedEnds`: a connection reset for a divergence the gateway
 * counted (nondet) ends there: a crash whose connections each caught up or failed is complete.
 */
export function crashTimeline(kills: Kill[], timelines: Timeline[], services: string[], divergedEnds = false): CrashReport[] {
  const out: CrashReport[] = [];
  const round4 = (x: number) => Math.round(x * 10_000) / 10_000;
  for (let i = 0; i < kills.length; i++) {
    const k = kills[i]!;
    if (k.at < 0) {
      out.push({ n: k.n, killedAt: -1, target: k.target, atFraction: k.atFraction, servers: services, connections: 0, detectedMs: -1, listeningMs: -1, handshakesMs: -1, replayMs: -1, caughtUpMs: -1, failed: 0, note: 'the clients had finished before this crash: use more --bytes / --lines' });
      continue;
    }
    const next = kills[i + 1]?.at ?? Infinity;
    const mine = timelines.filter((t) => t.detectedAt >= k.at - 5 && t.detectedAt < (next < 0 ? Infinity : next));
    const rel = (v: number, from: number) => (v > 0 && from > 0 ? v - from : -1);
    const max = (f: (t: Timeline) => number) => (mine.length > 0 && mine.every((t) => f(t) > 0) ? Math.max(...mine.map(f)) : -1);
    const detected = max((t) => t.detectedAt);
    const listening = max((t) => t.listeningAt);
    const superseded = i + 1 < kills.length && kills[i + 1]!.at > 0;
    const r: CrashReport = {
      n: k.n, killedAt: k.at, target: k.target, atFraction: round4(k.atFraction), ...(k.clientRecvQ !== undefined ? { clientRecvQ: k.clientRecvQ } : {}),
      servers: mine.map((t) => t.service), connections: mine.reduce((a, t) => a + t.connections, 0),
      detectedMs: rel(detected, k.at), listeningMs: rel(listening, k.at),
      handshakesMs: rel(max((t) => t.handshakesDoneAt), listening), replayMs: rel(max((t) => t.replayDoneAt), listening),
      caughtUpMs: rel(max((t) => t.caughtUpAt), listening), failed: mine.reduce((a, t) => a + t.failed, 0),
    };
    if (mine.length === 0) r.note = 'the gateway saw no crash of a service with open connections';
    else if (r.connections === 0) r.note = 'no connection was open at the crash: use more --bytes / --lines';
    else if (r.caughtUpMs < 0 && !superseded && !(divergedEnds && mine.reduce((a, t) => a + (t.caughtUp ?? 0), 0) + r.failed >= r.connections)) {
      r.note = 'not every connection caught up';
    }
    out.push(r);
  }
  return out;
}

export function formatDrill(r: DrillReport): string {
  const mb = (n: number) => (n / 1e6).toFixed(1);
  const ms = (n: number) => (n < 0 ? '-' : `${n.toFixed(0)} ms`);
  const lines = [
    `ftcp drill: scenario ${r.scenario} (${r.what}), log ${r.log}${r.offload ? '' : ', no TUN offloads'}, seed ${r.seed}, lab ${r.lab} (${(r.durationMs / 1000).toFixed(1)} s)`
      + (Object.keys(r.clientSysctls).length > 0 ? `\n  client sysctls: ${Object.entries(r.clientSysctls).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''),
    '',
    '  kind        conns  ok  failed   sent MB   recv MB   Mb/s    longest stall',
  ];
  for (const c of r.clients) {
    lines.push(`  ${c.kind.padEnd(10)} ${String(c.connections).padStart(5)} ${String(c.ok).padStart(3)} ${String(c.failed).padStart(7)} ${mb(c.bytesSent).padStart(9)} ${mb(c.bytesReceived).padStart(9)} ${c.throughputMbps.toFixed(0).padStart(6)}    ${c.maxStallMs.toFixed(1)} ms`);
  }
  const withOutcomes = r.clients.filter((c) => c.outcomes);
  if (withOutcomes.length > 0) {
    lines.push('', '  outcomes per connection (ok: every reply verified; reset: a clean RST; the rest: damage)');
    for (const c of withOutcomes) lines.push(`  ${c.kind.padEnd(10)} ${formatOutcomes(c.outcomes!)}`);
  }
  if (r.crashes.length > 0) {
    lines.push(
      '',
      '  recovery timeline   (detected, listening: from the kill -9; handshakes, replay, caught up: from listening again)',
      '  crash     at  conns  detected  listening  handshakes     replay  caught up  failed',
    );
    for (const c of r.crashes) {
      lines.push(`  ${String(c.n).padStart(5)} ${`${(c.atFraction * 100).toFixed(0)}%`.padStart(6)} ${String(c.connections).padStart(6)} ${ms(c.detectedMs).padStart(9)} ${ms(c.listeningMs).padStart(10)} ${ms(c.handshakesMs).padStart(11)} ${ms(c.replayMs).padStart(10)} ${ms(c.caughtUpMs).padStart(10)} ${String(c.failed).padStart(7)}${c.note ? `   (${c.note})` : ''}`);
    }
    const n = r.north;
    const zw = r.crashes.filter((c) => c.clientRecvQ !== undefined);
    if (zw.length > 0) lines.push(`  zero window: ${zw.map((c) => `crash ${c.n}: ${c.clientRecvQ} bytes unread at the client`).join('; ')}`);
    if (r.rate) lines.push(`  throughput: ${(r.rate.before / 1e3).toFixed(1)} KB/s before the crash, ${(r.rate.after / 1e3).toFixed(1)} KB/s after listening again (x${r.rate.ratio.toFixed(2)})`);
    lines.push(`  rebuild: ${n.handshakes ?? 0} handshakes, ${mb(n.replayBytes ?? 0)} MB replayed (${n.replayRetransmits ?? 0} retransmissions), ${mb(n.absorbedBytes ?? 0)} MB regenerated output absorbed, ${n.deadDropped ?? 0} dead-incarnation segments dropped, ${n.keepaliveAcks ?? 0} keepalive ACKs, ${n.portsMoved ?? 0} port moves`);
  } else {
    lines.push('', '  no crash (--crashes 0): the normal path only');
  }
  lines.push(
    '',
    `  at the client: ${r.client.connections} connections, ${r.client.rstToClient} RST, ${r.client.icmpToClient} ICMP`,
    `  divergence (gateway): ${r.divergence.total} detected, ${r.divergence.resets} connection(s) reset`,
    `  stable-ack invariant: ${r.invariant.checked} acks checked, ${r.invariant.violations.length} beyond the stable point`,
    `  inspect verdicts (client side): ${Object.entries(r.verdicts).map(([v, n]) => `${n} ${v}`).join(', ') || 'none'}`,
    `  gateway: ${r.gateway.packets} packets (${r.gateway.protectedPackets} protected), ${mb(r.gateway.bytesLogged)} MB logged, acks lowered ${r.gateway.acksLowered}, held ${r.gateway.acksHeld}, released ${r.gateway.heldReleased}, SACK blocks above stable removed ${r.gateway.sacksAboveStableRemoved}, dropped ${r.gateway.dropped}`,
    `  drops by reason: ${formatDrops(r.drops)}`,
    `  longest stall any client saw: ${r.longestStallMs.toFixed(1)} ms`,
    ...(r.logLink === null ? [] : formatLogLink(r.logLink)),
    ...(r.gatewayKill ? formatGatewayKill(r.gatewayKill) : []),
    ...(r.gatewayFailover ? formatGatewayFailover(r.gatewayFailover) : []),
    '',
    r.ok
      ? withOutcomes.length > 0
        ? 'PASS: every connection consistent or reset, every reset a divergence the gateway counted, no other RST/FIN/ICMP reached a client, invariant held'
        : 'PASS: every connection byte-exact across every crash, no RST/FIN/ICMP reached a client, no divergence, invariant held'
      : `FAIL:\n${r.failures.map((f) => `  - ${f}`).join('\n')}`,
  );
  return lines.join('\n');
}
