/**
 * What the embedded log stores share behind the front (front.ts: guards, FIN rules,
 * registry, read checks, listeners): stability notifications, the byte bounds and the bound
 * listener, gc/close bookkeeping, idle expiry, the service registry and the store status.
 * `MemoryLog` and `DiskLog` only decide where the prefix bytes go and when they become
 * stable.
 *
 * Per connection, in offsets of the client→server stream:
 *
 *   0        gcThrough        stableData        asm.end          held (out of order)
 *   |-- gone --|---- readable ----|--- in flight ---|    gap    [xx]  [xxx]   gap  [x]
 *                                 (disk: written,
 *                                  not yet committed)
 *
 *   stable = stableData, or finOffset + 1 once the FIN is logged and stableData = finOffset.
 *
 * Invariants: gcThrough <= stableData <= asm.end <= finOffset (when set); `stable` never
 * covers a gap; stability notifications are monotonic.
 */
import { FtcpError } from '../util/errors.js';
import { LogFront, serviceMatches, type FrontConn, type StateWaiter } from './front.js';
import { DEFAULT_MAX_HELD_BYTES, Reassembler } from './reassembler.js';
import type { BoundListener, ConnectionMeta, ConnectionState, Endpoint, LogStatus, LogUsage, OpenMeta } from './types.js';

/** LOW-SPACE is reported once the bytes held reach this fraction of `maxBytes`. */
export const LOW_SPACE_FRACTION = 0.9;

export interface LogOptions {
  /** Bound on the stream bytes the store holds (not yet gc'd); default unlimited. */
  maxBytes?: number;
  /** Per-connection cap on held out-of-order bytes; default 4 MiB. */
  maxHeldBytes?: number;
  /** Bound on the stream bytes one connection holds (not yet gc'd); default unlimited. */
  maxBytesPerConn?: number;
  /** LOW-SPACE is reported once the bytes held reach this fraction of `maxBytes`; default 0.9. */
  lowSpaceFraction?: number;
}

/** Per-connection state common to both stores. */
export interface ConnState extends FrontConn {
  /** Last value given to the stability listener. */
  notified: number;
  /** The FIN record itself is stable (disk: its metadata write committed). */
  finStable: boolean;
  /** Stream bytes counted against maxBytes (accepted into the prefix, not yet gc'd). */
  storedBytes: number;
}

/**
 * ConnState as a class: every connection's state has one hidden class. (The object literal
 * spread `{ ...state, store }` gave each connection its own V8 map and descriptor array,
 * ~430 bytes per connection; a store adds its fields in a subclass instead.)
 */
export class ConnRecord implements ConnState {
  readonly asm: Reassembler;
  stable: number;
  notified: number;
  finOffset: number | null = null;
  finStable = false;
  gcThrough = 0;
  modified = Date.now();
  storedBytes = 0;
  closed = false;
  state: ConnectionState | null = null;
  stateUpdate = 0;
  stateWaiters: StateWaiter[] | null = null;

  constructor(readonly meta: ConnectionMeta, public stableData: number, maxHeld: number) {
    this.asm = new Reassembler(stableData, maxHeld);
    this.stable = stableData;
    this.notified = stableData;
  }
}

/**
 * The shared half of an embedded store, behind the front. Subclasses provide `openConn`
 * (the open path), `accept` (where prefix bytes go), `persistFin`, `discard` (gc), `drop`
 * (close), `readRange` and `release`; they call `advanceStable` when bytes become stable and
 * `fail` on a write error.
 */
export abstract class BaseLog<C extends ConnState> extends LogFront<C> {
  protected readonly maxBytes: number;
  protected readonly maxHeldBytes: number;
  protected readonly maxBytesPerConn: number;
  protected readonly lowSpaceFraction: number;
  /** Stream bytes held by all connections (counted against maxBytes). */
  protected totalBytes = 0;
  protected failed = false;

  private boundListener: BoundListener | undefined;
  private services: Endpoint[] = [];
  private readonly pendingNotify = new Set<C>();
  private notifyScheduled = false;
  private expiryTimer: NodeJS.Timeout | undefined;

