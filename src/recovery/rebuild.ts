/**
 * The north wrapper: crash masking and the rebuild of each connection inside a restarted
 * server (DESIGN.md §4-5, seed 001 figs. 17-23 and the recovery pseudocode).
 *
 * Sequence relations (offsets are stream offsets; seq = ISN + 1 + offset, mod 2^32):
 *
 *   in-stream (client → server), the same numbers in every incarnation (the spoofed SYN
 *   carries the client's ISN):
 *
 *     0 ── incDelivered ── complete ≤ stable ≤ received ── high        (rightEdge: last window)
 *          │                  │        │        └ the replay target when the handshake is done
 *          │                  │        └ the replay sender reads [sndNxt, stable) from the log
 *          │                  └ what the client was told (≤ stable, ≤ rightEdge while masked)
 *          └ what the server's current incarnation acknowledged (its rcv_nxt: the reaping RST's seq)
 *
 *   out-stream (server → client): the client knows ISN_old; the new incarnation numbers its
 *   bytes from ISN_new, and, being deterministic, regenerates the same bytes at the same offsets:
 *
 *     0 ──────────── cliAcked0 ─────── sndMax
 *     │  absorbed: acked by the gateway   │ forwarded again (the client may lack them)
 *     seq_client = seq_new + (ISN_old − ISN_new)          (Translation.seqDelta)
 *
 * The protocol, per connection (one `Rebuild` on the flow; `phase` moves only forward,
 * except that a crash at any step starts again at step 0 — step 7):
 *
 *   0. MASKED     the incarnation died. Server FIN/RST/retransmissions dropped; client data
 *                 logged (south wrapper) and dropped; ACK(min(stable, rightEdge)) to the
 *                 client at each stable advance and every `keepaliveMs`.
 *   1. HANDSHAKE  (the service listens again) pick the tuple: the port of the dead incarnation,
 *                 reaped with an RST at seq(incDelivered); if a socket answers a SYN with a
 *                 plain ACK (its rcv_nxt), reap at that ack; after `portAttempts` tries a
 *                 fresh port from the configured range, found again by a flow-table alias.
 *   2.            spoofed SYN: seq = client ISN, the client's original SYN options and window.
 *   3.            SYN-ACK: record ISN_new; the options must agree with the original ones (MSS,
 *                 window scale present, SACK-permitted, timestamps) else FAILED; ACK it.
 *   4. REPLAY     a small sender replays [0, stable) and the logged FIN: within the server's
 *                 window and MSS, go-back-N on a timeout. Client segments are translated and
 *                 forwarded from now on (their acks clamped to what the new incarnation sent).
 *   5.            absorption: regenerated output ending at or below cliAcked is acked to the
 *                 server by the gateway and dropped; the rest is forwarded (translated).
 *   6. LIVE       (replay acked through the target, output regenerated through cliAcked0)
 *                 `rec` is dropped; `flow.xlate` translates for the life of the connection.
 *   7.            a crash during 1-5 (or 6) starts again at 0, from the log.
 *   FAILED        options disagree, or no handshake before the deadline: one RST to the
 *                 client (at its last ack), one to the new incarnation; counted; the flow closes.
 */
import { FlowTable, type Service } from '../flow/table.js';
import type { Flow, RecoveryPhase, RecoveryState } from '../flow/flow.js';
import type { LogStore } from '../log/types.js';
import type { PacketInfo } from '../wire/packet.js';
import { writeTcpPacket, type TcpPacketRepr } from '../wire/repr.js';
import { EMIT_HEADROOM, emitScratch, type Emit } from '../wire/headroom.js';
import { seqAdd, seqDiff, seqGt } from '../wire/seq.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_OFF_SEQ, TCP_OFF_WINDOW, TCP_OFF_DST_PORT } from '../wire/tcp.js';
import { TcpOptions, parseTcpOptions } from '../wire/tcp-options.js';
import { tcpSetAck } from '../wire/rewrite.js';
import { windowField } from '../wire/window.js';
import { Translation, translateToClient, translateToServer } from './translate.js';
import { u32ToIp } from '../wire/addr.js';
import type { Logger } from '../util/logger.js';

export const PASS = 0;
export const DROP = 1;

export type Phase = RecoveryPhase;

/** A flow's recovery state: only this engine sets `flow.rec`, always to a Rebuild. */
function recOf(flow: Flow): Rebuild | null {
  return flow.rec as Rebuild | null;
}

/** A flow's translation: only this engine sets `flow.xlate`, always to a Translation. */
function xlateOf(flow: Flow): Translation | null {
  return flow.xlate as Translation | null;
}

export interface NorthOptions {
  /** ACK(stable) to a masked client at least this often (ms). */
  keepaliveMs: number;
  /**
   * Keepalive ACKs per second over every masked connection at most: with many connections
   * the period grows past keepaliveMs (10,000 masked connections at 200 ms would be 50,000
   * packets a second, the gateway's whole budget while it rebuilds them).
   */
  keepaliveRate: number;
  /** First SYN retransmission timeout (ms); doubles to 1 s. */
  synRtoMs: number;
  /** First replay retransmission timeout (ms); doubles to 2 s. */
  replayRtoMs: number;
  /** SYN attempts on the dead incarnation's port before moving to a fresh port. */
  portAttempts: number;
  /** Fresh client ports toward a new incarnation (documented: clients must not use them). */
  portRange: [number, number];
  /** From the start of a rebuild (listening again) to the handshake: past it, FAILED (ms). */
  rebuildDeadlineMs: number;
  /** A connection masked this long without the service listening again is ended (ms). */
  maskDeadlineMs: number;
  /**
   * Replay and absorption: no progress this long (the new incarnation acknowledges no replayed
   * byte and sends no output) while nothing on the client's side explains it (its window is
   * open) ends the connection (ms). A client that stops reading holds the server legitimately,
   * as it would without a crash, and does not count against it.
   */
  progressDeadlineMs: number;
  /** First zero-window probe toward the new incarnation (ms); doubles to 2 s. */
  probeMs: number;
  /**
   * Rebuilds in the handshake phase at once (bounded parallelism). Keep it well below the
   * server's listen backlog (Node's default is 511): in a trial with 1,024 at once for 1,000
   * connections the server's SYN queue overflowed (761 SYN cookies sent) and 255 connections
   * stayed in SYN-RECV at the server, their replays stalled. 128 never did.
   */
  maxParallel: number;
  /** Replay bytes read from the log at once. */
  readChunk: number;
  /**
   * Replay bytes sent and not yet acknowledged, over every connection at once. The rebuild
   * of many connections is bounded by the gateway's own packet rate: past it, the server's
   * answers overflow the TUN's queue toward the gateway, and every loss costs a
   * retransmission timeout. A connection with no room waits until acks free some.
   */
  replayInFlight: number;
  /** Without a liveness oracle: retry the handshake until the server answers (no 'listening'). */
  probeWithoutOracle: boolean;
}

