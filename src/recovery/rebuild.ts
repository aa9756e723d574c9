/**
 * The rebuild of one connection as a state machine: its record (`Rebuild`), its phases, the
 * failure codes, and THE transition function (`RebuildMachine.enter`), which logs from → to
 * and is the only place that assigns a phase or sets/clears the flow's `rec` (its NorthRecord). The protocol itself
 * (the numbered steps and the sequence relations) is drawn at the top of engine.ts; the
 * steps live in handshake.ts (1-3) and replay.ts (4-6).
 *
 * Phases (one `Rebuild` per connection and crash; a flow without one is LIVE):
 *
 *    LIVE ──crash(): the incarnation died (step 0; a fresh record)──▶ MASKED ◀─┐
 *   (no record)                                                        │        │ a crash again,
 *                     listening again, a handshake slot (maxParallel) │        │ from any of
 *                                                                      ▼        │ MASKED, HANDSHAKE,
 *                                                                  HANDSHAKE ───┤ REPLAY, ABSORB
 *                          SYN-ACK with the original options (steps 1-3)│       │ (step 7: a fresh
 *                                                                      ▼        │ record, step 0)
 *                                                                    REPLAY ────┤
 *                    the new incarnation acked the replay target (step 4)│      │
 *                                                                      ▼        │
 *                                                                    ABSORB ────┘
 *      output regenerated through what the client had, and the replay │ through what the
 *      client was told (step 5)                                        ▼
 *                                                                     LIVE  (record dropped; translation only)
 *
 *   MASKED, HANDSHAKE, REPLAY, ABSORB ──a coded failure (FailureCode)──▶ FAILED ──released──▶ ENDED
 *   MASKED, HANDSHAKE, REPLAY, ABSORB ──the connection ended (both ends closed, released)──▶ ENDED
 *
 * The transition function owns the bookkeeping of entering and leaving a phase: the
 * handshakes in progress (bounded by maxParallel), the replay bytes in flight (bounded by
 * replayInFlight), the set of connections being recovered, the crash's timeline stamps
 * (handshakesDoneAt, replayDoneAt, caughtUpAt) and the failure counters per code. The
 * packets each step sends are the callers' (a transition sends nothing). Each phase a log
 * record names is written to the log as it is entered (`persist`, durable.ts).
 */
import type { FlowTable, Service } from '../flow/table.js';
import type { Flow } from '../flow/flow.js';
import type { LogStore } from '../log/types.js';
import type { PacketInfo } from '../wire/packet.js';
import { seqAdd, seqDiff, type Offset, type Seq } from '../wire/seq.js';
import { TcpOptions } from '../wire/tcp-options.js';
import type { Translation } from './translate.js';
import type { NorthOptions } from './options.js';
import type { Logger } from '../util/logger.js';
import { DigestBudget, type OutDigest } from '../divergence/digest.js';
import type { Comparator } from '../divergence/compare.js';
import { DivergenceStats } from '../divergence/policy.js';
import { DurableState, isStatePhase } from './durable.js';
import type { ServerIncarnation, StatePhase } from '../log/state.js';

/** What the north wrapper returns for a segment: forwarded (perhaps translated) or dropped. */

/** The rebuild's phases, drawn above; a flow without a Rebuild is LIVE. */
export type Phase = 'MASKED' | 'HANDSHAKE' | 'REPLAY' | 'ABSORB' | 'LIVE' | 'FAILED' | 'ENDED';

/** The phases in which the replay sender runs (steps 4-5): client segments are translated and forwarded. */
export function replaying(p: Phase): boolean {
  return p === 'REPLAY' || p === 'ABSORB';
}

/** The transitions the machine takes (from → the phases it may enter); any other is refused and counted. */
const LEGAL: Readonly<Record<Phase, readonly Phase[]>> = {
  LIVE: ['MASKED'],
  MASKED: ['MASKED', 'HANDSHAKE', 'FAILED', 'ENDED'],
  HANDSHAKE: ['MASKED', 'REPLAY', 'FAILED', 'ENDED'],
  REPLAY: ['MASKED', 'ABSORB', 'FAILED', 'ENDED'],
  ABSORB: ['MASKED', 'LIVE', 'FAILED', 'ENDED'],
  FAILED: ['ENDED'],
  ENDED: [],
};

