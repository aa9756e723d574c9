/**
 * `ftcp inspect`: per TCP connection of a capture, what crossed the wire and whether it
 * looks like a clean conversation (DESIGN.md §3-§4: the client must never see a RST, a
 * FIN it did not expect, an ICMP error or a hole in the stream; a crash is a pause).
 *
 * Per connection (4-tuple + client ISN; the client is the side that sent the SYN, or for
 * a connection already open when the capture began, the side not on a --ports port, else
 * the side with the higher port), and per direction (c2s = client→server, s2c back):
 *
 *   offsets        sequence numbers unwrapped to offsets from ISN+1 (or, without a
 *                  SYN, from the first sequence number seen); only seq.ts compares them
 *   bytes          unique sequence space covered by payload (segment lengths from the
 *                  IPv4 total length, so truncated captures count right)
 *   retransmissions segments re-covering already-seen space (count, bytes); a repeated
 *                  SYN or FIN counts, with 0 bytes
 *   gaps           offsets never seen below the highest seen (data or FIN)
 *   pause          longest time between two consecutive segments that advanced the
 *                  direction's data (new bytes or the first FIN)
 *   ack stall      longest time this direction had data outstanding while the peer's
 *                  ack did not move
 *
 *       lowest                         highest
 *         |==== covered ====|  gap  |== covered ==|FIN
 *         0 (ISN+1)                                  acked by peer ----^
 *
 * With a stability trace (`ftcp gateway --stability-trace`, parsed by parseStabilityTrace)
 * each server→client ack (a RST's too) is checked against the stable point at its time,
 * the rule of ack-invariant.ts (`ack ≤ stable(t)`), per connection and over the whole
 * capture (InspectReport.ackInvariant; checkAckInvariant). The ack is unwrapped to an
 * offset like every sequence number here, so the check holds past 2^31 and 2^32 bytes.
 */
import { u32ToIp } from '../wire/addr.js';
import { seqAdd, seqDiff, type Seq } from '../wire/seq.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../wire/tcp.js';
import {
  ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_PARAM_PROBLEM, ICMP_REDIRECT, ICMP_SOURCE_QUENCH, ICMP_TIME_EXCEEDED,
} from '../wire/icmp.js';
import { IPPROTO_TCP } from '../wire/ipv4.js';
import { StableCursor, type AckInvariantReport, type TraceEntry } from './ack-invariant.js';
import { RangeSet } from './ranges.js';
import { walkCapture, type IcmpErrorEvent, type TcpSegment, type WalkStats } from './segments.js';
import type {
  AckCheck, AckStall, ConnectionReport, DirectionReport, Gap, IcmpSeen, InspectOptions, InspectReport, InspectVerdict, Pause, Span,
} from './report.js';

export type {
  AckCheck, AckStall, ConnectionReport, DirectionReport, Gap, IcmpSeen, InspectOptions, InspectReport, InspectVerdict, Pause, Span,
} from './report.js';

// ---------------------------------------------------------------------------------------

class Direction {
  packets = 0;
  isn: Seq | null = null;
  synSeen = false;
  /** The SYN was not seen; its ISN was read off the peer's SYN-ACK. */
  synInferred = false;
  /** Sequence number of offset 0; set by the SYN, the first segment, or the peer's first ack. */
  base: Seq | null = null;
  /** Unwrapping reference: `ref` is the sequence number of offset `refOff`. */
  private ref: Seq = 0 as Seq;
  private refOff = 0;
  readonly covered = new RangeSet();
  payloadBytes = 0;
  retransmissions = 0;
  retransmittedBytes = 0;
  finOffset: number | null = null;
  finNs: number | null = null;
  rsts = 0;
  rstNs: number | null = null;
  zeroWindows = 0;
  truncatedSegments = 0;
  lastAdvanceNs: number | null = null;
  longestPause: Pause | null = null;
  /** One past the highest offset sent (data or FIN). */
  hiSent: number | null = null;
  /** Highest offset the peer acked. */
  acked: number | null = null;
  waitingSince: number | null = null;
  ackStall: AckStall | null = null;

  setBase(seq: Seq): void {
    this.base = seq;
    this.ref = seq;
    this.refOff = 0;
  }

  /** The offset of `seq` (|distance to the reference| < 2^31). */
  off(seq: Seq): number {
    return this.refOff + seqDiff(seq, this.ref);
  }