export const defaultNorthOptions: NorthOptions = {
  keepaliveMs: 200,
  keepaliveRate: 5000,
  synRtoMs: 100,
  replayRtoMs: 200,
  portAttempts: 3,
  portRange: [61000, 65535],
  rebuildDeadlineMs: 30_000,
  maskDeadlineMs: 120_000,
  progressDeadlineMs: 60_000,
  probeMs: 200,
  maxParallel: 128,
  readChunk: 256 * 1024,
  replayInFlight: 1 << 20,
  probeWithoutOracle: false,
};

export class NorthStats {
  crashes = 0;
  flowsMasked = 0;
  deadDropped = 0;
  keepaliveAcks = 0;
  reapRsts = 0;
  synsSent = 0;
  synRefused = 0;
  challengeAcks = 0;
  portsMoved = 0;
  handshakes = 0;
  optionMismatch = 0;
  replaySegments = 0;
  replayBytes = 0;
  replayRetransmits = 0;
  absorbedSegments = 0;
  absorbedBytes = 0;
  serverAcksDropped = 0;
  caughtUp = 0;
  rebuildFailed = 0;
  rstsToClient = 0;
  clientAcksClamped = 0;
  synRstsDropped = 0;
  /** Window probes to a new incarnation whose receive window was closed. */
  zeroWindowProbes = 0;
  /** Client pure ACKs during the replay, replaced by the gateway's own ACK (see fromClient). */
  clientAcksReplaced = 0;
  /** Regenerated data+FIN segments whose data the client had: absorbed, the FIN left for the retransmission. */
  finTailsAbsorbed = 0;
  /** Rebuilds ended for want of progress during the replay or the absorption. */
  progressFailures = 0;
  /** Recoveries ended because their flow left the table (released, replaced). */
  recoveriesForgotten = 0;
}

/** One crash of one service, as the drill reports it (ms since the epoch; 0 = not yet). */
export interface RecoveryTimeline {
  service: string;
  crash: number;
  detectedAt: number;
  reason: string;
  connections: number;
  listeningAt: number;
  handshakesDoneAt: number;
  replayDoneAt: number;
  caughtUpAt: number;
  handshakes: number;
  replayed: number;
  caughtUp: number;
  failed: number;
  /** Connections that ended (closed by their peers) while being recovered. */
  ended: number;
}

/** The per-connection rebuild state (see the steps at the top of this module). */
export class Rebuild implements RecoveryState {
  phase: Phase = 'MASKED';
  /** The client port the dead incarnation used (reaped) and the one the next SYN uses. */
  deadPort: number;
  sidePort: number;
  attempts = 0;
  portTries = 0;
  nextAt = 0;
  rto: number;
  startedAt = 0;
  maskedAt: number;
  lastAckAt = 0;
  /** From the SYN-ACK. */
  newIsn = 0;
  newShift = 0;
  mss = 536;
  newTsRecent = 0;
  /** Replay sender (in-stream offsets). */
  sndUna = 0;
  sndNxt = 0;
  target0 = 0;
  cliAcked0 = 0;
  lastProgress = 0;
  /** Last time the replay or the absorption moved (or the client's closed window explained a pause). */
  lastMoved = 0;
  /** Next zero-window probe, and its interval. */
  probeAt = 0;
  probeRto = 0;
  newRightEdge = 0;
  data: Buffer | null = null;
  dataStart = 0;
  reading = false;
  ackPending = false;
  handshakeDone = false;
  replayDone = false;
  /** sndNxt − sndUna as last counted in NorthWrapper.inFlight. */
  counted = 0;
  /** When the first SYN of this attempt series went out (an RTT sample if it alone is answered). */
  synSentAt = 0;
  timeline: RecoveryTimeline;

  constructor(port: number, now: number, rto: number, timeline: RecoveryTimeline) {
    this.deadPort = port;
    this.sidePort = port;
    this.maskedAt = now;
    this.rto = rto;
    this.timeline = timeline;
  }
}

interface ServiceRecovery {
  down: boolean;
  timeline: RecoveryTimeline | null;
  queue: Flow[];
}

const TS_OPT_LEN = 12;
/**
 * Recovery timelines kept (the latest; `ftcp status` shows 50): one per crash of a service,
 * ~400 bytes each, kept for ever they grew the heap by 3.5 MB over the fuzz's 21,000 crashes.
 */
export const MAX_TIMELINES = 1000;
/** Largest replay payload in one GSO super-packet (an IPv4 packet is at most 65,535 bytes). */
const SUPER_PACKET_PAYLOAD = 62_000;

export class NorthWrapper {
  readonly stats = new NorthStats();
  readonly timelines: RecoveryTimeline[] = [];
  private readonly services = new Map<Service, ServiceRecovery>();
  private readonly active = new Set<Flow>();
  /** Flows in `active`, per service (so "none left" is O(1) however many are recovered). */
  private readonly activeBySvc = new Map<Service, number>();
  private readonly opts1 = new TcpOptions();
  private readonly opts2 = new TcpOptions();
  private handshaking = 0;
  /**
   * Smoothed round trip to the new incarnation through the gateway (ms), from SYNs answered
   * at the first try; 0 until a sample. Under the load of a mass rebuild the gateway's own
   * queue delays answers by far more than the nominal timeouts: a SYN or replay timeout
   * below ~3 round trips only retransmits what is merely late (and a go-back-N resends a
   * whole window), so the timeouts start at max(option, 3 × srtt).
   */
  srtt = 0;
  /** Replay bytes in flight over every connection (sum of Rebuild.counted), ≤ replayInFlight. */
  private inFlight = 0;
  /** Replaying connections stopped by replayInFlight, pumped again as acks free room. */
  private readonly waiting = new Set<Flow>();
  private nextPort: number;
  /**
   * The MTU when emitted packets above it leave as GSO super-packets (the gateway's --offload,
   * while the kernel takes them), else 0. With it, the replay sends up to ~60 KB per packet
   * and the kernel cuts MTU-sized segments: ~40× fewer packets through the gateway.
   */
  superPacketMtu: () => number = () => 0;
  /** Told when a flow must be forgotten (FAILED and reset). */
  onFailed: ((svc: Service, flow: Flow) => void) | null = null;

  constructor(
    private readonly table: FlowTable,
    private readonly log: LogStore,
    /** Writes a packet the gateway made (toward either side) into the TUN. */
    private readonly emit: (buf: Buffer, off: number, len: number) => void,
    private readonly options: NorthOptions,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.nextPort = options.portRange[0];
  }

  // ---- service events (liveness) ----------------------------------------------------

  private svcRec(svc: Service): ServiceRecovery {
    let r = this.services.get(svc);
    if (!r) this.services.set(svc, (r = { down: false, timeline: null, queue: [] }));
    return r;
  }

  /** Is the service's server down (crashed, not yet rebuilt into)? */
  isDown(svc: Service): boolean {
    return this.services.get(svc)?.down === true;
  }