/**
 * Why a rebuild failed, one code per step that can fail (libsoccr's distinct error per step).
 *   MASK_DEADLINE       step 0: the service did not listen again within maskDeadlineMs
 *   HANDSHAKE_DEADLINE  steps 1-2: no SYN-ACK within rebuildDeadlineMs of listening again
 *   OPTIONS_MISMATCH    step 3: the new incarnation's SYN-ACK options disagree with the original's
 *   NO_PROGRESS         steps 4-5: neither replay nor absorption moved for progressDeadlineMs
 *   LOG_READ_FAILED     step 4: the log could not give the bytes to replay
 *   DIVERGED            step 5: the regenerated output differs from what the client may have, or
 *                       stops short of it past divergenceDeadlineMs (policy reset; verify.ts)
 */
export const FAILURE_CODES = ['MASK_DEADLINE', 'HANDSHAKE_DEADLINE', 'OPTIONS_MISMATCH', 'NO_PROGRESS', 'LOG_READ_FAILED', 'DIVERGED'] as const;
export type FailureCode = (typeof FAILURE_CODES)[number];

/** The counter of each failure code in NorthStats (flat numbers: /status and /metrics list every counter). */
export const FAILURE_STAT = {
  MASK_DEADLINE: 'failedMaskDeadline',
  HANDSHAKE_DEADLINE: 'failedHandshakeDeadline',
  OPTIONS_MISMATCH: 'failedOptionsMismatch',
  NO_PROGRESS: 'failedNoProgress',
  LOG_READ_FAILED: 'failedLogRead',
  DIVERGED: 'failedDiverged',
} as const satisfies Record<FailureCode, keyof NorthStats>;

/** The failures per code, from a stats object (or its JSON in /status). */
export function failuresByCode(stats: Partial<Record<keyof NorthStats, number>>): Record<FailureCode, number> {
  const out = {} as Record<FailureCode, number>;
  for (const c of FAILURE_CODES) out[c] = stats[FAILURE_STAT[c]] ?? 0;
  return out;
}

export class NorthStats {
  crashes = 0;
  flowsMasked = 0;
  deadDropped = 0;
  keepaliveAcks = 0;
  reapRsts = 0;
  synsSent = 0;
  synRefused = 0;
  challengeAcks = 0;
  portsMoved = 0;
  handshakes = 0;
  optionMismatch = 0;
  replaySegments = 0;
  replayBytes = 0;
  replayRetransmits = 0;
  absorbedSegments = 0;
  absorbedBytes = 0;
  serverAcksDropped = 0;
  caughtUp = 0;
  rebuildFailed = 0;
  rstsToClient = 0;
  clientAcksClamped = 0;
  /** Window probes to a new incarnation whose receive window was closed. */
  zeroWindowProbes = 0;
  /** Client pure ACKs during the replay, replaced by the gateway's own ACK (see fromClient). */
  clientAcksReplaced = 0;
  /** Regenerated data+FIN segments whose data the client had: absorbed, the FIN left for the retransmission. */
  finTailsAbsorbed = 0;
  /** Rebuilds ended for want of progress during the replay or the absorption. */
  progressFailures = 0;
  /** Recoveries ended because their flow left the table (released, replaced). */
  recoveriesForgotten = 0;
  /** Failed rebuilds per code (FAILURE_STAT); they add up to rebuildFailed. */
  failedMaskDeadline = 0;
  failedHandshakeDeadline = 0;
  failedOptionsMismatch = 0;
  failedNoProgress = 0;
  failedLogRead = 0;
  failedDiverged = 0;
  /** Transitions the machine refused (not in LEGAL): a bug if ever non-zero. */
  illegalTransitions = 0;
  /** Connection-state records written to the log (durable.ts), and the writes the log refused. */
  stateWrites = 0;
  stateWriteFailures = 0;
}

/** One crash of one service, as the drill reports it (ms since the epoch; 0 = not yet). */
export interface RecoveryTimeline {
  service: string;
  crash: number;
  detectedAt: number;
  reason: string;
  connections: number;
  listeningAt: number;
  handshakesDoneAt: number;
  replayDoneAt: number;
  caughtUpAt: number;
  handshakes: number;
  replayed: number;
  caughtUp: number;
  failed: number;
  /** Connections that ended (closed by their peers) while being recovered. */
  ended: number;
}

