/**
 * The log interface (seed 001, "generic interface to the log server"), transport-neutral:
 * the embedded implementations (memory, disk) and, later, the remote client over the
 * link protocol all implement `LogStore`.
 *
 * Offsets count in-stream (client→server) bytes from the client's ISN+1, as plain
 * non-negative numbers (not 32-bit sequence numbers: a stream may exceed 4 GiB).
 * Stability is per connection and monotonic: `stable` is the largest gap-free prefix
 * that survives the failure the store protects against (memory: the gateway process
 * being alive; disk: the LMDB commit holding the bytes returned from its fsync).
 * Like a TCP ack, `stable` counts the client's FIN as one offset: once the FIN is logged
 * and every byte before it is stable, `stable` = `finOffset + 1`.
 *
 * Beside the bytes a connection has one small state record (state.ts ConnectionState: the
 * recovery phase and each rebuilt incarnation's translation), written by `setState` and
 * stable in the same sense as the bytes.
 */
import type { ConnectionState } from './state.js';

export type { ConnectionState, IncarnationState, StatePhase } from './state.js';

/** Identifies a connection by its original 4-tuple (addresses as dotted quads). */
export interface Endpoint {
  readonly addr: string;
  readonly port: number;
}

export interface ConnectionMeta {
  /** Log-assigned id, unique among open connections of one store. */
  readonly id: number;
  readonly client: Endpoint;
  readonly server: Endpoint;
  /** Client ISN and server ISN, as unsigned 32-bit numbers. */
  readonly clientIsn: number;
  readonly serverIsn: number;
  /** Raw TCP option bytes of the client's SYN and of the server's SYN-ACK. */
  readonly clientSynOptions: Uint8Array;
  readonly serverSynOptions: Uint8Array;
  /** Milliseconds since the epoch. */
  readonly created: number;
}

export interface ConnectionRecord extends ConnectionMeta {
  /** Gap-free stable prefix length (bytes), plus one once the FIN is stable. */
  readonly stable: number;
  /** Offset of the client's FIN, when logged (the FIN occupies one offset after the data). */
  readonly finOffset: number | null;
  /** Everything below this offset has been garbage-collected and cannot be read. */
  readonly gcThrough: number;
  /** Milliseconds since the epoch of the last append. */
  readonly modified: number;
  /** The last stable state record (setState), null when none was ever written. */
  readonly state: ConnectionState | null;
}

export type LogStatus = 'OK' | 'LOW-SPACE' | 'FAILED';

/** Called when more of a connection's stream became stable (monotonic per id; includes the FIN's one offset). */
export type StabilityListener = (id: number, stable: number) => void;
/**
 * Called when the store's status changes, or a connection expired (`expired` set), or a log
 * server fenced this gateway (`fenced`: the newer epoch; remote/epochs.ts).
 */
export type StatusListener = (status: LogStatus, detail?: { expired?: number; reason?: string; fenced?: number }) => void;

/**
 * Called when an append was refused because it would take the connection past
 * `maxBytesPerConn` ('connection') or the store past `maxBytes` ('total'); `held` is what
 * the connection holds. Called synchronously from append(), as its last act: the listener
 * may close the connection.
 */
export type BoundListener = (id: number, bound: 'connection' | 'total', held: number) => void;

/** What a store holds now, against its bounds (Infinity: no bound). */
export interface LogUsage {
  /** Stream bytes held (accepted, not gc'd): what the bounds count. */
  bytes: number;
  /** Memory held for them (the memory log: its slabs, filled or not; at most one partly filled slab per connection). */
  memory: number;
  connections: number;
  maxBytes: number;
  maxBytesPerConn: number;
}

export type OpenMeta = Omit<ConnectionMeta, 'id' | 'created'>;

/** Drop reasons and volume counters (counted, never thrown, on the append path). */
export interface LogStats {
  /** append/appendFin calls accepted for a known connection. */
  appends: number;
  /** Bytes that extended a gap-free prefix. */
  bytesAccepted: number;
  /** Bytes already held (below the prefix or duplicating held out-of-order bytes). */
  bytesDuplicate: number;
  /** Out-of-order bytes dropped because the per-connection hold cap was reached. */
  bytesHeldDropped: number;
  /** Bytes at or beyond a logged FIN. */
  bytesBeyondFin: number;
  /** Appends dropped because the store's byte bound (`maxBytes`) was reached. */
  appendsOverCapacity: number;
  /** Appends dropped because the connection's byte bound (`maxBytesPerConn`) was reached. */
  appendsOverConnBound: number;
  /** Calls naming an id that is not open. */
  unknownId: number;
  /** Calls with a negative, fractional or unsafe offset. */
  badOffset: number;
  /** appendFin at an offset that contradicts the data or an earlier FIN. */
  finConflict: number;
  /** Store write errors (the store is then FAILED). */
  writeErrors: number;
  /** Connections closed by the idle expiry. */
  expired: number;
  /** State records refused as malformed (setState's caller, a log server's reply, a damaged disk record). */
  badState: number;
}

