/**
 * The south wrapper: the network-facing half of ftcp (DESIGN.md §3, seed 001 figs. 13-15).
 *
 *   client ──▶ fromClient: SYN → new half-open flow (at --max-half-open the oldest half-open one is
 *              evicted); the ACK of the server's ISN+1 (third ACK or first data) → ESTABLISHED,
 *              log.open(metadata); data → log (bytes not yet stable); FIN → log its offset
 *   client ◀── fromServer: SYN-ACK (acking the client's ISN+1) → SYN_ACKED, its ISN and options
 *              recorded; ACK beyond `stable` → lowered (segment
 *              carries data or FIN; the window's right edge is kept) or held (pure ACK),
 *              its SACK blocks between the two acks removed;
 *   onStable:  the log reports more stability → the held ACK goes out, acking no more than
 *              `stable` (the latest server header: window, timestamps).
 *
 * The invariant kept at every instant: an ack reaching the client never exceeds `stable`
 * (`complete ≤ stable`), so every byte the client may forget is in the log.
 *
 * Everything here runs per packet: no allocation on the data path except the slice handed
 * to the log (which copies it), and the rare held-ACK template.
 *
 * The wrapper in layers, each file readable top to bottom (as src/recovery/ is):
 *   south-config.ts  SouthEvents (what the gateway is told), SouthOptions, SouthStats
 *   south-flows.ts   the flow lifecycle: log open, pending bytes, caps, release, sweep
 *   south-stable.ts  the stable-ACK gating: held ACK template, lowered acks, the stability
 *                    upcall and the releases of held ACKs and FINs
 *   south-judge.ts   acceptability (RFC 793/5961): SYNs, the handshake, FIN rules, windows,
 *                    and the checks of an adopted connection's first segments (adopt*)
 *   south-catchup.ts an adopted connection catching up after a gateway restart: no stale
 *                    timestamp echo or D-SACK of the server's reaches the client
 *   south.ts         this file: SouthWrapper, the per-packet entry (fromClient, fromServer)
 */
import { u32ToIp } from '../wire/addr.js';
import { Flow, isHalfOpen } from '../flow/flow.js';
import type { Service } from '../flow/table.js';
import { seqAdd } from '../wire/seq.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../wire/tcp.js';
import type { PacketInfo } from '../wire/packet.js';
import { FORWARD, DropReason, type Wrapper, type WrapperVerdict } from './contract.js';
import { SouthJudge } from './south-judge.js';
import { catchUp } from './south-catchup.js';

export { NO_SOUTH_EVENTS, SouthStats, defaultSouthOptions, type SouthEvents, type SouthOptions } from './south-config.js';

export class SouthWrapper extends SouthJudge implements Wrapper {
  // ---- client → server -------------------------------------------------------------

  fromClient(svc: Service, buf: Buffer, p: PacketInfo): WrapperVerdict {
    const found = this.table.get(svc, p.src, p.srcPort);
    const v = this.clientSegment(svc, found, buf, p);
    // An adopted connection whose server may have restarted meanwhile (the gateway's adoption
    // gate): its bytes are logged as any, but nothing passes until that is known.
    if (v !== FORWARD || found === undefined || found.gate === null) return v;
    const g = this.events.gated(found, p, true);
    return g === -1 ? FORWARD : g;
  }

