/**
 * The liveness oracle's pure logic (no sockets, no timers): per protected service, a state
 * machine fed by authenticated supervisor notices and by silence, the replay check, and the
 * verdict the gateway consults before it lets a server FIN/RST through (DESIGN.md §3.3, §4).
 * The clock is injected (`now()`), so every rule is testable with a fake clock; oracle.ts puts
 * it behind a UDP socket and real timers.
 *
 * States (one transition function, `LivenessTracker.step`, logs `from → to`; the arms are
 * in `nextState`):
 *
 *              hello/heartbeat(alive)         listening, heartbeat(alive, listening)
 *   UNKNOWN ─────────────────────────▶ ALIVE ─────────────────────────────────────▶ LISTENING
 *      │  └──────────────── listening, heartbeat(alive, listening) ───────────────────▶ ▲  │
 *      │                                 │                                             │  │
 *      │  crashed, heartbeat(!alive)     │ crashed, heartbeat(!alive)                  │  │ crashed,
 *      ▼                                 ▼                                             │  │ heartbeat(!alive)
 *   CRASHED ◀───────────────────────────────────────────────────────────────────────────┼──┘
 *      │ restarted, heartbeat(alive) of a later generation or another boot             │
 *      ▼                                                                               │
 *   RESTARTING ──────────────── listening, heartbeat(alive, listening) ────────────────┘
 *
 *   ALIVE, LISTENING, SUSPECT, CRASHED, RESTARTING, STOPPING ── silence > silenceMs ──▶ SILENT
 *   SILENT ── heartbeat(alive) ──▶ ALIVE, or LISTENING if listening
 *   any ── stopping ──▶ STOPPING ── stopped ──▶ STOPPED     (any ── stopped ──▶ STOPPED)
 *   LISTENING ── heartbeat(alive, !listening) of a later generation/boot ──▶ RESTARTING
 *   STOPPING/STOPPED ── heartbeat(alive) of a later generation/boot ──▶ ALIVE or LISTENING
 *   A notice of a type always wins (crashed → CRASHED from any state, and so on); a
 *   heartbeat only repairs what lost notices left wrong and never undoes a crash or a stop
 *   of the same incarnation.
 *
 *   Before the service is anchored (less than confirmMs since its first accepted notice),
 *   every arrow into CRASHED goes to SUSPECT instead (no event: nothing is masked yet):
 *
 *   any ── crashed, heartbeat(!alive), not anchored ──▶ SUSPECT
 *   SUSPECT ── a notice that supersedes the crash ──▶ what that notice says from UNKNOWN
 *   SUSPECT ── confirmMs after the first notice, not superseded ──▶ CRASHED ('crashed'), then
 *              the last notice heard meanwhile applies (a restart: RESTARTING or LISTENING)
 *   SUSPECT ── stopping/stopped ──▶ STOPPING/STOPPED;  other notices: stays SUSPECT
 *
 * Verdict (what the gateway does with a held server FIN/RST):
 *   UNKNOWN                      → 'unknown' (never heard: the gateway applies its policy)
 *   ALIVE, LISTENING             → 'alive'   (fresh heartbeats: a FIN is the application's)
 *   STOPPING, STOPPED            → 'alive'   (a deliberate stop: the server closes its
 *                                             connections on purpose, so its FINs must pass)
 *   CRASHED, RESTARTING, SILENT  → 'dead'    (SILENT is only reachable after having heard the
 *                                             supervisor: a host that fell silent may be dead)
 *   SUSPECT                      → 'dead', but waitVerdict waits: a supersession decides it
 *                                  from the live notice, else the confirmation or the deadline
 * "Fresh" is enforced by the silence rule: no accepted notice for longer than `silenceMs`
 * moves the service to SILENT (STOPPED and UNKNOWN excepted: a stopped supervisor exits).
 *
 * Replays. Within one supervisor run (boot id) a notice is accepted only if its seq is greater
 * than the last accepted one; lower or equal seqs are dropped (`duplicate` when it is one of the
 * last few accepted seqs — the supervisor sends important notices 3 times — else `replayed`);
 * a greater seq naming an older generation than the run's last one is dropped (`badGeneration`:
 * a supervisor's generations only grow with its seqs).
 * A notice from a boot id other than the service's current one is accepted only if
 *   (a) that boot is not one of the service's retired boots (the last 64 kept), and
 *   (b) its sentAt is not older than the newest sentAt accepted for the service.
 * Rule (b) compares two readings of the same clock (the supervisor host's), so it needs no
 * clock synchronisation with the gateway: every notice of an old run was sent before the
 * newest notice of the current run, so a recorded old-boot notice is always rejected once the
 * service has been heard. The residual window: right after the gateway itself starts (no
 * history), recorded notices (of a past run or of the current one) can be accepted until the
 * live supervisor's first notice (≤ one heartbeat later). Such a replay is harmless except a
 * crash, hence the anchoring rule and the SUSPECT state:
 *   (c) A crash heard before the service is anchored is not acted on (no 'crashed', no
 *       masking, held FINs keep waiting) until confirmMs after the first notice. A live
 *       notice arrives within that window, and it supersedes the crash — the crash is then
 *       dropped as if never heard (counted `superseded`, logged) — when either
 *         * the crash was delivered late relative to it: (n.sentAt − crash.sentAt) −
 *           (n.received − crash.received) > confirmMs (two readings of the supervisor host's
 *           clock against two of ours: no synchronisation needed); a recording made before
 *           the gateway started is late by its age; or
 *         * it says the crashed generation is running (same boot and generation, alive or
 *           listening): a supervisor never does after reporting that generation's crash.
 *       So a replayed crash of the running generation leaves the service alive, and one of an
 *       older generation never makes the gateway "rebuild" the connections of the live server.
 *   (d) Once anchored, every replay recorded before the gateway started is rejected by (a),
 *       (b) or the seq: the live notices heard since are newer.
 * The price: a genuine crash in the first confirmMs of a service's history is acted on when
 * the window ends (a held FIN/RST still resolves 'dead' at its deadline). Not covered: a
 * recording less than confirmMs old, and replays for a service whose supervisor is not
 * running (nothing live supersedes them). `maxAgeMs` also drops notices whose sentAt is further
 * than that from the gateway's clock (use it when the hosts' clocks are synchronised). A
 * supervisor host whose wall clock steps backwards across a supervisor restart is ignored
 * until its clock passes the old newest sentAt (logged); one that steps forwards by more than
 * confirmMs right after a crash heard in the window makes that crash look like a replay.
 */