  constructor(options: LogOptions = {}) {
    super();
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    const maxHeld = options.maxHeldBytes ?? DEFAULT_MAX_HELD_BYTES;
    if (!(maxBytes > 0)) throw new FtcpError('FTCP_BAD_LOG_OPTION', `log maxBytes must be positive, got ${maxBytes}`);
    if (!(maxHeld >= 0)) throw new FtcpError('FTCP_BAD_LOG_OPTION', `log maxHeldBytes must be >= 0, got ${maxHeld}`);
    const perConn = options.maxBytesPerConn ?? Number.POSITIVE_INFINITY;
    if (!(perConn > 0)) throw new FtcpError('FTCP_BAD_LOG_OPTION', `log maxBytesPerConn must be positive, got ${perConn}`);
    const low = options.lowSpaceFraction ?? LOW_SPACE_FRACTION;
    if (!(low > 0 && low <= 1)) throw new FtcpError('FTCP_BAD_LOG_OPTION', `log lowSpaceFraction must be in (0, 1], got ${low}`);
    this.maxBytes = maxBytes;
    this.maxHeldBytes = maxHeld;
    this.maxBytesPerConn = perConn;
    this.lowSpaceFraction = low;
  }

  // ---- what a store provides -------------------------------------------------------

  /** open: `meta` passed the checks and has its id; resolve once the metadata is stable. */
  protected abstract override openConn(meta: ConnectionMeta): Promise<number>;
  /** Bytes extending the gap-free prefix at `offset` (a view: copy before returning). */
  protected abstract accept(c: C, data: Uint8Array, offset: number): void;
  /** The FIN offset was recorded in `c.finOffset`: make it stable, then set finStable. */
  protected abstract override persistFin(c: C): void;
  /** A newer state record: make it stable, then call stateStable (a write error: `fail`). */
  protected abstract writeState(c: C, state: ConnectionState, bytes: Buffer): void;
  /** gc: `c.gcThrough` was raised; discard what lies below it. Returns bytes freed. */
  protected abstract discard(c: C): number;
  /** close: the connection is gone from the registry; release its bytes. */
  protected abstract drop(c: C): void;
  /** [start, end) with gcThrough <= start < end <= stableData. */
  protected abstract readRange(c: C, start: number, end: number): Buffer;
  protected abstract release(): Promise<void>;

  /** The memory the store holds for the bytes (default: the bytes; the memory log: its slabs). */
  protected memoryBytes(): number {
    return this.totalBytes;
  }

  // ---- shared helpers for stores -----------------------------------------------------

  protected newConnState(meta: ConnectionMeta, stableData = 0): ConnState {
    return new ConnRecord(meta, stableData, this.maxHeldBytes);
  }

  /** Throws FtcpError unless a connection to `meta.server` may be opened now. */
  protected override checkOpen(meta: OpenMeta): void {
    // A FAILED store refuses before it looks at the metadata (a shut down one first of all).
    if (this.failed && !this.isShutdown) throw new FtcpError('FTCP_LOG_FAILED', 'log open: the store has FAILED');
    super.checkOpen(meta);
    if (this.services.length > 0 && !this.services.some((s) => serviceMatches(s, meta.server))) {
      throw new FtcpError(
        'FTCP_LOG_UNREGISTERED',
        `log open: ${meta.server.addr}:${meta.server.port} is not a registered service`,
      );
    }
  }

  /** More of `c` is stable: data through `stableData` (and the FIN, if finStable). */
  protected advanceStable(c: C, stableData: number): void {
    if (c.closed || this.failed) return;
    if (stableData > c.stableData) c.stableData = stableData;
    const stable = c.finOffset !== null && c.finStable && c.stableData >= c.finOffset ? c.finOffset + 1 : c.stableData;
    if (stable <= c.stable) return;
    c.stable = stable;
    this.pendingNotify.add(c);
    if (!this.notifyScheduled) {
      this.notifyScheduled = true;
      queueMicrotask(() => this.flushNotifications());
    }
  }

