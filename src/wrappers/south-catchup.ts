/**
 * An adopted connection catching up after a gateway restart (issue 14 item 2; BENCHMARKS.md
 * "Gateway restart"): what the server's acks must not tell the client.
 *
 * The dead gateway forwarded client bytes to the server past the stable point (their ack was
 * held, not them). After the restart the client sends them again (they were never acked to
 * it) and the log takes them; the server, which has them, answers each with a duplicate ack
 * (Linux tcp_validate_incoming → tcp_send_dupack) that
 *   - echoes TS.Recent: the TSval of the client's last in-order segment BEFORE the kill
 *     (RFC 7323 §4.3 updates it only from a segment at rcv_nxt, never from an old one), and
 *   - carries a D-SACK block for the resent bytes (RFC 2883).
 * The client reads both as "the original arrived, my retransmission was spurious": Eifel
 * detection (RFC 3522; Linux tcp_packet_delayed: the echo is older than its first
 * retransmission) and D-SACK undo revert its loss recovery, so the segments that really were
 * lost in the outage (dropped at the persistent TUN while no gateway ran) are repaired one per
 * retransmission timeout; and each RTT sample (now − the stale echo) grows with the stall, the
 * timeout with it. Captured (drill seed 2, 2026-12-05): acks echoing a TSval 1.5 s, then
 * 3.5 s old, each with a D-SACK; then the holes resent 2 s, 6.3 s and 10.7 s apart.
 *
 *   client TSvals   ──── t_k (last in order before the kill) ─── kill ─── restart ─── v₀ (first seen here) ─── v
 *   server's echo   t_k ........................................................................ until a segment at rcv_nxt
 *   client is sent  v (its latest TSval, ≥ the segment that drew the ack)     while the echo is before v₀
 *
 * So, on an adopted flow, on each server segment that goes (or is held) toward the client:
 *   1. an echo before the TSval of the client's first segment seen here (`catchUpTs`) is
 *      stale: it becomes the client's latest TSval (an RTT sample of the path as it is now, no
 *      retransmission judged spurious). The first current echo ends the rule: TS.Recent only
 *      moves forward, none after it is stale.
 *   2. a SACK block at or below the server's ack (a D-SACK) is removed, until the client has
 *      been acked past the server's ack first learnt (`catchUpEnd`): its resends are over then,
 *      and a later D-SACK is one the network made.
 * Neither touches the ack, the window or the seq: `acked ⇒ stable` is kept by the rules that
 * follow (south.ts), and a client that did get a segment twice only loses an optimisation.
 * The stable-ACK rule removes the blocks between the server's ack and a lower one shown to the
 * client (south-stable.ts sackAbove), on every flow; it does not make rule 2 redundant: a D-SACK
 * is below the server's ack, and reaches the client once that ack does, lowered no more: on a
 * held ACK released when the resent bytes are stable, or on any segment once the log made them
 * stable before the server answered (test/unit/gateway/adopt-catchup.test.ts).
 */
import type { Flow } from '../flow/flow.js';
import { seqLt, type Seq } from '../wire/seq.js';
import type { PacketInfo } from '../wire/packet.js';
import { TcpOptions, parseTcpOptions, TCPOPT_TS_OFF_ECR } from '../wire/tcp-options.js';
import { tcpDropSackBelow, tcpSetU32 } from '../wire/rewrite.js';
import type { SouthStats } from './south-config.js';

/** The first client segment of an adopted flow carried TSval `tsVal`: echoes before it are stale from now on. */
export function catchUpClient(flow: Flow, tsVal: Seq): void {
  flow.catchUpTs = tsVal;
  flow.catchUpTsOn = true;
}

/** The first server segment of an adopted flow acked in-stream offset `acked`: the client may resend below it. */
export function catchUpServer(flow: Flow, acked: number): void {
  flow.catchUpEnd = acked;
}

/** Rules 1 and 2 on an acceptable server segment of `flow`, in place (checksum kept). */
export function catchUp(flow: Flow, buf: Buffer, p: PacketInfo, opts: TcpOptions, stats: SouthStats): void {
  if (flow.catchUpEnd >= 0 && flow.complete >= flow.catchUpEnd) flow.catchUpEnd = -1;
  if (!flow.catchUpTsOn && flow.catchUpEnd < 0) return;
  if (p.optLen === 0 || !parseTcpOptions(buf, p.optOff, p.optLen, opts)) return;
  if (flow.catchUpTsOn && opts.tsOff >= 0) {
    if (seqLt(opts.tsEcr, flow.catchUpTs)) {
      tcpSetU32(buf, p.l4Off, opts.tsOff + TCPOPT_TS_OFF_ECR, flow.cliTsVal);
      stats.adoptStaleEchoes++;
    } else {
      flow.catchUpTsOn = false;
    }
  }
  if (flow.catchUpEnd >= 0 && opts.sackOff >= 0) {
    stats.adoptDsacksRemoved += tcpDropSackBelow(buf, p.l4Off, p.optOff, p.optLen, opts.sackOff, opts.sackCount, p.ack);
  }
}