import type { Logger } from '../util/logger.js';
import { decodeNotice, isDecodeError, NOTICE_TYPES, type Notice, type NoticeType } from './messages.js';

export type ServiceState = 'UNKNOWN' | 'ALIVE' | 'SUSPECT' | 'CRASHED' | 'RESTARTING' | 'LISTENING' | 'STOPPING' | 'STOPPED' | 'SILENT';
export type Verdict = 'alive' | 'dead' | 'unknown';
export type OracleEventName = 'alive' | 'crashed' | 'restarted' | 'listening' | 'stopping' | 'stopped' | 'silent';

/** What listeners and `info()` get about one service. */
export interface ServiceInfo {
  service: string;
  state: ServiceState;
  verdict: Verdict;
  generation: number;
  boot: string | null;
  /** The program's pid as last reported. */
  pid?: number;
  /** Exit code / signal of the last crash reported (kept across restarts). */
  exitCode?: number;
  signal?: string;
  /** Receiver's clock (ms) at the last accepted notice; -1 if never heard. */
  lastHeard: number;
}

export interface LivenessCounters {
  /** Datagrams handed to `receive`. */
  received: number;
  accepted: number;
  forged: number;
  malformed: number;
  /** Old seq within a boot, retired or stale boot, or outside `maxAgeMs`. */
  replayed: number;
  /** Repeated copies of a recently accepted notice (seq seen recently). */
  duplicate: number;
  /**
   * Authentic notices of the current supervisor run whose generation is older than one already
   * heard from it (a supervisor counts its program's generations up with its seqs): dropped.
   */
  badGeneration: number;
  /** Authentic notices about a service this oracle was not told to watch. */
  unknownService: number;
  /** Crashes heard before the service was anchored that a later notice showed to be replays (never acted on). */
  superseded: number;
  /** Crashes heard before the service was anchored and confirmed at the end of the window (acted on then). */
  confirmed: number;
  /** Accepted notices by type. */
  perType: Record<NoticeType, number>;
}

