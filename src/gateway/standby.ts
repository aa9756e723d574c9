/**
 * The warm standby gateway and its takeover (issue 14 item 3; DESIGN.md §7). Two gateways on
 * two hosts share one log server; keepalived (VRRP) gives the gateway's addresses to one of
 * them at a time and tells each through its notify hooks (`ftcp gateway takeover`, `release`).
 *
 *                 ftcp gateway --standby
 *                          │
 *                          ▼            takeover                        claim ✓ list ✓
 *   ┌──────────────▶   STANDBY   ───────────────────▶  TAKING_OVER  ─────────────────────▶  ACTIVE
 *   │  release        (follows the                    (still drops;     become active and    │
 *   │                  log: a list                     claims the        adopt every open     │
 *   │                  every refreshMs)                log's epoch,      connection in one    │
 *   │                      ▲  ▲                        lists)            synchronous step     │
 *   │                      │  └──── claim or list failed, or a release ──┘                    │
 *   └──────────────────────┴─────────────────────────────────────────────── release ─────────┘
 *
 * STANDBY and TAKING_OVER set the gateway's `standingBy`: every packet of a protected service is
 * dropped (STANDBY; TCP retransmits), before the flow table and the log, and every packet the
 * wrappers make too. Unprotected traffic passes as always. Fencing is the gateway's own
 * (fence.ts: another gateway claimed the log; role 'fenced', drops FENCED) and can befall an
 * ACTIVE standby: a takeover then runs again, and its claim ends the fence.
 *
 * The takeover, step by step (each step's time is reported: claimMs, adoptMs, totalMs):
 *  1. Claim the log's epoch (Gateway.claim, fence.ts): from then on the log server refuses the
 *     old primary, so it can open no connection and make no byte stable (two gateways never
 *     both acknowledge client data). A log without epochs (the embedded stores, which --standby
 *     refuses): the takeover goes on, unfenced, logged.
 *     Then the protected services are registered with the log (a standby does not at start:
 *     a log server refuses, and reports fenced, any write of a gateway without the epoch).
 *  2. List the open connections (adopt.ts fetchOpen). After the claim the list is complete:
 *     the old primary can register nothing more. The list followed while standing by is not
 *     used for this (it may miss the newest connections and holds stale stable points); it
 *     shows what a takeover will find and that the log link works. The list comes in pages
 *     (256 records at most each; bounds: adopt.ts LIST_PAGE_TIMEOUT_MS, LIST_TIMEOUT_MS, in
 *     the gateway's limits), so any table the flow table holds can be listed.
 *  3. In one synchronous step: whatever the flow table still holds (a fenced gateway's stale
 *     connections) leaves it, the role becomes 'active' and every record is adopted
 *     (Gateway.adoptListed, as a restarted gateway does at start: adopt.ts). No packet is
 *     routed between the two, so none is forwarded for a connection not adopted yet, and the
 *     rebuild SYN an adoption sends at once leaves.
 * Idempotent: a takeover of an ACTIVE gateway (not fenced) answers the last one's report
 * (`already`); one asked while another runs answers with that one. A failed claim or list
 * leaves it STANDBY.
 *
 * Release (keepalived BACKUP or FAULT): the role becomes 'standby' first, synchronously, so no
 * protected packet is forwarded from then on (fail closed); then every connection leaves the
 * flow table (its recovery ends, silently: nothing made leaves). Their log connections are not
 * closed: they are left to the log, for the gateway that takes over, and forgotten by this
 * gateway's log client (fence.ts leaveAll), so that its next takeover opens each once again.
 * A release during a takeover cancels it (the takeover finds a newer generation and gives up
 * before step 3).
 */
import { performance } from 'node:perf_hooks';
import type { Gateway } from './gateway.js';
import type { GatewayRole, StandbyView } from './view.js';
import type { LogStore } from '../log/types.js';
import { fetchOpen } from './adopt.js';
import { FtcpError } from '../util/errors.js';
import { ipToU32 } from '../wire/addr.js';
import type { Logger } from '../util/logger.js';
import { AddressWatch } from './address-watch.js';
import { leaveAll } from './fence.js';

export type StandbyPhase = 'STANDBY' | 'TAKING_OVER' | 'ACTIVE';

/** The standby's follow period's bounds and default (ms): `--standby-refresh`. */
export const STANDBY_REFRESH_MS = Object.freeze({ dflt: 1000, min: 100, max: 60_000 });

/** What following the log found (counts only: no record is kept, so it is bounded by nature). */
export class FollowStats {
  refreshes = 0;
  failures = 0;
  /** Open connections of the protected services in the last list, and of them translated (rebuilt before) and being rebuilt. */
  followed = 0;
  translated = 0;
  rebuilding = 0;
  /** Of `followed`, beyond --max-flows: a takeover would not adopt them (they would pass unprotected). */
  overCap = 0;
  /** Wall-clock ms of the last successful list, and how long it took. */
  lastRefreshAt: number | null = null;
  lastRefreshMs: number | null = null;
  lastError: string | null = null;
}

