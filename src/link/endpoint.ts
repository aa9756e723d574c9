/**
 * LinkEndpoint: one side of the log link protocol (DESIGN.md §6, seed 000 FIGS. 4-7) as
 * pure state machines. No sockets, no real timers: the owner (UdpLink, or the simulated
 * network in sim.ts) feeds `receive(datagram, pathIndex, now)` and `tick(now)`, and
 * the endpoint answers through the injected `transmit(datagram, pathIndex)` and the
 * callbacks. Frames are described in frame.ts.
 *
 * Three state machines, each with ONE transition function that logs `from → to`:
 *
 * Transmit (FIG. 4)                          txTransition()
 *
 *     ┌────────┐  peer acks through base-1   ┌──────┐
 *     │ RESET  │ ──────────────────────────▶ │ OPEN │
 *     └────────┘ ◀────────────────────────── └──────┘
 *      DATA frames      peer inactive (FIG. 7 step 735) or peer restarted:
 *      carry RESET      buffers cleared, numbering restarts at base = next seq
 *      (step 330)       (FIG. 4 steps 320-330)
 *
 * Receive and reject (FIGS. 5 and 6)          rxTransition()
 *
 *   UNSYNCED ──first DATA (adopt its base)──▶ IN_SEQUENCE ◀──────────────────┐
 *      ▲                                        │     ▲   caught up: receive  │
 *      │ peer restarted (new boot id)           │gap  │   buffer empty        │
 *      │                                        ▼     │   (step 515)          │
 *      │                                 ┌────────────┴┐                      │
 *      │                                 │   REJECT    │ REJECT once the gap  │
 *      │                                 │             │ outlives the reorder │
 *      │                                 │             │ window (545), again  │
 *      │                                 └──────┬──────┘ at a backed-off      │
 *      │                                        │        interval (620)       │
 *      │                    maxRejects without  │                             │
 *      │                    progress: buffers   ▼                             │
 *      │                    cleared (630-635) RESYNC_ARMED ──next DATA────────┘
 *                           (also entered when the peer is   accepted as in
 *                            declared inactive: step 425)    sequence (435-440)
 *
 * Connectivity (FIG. 7), evaluated every checkIntervalMs     connTransition()
 *
 *   INACTIVE ──any authentic frame (step 475)──▶ ACTIVE ◀──any authentic frame──┐
 *      ▲   (CHECKs every interval, alternating   │ silent one interval:          │
 *      │    networks, to find the peer again)    │ CHECK on current network (745)│
 *      │                                         ▼                               │
 *      │                                       SILENT ──still silent: switch─▶ SWITCHED
 *      │                                                network, CHECK (755)   │
 *      └──────────── silent ≥ inactiveAfterMs (730-740): buffers cleared ───────┘
 *
 * Delivery semantics (what `send` returning true promises):
 *  * Within one session (both boot ids unchanged), messages are delivered to the peer's
 *    onMessage exactly once and in send order, EXCEPT messages reported to this side's
 *    `onLost`. A message is reported lost when
 *      - the peer resynchronised past one of its frames (bounded REJECTs without
 *        progress, FIG. 6; or the peer had declared us inactive, FIG. 5 step 425)
 *        — reason 'resync', learned from the rsGen/rsFrom/rsCount fields every frame
 *        carries; if two or more peer resyncs were missed, every unacked-by-then frame
 *        through the peer's ack is reported — reason 'uncertain' (it may have been
 *        delivered; the owner must treat it as not delivered);
 *      - the peer was declared inactive (reason 'inactive'): every unacknowledged
 *        message is reported, though some may have reached the peer;
 *      - the peer restarted (new boot id; reason 'peer-restart').
 *    A reported message is never delivered partially; it may or may not have been
 *    delivered whole. No unreported message is lost, duplicated or reordered.
 *  * The log layer above resends what is not yet stable; that is its job, not ours.
 *
 * Loss repair (issue 10: under reordering and load the seed's "REJECT at once, resend
 * everything outstanding" fed on itself until the link carried only retransmissions):
 *  * a gap is first taken for reordering: the REJECT waits `reorderWindowMs`;
 *  * a REJECT is selective: it lists the gaps and the highest seq held; the sender resends
 *    only those frames, and only frames sent at least a smoothed RTT ago (`retransmitsHeld`);
 *  * the retransmission timeout adapts (RFC 6298 estimate, floor `rtoMs`) and backs off
 *    exponentially to `maxRtoMs`; it skips frames the peer reported held, until a second
 *    timeout without progress (the peer may have dropped them in a resync);
 *  * REJECTs repeat at a backed-off interval, so the `maxRejects` without progress that
 *    end in a resynchronisation take ~1.3 s or more: a last resort, not a load response.
 *  Retransmissions are thus bounded by one window per RTT, whatever the loss pattern.
 *  * Flow control: a bounded transmit window of `windowFrames` sequence numbers and
 *    `windowBytes` bytes of payload. `send` NEVER queues beyond it: it returns false
 *    (nothing accepted, nothing promised) when the window is full or the peer is not
 *    active; `onWritable` is called once room appears again.
 *  * Messages larger than one frame are chunked (CHUNK_FIRST/CHUNK_LAST, one seq per
 *    chunk); a message must fit the window (throws FtcpError FTCP_LINK_TOO_LARGE).
 *
 * Security: every frame carries an HMAC-SHA256/128 with the shared key (forged →
 * counted, dropped), the session ids of both ends (a frame of an older session of
 * either side → `replayed`), and a 64-bit datagram number checked against a sliding
 * anti-replay window (a datagram seen before → `replayed`; this includes datagrams the
 * network duplicated). Retransmissions are new datagrams: a retransmitted DATA frame
 * already received counts as `duplicates`.
 */
