/**
 * The connection's durable state (issue 14 item 1; DESIGN.md §7): what the engine writes to
 * the log (src/log/state.ts ConnectionState) so that a gateway taking the connection over can
 * carry on — the rebuild's phase, the crash count, each incarnation's translation — and the
 * ordering rule that makes it safe, the stable-ACK rule's twin:
 *
 *   no client sees a translated byte whose translation is not stable.
 *
 *   gateway                                   log                      client
 *     SYN-ACK of incarnation k: translation k added,
 *     enter(REPLAY) ── setState(update u) ──▶ (memory: at once;
 *                                              disk: fsync;
 *     replay → new incarnation (goes on)       remote: server's store)
 *     its output, translated ──────────────────────────────────── ✗ TRANSLATION_UNSTABLE
 *                            ◀── stable(u) ──                           (it retransmits)
 *     its output, translated ─────────────────────────────────────────────────▶ ✓
 *
 * Dropped, not held: the new incarnation retransmits what it sent (as it does for a segment
 * the network lost), so nothing needs buffering, bounding or releasing in order, and the
 * window is short (one fsync, or one round trip to the log server) and mostly covered by the
 * replay, during which the regenerated output is absorbed rather than forwarded. Absorbed
 * segments and the replay never reach the client, so they go on meanwhile.
 *
 * The record also binds the connection to the server incarnation it lives in (boundTo: the
 * supervisor's boot and generation, from the liveness oracle), for a gateway restarted after
 * that incarnation died while no gateway ran (src/gateway/adopt-gate.ts). A rebuilt one's binding
 * goes in the record that holds its translation, so the rule above covers it. A connection never
 * rebuilt gets a record of its own at the handshake (LIVE, crashes 0, no incarnation), written
 * as soon as its log id is known and before its first client bytes are appended: an ordered
 * store (the disk log's commits) makes it stable no later than the first byte the client could
 * be acked. A gateway that dies within that one commit leaves it unbound: adopted as "unknown".
 *
 * Every phase change of a rebuild writes the record too (MASKED, HANDSHAKE, REPLAY, ABSORB,
 * LIVE), each with a higher `update`: a store never lets an older record replace a newer one,
 * so a late completion cannot undo a later phase. A write that fails leaves the translation
 * unstable, under the gateway's log-failure policy: 'stall' (the default), the client sees no
 * translated byte until a later write is stable; 'passthrough', the flow is unprotected and the
 * rule no longer applies (no log, no takeover).
 */
import type { Flow } from '../flow/flow.js';
import { u32ToIp } from '../wire/addr.js';
import type { Seq } from '../wire/seq.js';
import { MAX_INCARNATIONS, STATE_PHASES, type ConnectionState, type IncarnationState, type ServerIncarnation, type StatePhase } from '../log/state.js';
import type { Translation } from './translate.js';

/** Whether a rebuild phase is one a record names (FAILED and ENDED are not: the connection goes). */
export function isStatePhase(p: string): p is StatePhase {
  return (STATE_PHASES as readonly string[]).includes(p);
}

/** What the north side keeps of a connection's durable record (NorthRecord.durable). */
export class DurableState {
  /** The phase the last record named (or was to name: `owed`). */
  phase: StatePhase = 'MASKED';
  /** Oldest first, the last MAX_INCARNATIONS; the last one is the translation in force. */
  readonly incarnations: IncarnationState[] = [];
  /** The last update written, and the highest the log reported stable. */
  issued = 0;
  stable = 0;
  /** The first update that holds the translation in force (0: none yet). */
  xlateUpdate = 0;
  /** A write is due but the flow had no log id yet (its open still pending). */
  owed = false;
  /**
   * The server incarnation the connection lives in now (the supervisor's boot and generation
   * when the handshake completed, or when the translation in force was made); null: unknown
   * (no supervisor heard). Set with the translation, so the record that holds the one holds
   * the other: stable before it matters, by the ordering rule above.
   */
  boundTo: ServerIncarnation | null = null;

  /** A new incarnation's translation: the next record carries it; until that one is stable, translationStable is false. */
  addIncarnation(inc: IncarnationState): void {
    this.incarnations.push(inc);
    if (this.incarnations.length > MAX_INCARNATIONS) this.incarnations.shift();
    this.xlateUpdate = this.issued + 1;
  }

  /** The next record to write, naming `phase`. */
  next(phase: StatePhase, crashes: number): ConnectionState {
    this.phase = phase;
    this.owed = false;
    const b = this.boundTo;
    return { update: ++this.issued, phase, crashes, incarnations: this.incarnations.slice(), ...(b !== null ? { boundTo: b } : {}) };
  }

  stabilized(update: number): void {
    if (update > this.stable) this.stable = update;
  }

  /** The ordering rule: the record holding the translation in force (or a later one) is stable. */
  get translationStable(): boolean {
    return this.stable >= this.xlateUpdate;
  }
}

/** The record of an incarnation from its translation and ISN (the server's address: the flow's). */
export function incarnationOf(flow: Flow, t: Translation, isn: Seq): IncarnationState {
  return {
    serverIsn: isn >>> 0,
    seqDelta: t.seqDelta >>> 0,
    tsDelta: t.tsDelta >>> 0,
    server: { addr: u32ToIp(flow.serverIp), port: flow.serverPort },
    serverSidePort: t.serverSidePort,
    oldShift: t.oldShift,
    newShift: t.newShift,
  };
}
