/**
 * The south wrapper's stable-ACK gating (the rule is explained at the top of south.ts): the
 * held-ACK template and the lowered ack of a server segment, the log's stability upcall that
 * releases what was held (the ACK, a FIN), a FIN/RST released after the liveness verdict, and
 * a connection that stops being protected (passthrough, or lost by the log). Layered on the
 * flow lifecycle (south-flows.ts); the acceptability judgements (south-judge.ts) and the
 * per-packet entry (south.ts) build on it.
 */
import type { Flow } from '../flow/flow.js';
import type { Service } from '../flow/table.js';
import { seqAdd, type Seq } from '../wire/seq.js';
import { TCP_FIN, TCP_PSH, TCP_MIN_HEADER, TCP_OFF_SEQ, TCP_OFF_ACK, TCP_OFF_FLAGS, TCP_OFF_WINDOW, tcpHeaderLen } from '../wire/tcp.js';
import { IPV4_OFF_TOTAL_LENGTH } from '../wire/ipv4.js';
import { tcpDropSackBelow, tcpDropSackBetween, tcpSetAck, tcpSetWindow } from '../wire/rewrite.js';
import { TcpOptions, parseTcpOptions } from '../wire/tcp-options.js';
import { fillIpv4HeaderChecksum, fillTcpChecksum } from '../wire/checksum.js';
import { windowField } from '../wire/window.js';
import { EMIT_HEADROOM, emitCopy, emitScratch } from '../wire/headroom.js';
import { PacketInfo, parsePacket, Verdict } from '../wire/packet.js';
import { FORWARD, type WrapperVerdict } from './contract.js';
import { SouthFlows } from './south-flows.js';

export abstract class SouthStableAcks extends SouthFlows {
  /** Called at every advance of a connection's stable point (for traces and tests). */
  onStableAdvance: ((flow: Flow) => void) | null = null;
  /** Set while a held FIN/RST is processed again after an 'alive' verdict. */
  protected releasing = false;
  private readonly relInfo = new PacketInfo();
  private readonly sackOpts = new TcpOptions();

  /** The per-packet entry (south.ts), which a released FIN/RST goes through again. */
  abstract fromServer(svc: Service, buf: Buffer, p: PacketInfo): WrapperVerdict;

  // ---- the stable-ACK rule on a server segment ---------------------------------------

  /**
   * Keeps a pure-ACK copy of the server's latest header (seq after this segment, flags ACK
   * only, no payload), to be sent when stability reaches `acked`.
   */
  protected holdTemplate(flow: Flow, buf: Buffer, p: PacketInfo, acked: number, len: number, fin: number): void {
    const hdrLen = p.ipHdrLen + p.tcpHdrLen;
    let held = flow.held;
    if (held === null || held.length < hdrLen) held = flow.held = Buffer.allocUnsafe(Math.max(hdrLen, 120));
    buf.copy(held, 0, p.ipOff, p.ipOff + hdrLen);
    flow.heldLen = hdrLen;
    flow.heldAck = acked;
    held.writeUInt16BE(hdrLen, IPV4_OFF_TOTAL_LENGTH);
    if (len > 0 || fin) {
      const t = p.ipHdrLen;
      held.writeUInt32BE(seqAdd(p.seq, len + fin), t + TCP_OFF_SEQ);
      held[t + TCP_OFF_FLAGS] = held[t + TCP_OFF_FLAGS]! & ~(TCP_FIN | TCP_PSH);
      fillIpv4HeaderChecksum(held, 0);
    }
  }

  /**
   * Lowers the ack of server segment `p` (its own: `p.ack`) to in-stream offset `ackOff`, keeping
   * the right edge, and takes out the SACK blocks between the two (sackAbove).
   */
  protected rewriteAck(buf: Buffer, p: PacketInfo, flow: Flow, ackOff: number, rightEdge: number): void {
    tcpSetAck(buf, p.l4Off, flow.inSeq(ackOff));
    tcpSetWindow(buf, p.l4Off, windowField(rightEdge, ackOff, flow.serverWscale));
    if (flow.sackOk && p.optLen > 0) this.sackAbove(buf, p.l4Off, p.optOff, p.optLen, flow.inSeq(ackOff), p.ack);
  }

