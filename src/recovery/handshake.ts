/**
 * Steps 1-3 of the rebuild (see engine.ts): choose the tuple toward the new incarnation,
 * reap what the dead one left on it, send the spoofed SYN, and check its SYN-ACK.
 *
 *   gateway (as the client)                          new incarnation
 *     RST  seq(incDelivered)   ─────────────────────▶   reaps an orphan of the dead one (first SYN only)
 *     SYN  seq = client ISN, its SYN's options  ───▶
 *          ◀───────────────────────────────────────   SYN-ACK  seq = ISN_new, the options to compare
 *     ACK  seq(0), ack = ISN_new + 1  ─────────────▶   (step 3; then the replay, replay.ts)
 *
 *   A plain ACK instead (a socket still holds the tuple: its rcv_nxt): RST at that ack, SYN
 *   again. After `portAttempts` SYNs a fresh port from `portRange` (a flow-table alias).
 *   Handshakes run `maxParallel` at a time; the others wait in their service's queue.
 */
import type { Service } from '../flow/table.js';
import type { Flow } from '../flow/flow.js';
import type { PacketInfo } from '../wire/packet.js';
import { seqAdd, type Seq } from '../wire/seq.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../wire/tcp.js';
import { parseTcpOptions } from '../wire/tcp-options.js';
import { Translation } from './translate.js';
import { DropReason } from '../wrappers/contract.js';
import { northOf, recOf, type Rebuild, type ServiceRecovery } from './rebuild.js';
import { RecoveryPackets } from './packets.js';
import { DurableState, incarnationOf } from './durable.js';

export abstract class HandshakeSteps extends RecoveryPackets {
  /** The next fresh client port to try (portRange, round robin). */
  private nextPort = this.options.portRange[0];

  /** Sends what the window, the MSS and the log allow (step 4, replay.ts). */
  protected abstract pump(flow: Flow, r: Rebuild): void;

  /** Starts queued rebuilds (MASKED → HANDSHAKE) while fewer than maxParallel are in the handshake. */
  protected startQueued(sr: ServiceRecovery, now: number): void {
    while (sr.queue.length > 0 && this.handshaking < this.options.maxParallel) {
      const flow = sr.queue.shift()!;
      const r = recOf(flow);
      if (r === null || r.phase !== 'MASKED') continue;
      r.attempts = 0;
      r.rto = this.synRto();
      this.enter(flow, r, 'HANDSHAKE', 'the service listens again');
      this.sendSyn(flow, r, now);
    }
  }

  // ---- the timeouts, from the round trip the handshakes measure ------------------------

  protected synRto(): number {
    return Math.min(1000, Math.max(this.options.synRtoMs, Math.round(3 * this.srtt)));
  }

  protected replayRto(): number {
    return Math.min(2000, Math.max(this.options.replayRtoMs, Math.round(3 * this.srtt)));
  }

  // ---- steps 1-2: tuple and spoofed SYN ----------------------------------------------