  /** Moves the unwrapping reference forward to `off` (so streams beyond 2 GiB unwrap). */
  advanceRef(off: number): void {
    if (off > this.refOff) {
      this.ref = seqAdd(this.ref, off - this.refOff);
      this.refOff = off;
    }
  }

  outstanding(): boolean {
    return this.hiSent !== null && (this.acked === null || this.acked < this.hiSent);
  }

  report(): DirectionReport {
    const hiData = this.covered.highest;
    let highest: number | null = hiData;
    if (this.finOffset !== null && (highest === null || this.finOffset > highest)) highest = this.finOffset;
    const lowest = this.synSeen ? 0 : this.covered.lowest;
    const gaps: Gap[] = [];
    if (highest !== null && lowest !== null) {
      for (const h of this.covered.holes(lowest, highest)) {
        gaps.push({ ...h, ackedByPeer: this.acked !== null && this.acked >= h.end });
      }
    }
    return {
      packets: this.packets,
      isn: this.isn,
      bytes: this.covered.size,
      payloadBytes: this.payloadBytes,
      retransmissions: this.retransmissions,
      retransmittedBytes: this.retransmittedBytes,
      gaps,
      gapBytes: gaps.reduce((n, g) => n + g.end - g.start, 0),
      highestOffset: highest,
      ackedByPeer: this.acked,
      finNs: this.finNs,
      finOffset: this.finOffset,
      rsts: this.rsts,
      rstNs: this.rstNs,
      zeroWindows: this.zeroWindows,
      longestPause: this.longestPause,
      ackStall: this.ackStall,
      truncatedSegments: this.truncatedSegments,
    };
  }
}

class Conn {
  readonly c2s = new Direction();
  readonly s2c = new Direction();
  packets = 0;
  startNs: number;
  endNs: number;
  synAck = false;
  icmp: IcmpSeen[] = [];
  ackCheck: AckCheck | null = null;
  cursor: StableCursor | null = null;

  constructor(
    readonly clientIp: number,
    readonly clientPort: number,
    readonly serverIp: number,
    readonly serverPort: number,
    tNs: number,
  ) {
    this.startNs = tNs;
    this.endNs = tNs;
  }

  fromClient(s: { src: number; srcPort: number }): boolean {
    return s.src === this.clientIp && s.srcPort === this.clientPort;
  }
}

function tupleKey(a: number, ap: number, b: number, bp: number): string {
  // Order-independent: the lower (address, port) first.
  return a < b || (a === b && ap <= bp) ? `${a}:${ap}-${b}:${bp}` : `${b}:${bp}-${a}:${ap}`;
}

function maxSpan<T extends Span>(cur: T | null, cand: T): T {
  return cur === null || cand.durationNs > cur.durationNs ? cand : cur;
}

