/**
 * What the embedded log stores share: gap-free prefix tracking (`Reassembler`), the
 * connection registry, stability notifications, FIN/gc/close bookkeeping, idle expiry,
 * the service registry and the store status. `MemoryLog` and `DiskLog` only decide where
 * the prefix bytes go and when they become stable.
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
import type {
  ConnectionMeta,
  ConnectionRecord,
  Endpoint,
  LogStats,
  LogStatus,
  LogStore,
  BoundListener,
  LogUsage,
  OpenMeta,
  StabilityListener,
  StatusListener,
} from './types.js';

/** Default per-connection cap on held out-of-order bytes (beyond it they are dropped). */
export const DEFAULT_MAX_HELD_BYTES = 4 * 1024 * 1024;
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

/** Receives bytes that extend the gap-free prefix, in order, starting at `offset`. */
export type PrefixSink = (data: Uint8Array, offset: number) => void;

interface HeldSegment {
  off: number;
  data: Uint8Array;
}

const NO_SEGS: HeldSegment[] = Object.freeze([]) as unknown as HeldSegment[];

export interface PushResult {
  duplicate: number;
  dropped: number;
  beyondLimit: number;
}

/**
 * Gap-free prefix tracking for one stream. Bytes at the prefix end go straight to the
 * sink (as views of the caller's buffer: the sink copies); bytes beyond a gap are copied
 * and held, as sorted non-overlapping segments, up to `maxHeld` bytes, and handed to the
 * sink when the gap fills. Bytes at or beyond `limit` (the FIN offset) are refused.
 */
export class Reassembler {
  /** Length of the gap-free prefix handed to the sink. */
  end: number;
  /** Offsets at or beyond this are refused (the FIN offset, once known). */
  limit = Number.POSITIVE_INFINITY;
  heldBytes = 0;
  /** NO_SEGS (shared, frozen) until something is held: most streams never have a gap. */
  private segs: HeldSegment[] = NO_SEGS;

  constructor(
    start: number,
    readonly maxHeld: number,
  ) {
    this.end = start;
  }

  get heldSegments(): number {
    return this.segs.length;
  }

  /** Refuses everything from `limit` on, dropping held bytes there. Returns bytes dropped. */
  setLimit(limit: number): number {
    this.limit = limit;
    let dropped = 0;
    while (this.segs.length > 0) {
      const last = this.segs[this.segs.length - 1]!;
      const lastEnd = last.off + last.data.length;
      if (lastEnd <= limit) break;
      if (last.off >= limit) {
        this.segs.pop();
        dropped += last.data.length;
      } else {
        const keep = limit - last.off;
        dropped += last.data.length - keep;
        last.data = last.data.subarray(0, keep);
      }
    }
    this.heldBytes -= dropped;
    return dropped;
  }

  push(offset: number, data: Uint8Array, sink: PrefixSink): PushResult {
    const res: PushResult = { duplicate: 0, dropped: 0, beyondLimit: 0 };
    let o = offset;
    let d = data;
    if (o + d.length > this.limit) {
      const keep = Math.max(0, this.limit - o);
      res.beyondLimit = d.length - keep;
      d = d.subarray(0, keep);
    }
    if (d.length === 0) return res;
    if (o + d.length <= this.end) {
      res.duplicate = d.length;
      return res;
    }
    if (o < this.end) {
      res.duplicate = this.end - o;
      d = d.subarray(this.end - o);
      o = this.end;
    }
    if (o === this.end) {
      this.end = o + d.length;
      sink(d, o);
      this.drain(sink, res);
    } else {
      this.hold(o, d, res);
    }
    return res;
  }

  /** Hands over held segments that now touch the prefix end. */
  private drain(sink: PrefixSink, res: PushResult): void {
    let n = 0;
    while (n < this.segs.length && this.segs[n]!.off <= this.end) {
      const s = this.segs[n]!;
      n++;
      this.heldBytes -= s.data.length;
      const sEnd = s.off + s.data.length;
      if (sEnd <= this.end) {
        res.duplicate += s.data.length;
        continue;
      }
      const from = this.end;
      res.duplicate += from - s.off;
      this.end = sEnd;
      sink(s.data.subarray(from - s.off), from);
    }
    if (n > 0) this.segs.splice(0, n);
  }