  private clientSegment(svc: Service, found: Flow | undefined, buf: Buffer, p: PacketInfo): WrapperVerdict {
    const flags = p.flags;
    let flow = found;
    if (flags & TCP_SYN && !(flags & TCP_RST)) {
      // (A segment with both SYN and RST is a RST: its receiver checks RST first, RFC 793
      // §3.9, Linux tcp_validate_incoming; taken as a SYN it passed unjudged, fuzz finding.)
      if (flags & TCP_ACK) {
        // A SYN-ACK toward the server port: simultaneous open, not a client of the service.
        this.stats.simultaneousOpen++;
        return FORWARD;
      }
      if (flow !== undefined && flow.state !== 'CLOSED') return this.synOnFlow(svc, flow, buf, p);
      if (!flow || flow.clientIsn !== p.seq || flow.state === 'CLOSED') {
        if (flow) {
          // TIME_WAIT reuse: the connection is over at both ends (both FINs acked, a RST its
          // receiver took, a failed rebuild); whether the server takes the new SYN is its own
          // decision (Linux: an ISN after the old rcv_nxt, or a newer timestamp), and the
          // SYN-ACK's ack tells the flow which connection it is.
          this.stats.flowsReplaced++;
          this.release(svc, flow, 'replaced by a new SYN (the old connection was over)');
        }
        this.roomForHalfOpen();
        if (this.table.size >= this.options.maxFlows) {
          this.overCap(p);
          return FORWARD;
        }
        const options = Buffer.from(buf.subarray(p.optOff, p.optOff + p.optLen));
        flow = new Flow(p.src * 65536 + p.srcPort, p.src, p.srcPort, p.dst, p.dstPort, p.seq, options, this.now());
        flow.clientSynWindow = p.window;
        flow.unprotected = this.passthrough;
        this.table.add(svc, flow);
        this.table.touchHalfOpen(flow, flow.created);
        this.stats.flowsOpened++;
      }
      return FORWARD;
    }
    if (!flow) {
      // A connection that predates the gateway, was over maxFlows, or was lost by the log: it
      // cannot be protected (its SYN options and ISNs, which a rebuild needs, are unknown).
      this.unknownMidstream(p);
      return FORWARD;
    }
    flow.lastActivity = this.now();
    if (isHalfOpen(flow.state) && !this.handshakeEnd(svc, flow, p)) return FORWARD;

    if (flow.unprotected) {
      this.clientHeader(flow, buf, p);
      this.unprotectedEnd(flow, p, true);
      return FORWARD;
    }

    if (flow.adopting !== 0) {
      // Adopted from the log: the client's numbers are checked before they are trusted (south-judge.ts).
      const v = this.adoptClient(flow, buf, p);
      if (v !== -1) return v;
    }
    const off = flow.inOffset(p.seq);
    if (flags & TCP_RST) {
      // RFC 5961 §3.2: only a RST the server would take (at its rcv_nxt) ends the connection.
      // Any other is forwarded, the flow kept: the server drops it or answers with a challenge
      // ACK, which a client that really lost the connection answers with a RST at rcv_nxt.
      if (flow.clientRstOk(off)) {
        this.stats.flowsReset++;
        flow.to('CLOSED', 'client RST', this.logger);
        flow.closedAt = this.now();
      } else {
        this.stats.clientRstIgnored++;
      }
      return FORWARD;
    }

    const len = p.payloadLen;
    const end = off + len;
    if (!flow.clientSeqOk(off, end)) {
      // Not acceptable to the server (RFC 793 §3.3): it answers with an ACK and drops it. So
      // does the gateway's view: no offset, FIN or ack moves, nothing is logged.
      this.stats.clientOutOfWindow++;
      return FORWARD;
    }
    this.clientHeader(flow, buf, p);

    if (flags & TCP_ACK) {
      const acked = flow.outOffset(p.ack);
      if (acked > flow.cliAcked && acked <= flow.sndMax) flow.cliAcked = acked;
      const edge = acked + p.window * 2 ** flow.clientWscale;
      if (acked <= flow.sndMax && edge > flow.cliRightEdge) flow.cliRightEdge = edge;
    }

    if (len > 0 || flags & TCP_FIN) {
      // The whole segment: one that starts inside the server's window (clientSeqOk) is taken
      // whole or not at all (Linux tcp_data_queue queues an in-order segment past the right
      // edge whole; 6.x drops it whole only when its receive queue is not empty). Trimmed at
      // the edge the gateway last saw, the bytes of a segment sent up to the edge the client
      // was told (a window the gateway rewrote, rounded up to the scale unit) were forwarded,
      // taken and acked by the server, but never logged: the log had a gap of 840 bytes that
      // only a retransmission could fill, and the client, its acks held at the gap, only ever
      // resent its first unacked segment, below it: the upload stalled for good (CI, 1 run in 4
      // under load).
      if (end > flow.stable) {
        const start = off > flow.stable ? off : flow.stable;
        if (end > start) {
          const data = buf.subarray(p.payloadOff + (start - off), p.payloadOff + (end - off));
          if (flow.logId >= 0) {
            this.log.append(flow.logId, start, data);
            this.stats.bytesLogged += data.length;
          } else {
            this.keepPending(flow, start, data);
          }
        }
      }
      if (off <= flow.received && end > flow.received) flow.received = end;
      if (end > flow.high) flow.high = end;
      if (flags & TCP_FIN) this.clientFinSeen(flow, end);
    }
    this.checkClosed(flow);
    return FORWARD;
  }