  /**
   * The incarnation that served at `at` died since, and the service does not listen again yet
   * (a handshake whose SYN-ACK came before the crash and its client's ACK after it).
   */
  diedSince(svc: Service, at: number): boolean {
    const sr = this.services.get(svc);
    return sr !== undefined && sr.down && sr.timeline !== null && sr.timeline.listeningAt === 0 && sr.timeline.detectedAt >= at;
  }

  /** Step 0 for every established connection of the service: the incarnation died. */
  crash(svc: Service, reason: string): void {
    const now = this.now();
    const sr = this.svcRec(svc);
    const wasDown = sr.down;
    sr.down = true;
    sr.queue.length = 0;
    let tl = sr.timeline;
    // A new crash, or the same one reported again (oracle notice, held FIN's verdict, silence)?
    // New when the service was up, or had been listening again since (a crash during rebuild).
    if (!wasDown || tl === null || tl.listeningAt !== 0) {
      tl = {
        service: `${u32ToIp(svc.ip)}:${svc.port}`, crash: this.stats.crashes + 1, detectedAt: now, reason, connections: 0,
        listeningAt: 0, handshakesDoneAt: 0, replayDoneAt: 0, caughtUpAt: 0, handshakes: 0, replayed: 0, caughtUp: 0, failed: 0, ended: 0,
      };
      this.timelines.push(tl);
      if (this.timelines.length > MAX_TIMELINES) this.timelines.shift();
      sr.timeline = tl;
      this.stats.crashes++;
      this.logger.warn({ service: tl.service, reason }, 'server crash: masking its connections');
    }
    for (const [s, flow] of this.table.flows()) {
      if (s !== svc) continue;
      if (flow.state !== 'ESTABLISHED' && flow.state !== 'CLOSING') continue;
      if (flow.unprotected && flow.rec === null) continue; // nothing to rebuild from: it passes as it is
      const port = flow.xlate ? flow.xlate.serverSidePort : flow.clientPort;
      const prev = recOf(flow);
      if (prev !== null && prev.phase === 'FAILED') continue;
      if (prev !== null && prev.phase === 'HANDSHAKE') this.handshaking--;
      if (prev !== null && prev.timeline === tl && prev.phase === 'MASKED') continue;
      if (prev !== null) this.uncount(flow, prev);
      const r = new Rebuild(prev !== null && prev.phase !== 'MASKED' ? prev.sidePort : port, now, this.options.synRtoMs, tl);
      if (prev !== null) r.maskedAt = prev.maskedAt;
      flow.rec = r;
      flow.crashes++;
      flow.verdictHold = null;
      tl.connections++;
      this.stats.flowsMasked++;
      this.activate(svc, flow);
      this.ackClient(flow, now);
    }
    if (this.options.probeWithoutOracle) this.listening(svc, true);
  }

  /** The service listens again: start the rebuilds (bounded parallelism). */
  listening(svc: Service, probing = false): void {
    const sr = this.services.get(svc);
    if (!sr || !sr.down) return;
    const now = this.now();
    if (sr.timeline !== null && sr.timeline.listeningAt === 0 && !probing) sr.timeline.listeningAt = now;
    sr.queue.length = 0;
    for (const flow of this.active) {
      if (flow.rec?.phase === 'MASKED' && this.table.service(flow.serverIp, flow.serverPort) === svc) sr.queue.push(flow);
    }
    this.startQueued(sr, now);
    if (sr.queue.length === 0 && this.countRecovering(svc) === 0) {
      // Nothing to rebuild (no connection was open at the crash, or all ended meanwhile):
      // the recovery is complete the moment the service listens.
      const tl = sr.timeline;
      if (tl !== null && !probing && tl.caughtUpAt === 0) {
        if (tl.handshakesDoneAt === 0) tl.handshakesDoneAt = now;
        if (tl.replayDoneAt === 0) tl.replayDoneAt = now;
        tl.caughtUpAt = now;
      }
      this.serviceUp(sr);
    }
  }

  private countRecovering(svc: Service): number {
    return this.activeBySvc.get(svc) ?? 0;
  }

  private activate(svc: Service, flow: Flow): void {
    if (this.active.has(flow)) return;
    this.active.add(flow);
    this.activeBySvc.set(svc, (this.activeBySvc.get(svc) ?? 0) + 1);
  }

  private deactivate(flow: Flow): void {
    if (!this.active.delete(flow)) return;
    const svc = this.table.service(flow.serverIp, flow.serverPort);
    if (svc !== undefined) this.activeBySvc.set(svc, (this.activeBySvc.get(svc) ?? 1) - 1);
  }

  private serviceUp(sr: ServiceRecovery): void {
    sr.down = false;
    sr.timeline = null;
  }

  private startQueued(sr: ServiceRecovery, now: number): void {
    while (sr.queue.length > 0 && this.handshaking < this.options.maxParallel) {
      const flow = sr.queue.shift()!;
      const r = recOf(flow);
      if (r === null || r.phase !== 'MASKED') continue;
      r.phase = 'HANDSHAKE';
      r.startedAt = now;
      r.attempts = 0;
      r.rto = this.synRto();
      this.handshaking++;
      this.sendSyn(flow, r, now);
    }
  }

  // ---- packets -------------------------------------------------------------------------

  /**
   * A client segment of a masked, rebuilding or translated connection (already logged by
   * the south wrapper). Returns PASS (translated for the new incarnation) or DROP.
   */
  fromClient(svc: Service, flow: Flow, buf: Buffer, p: PacketInfo): number {
    const r = recOf(flow);
    if (r !== null) {
      if (r.phase === 'FAILED') {
        if (!(p.flags & TCP_RST)) this.resetClient(flow, p.flags & TCP_ACK ? p.ack : flow.outSeq(flow.cliAcked));
        return DROP;
      }
      if (p.flags & TCP_RST && flow.state === 'CLOSED') {
        // The client gave up on its own: forget the rebuild; tell the new incarnation if any.
        this.ended(flow, r, this.now());
        if (r.phase === 'REPLAY' && flow.xlate !== null) {
          this.toServer(flow, buf, p);
          return PASS;
        }
        return DROP;
      }
      if (r.phase !== 'REPLAY') return DROP;
      if (p.payloadLen === 0 && !(p.flags & (TCP_FIN | TCP_SYN | TCP_RST))) {
        // A pure ACK or window update: its seq is the client's snd_nxt, which may lie beyond
        // what the replay has delivered and so beyond a closed receive window: the new
        // incarnation would drop it unread (Linux: a segment past rcv_nxt + rcv_wnd) and never
        // learn the client's ack or window. The gateway's own ACK carries both, at the
        // replay's sequence number, which the receiver accepts.
        this.stats.clientAcksReplaced++;
        if (p.window > 0) r.lastMoved = this.now();
        this.ackServerSoon(flow, r);
        return DROP;
      }
    }
    if (flow.xlate === null) return PASS;
    this.toServer(flow, buf, p);
    return PASS;
  }

