/**
 * The front of every log store: what a caller of `LogStore` meets before a store decides
 * where the bytes go. The embedded stores (`BaseLog` in common.ts: memory, disk) and the
 * remote client (`RemoteLog` in remote/client.ts) share it, so one call gets the same
 * answer, counter and error message from each (test/unit/log/suite.ts runs one suite
 * against all of them):
 *
 *  * argument guards, counted and never thrown on the append path: an id that is not open
 *    (or a store shut down) → unknownId; a bad offset → badOffset; bytes below the prefix
 *    → bytesDuplicate; bad metadata at open → FTCP_LOG_BAD_META;
 *  * the FIN rules (`acceptFin`): one FIN per connection, never below data already logged;
 *  * the gap-free prefix (`Reassembler`) in front of the store's bytes;
 *  * the registry of open connections: listActive, queryEndpoint, their records;
 *  * read checks: FTCP_LOG_UNKNOWN, FTCP_LOG_RANGE, FTCP_LOG_GC, the clip to the stable data;
 *  * gc and close bookkeeping, shutdown once, the stability and status listeners, stats();
 *  * the state record (setState): checked and encoded once, a newer update only written,
 *    the callers' promises kept until the store reports an update at least theirs stable.
 *
 * What a store provides (the hooks below) is where accepted bytes go and within which
 * bounds, how a FIN and a gc are made to last, how a stable range is read, and its
 * status. An embedded store holds the bytes itself; the remote client keeps them only until
 * the log server reports them stable.
 */
import { FtcpError } from '../util/errors.js';
import type { Reassembler } from './reassembler.js';
import { decodeState, encodeState } from './state.js';
import type {
  ConnectionMeta,
  ConnectionState,
  ConnectionRecord,
  Endpoint,
  LogStats,
  LogStatus,
  LogStore,
  OpenMeta,
  StabilityListener,
  StatusListener,
} from './types.js';

/** What the front reads and writes of a connection; a store adds its own fields. */
export interface FrontConn {
  readonly meta: ConnectionMeta;
  readonly asm: Reassembler;
  /** Reported stable point: stableData, or finOffset + 1 once the FIN is stable. */
  stable: number;
  /** Gap-free prefix held stably (data bytes): what read() may return. */
  stableData: number;
  finOffset: number | null;
  gcThrough: number;
  modified: number;
  closed: boolean;
  /** The last state record the store made stable (null: none yet). */
  state: ConnectionState | null;
  /** The highest `update` handed to the store (written, or being written). */
  stateUpdate: number;
  /** setState calls waiting for a stable update at least theirs (null: none). */
  stateWaiters: StateWaiter[] | null;
}