import { randomInt } from 'node:crypto';
import type { Logger } from '../util/logger.js';
import { logger as rootLogger } from '../util/logger.js';
import { FtcpError, invariant } from '../util/errors.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqInWindow, seqLt, type Seq } from '../wire/seq.js';
import {
  decodeFrame,
  encodeFrame,
  blankFrame,
  F_ACK,
  F_CHECK,
  F_CHECK_REPLY,
  F_CHUNK_FIRST,
  F_CHUNK_LAST,
  F_DATA,
  F_REJECT,
  F_RESET,
  FRAME_OVERHEAD,
  type Frame,
} from './frame.js';

export type PeerEvent = 'active' | 'inactive' | 'resync';
export type LostReason = 'resync' | 'uncertain' | 'inactive' | 'peer-restart';
export type TxState = 'RESET' | 'OPEN';
export type RxState = 'UNSYNCED' | 'IN_SEQUENCE' | 'REJECT' | 'RESYNC_ARMED';
export type ConnState = 'INACTIVE' | 'ACTIVE' | 'SILENT' | 'SWITCHED';

/** Timers and limits; defaults suit a LAN (the seed's telephony values in brackets). */
export interface LinkTimers {
  /** Send a pure ACK when received data has waited this long unacknowledged. */
  ackDelayMs: number;
  /** ...or at once when this many in-order frames are unacknowledged [seed: 8]. */
  ackEvery: number;
  /**
   * Sender-side retransmission of the oldest unacked frames without ack progress: the
   * floor of the adaptive timeout (smoothed RTT + 4 × its deviation, RFC 6298), which
   * doubles on every timeout without progress up to maxRtoMs.
   */
  rtoMs: number;
  /** Ceiling of the retransmission timeout after backoff. */
  maxRtoMs: number;
  /** How many of the oldest unacked frames one retransmission timeout resends. */
  rtoBurst: number;
  /**
   * A gap in the received sequence is first taken for reordering: the REJECT goes out
   * only if the gap is still open this long after it appeared (a late datagram fills it
   * meanwhile, and nothing is resent). The role of TCP's three duplicate ACKs / RACK.
   */
  reorderWindowMs: number;
  /**
   * Interval between REJECTs while in the reject state [seed: 300 ms]; at least twice the
   * smoothed RTT, and doubled for every REJECT without progress (up to 16 ×), so that a
   * slow peer is given time to answer before it is asked again.
   */
  rejectIntervalMs: number;
  /** REJECTs without progress before resynchronising [seed: 7 or 8]. */
  maxRejects: number;
  /** Connectivity evaluation interval (FIG. 7). */
  checkIntervalMs: number;
  /** Silence after which the peer is declared inactive. */
  inactiveAfterMs: number;
}

export const DEFAULT_TIMERS: LinkTimers = {
  ackDelayMs: 5,
  ackEvery: 8,
  rtoMs: 40,
  maxRtoMs: 1000,
  rtoBurst: 16,
  reorderWindowMs: 10,
  rejectIntervalMs: 20,
  maxRejects: 8,
  checkIntervalMs: 50,
  inactiveAfterMs: 600,
};

/** Largest UDP payload over IPv4 (65535 - 20 - 8). */
export const MAX_UDP_DATAGRAM = 65_507;
/** Default largest datagram (frame overhead included). */
export const DEFAULT_MAX_DATAGRAM = 16 * 1024;

export interface LinkOptions extends Partial<LinkTimers> {
  /** Shared HMAC key (at least 16 bytes). */
  key: Buffer;
  transmit: (datagram: Buffer, pathIndex: number) => void;
  onMessage?: (msg: Buffer) => void;
  onPeerState?: (state: PeerEvent) => void;
  /** Messages (ids as returned by `lastMessageId` after `send`) that may be lost. */
  onLost?: (ids: number[], reason: LostReason) => void;
  /** Room in the window again after `send` returned false. */
  onWritable?: () => void;
  /** Number of networks (1 or 2). Default 2. */
  paths?: number;
  /** Transmit window in sequence numbers (frames). Default 1024. */
  windowFrames?: number;
  /** Transmit window in payload bytes. Default 1 MiB. */
  windowBytes?: number;
  /**
   * Largest datagram, frame overhead included (bytes). Default DEFAULT_MAX_DATAGRAM (16 KiB):
   * on a LAN or loopback the kernel fragments and reassembles it, and one HMAC and one
   * send per 16 KiB instead of per 1.2 KiB is what lets the log keep up with a gateway.
   * Use 1268 (a 1200-byte payload) where IP fragmentation is unwelcome. Messages above
   * one frame are chunked.
   */
  maxDatagram?: number;
  /** Payload bytes per frame; overrides maxDatagram (maxDatagram - FRAME_OVERHEAD). */
  chunkSize?: number;
  /** Session/boot id (non-zero u32). Default random. */
  bootId?: number;
  /** Initial sequence number. Default random. */
  initialSeq?: number;
  /** Time at construction (ms, the same clock as tick/receive). Default 0. */
  now?: number;
  name?: string;
  log?: Logger;
}

export interface LinkCounters {
  /** Messages accepted by send(). */
  messagesSent: number;
  /** DATA frames sent for the first time. */
  sent: number;
  retransmitted: number;
  /**
   * Resends a REJECT asked for that were not made because the frame had been sent less
   * than a round trip before (its copy may still be on the way).
   */
  retransmitsHeld: number;
  /** Retransmission timeouts (each resends at most rtoBurst of the oldest frames). */
  timeouts: number;
  rejectsSent: number;
  rejectsReceived: number;
  /** Our receiver resynchronised (skipped sequence numbers, or followed a RESET). */
  resyncs: number;
  /** The peer told us it resynchronised past frames of ours. */
  peerResyncs: number;
  pathSwitches: number;
  checksSent: number;
  forged: number;
  replayed: number;
  duplicates: number;
  malformed: number;
  outOfWindow: number;
  /** Chunks thrown away because their message lost a chunk to a resync. */
  discardedChunks: number;
  /** Messages delivered to onMessage. */
  delivered: number;
  /** Messages reported through onLost. */
  lost: number;
  datagramsIn: number;
  datagramsOut: number;
}