  private toServer(flow: Flow, buf: Buffer, p: PacketInfo): void {
    const t = xlateOf(flow)!;
    if (p.flags & TCP_ACK) {
      // Never acknowledge output the new incarnation has not sent (it would drop the segment).
      const a = flow.outOffset(p.ack);
      if (a > flow.incSndMax) {
        p.ack = flow.outSeq(flow.incSndMax);
        tcpSetAck(buf, p.l4Off, p.ack);
        this.stats.clientAcksClamped++;
      }
    }
    translateToServer(t, buf, p);
  }

  /**
   * A server segment of such a connection, before the south wrapper. Returns DROP, or PASS
   * with the segment translated in place (and `p` updated) for the south wrapper.
   */
  fromServer(svc: Service, flow: Flow, buf: Buffer, p: PacketInfo): number {
    const r = recOf(flow);
    const flags = p.flags;
    if (r !== null) {
      if (r.phase === 'MASKED' || r.phase === 'FAILED') {
        if (p.dstPort === r.deadPort && flags & TCP_ACK && !(flags & TCP_SYN)) {
          const a = flow.inOffset(p.ack);
          if (a > flow.incDelivered && a <= flow.high + 1) flow.incDelivered = a;
        }
        this.stats.deadDropped++;
        return DROP;
      }
      if (r.phase === 'HANDSHAKE') {
        this.handshakeSegment(svc, flow, r, buf, p);
        return DROP;
      }
    }
    const t = xlateOf(flow);
    if (t === null) return PASS;
    if (p.dstPort !== t.serverSidePort) {
      this.stats.deadDropped++; // the dead incarnation, on the port the connection left
      return DROP;
    }
    if (flags & TCP_SYN) {
      // Our handshake ACK was lost: the SYN-ACK comes again.
      if (r !== null) this.sendToServer(flow, r, flow.inSeq(0), TCP_ACK, null);
      return DROP;
    }
    if (!this.fromNewIncarnation(flow, t, p.seq)) {
      // Same tuple, but the dead incarnation's numbering: one of its last segments (an
      // orphan's FIN retransmission, an ACK) sent before the reaping RST and delivered late
      // by a loaded gateway queue. Its ack (the dead socket's rcv_nxt) must not count as the
      // new incarnation's: the replay would stop short and the connection never catch up.
      this.stats.deadDropped++;
      return DROP;
    }
    // New-incarnation bookkeeping (raw numbers, before translation).
    if (flags & TCP_ACK) {
      const a = flow.inOffset(p.ack);
      if (a > flow.incDelivered && a <= flow.high + 1) flow.incDelivered = a;
    }
    const len = p.payloadLen + (flags & TCP_FIN ? 1 : 0);
    if (r !== null) {
      if (flags & TCP_ACK) {
        // The right edge of the window this segment advertises (relative to its own ack: a
        // late, reordered segment must not stretch it); a receiver never moves it left.
        const a = flow.inOffset(p.ack);
        const edge = a + p.window * 2 ** r.newShift;
        if (a <= flow.high + 1 && edge > r.newRightEdge) r.newRightEdge = edge;
      }
      if (flow.tsOk) {
        const ts = tsValOf(buf, p, this.opts1);
        if (ts >= 0 && seqGt(ts, r.newTsRecent)) r.newTsRecent = ts;
      }
    }
    translateToClient(t, buf, p);
    const l4 = p.l4Off;
    p.seq = buf.readUInt32BE(l4 + TCP_OFF_SEQ);
    p.window = buf.readUInt16BE(l4 + TCP_OFF_WINDOW);
    p.dstPort = buf.readUInt16BE(l4 + TCP_OFF_DST_PORT);
    // The same out-stream offsets in every incarnation (client's numbering after translation).
    const o = flow.outOffset(p.seq);
    if (len > 0 && o + len > flow.incSndMax && o >= 0) flow.incSndMax = o + len;
    if (r !== null) {
      // Step 5: absorb what the client already acknowledged.
      const dataEnd = o + p.payloadLen;
      if (len > 0 && (o + len <= flow.cliAcked || (p.payloadLen > 0 && dataEnd <= flow.cliAcked))) {
        if (o + len > flow.cliAcked) {
          // Data the client has, with the FIN it lacks: forwarded, the old bytes would reach a
          // client that may have closed (its ACK of them would then hit a server that closed
          // too, which answers with a RST). The gateway's ACK stops short of the FIN, so the
          // new incarnation retransmits it alone (Linux trims the acked bytes).
          this.stats.finTailsAbsorbed++;
        }
        this.stats.absorbedSegments++;
        this.stats.absorbedBytes += p.payloadLen;
        r.lastMoved = this.now();
        this.ackServerSoon(flow, r);
        this.progress(flow, r);
        return DROP;
      }
      if (len === 0 && !(flags & TCP_RST) && flow.inOffset(p.ack) <= flow.complete) {
        // A pure ACK of replayed bytes: the client has those acked already (no dupacks to it).
        this.stats.serverAcksDropped++;
        this.progress(flow, r);
        return DROP;
      }
      this.progress(flow, r);
    }
    return PASS;
  }

  /**
   * Whether raw server sequence number `seq` lies where the new incarnation can be sending:
   * from its ISN + 1 up to what it sent plus the room the gateway gave it (the absorption up
   * to cliAcked and the client's window), with 64 KiB to spare. A segment of the dead
   * incarnation (ISN_old, random against ISN_new) falls there with probability ~1e-4.
   */
  private fromNewIncarnation(flow: Flow, t: Translation, seq: number): boolean {
    const off = outOffsetNear(seq, seqAdd(flow.serverIsn, -t.seqDelta), flow.incSndMax);
    const room = Math.max(flow.incSndMax, flow.cliAcked) + flow.cliWindow * 2 ** flow.clientWscale + 65536;
    return off >= -1 && off <= room;
  }

  /** Steps 1-3: answers to our SYN. */
  private handshakeSegment(svc: Service, flow: Flow, r: Rebuild, buf: Buffer, p: PacketInfo): void {
    const now = this.now();
    const flags = p.flags;
    if (p.dstPort !== r.sidePort) {
      this.stats.deadDropped++;
      return;
    }
    const synAcked = flags & TCP_ACK && p.ack === seqAdd(flow.clientIsn, 1);
    if (flags & TCP_SYN && synAcked) {
      this.synAcked(svc, flow, r, buf, p, now);
      return;
    }
    if (flags & TCP_RST) {
      if (synAcked) {
        // Nothing listens (yet): try again after the backoff, until the deadline.
        this.stats.synRefused++;
        r.nextAt = now + r.rto;
        r.rto = Math.min(r.rto * 2, 1000);
      }
      return;
    }
    if (flags & TCP_FIN) {
      // The dead incarnation's orphan retransmitting its FIN, sent before our reaping RST
      // (a loaded gateway may see it late). Not an answer to the SYN: an RST at its ack now
      // could land in the window of the new incarnation's connection on this tuple.
      this.stats.deadDropped++;
      return;
    }
    if (flags & TCP_ACK && !(flags & TCP_SYN)) {
      // A socket still holds the tuple and told us its rcv_nxt (challenge ACK): reap it there.
      this.stats.challengeAcks++;
      this.sendRaw(flow, r.sidePort, p.ack, 0, TCP_RST, 0, null, null);
      this.stats.reapRsts++;
      r.nextAt = now + 5;
    }
  }