export type ReceiveResult = 'accepted' | 'forged' | 'malformed' | 'replayed' | 'duplicate' | 'bad-generation' | 'unknown-service';

export type Input =
  | {
      kind: 'notice';
      notice: Notice;
      /** From a later generation or another supervisor run than the last one heard. */
      newIncarnation: boolean;
      /** The service was anchored when the notice arrived (default true); see "Replays" above. */
      anchored?: boolean;
      /** In SUSPECT: the notice shows the suspected crash notice was a replay (default false). */
      supersedes?: boolean;
    }
  | { kind: 'silence' }
  /** SUSPECT: the confirmation window ended and nothing superseded the crash. */
  | { kind: 'confirm' };

export interface LivenessOptions {
  /** Ms clock (monotonic is best). */
  now: () => number;
  /** Silence longer than this → SILENT. Default 3 × heartbeatMs + 50. */
  silenceMs?: number;
  /** Supervisors' heartbeat interval, for the default silenceMs. Default 100. */
  heartbeatMs?: number;
  /**
   * The anchoring window, and the tolerance of the replay test (see "Replays"): a crash heard
   * less than this after a service's first notice waits this long for confirmation (SUSPECT),
   * and is a replay if a later notice was sent more than this longer after it than it was
   * received after it. Default silenceMs.
   */
  confirmMs?: number;
  /** Only these services ('ip:port') are tracked; others are dropped and counted. Default: all. */
  services?: string[];
  /** Drop notices whose sentAt differs from `wallNow()` by more than this (synchronised clocks only). */
  maxAgeMs?: number;
  /** Wall clock for maxAgeMs. Default Date.now. */
  wallNow?: () => number;
  log?: Logger;
  /** Called on entering a state (see EVENT_OF) with the service's info after the transition. */
  emit?: (event: OracleEventName, service: string, info: ServiceInfo) => void;
}

const RETIRED_BOOTS = 64;
const RECENT_SEQS = 8;

/** The event emitted on entering each state. */
const EVENT_OF: Partial<Record<ServiceState, OracleEventName>> = {
  // SUSPECT has none: nothing is done about a crash until it is confirmed.
  ALIVE: 'alive',
  CRASHED: 'crashed',
  RESTARTING: 'restarted',
  LISTENING: 'listening',
  STOPPING: 'stopping',
  STOPPED: 'stopped',
  SILENT: 'silent',
};

export function verdictOf(state: ServiceState): Verdict {
  switch (state) {
    case 'UNKNOWN':
      return 'unknown';
    case 'ALIVE':
    case 'LISTENING':
    case 'STOPPING': // deliberate stop: its FINs pass
    case 'STOPPED':
      return 'alive';
    case 'SUSPECT': // (waitVerdict waits for the confirmation or the deadline)
    case 'CRASHED':
    case 'RESTARTING':
    case 'SILENT':
      return 'dead';
  }
}

interface Waiter {
  boot: string | null;
  generation: number;
  deadline: number;
  /** Only a death, a deliberate stop, or an alive notice accepted at least `minGap` ms after `since` ends the wait; see waitVerdict. */
  settle: boolean;
  since: number;
  /** wallNow() when the wait began: with `settle`, an alive notice must have been sent after it. */
  sinceWall: number;
  minGap: number;
  resolve: (v: Verdict) => void;
}

interface ServiceRecord {
  service: string;
  state: ServiceState;
  generation: number;
  boot: string | null;
  lastSeq: number;
  recentSeqs: number[];
  retired: string[];
  maxSentAt: number;
  lastHeard: number;
  /** Receiver's clock at the first accepted notice (-1: never heard); anchored confirmMs later. */
  firstHeard: number;
  /** SUSPECT: the crash notice waiting for confirmation, and the last notice accepted since. */
  suspect: { boot: string; generation: number; seq: number; sentAt: number; recvAt: number; after: Notice | null } | null;
  pid?: number;
  exitCode?: number;
  signal?: string;
  waiters: Waiter[];
}

/**
 * The next state for `input` in state `cur`: the whole state machine in one place. Pure.
 * `newIncarnation`: the notice is from a later generation or another supervisor run than the
 * last one heard (so the program instance we knew is gone).
 */