function zeroCounters(): LinkCounters {
  return {
    messagesSent: 0,
    sent: 0,
    retransmitted: 0,
    retransmitsHeld: 0,
    timeouts: 0,
    rejectsSent: 0,
    rejectsReceived: 0,
    resyncs: 0,
    peerResyncs: 0,
    pathSwitches: 0,
    checksSent: 0,
    forged: 0,
    replayed: 0,
    duplicates: 0,
    malformed: 0,
    outOfWindow: 0,
    discardedChunks: 0,
    delivered: 0,
    lost: 0,
    datagramsIn: 0,
    datagramsOut: 0,
  };
}

interface TxEntry {
  seq: Seq;
  msgId: number;
  /** CHUNK_FIRST / CHUNK_LAST bits. */
  chunk: number;
  payload: Buffer;
  /** When it was last put on the wire. */
  sentAt: number;
  /** Times it was sent again (an RTT sample is taken only from frames sent once: Karn). */
  retx: number;
  /** The peer's last REJECT reported it held (buffered beyond a gap): no resend on timeout. */
  sacked: boolean;
}

interface RxEntry {
  flags: number;
  payload: Buffer;
}

/** Most gaps one REJECT lists (its payload: u32 highest seq held, then u32 start + u32 count per gap). */
export const MAX_REJECT_GAPS = 64;

/** Anti-replay window size in datagrams (RFC 6479 / WireGuard style). */
const REPLAY_WINDOW = 4096;
const RETIRED_BOOTS = 8;

export class LinkEndpoint {
  readonly bootId: number;
  readonly counters: LinkCounters = zeroCounters();
  readonly timers: LinkTimers;

  private readonly key: Buffer;
  private readonly transmitFn: (datagram: Buffer, pathIndex: number) => void;
  private readonly onMessageFn: (msg: Buffer) => void;
  private readonly onPeerStateFn: (state: PeerEvent) => void;
  private readonly onLostFn: (ids: number[], reason: LostReason) => void;
  private readonly onWritableFn: () => void;
  private readonly nPaths: number;
  private readonly windowFrames: number;
  private readonly windowBytes: number;
  private readonly chunkSize: number;
  private readonly log: Logger;
  private now: number;

  // ---- session / anti-replay
  private peerBoot = 0;
  private readonly retired: number[] = [];
  private pktCounter = 0;
  private replayMax = -1;
  private readonly replayBits = new Uint32Array(REPLAY_WINDOW / 32);

  // ---- transmit (FIG. 4)
  private tx: TxState = 'RESET';
  private txBase: Seq;
  private sndNext: Seq;
  private sndUna: Seq;
  private readonly txq: TxEntry[] = [];
  private txHead = 0; // txq[txHead] has seq sndUna
  private txBytes = 0;
  private msgCounter = 0;
  private readonly reportedLost = new Set<number>();
  private lastTxProgress = 0;
  private lastRtoAt = -Infinity;
  /** Consecutive retransmission timeouts without ack progress (the backoff exponent). */
  private rtoBackoff = 0;
  /** Smoothed RTT and its mean deviation (ms); null before the first sample. */
  private srtt: number | null = null;
  private rttvar = 0;
  private wantWritable = false;
  private peerRsGen: number | null = null;

  // ---- receive (FIGS. 5, 6)
  private rx: RxState = 'UNSYNCED';
  private rcvNext: Seq = 0 as Seq;
  private peerBase: Seq = 0 as Seq;
  private readonly rxBuf = new Map<Seq, RxEntry>();
  private asm: Buffer[] | null = null;
  private rejectsInRow = 0;
  private rejectAt = 0;
  /** When the current gap at rcvNext was noticed (the reorder window runs from here). */
  private gapAt = 0;
  private unackedRx = 0;
  private firstUnackedAt = 0;
  private ackNow = false;
  private rsGen = 0;
  private rsFrom: Seq = 0 as Seq;
  private rsCount = 0;
  private lastAnnounceAt = -Infinity;

  // ---- connectivity (FIG. 7)
  private conn: ConnState = 'INACTIVE';
  private txPath = 0;
  private heard = false;
  private lastHeard: number;
  private nextCheckAt: number;

  constructor(opts: LinkOptions) {
    invariant(opts.key.length >= 16, 'link key must be at least 16 bytes');
    this.key = opts.key;
    this.transmitFn = opts.transmit;
    this.onMessageFn = opts.onMessage ?? (() => {});
    this.onPeerStateFn = opts.onPeerState ?? (() => {});
    this.onLostFn = opts.onLost ?? (() => {});
    this.onWritableFn = opts.onWritable ?? (() => {});
    this.nPaths = opts.paths ?? 2;
    invariant(this.nPaths === 1 || this.nPaths === 2, 'paths must be 1 or 2');
    this.windowFrames = opts.windowFrames ?? 1024;
    invariant(this.windowFrames >= 1 && this.windowFrames <= 1 << 20, 'windowFrames out of range');
    this.windowBytes = opts.windowBytes ?? 1 << 20;
    this.chunkSize = opts.chunkSize ?? (opts.maxDatagram ?? DEFAULT_MAX_DATAGRAM) - FRAME_OVERHEAD;
    invariant(this.chunkSize >= 1 && this.chunkSize + FRAME_OVERHEAD <= MAX_UDP_DATAGRAM, 'chunkSize / maxDatagram out of range');
    this.timers = { ...DEFAULT_TIMERS };
    for (const k of Object.keys(DEFAULT_TIMERS) as (keyof LinkTimers)[]) {
      const v = opts[k];
      if (v !== undefined) this.timers[k] = v;
    }
    this.bootId = (opts.bootId ?? randomInt(1, 0xffff_ffff)) >>> 0;
    invariant(this.bootId !== 0, 'bootId must be non-zero');
    this.sndNext = (opts.initialSeq ?? randomInt(0, 0xffff_ffff)) >>> 0 as Seq;
    this.sndUna = this.sndNext;
    this.txBase = this.sndNext;
    this.now = opts.now ?? 0;
    this.lastHeard = this.now;
    this.nextCheckAt = this.now;
    this.log = opts.log ?? rootLogger.child({ mod: 'link', ep: opts.name ?? this.bootId.toString(16) });
  }