  private synAcked(svc: Service, flow: Flow, r: Rebuild, buf: Buffer, p: PacketInfo, now: number): void {
    const o = this.opts1;
    const old = this.opts2;
    const okNew = parseTcpOptions(buf, p.optOff, p.optLen, o);
    const okOld = parseTcpOptions(flow.serverSynOptions, 0, flow.serverSynOptions.length, old);
    const why = !okNew || !okOld ? 'unparsable options'
      : (o.tsOff >= 0) !== (old.tsOff >= 0) ? 'timestamps'
        : o.sackPermitted !== old.sackPermitted ? 'SACK-permitted'
          : (o.wscale >= 0) !== (old.wscale >= 0) ? 'window scaling'
            : o.mss !== old.mss ? `MSS ${o.mss} vs ${old.mss}` : null;
    if (why !== null) {
      this.stats.optionMismatch++;
      // Reset the new incarnation's half-open connection too: at the SYN-ACK's ack, its
      // rcv_nxt (fail() sends one only during the replay).
      this.sendRaw(flow, r.sidePort, p.ack, 0, TCP_RST, 0, null, null);
      this.fail(flow, r, `the new incarnation's SYN-ACK options disagree: ${why}`);
      return;
    }
    if (r.attempts === 1 && r.synSentAt > 0) {
      const sample = now - r.synSentAt;
      this.srtt = this.srtt === 0 ? sample : this.srtt + (sample - this.srtt) / 8;
    }
    r.newIsn = p.seq;
    r.newShift = o.wscale >= 0 ? Math.min(o.wscale, 14) : 0;
    r.mss = o.mss > 0 ? o.mss : 536;
    r.newTsRecent = o.tsOff >= 0 ? o.tsVal : 0;
    const tsDelta = flow.tsOk ? seqAdd(flow.lastTsToClient + 1, -o.tsVal) >>> 0 : 0;
    const seqDelta = seqAdd(flow.serverIsn, -p.seq) >>> 0;
    flow.xlate = new Translation(seqDelta, tsDelta, flow.clientPort, r.sidePort, flow.serverWscale, r.newShift);
    flow.incDelivered = 0;
    flow.incSndMax = 0;
    r.newRightEdge = p.window; // a SYN-ACK's window is not scaled
    r.phase = 'REPLAY';
    r.handshakeDone = true;
    this.handshaking--;
    r.sndUna = 0;
    r.sndNxt = 0;
    r.target0 = flow.received;
    if (flow.clientFin >= 0 && flow.received >= flow.clientFin) r.target0 = flow.clientFin + 1;
    r.cliAcked0 = flow.cliAcked;
    r.lastProgress = now;
    r.lastMoved = now;
    r.probeRto = this.options.probeMs;
    r.probeAt = 0;
    r.rto = this.replayRto();
    r.data = null;
    this.stats.handshakes++;
    const tl = r.timeline;
    tl.handshakes++;
    if (tl.handshakes + tl.failed + tl.ended >= tl.connections) tl.handshakesDoneAt = now;
    // Step 3: complete the handshake.
    this.sendToServer(flow, r, flow.inSeq(0), TCP_ACK, null);
    this.logger.debug({ flow: flow.describe(), port: r.sidePort, newIsn: r.newIsn, target: r.target0, cliAcked: r.cliAcked0 }, 'rebuild: handshake done, replaying');
    this.pump(flow, r);
    const sr = this.services.get(svc);
    if (sr) this.startQueued(sr, now);
  }

  // ---- step 4: the replay sender ------------------------------------------------------

  /** The log has more stable bytes for the flow. */
  onStable(flow: Flow): void {
    const r = recOf(flow);
    if (r === null) return;
    if (r.phase === 'MASKED' || r.phase === 'HANDSHAKE') this.ackClient(flow, this.now());
    else if (r.phase === 'REPLAY') this.pump(flow, r);
  }

  private progress(flow: Flow, r: Rebuild): void {
    if (r.phase !== 'REPLAY') return;
    const una = flow.incDelivered;
    if (una > r.sndUna) {
      r.sndUna = una;
      r.lastProgress = this.now();
      r.lastMoved = r.lastProgress;
      r.probeRto = this.options.probeMs;
      r.probeAt = 0;
      r.rto = this.replayRto();
      if (r.sndNxt < una) r.sndNxt = una;
      this.count(r);
    }
    this.pump(flow, r);
    this.checkCaughtUp(flow, r);
    if (this.waiting.size > 0 && this.inFlight < this.options.replayInFlight) this.wake();
  }

  /** Brings `inFlight` up to date with r's sndNxt − sndUna. */
  private count(r: Rebuild): void {
    const n = r.sndNxt - r.sndUna;
    this.inFlight += n - r.counted;
    r.counted = n;
  }

  /** r stops counting (finished, failed, replaced by a new crash's rebuild). */
  private uncount(flow: Flow, r: Rebuild): void {
    this.inFlight -= r.counted;
    r.counted = 0;
    this.waiting.delete(flow);
  }

  /** Pumps the connections that waited for room, oldest first, while there is room. */
  private wake(): void {
    const list = [...this.waiting];
    this.waiting.clear();
    for (let i = 0; i < list.length; i++) {
      const f = list[i]!;
      if (this.inFlight >= this.options.replayInFlight) {
        for (let k = i; k < list.length; k++) this.waiting.add(list[k]!);
        return;
      }
      const r = recOf(f);
      if (r !== null && r.phase === 'REPLAY') this.pump(f, r);
    }
  }