/**
 * Recovery timelines kept (the latest; `ftcp status` shows 50): one per crash of a service,
 * ~400 bytes each, kept for ever they grew the heap by 3.5 MB over the fuzz's 21,000 crashes.
 */
export const MAX_TIMELINES = 1000;

/** The per-connection rebuild state (see the steps at the top of engine.ts). */
export class Rebuild {
  /** Set by RebuildMachine.enter only. A fresh record is LIVE (a flow's phase without one) until it enters MASKED. */
  phase: Phase = 'LIVE';
  /** Why it failed (FAILED only). */
  failure: FailureCode | null = null;
  /** The client port the dead incarnation used (reaped) and the one the next SYN uses. */
  deadPort: number;
  sidePort: number;
  attempts = 0;
  portTries = 0;
  nextAt = 0;
  rto: number;
  startedAt = 0;
  maskedAt: number;
  lastAckAt = 0;
  /** From the SYN-ACK. */
  newIsn = 0 as Seq;
  newShift = 0;
  mss = 536;
  newTsRecent = 0 as Seq;
  /** Replay sender (in-stream offsets). */
  sndUna: Offset = 0;
  sndNxt: Offset = 0;
  target0 = 0;
  cliAcked0 = 0;
  lastProgress = 0;
  /** Last time the replay or the absorption moved (or the client's closed window explained a pause). */
  lastMoved = 0;
  /** Next zero-window probe, and its interval. */
  probeAt = 0;
  probeRto = 0;
  newRightEdge = 0;
  data: Buffer | null = null;
  dataStart = 0;
  reading = false;
  ackPending = false;
  /** sndNxt − sndUna as last counted in RebuildMachine.inFlight. */
  counted = 0;
  /** When the first SYN of this attempt series went out (an RTT sample if it alone is answered). */
  synSentAt = 0;
  timeline: RecoveryTimeline;

  constructor(port: number, now: number, rto: number, timeline: RecoveryTimeline) {
    this.deadPort = port;
    this.sidePort = port;
    this.maskedAt = now;
    this.rto = rto;
    this.timeline = timeline;
  }

  /** The replay reached its target (step 5 and after). */
  get replayDone(): boolean {
    return this.phase === 'ABSORB' || this.phase === 'LIVE';
  }
}

/**
 * What the north side keeps on a connection, in the flow's one opaque slot (`Flow.north`): the
 * flow itself holds the south wrapper's state only. Made on first use; only the north side
 * (this engine, the verdict stage) reads or writes it, through northOf/recOf/xlateOf.
 */
export class NorthRecord {
  /** Highest in-stream offset acknowledged by the server's current incarnation. */
  incDelivered: Offset = 0;
  /** Highest out-stream offset (end) the current incarnation sent. */
  incSndMax: Offset = 0;
  /** Server FIN/RST segments held for the liveness verdict (in arrival order), or null. */
  verdictHold: Buffer[] | null = null;
  /** Set while the connection is being masked or rebuilt (the server's incarnation died). */
  rec: Rebuild | null = null;
  /** Set once the connection lives in a rebuilt incarnation: translation for its life. */
  xlate: Translation | null = null;
  /** What the client may have of the output (policy not off; verify.ts), made on the first forwarded byte. */
  digest: OutDigest | null = null;
  /** The comparison of a rebuild's regenerated output, from the crash until it retires (verify.ts). */
  cmp: Comparator | null = null;
  /** Its record in the log (durable.ts), from its first crash on. */
  durable: DurableState | null = null;
}

/** The flow's north record, made on first use (only the north side puts anything in the slot). */
export function northOf(flow: Flow): NorthRecord {
  return (flow.north ??= new NorthRecord()) as NorthRecord;
}

/** The flow's north record if it has one (reading makes none). */
export function peekNorth(flow: Flow): NorthRecord | null {
  return flow.north as NorthRecord | null;
}

/** A flow's recovery state: only the transition function sets it. */
export function recOf(flow: Flow): Rebuild | null {
  return peekNorth(flow)?.rec ?? null;
}