  // ------------------------------------------------------------------ public API

  get peerState(): 'active' | 'inactive' {
    return this.conn === 'INACTIVE' ? 'inactive' : 'active';
  }
  get connState(): ConnState {
    return this.conn;
  }
  get rxState(): RxState {
    return this.rx;
  }
  get txState(): TxState {
    return this.tx;
  }
  /** The network traffic currently goes out on. */
  get currentPath(): number {
    return this.txPath;
  }
  /** Id of the last message accepted by send() (ids count from 1). */
  get lastMessageId(): number {
    return this.msgCounter;
  }
  /** Frames sent and not yet acknowledged. */
  get inFlight(): number {
    return this.txq.length - this.txHead;
  }
  get peerBootId(): number {
    return this.peerBoot;
  }
  /** Payload bytes per frame: a message up to this size travels in one datagram. */
  get framePayload(): number {
    return this.chunkSize;
  }
  /** Largest message `send` accepts. */
  get maxMessage(): number {
    return Math.min(this.windowBytes, this.windowFrames * this.chunkSize);
  }

  /**
   * Offer a message. true: accepted (id = lastMessageId), sent at once and promised as
   * described in the header. false: the window is full or the peer is not active;
   * nothing was accepted; onWritable follows when there is room.
   */
  send(message: Buffer): boolean {
    if (message.length > this.maxMessage) {
      throw new FtcpError(
        'FTCP_LINK_TOO_LARGE',
        `link message of ${message.length} bytes exceeds the window (${this.maxMessage})`,
      );
    }
    const n = Math.max(1, Math.ceil(message.length / this.chunkSize));
    if (
      this.conn === 'INACTIVE' ||
      this.inFlight + n > this.windowFrames ||
      this.txBytes + message.length > this.windowBytes
    ) {
      this.wantWritable = true;
      return false;
    }
    if (this.inFlight === 0) this.lastTxProgress = this.now;
    const msgId = ++this.msgCounter;
    this.counters.messagesSent++;
    for (let i = 0; i < n; i++) {
      const payload = message.subarray(i * this.chunkSize, Math.min(message.length, (i + 1) * this.chunkSize));
      const chunk = (i === 0 ? F_CHUNK_FIRST : 0) | (i === n - 1 ? F_CHUNK_LAST : 0);
      const e: TxEntry = { seq: this.sndNext, msgId, chunk, payload, sentAt: this.now, retx: 0, sacked: false };
      this.txq.push(e);
      this.txBytes += payload.length;
      this.sndNext = seqAdd(this.sndNext, 1);
      this.counters.sent++;
      this.emitData(e);
    }
    return true;
  }

  /** One datagram from the network on `pathIndex`. Never throws on bad input. */
  receive(datagram: Buffer, pathIndex: number, now: number): void {
    this.now = now;
    this.counters.datagramsIn++;
    const r = decodeFrame(this.key, datagram);
    if (!r.ok) {
      if (r.reason === 'mac') this.counters.forged++;
      else this.counters.malformed++;
      return;
    }
    const f = r.frame;
    if (pathIndex < 0 || pathIndex >= this.nPaths) {
      this.counters.malformed++;
      return;
    }
    // Session checks: addressed to an older incarnation of us?
    if (f.dstBoot !== 0 && f.dstBoot !== this.bootId) {
      this.counters.replayed++;
      this.announce(pathIndex); // the peer may simply not know our new boot id yet
      return;
    }
    if (this.peerBoot === 0) {
      this.peerBoot = f.srcBoot;
    } else if (f.srcBoot !== this.peerBoot) {
      if (this.retired.includes(f.srcBoot)) {
        this.counters.replayed++;
        return;
      }
      this.peerRestarted(f.srcBoot);
    }
    if (!this.replayCheck(f.pkt)) {
      this.counters.replayed++;
      return;
    }
    // FIG. 5 step 405 / FIG. 7 step 715: the peer is heard on this network.
    this.heard = true;
    this.lastHeard = now;
    if (this.conn === 'INACTIVE') this.txPath = pathIndex; // found again on this network
    if (this.conn !== 'ACTIVE') this.connTransition('ACTIVE', `frame on path ${pathIndex}`);

    this.peerResyncReport(f);
    if (f.flags & F_ACK) this.ackThrough(f.ack);
    if (f.flags & F_CHECK) {
      if (pathIndex !== this.txPath) {
        // The peer reached us on the other network after failing on ours: follow it.
        this.switchPath(pathIndex, 'peer checks on this network');
      }
      this.emitControl(F_CHECK_REPLY, pathIndex);
    }
    if (f.flags & F_REJECT) this.rejectReceived(f);
    if (f.flags & F_DATA) this.dataReceived(f);
    if (this.rx === 'REJECT') this.rejectTimer();
    if (this.ackNow || this.unackedRx >= this.timers.ackEvery) this.emitControl(0, this.txPath);
  }