  /** Sends what the window, the MSS and the log allow. */
  private pump(flow: Flow, r: Rebuild): void {
    if (r.phase !== 'REPLAY') return;
    const fin = flow.clientFin >= 0 && flow.stable > flow.clientFin ? flow.clientFin : -1;
    const dataEnd = fin >= 0 ? fin : flow.stable;
    // Never past the right edge of the new incarnation's window: a byte beyond a closed
    // window would move sndNxt past it, and every pure ACK after it (at sndNxt) would be
    // out of the receiver's window and dropped unread. A closed window is probed (tick()).
    const edge = r.newRightEdge;
    let seg = Math.max(64, r.mss - (flow.tsOk ? TS_OPT_LEN : 0));
    const mtu = this.superPacketMtu();
    // Super-packets only when the kernel's segments (MTU-sized) fit the new incarnation's MSS.
    if (mtu > 0 && r.mss + 40 >= mtu) {
      const gso = mtu - 40 - (flow.tsOk ? TS_OPT_LEN : 0);
      seg = Math.max(seg, Math.floor(SUPER_PACKET_PAYLOAD / gso) * gso);
    }
    // The shared budget; a connection with nothing in flight may always send one segment.
    const room = this.options.replayInFlight - this.inFlight;
    const budgetEnd = r.sndNxt + (room > 0 ? room : r.sndNxt === r.sndUna ? seg : 0);
    let sent = 0;
    while (r.sndNxt < dataEnd && r.sndNxt < edge && sent < 64) {
      if (r.sndNxt >= budgetEnd) {
        this.waiting.add(flow);
        break;
      }
      const data = r.data;
      if (data === null || r.sndNxt < r.dataStart || r.sndNxt >= r.dataStart + data.length) {
        this.readMore(flow, r, dataEnd);
        break;
      }
      const end = Math.min(dataEnd, edge, r.sndNxt + seg, r.dataStart + data.length, Math.max(budgetEnd, r.sndNxt + 1));
      if (end <= r.sndNxt) break;
      const payload = data.subarray(r.sndNxt - r.dataStart, end - r.dataStart);
      this.sendToServer(flow, r, flow.inSeq(r.sndNxt), TCP_ACK | TCP_PSH, payload);
      this.stats.replaySegments++;
      this.stats.replayBytes += payload.length;
      r.sndNxt = end;
      sent++;
    }
    if (fin >= 0 && r.sndNxt === fin && fin < edge) {
      this.sendToServer(flow, r, flow.inSeq(fin), TCP_ACK | TCP_FIN, null);
      r.sndNxt = fin + 1;
    }
    this.count(r);
    if (r.ackPending) this.sendToServer(flow, r, flow.inSeq(r.sndNxt), TCP_ACK, null);
  }

  private readMore(flow: Flow, r: Rebuild, dataEnd: number): void {
    if (r.reading || flow.logId < 0) return;
    const start = r.sndNxt;
    const end = Math.min(dataEnd, start + this.options.readChunk);
    r.reading = true;
    this.log.read(flow.logId, start, end).then(
      (data) => {
        r.reading = false;
        if (flow.rec !== r || data.length === 0) return;
        r.data = data;
        r.dataStart = start;
        this.pump(flow, r);
      },
      (err: unknown) => {
        r.reading = false;
        if (flow.rec !== r) return;
        this.fail(flow, r, `log read failed: ${(err as Error).message}`);
      },
    );
  }

  private checkCaughtUp(flow: Flow, r: Rebuild): void {
    const now = this.now();
    const tl = r.timeline;
    if (!r.replayDone && r.sndUna >= r.target0) {
      r.replayDone = true;
      tl.replayed++;
      if (tl.replayed + tl.failed + tl.ended >= tl.connections) tl.replayDoneAt = now;
    }
    // The replay ends only when the new incarnation holds every byte the client was told is
    // delivered (`complete`): the gateway itself acks a rebuilding client (keepalives at
    // min(stable, right edge)), and a byte so acked that reached neither the new incarnation
    // by the client's own forwarded segment nor by the replay would never come again: the
    // client has forgotten it (issue 10 item 1, an upload 326 KB short after its rebuild).
    if (r.replayDone && flow.incSndMax >= r.cliAcked0 && r.sndUna >= flow.complete) {
      // Step 6: from here on only translation.
      tl.caughtUp++;
      if (tl.caughtUp + tl.failed + tl.ended >= tl.connections) tl.caughtUpAt = now;
      this.stats.caughtUp++;
      this.finish(flow, r);
      flow.rec = null;
      this.logger.debug({ flow: flow.describe(), ms: now - r.startedAt }, 'rebuild: caught up');
    }
  }

  private ended(flow: Flow, r: Rebuild, now: number): void {
    const tl = r.timeline;
    tl.ended++;
    const done = tl.caughtUp + tl.failed + tl.ended >= tl.connections;
    if (done && tl.handshakesDoneAt === 0) tl.handshakesDoneAt = now;
    if (done && tl.replayDoneAt === 0) tl.replayDoneAt = now;
    if (done && tl.caughtUpAt === 0) tl.caughtUpAt = now;
    this.finish(flow, r);
    flow.rec = null;
  }

  private finish(flow: Flow, r: Rebuild): void {
    if (r.phase === 'HANDSHAKE') this.handshaking--;
    this.uncount(flow, r);
    if (this.waiting.size > 0) this.wake();
    this.deactivate(flow);
    const svc = this.table.service(flow.serverIp, flow.serverPort);
    if (!svc) return;
    const sr = this.services.get(svc);
    if (sr && sr.down && this.countRecovering(svc) === 0 && sr.timeline?.listeningAt !== 0) this.serviceUp(sr);
  }

  /**
   * Zero-window probe (RFC 9293 §3.8.6.1): the new incarnation's window is closed with bytes
   * still to replay. Linux's persist probe is a pure ACK at snd_una − 1: out of the window, it
   * draws an ACK with the current window from the receiver, and puts no byte past the edge.
   */
  private probeIfClosed(flow: Flow, r: Rebuild, now: number): void {
    if (r.sndNxt !== r.sndUna || r.sndNxt < r.newRightEdge) return;
    const fin = flow.clientFin >= 0 && flow.stable > flow.clientFin ? flow.clientFin + 1 : -1;
    const end = fin >= 0 ? fin : flow.stable;
    if (r.sndNxt >= end) {
      r.probeAt = 0;
      return;
    }
    if (r.probeAt === 0) {
      r.probeAt = now + r.probeRto;
      return;
    }
    if (now < r.probeAt) return;
    this.stats.zeroWindowProbes++;
    this.sendToServer(flow, r, flow.inSeq(r.sndUna - 1), TCP_ACK, null);
    r.probeRto = Math.min(r.probeRto * 2, 2000);
    r.probeAt = now + r.probeRto;
  }

  private ackServerSoon(flow: Flow, r: Rebuild): void {
    if (r.ackPending) return;
    r.ackPending = true;
    queueMicrotask(() => {
      if (!r.ackPending || flow.rec !== r) return;
      this.sendToServer(flow, r, flow.inSeq(r.sndNxt), TCP_ACK, null);
    });
  }

  // ---- timers ------------------------------------------------------------------------