  private flushNotifications(): void {
    this.notifyScheduled = false;
    const batch = [...this.pendingNotify];
    this.pendingNotify.clear();
    for (const c of batch) {
      if (c.closed || c.stable <= c.notified) continue;
      c.notified = c.stable;
      this.stableListener?.(c.meta.id, c.stable);
    }
  }

  /** A write error: the store is FAILED for good, stability stops advancing, waiting state writes fail. */
  protected fail(reason: string): void {
    this.logStats.writeErrors++;
    if (this.failed) return;
    this.failed = true;
    this.pendingNotify.clear();
    const err = new FtcpError('FTCP_LOG_FAILED', `log setState: the store has FAILED (${reason})`);
    for (const c of this.conns.values()) this.failStates(c, err);
    this.reportStatus(reason);
  }

  // ---- the front's hooks -------------------------------------------------------------

  protected admit(c: C, n: number): boolean {
    // Over a bound the bytes are refused (counted); the bound listener, if any, is told
    // last, and may close the connection (nothing touches `c` after the call).
    if (c.storedBytes + n > this.maxBytesPerConn) {
      this.logStats.appendsOverConnBound++;
      this.boundListener?.(c.meta.id, 'connection', c.storedBytes);
      return false;
    }
    if (this.totalBytes + n > this.maxBytes) {
      this.logStats.appendsOverCapacity++;
      this.boundListener?.(c.meta.id, 'total', c.storedBytes);
      return false;
    }
    return true;
  }

  protected keep(c: C, data: Uint8Array, offset: number): void {
    c.storedBytes += data.length;
    this.totalBytes += data.length;
    this.accept(c, data, offset);
  }

  protected appended(): void {
    if (this.lastStatus !== 'FAILED') this.reportStatus();
  }

  protected collect(c: C): void {
    const freed = this.discard(c);
    c.storedBytes -= freed;
    this.totalBytes -= freed;
    this.reportStatus();
  }

  protected persistState(c: C, state: ConnectionState, bytes: Buffer): void {
    if (this.failed) this.failStates(c, new FtcpError('FTCP_LOG_FAILED', 'log setState: the store has FAILED'));
    else this.writeState(c, state, bytes);
  }

  protected closeConn(c: C): void {
    this.pendingNotify.delete(c);
    this.totalBytes -= c.storedBytes;
    c.storedBytes = 0;
    this.drop(c);
    this.reportStatus();
  }

  protected readStable(c: C, start: number, end: number): Promise<Buffer> {
    return Promise.resolve(this.readRange(c, start, end));
  }

  protected async stop(): Promise<void> {
    this.setIdleExpiry(0);
    await this.release();
  }

  // ---- LogStore ----------------------------------------------------------------------

  onBound(listener: BoundListener): void {
    this.boundListener = listener;
  }

  usage(): LogUsage {
    return {
      bytes: this.totalBytes,
      memory: this.memoryBytes(),
      connections: this.conns.size,
      maxBytes: this.maxBytes,
      maxBytesPerConn: this.maxBytesPerConn,
    };
  }

  status(): LogStatus {
    if (this.failed) return 'FAILED';
    if (Number.isFinite(this.maxBytes) && this.totalBytes >= this.maxBytes * this.lowSpaceFraction) return 'LOW-SPACE';
    return 'OK';
  }

  registerServices(services: Endpoint[]): void {
    this.services = services.map((s) => ({ addr: s.addr, port: s.port }));
  }

  setIdleExpiry(ms: number): void {
    if (this.expiryTimer !== undefined) clearInterval(this.expiryTimer);
    this.expiryTimer = undefined;
    if (!(ms > 0) || !Number.isFinite(ms) || this.isShutdown) return;
    const period = Math.min(Math.max(ms / 4, 1), 1000);
    this.expiryTimer = setInterval(() => this.expire(ms), period);
    this.expiryTimer.unref();
  }

  /** Closes connections whose last append is older than `ms`; reports each one. */
  protected expire(ms: number): void {
    const now = Date.now();
    const idle = [...this.conns.values()].filter((c) => now - c.modified > ms);
    for (const c of idle) {
      this.close(c.meta.id);
      this.logStats.expired++;
      this.statusListener?.(this.status(), { expired: c.meta.id });
    }
  }
}