export interface StateWaiter {
  readonly update: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
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
    badState: 0,
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
function acceptFin(c: FrontConn, offset: number, counters: LogStats): boolean {
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

export abstract class LogFront<C extends FrontConn> implements LogStore {
  /** Every connection the store knows, by the id open() gave (see isOpen). */
  protected readonly conns = new Map<number, C>();
  protected readonly logStats: LogStats = newStats();
  /** The id the next open() gives (a store that recovers connections starts it past theirs). */
  protected nextId = 1;
  protected isShutdown = false;
  protected stableListener: StabilityListener | undefined;
  protected statusListener: StatusListener | undefined;
  /** The status last reported to the listener (reportStatus reports changes only). */
  protected lastStatus: LogStatus = 'OK';

  // ---- what a store provides ---------------------------------------------------------

  abstract status(): LogStatus;
  abstract registerServices(services: Endpoint[]): void;
  abstract setIdleExpiry(ms: number): void;

  /**
   * open: `meta` passed the checks and carries its new id. Resolves with the id once the
   * store holds the connection (its metadata stable), or rejects with an FtcpError.
   */
  protected abstract openConn(meta: ConnectionMeta): Promise<number>;
  /** Whether callers may use `c` yet (the remote client: once the server answered its open). */
  protected isOpen(_c: C): boolean {
    return true;
  }
  /**
   * `n` new bytes for `c`: false refuses them (the store counts why). A store may tell a
   * listener that closes the connection: nothing here touches `c` after a refusal.
   */
  protected abstract admit(c: C, n: number): boolean;
  /** Bytes extending the gap-free prefix at `offset` (a view: copy before returning). */
  protected abstract keep(c: C, data: Uint8Array, offset: number): void;
  /** An admitted append was handed to the prefix (`prefixEnd`: `c.asm.end` before it). */
  protected abstract appended(c: C, prefixEnd: number): void;
  /** The FIN offset was recorded in `c.finOffset`: make it stable. */
  protected abstract persistFin(c: C): void;
  /** gc: `c.gcThrough` was raised; what lies below it may go. */
  protected abstract collect(c: C): void;
  /** close: `c` is gone from the registry (`closed` set); release what it holds. */
  protected abstract closeConn(c: C): void;
  /**
   * A newer state record for `c` (`bytes`: its encoding, STATE_MAX_BYTES at most): make it
   * stable, then call `stateStable(c, state)`; on a failure, `failStates`.
   */
  protected abstract persistState(c: C, state: ConnectionState, bytes: Buffer): void;
  /** [start, end) with gcThrough <= start < end <= stableData. */
  protected abstract readStable(c: C, start: number, end: number): Promise<Buffer>;
  /** shutdown, once (`isShutdown` already set): stop timers, fail what waits, release. */
  protected abstract stop(): Promise<void>;

  // ---- shared helpers for stores -----------------------------------------------------

  /** Throws FtcpError unless a connection may be opened now with `meta`. */
  protected checkOpen(meta: OpenMeta): void {
    if (this.isShutdown) throw new FtcpError('FTCP_LOG_SHUTDOWN', 'log open: the store is shut down');
    checkOpenMeta(meta);
  }

  /** Tells the status listener when the status changed since the last report. */
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
      state: c.state,
    };
  }

  /** The store made `state` stable for `c`: the record is it (unless a newer one is), and the calls it covers resolve. */
  protected stateStable(c: C, state: ConnectionState): void {
    if (c.closed) return;
    if (c.state === null || state.update > c.state.update) c.state = state;
    const ws = c.stateWaiters;
    if (ws === null) return;
    const through = c.state.update;
    const rest = ws.filter((w) => w.update > through);
    c.stateWaiters = rest.length > 0 ? rest : null;
    for (const w of ws) if (w.update <= through) w.resolve();
  }

  /** Every setState call waiting on `c` fails with `err` (closed, store failed, shut down). */
  protected failStates(c: C, err: FtcpError): void {
    const ws = c.stateWaiters;
    c.stateWaiters = null;
    if (ws !== null) for (const w of ws) w.reject(err);
  }

  /** The connection `id` if it is open to callers. */
  private liveConn(id: number): C | undefined {
    const c = this.conns.get(id);
    return c !== undefined && this.isOpen(c) ? c : undefined;
  }

  // ---- LogStore ----------------------------------------------------------------------

  open(meta: OpenMeta): Promise<number> {
    try {
      this.checkOpen(meta);
    } catch (err) {
      return Promise.reject(err);
    }
    const id = this.nextId++;
    return this.openConn(copyMeta(id, meta));
  }

  append(id: number, offset: number, data: Uint8Array): void {
    const c = this.liveConn(id);
    const st = this.logStats;
    if (c === undefined || this.isShutdown) {
      st.unknownId++;
      return;
    }
    if (!isOffset(offset) || !isOffset(offset + data.length)) {
      st.badOffset++;
      return;
    }
    st.appends++;
    c.modified = Date.now();
    if (data.length === 0 || offset + data.length <= c.asm.end) {
      st.bytesDuplicate += data.length;
      return;
    }
    if (!this.admit(c, data.length)) return;
    const prefixEnd = c.asm.end;
    const res = c.asm.push(offset, data, (d, off) => {
      st.bytesAccepted += d.length;
      this.keep(c, d, off);
    });
    st.bytesDuplicate += res.duplicate;
    st.bytesHeldDropped += res.dropped;
    st.bytesBeyondFin += res.beyondLimit;
    this.appended(c, prefixEnd);
  }