  /** Holds the parts of [o, o+len) no held segment covers (copies), within the cap. */
  private hold(o: number, d: Uint8Array, res: PushResult): void {
    const e = o + d.length;
    // First segment ending after o (segments are sorted and disjoint: ends are sorted too).
    let lo = 0;
    let hi = this.segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const s = this.segs[mid]!;
      if (s.off + s.data.length <= o) lo = mid + 1;
      else hi = mid;
    }
    const pieces: { at: number; from: number; to: number }[] = [];
    let cur = o;
    let i = lo;
    while (cur < e) {
      const s = this.segs[i];
      if (s === undefined || s.off >= e) {
        pieces.push({ at: i, from: cur, to: e });
        break;
      }
      if (s.off > cur) pieces.push({ at: i, from: cur, to: s.off });
      const sEnd = s.off + s.data.length;
      res.duplicate += Math.min(sEnd, e) - Math.max(s.off, cur);
      cur = Math.max(cur, sEnd);
      i++;
    }
    // Keep the lowest pieces first (they are the next to be needed), within the cap.
    const kept: typeof pieces = [];
    for (const p of pieces) {
      const len = p.to - p.from;
      if (this.heldBytes + len > this.maxHeld) {
        res.dropped += len;
        continue;
      }
      this.heldBytes += len;
      kept.push(p);
    }
    if (kept.length > 0 && this.segs === NO_SEGS) this.segs = [];
    for (let k = kept.length - 1; k >= 0; k--) {
      const p = kept[k]!;
      this.segs.splice(p.at, 0, { off: p.from, data: Uint8Array.prototype.slice.call(d, p.from - o, p.to - o) });
    }
  }
}

/** Per-connection state common to both stores. */
export interface ConnState {
  readonly meta: ConnectionMeta;
  readonly asm: Reassembler;
  /** Gap-free prefix held stably (data bytes). */
  stableData: number;
  /** Reported stable point: stableData, or finOffset + 1 once the FIN is stable. */
  stable: number;
  /** Last value given to the stability listener. */
  notified: number;
  finOffset: number | null;
  /** The FIN record itself is stable (disk: its metadata write committed). */
  finStable: boolean;
  gcThrough: number;
  modified: number;
  /** Stream bytes counted against maxBytes (accepted into the prefix, not yet gc'd). */
  storedBytes: number;
  closed: boolean;
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

  constructor(readonly meta: ConnectionMeta, public stableData: number, maxHeld: number) {
    this.asm = new Reassembler(stableData, maxHeld);
    this.stable = stableData;
    this.notified = stableData;
  }
}

export function newStats(): LogStats {
  return {
    appends: 0,
    bytesAccepted: 0,
    bytesDuplicate: 0,
    bytesHeldDropped: 0,
    bytesBeyondFin: 0,
    appendsOverCapacity: 0,
    appendsOverConnBound: 0,
    unknownId: 0,
    badOffset: 0,
    finConflict: 0,
    writeErrors: 0,
    expired: 0,
  };
}

function validEndpoint(e: unknown): e is Endpoint {
  if (typeof e !== 'object' || e === null) return false;
  const { addr, port } = e as { addr?: unknown; port?: unknown };
  return typeof addr === 'string' && Number.isInteger(port) && (port as number) >= 0 && (port as number) <= 0xffff;
}

function validIsn(n: unknown): boolean {
  return Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 0xffffffff;
}

/** Throws FtcpError 'FTCP_LOG_BAD_META' unless `meta` is well formed. */
export function checkOpenMeta(meta: OpenMeta): void {
  const bad = (what: string): never => {
    throw new FtcpError('FTCP_LOG_BAD_META', `log open: invalid ${what}`);
  };
  if (!validEndpoint(meta.client)) bad('client endpoint');
  if (!validEndpoint(meta.server)) bad('server endpoint');
  if (!validIsn(meta.clientIsn)) bad('client ISN');
  if (!validIsn(meta.serverIsn)) bad('server ISN');
  if (!(meta.clientSynOptions instanceof Uint8Array)) bad('client SYN options');
  if (!(meta.serverSynOptions instanceof Uint8Array)) bad('server SYN options');
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && a.addr === b.addr;
}

/** Does a registered service (port 0: any port; addr '' / '0.0.0.0': any address) match? */
export function serviceMatches(service: Endpoint, server: Endpoint): boolean {
  const anyAddr = service.addr === '' || service.addr === '0.0.0.0';
  return (anyAddr || service.addr === server.addr) && (service.port === 0 || service.port === server.port);
}

