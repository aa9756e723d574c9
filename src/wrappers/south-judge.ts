/**
 * The south wrapper's acceptability judgements (RFC 793 §3.3-3.9, RFC 5961): which segments the
 * other end would take, so that only those move the flow. The client's header and FIN rules,
 * SYNs on a known tuple, the handshake (SYN-ACK matching, its end, a RST refusing it), the
 * server's timestamps, out-of-window server segments and repeated server FINs. Layered on the
 * stable-ACK gating (south-stable.ts, itself on south-flows.ts); the per-packet entry
 * (south.ts) calls these.
 */
import { ADOPT_CLIENT, ADOPT_SERVER, Flow, isHalfOpen, maxWindow } from '../flow/flow.js';
import type { Service } from '../flow/table.js';
import { seqAdd, seqDiff, seqGt, type Seq } from '../wire/seq.js';
import { TCP_ACK, TCP_FIN, TCP_RST } from '../wire/tcp.js';
import type { PacketInfo } from '../wire/packet.js';
import { TcpOptions, parseTcpOptions, tsValOf } from '../wire/tcp-options.js';
import { applySynOptions } from '../flow/syn-options.js';
import { FORWARD, DropReason, type WrapperVerdict } from './contract.js';
import { SouthStableAcks } from './south-stable.js';
import { catchUpClient, catchUpServer } from './south-catchup.js';

export abstract class SouthJudge extends SouthStableAcks {
  protected readonly opts = new TcpOptions();

  // ---- client segments ---------------------------------------------------------------

  /** The client's window, largest window and TSval, from a segment the server would accept. */
  protected clientHeader(flow: Flow, buf: Buffer, p: PacketInfo): void {
    flow.cliWindow = p.window;
    const cw = p.window * 2 ** flow.clientWscale;
    if (cw > flow.cliMaxWindow) flow.cliMaxWindow = cw;
    if (flow.tsOk) {
      const ts = tsValOf(buf, p, this.opts);
      if (ts >= 0) flow.cliTsVal = ts;
    }
  }

  /**
   * A client FIN at in-stream offset `end`. Taken (logged, CLOSING) only where the server
   * takes it: on a segment inside its window (clientSeqOk: the segment is taken whole, its FIN
   * with it) and not before the gap-free prefix already forwarded (the server's rcv_nxt is past
   * it: an old FIN), and only in order: at the end of the gap-free prefix (`received`). A
   * FIN ahead of a gap is held out of order by the server too, and a forged one there was
   * taken while the server went on acking the genuine bytes past it (the fuzz: an ack of
   * 8,897 reached a client with 1,673 stable). A genuine FIN left out is sent again: its ack
   * needs the FIN in the log (stable never passes it before). A forged FIN taken here made
   * the log refuse every later byte and the client stay acked short for ever (issue 11
   * item 2). A FIN before bytes already seen past it is not the client's last either (one of
   * them is forged; the log held bytes past its FIN and `stable` passed it). Only the first
   * FIN counts.
   */
  protected clientFinSeen(flow: Flow, end: number): void {
    if (flow.clientFin >= 0) {
      if (end !== flow.clientFin) this.stats.clientFinIgnored++;
      return;
    }
    if (end !== flow.received) {
      this.stats.clientFinIgnored++;
      return;
    }
    flow.clientFin = end;
    if (flow.logId >= 0) this.log.appendFin(flow.logId, end);
    if (flow.state === 'ESTABLISHED') flow.to('CLOSING', 'client FIN', this.logger);
  }

  // ---- SYNs and the handshake -------------------------------------------------------

  /**
   * A SYN on a tuple whose flow is not over (RFC 5961 §4; RFC 793 §3.4):
   *  - the flow's own ISN: a retransmission (its SYN-ACK was lost past the gateway): forwarded.
   *  - ESTABLISHED or CLOSING, another ISN: never replaces the flow (that closed its log and
   *    the connection was not masked at the next crash: issue 11 item 3). Forwarded, counted:
   *    the server answers with a challenge ACK; a client that really restarted answers that
   *    with a RST at rcv_nxt, which closes the flow, and its next SYN finds it CLOSED. A masked
   *    or rebuilt connection's goes through the north wrapper (dropped while masked, translated
   *    after).
   *  - SYN_SEEN, another ISN: nothing is logged yet, but which SYN will the server answer?
   *    Linux keeps its first request (a SYN out of its window gets an ACK, one inside resets
   *    it), a spoofed SYN may come first or second: the flow keeps its SYN and remembers the
   *    latest other one (one slot); the SYN-ACK's ack says which the server took
   *    (synAckMatches), so neither order leaves the real connection unprotected.
   */
  protected synOnFlow(svc: Service, flow: Flow, buf: Buffer, p: PacketInfo): WrapperVerdict {
    const halfOpen = isHalfOpen(flow.state);
    if (p.seq === flow.clientIsn) return halfOpen ? FORWARD : FORWARD;
    if (halfOpen) {
      this.stats.synOnHalfOpen++;
      flow.altSyn = { isn: p.seq, options: Buffer.from(buf.subarray(p.optOff, p.optOff + p.optLen)), window: p.window };
      return FORWARD;
    }
    this.stats.synOnEstablished++;
    return FORWARD;
  }