  appendFin(id: number, offset: number): void {
    const c = this.liveConn(id);
    if (c === undefined || this.isShutdown) {
      this.logStats.unknownId++;
      return;
    }
    if (acceptFin(c, offset, this.logStats)) this.persistFin(c);
  }

  setState(id: number, state: ConnectionState): Promise<void> {
    const c = this.liveConn(id);
    if (c === undefined || this.isShutdown) {
      return Promise.reject(new FtcpError('FTCP_LOG_UNKNOWN', `log setState: no open connection ${id}`));
    }
    let bytes: Buffer;
    try {
      bytes = encodeState(state);
    } catch (err) {
      this.logStats.badState++;
      return Promise.reject(err);
    }
    if (state.update <= (c.state?.update ?? 0)) return Promise.resolve(); // a newer one is stable already
    const done = new Promise<void>((resolve, reject) => (c.stateWaiters ??= []).push({ update: state.update, resolve, reject }));
    if (state.update > c.stateUpdate) {
      c.stateUpdate = state.update;
      // The store keeps its own copy (decoded from the bytes: the caller may reuse its object).
      this.persistState(c, decodeState(bytes)!, bytes);
    }
    return done;
  }

  onStable(listener: StabilityListener): void {
    this.stableListener = listener;
  }

  onStatus(listener: StatusListener): void {
    this.statusListener = listener;
  }

  listActive(): ConnectionRecord[] {
    const out: ConnectionRecord[] = [];
    for (const c of this.conns.values()) if (this.isOpen(c)) out.push(this.record(c));
    return out;
  }

  listIds(): number[] {
    const out: number[] = [];
    for (const [id, c] of this.conns) if (this.isOpen(c)) out.push(id);
    return out;
  }

  recordOf(id: number): ConnectionRecord | undefined {
    const c = this.liveConn(id);
    return c === undefined ? undefined : this.record(c);
  }

  queryEndpoint(client: Endpoint, server?: Endpoint): ConnectionRecord | undefined {
    for (const c of this.conns.values()) {
      if (!this.isOpen(c)) continue;
      if (sameEndpoint(c.meta.client, client) && (server === undefined || sameEndpoint(c.meta.server, server))) {
        return this.record(c);
      }
    }
    if (server !== undefined) return undefined;
    for (const c of this.conns.values()) {
      if (this.isOpen(c) && sameEndpoint(c.meta.server, client)) return this.record(c);
    }
    return undefined;
  }

  read(id: number, start: number, end: number): Promise<Buffer> {
    const c = this.liveConn(id);
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
    // A store's read error is a rejection, never a throw.
    try {
      return this.readStable(c, start, e);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  gc(id: number, through: number): void {
    const c = this.conns.get(id);
    if (c === undefined) {
      this.logStats.unknownId++;
      return;
    }
    if (!(through >= 0)) {
      this.logStats.badOffset++;
      return;
    }
    const t = Math.min(through, c.stableData);
    if (t <= c.gcThrough) return;
    c.gcThrough = t;
    this.collect(c);
  }

  close(id: number): void {
    const c = this.conns.get(id);
    if (c === undefined) return;
    this.conns.delete(id);
    c.closed = true;
    this.failStates(c, new FtcpError('FTCP_LOG_UNKNOWN', `log setState: connection ${id} was closed`));
    this.closeConn(c);
  }

  stats(): LogStats {
    return { ...this.logStats };
  }

  async shutdown(): Promise<void> {
    if (this.isShutdown) return;
    this.isShutdown = true;
    const err = new FtcpError('FTCP_LOG_SHUTDOWN', 'log setState: the store is shut down');
    for (const c of this.conns.values()) this.failStates(c, err);
    await this.stop();
  }
}