  /** Advance the timers: connectivity (FIG. 7), reject state (FIG. 6), acks, retransmission. */
  tick(now: number): void {
    this.now = now;
    if (now >= this.nextCheckAt) {
      this.nextCheckAt = now + this.timers.checkIntervalMs;
      this.connectivityCheck();
    }
    if (this.rx === 'REJECT') this.rejectTimer();
    if (this.unackedRx > 0 && now - this.firstUnackedAt >= this.timers.ackDelayMs) {
      this.emitControl(0, this.txPath);
    }
    const rto = this.currentRto();
    if (this.inFlight > 0 && this.conn !== 'INACTIVE' && now - this.lastTxProgress >= rto && now - this.lastRtoAt >= rto) {
      // Retransmission timeout: resend the oldest frames the peer has not reported held
      // (the first one always: it is what the peer's cumulative ack waits for), then back
      // off, so that a slow or lossy peer never gets more than a burst per timeout.
      this.lastRtoAt = now;
      this.counters.timeouts++;
      if (this.rtoBackoff > 0) {
        // A second timeout without progress: the peer may have thrown away what it
        // reported held (it resynchronised and cleared its buffers, FIG. 6 step 635), so
        // the held marks are no longer trusted (as TCP forgets SACK after a timeout).
        for (let i = this.txHead; i < this.txq.length; i++) this.txq[i]!.sacked = false;
      }
      if (this.rtoBackoff < 16) this.rtoBackoff++;
      let n = 0;
      for (let i = this.txHead; i < this.txq.length && n < this.timers.rtoBurst; i++) {
        const e = this.txq[i]!;
        if (e.sacked && i !== this.txHead) continue;
        n++;
        this.retransmit(e);
      }
    }
  }

  /** Smoothed round-trip time (ms), or null before the first sample. */
  get rttMs(): number | null {
    return this.srtt;
  }

  /** The retransmission timeout now: RFC 6298 estimate, floor rtoMs, backed off, ceiling maxRtoMs. */
  private currentRto(): number {
    const base = this.srtt === null ? this.timers.rtoMs : Math.max(this.timers.rtoMs, this.srtt + 4 * this.rttvar);
    return Math.min(this.timers.maxRtoMs, base * 2 ** this.rtoBackoff);
  }

  /**
   * FIG. 6 steps 605-635, with a reorder window: the first REJECT for a gap goes out once
   * the gap has stayed open reorderWindowMs; the next ones at an interval of at least
   * rejectIntervalMs and two smoothed RTTs, doubled for each REJECT without progress; after
   * maxRejects without progress, resynchronisation (the last resort).
   */
  private rejectTimer(): void {
    const now = this.now;
    if (this.rejectsInRow === 0) {
      if (now - this.gapAt >= this.timers.reorderWindowMs) this.emitReject();
      return;
    }
    const base = Math.max(this.timers.rejectIntervalMs, 2 * (this.srtt ?? 0));
    const interval = base * Math.min(16, 2 ** (this.rejectsInRow - 1));
    if (now - this.rejectAt < interval) return;
    if (this.rejectsInRow < this.timers.maxRejects) {
      this.emitReject();
    } else {
      this.rxTransition('RESYNC_ARMED', `${this.rejectsInRow} REJECTs without progress`);
    }
  }

  // ------------------------------------------------------------ state machines

  /** Transmit state machine (FIG. 4). */
  private txTransition(to: TxState, why: string): void {
    const from = this.tx;
    if (to === 'RESET') {
      // Steps 320-330: restart numbering; everything unacknowledged is given up.
      this.giveUpAll(why === 'peer restarted' ? 'peer-restart' : 'inactive');
      this.txBase = this.sndNext;
    }
    if (from === to) return;
    this.tx = to;
    this.log.debug({ sm: 'tx', fig: 4, from, to, why, base: this.txBase }, `tx ${from} → ${to}`);
  }

  /** Receive / reject state machine (FIGS. 5 and 6). */
  private rxTransition(to: RxState, why: string): void {
    const from = this.rx;
    switch (to) {
      case 'UNSYNCED':
        this.rxBuf.clear();
        this.dropAssembly();
        this.unackedRx = 0;
        break;
      case 'IN_SEQUENCE':
        this.rejectsInRow = 0;
        break;
      case 'REJECT':
        if (from !== 'REJECT') {
          this.gapAt = this.now;
          this.rejectsInRow = 0;
        }
        break;
      case 'RESYNC_ARMED':
        // FIG. 6 steps 630-635: accept the next message as in sequence; clear buffers.
        this.rxBuf.clear();
        this.rejectsInRow = 0;
        break;
    }
    if (from === to) return;
    this.rx = to;
    this.log.debug({ sm: 'rx', fig: to === 'REJECT' || from === 'REJECT' ? 6 : 5, from, to, why }, `rx ${from} → ${to}`);
  }

  /** Connectivity state machine (FIG. 7). */
  private connTransition(to: ConnState, why: string): void {
    const from = this.conn;
    if (from === to) return;
    this.conn = to;
    const level = to === 'INACTIVE' || from === 'INACTIVE' ? 'info' : 'debug';
    this.log[level]({ sm: 'conn', fig: 7, from, to, why, path: this.txPath }, `conn ${from} → ${to}`);
    if (to === 'INACTIVE') {
      // Steps 735-740: inactive; clear all transmit and receive buffers for the peer.
      this.txTransition('RESET', 'peer inactive');
      if (this.rx !== 'UNSYNCED') this.rxTransition('RESYNC_ARMED', 'peer inactive');
      this.unackedRx = 0;
      this.onPeerStateFn('inactive');
    } else if (from === 'INACTIVE') {
      this.onPeerStateFn('active');
      this.writable();
    }
  }

  // ------------------------------------------------------------ receive side

