/**
 * The incarnation check of adopted connections (issue 14 item 2: "a server crash during or
 * right after the gateway's outage is recovered from the log as usual"). A restarted gateway
 * cannot have heard a crash that happened while no gateway ran: the supervisor's `crashed`,
 * `restarted` and `listening` notices went to a dead process. Adopted as they were, the
 * connections' retransmissions would reach the NEW server process, which answers them with a
 * RST, and the client would get it. So an adopted connection passes nothing, either way,
 * until the gateway knows which server process runs now and has compared it with the one the
 * log record binds the connection to (src/log/state.ts `boundTo`):
 *
 *   adopt()      every adopted connection that is not being rebuilt waits here
 *      │         (its segments: dropped, ADOPT_INCARNATION_UNKNOWN; TCP retransmits them;
 *      │          client bytes are logged first, as always)
 *      ▼
 *   the supervisor's first heartbeat after the start (the oracle's state for the service):
 *      UNKNOWN, SUSPECT ................ wait (a crash heard first is confirmed or superseded
 *                                        by the oracle within its window; a confirmed one
 *                                        masks the whole service, and the connection is the
 *                                        north side's then)
 *      ALIVE or LISTENING, the record's
 *        (boot, generation) ............ the same process: released, it carries on as today
 *      LISTENING, record binds nothing . unknown (a v1 record, or a binding not stable when
 *        (v1, or no record)              the old gateway died): released on probation: until
 *                                        the server's side is heard, a server RST says the
 *                                        process does not know the connection (a kernel's
 *                                        answer for a tuple it has no socket for): swallowed,
 *                                        and the connection is rebuilt as crashed
 *      anything else ................... crashed while no gateway ran: masked and rebuilt
 *        (another incarnation; ALIVE    from the log (NorthWrapper.adoptRebuilds: the service
 *         not listening yet: a fresh    listens, or its SYNs are refused and retried until
 *         start; CRASHED, RESTARTING,   the deadline, as after any crash); the new server
 *         SILENT)                       never saw a segment of it, so it has nothing to reset
 *      STOPPING, STOPPED ............... released (a deliberate stop: as today)
 *   no word within `waitMs` of the start: released, counted (timedOut) and logged, as a
 *   gateway without a supervisor would carry on.
 *
 * The check runs on the gateway's 10 ms recovery tick and whenever a waiting connection's
 * segment arrives. Without a liveness oracle that names incarnations there is nothing to
 * learn: nothing waits.
 *
 * The state is on the flow (`Flow.gate`, this file's GateEntry): the south wrapper asks about a
 * segment only of a flow that has one (SouthEvents.gated), so no other connection pays a lookup
 * while some wait. It asks about a server RST only once the client would accept it (RFC 5961,
 * south-judge.ts gatedServer): a spoofed or stale RST cannot make a connection on probation be
 * rebuilt.
 */
import { ADOPT_SERVER, type Flow } from '../flow/flow.js';
import { TCP_RST } from '../wire/tcp.js';
import { serviceName, type FlowTable, type Service } from '../flow/table.js';
import { DropReason, type WrapperVerdict } from '../wrappers/contract.js';
import { sameIncarnation, type ServerIncarnation } from '../log/state.js';
import type { Logger } from '../util/logger.js';
import type { NorthWrapper } from '../recovery/engine.js';
import { peekNorth } from '../recovery/rebuild.js';

/** How long adopted connections wait for the supervisor's word at most (ms); in `limits` as adoptIncarnationWaitMs. */
export const ADOPT_INCARNATION_WAIT_MS = 1000;

/** What the gateway's liveness oracle says of a service (src/supervisor/liveness.ts ServiceInfo). */
export interface IncarnationView {
  readonly state: string;
  readonly boot: string | null;
  readonly generation: number;
}

/** The running incarnation a view names, or null (not running, or never heard). */
export function runningIncarnation(v: IncarnationView | null): ServerIncarnation | null {
  if (v === null || v.boot === null || (v.state !== 'ALIVE' && v.state !== 'LISTENING')) return null;
  return { boot: v.boot, generation: v.generation };
}

export class AdoptGateStats {
  /** Adopted connections that waited for the check. */
  waited = 0;
  /** Released: the same incarnation, or a binding unknown while the service listens (counted apart too), or a deliberate stop. */
  released = 0;
  unknownBinding = 0;
  /** Found crashed (another incarnation, or the service not running): rebuilt from the log. */
  crashed = 0;
  /** Released because no supervisor spoke within the wait. */
  timedOut = 0;
  /** Released with an unknown binding, then reset by the server before it was heard otherwise: rebuilt (the RST swallowed). */
  resetUnknown = 0;
}

/** What the gate keeps on a flow it watches (Flow.gate): its service, and whether it is released on probation. */
interface GateEntry {
  readonly svc: Service;
  probation: boolean;
}

function entryOf(flow: Flow): GateEntry | null {
  return flow.gate as GateEntry | null;
}

export class AdoptGate {
  readonly stats = new AdoptGateStats();
  /** The waiting connections by service (the supervisor speaks per service). */
  private readonly waiting = new Map<Service, Set<Flow>>();
  private waitingCount = 0;
  /** Released with an unknown binding, their server side not heard yet. */
  private probationCount = 0;
  private deadline = Infinity;

  constructor(
    private readonly table: FlowTable,
    private readonly north: NorthWrapper,
    /** The oracle's view of a service ('ip:port'), null without an oracle that names incarnations. */
    private readonly view: ((service: string) => IncarnationView) | null,
    private readonly logger: Logger,
    readonly waitMs = ADOPT_INCARNATION_WAIT_MS,
  ) {}