/** A flow's translation, once it lives in a rebuilt incarnation. */
export function xlateOf(flow: Flow): Translation | null {
  return peekNorth(flow)?.xlate ?? null;
}

/** The recovery of one service's crash: is it down, its timeline, the rebuilds waiting for a handshake slot. */
export interface ServiceRecovery {
  down: boolean;
  timeline: RecoveryTimeline | null;
  queue: Flow[];
}

/**
 * The engine's state and the transition function. The steps build on it (handshake.ts,
 * replay.ts, then engine.ts: one class, layered by step so each file reads top to bottom).
 */
export abstract class RebuildMachine {
  readonly stats = new NorthStats();
  readonly timelines: RecoveryTimeline[] = [];
  protected readonly services = new Map<Service, ServiceRecovery>();
  /** Flows with a record, until it is dropped (a FAILED one: until it is forgotten). */
  protected readonly active = new Set<Flow>();
  /** Flows in `active`, per service (so "none left" is O(1) however many are recovered). */
  protected readonly activeBySvc = new Map<Service, number>();
  protected readonly opts1 = new TcpOptions();
  protected readonly opts2 = new TcpOptions();
  /** Rebuilds in HANDSHAKE (≤ maxParallel); kept by enter(). */
  protected handshaking = 0;
  /**
   * Smoothed round trip to the new incarnation through the gateway (ms), from SYNs answered
   * at the first try; 0 until a sample. Under the load of a mass rebuild the gateway's own
   * queue delays answers by far more than the nominal timeouts: a SYN or replay timeout
   * below ~3 round trips only retransmits what is merely late (and a go-back-N resends a
   * whole window), so the timeouts start at max(option, 3 × srtt).
   */
  srtt = 0;
  /** Replay bytes in flight over every connection (sum of Rebuild.counted), ≤ replayInFlight. */
  protected inFlight = 0;
  /** Replaying connections stopped by replayInFlight, pumped again as acks free room. */
  protected readonly waiting = new Set<Flow>();
  /** Told when a flow must be forgotten (FAILED and reset). */
  onFailed: ((svc: Service, flow: Flow) => void) | null = null;
  /**
   * The server incarnation running the service now, as its supervisor last said (null: no
   * supervisor heard, or the program is not running): what a durable record binds a
   * connection to (durable.ts boundTo). Set by the gateway from its liveness oracle.
   */
  serverIncarnation: (svc: Service) => ServerIncarnation | null = () => null;
  /** Every digest's memory against the budget (verify.ts). */
  readonly digests: DigestBudget;
  readonly divergence = new DivergenceStats();
  /** Flows with a comparator (verify.ts tickVerify). */
  protected readonly verifying = new Set<Flow>();

  constructor(
    protected readonly table: FlowTable,
    protected readonly log: LogStore,
    /** Writes a packet the gateway made (toward either side) into the TUN. */
    protected readonly emit: (buf: Buffer, off: number, len: number) => void,
    protected readonly options: NorthOptions,
    protected readonly logger: Logger,
    protected readonly now: () => number = Date.now,
  ) {
    this.digests = new DigestBudget({ blockBytes: options.digestBlockBytes, keptCapBytes: options.digestKeptCapBytes, budgetBytes: options.digestBudgetBytes });
  }

  /** The connection is over or no longer protected: its digest and comparison go (memory freed). */
  protected dropVerification(flow: Flow): void {
    this.dropComparison(flow);
    peekNorth(flow)?.digest?.dispose();
  }

  /** The comparison (if any) is over: its held bytes and the digest's pinned originals are freed. */
  protected dropComparison(flow: Flow): void {
    const n = peekNorth(flow);
    this.verifying.delete(flow);
    if (n === null || n.cmp === null) return;
    n.cmp.dispose();
    n.cmp = null;
    n.digest?.unpin();
  }

  /** Pumps the connections that waited for room in the replay budget (replay.ts). */
  protected abstract wake(): void;

