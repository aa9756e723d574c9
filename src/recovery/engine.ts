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
 *   bytes from ISN_new, and, if deterministic, regenerates the same bytes at the same offsets
 *   (checked, step 5; the offsets frozen at the crash, step 0):
 *
 *     0 ──────────── acked0 ═══════════════ end0 ──────────▶
 *     │ absorbed: acked by the  │ forwarded again (the    │ new output
 *     │ gateway, dropped;       │ client may lack them):  │
 *     │ compared by block hash  │ the ORIGINAL bytes sent,│
 *     │ with the digest         │ compared byte for byte  │
 *     acked0 = cliAcked at the crash, end0 = sndMax at the crash (the digest, DESIGN.md §7b)
 *     seq_client = seq_new + (ISN_old − ISN_new)          (Translation.seqDelta)
 *
 * The protocol, per connection (one `Rebuild` on the flow, its phase in capitals; the phase
 * moves only forward, except that a crash at any step starts again at step 0 — step 7; the
 * phases and their transitions are drawn in rebuild.ts):
 *
 *   0. MASKED     the incarnation died. Server FIN/RST/retransmissions dropped; client data
 *                 logged (south wrapper) and dropped; ACK(min(stable, rightEdge)) to the
 *                 client at each stable advance and every `keepaliveMs`. The digest of what
 *                 the client may have is frozen (acked0, end0; verify.ts freezeDigest).
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
 *   5. ABSORB     absorption, from the moment the replay is acked through its target (it began
 *                 with the replay: ABSORB marks that only it, and the rest of the replay, remain):
 *                 regenerated output ending at or below cliAcked is acked to the server by the
 *                 gateway and dropped; the rest is forwarded (translated). Every regenerated
 *                 byte is first compared by offset (verify.ts, whatever the segmentation):
 *                 below acked0 hashed into blocks against the digest's (acks toward the new
 *                 incarnation held at a gap there, so it retransmits the hole); in
 *                 [acked0, end0) byte for byte, and the client is sent the ORIGINAL bytes.
 *                 A difference, or output stuck short of end0 for divergenceDeadlineMs: the
 *                 service's policy (reset: FAILED with DIVERGED; continue: counted, carries on).
 *   6. LIVE       (output regenerated and compared through acked0, the replay acked through
 *                 `complete`) `rec` is dropped; `xlate` (the flow's NorthRecord) translates for
 *                 its life; the comparison goes on until the output passed end0 and the client
 *                 acked it (a divergence then resets the connection the same way).
 *   7.            a crash during 1-5 (or 6) starts again at 0, from the log.
 *   FAILED        a coded failure (rebuild.ts FailureCode: a deadline, options that disagree, no
 *                 progress, the log unreadable, the output diverged): one RST to the client (at its last ack), one to
 *                 the new incarnation; counted per code; the flow closes.
 *   ENDED         the connection ended while recovered (both ends closed, left the flow table).
 *
 * The files, by step: rebuild.ts (the record, the phases, the transition function),
 * packets.ts (the packets the engine makes, failure), handshake.ts (steps 1-3), replay.ts
 * (steps 4-6), verify.ts (the digest and the comparison of steps 0 and 5), and this one: the
 * service events (0, 7), the dispatch of segments, the timers.
 */
import { serviceName, type Service } from '../flow/table.js';
import { ADOPT_SERVER, type Flow } from '../flow/flow.js';
import type { PacketInfo } from '../wire/packet.js';
import { seqAdd, seqGt, type Seq } from '../wire/seq.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TCP_OFF_SEQ, TCP_OFF_WINDOW, TCP_OFF_DST_PORT } from '../wire/tcp.js';
import { tcpSetAck } from '../wire/rewrite.js';
import { type Translation, translateToClient, translateToServer } from './translate.js';
import { MAX_TIMELINES, Rebuild, type RecoveryTimeline, northOf, peekNorth, outOffsetNear, recOf, replaying, xlateOf } from './rebuild.js';
import { tsValOf } from '../wire/tcp-options.js';
import { FORWARD, DropReason, type Wrapper, type WrapperVerdict } from '../wrappers/contract.js';
import { VerifySteps } from './verify.js';
import { MAX_INCARNATIONS } from '../log/state.js';

/**
 * The north wrapper. Built in layers, one file per part of the protocol, each on the one
 * below: RebuildMachine (rebuild.ts) ← RecoveryPackets (packets.ts) ← HandshakeSteps
 * (handshake.ts) ← ReplaySteps (replay.ts) ← VerifySteps (verify.ts) ← NorthWrapper (here).
 */
export class NorthWrapper extends VerifySteps implements Wrapper {
  // ---- service events (liveness) ----------------------------------------------------

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
    const tl = this.downWith(svc, reason);
    for (const [s, flow] of this.table.flows()) {
      if (s !== svc) continue;
      if (flow.state !== 'ESTABLISHED' && flow.state !== 'CLOSING') continue;
      if (flow.unprotected && recOf(flow) === null) continue; // nothing to rebuild from: it passes as it is
      const port = xlateOf(flow)?.serverSidePort ?? flow.clientPort;
      const prev = recOf(flow);
      if (prev !== null && prev.phase === 'FAILED') continue;
      if (prev !== null && prev.timeline === tl && prev.phase === 'MASKED') continue;
      const r = new Rebuild(prev !== null && prev.phase !== 'MASKED' ? prev.sidePort : port, now, this.options.synRtoMs, tl);
      if (prev !== null) r.maskedAt = prev.maskedAt;
      this.enter(flow, r, 'MASKED', reason);
      northOf(flow).verdictHold = null;
      this.freezeDigest(flow);
      this.ackClient(flow, now);
    }
    if (this.options.probeWithoutOracle) this.listening(svc, true);
  }

  /**
   * A restarted gateway adopted `flows` of `svc` from the log in the middle of a rebuild
   * (src/gateway/adopt.ts): each is masked again (step 0, a fresh record; the half-done
   * incarnation's connection, on the last translation's port, is the one step 1 reaps) and
   * the rebuilds start at once: the service is up, or its SYNs are refused and retried until
   * the deadline, as after a crash.
   */
  adoptRebuilds(svc: Service, flows: readonly Flow[]): void {
    if (flows.length === 0) return;
    const now = this.now();
    const tl = this.downWith(svc, 'adopted from the log in the middle of a rebuild');
    for (const flow of flows) {
      const r = new Rebuild(xlateOf(flow)?.serverSidePort ?? flow.clientPort, now, this.options.synRtoMs, tl);
      this.enter(flow, r, 'MASKED', 'adopted mid-rebuild');
      // No ACK to the client yet: its numbers (its rcv_nxt, the TSval it last saw) are learnt
      // from its first segment; the keepalives follow every keepaliveMs from now.
      r.lastAckAt = now;
    }
    this.listening(svc);
  }

  /** The service is down: its recovery's timeline (a new one unless this crash is already known). */
  private downWith(svc: Service, reason: string): RecoveryTimeline {
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
        service: serviceName(svc), crash: this.stats.crashes + 1, detectedAt: now, reason, connections: 0,
        listeningAt: 0, handshakesDoneAt: 0, replayDoneAt: 0, caughtUpAt: 0, handshakes: 0, replayed: 0, caughtUp: 0, failed: 0, ended: 0,
      };
      this.timelines.push(tl);
      if (this.timelines.length > MAX_TIMELINES) this.timelines.shift();
      sr.timeline = tl;
      this.stats.crashes++;
      this.logger.warn({ service: tl.service, reason }, 'server crash: masking its connections');
    }
    return tl;
  }

  /**
   * A handshake completed (the south wrapper registered the flow with the log): if the
   * incarnation that sent its SYN-ACK died before the client's ACK came, the connection is
   * masked with the others of that crash and rebuilt from the log like them.
   */
  handshakeCompleted(svc: Service, flow: Flow): void {
    if (this.diedSince(svc, flow.halfOpenAt)) this.crash(svc, 'a handshake completed after the crash');
    else this.bindOriginal(svc, flow);
  }

  /** The service listens again: start the rebuilds (bounded parallelism). */
  listening(svc: Service, probing = false): void {
    const sr = this.services.get(svc);
    if (!sr || !sr.down) return;
    const now = this.now();
    if (sr.timeline !== null && sr.timeline.listeningAt === 0 && !probing) sr.timeline.listeningAt = now;
    sr.queue.length = 0;
    for (const flow of this.active) {
      if (recOf(flow)?.phase === 'MASKED' && this.table.service(flow.serverIp, flow.serverPort) === svc) sr.queue.push(flow);
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

  // ---- packets -------------------------------------------------------------------------

  /**
   * A client segment, after the south wrapper forwarded it (logged it, moved the flow). Only
   * a masked, rebuilding or translated connection is the north wrapper's: FORWARD (translated
   * for the new incarnation) or a drop reason. A SYN-ACK toward the service is a simultaneous
   * open, not a segment of the client's connection: it goes on as it is.
   */
  fromClient(svc: Service, buf: Buffer, p: PacketInfo): WrapperVerdict {
    if ((p.flags & (TCP_SYN | TCP_ACK | TCP_RST)) === (TCP_SYN | TCP_ACK)) return FORWARD;
    const flow = this.table.get(svc, p.src, p.srcPort);
    if (flow === undefined || (recOf(flow) === null && xlateOf(flow) === null)) return FORWARD;
    return this.clientSegment(svc, flow, buf, p);
  }

  private clientSegment(svc: Service, flow: Flow, buf: Buffer, p: PacketInfo): WrapperVerdict {
    const r = recOf(flow);
    if (r !== null) {
      if (r.phase === 'FAILED') {
        if (!(p.flags & TCP_RST)) this.resetClient(flow, p.flags & TCP_ACK ? p.ack : flow.outSeq(flow.cliAcked));
        return DropReason.CLIENT_REBUILD_FAILED;
      }
      if (p.flags & TCP_RST && flow.state === 'CLOSED') {
        // The client gave up on its own: forget the rebuild; tell the new incarnation if any.
        const was = r.phase;
        this.ended(flow, r, 'the client reset it');
        if (replaying(was) && xlateOf(flow) !== null) {
          this.toServer(flow, buf, p);
          return FORWARD;
        }
        return DropReason.CLIENT_RST_RECOVERING;
      }
      if (!replaying(r.phase)) return DropReason.CLIENT_WHILE_MASKED;
      if (p.payloadLen === 0 && !(p.flags & (TCP_FIN | TCP_SYN | TCP_RST))) {
        // A pure ACK or window update: its seq is the client's snd_nxt, which may lie beyond
        // what the replay has delivered and so beyond a closed receive window: the new
        // incarnation would drop it unread (Linux: a segment past rcv_nxt + rcv_wnd) and never
        // learn the client's ack or window. The gateway's own ACK carries both, at the
        // replay's sequence number, which the receiver accepts.
        this.stats.clientAcksReplaced++;
        if (p.window > 0) r.lastMoved = this.now();
        this.ackServerSoon(flow, r);
        return DropReason.CLIENT_ACK_REPLACED;
      }
    }
    if (xlateOf(flow) === null) return FORWARD;
    this.toServer(flow, buf, p);
    return FORWARD;
  }

  /**
   * A server segment the south wrapper accepted (the gateway passes it on): on a connection not
   * translated, its ack is what the current incarnation acknowledged (its rcv_nxt: where the
   * reaping RST goes after a crash). A translated one counts it in fromServer, in raw numbers.
   */
  serverAccepted(flow: Flow, p: PacketInfo): void {
    if (xlateOf(flow) !== null || !(p.flags & TCP_ACK)) return;
    const a = flow.inOffset(p.ack);
    const n = peekNorth(flow); // a record is made only when there is something to keep
    if (a > (n?.incDelivered ?? 0) && a <= flow.high + 1) northOf(flow).incDelivered = a;
  }

  /** Is the connection being masked or rebuilt (a Rebuild on it)? */
  rebuilding(flow: Flow): boolean {
    return recOf(flow) !== null;
  }

  private toServer(flow: Flow, buf: Buffer, p: PacketInfo): void {
    const t = xlateOf(flow)!;
    if (p.flags & TCP_ACK) {
      // Never acknowledge output the new incarnation has not sent (it would drop the segment),
      // nor past a gap in the output being compared below acked0 (it must retransmit the hole).
      const a = flow.outOffset(p.ack);
      const n = northOf(flow);
      // Adopted from the log (src/gateway/adopt.ts): what the client acked, the incarnation sent.
      if (flow.adopted && flow.cliAcked > n.incSndMax && recOf(flow) === null) n.incSndMax = flow.cliAcked;
      const limit = Math.min(n.incSndMax, n.cmp?.ackLimit() ?? Infinity);
      if (a > limit) {
        p.ack = flow.outSeq(limit);
        tcpSetAck(buf, p.l4Off, p.ack);
        this.stats.clientAcksClamped++;
      }
    }
    translateToServer(t, buf, p);
  }

  /**
   * A server segment, before the south wrapper. Only a masked, rebuilding or translated
   * connection is the north wrapper's: a drop reason, or FORWARD with the segment translated
   * in place (and `p` updated) for the south wrapper. A connection over at the client's end
   * (both FINs acked) is left to the south wrapper, which drops whatever comes (AFTER_CLOSE).
   */
  fromServer(svc: Service, buf: Buffer, p: PacketInfo): WrapperVerdict {
    const flow = this.table.get(svc, p.dst, p.dstPort);
    if (flow === undefined || (recOf(flow) === null && xlateOf(flow) === null)) return FORWARD;
    if (flow.state === 'CLOSED' && flow.finsAcked()) return FORWARD;
    return this.serverSegment(svc, flow, buf, p);
  }

  private serverSegment(svc: Service, flow: Flow, buf: Buffer, p: PacketInfo): WrapperVerdict {
    const r = recOf(flow);
    const flags = p.flags;
    if (r !== null) {
      if (r.phase === 'MASKED' || r.phase === 'FAILED') {
        if (p.dstPort === r.deadPort && flags & TCP_ACK && !(flags & TCP_SYN)) {
          const a = flow.inOffset(p.ack);
          if (a > northOf(flow).incDelivered && a <= flow.high + 1) northOf(flow).incDelivered = a;
        }
        this.stats.deadDropped++;
        return DropReason.SERVER_WHILE_MASKED;
      }
      if (r.phase === 'HANDSHAKE') return this.handshakeSegment(svc, flow, r, buf, p);
    }
    const t = xlateOf(flow);
    if (t === null) return FORWARD;
    if (p.dstPort !== t.serverSidePort) {
      this.stats.deadDropped++; // the dead incarnation, on the port the connection left
      return DropReason.STALE_PORT;
    }
    if (flags & TCP_SYN) {
      // Our handshake ACK was lost: the SYN-ACK comes again.
      if (r !== null) this.sendToServer(flow, r, flow.inSeq(0), TCP_ACK, null);
      return DropReason.SYN_ACK_REPEAT;
    }
    if (!this.fromNewIncarnation(flow, t, p.seq)) {
      // Same tuple, but the dead incarnation's numbering: one of its last segments (an
      // orphan's FIN retransmission, an ACK) sent before the reaping RST and delivered late
      // by a loaded gateway queue. Its ack (the dead socket's rcv_nxt) must not count as the
      // new incarnation's: the replay would stop short and the connection never catch up.
      this.stats.deadDropped++;
      return DropReason.DEAD_SEQ;
    }
    // New-incarnation bookkeeping (raw numbers, before translation).
    if (flags & TCP_ACK) {
      const a = flow.inOffset(p.ack);
      if (a > northOf(flow).incDelivered && a <= flow.high + 1) northOf(flow).incDelivered = a;
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
        const ts = tsValOf(buf, p, this.opts1) as Seq;
        if (ts >= 0 && seqGt(ts, r.newTsRecent)) r.newTsRecent = ts;
      }
    }
    translateToClient(t, buf, p);
    const l4 = p.l4Off;
    p.seq = buf.readUInt32BE(l4 + TCP_OFF_SEQ) as Seq;
    p.window = buf.readUInt16BE(l4 + TCP_OFF_WINDOW);
    p.dstPort = buf.readUInt16BE(l4 + TCP_OFF_DST_PORT);
    // The same out-stream offsets in every incarnation (client's numbering after translation).
    const o = flow.outOffset(p.seq);
    if (len > 0 && o + len > northOf(flow).incSndMax && o >= 0) northOf(flow).incSndMax = o + len;
    if (northOf(flow).cmp !== null && p.payloadLen > 0 && o >= 0) {
      // Step 5's comparison (verify.ts): the client gets the originals up to end0.
      const v = this.regenerated(svc, flow, buf, p, o);
      if (v !== FORWARD) return v;
    }
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
        return DropReason.ABSORBED;
      }
      if (len === 0 && !(flags & TCP_RST) && flow.inOffset(p.ack) <= flow.complete) {
        // A pure ACK of replayed bytes: the client has those acked already (no dupacks to it).
        this.stats.serverAcksDropped++;
        this.progress(flow, r);
        return DropReason.REPLAY_ACK;
      }
      this.progress(flow, r);
    }
    // The ordering rule (durable.ts): the new incarnation retransmits what is dropped here.
    return this.translationStable(flow) ? FORWARD : DropReason.TRANSLATION_UNSTABLE;
  }

  /**
   * Whether raw server sequence number `seq` lies where the new incarnation can be sending:
   * from its ISN + 1 up to what it sent plus the room the gateway gave it (the absorption up
   * to cliAcked and the client's window), with 64 KiB to spare. A segment of the dead
   * incarnation (ISN_old, random against ISN_new) falls there with probability ~1e-4.
   */
  private fromNewIncarnation(flow: Flow, t: Translation, seq: Seq): boolean {
    // Adopted, the server side not learnt yet: nothing here to judge by; the south wrapper
    // checks its first segment against the log and the client (adoptServer).
    if (flow.adopting & ADOPT_SERVER) return true;
    const off = outOffsetNear(seq, seqAdd(flow.serverIsn, -t.seqDelta), northOf(flow).incSndMax);
    const room = Math.max(northOf(flow).incSndMax, flow.cliAcked) + flow.cliWindow * 2 ** flow.clientWscale + 65536;
    return off >= -1 && off <= room;
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
        this.ended(flow, r, 'both ends closed');
        continue;
      }
      switch (r.phase) {
        case 'MASKED':
          if (now - r.maskedAt > this.options.maskDeadlineMs) {
            this.fail(flow, r, 'MASK_DEADLINE', 'the service did not come back before the deadline');
            break;
          }
          if (now - r.lastAckAt >= keepaliveMs) this.ackClient(flow, now);
          break;
        case 'HANDSHAKE':
          if (now - r.startedAt > this.options.rebuildDeadlineMs) {
            this.fail(flow, r, 'HANDSHAKE_DEADLINE', 'no handshake with the new incarnation before the deadline');
            break;
          }
          if (now - r.lastAckAt >= keepaliveMs) this.ackClient(flow, now);
          if (now >= r.nextAt) this.sendSyn(flow, r, now);
          break;
        case 'REPLAY':
        case 'ABSORB':
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
          if (recOf(flow) !== r) break;
          if (flow.cliWindow === 0) {
            // The client stopped reading: the new incarnation waits on it, as the old one would.
            r.lastMoved = now;
          } else if (now - r.lastMoved > this.options.progressDeadlineMs) {
            this.stats.progressFailures++;
            this.fail(flow, r, 'NO_PROGRESS', r.phase === 'ABSORB'
              ? `the new incarnation regenerated ${northOf(flow).incSndMax} of the ${r.cliAcked0} bytes the client has, and no more for ${this.options.progressDeadlineMs} ms`
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
    this.tickVerify(now);
  }

  /**
   * The flow left the flow table (the south wrapper released it, the gateway tells): its recovery ends now, not
   * at the mask deadline. No more keepalives (with numbers a new connection on the tuple does
   * not have), timers or replay; it leaves the `recovering` count; a connection begun with
   * the new incarnation is reset. A FAILED one just stops waiting to be forgotten.
   */
  forget(flow: Flow): void {
    this.dropVerification(flow);
    const r = recOf(flow);
    if (r === null) {
      this.deactivate(flow);
      return;
    }
    this.stats.recoveriesForgotten++;
    if (r.phase === 'FAILED') {
      this.ended(flow, r, 'released from the flow table after its failure');
      return;
    }
    this.resetIncarnation(flow, r);
    this.ended(flow, r, 'released from the flow table');
  }

  /** Resets the new incarnation's connection, if one was begun (in its window: the SYN's seq + 1, or what it acknowledged). */
  private resetIncarnation(flow: Flow, r: Rebuild): void {
    if (r.phase === 'HANDSHAKE' && r.attempts > 0) this.sendRaw(flow, r.sidePort, seqAdd(flow.clientIsn, 1), 0 as Seq, TCP_RST, 0, null, null);
    else if (replaying(r.phase)) this.sendRaw(flow, r.sidePort, flow.inSeq(northOf(flow).incDelivered), 0 as Seq, TCP_RST, 0, null, null);
  }

  /** A flow's recovery for /status: its phase (null: not recovered) and whether it is translated. */
  flowStatus(flow: Flow): { recovering: string | null; translated: boolean; verified: boolean } {
    return { recovering: recOf(flow)?.phase ?? null, translated: xlateOf(flow) !== null, verified: this.verified(flow) };
  }

  /** A flow's rebuild for /status (`{ rebuild }`), or nothing when none runs. */
  rebuildStatus(flow: Flow): { rebuild?: Record<string, number> } {
    const r = recOf(flow);
    if (r === null) return {};
    const n = northOf(flow);
    return { rebuild: { sndUna: r.sndUna, sndNxt: r.sndNxt, target: r.target0, incSndMax: n.incSndMax, cliAcked0: r.cliAcked0, incDelivered: n.incDelivered, port: r.sidePort } };
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
      digestBlockBytes: o.digestBlockBytes, digestKeptCapBytes: o.digestKeptCapBytes, digestBudgetBytes: o.digestBudgetBytes,
      divergenceDeadlineMs: o.divergenceDeadlineMs,
      stateIncarnations: MAX_INCARNATIONS,
    };
  }
}
