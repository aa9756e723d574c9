/**
 * The wrappers' contract: what the south wrapper (src/wrappers/south.ts) and the north wrapper
 * (the recovery engine, src/recovery/) say about each protected segment, and how the gateway
 * counts it (DESIGN.md §3-5; the form of src/wire/packet.ts's verdicts, and Linux's
 * `enum skb_drop_reason`: a drop is never a bare "no", it names why).
 *
 *   gateway ──▶ wrapper.fromClient / fromServer(svc, buf, p) ──▶ FORWARD (0): the packet, possibly
 *                                                                 rewritten in place, goes on
 *                                                           └──▶ a DropReason: not forwarded
 *   the gateway counts the reason returned, once (WrapperDrops), and /status, /metrics
 *   (`ftcp_drops_total{reason=…}`), `ftcp status` and the drill report show the counts.
 *
 * A drop here is not an error: most reasons are the protocol working (an ACK held until the log
 * has the bytes it acknowledges, the dead incarnation silenced, regenerated output absorbed).
 * Each reason has one meaning; two code paths that drop for the same reason share it.
 * The per-reason counts are the single source for wrapper drops (other counters of the
 * wrappers say what happened to a flow, not how many packets were dropped).
 */
import type { Service } from '../flow/table.js';
import type { PacketInfo } from '../wire/packet.js';

/** The packet goes on (rewritten in place where the wrapper had to). */
export const FORWARD = 0;

export const DropReason = {
  // ---- south wrapper (the stable-ACK rule and validation against the flow) ----
  /** A server ACK beyond the stable point with nothing else in it: held, sent as stability advances. */
  ACK_HELD_UNSTABLE: 1,
  /** A server FIN acking client bytes not yet stable: held whole, sent when they are. */
  FIN_HELD_UNSTABLE: 2,
  /** A server FIN/RST held for the liveness verdict (released if the process lives), or suppressed (it died). */
  HELD_FOR_VERDICT: 3,
  /** A retransmission of a server FIN the client acked or that just went out (see finRepeated). */
  FIN_RETRANSMIT: 4,
  /** A server segment after both FINs were acked: only a client socket that is gone could get it. */
  AFTER_CLOSE: 5,
  /** A server SYN on a synchronized flow other than a retransmitted SYN-ACK (RFC 5961 §4). */
  SERVER_SYN: 6,
  /** A server RST not at the client's rcv_nxt (RFC 5961 §3). */
  SERVER_RST_OUT_OF_WINDOW: 7,
  /** A server segment acknowledging client bytes never sent (Linux SKB_DROP_REASON_TCP_ACK_UNSENT_DATA). */
  SERVER_ACK_UNSENT: 8,
  /** A server pure ACK outside the client's window acking beyond the stable point: it would move nothing. */
  SERVER_OUT_OF_WINDOW: 9,
  /** A server RST answering a client SYN while the service is down: the client sends its SYN again. */
  SYN_RST_WHILE_DOWN: 10,
  // ---- north wrapper (crash masking and the rebuild) ----
  /** A client segment while the connection is masked or its handshake runs (logged by the south wrapper, kept from the server). */
  CLIENT_WHILE_MASKED: 11,
  /** A client segment of a connection whose rebuild failed (answered with a RST). */
  CLIENT_REBUILD_FAILED: 12,
  /** A client RST ending a recovery before a new incarnation has the connection. */
  CLIENT_RST_RECOVERING: 13,
  /** A client pure ACK during the replay, replaced by the gateway's own ACK at the replay's sequence number. */
  CLIENT_ACK_REPLACED: 14,
  /** A server segment while the connection is masked or its rebuild failed: the dead incarnation's. */
  SERVER_WHILE_MASKED: 15,
  /** A server segment toward a client port the connection no longer uses (the dead incarnation's). */
  STALE_PORT: 16,
  /** A server segment on the connection's tuple in the dead incarnation's numbering (a late one). */
  DEAD_SEQ: 17,
  /** A dead incarnation's orphan retransmitting its FIN during the new handshake. */
  DEAD_FIN: 18,
  /** A server segment on the rebuild's port during its handshake (the SYN-ACK, a refusal, a challenge ACK): taken by the rebuild. */
  DURING_HANDSHAKE: 19,
  /** The new incarnation's SYN-ACK again after the handshake (our ACK was lost): acked again. */
  SYN_ACK_REPEAT: 20,
  /** Regenerated output the client already acknowledged: acked to the server by the gateway (step 5). */
  ABSORBED: 21,
  /** The new incarnation's pure ACK of replayed bytes: the client has those acknowledged already. */
  REPLAY_ACK: 22,
  // ---- judged by the gateway for the north wrapper (ICMP is not a wrapper path) ----
  /** An ICMP error toward a client about a connection being masked or rebuilt. */
  ICMP_ABOUT_MASKED: 23,
  // ---- north wrapper: the comparison of a rebuild's output (src/recovery/verify.ts) ----
  /** Regenerated output beyond a gap, over the comparison's hold cap: the new incarnation retransmits it. */
  REGENERATED_HELD_FULL: 24,
  /** A server segment of a connection just reset because its regenerated output diverged. */
  DIVERGED: 25,
  // ---- north wrapper, the durable record (src/recovery/durable.ts) ----
  /** A translated server segment toward the client before its translation is stable in the log (the incarnation retransmits). */
  TRANSLATION_UNSTABLE: 26,
  // ---- south wrapper, a connection adopted from the log (src/gateway/adopt.ts) ----
  /** An adopted connection's segment that fails the checks of its side's first numbers (forged, or implausible): not trusted. */
  ADOPT_UNCHECKED: 27,
  // ---- judged by the gateway: fenced at the log server (src/log/remote/epochs.ts) ----
  /** A protected packet (either way, or one the gateway made) while another gateway holds the log's epoch: nothing is acked or forwarded. */
  FENCED: 28,
  // ---- judged by the gateway: its role (src/gateway/standby.ts) ----
  /** A protected packet (either way, or one the gateway made) at a --standby gateway that is not active: never forwarded, never logged (TCP retransmits). */
  STANDBY: 29,
} as const;