  /**
   * THE transition function: `r` enters `next` (for MASKED, `r` is a fresh record that
   * replaces the flow's: a crash starts again at step 0). Logs from → to, keeps the
   * bookkeeping of the phases left and entered; refuses (and counts) a transition not in
   * LEGAL, or on a record that is not the flow's. Returns whether it was taken.
   */
  protected enter(flow: Flow, r: Rebuild, next: Phase, why: string, code: FailureCode | null = null): boolean {
    const prev = recOf(flow);
    const fresh = next === 'MASKED';
    const from: Phase = fresh ? (prev?.phase ?? 'LIVE') : r.phase;
    const ok = (fresh ? prev !== r && r.phase === 'LIVE' : prev === r) && LEGAL[from].includes(next);
    if (!ok) {
      this.stats.illegalTransitions++;
      this.logger.warn({ flow: flow.describe(), from, to: next, why }, `rebuild: illegal transition ${from} → ${next} refused`);
      return false;
    }
    const now = this.now();
    const tl = r.timeline;
    // Leaving `from` (the record left behind, for a crash: the flow's previous one).
    const left = fresh ? prev : r;
    if (left !== null && from === 'HANDSHAKE') this.handshaking--;
    if (left !== null && from !== 'FAILED') this.uncount(flow, left);
    r.phase = next;
    let record = '';
    switch (next) {
      case 'MASKED': {
        northOf(flow).rec = r;
        record = ' (record set)';
        flow.crashes++;
        tl.connections++;
        this.stats.flowsMasked++;
        const svc = this.table.service(flow.serverIp, flow.serverPort);
        if (svc !== undefined) this.activate(svc, flow);
        break;
      }
      case 'HANDSHAKE':
        r.startedAt = now;
        this.handshaking++;
        break;
      case 'REPLAY':
        this.stats.handshakes++;
        tl.handshakes++;
        if (tl.handshakes + tl.failed + tl.ended >= tl.connections) tl.handshakesDoneAt = now;
        break;
      case 'ABSORB':
        tl.replayed++;
        if (tl.replayed + tl.failed + tl.ended >= tl.connections) tl.replayDoneAt = now;
        break;
      case 'LIVE':
        // Step 6: from here on only translation.
        tl.caughtUp++;
        if (tl.caughtUp + tl.failed + tl.ended >= tl.connections) tl.caughtUpAt = now;
        this.stats.caughtUp++;
        this.finish(flow);
        northOf(flow).rec = null;
        record = ' (record dropped)';
        break;
      case 'FAILED':
        r.failure = code;
        r.maskedAt = now;
        tl.failed++;
        this.stats.rebuildFailed++;
        if (code !== null) this.stats[FAILURE_STAT[code]]++;
        break;
      case 'ENDED':
        if (from === 'FAILED') {
          // Forgotten after its failure: the timeline counted it already.
          this.deactivate(flow);
        } else {
          tl.ended++;
          const done = tl.caughtUp + tl.failed + tl.ended >= tl.connections;
          if (done && tl.handshakesDoneAt === 0) tl.handshakesDoneAt = now;
          if (done && tl.replayDoneAt === 0) tl.replayDoneAt = now;
          if (done && tl.caughtUpAt === 0) tl.caughtUpAt = now;
          this.finish(flow);
        }
        northOf(flow).rec = null;
        record = ' (record dropped)';
        break;
    }
    this.logger.debug(
      { flow: flow.describe(), from, to: next, why, ...(code !== null ? { code } : {}), ...(next === 'LIVE' ? { ms: now - r.startedAt } : {}) },
      `rebuild ${from} → ${next}${record}`,
    );
    if (isStatePhase(next)) this.persist(flow, next);
    return true;
  }

  // ---- the durable record (durable.ts) ---------------------------------------------------

  /** Writes the flow's state record naming `phase`; owed until the flow has a log id. */
  protected persist(flow: Flow, phase: StatePhase): void {
    const d = (northOf(flow).durable ??= new DurableState());
    d.phase = phase;
    if (flow.unprotected) return; // nothing in the log to take it over from
    if (flow.logId < 0) {
      d.owed = true;
      return;
    }
    const rec = d.next(phase, flow.crashes);
    this.stats.stateWrites++;
    this.log.setState(flow.logId, rec).then(
      () => d.stabilized(rec.update),
      (err: unknown) => {
        // A short connection that ended before its handshake's binding was stable: nothing lost.
        if (rec.crashes === 0 && (err as { code?: unknown } | null)?.code === 'FTCP_LOG_UNKNOWN') return;
        this.stats.stateWriteFailures++;
        this.logger.warn({ flow: flow.describe(), phase, update: rec.update, err }, 'connection state not stable in the log: translated segments stay from the client');
      },
    );
  }