  /** Called every few ms by the gateway while anything is being recovered. */
  tick(): void {
    const now = this.now();
    const keepaliveMs = Math.max(this.options.keepaliveMs, Math.ceil((this.active.size * 1000) / this.options.keepaliveRate));
    for (const flow of this.active) {
      const r = recOf(flow);
      if (r === null) {
        this.deactivate(flow);
        continue;
      }
      const svc = this.table.service(flow.serverIp, flow.serverPort);
      if (!svc) continue;
      if (flow.state === 'CLOSED' && r.phase !== 'FAILED') {
        // Both ends closed while it was being recovered: nothing left to catch up. The new
        // incarnation's connection, if one was begun, is reset (in its window: the SYN's
        // seq + 1, or what it acknowledged), so it neither lingers nor keeps sending.
        this.resetIncarnation(flow, r);
        this.ended(flow, r, now);
        continue;
      }
      switch (r.phase) {
        case 'MASKED':
          if (now - r.maskedAt > this.options.maskDeadlineMs) {
            this.fail(flow, r, 'the service did not come back before the deadline');
            break;
          }
          if (now - r.lastAckAt >= keepaliveMs) this.ackClient(flow, now);
          break;
        case 'HANDSHAKE':
          if (now - r.startedAt > this.options.rebuildDeadlineMs) {
            this.fail(flow, r, 'no handshake with the new incarnation before the deadline');
            break;
          }
          if (now - r.lastAckAt >= keepaliveMs) this.ackClient(flow, now);
          if (now >= r.nextAt) this.sendSyn(flow, r, now);
          break;
        case 'REPLAY':
          if (now - r.lastAckAt >= keepaliveMs && flow.complete < Math.min(flow.stable, flow.rightEdge)) this.ackClient(flow, now);
          if (r.sndNxt > r.sndUna && now - r.lastProgress > r.rto) {
            // Go-back-N from the server's ack.
            this.stats.replayRetransmits++;
            r.sndNxt = r.sndUna;
            this.count(r);
            r.lastProgress = now;
            r.rto = Math.min(r.rto * 2, 2000);
            this.pump(flow, r);
          } else if (r.sndNxt === r.sndUna) {
            this.pump(flow, r);
          }
          this.probeIfClosed(flow, r, now);
          this.checkCaughtUp(flow, r);
          if (flow.rec !== r) break;
          if (flow.cliWindow === 0) {
            // The client stopped reading: the new incarnation waits on it, as the old one would.
            r.lastMoved = now;
          } else if (now - r.lastMoved > this.options.progressDeadlineMs) {
            this.stats.progressFailures++;
            this.fail(flow, r, r.replayDone
              ? `the new incarnation regenerated ${flow.incSndMax} of the ${r.cliAcked0} bytes the client has, and no more for ${this.options.progressDeadlineMs} ms`
              : `the replay made no progress for ${this.options.progressDeadlineMs} ms (${r.sndUna} of ${r.target0} bytes acknowledged, window edge ${r.newRightEdge})`);
          }
          break;
        case 'FAILED':
          if (now - r.maskedAt > 10_000) {
            this.deactivate(flow);
            this.onFailed?.(svc, flow);
          }
          break;
      }
    }
    for (const sr of this.services.values()) if (sr.queue.length > 0) this.startQueued(sr, now);
  }

  /**
   * The flow left the flow table (released by the south wrapper): its recovery ends now, not
   * at the mask deadline. No more keepalives (with numbers a new connection on the tuple does
   * not have), timers or replay; it leaves the `recovering` count; a connection begun with
   * the new incarnation is reset. A FAILED one just stops waiting to be forgotten.
   */
  forget(flow: Flow): void {
    const r = recOf(flow);
    if (r === null) {
      this.deactivate(flow);
      return;
    }
    this.stats.recoveriesForgotten++;
    if (r.phase === 'FAILED') {
      this.deactivate(flow);
      flow.rec = null;
      return;
    }
    this.resetIncarnation(flow, r);
    this.ended(flow, r, this.now());
  }

  /** Resets the new incarnation's connection, if one was begun (in its window: the SYN's seq + 1, or what it acknowledged). */
  private resetIncarnation(flow: Flow, r: Rebuild): void {
    if (r.phase === 'HANDSHAKE' && r.attempts > 0) this.sendRaw(flow, r.sidePort, seqAdd(flow.clientIsn, 1), 0, TCP_RST, 0, null, null);
    else if (r.phase === 'REPLAY') this.sendRaw(flow, r.sidePort, flow.inSeq(flow.incDelivered), 0, TCP_RST, 0, null, null);
  }

  get recovering(): number {
    return this.active.size;
  }

  /** The recovery's bounds, for `ftcp status` and /metrics (ms, counts, bytes). */
  limits(): Record<string, number> {
    const o = this.options;
    return {
      maskDeadlineMs: o.maskDeadlineMs, rebuildDeadlineMs: o.rebuildDeadlineMs, progressDeadlineMs: o.progressDeadlineMs,
      maxParallelHandshakes: o.maxParallel, replayInFlightBytes: o.replayInFlight, keepaliveRate: o.keepaliveRate,
    };
  }

  // ---- steps 1-2: tuple and spoofed SYN ----------------------------------------------

  private synRto(): number {
    return Math.min(1000, Math.max(this.options.synRtoMs, Math.round(3 * this.srtt)));
  }

  private replayRto(): number {
    return Math.min(2000, Math.max(this.options.replayRtoMs, Math.round(3 * this.srtt)));
  }

  private sendSyn(flow: Flow, r: Rebuild, now: number): void {
    r.attempts++;
    if (r.attempts === 1) r.synSentAt = now;
    if (r.attempts > this.options.portAttempts && r.sidePort === r.deadPort) this.movePort(flow, r);
    // Reap whatever the dead incarnation left on this tuple (ignored when nothing is there),
    // before the first SYN only: on a retransmission the RST would reset the new incarnation's
    // half-open connection when its SYN-ACK is merely late (a loaded gateway's queue can
    // hold it past synRtoMs). An orphan that survived the RST answers the SYN with a
    // challenge ACK, which handshakeSegment reaps at its ack.
    if (r.attempts === 1 && r.sidePort === r.deadPort) {
      this.sendRaw(flow, r.sidePort, flow.inSeq(flow.incDelivered), 0, TCP_RST, 0, null, null);
      this.stats.reapRsts++;
    }
    this.sendRaw(flow, r.sidePort, flow.clientIsn, 0, TCP_SYN, flow.clientSynWindow, flow.clientSynOptions, null);
    this.stats.synsSent++;
    r.nextAt = now + r.rto;
    r.rto = Math.min(r.rto * 2, 1000);
  }

  private movePort(flow: Flow, r: Rebuild): void {
    const svc = this.table.service(flow.serverIp, flow.serverPort);
    if (!svc) return;
    const [lo, hi] = this.options.portRange;
    for (let i = 0; i <= hi - lo; i++) {
      const port = this.nextPort;
      this.nextPort = port >= hi ? lo : port + 1;
      if (this.table.get(svc, flow.clientIp, port) !== undefined) continue;
      if (this.table.alias(svc, flow, port)) {
        r.sidePort = port;
        this.stats.portsMoved++;
        this.logger.info({ flow: flow.describe(), port }, 'rebuild: the original tuple is busy, moving to a fresh port');
        return;
      }
    }
  }

  // ---- packets the gateway makes ------------------------------------------------------