export function nextState(cur: ServiceState, input: Input): ServiceState {
  if (input.kind === 'silence') {
    // A stopped supervisor exits, and a never-heard one stays unknown.
    return cur === 'UNKNOWN' || cur === 'STOPPED' || cur === 'SILENT' ? cur : 'SILENT';
  }
  if (input.kind === 'confirm') return cur === 'SUSPECT' ? 'CRASHED' : cur;
  const n = input.notice;
  if (cur === 'SUSPECT') {
    // A crash heard before the service was anchored: a replay is superseded (the state is
    // what this notice says, as if the crash had never been heard); a stop always wins;
    // anything else waits for the confirmation.
    if (input.supersedes === true) return nextState('UNKNOWN', { ...input, supersedes: false });
    return n.type === 'stopping' ? 'STOPPING' : n.type === 'stopped' ? 'STOPPED' : 'SUSPECT';
  }
  const to = noticeState(cur, n, input.newIncarnation);
  // Not anchored yet: the crash may be a recorded notice; it is not acted on until confirmed.
  return to === 'CRASHED' && cur !== 'CRASHED' && input.anchored === false ? 'SUSPECT' : to;
}

/** nextState's arms for a notice outside SUSPECT (pure). */
function noticeState(cur: Exclude<ServiceState, 'SUSPECT'>, n: Notice, fresh: boolean): ServiceState {
  switch (n.type) {
    case 'crashed':
      return 'CRASHED';
    case 'restarted':
      return 'RESTARTING';
    case 'listening':
      return 'LISTENING';
    case 'stopping':
      return 'STOPPING';
    case 'stopped':
      return 'STOPPED';
    case 'hello':
    case 'heartbeat': {
      // A heartbeat repairs what lost notices left wrong; it never contradicts a stop or a
      // crash of the same incarnation.
      const alive = n.alive !== false;
      if (!alive) {
        // The program is not running: a crash we missed, unless it is being stopped or restarted.
        return cur === 'STOPPING' || cur === 'STOPPED' || cur === 'CRASHED' || cur === 'RESTARTING' ? cur : 'CRASHED';
      }
      switch (cur) {
        case 'STOPPING':
          return fresh ? (n.listening ? 'LISTENING' : 'ALIVE') : cur;
        case 'STOPPED':
          return fresh ? (n.listening ? 'LISTENING' : 'ALIVE') : cur;
        case 'CRASHED':
          return fresh ? (n.listening ? 'LISTENING' : 'RESTARTING') : cur;
        case 'RESTARTING':
          return n.listening ? 'LISTENING' : cur;
        case 'LISTENING':
          // A later generation not listening yet: we missed its crash and restart.
          return fresh && !n.listening ? 'RESTARTING' : cur;
        case 'ALIVE':
          return n.listening ? 'LISTENING' : cur;
        case 'UNKNOWN':
        case 'SILENT':
          return n.listening ? 'LISTENING' : 'ALIVE';
      }
    }
  }
}

export class LivenessTracker {
  readonly silenceMs: number;
  readonly confirmMs: number;
  readonly counters: LivenessCounters = {
    received: 0,
    accepted: 0,
    forged: 0,
    malformed: 0,
    replayed: 0,
    duplicate: 0,
    badGeneration: 0,
    unknownService: 0,
    superseded: 0,
    confirmed: 0,
    perType: Object.fromEntries(NOTICE_TYPES.map((t) => [t, 0])) as Record<NoticeType, number>,
  };
  private readonly records = new Map<string, ServiceRecord>();
  private readonly now: () => number;
  private readonly wallNow: () => number;
  private readonly allowed: Set<string> | null;

  constructor(
    private readonly key: Buffer,
    private readonly opts: LivenessOptions,
  ) {
    this.now = opts.now;
    this.wallNow = opts.wallNow ?? Date.now;
    this.silenceMs = opts.silenceMs ?? 3 * (opts.heartbeatMs ?? 100) + 50;
    this.confirmMs = opts.confirmMs ?? this.silenceMs;
    this.allowed = opts.services ? new Set(opts.services) : null;
    for (const s of opts.services ?? []) this.record(s);
  }

  /** Verifies, dedupes and applies one datagram. Never throws on bad input. */
  receive(buf: Buffer): ReceiveResult {
    this.counters.received++;
    const n = decodeNotice(buf, this.key);
    if (isDecodeError(n)) {
      if (n.error === 'FORGED') this.counters.forged++;
      else this.counters.malformed++;
      this.opts.log?.debug({ reason: n.error }, 'supervisor notice dropped');
      return n.error === 'FORGED' ? 'forged' : 'malformed';
    }
    return this.accept(n);
  }

