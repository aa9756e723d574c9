/**
 * Step 5's comparison (see engine.ts, DESIGN.md §7b): the rebuild checks the new
 * incarnation's output against what the client may have, and never sends a client a splice.
 *
 *   always, on a protected connection (policy not off): every server byte the gateway
 *     forwards, in the client's numbering, is recorded in the flow's OutDigest (forwarded());
 *     the client's acks move it from kept to hashed (on the next forward, in the sweep);
 *   step 0 (crash):   the digest is frozen: acked0 = cliAcked, end0 = sndMax (freeze());
 *   steps 4-6:        every regenerated payload byte is compared by offset (regenerated()):
 *
 *     0 ─────────── acked0 ═════════════ end0 ─────────▶
 *     │ hashed, blocks │ byte for byte; the  │ new output
 *     │ compared; acks │ client gets the     │ (recorded as
 *     │ held at a gap  │ ORIGINALS           │ forwarded)
 *
 *   a mismatch: the service's policy: reset (FailureCode DIVERGED, or for a connection
 *     already LIVE the same two RSTs), continue (counted, logged once, carries on);
 *   a new incarnation whose output stays short of end0 past divergenceDeadlineMs while the
 *     client's window is open: a divergence too ('short output', tickVerify()).
 *
 * The digest and the comparator live in the flow's NorthRecord (rebuild.ts): the comparator
 * outlives the Rebuild until the regenerated output passed end0 and the client acked it.
 */
import type { Flow } from '../flow/flow.js';
import { serviceName, type Service } from '../flow/table.js';
import { PacketInfo, parsePacket, Verdict } from '../wire/packet.js';
import { foldSum, onesSum, csumReplaceSum } from '../wire/checksum.js';
import { type Offset, type Seq } from '../wire/seq.js';
import { TCP_OFF_CHECKSUM, TCP_RST } from '../wire/tcp.js';
import { FORWARD, DropReason, type WrapperVerdict } from '../wrappers/contract.js';
import { OutDigest } from '../divergence/digest.js';
import { Comparator, type Mismatch } from '../divergence/compare.js';
import { policyOf, type DivergencePolicy } from '../divergence/policy.js';
import { northOf, peekNorth, recOf, xlateOf } from './rebuild.js';
import { ReplaySteps } from './replay.js';

export abstract class VerifySteps extends ReplaySteps {
  private readonly policies = new Map<Service, DivergencePolicy>();
  private readonly relInfo = new PacketInfo();

  /** The divergence policy of a service (cached per Service). */
  policyFor(svc: Service): DivergencePolicy {
    let p = this.policies.get(svc);
    if (p === undefined) this.policies.set(svc, (p = policyOf(this.options.divergence, serviceName(svc))));
    return p;
  }

  /** Connections whose regenerated output is still being compared (ticked while any). */
  get verifyingCount(): number {
    return this.verifying.size;
  }

  // ---- recording (every forwarded server byte) -------------------------------------------

  /**
   * A server segment on its way to the client, after both wrappers forwarded it (or held it
   * for a later release: a held FIN carries bytes the flow counts as sent). Records its
   * payload in the flow's digest, made on the first byte.
   */
  forwarded(svc: Service, buf: Buffer, p: PacketInfo): void {
    if (p.payloadLen === 0) return;
    const flow = this.table.get(svc, p.dst, p.dstPort);
    if (flow === undefined) return;
    const n = peekNorth(flow);
    let d = n?.digest ?? null;
    if (flow.unprotected) {
      if (d !== null && d.abandoned === null) this.dropVerification(flow);
      return;
    }
    if (d === null) {
      if (this.policyFor(svc) === 'off') return;
      d = northOf(flow).digest = new OutDigest(this.digests);
    }
    if (d.abandoned !== null) return;
    d.record(flow.outOffset(p.seq), buf.subarray(p.payloadOff, p.payloadOff + p.payloadLen), clientHas(flow));
    if (d.abandoned !== null) this.reportAbandoned(flow, d);
  }

  /** A server segment as a whole IPv4 packet (a verdict-held FIN/RST released to the client): forwarded(). */
  forwardedPacket(svc: Service, pkt: Buffer): void {
    if (parsePacket(pkt, 0, pkt.length, this.relInfo) === Verdict.IPV4_TCP) this.forwarded(svc, pkt, this.relInfo);
  }

  /** The gateway's sweep: client acks applied to every digest (an idle one keeps no byte), comparators retired. */
  sweepDigests(): void {
    for (const [, flow] of this.table.flows()) {
      const n = peekNorth(flow);
      const d = n?.digest ?? null;
      if (d === null || d.abandoned !== null) continue;
      d.ackTo(clientHas(flow));
      if (d.abandoned !== null) this.reportAbandoned(flow, d);
      else this.maybeRetire(flow);
    }
  }

