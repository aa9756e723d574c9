/**
 * One protected TCP connection as the gateway sees it (DESIGN.md §2).
 *
 *   in-stream  (client → server): offsets count bytes from the client's ISN+1
 *
 *     0 ........ complete ≤ stable ≤ received ≤ high
 *                   │         │         │        └ highest offset seen from the client
 *                   │         │         └ gap-free prefix seen from the client
 *                   │         └ gap-free prefix the log holds stably
 *                   └ highest ack the gateway let reach the client
 *
 *   out-stream (server → client): offsets count bytes from the server's ISN+1
 *     cliAcked ≤ sndMax
 *
 * Offsets are plain numbers (a stream may exceed 2^32 bytes); a 32-bit sequence number
 * is turned into an offset relative to a nearby known offset (`received`, `sndMax`),
 * which is exact while the two are within 2^31 of each other (always, for TCP).
 *
 * States (one transition function, `Flow.to`, logs `from → to`):
 *
 *   SYN_SEEN ──server SYN-ACK──▶ SYN_ACKED ──client ACK of the server's ISN+1──▶ ESTABLISHED ──first FIN──▶ CLOSING
 *      │      (acks client ISN+1)     │         (its third ACK or first data; the log     │                      │
 *      │                              │          registers the connection here: log.open)  │     both FINs acked  ▼
 *      └─ half-open: timeout, eviction at the cap, RST ─┴──▶ released    client RST, server RST ──────────────▶ CLOSED
 *
 * SYN_SEEN and SYN_ACKED are half-open: nothing is logged for them (a SYN flood costs the log
 * nothing), they sit in the flow table's half-open list (oldest first) and leave it at the end
 * of the handshake, at `--half-open-timeout` after their latest handshake segment, or evicted
 * (the oldest) when `--max-half-open` is reached (FlowTable.halfOpen*).
 * CLOSED flows are released by the flow table after a short linger (late retransmissions).
 *
 * A flow made from the log by a restarted gateway (src/gateway/adopt.ts) starts ESTABLISHED
 * (or CLOSING) with `adopting` = ADOPT_CLIENT | ADOPT_SERVER: what the log cannot know is learnt
 * from each side's first segment that passes the checks (src/wrappers/south-judge.ts adopt*),
 * and each bit is cleared as its side is learnt.
 */
import { u32ToIp } from '../wire/addr.js';
import { seqAdd, seqDiff, type Offset, type Seq } from '../wire/seq.js';
import type { Logger } from '../util/logger.js';

export type FlowState = 'SYN_SEEN' | 'SYN_ACKED' | 'ESTABLISHED' | 'CLOSING' | 'CLOSED';

/** The handshake is not complete yet (SYN_SEEN, SYN_ACKED): nothing logged, in the half-open list. */
export function isHalfOpen(state: FlowState): boolean {
  return state === 'SYN_SEEN' || state === 'SYN_ACKED';
}

/** `Flow.adopting` bits: the side whose numbers are not learnt yet (an adopted flow). */
export const ADOPT_CLIENT = 1;
export const ADOPT_SERVER = 2;

/** The largest window a side can offer under shift `shift` (a 16-bit field, scaled). */
export function maxWindow(shift: number): number {
  return 0xffff * 2 ** shift;
}

export class Flow {
  state: FlowState = 'SYN_SEEN';
  /** Log id; -1 until the log has the connection's metadata. */
  logId = -1;
  readonly key: number;
  readonly clientIp: number;
  readonly clientPort: number;
  readonly serverIp: number;
  readonly serverPort: number;

  clientIsn: Seq;
  serverIsn = 0 as Seq;
  clientSynOptions: Buffer;
  serverSynOptions: Buffer = Buffer.alloc(0);
  /** Window shifts in effect (0 when window scaling was not negotiated). */
  clientWscale = 0;
  serverWscale = 0;
  readonly created: number;
  lastActivity: number;

  // in-stream
  received: Offset = 0;
  high: Offset = 0;
  stable: Offset = 0;
  complete: Offset = 0;
  /** Highest in-stream offset the server's TCP acknowledged. */
  delivered: Offset = 0;
  /** Offset of the client's FIN (one past the last data byte), or -1. */
  clientFin: Offset = -1;
  clientFinLogged = false;

  // out-stream
  sndMax: Offset = 0;
  cliAcked: Offset = 0;
  /** Offset of the server's FIN, or -1, and when it was first forwarded (ms). */
  serverFin: Offset = -1;
  serverFinAt = 0;

  /**
   * The server's latest pure ACK whose ack was beyond `stable` (held), or null.
   * `heldAck` is the in-stream offset it acknowledges.
   */
  held: Buffer | null = null;
  heldLen = 0;
  heldAck: Offset = 0;

  /**
   * The server's FIN segment, held whole while the ack it carries is beyond `stable`
   * (see SouthWrapper.fromServer), and that ack as an in-stream offset.
   */
  heldFin: Buffer | null = null;
  heldFinAck: Offset = 0;