  /** Applies an already-authenticated notice (the replay check included). */
  accept(n: Notice): ReceiveResult {
    if (this.allowed && !this.allowed.has(n.service)) {
      this.counters.unknownService++;
      return 'unknown-service';
    }
    if (this.opts.maxAgeMs !== undefined && Math.abs(this.wallNow() - n.sentAt) > this.opts.maxAgeMs) {
      this.counters.replayed++;
      return 'replayed';
    }
    const r = this.record(n.service);
    let newIncarnation = false;
    if (n.boot === r.boot) {
      if (n.seq <= r.lastSeq) {
        const dup = r.recentSeqs.includes(n.seq);
        if (dup) this.counters.duplicate++;
        else this.counters.replayed++;
        return dup ? 'duplicate' : 'replayed';
      }
      if (n.generation < r.generation) {
        // A later seq of the same run never names an older generation: not the supervisor's.
        this.counters.badGeneration++;
        return 'bad-generation';
      }
      newIncarnation = n.generation > r.generation;
    } else {
      if (r.retired.includes(n.boot) || n.sentAt < r.maxSentAt) {
        this.counters.replayed++;
        if (!r.retired.includes(n.boot)) {
          this.opts.log?.warn({ service: n.service, boot: n.boot, sentAt: n.sentAt, newest: r.maxSentAt }, 'notice from another supervisor run older than the newest heard: dropped as a replay');
        }
        return 'replayed';
      }
      if (r.boot !== null) {
        r.retired.push(r.boot);
        if (r.retired.length > RETIRED_BOOTS) r.retired.shift();
        newIncarnation = true;
      }
      r.boot = n.boot;
      r.recentSeqs = [];
    }
    r.lastSeq = n.seq;
    r.recentSeqs.push(n.seq);
    if (r.recentSeqs.length > RECENT_SEQS) r.recentSeqs.shift();
    r.maxSentAt = Math.max(r.maxSentAt, n.sentAt);
    const now = this.now();
    r.lastHeard = now;
    if (r.firstHeard < 0) r.firstHeard = now;
    this.counters.accepted++;
    this.counters.perType[n.type]++;
    if (r.state === 'SUSPECT' && now - r.firstHeard >= this.confirmMs) this.confirm(r, now); // (no tick since the window ended)
    const anchored = now - r.firstHeard >= this.confirmMs;
    const supersedes = r.state === 'SUSPECT' && this.supersedes(r, n, now);

    r.generation = n.generation;
    if (supersedes) {
      // what the replayed crash said is forgotten with it
      delete r.exitCode;
      delete r.signal;
    }
    if (n.pid !== undefined) r.pid = n.pid;
    if (n.type === 'crashed') {
      r.exitCode = n.exitCode;
      r.signal = n.signal;
    }
    const before = r.state;
    this.step(r, { kind: 'notice', notice: n, newIncarnation, anchored, supersedes }, `${n.type} seq ${n.seq}${supersedes ? ' (supersedes the suspected crash)' : ''}`);
    if (r.state !== 'SUSPECT') r.suspect = null;
    else if (before !== 'SUSPECT' || supersedes) r.suspect = { boot: n.boot, generation: n.generation, seq: n.seq, sentAt: n.sentAt, recvAt: now, after: null };
    else r.suspect!.after = n;
    this.settleWaiters(r, newIncarnation, n.type, supersedes, n.sentAt);
    return 'accepted';
  }

  /** Applies silence and waiter deadlines as of now(). The oracle calls it on a timer. */
  tick(): void {
    for (const r of this.records.values()) this.checkClock(r);
    const now = this.now();
    for (const r of this.records.values()) {
      if (r.waiters.length === 0) continue;
      const due = r.waiters.filter((w) => w.deadline <= now);
      if (due.length === 0) continue;
      r.waiters = r.waiters.filter((w) => w.deadline > now);
      const v = verdictOf(r.state);
      for (const w of due) {
        const later = w.boot !== null && (w.boot !== r.boot || r.generation > w.generation);
        w.resolve(later ? 'dead' : v);
      }
    }
  }