  /** ACK(min(stable, right edge)) to a masked client, with the server's last window edge. */
  private ackClient(flow: Flow, now: number): void {
    const r = recOf(flow);
    if (r !== null) r.lastAckAt = now;
    let limit = flow.rightEdge;
    if (flow.clientFin >= 0 && flow.clientFin <= limit) limit = flow.clientFin + 1;
    let a = Math.min(flow.stable, limit);
    if (a < flow.complete) a = flow.complete;
    flow.complete = a;
    if (flow.clientFin >= 0 && a > flow.clientFin && flow.serverFin >= 0 && flow.cliAcked > flow.serverFin && flow.state !== 'CLOSED') {
      // This ACK acknowledges the client's FIN, and the client had acked the server's: the
      // connection is over at both ends, nothing is left to rebuild. A client that closed
      // second (LAST_ACK) has no socket once this ACK arrives, and the next keepalive would
      // draw a RST from it (issue 10: RST from a download client that had every byte).
      flow.to('CLOSED', 'both FINs acked (the client\'s by the gateway while masked)', this.logger);
      flow.closedAt = now;
    }
    const o = segment(flow.serverIp, flow.clientIp, flow.serverPort, flow.clientPort, flow.outSeq(flow.sndMax), flow.inSeq(a), TCP_ACK,
      windowField(flow.rightEdge, a, flow.serverWscale));
    if (flow.tsOk) timestamps(o, flow.lastTsToClient, flow.cliTsVal);
    this.stats.keepaliveAcks++;
    emitSegment(this.emit, o);
  }

  /** A segment toward the new incarnation, as the client would send it. */
  private sendToServer(flow: Flow, r: Rebuild, seq: number, flags: number, payload: Uint8Array | null): void {
    r.ackPending = false;
    const ackOff = Math.min(flow.incSndMax, flow.cliAcked);
    const ack = seqAdd(r.newIsn, 1 + (ackOff % 0x100000000));
    const o = segment(flow.clientIp, flow.serverIp, r.sidePort, flow.serverPort, seq, ack, flags, absorbWindow(flow, ackOff));
    if (flow.tsOk) timestamps(o, flow.cliTsVal, r.newTsRecent);
    if (payload !== null) o.payload = payload;
    emitSegment(this.emit, o);
  }

  private sendRaw(flow: Flow, port: number, seq: number, ack: number, flags: number, window: number, options: Uint8Array | null, payload: Uint8Array | null): void {
    const o = segment(flow.clientIp, flow.serverIp, port, flow.serverPort, seq, ack, flags, window);
    if (options !== null) o.options = options;
    if (payload !== null) o.payload = payload;
    emitSegment(this.emit, o);
  }

  private resetClient(flow: Flow, seq: number): void {
    const o = segment(flow.serverIp, flow.clientIp, flow.serverPort, flow.clientPort, seq, 0, TCP_RST, 0);
    this.stats.rstsToClient++;
    emitSegment(this.emit, o);
  }

  /** The connection cannot be rebuilt: one RST each way, counted; the flow closes. */
  private fail(flow: Flow, r: Rebuild, why: string): void {
    if (r.phase === 'HANDSHAKE') this.handshaking--;
    this.uncount(flow, r);
    if (r.phase === 'REPLAY') {
      this.sendRaw(flow, r.sidePort, flow.inSeq(flow.incDelivered), 0, TCP_RST, 0, null, null);
    }
    r.phase = 'FAILED';
    r.maskedAt = this.now();
    r.timeline.failed++;
    this.stats.rebuildFailed++;
    this.resetClient(flow, flow.outSeq(flow.cliAcked));
    flow.to('CLOSED', `rebuild failed: ${why}`, this.logger);
    flow.closedAt = this.now();
    this.logger.error({ flow: flow.describe(), why }, 'rebuild failed: connection reset toward the client');
  }
}

/**
 * The window field the gateway advertises to a new incarnation, as the client, with its ack at
 * out-stream offset `ackOff`: room for the absorption (up to cliAcked, output the client
 * already has) plus the client's own window, but never more than the largest window the real
 * client ever offered. Linux sizes its segments from the peer's largest window (at most half
 * of it, tcp_bound_to_half_wnd): a client with a 2 KB buffer once told of 64 KB would get
 * full-MSS segments that never fit its real window, one sub-MSS segment per persist timeout.
 * Capped so, the new incarnation sees the windows the old one saw.
 */
export function absorbWindow(flow: Flow, ackOff: number): number {
  const cws = flow.clientWscale;
  const real = flow.cliWindow * 2 ** cws;
  const max = Math.max(flow.cliMaxWindow, flow.clientSynWindow, real);
  const bytes = Math.max(real, Math.min(max, Math.max(0, flow.cliAcked - ackOff) + real));
  return windowField(bytes, 0, cws);
}

/**
 * The engine's packets are described in this one repr, refilled for each (segment), and built
 * into the emit scratch behind its headroom (emitSegment, wire/headroom.ts): nothing is
 * allocated per packet, the timestamp option included (written in place by writeTcpPacket).
 */
const out: TcpPacketRepr = {
  src: 0, dst: 0, srcPort: 0, dstPort: 0, seq: 0, ack: 0, flags: 0, window: 0,
  options: undefined, payload: undefined, tsVal: undefined, tsEcr: undefined,
};

function segment(src: number, dst: number, srcPort: number, dstPort: number, seq: number, ack: number, flags: number, window: number): TcpPacketRepr {
  out.src = src;
  out.dst = dst;
  out.srcPort = srcPort;
  out.dstPort = dstPort;
  out.seq = seq;
  out.ack = ack;
  out.flags = flags;
  out.window = window;
  out.options = undefined;
  out.payload = undefined;
  out.tsVal = undefined;
  out.tsEcr = undefined;
  return out;
}

/** NOP NOP TS(tsVal, tsEcr), as the segments of the side the gateway speaks for carry it. */
function timestamps(o: TcpPacketRepr, tsVal: number, tsEcr: number): void {
  o.tsVal = tsVal >>> 0;
  o.tsEcr = tsEcr >>> 0;
}

function emitSegment(emit: Emit, o: TcpPacketRepr): void {
  const len = writeTcpPacket(o, emitScratch, EMIT_HEADROOM);
  o.payload = undefined; // the log's chunk is not kept alive by the repr
  o.options = undefined;
  emit(emitScratch, EMIT_HEADROOM, len);
}

/**
 * The out-stream offset of raw server sequence number `seq` in an incarnation whose ISN is
 * `isn`, taken near the known offset `near` (as Flow.outOffset does): exact while the two are
 * within 2^31 bytes, so it stays right past 2 GB, where a plain seqDiff from the ISN wraps.
 */
export function outOffsetNear(seq: number, isn: number, near: number): number {
  return near + seqDiff(seq, seqAdd(isn, 1 + (near % 0x100000000)));
}

/**
 * The TSval of a segment, or -1: Linux puts NOP NOP TS first on every non-SYN segment, so
 * that shape is read directly; anything else goes through the option parser.
 */
export function tsValOf(buf: Buffer, p: PacketInfo, scratch: TcpOptions): number {
  const o = p.optOff;
  if (p.optLen >= 12 && buf[o] === 1 && buf[o + 1] === 1 && buf[o + 2] === 8 && buf[o + 3] === 10) return buf.readUInt32BE(o + 4);
  if (p.optLen === 0 || !parseTcpOptions(buf, o, p.optLen, scratch) || scratch.tsOff < 0) return -1;
  return scratch.tsVal;
}