/** Inspects a classic pcap; throws RangeError when it is not one. */
export function inspectCapture(pcap: Buffer, opts: InspectOptions = {}): InspectReport {
  const ports = opts.serverPorts && opts.serverPorts.length ? new Set(opts.serverPorts) : null;
  const trace = opts.trace ?? null;
  const all: Conn[] = [];
  const current = new Map<string, Conn>();
  let ignored = 0;
  const ignoredTuples = new Set<string>();
  let unmatchedIcmp = 0;
  const invariant: AckInvariantReport | null = trace ? { checked: 0, connections: 0, violations: [], unchecked: 0 } : null;
  const pending: Array<TcpSegment | (IcmpErrorEvent & { icmp: true })> = [];

  // Records are not always in time order (several capture points merged): sort first.
  const stats: WalkStats = walkCapture(
    pcap,
    (s) => pending.push(s),
    (e) => pending.push({ ...e, icmp: true }),
  );
  const origin = stats.firstNs ?? 0n;
  pending.sort((a, b) => (a.tNs < b.tNs ? -1 : a.tNs > b.tNs ? 1 : 0));
  const rel = (t: bigint): number => Number(t - origin);

  const open = (s: TcpSegment, t: number): Conn | null => {
    const syn = (s.flags & TCP_SYN) !== 0;
    const ack = (s.flags & TCP_ACK) !== 0;
    let fromClient: boolean;
    if (syn && !ack) fromClient = true;
    else if (syn && ack) fromClient = false;
    else if (ports && ports.has(s.dstPort) !== ports.has(s.srcPort)) fromClient = ports.has(s.dstPort);
    else fromClient = s.srcPort > s.dstPort || (s.srcPort === s.dstPort && s.src > s.dst);
    const c = fromClient
      ? new Conn(s.src, s.srcPort, s.dst, s.dstPort, t)
      : new Conn(s.dst, s.dstPort, s.src, s.srcPort, t);
    if (ports && !ports.has(c.serverPort)) return null;
    return c;
  };

  const onTcp = (s: TcpSegment): void => {
    const t = rel(s.tNs);
    const key = tupleKey(s.src, s.srcPort, s.dst, s.dstPort);
    const syn = (s.flags & TCP_SYN) !== 0;
    const ackFlag = (s.flags & TCP_ACK) !== 0;
    let c = current.get(key);
    if (c && syn && !ackFlag) {
      // A client SYN: the same connection's retransmitted SYN, or a new connection on a reused tuple.
      const same = c.fromClient(s) && c.c2s.synSeen && c.c2s.isn === s.seq;
      if (!same) c = undefined;
    } else if (c && syn && ackFlag && !c.fromClient(s) && c.s2c.synSeen && c.s2c.isn !== s.seq) {
      c = undefined; // a SYN-ACK with another ISN: a connection whose SYN we missed
    }
    if (!c) {
      const n = open(s, t);
      if (!n) {
        if (!ignoredTuples.has(key)) {
          ignoredTuples.add(key);
          ignored++;
        }
        return;
      }
      c = n;
      current.set(key, c);
      all.push(c);
    }
    c.packets++;
    if (t > c.endNs) c.endNs = t;
    const client = c.fromClient(s);
    const d = client ? c.c2s : c.s2c;
    const p = client ? c.s2c : c.c2s;
    d.packets++;

    if (s.flags & TCP_RST) {
      d.rsts++;
      if (d.rstNs === null) d.rstNs = t;
      // A RST's ack reaches the client too: it is held to the rule, and moves nothing else.
      if (!client && ackFlag) checkAck(c, s, p.off(s.ack));
      return;
    }

    if (syn) {
      if (d.synSeen && d.isn === s.seq) d.retransmissions++;
      d.synSeen = true;
      d.isn = s.seq;
      if (d.base === null) d.setBase(seqAdd(s.seq, 1));
      if (!client) c.synAck = true;
      if (!client && ackFlag && p.base === null) {
        // SYN-ACK without the SYN: the ack tells the client's ISN.
        p.setBase(s.ack);
        p.isn = seqAdd(s.ack, -1);
        p.synSeen = true;
        p.synInferred = true;
      }
    }
    if (d.base === null) d.setBase(s.seq);

    // Data and FIN.
    const start = d.off(syn ? seqAdd(s.seq, 1) : s.seq);
    const end = start + s.len;
    let advanced = false;
    if (s.len > 0) {
      d.payloadBytes += s.len;
      if (s.captured < s.len) d.truncatedSegments++;
      const fresh = d.covered.add(start, end);
      if (fresh < s.len) {
        d.retransmissions++;
        d.retransmittedBytes += s.len - fresh;
      }
      if (fresh > 0) advanced = true;
    }
    let sentEnd = end;
    if (s.flags & TCP_FIN) {
      sentEnd = end + 1;
      if (d.finOffset === null) {
        d.finOffset = end;
        d.finNs = t;
        advanced = true;
      } else if (s.len === 0 && d.finOffset === end) {
        d.retransmissions++;
      }
    }
    if (s.len > 0 || s.flags & TCP_FIN) d.advanceRef(end);
    if (advanced) {
      if (d.lastAdvanceNs !== null) {
        d.longestPause = maxSpan(d.longestPause, { durationNs: t - d.lastAdvanceNs, fromNs: d.lastAdvanceNs, toNs: t, atOffset: start });
      }
      d.lastAdvanceNs = t;
      if (d.hiSent === null || sentEnd > d.hiSent) d.hiSent = sentEnd;
      if (d.waitingSince === null && d.outstanding()) d.waitingSince = t;
    }

    if (s.window === 0) d.zeroWindows++;

    // The ack: progress of the peer's data.
    if (ackFlag) {
      if (p.base === null) p.setBase(s.ack);
      const a = p.off(s.ack);
      if (p.acked === null || a > p.acked) {
        p.acked = a;
        if (p.waitingSince !== null) {
          p.ackStall = maxSpan(p.ackStall, { durationNs: t - p.waitingSince, fromNs: p.waitingSince, toNs: t, unackedAtEnd: false });
          p.waitingSince = p.outstanding() ? t : null;
        }
      }
      if (!client) checkAck(c, s, a);
    }
  };

  // ack ≤ stable(t), the rule of ack-invariant.ts; the series is walked forward once per connection.
  const checkAck = (c: Conn, s: TcpSegment, ackOff: number): void => {
    if (!trace || !invariant) return;
    if (!c.c2s.synSeen || c.c2s.isn === null) {
      invariant.unchecked++; // the client's ISN, and with it the trace's key, is unknown
      return;
    }
    if (c.ackCheck === null) {
      const series = trace.get(traceKeyOf(c)!);
      if (!series && !(ports && ports.has(c.serverPort))) return; // neither traced nor protected
      c.ackCheck = { traced: series !== undefined, checked: 0, violations: [] };
      c.cursor = new StableCursor(series ?? []);
      invariant.connections++;
    }
    const stable = c.cursor!.at(s.tNs);
    c.ackCheck.checked++;
    invariant.checked++;
    if (ackOff > stable) {
      c.ackCheck.violations.push({ tNs: rel(s.tNs), ack: ackOff, stableAtThatTime: stable });
      invariant.violations.push({ connection: traceKeyOf(c)!, tNs: s.tNs, ack: ackOff, stableAtThatTime: stable });
    }
  };

  const onIcmp = (e: IcmpErrorEvent): void => {
    const q = e.err;
    if (q.quotedProto !== IPPROTO_TCP) {
      unmatchedIcmp++;
      return;
    }
    const c = current.get(tupleKey(q.quotedSrc, q.quotedSrcPort, q.quotedDst, q.quotedDstPort));
    if (!c) {
      unmatchedIcmp++;
      return;
    }
    const t = rel(e.tNs);
    if (t > c.endNs) c.endNs = t;
    const soft = q.type === ICMP_REDIRECT || q.type === ICMP_SOURCE_QUENCH || (q.type === ICMP_DEST_UNREACH && q.code === ICMP_FRAG_NEEDED);
    c.icmp.push({
      tNs: t,
      type: q.type,
      code: q.code,
      from: u32ToIp(e.src),
      to: u32ToIp(e.dst),
      quotes: q.quotedSrc === c.clientIp && q.quotedSrcPort === c.clientPort ? 'c2s' : 's2c',
      quotedSeq: q.quotedSeq ?? null,
      mtu: q.mtu ?? null,
      hard: !soft,
    });
  };

  for (const ev of pending) {
    if ('icmp' in ev) onIcmp(ev);
    else onTcp(ev);
  }

  const connections = all.map((c, i) => finish(c, i + 1));
  return {
    captureStartNs: origin,
    durationNs: stats.lastNs !== null ? Number(stats.lastNs - origin) : 0,
    records: stats.records,
    tcpSegments: stats.tcpSegments,
    icmpErrors: stats.icmpErrors,
    unmatchedIcmpErrors: unmatchedIcmp,
    otherIpv4: stats.otherIpv4,
    notIpv4: stats.notIpv4,
    malformed: stats.malformed,
    truncated: stats.truncated,
    ignoredConnections: ignored,
    connections,
    ackInvariant: invariant,
  };
}