  /**
   * The server acked `serverAck`, the client is shown `shown` (below it): a SACK block of the
   * server's ending in (shown, serverAck] goes. The server reports there the duplicates it got
   * below its own ack (RFC 2883); the client, acked only to `shown`, would read them as bytes the
   * server holds out of order (RFC 2018), and resend them only at its retransmission timeout,
   * although the log lacks them (that is why its ack is lowered). Without them it resends the
   * bytes from `shown` at once (its duplicate acks, RACK). Blocks above the server's ack (its
   * out-of-order bytes, which the gateway forwarded and logged) stay; so does a D-SACK below
   * `shown`, which the client reads as the server does. The checksum follows (wire/rewrite.ts).
   */
  private sackAbove(buf: Buffer, tcpOff: number, optOff: number, optLen: number, shown: Seq, serverAck: Seq): void {
    const o = this.sackOpts;
    if (!parseTcpOptions(buf, optOff, optLen, o) || o.sackOff < 0) return;
    this.stats.sacksAboveStableRemoved += tcpDropSackBetween(buf, tcpOff, optOff, optLen, o.sackOff, o.sackCount, shown, serverAck);
  }

  // ---- stability upcall ------------------------------------------------------------

  /**
   * The log's stability upcall, first half (the gateway calls it, then the north side, then
   * releaseStable): the flow whose stable point advanced, or null when nothing moved.
   */
  stableAdvanced(id: number, stable: number): Flow | null {
    const flow = this.table.byLog(id);
    if (!flow || stable <= flow.stable) return null;
    flow.stable = stable;
    // stable(p) → received(p): what the log holds gap-free, the gateway has seen gap-free.
    // (Never lowered: a FIN at an offset below `received` must not pull it back, fuzz finding.)
    const upTo = flow.clientFin >= 0 && stable > flow.clientFin ? flow.clientFin : stable;
    if (upTo > flow.received) flow.received = upTo;
    if (this.onStableAdvance !== null) this.onStableAdvance(flow);
    return flow;
  }

  /** Second half: what was held for stability goes out (the held ACK, a held FIN) as far as `stable`. */
  releaseStable(flow: Flow): void {
    const stable = flow.stable;
    this.releaseHeldAck(flow, stable);
    const fin = flow.heldFin;
    if (fin !== null && stable >= flow.heldFinAck) {
      flow.heldFin = null;
      if (flow.heldFinAck > flow.complete) flow.complete = flow.heldFinAck;
      this.stats.heldReleased++;
      emitCopy(this.emit, fin, 0, fin.length);
    }
    this.checkClosed(flow);
  }