  private dataReceived(f: Frame): void {
    if (this.rx === 'UNSYNCED') {
      this.rcvNext = f.base;
      this.peerBase = f.base;
      this.rxTransition('IN_SEQUENCE', `synchronised to base ${f.base}`);
    } else if (f.flags & F_RESET && f.base !== this.peerBase) {
      // FIG. 5 step 420: the sender restarted its numbering at base.
      this.peerBase = f.base;
      if (seqGt(f.base, this.rcvNext)) this.resyncTo(f.base, 'RESET flag');
    }
    const seq = f.seq;
    if (seq === this.rcvNext) {
      this.inOrder(f.flags, f.payload);
      this.drain();
      return;
    }
    if (seqLt(seq, this.rcvNext)) {
      this.counters.duplicates++;
      this.ackNow = true;
      return;
    }
    if (!seqInWindow(seq, this.rcvNext, this.windowFrames)) {
      // Step 530: outside the receive window, ignored.
      this.counters.outOfWindow++;
      this.ackNow = true;
      return;
    }
    if (this.rx === 'RESYNC_ARMED') {
      // Steps 425/430 → 435-440: resynchronise to this message.
      this.resyncTo(seq, 'next message after reject limit or inactivity');
      this.inOrder(f.flags, f.payload);
      this.drain();
      return;
    }
    // Steps 535-550: buffer; enter the reject state. The REJECT itself waits for the
    // reorder window (rejectTimer): most gaps are datagrams overtaken, not lost.
    if (this.rxBuf.has(seq)) this.counters.duplicates++;
    else this.rxBuf.set(seq, { flags: f.flags, payload: f.payload });
    if (this.rx === 'IN_SEQUENCE') this.rxTransition('REJECT', `gap: expected ${this.rcvNext}, got ${seq}`);
  }

  /** Resynchronise the receiver to `seq`: everything before it is skipped. */
  private resyncTo(seq: Seq, why: string): void {
    const skipped = seqDiff(seq, this.rcvNext);
    invariant(skipped > 0, 'resync must move forward');
    for (const k of [...this.rxBuf.keys()]) if (seqLt(k, seq)) this.rxBuf.delete(k);
    this.dropAssembly();
    this.rsGen = (this.rsGen + 1) & 0xffff;
    this.rsFrom = this.rcvNext;
    this.rsCount = skipped;
    this.rcvNext = seq;
    this.counters.resyncs++;
    this.ackNow = true;
    this.log.info({ sm: 'rx', from: this.rsFrom, skipped, why }, 'receiver resynchronised');
    this.rxTransition('IN_SEQUENCE', why);
    this.onPeerStateFn('resync');
  }

  private inOrder(flags: number, payload: Buffer): void {
    this.rcvNext = seqAdd(this.rcvNext, 1);
    if (this.unackedRx === 0) this.firstUnackedAt = this.now;
    this.unackedRx++;
    if (this.rejectsInRow !== 0 || this.rx === 'REJECT') {
      // Progress: the REJECT budget counts REJECTs without progress, and a gap left
      // behind this one gets its own reorder window.
      this.rejectsInRow = 0;
      this.gapAt = this.now;
    }
    if (flags & F_CHUNK_FIRST) {
      if (this.asm !== null) this.dropAssembly();
      this.asm = [];
    } else if (this.asm === null) {
      this.counters.discardedChunks++;
      return;
    }
    this.asm.push(payload);
    if (flags & F_CHUNK_LAST) {
      const parts = this.asm;
      this.asm = null;
      const msg = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      this.counters.delivered++;
      this.onMessageFn(msg);
    }
  }

  private drain(): void {
    for (;;) {
      const e = this.rxBuf.get(this.rcvNext);
      if (e === undefined) break;
      this.rxBuf.delete(this.rcvNext);
      this.inOrder(e.flags, e.payload);
    }
    if (this.rxBuf.size === 0 && this.rx !== 'IN_SEQUENCE' && this.rx !== 'UNSYNCED') {
      this.rxTransition('IN_SEQUENCE', 'caught up');
    }
  }

  private dropAssembly(): void {
    if (this.asm !== null) this.counters.discardedChunks += this.asm.length;
    this.asm = null;
  }

  // ------------------------------------------------------------ transmit side

  /** Cumulative ack through `a` (FIG. 5 step 470). Out-of-range acks are ignored. */
  private ackThrough(a: Seq): void {
    if (seqLt(a, seqAdd(this.sndUna, -1)) || !seqLt(a, this.sndNext)) return;
    if (this.tx === 'RESET' && seqGe(a, seqAdd(this.txBase, -1))) this.txTransition('OPEN', `acked ${a}`);
    let progressed = false;
    let clean = true; // no frame of the acked range was sent twice (Karn's rule)
    let last: TxEntry | null = null;
    while (this.txHead < this.txq.length && seqLt(this.sndUna, seqAdd(a, 1))) {
      const e = this.txq[this.txHead++]!;
      this.txBytes -= e.payload.length;
      if (e.chunk & F_CHUNK_LAST) this.reportedLost.delete(e.msgId);
      this.sndUna = seqAdd(this.sndUna, 1);
      progressed = true;
      if (e.retx > 0 || e.sacked) clean = false;
      last = e;
    }
    if (last !== null && clean) this.rttSample(this.now - last.sentAt);
    if (this.txHead > 1024 && this.txHead * 2 > this.txq.length) {
      this.txq.splice(0, this.txHead);
      this.txHead = 0;
    }
    if (progressed) {
      this.lastTxProgress = this.now;
      this.rtoBackoff = 0;
      this.writable();
    }
  }

  /** RFC 6298 smoothing (alpha 1/8, beta 1/4). */
  private rttSample(r: number): void {
    if (!(r >= 0)) return;
    if (this.srtt === null) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
  }

  /** Put a frame on the wire again. */
  private retransmit(e: TxEntry): void {
    e.retx++;
    this.counters.retransmitted++;
    this.emitData(e);
  }