  // ---- server → client -------------------------------------------------------------

  fromServer(svc: Service, buf: Buffer, p: PacketInfo): WrapperVerdict {
    const flags = p.flags;
    const flow = this.table.get(svc, p.dst, p.dstPort);
    if (!flow) {
      this.stats.unknownFlowPackets++;
      return FORWARD;
    }
    if (flow.gate !== null) {
      // An adopted connection whose server may have restarted meanwhile: judged first (south-judge.ts).
      const v = this.gatedServer(flow, p);
      if (v !== -1) return v;
    }
    if (!this.releasing && flow.state === 'CLOSED' && flow.finsAcked()) {
      // Over at the client's end: it acked the server's FIN and was acked its own. Whatever a
      // server sends now (a rebuilt incarnation's regenerated output, its SYN-ACK, a FIN
      // again, the RST of a socket that closed) can only reach a client socket that is gone
      // (one that closed second has none) and draw a RST from it (issue 10 item 1).
      this.stats.afterCloseDropped++;
      return DropReason.AFTER_CLOSE;
    }
    if (flags & TCP_SYN && !(flags & TCP_RST)) {
      // (SYN+RST is judged as a RST below: the client checks RST first.)
      if (isHalfOpen(flow.state)) {
        if (flags & TCP_ACK) this.synAcked(flow, buf, p);
        return FORWARD;
      }
      // A synchronized flow: a retransmitted SYN-ACK (the server missed the client's ACK)
      // passes, the client answers it with that ACK. Any other SYN (an ack beyond the
      // handshake's, data, a FIN) is nothing a client takes (RFC 5961 §4) and was forwarded
      // with its ack unjudged, past `stable` (the fuzz: an ack of 19,241 with 5,925 stable).
      if (flags & TCP_ACK && p.ack === seqAdd(flow.clientIsn, 1) && p.payloadLen === 0 && !(flags & TCP_FIN)) return FORWARD;
      this.stats.serverSynDropped++;
      return DropReason.SERVER_SYN;
    }
    flow.lastActivity = this.now();
    if (isHalfOpen(flow.state)) {
      if (flags & TCP_RST && this.events.serviceDown(svc)) {
        // A SYN reached the dead server's host while nothing listened: the client will
        // send its SYN again, by which time the service is back.
        return DropReason.SYN_RST_WHILE_DOWN;
      }
      // The server refused the connection (its RST acks the client's ISN+1): nothing more to keep.
      if (flags & TCP_RST && flags & TCP_ACK && p.ack === seqAdd(flow.clientIsn, 1)) this.halfOpenEnded(svc, flow, 'server RST');
      return FORWARD;
    }
    if (flow.unprotected) {
      this.serverTs(flow, buf, p);
      this.unprotectedEnd(flow, p, false);
      return FORWARD;
    }
    if (flow.adopting !== 0) {
      const v = this.adoptServer(flow, buf, p);
      if (v !== -1) return v;
    }
    {
      // A held FIN/RST released after the verdict is judged again: the flow may have moved
      // on while it was held (or been replaced on the same tuple); judged only on arrival, a
      // released copy set `delivered` to 2^31 + 12,516 on a closing flow (the fuzz).
      const bad = this.serverUnacceptable(flow, buf, p);
      if (bad !== -1) return bad;
    }
    // An adopted flow catching up: no stale echo or D-SACK reaches the client (south-catchup.ts).
    if (flow.adopted) catchUp(flow, buf, p, this.opts, this.stats);
    this.serverTs(flow, buf, p);
    this.events.serverAccepted(flow, p);
    if (flags & TCP_FIN && !(flags & TCP_RST) && !this.releasing && this.finRepeated(flow, p)) return DropReason.FIN_RETRANSMIT;
    if (flags & (TCP_FIN | TCP_RST) && !this.releasing && this.events.finOrRst(svc, flow, buf, p)) {
      return DropReason.HELD_FOR_VERDICT; // held for the liveness verdict, or suppressed (the process died)
    }

    if (flags & TCP_RST) {
      // The verdict said alive (or no crash detection is configured): the server's own abort.
      this.stats.flowsReset++;
      flow.to('CLOSED', 'server RST', this.logger);
      flow.closedAt = this.now();
      return FORWARD;
    }

    const len = p.payloadLen;
    const fin = flags & TCP_FIN ? 1 : 0;
    if (len > 0 || fin) {
      const o = flow.outOffset(p.seq);
      const e = o + len + fin;
      if (e > flow.sndMax) flow.sndMax = e;
      if (fin && flow.serverFin < 0) {
        flow.serverFin = o + len;
        flow.serverFinAt = this.now();
        if (flow.state === 'ESTABLISHED') flow.to('CLOSING', 'server FIN', this.logger);
      }
    }
    if (!(flags & TCP_ACK)) return FORWARD;

    const acked = flow.inOffset(p.ack);
    if (acked > flow.delivered) flow.delivered = acked;
    const shift = flow.serverWscale;
    const rightEdge = acked + p.window * 2 ** shift;
    flow.rightEdge = rightEdge;
    if (rightEdge > flow.maxRightEdge) flow.maxRightEdge = rightEdge;
    if (rightEdge - acked > flow.srvMaxWindow) flow.srvMaxWindow = rightEdge - acked;

    const limit = flow.stable;
    if (acked <= limit) {
      if (acked > flow.complete) flow.complete = acked;
      if (flow.held !== null && acked >= flow.heldAck) flow.held = null;
      this.checkClosed(flow);
      return FORWARD;
    }

    // The server acknowledges bytes the log does not hold stably yet.
    if (fin) {
      // A FIN goes whole, later: had the client acked it while its own FIN was still
      // unacked, the server would close for good and answer the client's retransmitted
      // FIN with a RST. Held, the server stays in LAST_ACK until the FIN is stable.
      flow.heldFin = Buffer.from(buf.subarray(p.ipOff, p.ipOff + p.totalLen));
      flow.heldFinAck = acked;
      this.stats.finsHeld++;
      return DropReason.FIN_HELD_UNSTABLE;
    }
    this.holdTemplate(flow, buf, p, acked, len, fin);
    if (len > 0 || fin || limit > flow.complete) {
      // (A pure ACK too when the client was not told `stable` yet: it advanced while no ACK
      // was held, and this one would wait for the next advance, which a gap in the log may
      // never bring while the client, told nothing, resends only what is below `stable`.)
      // Data or FIN must go now: lower its ack to `stable`, keep the window's right edge.
      this.rewriteAck(buf, p, flow, limit, rightEdge);
      if (limit > flow.complete) flow.complete = limit;
      this.stats.acksLowered++;
      return FORWARD;
    }
    this.stats.acksHeld++;
    return DropReason.ACK_HELD_UNSTABLE;
  }
}