/**
 * The stable-ack check alone: every server→client ack to one of `serverPorts` in the
 * capture against the trace (inspectCapture's pass; its `ackInvariant`).
 */
export function checkAckInvariant(pcap: Buffer, trace: Map<string, TraceEntry[]>, serverPorts: readonly number[]): AckInvariantReport {
  return inspectCapture(pcap, { trace, serverPorts: [...serverPorts] }).ackInvariant!;
}

function traceKeyOf(c: Conn): string | null {
  return c.c2s.synSeen && c.c2s.isn !== null ? `${u32ToIp(c.clientIp)}:${c.clientPort} ${c.serverPort} ${c.c2s.isn}` : null;
}

function closeStalls(c: Conn): void {
  for (const d of [c.c2s, c.s2c]) {
    if (d.waitingSince !== null && d.outstanding()) {
      d.ackStall = maxSpan(d.ackStall, { durationNs: c.endNs - d.waitingSince, fromNs: d.waitingSince, toNs: c.endNs, unackedAtEnd: true });
    }
  }
}

function finish(c: Conn, id: number): ConnectionReport {
  closeStalls(c);
  const c2s = c.c2s.report();
  const s2c = c.s2c.report();
  const r: ConnectionReport = {
    id,
    key: `${u32ToIp(c.clientIp)}:${c.clientPort} ${u32ToIp(c.serverIp)}:${c.serverPort} ${c.c2s.isn ?? '-'}`,
    traceKey: traceKeyOf(c),
    client: { ip: u32ToIp(c.clientIp), port: c.clientPort },
    server: { ip: u32ToIp(c.serverIp), port: c.serverPort },
    clientIsn: c.c2s.isn,
    serverIsn: c.s2c.isn,
    midStream: !c.c2s.synSeen && !c.synAck,
    startNs: c.startNs,
    endNs: c.endNs,
    packets: c.packets,
    seen: {
      syn: c.c2s.synSeen && !c.c2s.synInferred,
      synAck: c.synAck,
      finFromClient: c2s.finNs !== null,
      finFromServer: s2c.finNs !== null,
      rstFromClient: c2s.rsts > 0,
      rstFromServer: s2c.rsts > 0,
    },
    c2s,
    s2c,
    icmp: c.icmp,
    ackInvariant: c.ackCheck,
    verdict: 'ok',
    reason: '',
  };
  [r.verdict, r.reason] = judge(r);
  return r;
}

