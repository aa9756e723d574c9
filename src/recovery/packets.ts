/**
 * The packets the recovery engine makes, in one place: the keepalive ACK to a masked client,
 * segments toward a new incarnation as the client would send them (the handshake's, the
 * replay's, the gateway's own ACKs), raw segments on a chosen port (SYNs, reaping RSTs), and
 * the RST to a client. Then the two ways a rebuild stops early: a coded failure, which sends
 * the last of them, and the end of its connection.
 */
import type { Flow } from '../flow/flow.js';
import { writeTcpPacket, type TcpPacketRepr } from '../wire/repr.js';
import { EMIT_HEADROOM, emitScratch, type Emit } from '../wire/headroom.js';
import { windowField } from '../wire/window.js';
import { seqAdd, type Seq } from '../wire/seq.js';
import { TCP_ACK, TCP_RST } from '../wire/tcp.js';
import { RebuildMachine, northOf, recOf, replaying, type FailureCode, type Rebuild } from './rebuild.js';

/** NOP NOP TS(val, ecr): the timestamp option every segment the gateway makes carries when both SYNs had it. */
export const TS_OPT_LEN = 12;

export abstract class RecoveryPackets extends RebuildMachine {
  /** ACK(min(stable, right edge)) to a masked client, with the server's last window edge. */
  protected ackClient(flow: Flow, now: number): void {
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
  protected sendToServer(flow: Flow, r: Rebuild, seq: Seq, flags: number, payload: Uint8Array | null): void {
    r.ackPending = false;
    // Not past a gap in the output compared below acked0 (verify.ts): the hole comes again.
    const ackOff = Math.min(northOf(flow).incSndMax, flow.cliAcked, northOf(flow).cmp?.ackLimit() ?? Infinity);
    const ack = seqAdd(r.newIsn, 1 + (ackOff % 0x100000000));
    const o = segment(flow.clientIp, flow.serverIp, r.sidePort, flow.serverPort, seq, ack, flags, absorbWindow(flow, ackOff));
    if (flow.tsOk) timestamps(o, flow.cliTsVal, r.newTsRecent);
    if (payload !== null) o.payload = payload;
    emitSegment(this.emit, o);
  }

  protected sendRaw(flow: Flow, port: number, seq: Seq, ack: Seq, flags: number, window: number, options: Uint8Array | null, payload: Uint8Array | null): void {
    const o = segment(flow.clientIp, flow.serverIp, port, flow.serverPort, seq, ack, flags, window);
    if (options !== null) o.options = options;
    if (payload !== null) o.payload = payload;
    emitSegment(this.emit, o);
  }

  protected resetClient(flow: Flow, seq: Seq): void {
    const o = segment(flow.serverIp, flow.clientIp, flow.serverPort, flow.clientPort, seq, 0, TCP_RST, 0);
    this.stats.rstsToClient++;
    emitSegment(this.emit, o);
  }

  // ---- how a rebuild stops early --------------------------------------------------------

  /** The connection cannot be rebuilt: one RST each way, counted under `code`; the flow closes. */
  protected fail(flow: Flow, r: Rebuild, code: FailureCode, why: string): void {
    const was = r.phase;
    if (!this.enter(flow, r, 'FAILED', why, code)) return;
    if (replaying(was)) {
      this.sendRaw(flow, r.sidePort, flow.inSeq(northOf(flow).incDelivered), 0 as Seq, TCP_RST, 0, null, null);
    }
    this.resetClient(flow, flow.outSeq(flow.cliAcked));
    this.dropVerification(flow);
    flow.to('CLOSED', `rebuild failed: ${why}`, this.logger);
    flow.closedAt = this.now();
    this.logger.error({ flow: flow.describe(), code, why }, 'rebuild failed: connection reset toward the client');
  }

  /** The connection ended (both ends closed, or it left the flow table) while it was recovered. */
  protected ended(flow: Flow, r: Rebuild, why: string): void {
    this.enter(flow, r, 'ENDED', why);
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