  /**
   * A SYN-ACK for a half-open flow: does it answer the flow's SYN (or the other one it
   * remembers, which then becomes the flow's)? One answering neither is not the flow's
   * connection: forwarded (the client answers it with a RST), the flow left half-open.
   */
  private synAckMatches(flow: Flow, p: PacketInfo): boolean {
    const isn = seqAdd(p.ack, -1);
    const alt = flow.altSyn;
    flow.altSyn = null;
    if (isn === flow.clientIsn) return true;
    if (alt !== null && alt.isn === isn) {
      flow.clientIsn = alt.isn;
      flow.clientSynOptions = alt.options;
      flow.clientSynWindow = alt.window;
      return true;
    }
    flow.altSyn = alt;
    this.stats.synAckMismatch++;
    return false;
  }

  /**
   * A client segment of a half-open connection. The ACK of the server's ISN+1 at an acceptable
   * sequence number (the third ACK, or the first data when that ACK was lost: RFC 793 §3.9,
   * SYN-RECEIVED) ends the handshake: true, and the segment goes on as an established one's.
   * A RST at the client's ISN+1 (a client refusing a SYN-ACK it never asked for: the owner of a
   * spoofed address) releases the flow. Anything else passes, the flow unmoved: false.
   */
  protected handshakeEnd(svc: Service, flow: Flow, p: PacketInfo): boolean {
    const flags = p.flags;
    if (flags & TCP_RST) {
      if (p.seq === seqAdd(flow.clientIsn, 1)) this.halfOpenEnded(svc, flow, 'client RST');
      return false;
    }
    if (flow.state !== 'SYN_ACKED' || !(flags & TCP_ACK) || p.ack !== seqAdd(flow.serverIsn, 1)) return false;
    const off = seqDiff(p.seq, seqAdd(flow.clientIsn, 1));
    if (off < 0 || off > flow.rightEdge) return false; // outside the window the SYN-ACK offered
    this.established(svc, flow);
    return true;
  }

  /**
   * The server's SYN-ACK (or a retransmission) for a half-open flow: its ISN and options are
   * recorded and the flow moves to the half-open list's tail. Nothing is logged yet. A SYN-ACK
   * that does not ack the client's ISN+1 is not this handshake's (the client would refuse it).
   */
  protected synAcked(flow: Flow, buf: Buffer, p: PacketInfo): void {
    if (!this.synAckMatches(flow, p)) return;
    flow.serverIsn = p.seq;
    flow.serverSynOptions = Buffer.from(buf.subarray(p.optOff, p.optOff + p.optLen));
    applySynOptions(flow, buf, p.optOff, p.optLen);
    flow.rightEdge = p.window; // a SYN-ACK's window is never scaled
    flow.to('SYN_ACKED', 'server SYN-ACK', this.logger);
    this.table.touchHalfOpen(flow, this.now());
  }

  // ---- server segments ---------------------------------------------------------------

  /** The latest TSval toward the client (its keepalives carry it: a forged one would fail PAWS there). */
  protected serverTs(flow: Flow, buf: Buffer, p: PacketInfo): void {
    if (!flow.tsOk) return;
    const ts = tsValOf(buf, p, this.opts) as Seq;
    if (ts >= 0 && seqGt(ts, flow.lastTsToClient)) flow.lastTsToClient = ts;
  }