  /** Anything waiting or on probation (the recovery tick decides only then). */
  get active(): boolean {
    return this.waitingCount > 0 || this.probationCount > 0;
  }

  /** After the adoption: every adopted connection not being rebuilt waits (nothing without an oracle). */
  adopted(): void {
    if (this.view === null) return;
    for (const [svc, flow] of this.table.flows()) {
      if (!flow.adopted || this.north.rebuilding(flow) || flow.unprotected || flow.gate !== null) continue;
      let s = this.waiting.get(svc);
      if (s === undefined) this.waiting.set(svc, (s = new Set()));
      s.add(flow);
      flow.gate = { svc, probation: false } satisfies GateEntry;
      this.waitingCount++;
      this.stats.waited++;
    }
  }

  /** The gateway starts: the wait is bounded from now. */
  start(now: number): void {
    this.deadline = now + this.waitMs;
  }

  /**
   * A segment of a flow the gate watches (SouthEvents.gated; a server RST only once the client
   * would take it): ADOPT_INCARNATION_UNKNOWN to drop it, or -1 to go on. A waiting connection
   * decides first, on what the oracle says now; a server segment of one found crashed by that is
   * dropped (the north side passed it before, the connection not being rebuilt yet). On
   * probation, a server RST before the server's side was heard otherwise rebuilds the connection.
   */
  segment(flow: Flow, flags: number, fromClient: boolean, now: number): WrapperVerdict | -1 {
    let e = entryOf(flow);
    if (e === null) return -1;
    if (!e.probation) {
      this.decide(e.svc, now);
      e = entryOf(flow);
      if (e !== null && !e.probation) return DropReason.ADOPT_INCARNATION_UNKNOWN; // still waiting
      if (!fromClient && this.north.rebuilding(flow)) return DropReason.ADOPT_INCARNATION_UNKNOWN;
      if (e === null) return -1;
    }
    if (fromClient) return -1;
    if (!(flow.adopting & ADOPT_SERVER) || this.north.rebuilding(flow)) {
      this.leaveProbation(flow); // the server's side was heard (or a crash took it): it knows the connection
      return -1;
    }
    if (!(flags & TCP_RST)) return -1;
    this.leaveProbation(flow);
    this.stats.resetUnknown++;
    this.logger.warn({ flow: flow.describe() }, 'adopted connection with no incarnation on record: the server reset it before anything else, so it restarted while no gateway ran; rebuilt from the log');
    this.north.adoptRebuilds(e.svc, [flow]);
    return DropReason.ADOPT_INCARNATION_UNKNOWN;
  }

  /** Decides every service whose supervisor has spoken (the gateway's recovery tick). */
  check(now: number): void {
    for (const svc of [...this.waiting.keys()]) this.decide(svc, now);
  }

  /** The flow left the table. */
  forget(flow: Flow): void {
    const e = entryOf(flow);
    if (e === null) return;
    if (e.probation) {
      this.leaveProbation(flow);
      return;
    }
    const s = this.waiting.get(e.svc);
    if (s !== undefined) this.release(e.svc, s, [flow]);
  }

  private leaveProbation(flow: Flow): void {
    flow.gate = null;
    this.probationCount--;
  }

  private decide(svc: Service, now: number): void {
    const s = this.waiting.get(svc);
    if (s === undefined || this.view === null) return;
    const service = serviceName(svc);
    const v = this.view(service);
    if (v.state === 'UNKNOWN' || v.state === 'SUSPECT') {
      if (now < this.deadline) return;
      this.stats.timedOut += s.size;
      this.logger.warn({ service, connections: s.size, waitedMs: this.waitMs, state: v.state },
        'adopted connections: no word from the supervisor in time; they carry on as adopted (a server crash during the outage would reach their clients as a RST)');
      this.release(svc, s, [...s]);
      return;
    }
    const stopped = v.state === 'STOPPING' || v.state === 'STOPPED';
    const running = runningIncarnation(v);
    const released: Flow[] = [];
    const probation: Flow[] = [];
    const crashed: Flow[] = [];
    for (const flow of s) {
      if (this.north.rebuilding(flow)) {
        released.push(flow); // masked meanwhile (the oracle's crash): the north side's now
        continue;
      }
      const bound = peekNorth(flow)?.durable?.boundTo ?? null;
      if (stopped || (running !== null && bound !== null && sameIncarnation(bound, running))) {
        released.push(flow);
      } else if (bound === null && v.state === 'LISTENING') {
        this.stats.unknownBinding++;
        probation.push(flow);
      } else {
        crashed.push(flow);
      }
    }
    this.release(svc, s, released.concat(probation, crashed));
    for (const f of probation) {
      f.gate = { svc, probation: true } satisfies GateEntry;
      this.probationCount++;
    }
    this.stats.released += released.length + probation.length;
    if (crashed.length === 0) return;
    this.stats.crashed += crashed.length;
    this.logger.warn({ service, connections: crashed.length, state: v.state, boot: v.boot, generation: v.generation },
      'adopted connections: the server restarted while no gateway ran; rebuilt from the log');
    this.north.adoptRebuilds(svc, crashed);
  }

  private release(svc: Service, s: Set<Flow>, flows: readonly Flow[]): void {
    for (const f of flows) {
      if (!s.delete(f)) continue;
      f.gate = null;
      this.waitingCount--;
    }
    if (s.size === 0) this.waiting.delete(svc);
  }

  /** /status `adoption.incarnation`. */
  describe(): Record<string, number> {
    return { waiting: this.waitingCount, probation: this.probationCount, ...this.stats };
  }
}