export function isOffset(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/**
 * The FIN rules every store (and the remote client) applies: counted, never thrown.
 * Returns true when the FIN at `offset` is new and accepted (the caller persists it).
 */
export function acceptFin(c: { finOffset: number | null; modified: number; readonly asm: Reassembler }, offset: number, counters: LogStats): boolean {
  if (!isOffset(offset)) {
    counters.badOffset++;
    return false;
  }
  counters.appends++;
  c.modified = Date.now();
  if (c.finOffset !== null) {
    if (c.finOffset !== offset) counters.finConflict++;
    return false;
  }
  if (offset < c.asm.end) {
    // Data already logged beyond this FIN: the FIN contradicts the stream.
    counters.finConflict++;
    return false;
  }
  c.finOffset = offset;
  counters.bytesBeyondFin += c.asm.setLimit(offset);
  return true;
}

/**
 * The shared half of an embedded store. Subclasses provide `accept` (where prefix bytes
 * go), `persistFin`, `discard` (gc), `drop` (close), `readRange` and the open path; they
 * call `advanceStable` when bytes become stable and `fail` on a write error.
 */
export abstract class BaseLog<C extends ConnState> implements LogStore {
  protected readonly conns = new Map<number, C>();
  protected readonly counters: LogStats = newStats();
  protected readonly maxBytes: number;
  protected readonly maxHeldBytes: number;
  protected readonly maxBytesPerConn: number;
  protected readonly lowSpaceFraction: number;
  /** Stream bytes held by all connections (counted against maxBytes). */
  protected totalBytes = 0;
  protected failed = false;
  protected isShutdown = false;

  private stableListener: StabilityListener | undefined;
  private statusListener: StatusListener | undefined;
  private boundListener: BoundListener | undefined;
  private lastStatus: LogStatus = 'OK';
  private services: Endpoint[] = [];
  private readonly pendingNotify = new Set<C>();
  private notifyScheduled = false;
  private expiryTimer: NodeJS.Timeout | undefined;

  constructor(options: LogOptions = {}) {
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

  abstract open(meta: OpenMeta): Promise<number>;
  /** Bytes extending the gap-free prefix at `offset` (a view: copy before returning). */
  protected abstract accept(c: C, data: Uint8Array, offset: number): void;
  /** The FIN offset was recorded in `c.finOffset`: make it stable, then set finStable. */
  protected abstract persistFin(c: C): void;
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
  protected checkOpen(meta: OpenMeta): void {
    if (this.isShutdown) throw new FtcpError('FTCP_LOG_SHUTDOWN', 'log open: the store is shut down');
    if (this.failed) throw new FtcpError('FTCP_LOG_FAILED', 'log open: the store has FAILED');
    checkOpenMeta(meta);
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

  /** A write error: the store is FAILED for good and stability stops advancing. */
  protected fail(reason: string): void {
    this.counters.writeErrors++;
    if (this.failed) return;
    this.failed = true;
    this.pendingNotify.clear();
    this.reportStatus(reason);
  }

  protected reportStatus(reason?: string): void {
    const s = this.status();
    if (s === this.lastStatus) return;
    this.lastStatus = s;
    this.statusListener?.(s, reason === undefined ? undefined : { reason });
  }

  protected record(c: C): ConnectionRecord {
    return {
      ...c.meta,
      stable: c.stable,
      finOffset: c.finOffset,
      gcThrough: c.gcThrough,
      modified: c.modified,
    };
  }

  // ---- LogStore ----------------------------------------------------------------------

  append(id: number, offset: number, data: Uint8Array): void {
    const c = this.conns.get(id);
    if (c === undefined || this.isShutdown) {
      this.counters.unknownId++;
      return;
    }
    if (!isOffset(offset) || !isOffset(offset + data.length)) {
      this.counters.badOffset++;
      return;
    }
    this.counters.appends++;
    c.modified = Date.now();
    if (data.length === 0 || offset + data.length <= c.asm.end) {
      this.counters.bytesDuplicate += data.length;
      return;
    }
    // Over a bound the bytes are refused (counted); the bound listener, if any, is told
    // last, and may close the connection (nothing here touches `c` after the call).
    if (c.storedBytes + data.length > this.maxBytesPerConn) {
      this.counters.appendsOverConnBound++;
      this.boundListener?.(id, 'connection', c.storedBytes);
      return;
    }
    if (this.totalBytes + data.length > this.maxBytes) {
      this.counters.appendsOverCapacity++;
      this.boundListener?.(id, 'total', c.storedBytes);
      return;
    }
    const res = c.asm.push(offset, data, (d, off) => {
      c.storedBytes += d.length;
      this.totalBytes += d.length;
      this.counters.bytesAccepted += d.length;
      this.accept(c, d, off);
    });
    this.counters.bytesDuplicate += res.duplicate;
    this.counters.bytesHeldDropped += res.dropped;
    this.counters.bytesBeyondFin += res.beyondLimit;
    if (this.lastStatus !== 'FAILED') this.reportStatus();
  }

  appendFin(id: number, offset: number): void {
    const c = this.conns.get(id);
    if (c === undefined || this.isShutdown) {
      this.counters.unknownId++;
      return;
    }
    if (acceptFin(c, offset, this.counters)) this.persistFin(c);
  }

  onStable(listener: StabilityListener): void {
    this.stableListener = listener;
  }

  onStatus(listener: StatusListener): void {
    this.statusListener = listener;
  }

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

  listActive(): ConnectionRecord[] {
    return [...this.conns.values()].map((c) => this.record(c));
  }

  queryEndpoint(client: Endpoint, server?: Endpoint): ConnectionRecord | undefined {
    for (const c of this.conns.values()) {
      if (sameEndpoint(c.meta.client, client) && (server === undefined || sameEndpoint(c.meta.server, server))) {
        return this.record(c);
      }
    }
    if (server !== undefined) return undefined;
    for (const c of this.conns.values()) {
      if (sameEndpoint(c.meta.server, client)) return this.record(c);
    }
    return undefined;
  }

  read(id: number, start: number, end: number): Promise<Buffer> {
    const c = this.conns.get(id);
    if (c === undefined) {
      return Promise.reject(new FtcpError('FTCP_LOG_UNKNOWN', `log read: no open connection ${id}`));
    }
    if (!isOffset(start) || !(end >= 0) || Number.isNaN(end)) {
      return Promise.reject(new FtcpError('FTCP_LOG_RANGE', `log read: bad range [${start}, ${end})`));
    }
    if (start < c.gcThrough) {
      return Promise.reject(
        new FtcpError('FTCP_LOG_GC', `log read: connection ${id} is garbage-collected below ${c.gcThrough}, asked ${start}`),
      );
    }
    const e = Math.min(end, c.stableData);
    if (start >= e) return Promise.resolve(Buffer.alloc(0));
    try {
      return Promise.resolve(this.readRange(c, start, e));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  gc(id: number, through: number): void {
    const c = this.conns.get(id);
    if (c === undefined) {
      this.counters.unknownId++;
      return;
    }
    if (!(through >= 0)) {
      this.counters.badOffset++;
      return;
    }
    const t = Math.min(through, c.stableData);
    if (t <= c.gcThrough) return;
    c.gcThrough = t;
    const freed = this.discard(c);
    c.storedBytes -= freed;
    this.totalBytes -= freed;
    this.reportStatus();
  }

  close(id: number): void {
    const c = this.conns.get(id);
    if (c === undefined) return;
    this.conns.delete(id);
    c.closed = true;
    this.pendingNotify.delete(c);
    this.totalBytes -= c.storedBytes;
    c.storedBytes = 0;
    this.drop(c);
    this.reportStatus();
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
      this.counters.expired++;
      this.statusListener?.(this.status(), { expired: c.meta.id });
    }
  }

  stats(): LogStats {
    return { ...this.counters };
  }

  async shutdown(): Promise<void> {
    if (this.isShutdown) return;
    this.isShutdown = true;
    this.setIdleExpiry(0);
    await this.release();
  }
}

/** The stored metadata of a newly opened connection: a deep copy of what the caller gave. */
export function copyMeta(id: number, meta: OpenMeta): ConnectionMeta {
  return {
    id,
    client: { addr: meta.client.addr, port: meta.client.port },
    server: { addr: meta.server.addr, port: meta.server.port },
    clientIsn: meta.clientIsn,
    serverIsn: meta.serverIsn,
    // Buffer.from: small copies come from Node's shared pool (no ArrayBuffer per connection).
    clientSynOptions: Buffer.from(meta.clientSynOptions),
    serverSynOptions: Buffer.from(meta.serverSynOptions),
    created: Date.now(),
  };
}