  /**
   * A server segment the client would not accept (RFC 793 §3.3, RFC 5961) changes nothing:
   * not `sndMax`, `delivered`, the FIN state or the window, and it starts no verdict hold and
   * marks no crash (a spoofed out-of-window FIN made a 35-byte flow show `delivered` 24.9 M,
   * `sndMax` 1.5e9, CLOSING and a FIN held for ever: issue 11 item 4). Returns -1 when the
   * segment is acceptable, else what to do with it:
   *  - a RST not at the client's rcv_nxt: dropped (the client would drop it or answer with a
   *    challenge ACK, whose only use, drawing an exact RST from a server that lost the
   *    connection, its stack does anyway at the client's next segment; and no RST from the
   *    server's side reaches a client unjudged: a crashing server's kernel sends them);
   *  - an ACK of bytes the client never sent: dropped (the client would: RFC 793 "ACK of
   *    something not yet sent", Linux SKB_DROP_REASON_TCP_ACK_UNSENT_DATA);
   *  - data or FIN out of the client's window, or a FIN where no FIN can be: forwarded (the
   *    client answers with a duplicate ACK, which a server whose ACK was lost needs), its
   *    ack lowered to `stable` when beyond it (the stable-ACK rule holds for every segment);
   *    a pure ACK beyond `stable` is dropped instead (it would move nothing).
   */
  protected serverUnacceptable(flow: Flow, buf: Buffer, p: PacketInfo): WrapperVerdict | -1 {
    const flags = p.flags;
    const o = flow.outOffset(p.seq);
    if (flags & TCP_RST) {
      if (flow.serverRstOk(o)) return -1;
      this.stats.serverRstIgnored++;
      return DropReason.SERVER_RST_OUT_OF_WINDOW;
    }
    const acked = flags & TCP_ACK ? flow.inOffset(p.ack) : -1;
    if (acked > flow.ackLimit()) {
      this.stats.serverAckUnsent++;
      return DropReason.SERVER_ACK_UNSENT;
    }
    const len = p.payloadLen;
    const fin = flags & TCP_FIN ? 1 : 0;
    if (flow.serverSeqOk(o, o + len + fin, this.events.rebuilding(flow))) {
      if (!fin) return -1;
      // A FIN sits after every byte the server sent: not before what the client acked, not
      // past its window; once seen, only at the same offset (finRepeated judges the copies).
      const at = o + len;
      if (flow.serverFin < 0 ? at >= flow.cliAcked && at <= flow.cliEdge() + 2 ** flow.clientWscale : at === flow.serverFin) return -1;
      this.stats.serverFinIgnored++;
    } else if (fin) {
      this.stats.serverFinIgnored++;
    } else {
      this.stats.serverOutOfWindow++;
    }
    if (acked <= flow.stable) return FORWARD;
    if (len === 0 && !fin) return DropReason.SERVER_OUT_OF_WINDOW;
    this.rewriteAck(buf, p, flow, flow.stable, acked + p.window * 2 ** flow.serverWscale);
    return FORWARD;
  }

  /**
   * A retransmission of the server's FIN that the client acked, or that was forwarded less
   *    than `finEchoMs` ago: the verdict hold delays a FIN by a heartbeat or more, often past
   *    the server's FIN retransmission timer, so the copy came second; forwarded, the client
   *    (TIME_WAIT) acks it again, the server has closed on the first ACK and answers with a
   *    RST, which reached the client (issue 10 item 1). A FIN really lost on the way is sent
   *    again by the server after its backed-off timeout and passes then. Dropped, counted.
   * (Anything after both FINs are acked is dropped earlier: afterCloseDropped.)
   */
  protected finRepeated(flow: Flow, p: PacketInfo): boolean {
    if (flow.serverFin < 0 || flow.outOffset(p.seq) + p.payloadLen !== flow.serverFin) return false;
    if (flow.cliAcked <= flow.serverFin && this.now() - flow.serverFinAt >= this.options.finEchoMs) return false;
    this.stats.finRetransmitsDropped++;
    return true;
  }

  // ---- a connection adopted from the log (src/gateway/adopt.ts) ---------------------
  //
  // The log holds the in-stream (`stable`, the client's FIN) and the SYNs; a restarted gateway
  // learns the rest from each side's first segment, checked (seed 003: the client's
  // acknowledgement numbers are the truth). W_s, W_c: the largest window the server, the
  // client can offer (0xffff << its shift). Until a side is learnt its segments are judged
  // here; once learnt, by the rules above. The stable-ACK rule holds from the first packet
  // (`complete` starts at 0 and `stable` is the log's: no ack beyond it reaches the client).

