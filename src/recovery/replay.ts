/**
 * Steps 4-6 of the rebuild (see engine.ts): the replay sender and the absorption, up to the
 * moment the connection is caught up (ABSORB → LIVE).
 *
 *   in-stream, replayed from the log (offsets):
 *
 *     0 ──── sndUna ──── sndNxt ──── min(stable, newRightEdge, budget)
 *            │           └ next byte to send: within the new incarnation's window and MSS,
 *            │             and the shared replayInFlight budget; go-back-N on a timeout
 *            └ acknowledged by the new incarnation (incDelivered)
 *
 *   REPLAY until sndUna reaches target0 (what the gateway had received at the handshake);
 *   ABSORB until the new incarnation regenerated its output through cliAcked0 (what the
 *   client had: acked by the gateway and dropped, fromServer) and holds every byte the client
 *   was told is delivered (`complete`). The sender runs in both.
 */
import type { Flow } from '../flow/flow.js';
import { TCP_ACK, TCP_FIN, TCP_PSH } from '../wire/tcp.js';
import { northOf, recOf, replaying, type Rebuild } from './rebuild.js';
import { TS_OPT_LEN } from './packets.js';
import { HandshakeSteps } from './handshake.js';

/** Largest replay payload in one GSO super-packet (an IPv4 packet is at most 65,535 bytes). */
const SUPER_PACKET_PAYLOAD = 62_000;

export abstract class ReplaySteps extends HandshakeSteps {
  /**
   * The MTU when emitted packets above it leave as GSO super-packets (the gateway's --offload,
   * while the kernel takes them), else 0. With it, the replay sends up to ~60 KB per packet
   * and the kernel cuts MTU-sized segments: ~40× fewer packets through the gateway.
   */
  superPacketMtu: () => number = () => 0;

  /**
   * The log has more stable bytes for the flow (the gateway calls it between the south
   * wrapper's two halves). Returns whether the south wrapper may release what it held for
   * stability now: not while the connection is masked or its handshake runs (the north side
   * acks the client itself then), yes once it is replayed or not recovered.
   */
  onStable(flow: Flow): boolean {
    const r = recOf(flow);
    if (r === null) return true;
    if (r.phase === 'MASKED' || r.phase === 'HANDSHAKE') this.ackClient(flow, this.now());
    else if (replaying(r.phase)) this.pump(flow, r);
    const after = recOf(flow);
    return after === null || replaying(after.phase);
  }

  protected progress(flow: Flow, r: Rebuild): void {
    if (!replaying(r.phase)) return;
    const una = northOf(flow).incDelivered;
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

  /** Pumps the connections that waited for room, oldest first, while there is room. */
  protected wake(): void {
    const list = [...this.waiting];
    this.waiting.clear();
    for (let i = 0; i < list.length; i++) {
      const f = list[i]!;
      if (this.inFlight >= this.options.replayInFlight) {
        for (let k = i; k < list.length; k++) this.waiting.add(list[k]!);
        return;
      }
      const r = recOf(f);
      if (r !== null && replaying(r.phase)) this.pump(f, r);
    }
  }

  /** Sends what the window, the MSS and the log allow. */

  protected pump(flow: Flow, r: Rebuild): void {
    if (!replaying(r.phase)) return;
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
        if (recOf(flow) !== r || data.length === 0) return;
        r.data = data;
        r.dataStart = start;
        this.pump(flow, r);
      },
      (err: unknown) => {
        r.reading = false;
        if (recOf(flow) !== r) return;
        this.fail(flow, r, 'LOG_READ_FAILED', `log read failed: ${(err as Error).message}`);
      },
    );
  }

  protected checkCaughtUp(flow: Flow, r: Rebuild): void {
    if (r.phase === 'REPLAY' && r.sndUna >= r.target0) this.enter(flow, r, 'ABSORB', `the replay target ${r.target0} is acknowledged`);
    // The replay ends only when the new incarnation holds every byte the client was told is
    // delivered (`complete`): the gateway itself acks a rebuilding client (keepalives at
    // min(stable, right edge)), and a byte so acked that reached neither the new incarnation
    // by the client's own forwarded segment nor by the replay would never come again: the
    // client has forgotten it (issue 10 item 1, an upload 326 KB short after its rebuild).
    // And, the output being verified (verify.ts), compared through acked0 (the absorbed part).
    if (r.phase === 'ABSORB' && northOf(flow).incSndMax >= r.cliAcked0 && r.sndUna >= flow.complete && (northOf(flow).cmp?.throughAcked0 ?? true)) {
      // Step 6: from here on only translation.
      this.enter(flow, r, 'LIVE', 'caught up');
    }
  }

  /**
   * Zero-window probe (RFC 9293 §3.8.6.1): the new incarnation's window is closed with bytes
   * still to replay. Linux's persist probe is a pure ACK at snd_una − 1: out of the window, it
   * draws an ACK with the current window from the receiver, and puts no byte past the edge.
   */
  protected probeIfClosed(flow: Flow, r: Rebuild, now: number): void {
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

  protected ackServerSoon(flow: Flow, r: Rebuild): void {
    if (r.ackPending) return;
    r.ackPending = true;
    queueMicrotask(() => {
      if (!r.ackPending || recOf(flow) !== r) return;
      this.sendToServer(flow, r, flow.inSeq(r.sndNxt), TCP_ACK, null);
    });
  }
}