  /** Client bytes that arrived before the log had the connection (offset, copy). */
  pending: Array<{ offset: Offset; data: Buffer }> | null = null;
  pendingBytes = 0;
  /** Right edge (in-stream offset) of the window the server last advertised. */
  rightEdge: Offset = 0;
  /**
   * The furthest right edge the server advertised (in-stream offset): what a client may send
   * (a receiver never takes back a window it offered). A new incarnation's first windows,
   * relative to its replay, lie far behind it.
   */
  maxRightEdge: Offset = 0;
  /** The largest window the server advertised (bytes, scaled); 0: none yet. */
  srvMaxWindow = 0;
  /** Right edge (out-stream offset) of the largest window the client advertised (0: none yet). */
  cliRightEdge: Offset = 0;
  /**
   * A half-open flow's other SYN: a SYN with another ISN on the same tuple before the
   * server answered (see SouthWrapper.synOnFlow), or null. The SYN-ACK says which one the
   * server took.
   */
  altSyn: { isn: Seq; options: Buffer; window: number } | null = null;
  closedAt = 0;

  // ---- crash masking and recovery (src/recovery) -----------------------------------
  /** Both SYNs carried timestamps / SACK-permitted (so every segment may carry them). */
  tsOk = false;
  sackOk = false;
  /** The client's SYN window field (unscaled, as in any SYN). */
  clientSynWindow = 0;
  /** The client's latest TSval and raw window field. */
  cliTsVal = 0;
  cliWindow = 0;
  /** The largest window the client ever offered, in bytes (scaled). */
  cliMaxWindow = 0;
  /** The latest TSval the client saw from the server (after translation). */
  lastTsToClient = 0 as Seq;
  /**
   * The north side's record of the connection (crash masking, the rebuild, the translation:
   * src/recovery/rebuild.ts's NorthRecord, read through its accessors), or null until it
   * needs one. Opaque here, so that the flow imports nothing from the engine that works on it:
   * the parts stand recovery → flow, never both ways.
   */
  north: object | null = null;
  /** Crashes this connection went through. */
  crashes = 0;
  /** The log failed under `--on-log-failure passthrough`, or the connection went past a bound of the
   *  memory log: forwarded as is, nothing logged or held. */
  unprotected = false;
  /** Went past a bound of the log while being rebuilt: unprotected at the next report after the rebuild. */
  boundDeferred = false;
  /** Made from the log by a restarted gateway (src/gateway/adopt.ts), not from a handshake seen here. */
  adopted = false;
  /** ADOPT_CLIENT | ADOPT_SERVER: the sides not learnt yet (0: none left, or not adopted). */
  adopting = 0;
  /**
   * An adopted flow catching up (src/wrappers/south-catchup.ts): the TSval of the client's first
   * segment this gateway saw (an echo older than it is stale) while `catchUpTsOn`, and the
   * server's cumulative ack as first learnt (in-stream offset; -1: off) while the client may
   * still resend bytes the server had, which draw D-SACKs.
   */
  catchUpTs = 0 as Seq;
  catchUpTsOn = false;
  catchUpEnd = -1;
  /**
   * The adoption gate's record of this adopted connection while the server process it lives in
   * is not settled (src/gateway/adopt-gate.ts: waiting for the supervisor's word, or released on
   * probation), else null. Opaque here, as `north` is: the south wrapper only asks the gateway
   * about a segment of a flow that has one (SouthEvents.gated), so no other flow pays for it.
   */
  gate: object | null = null;
  /** Extra flow-table keys (FlowTable.alias), or null. */
  aliases: number[] | null = null;

  // ---- half-open list (FlowTable): oldest latest-handshake-segment first ------------
  /** Clock of the latest handshake segment (the SYN, a SYN-ACK), which orders the list. */
  halfOpenAt = 0;
  halfOpenListed = false;
  halfOpenPrev: Flow | null = null;
  halfOpenNext: Flow | null = null;

  constructor(key: number, clientIp: number, clientPort: number, serverIp: number, serverPort: number,
    clientIsn: Seq, clientSynOptions: Buffer, now: number) {
    this.key = key;
    this.clientIp = clientIp;
    this.clientPort = clientPort;
    this.serverIp = serverIp;
    this.serverPort = serverPort;
    this.clientIsn = clientIsn;
    this.clientSynOptions = clientSynOptions;
    this.created = now;
    this.lastActivity = now;
  }

  /** The in-stream offset of sequence number `seq` (client → server). */
  inOffset(seq: Seq): Offset {
    return this.received + seqDiff(seq, seqAdd(this.clientIsn, 1 + (this.received % 0x100000000)));
  }

  /** The sequence number of in-stream offset `off`. */
  inSeq(off: Offset): Seq {
    return seqAdd(this.clientIsn, 1 + (off % 0x100000000));
  }

  /** The sequence number (client's view) of out-stream offset `off`. */
  outSeq(off: Offset): Seq {
    return seqAdd(this.serverIsn, 1 + (off % 0x100000000));
  }