export interface LogStore {
  /** open: registers a connection's metadata; resolves once the metadata is stable. */
  open(meta: OpenMeta): Promise<number>;
  /**
   * append: bytes at an in-stream offset. Overlaps with what is already held are fine
   * (the log keeps the gap-free prefix); bytes beyond a gap are kept until the gap fills.
   * Never throws for bad offsets: bytes below `stable` are ignored. The data is copied
   * before append returns, so the caller may reuse its buffer.
   */
  append(id: number, offset: number, data: Uint8Array): void;
  /**
   * Logs the client's FIN at `offset` (the first offset after the data). The FIN occupies
   * one offset, as in TCP: once every byte before it AND the FIN itself are stable, the
   * stable offset reported (listener, ConnectionRecord.stable) is `offset + 1`.
   */
  appendFin(id: number, offset: number): void;
  /**
   * Writes the connection's state record; resolves once it is stable (as open() does for
   * the metadata: memory at once, disk once committed and fsynced, remote once the log
   * server's store made it so). A record whose `update` is not above the last one given is
   * not written again: it resolves once that newer one is stable. Rejects with FtcpError
   * 'FTCP_LOG_BAD_STATE' for a record that breaks state.ts's rules, 'FTCP_LOG_UNKNOWN' for an
   * id that is not open (or closed before the write was stable), 'FTCP_LOG_FAILED' /
   * 'FTCP_LOG_SHUTDOWN' when the store cannot make it stable.
   */
  setState(id: number, state: ConnectionState): Promise<void>;
  /** Installs the stability upcall (one listener; a second call replaces it). */
  onStable(listener: StabilityListener): void;
  onStatus(listener: StatusListener): void;
  /** list active: every open connection. */
  listActive(): ConnectionRecord[];
  /**
   * The open connection `id`'s record, or undefined (optional: the stores built on LogFront
   * have it). A log server asks it once per re-registration: listActive there would make the
   * re-registration of N connections cost N² (measured: 1,000 took 20 s).
   */
  recordOf?(id: number): ConnectionRecord | undefined;
  /**
   * The ids of the open connections, no record built (optional: the stores built on LogFront
   * have it). A log server's paged list starts from them: listActive would build every record
   * for each listing, which a standby asks for every second.
   */
  listIds?(): number[];
  /** query by endpoint: the connection whose client or server endpoint matches (client first). */
  queryEndpoint(client: Endpoint, server?: Endpoint): ConnectionRecord | undefined;
  /**
   * read [start, end) of the stable stream (data only: the FIN occupies no byte); end past
   * the stable point is clipped. Rejects with FtcpError 'FTCP_LOG_UNKNOWN' for an id that
   * is not open and 'FTCP_LOG_GC' when start is below the garbage-collected point.
   */
  read(id: number, start: number, end: number): Promise<Buffer>;
  /** garbage-collect: bytes below `through` (clipped to the stable point) may be discarded. */
  gc(id: number, through: number): void;
  /** close: forget the connection and its bytes. */
  close(id: number): void;
  /**
   * Leaves the connection to a shared log (optional: a log server's client): this gateway forgets
   * it, the log server keeps it open for the gateway that takes it over (src/gateway/fence.ts).
   */
  forget?(id: number): void;
  /** forget() for every connection whose open is still on its way (its caller knows no id yet). */
  forgetOpening?(): number;
  status(): LogStatus;
  /**
   * register the protected services (port 0: all ports; addr '' or '0.0.0.0': any address).
   * Once a non-empty list is registered, open() of a connection to another server rejects
   * with 'FTCP_LOG_UNREGISTERED'. An empty list logs everything (the default).
   */
  registerServices(services: Endpoint[]): void;
  /**
   * Connections idle (no append) longer than this are expired and reported via onStatus.
   * Off unless set. The gateway never sets it: an idle protected connection is still
   * protected, and its end is the gateway's flow table's to decide (an expiry reported for a
   * connection still open there makes it go on unprotected, counted: flowsLogExpired).
   */
  setIdleExpiry(ms: number): void;
  /** Flushes and releases resources. */
  shutdown(): Promise<void>;
  /** Installs the bound listener (optional: the embedded stores have it). Without one, appends over a bound are only refused and counted. */
  onBound?(listener: BoundListener): void;
  /** Bytes held against the bounds (optional: the embedded stores have it). */
  usage?(): LogUsage;
  /** Counters (optional: the embedded stores have them). */
  stats?(): LogStats;
  /** The log link's counters (optional: only a remote log has a link). */
  linkStats?(): LogLinkStats;
  /**
   * Makes this gateway the one writer of a shared log (optional: a log server's client;
   * remote/epochs.ts): resolves with the epoch granted, higher than any before.
   */
  claim?(timeoutMs?: number): Promise<number>;
  /** Since when and by which epoch another gateway's claim fenced this one (null: not fenced). */
  fenced?(): { readonly epoch: number; readonly at: number } | null;
}

/** What a remote log reports about its link to the log server (gateway snapshot `logLink`). */
export interface LogLinkStats {
  /** The log server as the link sees it. */
  peer: 'active' | 'inactive';
  /** Network (0 or 1) the link currently sends on. */
  path: number;
  /** Link-layer counters (src/link/endpoint.ts LinkCounters). */
  link: Record<string, number>;
  /** Log-client counters: reconnects, server restarts, resyncs, re-registrations, resends. */
  client: Record<string, number>;
}