  /** The verdict now (silence applied first). */
  verdict(service: string): Verdict {
    const r = this.records.get(service);
    if (!r) return 'unknown';
    this.checkClock(r);
    return verdictOf(r.state);
  }

  state(service: string): ServiceState {
    const r = this.records.get(service);
    if (!r) return 'UNKNOWN';
    this.checkClock(r);
    return r.state;
  }

  info(service: string): ServiceInfo {
    const r = this.records.get(service);
    if (!r) return { service, state: 'UNKNOWN', verdict: 'unknown', generation: 0, boot: null, lastHeard: -1 };
    this.checkClock(r);
    return this.infoOf(r);
  }

  services(): string[] {
    return [...this.records.keys()];
  }

  /**
   * Resolves with the verdict:
   *  * at once if the state already decides it (CRASHED/RESTARTING/SILENT → 'dead',
   *    STOPPING/STOPPED → 'alive');
   *  * else at the next accepted notice for the service (a crash → 'dead'; a heartbeat of the
   *    same incarnation → 'alive'; any notice of a later generation or another supervisor run
   *    → 'dead': the instance that sent the held FIN is gone);
   *  * else at `timeoutMs` (as of `tick()`), with the verdict then (silence applied).
   * With `settle` (the gateway holding a server FIN/RST), 'alive' needs positive, fresh
   * evidence: a notice of the same incarnation saying alive, accepted at least `minGapMs`
   * after the wait began, and sent (its sentAt, the supervisor's clock) after the wait began
   * (our wall clock). A heartbeat sent just before the process died can be processed after
   * the FIN its kernel sent (the TUN and the oracle's socket are separate queues), on a busy
   * gateway by far more than minGapMs (a crash storm released 16 dead kv servers' FINs so);
   * one sent after the death says not alive (the supervisor checks for a zombie and for
   * PF_EXITING). The sentAt rule assumes the clocks agree (as maxAgeMs does); a supervisor
   * clock behind ours only delays a live FIN to the deadline, when the state decides. Deaths
   * resolve at once; silence makes the service SILENT ('dead') before the deadline.
   */
  waitVerdict(service: string, timeoutMs: number, settle = false, minGapMs = 0): Promise<Verdict> {
    const r = this.record(service);
    this.checkClock(r);
    const st = r.state;
    if (st === 'CRASHED' || st === 'RESTARTING' || st === 'SILENT' || st === 'STOPPING' || st === 'STOPPED') {
      return Promise.resolve(verdictOf(st));
    }
    return new Promise<Verdict>((resolve) => {
      const now = this.now();
      r.waiters.push({ boot: r.boot, generation: r.generation, deadline: now + timeoutMs, settle, since: now, sinceWall: this.wallNow(), minGap: minGapMs, resolve });
    });
  }

  /** The earliest pending waiter deadline, or null. */
  nextDeadline(): number | null {
    let d: number | null = null;
    for (const r of this.records.values()) for (const w of r.waiters) if (d === null || w.deadline < d) d = w.deadline;
    return d;
  }

  /** Resolves every pending waiter with the current verdict (on close). */
  flushWaiters(): void {
    for (const r of this.records.values()) {
      const ws = r.waiters.splice(0);
      for (const w of ws) w.resolve(verdictOf(r.state));
    }
  }

  // ---- internals ------------------------------------------------------------------------

  private record(service: string): ServiceRecord {
    let r = this.records.get(service);
    if (!r) {
      r = {
        service,
        state: 'UNKNOWN',
        generation: 0,
        boot: null,
        lastSeq: 0,
        recentSeqs: [],
        retired: [],
        maxSentAt: -Infinity,
        lastHeard: -1,
        firstHeard: -1,
        suspect: null,
        waiters: [],
      };
      this.records.set(service, r);
    }
    return r;
  }

  private infoOf(r: ServiceRecord): ServiceInfo {
    const i: ServiceInfo = {
      service: r.service,
      state: r.state,
      verdict: verdictOf(r.state),
      generation: r.generation,
      boot: r.boot,
      lastHeard: r.lastHeard,
    };
    if (r.pid !== undefined) i.pid = r.pid;
    if (r.exitCode !== undefined) i.exitCode = r.exitCode;
    if (r.signal !== undefined) i.signal = r.signal;
    return i;
  }

