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
 */
import { u32ToIp } from '../wire/addr.js';
import { seqAdd, seqDiff } from '../wire/seq.js';
import type { Logger } from '../util/logger.js';
import type { Translation } from '../recovery/translate.js';
import type { Rebuild } from '../recovery/rebuild.js';

export type FlowState = 'SYN_SEEN' | 'SYN_ACKED' | 'ESTABLISHED' | 'CLOSING' | 'CLOSED';

/** The handshake is not complete yet (SYN_SEEN, SYN_ACKED): nothing logged, in the half-open list. */
export function isHalfOpen(state: FlowState): boolean {
  return state === 'SYN_SEEN' || state === 'SYN_ACKED';
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

  clientIsn: number;
  serverIsn = 0;
  clientSynOptions: Buffer;
  serverSynOptions: Buffer = Buffer.alloc(0);
  /** Window shifts in effect (0 when window scaling was not negotiated). */
  clientWscale = 0;
  serverWscale = 0;
  readonly created: number;
  lastActivity: number;

  // in-stream
  received = 0;
  high = 0;
  stable = 0;
  complete = 0;
  /** Highest in-stream offset the server's TCP acknowledged. */
  delivered = 0;
  /** Offset of the client's FIN (one past the last data byte), or -1. */
  clientFin = -1;
  clientFinLogged = false;

  // out-stream
  sndMax = 0;
  cliAcked = 0;
  /** Offset of the server's FIN, or -1, and when it was first forwarded (ms). */
  serverFin = -1;
  serverFinAt = 0;

  /**
   * The server's latest pure ACK whose ack was beyond `stable` (held), or null.
   * `heldAck` is the in-stream offset it acknowledges.
   */
  held: Buffer | null = null;
  heldLen = 0;
  heldAck = 0;

  /**
   * The server's FIN segment, held whole while the ack it carries is beyond `stable`
   * (see SouthWrapper.fromServer), and that ack as an in-stream offset.
   */
  heldFin: Buffer | null = null;
  heldFinAck = 0;

  /** Client bytes that arrived before the log had the connection (offset, copy). */
  pending: Array<{ offset: number; data: Buffer }> | null = null;
  pendingBytes = 0;
  /** Right edge (in-stream offset) of the window the server last advertised. */
  rightEdge = 0;
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
  lastTsToClient = 0;
  /** Highest in-stream offset acknowledged by the server's current incarnation. */
  incDelivered = 0;
  /** Highest out-stream offset (end) the current incarnation sent. */
  incSndMax = 0;
  /** Server FIN/RST segments held for the liveness verdict (in arrival order), or null. */
  verdictHold: Buffer[] | null = null;
  /** Set while the connection is being masked or rebuilt (the server's incarnation died). */
  rec: Rebuild | null = null;
  /** Set once the connection lives in a rebuilt incarnation: translation for its life. */
  xlate: Translation | null = null;
  /** Crashes this connection went through. */
  crashes = 0;
  /** The log failed under `--on-log-failure passthrough`, or the connection went past a bound of the
   *  memory log: forwarded as is, nothing logged or held. */
  unprotected = false;
  /** Went past a bound of the log while being rebuilt: unprotected at the next report after the rebuild. */
  boundDeferred = false;
  /** Extra flow-table keys (FlowTable.alias), or null. */
  aliases: number[] | null = null;

  // ---- half-open list (FlowTable): oldest latest-handshake-segment first ------------
  /** Clock of the latest handshake segment (the SYN, a SYN-ACK), which orders the list. */
  halfOpenAt = 0;
  halfOpenListed = false;
  halfOpenPrev: Flow | null = null;
  halfOpenNext: Flow | null = null;

  constructor(key: number, clientIp: number, clientPort: number, serverIp: number, serverPort: number,
    clientIsn: number, clientSynOptions: Buffer, now: number) {
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
  inOffset(seq: number): number {
    return this.received + seqDiff(seq, seqAdd(this.clientIsn, 1 + (this.received % 0x100000000)));
  }

  /** The sequence number of in-stream offset `off`. */
  inSeq(off: number): number {
    return seqAdd(this.clientIsn, 1 + (off % 0x100000000));
  }

  /** The sequence number (client's view) of out-stream offset `off`. */
  outSeq(off: number): number {
    return seqAdd(this.serverIsn, 1 + (off % 0x100000000));
  }

  /** The out-stream offset of sequence number `seq` (server → client). */
  outOffset(seq: number): number {
    return this.sndMax + seqDiff(seq, seqAdd(this.serverIsn, 1 + (this.sndMax % 0x100000000)));
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