/** A takeover's report (control endpoint, CLI, status). */
export interface TakeoverReport {
  role: GatewayRole;
  /** The epoch claimed (null: the log has no epochs; the old primary is not fenced). */
  epoch: number | null;
  claimMs: number;
  /** Listing and adopting (steps 2 and 3). */
  adoptMs: number;
  totalMs: number;
  adopted: number;
  translated: number;
  rebuilding: number;
  /** Wall-clock ms when it completed. */
  at: number;
  /** True when the gateway was already active (this report is the earlier takeover's). */
  already: boolean;
}

export interface ReleaseReport {
  role: GatewayRole;
  /** Connections that left the flow table (left to the log). */
  left: number;
  already: boolean;
}

export interface StandbyOptions {
  refreshMs?: number;
  /** Take over as soon as one of these addresses appears on this host (address-watch.ts). */
  takeoverOnAddress?: readonly string[];
  /** The watch's own options (tests: an injected address list). */
  watch?: ConstructorParameters<typeof AddressWatch>[2];
  logger: Logger;
  /** Wall clock (ms), for the times shown. */
  clock?: () => number;
}

export class Standby implements StandbyView {
  phase: StandbyPhase = 'STANDBY';
  readonly follow = new FollowStats();
  readonly refreshMs: number;
  lastTakeover: TakeoverReport | null = null;
  takeovers = 0;
  takeoverFailures = 0;
  releases = 0;
  private running: Promise<TakeoverReport> | null = null;
  /** Bumped by every transition out of TAKING_OVER: a takeover that finds it changed gives up. */
  private generation = 0;
  private refreshing = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;
  private readonly logger: Logger;
  private readonly clock: () => number;
  /** `--takeover-on-address`: the takeover's own trigger, null without it. */
  readonly watch: AddressWatch | null;

  constructor(private readonly gw: Gateway, private readonly log: LogStore, opts: StandbyOptions) {
    this.refreshMs = opts.refreshMs ?? STANDBY_REFRESH_MS.dflt;
    this.logger = opts.logger;
    this.clock = opts.clock ?? Date.now;
    const addrs = opts.takeoverOnAddress ?? [];
    this.watch = addrs.length === 0 ? null : new AddressWatch(addrs, () => {
      this.logger.warn({ addrs }, 'a takeover address is on this host: taking over');
      return this.takeover();
    }, opts.watch);
    gw.standby = this;
    gw.standingBy = true;
  }

  /**
   * Follows the log while not active: a list at once, then refreshMs after each one ends (not
   * every refreshMs: a list of many connections takes seconds, and back to back they would
   * keep the log link and the log server busy).
   */
  start(): void {
    this.stopped = false;
    this.watch?.start();
    const next = () => {
      if (this.stopped) return;
      this.timer = setTimeout(() => void this.refresh().finally(next), this.refreshMs);
      this.timer.unref();
    };
    void this.refresh().finally(next);
  }

