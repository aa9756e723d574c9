/**
 * The invariant checked from outside (DESIGN.md §2): no ack that reaches the client may
 * exceed what the log held stably at that moment.
 *
 * Input: a capture taken at the client's interface (pcap, any link type readPcap knows)
 * and the gateway's stability trace (`ftcp gateway --stability-trace`): one line per
 * stable-point advance, `<realtime ns> <client ip:port> <server port> <client ISN> <stable>`.
 * Both are stamped with CLOCK_REALTIME; the gateway records an advance before it sends
 * anything that relies on it, and the capture stamps a packet after the gateway wrote it,
 * so an ack stamped at t must satisfy ack ≤ stable(t).
 */
import { Verdict } from '../wire/packet.js';
import { forEachPacket } from './capture.js';
import { TCP_ACK, TCP_SYN } from '../wire/tcp.js';
import { seqDiff } from '../wire/seq.js';
import { u32ToIp } from '../wire/addr.js';

export interface TraceEntry {
  tNs: bigint;
  stable: number;
}

/** Parses a stability trace into per-connection series keyed "<client ip:port> <server port> <client ISN>". */
export function parseStabilityTrace(text: string): Map<string, TraceEntry[]> {
  const out = new Map<string, TraceEntry[]>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [t, client, sport, isn, stable] = line.split(' ');
    if (!t || !client || !sport || !isn || stable === undefined) continue;
    const key = `${client} ${sport} ${isn}`;
    let arr = out.get(key);
    if (!arr) out.set(key, (arr = []));
    arr.push({ tNs: BigInt(t), stable: Number(stable) });
  }
  for (const arr of out.values()) arr.sort((a, b) => (a.tNs < b.tNs ? -1 : a.tNs > b.tNs ? 1 : 0));
  return out;
}

export interface AckViolation {
  connection: string;
  tNs: bigint;
  ack: number;
  stableAtThatTime: number;
}

export interface AckInvariantReport {
  /** Server→client acks checked. */
  checked: number;
  connections: number;
  violations: AckViolation[];
  /** Acks whose connection had no SYN in the capture (not checkable). */
  unchecked: number;
}

/** Checks every server→client ack to one of `serverPorts` in the capture against the trace. */
export function checkAckInvariant(pcap: Buffer, trace: Map<string, TraceEntry[]>, serverPorts: readonly number[]): AckInvariantReport {
  const ports = new Set(serverPorts);
  const isn = new Map<string, number>();
  const cursor = new Map<string, { i: number; stable: number }>();
  const seen = new Set<string>();
  const report: AckInvariantReport = { checked: 0, connections: 0, violations: [], unchecked: 0 };
  forEachPacket(pcap, (v, info, tsNs) => {
    if (v !== Verdict.IPV4_TCP) return;
    if (ports.has(info.dstPort) && info.flags & TCP_SYN && !(info.flags & TCP_ACK)) {
      const conn = `${u32ToIp(info.src)}:${info.srcPort} ${info.dstPort}`;
      isn.set(conn, info.seq);
      cursor.set(`${conn} ${info.seq}`, { i: 0, stable: 0 });
      return;
    }
    if (!ports.has(info.srcPort) || !(info.flags & TCP_ACK)) return;
    const conn = `${u32ToIp(info.dst)}:${info.dstPort} ${info.srcPort}`;
    const cIsn = isn.get(conn);
    if (cIsn === undefined) {
      report.unchecked++;
      return;
    }
    const key = `${conn} ${cIsn}`;
    seen.add(key);
    // Streams in tests stay below 2^31 bytes, so the plain signed distance is exact.
    const ack = seqDiff(info.ack, (cIsn + 1) >>> 0);
    const series = trace.get(key) ?? [];
    const cur = cursor.get(key)!;
    while (cur.i < series.length && series[cur.i]!.tNs <= tsNs) {
      if (series[cur.i]!.stable > cur.stable) cur.stable = series[cur.i]!.stable;
      cur.i++;
    }
    report.checked++;
    if (ack > cur.stable) {
      report.violations.push({ connection: key, tNs: tsNs, ack, stableAtThatTime: cur.stable });
    }
  });
  report.connections = seen.size;
  return report;
}