export type DropReason = (typeof DropReason)[keyof typeof DropReason];

/** What a wrapper says about a segment: FORWARD or why not. */
export type WrapperVerdict = typeof FORWARD | DropReason;

/** One more than the largest reason: the counters' size. */
export const DROP_REASON_COUNT = 30;

const NAMES: readonly string[] = (() => {
  const a: string[] = new Array<string>(DROP_REASON_COUNT).fill('');
  a[FORWARD] = 'FORWARD';
  for (const [k, v] of Object.entries(DropReason)) a[v] = k;
  return a;
})();

/** The reason's name ("ABSORBED"), "FORWARD" for 0, or "UNKNOWN_<n>". Returns a constant string. */
export function dropReasonName(v: number): string {
  return v >= 0 && v < DROP_REASON_COUNT ? NAMES[v]! : `UNKNOWN_${v}`;
}

/**
 * What a wrapper implements: one segment of a protected service, in place. Both wrappers do
 * (SouthWrapper, and the north wrapper, src/recovery/engine.ts's NorthWrapper), each finding
 * its flow in the shared flow table; the gateway composes them in one fixed order (drawn at
 * the top of src/gateway/gateway.ts).
 */
export interface Wrapper {
  /** A segment from a client toward the service. */
  fromClient(svc: Service, buf: Buffer, p: PacketInfo): WrapperVerdict;
  /** A segment from the service toward a client. */
  fromServer(svc: Service, buf: Buffer, p: PacketInfo): WrapperVerdict;
}

/**
 * The one place the gateway counts wrapper drops, by reason (a flat array: no allocation per
 * packet). Anything outside the table (a bug) is counted apart, never thrown.
 */
export class WrapperDrops {
  readonly counts: Float64Array = new Float64Array(DROP_REASON_COUNT);
  unknown = 0;

  /** Counts a verdict that is not FORWARD; FORWARD itself is not a drop and is ignored. */
  count(v: number): void {
    if (v === FORWARD) return;
    if (v > 0 && v < DROP_REASON_COUNT) this.counts[v]!++;
    else this.unknown++;
  }

  get(v: number): number {
    return v > 0 && v < DROP_REASON_COUNT ? this.counts[v]! : 0;
  }

  /** Every drop counted. */
  get total(): number {
    let n = this.unknown;
    for (let v = 1; v < DROP_REASON_COUNT; v++) n += this.counts[v]!;
    return n;
  }

  /** Every reason by name with its count (zeros included, so the shape is stable). */
  snapshot(): Record<string, number> {
    const r: Record<string, number> = {};
    for (let v = 1; v < DROP_REASON_COUNT; v++) r[NAMES[v]!] = this.counts[v]!;
    if (this.unknown > 0) r.UNKNOWN = this.unknown;
    return r;
  }
}

/** A drops-by-reason map as one line of text: the non-zero reasons, largest first ("none" if none). */
export function formatDrops(drops: Readonly<Record<string, number>> | undefined): string {
  const nz = Object.entries(drops ?? {}).filter(([, n]) => n > 0);
  if (nz.length === 0) return 'none';
  nz.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return nz.map(([k, n]) => `${k} ${n}`).join(', ');
}