  private reportAbandoned(flow: Flow, d: OutDigest): void {
    if (d.reported) return;
    d.reported = true;
    this.divergence.digestsAbandoned++;
    this.dropComparison(flow);
    this.logger.warn({ flow: flow.describe(), why: d.abandoned }, 'digest abandoned: this connection is no longer verified (a rebuild of it is not compared)');
  }

  // ---- step 0: the snapshot ---------------------------------------------------------------

  /** The incarnation died (step 0, or 7 during a rebuild): a fresh snapshot of what the client may have. */
  protected freezeDigest(flow: Flow): void {
    const n = peekNorth(flow);
    const d = n?.digest ?? null;
    if (n === null || d === null) return;
    this.dropComparison(flow);
    if (d.abandoned !== null) return;
    if (d.end < flowDataEnd(flow)) d.abandon(`incomplete at the crash: recorded ${d.end} of the ${flowDataEnd(flow)} bytes sent`);
    const snap = d.freeze(clientHas(flow));
    if (snap === null) {
      this.reportAbandoned(flow, d);
      return;
    }
    if (snap.end0 === 0) {
      d.unpin();
      return; // nothing sent: nothing to compare
    }
    const svc = this.table.service(flow.serverIp, flow.serverPort);
    n.cmp = new Comparator(d, snap, this.now(), this.digests, svc !== undefined && this.policyFor(svc) === 'continue');
    this.verifying.add(flow);
  }

  // ---- steps 4-6: the comparison ---------------------------------------------------------

  /**
   * A regenerated segment (translated; `o` its out-stream offset) of a connection with a
   * comparator: compared, its bytes in [acked0, end0) replaced by the originals. FORWARD, or
   * a drop reason (held-bytes cap: the incarnation retransmits; the connection was reset).
   */
  protected regenerated(svc: Service, flow: Flow, buf: Buffer, p: PacketInfo, o: Offset): WrapperVerdict {
    const n = northOf(flow);
    const cmp = n.cmp;
    const d = n.digest;
    if (cmp === null || d === null || p.payloadLen === 0) return FORWARD;
    const now = this.now();
    const payload = buf.subarray(p.payloadOff, p.payloadOff + p.payloadLen);
    const before = cmp.compared;
    const diffBefore = cmp.differingBlocks;
    const dropped = cmp.feed(o, payload, now);
    this.divergence.comparedBytes += cmp.compared - before;
    this.divergence.differingBlocks += cmp.differingBlocks - diffBefore;
    if (dropped > 0) return DropReason.REGENERATED_HELD_FULL;
    if (cmp.mismatch !== null && !cmp.reported) {
      cmp.reported = true; // once per rebuild
      if (this.diverged(svc, flow, cmp, cmp.mismatch, 'different output')) return DropReason.DIVERGED;
    }
    const oldSum = o + p.payloadLen > cmp.acked0 && o < cmp.end0 ? foldSum(onesSum(buf, p.payloadOff, p.payloadLen)) : -1;
    const changed = oldSum >= 0 ? cmp.originals(o, buf, p.payloadOff, p.payloadLen) : 0;
    if (changed > 0) {
      // The client is sent the original bytes: fixed in place, as translation fixes headers
      // (RFC 1624; a partial checksum is set again after the wrappers, gateway/offload.ts).
      const csumAt = p.l4Off + TCP_OFF_CHECKSUM;
      const newSum = foldSum(onesSum(buf, p.payloadOff, p.payloadLen));
      buf.writeUInt16BE(csumReplaceSum(buf.readUInt16BE(csumAt), oldSum, newSum), csumAt);
      this.divergence.originalBytesSent += changed;
    }
    this.maybeRetire(flow);
    return FORWARD;
  }

  /**
   * A difference (or a short output): the service's policy. Returns true when the connection
   * was reset (the segment in hand is dropped).
   */
  private diverged(svc: Service, flow: Flow, cmp: Comparator, m: Mismatch | null, why: string): boolean {
    const service = serviceName(svc);
    const policy = this.policyFor(svc);
    this.divergence.count(service);
    if (m === null) this.divergence.shortOutputs++;
    const where = {
      flow: flow.describe(), service, policy, why, acked0: cmp.acked0, end0: cmp.end0,
      ...(m !== null ? { block: m.block, blockOffset: m.blockOffset, byteOffset: m.byteOffset, kind: m.kind } : { regenerated: cmp.end }),
    };
    this.divergence.last = where;
    if (policy !== 'reset') {
      this.divergence.continued++;
      this.logger.warn(where, 'divergence: the new incarnation\'s output differs from what the client may have; the connection carries on (policy continue), compared to the end');
      return false;
    }
    this.divergence.resets++;
    this.logger.error(where, 'divergence: the new incarnation\'s output differs from what the client may have; the connection is reset (policy reset)');
    const detail = m !== null
      ? `output diverged at block ${m.block} (offset ${m.byteOffset ?? m.blockOffset}), acked0 ${cmp.acked0}, end0 ${cmp.end0}`
      : `short output: ${cmp.end} of ${cmp.end0} bytes regenerated, no more for ${this.options.divergenceDeadlineMs} ms`;
    const r = recOf(flow);
    if (r !== null) this.fail(flow, r, 'DIVERGED', detail);
    else this.resetLive(flow, detail);
    this.dropVerification(flow);
    return true;
  }