const ms = (ns: number): string => `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : ns < 1e9 ? 1 : 0)} ms`;
const at = (ns: number): string => `+${(ns / 1e9).toFixed(3)}s`;

/** The verdict and a one-line reason: the first problem names the verdict, the rest follow. */
function judge(r: ConnectionReport): [InspectVerdict, string] {
  const problems: Array<[InspectVerdict, string]> = [];
  const dirs: Array<['client' | 'server', DirectionReport]> = [['client', r.c2s], ['server', r.s2c]];
  for (const [who, d] of dirs) {
    if (d.rsts > 0) {
      problems.push(['reset', `RST from the ${who} at ${at(d.rstNs!)}${d.rsts > 1 ? ` (${d.rsts}x)` : ''}, after ${r.c2s.bytes} B client→server and ${r.s2c.bytes} B server→client`]);
    }
  }
  const hard = r.icmp.filter((x) => x.hard);
  if (hard.length > 0) {
    const x = hard[0]!;
    problems.push(['icmp', `ICMP type ${x.type} code ${x.code} from ${x.from} to ${x.to} at ${at(x.tNs)} quoting a ${x.quotes === 'c2s' ? 'client' : 'server'} packet${hard.length > 1 ? ` (${hard.length} errors)` : ''}`]);
  }
  for (const [who, d] of dirs) {
    if (d.gaps.length > 0) {
      const g = d.gaps[0]!;
      const acked = d.gaps.every((x) => x.ackedByPeer);
      problems.push(['gap', `${d.gaps.length} gap(s) in ${who}→${who === 'client' ? 'server' : 'client'} data, ${d.gapBytes} B never seen (first [${g.start}, ${g.end}))${acked ? ', acked by the peer: the capture missed them' : ''}`]);
    }
  }
  if (r.ackInvariant && r.ackInvariant.violations.length > 0) {
    const v = r.ackInvariant.violations[0]!;
    problems.push(['unstable-ack', `${r.ackInvariant.violations.length} ack(s) to the client beyond the stable point (first at ${at(v.tNs)}: ack ${v.ack} > stable ${v.stableAtThatTime})`]);
  }
  if (r.midStream) problems.push(['incomplete', 'opened before the capture began (no SYN seen)']);
  if (!(r.seen.finFromClient && r.seen.finFromServer) && !r.seen.rstFromClient && !r.seen.rstFromServer) {
    const which = r.seen.finFromClient ? 'no FIN from the server' : r.seen.finFromServer ? 'no FIN from the client' : 'no close seen';
    problems.push(['incomplete', which]);
  }
  if (problems.length === 0) {
    const p = [r.c2s.longestPause, r.s2c.longestPause].reduce<Pause | null>((a, b) => (b && (!a || b.durationNs > a.durationNs) ? b : a), null);
    const rt = r.c2s.retransmissions + r.s2c.retransmissions;
    return ['ok', `closed cleanly: ${r.c2s.bytes} B client→server, ${r.s2c.bytes} B server→client${rt ? `, ${rt} retransmission(s)` : ''}${p ? `, longest pause ${ms(p.durationNs)}` : ''}`];
  }
  return [problems[0]![0], problems.map((x) => x[1]).join('; ')];
}