  stop(): void {
    this.stopped = true;
    this.watch?.stop();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The one transition function: the gateway stands by unless ACTIVE. */
  private to(next: StandbyPhase, why: string): void {
    const from = this.phase;
    if (from === 'TAKING_OVER' || next === 'TAKING_OVER') this.generation++;
    this.phase = next;
    this.gw.standingBy = next !== 'ACTIVE';
    this.logger.warn({ from, to: next, role: this.gw.role, why }, `gateway ${from} → ${next}`);
  }

  /** One round of following the log (skipped while active or while one runs). */
  async refresh(): Promise<void> {
    // Only while standing by: during a takeover its list would compete with the takeover's own.
    if (this.phase !== 'STANDBY' || this.gw.role === 'active' || this.refreshing) return;
    this.refreshing = true;
    const t0 = performance.now();
    try {
      const { records } = await fetchOpen(this.log);
      const f = this.follow;
      const max = this.gw.south.limits().maxFlows;
      let n = 0, translated = 0, rebuilding = 0;
      for (const r of records) {
        if (!this.protects(r.server.addr, r.server.port)) continue; // another gateway's service
        n++;
        if (r.state !== null && r.state.phase !== 'LIVE') rebuilding++;
        else if (r.state !== null && r.state.incarnations.length > 0) translated++;
      }
      f.followed = n;
      f.translated = translated;
      f.rebuilding = rebuilding;
      f.overCap = Math.max(0, n - max);
      f.refreshes++;
      f.lastRefreshAt = this.clock();
      f.lastRefreshMs = Math.round(performance.now() - t0);
      f.lastError = null;
    } catch (err) {
      this.follow.failures++;
      if (this.follow.lastError === null) this.logger.error({ err: (err as Error).message }, 'standby: cannot list the log\'s open connections (a takeover needs that list)');
      this.follow.lastError = (err as Error).message.slice(0, 200);
    } finally {
      this.refreshing = false;
    }
  }

  private protects(addr: string, port: number): boolean {
    try {
      return this.gw.table.service(ipToU32(addr), port) !== undefined;
    } catch {
      return false; // not an IPv4 address: adoption skips it too
    }
  }

  /** Makes this gateway the active one (the steps at the top). Rejects with FtcpError FTCP_TAKEOVER. */
  takeover(): Promise<TakeoverReport> {
    if (this.phase === 'ACTIVE' && this.gw.fenced === null && this.lastTakeover !== null) return Promise.resolve({ ...this.lastTakeover, already: true });
    // One running for the current generation is this one too; one a release overtook (a fast
    // MASTER → BACKUP → MASTER) is doomed ("released meanwhile"): a fresh one follows it.
    if (this.running !== null && this.phase === 'TAKING_OVER') return this.running;
    const before = this.running;
    const p: Promise<TakeoverReport> = (before === null ? this.runTakeover() : before.catch(() => {}).then(() => this.runTakeover())).finally(() => {
      if (this.running === p) this.running = null;
    });
    this.running = p;
    return p;
  }

  private async runTakeover(): Promise<TakeoverReport> {
    const t0 = performance.now();
    this.to('TAKING_OVER', 'takeover asked');
    const gen = this.generation;
    const fail = (step: string, err: unknown): never => {
      this.takeoverFailures++;
      if (this.generation === gen) this.to('STANDBY', `takeover failed at ${step}`);
      const msg = err instanceof Error ? err.message : String(err);
      this.logger.error({ step, err: msg }, 'takeover failed: still standby, protected traffic dropped');
      throw new FtcpError('FTCP_TAKEOVER', `takeover failed at ${step}: ${msg}`, { cause: err });
    };
    let epoch: number | null = null;
    try {
      epoch = await this.gw.claim();
      if (epoch === null) this.logger.error('takeover: the log hands out no epochs: NOT FENCED, an old primary that comes back is not refused');
    } catch (err) {
      fail('claim', err);
    }
    const t1 = performance.now();
    if (this.generation !== gen) fail('claim', new Error('released meanwhile'));
    this.gw.registerServices(); // not at start: the log server would have fenced a standby for it
    const before = { ...this.gw.adoption };
    let listed;
    try {
      listed = await fetchOpen(this.log);
    } catch (err) {
      return fail('list', err);
    }
    if (this.generation !== gen) return fail('list', new Error('released meanwhile'));
    // Step 3: activate and adopt in one synchronous step: no packet is routed in between, and
    // what the adoption sends at once (the SYN of a rebuild it begins again) is not suppressed.
    // A guard: a fence empties the table already (fence.ts); whatever is left, the log's records are newer.
    const stale = leaveAll(this.gw, this.log);
    if (stale > 0) this.logger.warn({ stale }, 'takeover: the connections held before the fence left the flow table; adopted again from the log');
    this.to('ACTIVE', 'takeover: adopting every open connection');
    try {
      this.gw.adoptListed(listed);
    } catch (err) {
      this.to('STANDBY', 'takeover: the adoption failed');
      leaveAll(this.gw, this.log);
      return fail('adopt', err);
    }
    const t2 = performance.now();
    const a = this.gw.adoption;
    const report: TakeoverReport = {
      role: this.gw.role, epoch, claimMs: ms(t1 - t0), adoptMs: ms(t2 - t1), totalMs: ms(t2 - t0),
      adopted: a.adopted - before.adopted, translated: a.translated - before.translated, rebuilding: a.rebuilding - before.rebuilding,
      at: this.clock(), already: false,
    };
    this.takeovers++;
    this.lastTakeover = report;
    this.logger.warn(report, `takeover: active, ${report.adopted} connection(s) adopted in ${report.totalMs} ms (claim ${report.claimMs} ms, adopt ${report.adoptMs} ms)`);
    return report;
  }

  /** Back to standby (the steps at the top): protected forwarding stops before this returns. */
  release(why = 'release asked'): ReleaseReport {
    if (this.phase === 'STANDBY') return { role: this.gw.role, left: 0, already: true };
    // (a fenced ACTIVE one too: it holds connections that must leave)
    this.to('STANDBY', why);
    const left = leaveAll(this.gw, this.log);
    this.releases++;
    if (left > 0) this.logger.warn({ left }, `release: ${left} connection(s) left to the log`);
    return { role: this.gw.role, left, already: false };
  }

  describe(): Record<string, unknown> {
    const f = this.follow;
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    return {
      phase: this.phase, refreshMs: this.refreshMs,
      takeoverOnAddress: this.watch === null ? null : { addrs: this.watch.addrs, periodMs: this.watch.periodMs, fired: this.watch.fired },
      follow: { ...f, lastRefreshAt: iso(f.lastRefreshAt) },
      takeovers: this.takeovers, takeoverFailures: this.takeoverFailures, releases: this.releases,
      lastTakeover: this.lastTakeover === null ? null : { ...this.lastTakeover, at: iso(this.lastTakeover.at) },
    };
  }

  limits(): Record<string, number> {
    return { standbyRefreshMs: this.refreshMs, ...(this.watch !== null ? { takeoverAddressWatchMs: this.watch.periodMs } : {}) };
  }
}

function ms(x: number): number {
  return Math.round(x * 10) / 10;
}