  /**
   * The first client segment of an adopted flow: its seq (its snd_una or later) must lie in
   * [stable − W_s, stable + W_s] (it sent at most a window past what the server acked, and
   * the dead gateway never acked it beyond `stable`), it must carry an ACK, and that ack (its
   * rcv_nxt) must follow the server's ISN and, once the server side is learnt, lie within
   * W_c of what the server sent. Learnt: `cliAcked` (and `sndMax` at least that), the
   * window edge its segment shows, the TSval the client echoes (`lastTsToClient`). Returns
   * -1 when the segment may go on, else ADOPT_UNCHECKED (dropped, counted).
   */
  protected adoptClient(flow: Flow, buf: Buffer, p: PacketInfo): WrapperVerdict | -1 {
    if (!(flow.adopting & ADOPT_CLIENT)) return -1;
    const ws = maxWindow(flow.serverWscale);
    const off = flow.inOffset(p.seq);
    if (!(p.flags & TCP_ACK) || off < flow.stable - ws || off > flow.stable + ws) return this.unchecked();
    const learntServer = !(flow.adopting & ADOPT_SERVER);
    const acked = learntServer ? flow.outOffset(p.ack) : seqDiff(p.ack, seqAdd(flow.serverIsn, 1));
    if (acked < 0 || (learntServer && acked > flow.sndMax + maxWindow(flow.clientWscale))) return this.unchecked();
    flow.adopting &= ~ADOPT_CLIENT;
    this.stats.adoptLearntClient++;
    if (acked > flow.cliAcked) flow.cliAcked = acked;
    if (acked > flow.sndMax) flow.sndMax = acked;
    const end = off + p.payloadLen;
    if (end > flow.maxRightEdge) flow.maxRightEdge = end; // the server offered at least what the client sent
    if (flow.tsOk && p.optLen > 0 && parseTcpOptions(buf, p.optOff, p.optLen, this.opts) && this.opts.tsOff >= 0) {
      flow.lastTsToClient = this.opts.tsEcr; // the latest TSval it got from the server, in its numbering
      catchUpClient(flow, this.opts.tsVal);
    }
    return -1;
  }

  /**
   * The first server segment of an adopted flow (after the north side translated it, for a
   * rebuilt connection): it must carry an ACK, that ack (its rcv_nxt) must lie in
   * [stable − W_s, stable + W_s] (it acks at most a window past what the client sent, which
   * the log has up to `stable`), and its seq, once the client side is learnt, within W_c of
   * what the client acked (else at or after the ISN). Learnt: `sndMax` (its end),
   * `delivered` (its ack), `high` (the client sent what the server acks), and its TSval. The
   * window, by the rules that follow. A new incarnation of a rebuild is the gateway's own: not
   * judged here (its output starts again at offset 0).
   */
  protected adoptServer(flow: Flow, buf: Buffer, p: PacketInfo): WrapperVerdict | -1 {
    if (!(flow.adopting & ADOPT_SERVER) || this.events.rebuilding(flow)) return -1;
    const ws = maxWindow(flow.serverWscale);
    if (!(p.flags & TCP_ACK)) return this.unchecked();
    const acked = flow.inOffset(p.ack);
    if (acked < flow.stable - ws || acked > flow.stable + ws) return this.unchecked();
    const learntClient = !(flow.adopting & ADOPT_CLIENT);
    const o = learntClient ? flow.outOffset(p.seq) : seqDiff(p.seq, seqAdd(flow.serverIsn, 1));
    const wc = maxWindow(flow.clientWscale);
    const end = o + p.payloadLen + (p.flags & TCP_FIN ? 1 : 0);
    if (o < -1 || (learntClient && (o > flow.cliAcked + wc || end < flow.cliAcked - wc))) return this.unchecked();
    flow.adopting &= ~ADOPT_SERVER;
    this.stats.adoptLearntServer++;
    if (end > flow.sndMax) flow.sndMax = end;
    if (end > flow.cliRightEdge) flow.cliRightEdge = end; // the client offered at least what the server sent
    if (acked > flow.delivered) flow.delivered = acked;
    if (acked - 1 > flow.high) flow.high = acked - 1;
    catchUpServer(flow, acked);
    if (flow.tsOk) {
      const ts = tsValOf(buf, p, this.opts);
      if (ts >= 0) flow.lastTsToClient = ts as Seq;
    }
    return -1;
  }

  /**
   * A server segment of an adopted connection the gateway's adoption gate watches (`flow.gate`):
   * the gate drops it while the server's incarnation is unknown, and takes a RST on probation as
   * the word of a server process that does not know the connection (it is rebuilt). So a RST is
   * judged first, as the client would (RFC 5961 §3.2: at its rcv_nxt, [cliAcked, sndMax]): one
   * that fails, or that comes before the client's side is learnt (its rcv_nxt unknown: a kernel
   * resets only in answer to a segment, and the client's reach the server through here first), is
   * dropped and counted (SERVER_RST_OUT_OF_WINDOW): a spoofed or stale RST forces no rebuild.
   */
  protected gatedServer(flow: Flow, p: PacketInfo): WrapperVerdict | -1 {
    if (p.flags & TCP_RST && (flow.adopting & ADOPT_CLIENT || !flow.serverRstOk(flow.outOffset(p.seq)))) {
      this.stats.serverRstIgnored++;
      return DropReason.SERVER_RST_OUT_OF_WINDOW;
    }
    return this.events.gated(flow, p, false);
  }

  private unchecked(): WrapperVerdict {
    this.stats.adoptUnchecked++;
    return DropReason.ADOPT_UNCHECKED;
  }
}