  /** The clock's rules as of now(): a suspected crash confirmed at the end of the window, then silence. */
  private checkClock(r: ServiceRecord): void {
    const now = this.now();
    if (r.state === 'SUSPECT' && now - r.firstHeard >= this.confirmMs) this.confirm(r, now);
    if (r.lastHeard < 0 || now - r.lastHeard <= this.silenceMs) return;
    if (nextState(r.state, { kind: 'silence' }) === r.state) return;
    this.step(r, { kind: 'silence' }, `silent for ${now - r.lastHeard} ms > ${this.silenceMs} ms`);
    r.suspect = null;
    const ws = r.waiters.splice(0);
    for (const w of ws) w.resolve(verdictOf(r.state));
  }

  /**
   * Whether `n` (accepted in SUSPECT) shows the suspected crash notice was a replay: it was
   * delivered more than confirmMs later, relative to `n`, than it was sent (both sentAt are
   * the supervisor host's clock, both receive times ours: no clock synchronisation needed),
   * or `n` says the crashed generation is running (a supervisor never does after its crash).
   */
  private supersedes(r: ServiceRecord, n: Notice, now: number): boolean {
    const s = r.suspect;
    if (s === null) return false;
    const lateMs = n.sentAt - s.sentAt - (now - s.recvAt);
    const runs = n.boot === s.boot && n.generation === s.generation && (n.type === 'listening' || ((n.type === 'heartbeat' || n.type === 'hello') && n.alive !== false));
    if (lateMs <= this.confirmMs && !runs) return false;
    this.counters.superseded++;
    this.opts.log?.warn(
      { service: r.service, boot: s.boot, generation: s.generation, seq: s.seq, lateMs, by: { type: n.type, boot: n.boot, generation: n.generation, seq: n.seq } },
      runs ? 'crash notice superseded: the crashed generation is running (a replayed notice); not acted on' : 'crash notice superseded: it was delivered late (a replayed notice); not acted on',
    );
    return true;
  }

  /** SUSPECT at the end of the window: the crash stands; what was heard since applies now. */
  private confirm(r: ServiceRecord, now: number): void {
    const s = r.suspect;
    this.counters.confirmed++;
    this.step(r, { kind: 'confirm' }, `crash confirmed: nothing superseded it for ${now - r.firstHeard} ms`);
    r.suspect = null;
    for (const w of r.waiters.splice(0)) w.resolve('dead');
    if (s !== null && s.after !== null) {
      const a = s.after;
      this.step(r, { kind: 'notice', notice: a, newIncarnation: a.boot !== s.boot || a.generation > s.generation }, `${a.type} seq ${a.seq}, heard while the crash was suspected`);
    }
  }

  /** THE transition function: computes the next state, logs `from → to`, emits the event. */
  private step(r: ServiceRecord, input: Input, why: string): void {
    const from = r.state;
    const to = nextState(from, input);
    if (to === from) return;
    r.state = to;
    this.opts.log?.info({ service: r.service, from, to, generation: r.generation, why }, `supervised ${r.service}: ${from} → ${to}`);
    const ev = EVENT_OF[to];
    if (ev) this.opts.emit?.(ev, r.service, this.infoOf(r));
  }

  private settleWaiters(r: ServiceRecord, newIncarnation: boolean, type: NoticeType, supersedes: boolean, sentAt: number): void {
    if (r.waiters.length === 0 || r.state === 'SUSPECT') return; // decided at the confirmation, a supersession or the deadline
    if (supersedes) {
      // The instance a waiter took as current came from the replay: the live one is this notice's.
      for (const w of r.waiters) {
        w.boot = r.boot;
        w.generation = r.generation;
      }
      newIncarnation = false;
    }
    const ws = r.waiters.splice(0);
    for (const w of ws) {
      const later = w.boot !== null && (w.boot !== r.boot || r.generation > w.generation);
      if (later || (newIncarnation && w.boot !== null)) w.resolve('dead');
      else if (type === 'crashed') w.resolve('dead');
      else if (w.settle && verdictOf(r.state) === 'alive' && type !== 'stopping' && type !== 'stopped' && (this.now() - w.since < w.minGap || sentAt < w.sinceWall)) r.waiters.push(w);
      else w.resolve(verdictOf(r.state));
    }
  }
}