  /**
   * FIG. 5 steps 520-525, selective: resend only the sequence numbers the peer lists as
   * missing (the gap after rejLast, then the further gaps in the payload), and of those
   * only the frames last sent at least a smoothed RTT ago: a frame sent more recently may
   * still be on its way, and resending it would only add load. The frames between the
   * gaps, up to the highest the peer holds, are marked held: a timeout skips them.
   */
  private rejectReceived(f: Frame): void {
    this.counters.rejectsReceived++;
    this.ackThrough(f.rejLast);
    const gaps = decodeRejectGaps(f);
    if (gaps.high !== null) {
      const gapSeqs = new Set<number>();
      for (const [start, count] of gaps.list) for (let i = 0; i < Math.min(count, this.windowFrames); i++) gapSeqs.add(seqAdd(start, i));
      const n = Math.min(this.txq.length - this.txHead, seqDiff(gaps.high, this.sndUna) + 1);
      for (let i = 0; i < n; i++) {
        const e = this.txq[this.txHead + i]!;
        if (!gapSeqs.has(e.seq)) e.sacked = true;
      }
    }
    const holdMs = this.srtt ?? this.timers.rtoMs / 4;
    let budget = this.txq.length - this.txHead;
    for (const [start, count] of gaps.list) {
      for (let i = 0; i < Math.min(count, this.windowFrames) && budget > 0; i++) {
        const idx = this.txHead + seqDiff(seqAdd(start, i), this.sndUna);
        if (idx < this.txHead || idx >= this.txq.length) continue;
        budget--;
        const e = this.txq[idx]!;
        e.sacked = false;
        if (this.now - e.sentAt < holdMs) {
          this.counters.retransmitsHeld++;
          continue;
        }
        this.retransmit(e);
      }
    }
    this.lastRtoAt = this.now;
  }

  /** The resync report every frame carries: give up the frames the peer skipped. */
  private peerResyncReport(f: Frame): void {
    if (this.peerRsGen === null) {
      this.peerRsGen = f.rsGen;
      return;
    }
    const d = (f.rsGen - this.peerRsGen) & 0xffff;
    if (d === 0 || d >= 0x8000) return;
    this.peerRsGen = f.rsGen;
    this.counters.peerResyncs++;
    const ids: number[] = [];
    for (let i = this.txHead; i < this.txq.length; i++) {
      const e = this.txq[i]!;
      const hit =
        d === 1
          ? seqInWindow(e.seq, f.rsFrom, f.rsCount)
          : (f.flags & F_ACK) !== 0 && seqLt(e.seq, seqAdd(f.ack, 1));
      if (hit) ids.push(e.msgId);
    }
    this.reportLost(ids, d === 1 ? 'resync' : 'uncertain');
    this.onPeerStateFn('resync');
  }

  private reportLost(ids: number[], reason: LostReason): void {
    const fresh: number[] = [];
    for (const id of ids) {
      if (this.reportedLost.has(id)) continue;
      this.reportedLost.add(id);
      fresh.push(id);
    }
    if (fresh.length === 0) return;
    this.counters.lost += fresh.length;
    this.log.info({ reason, count: fresh.length, first: fresh[0] }, 'link messages given up');
    this.onLostFn(fresh, reason);
  }

  /** Clear the transmit buffer, reporting every message still in it. */
  private giveUpAll(reason: LostReason): void {
    const ids: number[] = [];
    let last = -1;
    for (let i = this.txHead; i < this.txq.length; i++) {
      const id = this.txq[i]!.msgId;
      if (id !== last) ids.push(id);
      last = id;
    }
    this.txq.length = 0;
    this.txHead = 0;
    this.txBytes = 0;
    this.sndUna = this.sndNext;
    this.reportLost(ids, reason);
    this.reportedLost.clear();
  }

  private peerRestarted(boot: number): void {
    this.log.info({ old: this.peerBoot, new: boot }, 'peer restarted');
    this.retired.push(this.peerBoot);
    if (this.retired.length > RETIRED_BOOTS) this.retired.shift();
    this.peerBoot = boot;
    this.replayMax = -1;
    this.replayBits.fill(0);
    this.peerRsGen = null;
    this.counters.resyncs++;
    this.txTransition('RESET', 'peer restarted');
    this.rxTransition('UNSYNCED', 'peer restarted');
    this.onPeerStateFn('resync');
  }

  private writable(): void {
    if (!this.wantWritable || this.conn === 'INACTIVE') return;
    if (this.inFlight >= this.windowFrames || this.txBytes >= this.windowBytes) return;
    this.wantWritable = false;
    this.onWritableFn();
  }

  // ------------------------------------------------------------ connectivity

  private connectivityCheck(): void {
    if (this.heard) {
      // Steps 715-725.
      this.heard = false;
      return;
    }
    if (this.conn === 'INACTIVE') {
      // Inactive peers still get checks, alternating networks, so they are found again.
      this.emitCheck(this.txPath);
      if (this.nPaths > 1) this.txPath = 1 - this.txPath;
      return;
    }
    if (this.now - this.lastHeard >= this.timers.inactiveAfterMs) {
      this.connTransition('INACTIVE', `silent ${this.now - this.lastHeard} ms`);
      return;
    }
    if (this.conn === 'ACTIVE') {
      this.emitCheck(this.txPath); // step 745, first check: current network
      this.connTransition('SILENT', 'silent one interval');
    } else {
      if (this.nPaths > 1) this.switchPath(1 - this.txPath, 'check unanswered'); // step 755
      this.emitCheck(this.txPath);
      this.connTransition('SWITCHED', 'check unanswered');
    }
  }

  private switchPath(to: number, why: string): void {
    if (to === this.txPath) return;
    this.log.info({ from: this.txPath, to, why }, 'link path switch');
    this.txPath = to;
    this.counters.pathSwitches++;
  }

  // ------------------------------------------------------------ emitting frames