  /**
   * A handshake completed under the incarnation serving now: the connection's record binds it
   * there (crashes 0, LIVE, no incarnation; state.ts), so that a gateway restarted after a
   * crash of that incarnation can tell (src/gateway/adopt-gate.ts). Nothing without a
   * supervisor's word, or for a connection the north side has a record of already.
   */
  protected bindOriginal(svc: Service, flow: Flow): void {
    if (flow.unprotected || peekNorth(flow)?.durable != null) return;
    const inc = this.serverIncarnation(svc);
    if (inc === null) return;
    const d = (northOf(flow).durable = new DurableState());
    d.boundTo = inc;
    this.persist(flow, 'LIVE');
  }

  /**
   * The flow's log connection is open (its id bound): a record owed meanwhile is written now,
   * before the client bytes kept pending are appended (an ordered store makes it stable no
   * later than the first of them, which is the first the client could be acked).
   */
  logBound(flow: Flow): void {
    const d = peekNorth(flow)?.durable ?? null;
    if (d !== null && d.owed) this.persist(flow, d.phase);
  }

  /** The ordering rule (durable.ts): may a translated segment of `flow` reach the client now? */
  protected translationStable(flow: Flow): boolean {
    const d = peekNorth(flow)?.durable ?? null;
    if (d === null || flow.unprotected) return true;
    if (d.owed) this.persist(flow, d.phase);
    return d.translationStable;
  }

  /** A record no longer recovers (LIVE, ENDED): the service is up again when it was the last. */
  private finish(flow: Flow): void {
    if (this.waiting.size > 0) this.wake();
    this.deactivate(flow);
    const svc = this.table.service(flow.serverIp, flow.serverPort);
    if (!svc) return;
    const sr = this.services.get(svc);
    if (sr && sr.down && this.countRecovering(svc) === 0 && sr.timeline?.listeningAt !== 0) this.serviceUp(sr);
  }

  // ---- the replay budget (replayInFlight) ----------------------------------------------

  /** Brings `inFlight` up to date with r's sndNxt − sndUna. */
  protected count(r: Rebuild): void {
    const n = r.sndNxt - r.sndUna;
    this.inFlight += n - r.counted;
    r.counted = n;
  }

  /** r stops counting (finished, failed, replaced by a new crash's rebuild). */
  private uncount(flow: Flow, r: Rebuild): void {
    this.inFlight -= r.counted;
    r.counted = 0;
    this.waiting.delete(flow);
  }

  // ---- the connections being recovered, per service -----------------------------------

  protected svcRec(svc: Service): ServiceRecovery {
    let r = this.services.get(svc);
    if (!r) this.services.set(svc, (r = { down: false, timeline: null, queue: [] }));
    return r;
  }

  protected countRecovering(svc: Service): number {
    return this.activeBySvc.get(svc) ?? 0;
  }

  private activate(svc: Service, flow: Flow): void {
    if (this.active.has(flow)) return;
    this.active.add(flow);
    this.activeBySvc.set(svc, (this.activeBySvc.get(svc) ?? 0) + 1);
  }

  protected deactivate(flow: Flow): void {
    if (!this.active.delete(flow)) return;
    const svc = this.table.service(flow.serverIp, flow.serverPort);
    if (svc !== undefined) this.activeBySvc.set(svc, (this.activeBySvc.get(svc) ?? 1) - 1);
  }

  protected serviceUp(sr: ServiceRecovery): void {
    sr.down = false;
    sr.timeline = null;
  }
}

/**
 * The out-stream offset of raw server sequence number `seq` in an incarnation whose ISN is
 * `isn`, taken near the known offset `near` (as Flow.outOffset does): exact while the two are
 * within 2^31 bytes, so it stays right past 2 GB, where a plain seqDiff from the ISN wraps.
 */
export function outOffsetNear(seq: Seq, isn: Seq, near: Offset): Offset {
  return near + seqDiff(seq, seqAdd(isn, 1 + (near % 0x100000000)));
}