  private releaseHeldAck(flow: Flow, stable: number): void {
    const held = flow.held;
    if (held === null || flow.complete >= stable) return;
    const ackOff = flow.heldAck < stable ? flow.heldAck : stable;
    if (ackOff <= flow.complete) {
      // The client has this ack already (a later segment carried it): sent, it lowered
      // `complete` and was a duplicate ACK (fuzz finding).
      if (ackOff >= flow.heldAck) flow.held = null;
      return;
    }
    const t = held[0]! & 0x0f;
    const ipHdr = t * 4;
    const rightEdge = flow.heldAck + held.readUInt16BE(ipHdr + TCP_OFF_WINDOW) * 2 ** flow.serverWscale;
    // The template stays as held (a later release reads its window again): the ACK is built
    // in the emit scratch, behind its headroom (wire/headroom.ts), nothing allocated (a byte
    // loop: Buffer.copy of part of a buffer makes a view object per call).
    const out = emitScratch;
    const o = EMIT_HEADROOM;
    for (let i = 0; i < flow.heldLen; i++) out[o + i] = held[i]!;
    out.writeUInt32BE(flow.inSeq(ackOff), o + ipHdr + TCP_OFF_ACK);
    out.writeUInt16BE(windowField(rightEdge, ackOff, flow.serverWscale), o + ipHdr + TCP_OFF_WINDOW);
    const optLen = tcpHeaderLen(out, o + ipHdr) - TCP_MIN_HEADER;
    if (flow.sackOk && optLen > 0 && ackOff < flow.heldAck) {
      // Released short of the server's ack: its SACK blocks in between go (sackAbove).
      this.sackAbove(out, o + ipHdr, o + ipHdr + TCP_MIN_HEADER, optLen, flow.inSeq(ackOff), flow.inSeq(flow.heldAck));
    }
    fillTcpChecksum(out, o);
    if (flow.sackOk && optLen > 0 && ackOff < flow.heldAck) this.sackSent(held, ipHdr, optLen, flow.inSeq(ackOff));
    flow.complete = ackOff;
    if (ackOff >= flow.heldAck) flow.held = null;
    this.stats.heldReleased++;
    this.emit(out, o, flow.heldLen);
  }

  /**
   * The held template goes out again at the next advance of `stable`: the blocks at or below the
   * ack just sent (D-SACKs the client has now) are taken out of it. The server reported each
   * duplicate once, and a client counts every report (Linux: each D-SACK lowers undo_retrans,
   * and at zero its loss recovery is undone as spurious).
   */
  private sackSent(held: Buffer, ipHdr: number, optLen: number, sent: Seq): void {
    const so = this.sackOpts;
    const optOff = ipHdr + TCP_MIN_HEADER;
    if (parseTcpOptions(held, optOff, optLen, so) && so.sackOff >= 0) tcpDropSackBelow(held, ipHdr, optOff, optLen, so.sackOff, so.sackCount, sent);
  }

  /**
   * A server FIN/RST held for the liveness verdict came back 'alive': it goes through the
   * normal path now (already translated, if the connection was rebuilt) and out if kept.
   * Returns the verdict (for the gateway to count), or null for a copy that is not TCP (none is).
   */
  releaseHeld(svc: Service, pkt: Buffer): WrapperVerdict | null {
    const info = this.relInfo;
    if (parsePacket(pkt, 0, pkt.length, info) !== Verdict.IPV4_TCP) return null;
    this.releasing = true;
    try {
      const v = this.fromServer(svc, pkt, info);
      if (v === FORWARD) emitCopy(this.emit, pkt, 0, info.totalLen);
      return v;
    } finally {
      this.releasing = false;
    }
  }

  /**
   * `--on-log-failure passthrough`: the connection is no longer protected. What was held for
   * stability goes out at once, and from now on its packets pass as they are (translated, if
   * it was rebuilt before); nothing more is logged.
   */
  unprotect(flow: Flow): void {
    if (flow.unprotected) return;
    flow.unprotected = true;
    if (flow.held !== null) this.releaseHeldAck(flow, flow.heldAck);
    const fin = flow.heldFin;
    if (fin !== null) {
      flow.heldFin = null;
      emitCopy(this.emit, fin, 0, fin.length);
    }
  }

  /**
   * The log expired a connection (it lost its bytes, or an idle expiry was set on the store,
   * which the gateway never does). One still open here is not forgotten silently: it goes on
   * unprotected, counted and logged; a closed one is released.
   */
  onLogExpired(id: number): void {
    const flow = this.table.byLog(id);
    if (!flow) return;
    const svc = this.table.service(flow.serverIp, flow.serverPort);
    if (!svc) return;
    if (flow.state === 'CLOSED') {
      this.table.remove(svc, flow);
      this.forget(flow);
      this.stats.flowsExpired++;
      return;
    }
    this.stats.flowsLogExpired++;
    this.logger.error({ flow: flow.describe() }, 'the log expired an open connection: it goes on UNPROTECTED (a server crash will break it)');
    this.unprotect(flow);
  }
}