  private frameBase(flags: number, pathIndex: number): Frame {
    const f = blankFrame();
    f.pathId = pathIndex;
    f.srcBoot = this.bootId;
    f.dstBoot = this.peerBoot;
    f.pkt = ++this.pktCounter;
    f.seq = this.sndNext;
    f.base = this.txBase;
    if (this.rx !== 'UNSYNCED') {
      flags |= F_ACK;
      f.ack = seqAdd(this.rcvNext, -1);
    }
    f.flags = flags;
    f.rsGen = this.rsGen;
    f.rsFrom = this.rsFrom;
    f.rsCount = this.rsCount;
    return f;
  }

  private put(f: Frame, pathIndex: number): void {
    if (f.flags & F_ACK) {
      this.unackedRx = 0;
      this.ackNow = false;
    }
    this.counters.datagramsOut++;
    this.transmitFn(encodeFrame(this.key, f), pathIndex);
  }

  private emitData(e: TxEntry): void {
    e.sentAt = this.now;
    const f = this.frameBase(F_DATA | e.chunk | (this.tx === 'RESET' ? F_RESET : 0), this.txPath);
    f.seq = e.seq;
    f.payload = e.payload;
    this.put(f, this.txPath);
  }

  /** A pure ACK (flags 0 + ACK), a CHECK or a CHECK_REPLY. */
  private emitControl(flags: number, pathIndex: number): void {
    this.put(this.frameBase(flags, pathIndex), pathIndex);
  }

  private emitCheck(pathIndex: number): void {
    this.counters.checksSent++;
    this.emitControl(F_CHECK, pathIndex);
  }

  /**
   * A selective REJECT: rejLast = the last in-order seq, rejCount = the length of the gap
   * after it; the payload lists the highest seq held and the gaps (up to MAX_REJECT_GAPS),
   * so the sender resends what is missing and nothing the receiver already holds.
   */
  private emitReject(): void {
    const held = [...this.rxBuf.keys()].map((k) => seqDiff(k, this.rcvNext)).sort((x, y) => x - y);
    const gaps: [number, number][] = [];
    let expect = 0;
    for (const d of held) {
      if (d > expect && gaps.length < MAX_REJECT_GAPS) gaps.push([expect, d - expect]);
      expect = d + 1;
    }
    const high = held.length > 0 ? held[held.length - 1]! : -1;
    const f = this.frameBase(F_REJECT, this.txPath);
    f.rejLast = seqAdd(this.rcvNext, -1);
    f.rejCount = gaps.length > 0 && gaps[0]![0] === 0 ? gaps[0]![1] : 0;
    if (high >= 0) {
      const p = Buffer.allocUnsafe(4 + 8 * gaps.length);
      p.writeUInt32BE(seqAdd(this.rcvNext, high), 0);
      gaps.forEach(([start, count], i) => {
        p.writeUInt32BE(seqAdd(this.rcvNext, start), 4 + 8 * i);
        p.writeUInt32BE(count, 8 + 8 * i);
      });
      f.payload = p;
    }
    this.rejectsInRow++;
    this.rejectAt = this.now;
    this.counters.rejectsSent++;
    this.put(f, this.txPath);
  }

  /** Tell a peer that addresses an old incarnation of us who we are (rate-limited). */
  private announce(pathIndex: number): void {
    if (this.now - this.lastAnnounceAt < this.timers.ackDelayMs) return;
    this.lastAnnounceAt = this.now;
    this.emitControl(F_CHECK_REPLY, pathIndex);
  }

  // ------------------------------------------------------------ anti-replay

  private replayCheck(pkt: number): boolean {
    if (pkt === 0) return false;
    if (this.replayMax < 0 || pkt > this.replayMax) {
      if (this.replayMax < 0 || pkt - this.replayMax >= REPLAY_WINDOW) this.replayBits.fill(0);
      else for (let p = this.replayMax + 1; p < pkt; p++) this.clearBit(p);
      this.setBit(pkt);
      this.replayMax = pkt;
      return true;
    }
    if (this.replayMax - pkt >= REPLAY_WINDOW) return false;
    const i = pkt % REPLAY_WINDOW;
    if (this.replayBits[i >>> 5]! & (1 << (i & 31))) return false;
    this.setBit(pkt);
    return true;
  }

  private setBit(p: number): void {
    const i = p % REPLAY_WINDOW;
    this.replayBits[i >>> 5]! |= 1 << (i & 31);
  }

  private clearBit(p: number): void {
    const i = p % REPLAY_WINDOW;
    this.replayBits[i >>> 5]! &= ~(1 << (i & 31));
  }
}

/**
 * The gaps a REJECT names: [start, count] pairs, the first one from rejLast/rejCount, the
 * others from the payload; `high` = the highest seq the peer holds (null: a REJECT without
 * that list, which names only its first gap). A payload of a wrong length is ignored.
 */
export function decodeRejectGaps(f: Frame): { high: Seq | null; list: [Seq, number][] } {
  const first: [Seq, number] = [seqAdd(f.rejLast, 1), f.rejCount];
  const p = f.payload;
  if (p.length < 4 || (p.length - 4) % 8 !== 0 || (p.length - 4) / 8 > MAX_REJECT_GAPS) {
    return { high: null, list: f.rejCount > 0 ? [first] : [] };
  }
  const list: [Seq, number][] = [];
  for (let o = 4; o < p.length; o += 8) list.push([p.readUInt32BE(o) as Seq, p.readUInt32BE(o + 4)]);
  if (list.length === 0 && f.rejCount > 0) list.push(first);
  return { high: p.readUInt32BE(0) as Seq, list };
}

/** Bytes on the wire for a message of `len` bytes with the given chunk size. */
export function wireBytes(len: number, chunkSize = DEFAULT_MAX_DATAGRAM - FRAME_OVERHEAD): number {
  const n = Math.max(1, Math.ceil(len / chunkSize));
  return len + n * FRAME_OVERHEAD;
}