// ---------------------------------------------------------------------------------------
// Text output.

function fmtDur(ns: number | null | undefined): string {
  if (ns === null || ns === undefined) return '-';
  if (ns < 1e6) return `${(ns / 1e3).toFixed(0)}us`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(ns < 1e7 ? 1 : 0)}ms`;
  return `${(ns / 1e9).toFixed(ns < 1e10 ? 2 : 1)}s`;
}

function table(rows: string[][], right: ReadonlySet<number>): string[] {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (right.has(i) ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ').trimEnd());
}

/** A table (one row per connection) followed by one verdict line per connection. */
export function formatInspect(report: InspectReport): string {
  const out: string[] = [];
  const extra: string[] = [];
  if (report.truncated) extra.push(`${report.truncated} truncated`);
  if (report.malformed) extra.push(`${report.malformed} malformed`);
  if (report.unmatchedIcmpErrors) extra.push(`${report.unmatchedIcmpErrors} ICMP errors quoting no connection`);
  if (report.ignoredConnections) extra.push(`${report.ignoredConnections} connections on other ports ignored`);
  out.push(
    `${report.records} records over ${fmtDur(report.durationNs)}: ${report.tcpSegments} TCP segments, ${report.icmpErrors} ICMP errors, ` +
      `${report.connections.length} connection(s)${extra.length ? ` (${extra.join(', ')})` : ''}`,
  );
  if (report.connections.length === 0) return out.join('\n') + '\n';
  const rows: string[][] = [[
    '#', 'client', 'server', 'start', 'dur', 'c>s bytes', 's>c bytes', 'retx c/s', 'gaps c/s', 'SYN', 'FIN c/s', 'RST', 'ICMP', 'zwin c/s',
    'pause c/s', 'ack stall c', 'verdict',
  ]];
  const yn = (b: boolean): string => (b ? 'y' : '-');
  for (const c of report.connections) {
    const rst = c.seen.rstFromClient && c.seen.rstFromServer ? 'both' : c.seen.rstFromClient ? 'client' : c.seen.rstFromServer ? 'server' : '-';
    const stall = c.c2s.ackStall;
    rows.push([
      String(c.id),
      `${c.client.ip}:${c.client.port}`,
      `${c.server.ip}:${c.server.port}`,
      `+${(c.startNs / 1e9).toFixed(3)}s`,
      fmtDur(c.endNs - c.startNs),
      String(c.c2s.bytes),
      String(c.s2c.bytes),
      `${c.c2s.retransmissions}/${c.s2c.retransmissions}`,
      `${c.c2s.gaps.length}/${c.s2c.gaps.length}`,
      c.seen.syn ? (c.seen.synAck ? 'y' : 'syn') : c.seen.synAck ? 'ack' : '-',
      `${yn(c.seen.finFromClient)}/${yn(c.seen.finFromServer)}`,
      rst,
      String(c.icmp.length),
      `${c.c2s.zeroWindows}/${c.s2c.zeroWindows}`,
      `${fmtDur(c.c2s.longestPause?.durationNs)}/${fmtDur(c.s2c.longestPause?.durationNs)}`,
      stall ? `${fmtDur(stall.durationNs)}${stall.unackedAtEnd ? '+' : ''}` : '-',
      c.verdict,
    ]);
  }
  out.push(...table(rows, new Set([0, 4, 5, 6, 7, 8, 12, 13, 14, 15])));
  out.push('');
  for (const c of report.connections) {
    let line = `#${c.id} ${c.client.ip}:${c.client.port} -> ${c.server.ip}:${c.server.port}: ${c.verdict.toUpperCase()} ${c.reason}`;
    if (c.ackInvariant) {
      const a = c.ackInvariant;
      line += ` [ack invariant: ${a.checked} acks checked, ${a.violations.length} violation(s)${a.traced ? '' : ', not in the trace'}]`;
    }
    out.push(line);
  }
  return out.join('\n') + '\n';
}

/** JSON.stringify replacer for reports (bigint → decimal string). */
export function reportJsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