  /** The out-stream offset of sequence number `seq` (server → client). */
  outOffset(seq: Seq): Offset {
    return this.sndMax + seqDiff(seq, seqAdd(this.serverIsn, 1 + (this.sndMax % 0x100000000)));
  }

  // ---- acceptability (RFC 793 §3.3, RFC 5961): the gateway is a careful receiver ----
  //
  // The gateway knows neither side's rcv_nxt exactly, only the range it lies in:
  //
  //   server's rcv_nxt (in-stream):   delivered ≤ rcv_nxt ≤ received (+1 once the client's FIN is in)
  //                                   (what it acked)      (what the gateway forwarded gap-free)
  //   client's rcv_nxt (out-stream):  cliAcked  ≤ rcv_nxt ≤ sndMax (FIN included)
  //
  // A segment outside what its receiver could accept changes nothing here: no offset, no
  // FIN, no state moves and nothing is logged (issue 11 items 2-4).

  /**
   * Would the server accept a client segment [off, end) (end: its data's end)? It must start
   * no further than the right edge the client was told (the server's, rounded up by at most
   * one window unit when the gateway rewrote the window), and not be older than a window:
   * the client's snd_una is at most a window behind the gateway's last ack to it (`complete`;
   * a retransmission sent before that ack arrived races it), and a keepalive probe sits at
   * snd_una − 1 (RFC 5961 §5's SND.UNA − MAX.SND.WND, seen from the other side).
   */
  clientSeqOk(off: Offset, end: Offset): boolean {
    const win = Math.max(this.srvMaxWindow, 0xffff);
    return off <= this.srvEdge() + 2 ** this.serverWscale && end + 1 + win >= this.complete;
  }

  /** The right edge of the server's receive window (in-stream offset), the furthest it offered. */
  srvEdge(): Offset {
    return Math.max(this.rightEdge, this.maxRightEdge);
  }

  /**
   * The right edge of the client's receive window (out-stream offset): the largest it ever
   * advertised (a receiver accepts what it once offered), at least its SYN's window.
   */
  cliEdge(): Offset {
    return Math.max(this.cliRightEdge, this.clientSynWindow);
  }

  /**
   * Would the client accept a server segment [o, e) (e: its end, a FIN included)? Inside its
   * window (plus one window unit: the gateway's own window toward a new incarnation is
   * rounded up), and not older than its window: ending at or after cliAcked − the largest
   * window it offered (RFC 5961 §5's SND.UNA − MAX.SND.WND, seen from the other side). While
   * a connection is rebuilt the new incarnation regenerates output from offset 0, far below
   * what the client acked: only the edge applies then (`rebuilding`: the north side says so).
   */
  serverSeqOk(o: Offset, e: Offset, rebuilding: boolean): boolean {
    if (o < -1 || o > this.cliEdge() + 2 ** this.clientWscale) return false;
    if (rebuilding) return e >= 0;
    return e >= this.cliAcked - Math.max(this.cliMaxWindow, this.clientSynWindow);
  }

  /**
   * RFC 5961 §3.2, the server as the receiver: a client RST ends the connection only at the
   * server's rcv_nxt (Linux: or rcv_nxt − 1 once the client's FIN is in, tcp_reset_check).
   * The gateway takes the whole range rcv_nxt may be in: exact when the server has acked all
   * it was given (an idle connection); otherwise an attacker must fall among the bytes in
   * flight. Narrower (delivered only) would miss a real client's RST while an ACK is delayed,
   * and that flow would stay ESTABLISHED for ever (protected flows never idle out).
   */
  clientRstOk(off: Offset): boolean {
    const fin = this.clientFin >= 0 && this.received >= this.clientFin;
    const lo = fin && this.delivered > this.clientFin ? this.clientFin : this.delivered;
    const hi = Math.max(this.received, this.delivered) + (fin ? 1 : 0);
    return off >= lo && off <= hi;
  }

  /** The same for a server RST, the client as the receiver: [cliAcked, sndMax] (sndMax counts the FIN). */
  serverRstOk(o: Offset): boolean {
    const lo = this.serverFin >= 0 && this.cliAcked > this.serverFin ? this.serverFin : this.cliAcked;
    return o >= lo && o <= this.sndMax;
  }

  /** The highest in-stream offset a server may acknowledge: what the client sent (and its FIN). */
  ackLimit(): Offset {
    return this.high + 1;
  }

  /** Both FINs acknowledged: the client's by the server (or the gateway), the server's by the client. */
  finsAcked(): boolean {
    return this.clientFin >= 0 && this.complete > this.clientFin && this.serverFin >= 0 && this.cliAcked > this.serverFin;
  }

  to(next: FlowState, why: string, log?: Logger): void {
    if (this.state === next) return;
    log?.debug({ flow: this.describe(), from: this.state, to: next, why }, 'flow state');
    this.state = next;
  }

  describe(): string {
    return `${u32ToIp(this.clientIp)}:${this.clientPort}>${u32ToIp(this.serverIp)}:${this.serverPort}`;
  }
}