  /** A LIVE (translated) connection diverged: the two RSTs a failed rebuild sends, and it closes. */
  private resetLive(flow: Flow, why: string): void {
    const t = xlateOf(flow);
    if (t !== null) this.sendRaw(flow, t.serverSidePort, flow.inSeq(northOf(flow).incDelivered), 0 as Seq, TCP_RST, 0, null, null);
    this.resetClient(flow, flow.outSeq(flow.cliAcked));
    flow.to('CLOSED', `diverged: ${why}`, this.logger);
    flow.closedAt = this.now();
  }

  /** The comparison is over and the client acknowledged through end0: the originals are no longer needed. */
  private maybeRetire(flow: Flow): void {
    const n = peekNorth(flow);
    const cmp = n?.cmp ?? null;
    if (n === null || cmp === null || !cmp.done || clientHas(flow) < cmp.end0) return;
    if (cmp.keepGoing && cmp.differingBlocks > 0) {
      // How much differed, for the operator who chose continue: one block (a Date header) or all of it.
      this.logger.warn({ flow: flow.describe(), differingBlocks: cmp.differingBlocks, comparedBytes: cmp.compared, blockBytes: cmp.blockBytes, end0: cmp.end0 },
        'divergence (policy continue): the comparison is complete');
    }
    this.dropComparison(flow);
  }

  /** Short output (called from tick()): no regenerated progress below end0 past the deadline. */
  protected tickVerify(now: number): void {
    for (const flow of this.verifying) {
      const cmp = northOf(flow).cmp;
      if (cmp === null) {
        this.verifying.delete(flow);
        continue;
      }
      this.maybeRetire(flow);
      if (cmp.done || northOf(flow).cmp !== cmp) continue;
      const r = recOf(flow);
      // The clock runs from the absorption on, while the client's window is open (a client
      // that stops reading holds the server, as it would without a crash).
      if ((r !== null && r.phase !== 'ABSORB') || flow.cliWindow === 0 || flow.state === 'CLOSED') {
        cmp.lastProgressAt = now;
        continue;
      }
      if (now - cmp.lastProgressAt <= this.options.divergenceDeadlineMs || cmp.reported) continue;
      cmp.reported = true;
      const svc = this.table.service(flow.serverIp, flow.serverPort);
      if (svc !== undefined) this.diverged(svc, flow, cmp, null, 'short output');
    }
  }

  // ---- visibility ------------------------------------------------------------------------

  /** Is the connection's output verified (a live digest)? */
  verified(flow: Flow): boolean {
    const d = peekNorth(flow)?.digest ?? null;
    return d !== null && d.abandoned === null;
  }

  /** /status `divergence`. */
  divergenceStatus(): Record<string, unknown> {
    const policies: Record<string, DivergencePolicy> = {};
    const byService: Record<string, number> = {};
    for (const svc of this.table.allServices()) {
      const name = serviceName(svc);
      policies[name] = this.policyFor(svc);
      byService[name] = this.divergence.byService.get(name) ?? 0;
    }
    const s = this.divergence;
    return {
      policies, byService, total: s.total, resets: s.resets, continued: s.continued, shortOutputs: s.shortOutputs,
      comparedBytes: s.comparedBytes, originalBytesSent: s.originalBytesSent, differingBlocks: s.differingBlocks, digestsAbandoned: s.digestsAbandoned,
      digestBytes: this.digests.digestBytes, keptBytes: this.digests.keptBytes, last: s.last,
    };
  }
}


/** What the client acknowledged of the server's data (its ack of a FIN is not a byte). */
function clientHas(flow: Flow): Offset {
  return flow.serverFin >= 0 && flow.cliAcked > flow.serverFin ? flow.serverFin : flow.cliAcked;
}

/** The server's data bytes the gateway counts as sent (sndMax less a FIN). */
function flowDataEnd(flow: Flow): Offset {
  return flow.serverFin >= 0 && flow.sndMax > flow.serverFin ? flow.serverFin : flow.sndMax;
}