  protected sendSyn(flow: Flow, r: Rebuild, now: number): void {
    r.attempts++;
    if (r.attempts === 1) r.synSentAt = now;
    if (r.attempts > this.options.portAttempts && r.sidePort === r.deadPort) this.movePort(flow, r);
    // Reap whatever the dead incarnation left on this tuple (ignored when nothing is there),
    // before the first SYN only: on a retransmission the RST would reset the new incarnation's
    // half-open connection when its SYN-ACK is merely late (a loaded gateway's queue can
    // hold it past synRtoMs). An orphan that survived the RST answers the SYN with a
    // challenge ACK, which handshakeSegment reaps at its ack.
    if (r.attempts === 1 && r.sidePort === r.deadPort) {
      this.sendRaw(flow, r.sidePort, flow.inSeq(northOf(flow).incDelivered), 0 as Seq, TCP_RST, 0, null, null);
      this.stats.reapRsts++;
    }
    this.sendRaw(flow, r.sidePort, flow.clientIsn, 0 as Seq, TCP_SYN, flow.clientSynWindow, flow.clientSynOptions, null);
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

  // ---- step 3: the answers to the SYN ---------------------------------------------------

  /** Steps 1-3: answers to our SYN. None goes to the client: returns why. */
  protected handshakeSegment(svc: Service, flow: Flow, r: Rebuild, buf: Buffer, p: PacketInfo): DropReason {
    const now = this.now();
    const flags = p.flags;
    if (p.dstPort !== r.sidePort) {
      this.stats.deadDropped++;
      return DropReason.STALE_PORT;
    }
    const synAcked = flags & TCP_ACK && p.ack === seqAdd(flow.clientIsn, 1);
    if (flags & TCP_SYN && synAcked) {
      this.synAcked(svc, flow, r, buf, p, now);
      return DropReason.DURING_HANDSHAKE;
    }
    if (flags & TCP_RST) {
      if (synAcked) {
        // Nothing listens (yet): try again after the backoff, until the deadline.
        this.stats.synRefused++;
        r.nextAt = now + r.rto;
        r.rto = Math.min(r.rto * 2, 1000);
      }
      return DropReason.DURING_HANDSHAKE;
    }
    if (flags & TCP_FIN) {
      // The dead incarnation's orphan retransmitting its FIN, sent before our reaping RST
      // (a loaded gateway may see it late). Not an answer to the SYN: an RST at its ack now
      // could land in the window of the new incarnation's connection on this tuple.
      this.stats.deadDropped++;
      return DropReason.DEAD_FIN;
    }
    if (flags & TCP_ACK && !(flags & TCP_SYN)) {
      // A socket still holds the tuple and told us its rcv_nxt (challenge ACK): reap it there.
      this.stats.challengeAcks++;
      this.sendRaw(flow, r.sidePort, p.ack, 0 as Seq, TCP_RST, 0, null, null);
      this.stats.reapRsts++;
      r.nextAt = now + 5;
    }
    return DropReason.DURING_HANDSHAKE;
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
      this.sendRaw(flow, r.sidePort, p.ack, 0 as Seq, TCP_RST, 0, null, null);
      this.fail(flow, r, 'OPTIONS_MISMATCH', `the new incarnation's SYN-ACK options disagree: ${why}`);
      return;
    }
    if (r.attempts === 1 && r.synSentAt > 0) {
      const sample = now - r.synSentAt;
      this.srtt = this.srtt === 0 ? sample : this.srtt + (sample - this.srtt) / 8;
    }
    r.newIsn = p.seq;
    r.newShift = o.wscale >= 0 ? Math.min(o.wscale, 14) : 0;
    r.mss = o.mss > 0 ? o.mss : 536;
    r.newTsRecent = o.tsOff >= 0 ? o.tsVal : 0 as Seq;
    const tsDelta = flow.tsOk ? seqAdd(flow.lastTsToClient + 1 as Seq, -o.tsVal) >>> 0 : 0;
    const seqDelta = seqAdd(flow.serverIsn, -p.seq) >>> 0;
    const xlate = new Translation(seqDelta, tsDelta, flow.clientPort, r.sidePort, flow.serverWscale, r.newShift);
    northOf(flow).xlate = xlate;
    // The durable record: entering REPLAY writes it; nothing translated reaches the client before it is stable.
    const durable = (northOf(flow).durable ??= new DurableState());
    durable.addIncarnation(incarnationOf(flow, xlate, p.seq));
    durable.boundTo = this.serverIncarnation(svc); // the process this SYN-ACK came from (the same record)
    northOf(flow).incDelivered = 0;
    northOf(flow).incSndMax = 0;
    r.newRightEdge = p.window; // a SYN-ACK's window is not scaled
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
    this.enter(flow, r, 'REPLAY', 'SYN-ACK with the original options');
    // Step 3: complete the handshake.
    this.sendToServer(flow, r, flow.inSeq(0), TCP_ACK, null);
    this.logger.debug({ flow: flow.describe(), port: r.sidePort, newIsn: r.newIsn, target: r.target0, cliAcked: r.cliAcked0 }, 'rebuild: handshake done, replaying');
    this.pump(flow, r);
    const sr = this.services.get(svc);
    if (sr) this.startQueued(sr, now);
  }
}
