/**
 * The lower layer of the log client (RemoteLog, client.ts): what it holds of each connection
 * and how the bytes leave for the log server. Steps 1 and 2 of client.ts's header live here:
 * appended bytes are kept until the server reports them stable (`pendingBytes`, bounded by
 * `maxPendingBytes`), the gap-free prefix leaves in APPEND messages as the link window allows
 * (then the FIN and the gc point), and STABLE reports drop what the server holds. Requests go
 * through the same pump, before the bytes (requests.ts keeps them until answered).
 *
 * It is a base class, as LogFront (../front.ts) is below it, because every layer of the client
 * works on the same connections and counters; registration.ts (step 3 and after) builds on it,
 * RemoteLog on that.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../util/logger.js';
import { logger as rootLogger } from '../../util/logger.js';
import { FtcpError } from '../../util/errors.js';
import type { LinkEndpoint } from '../../link/endpoint.js';
import { LogFront, type FrontConn } from '../front.js';
import { DEFAULT_MAX_HELD_BYTES } from '../reassembler.js';
import type { SlabStore } from '../memory.js';
import { allocAppend, APPEND_HEADER, encodeFin, encodeGc, encodeRequest, type Reply, type Request } from './protocol.js';
import { Requests } from './requests.js';
import type { StateSlot } from './state-request.js';
import { MAX_READ_CHUNK } from './server.js';

export interface RemoteLogOptions {
  /** Peer inactive this long (after the link declared it inactive) → FAILED. Default 2000 ms. */
  failAfterMs?: number;
  /** A request unanswered this long is sent again. Default 1000 ms. */
  requestTimeoutMs?: number;
  /** Unstable bytes without progress this long → the connection is re-registered. Default 1000 ms. */
  stallResyncMs?: number;
  /**
   * Re-registration rounds (every connection again, after a loss the link reported) start at
   * most this often; the events of the interval are answered by one round at its end. A
   * connection whose registration is still unanswered keeps its request (sent again), it
   * does not get a second one. Default 250 ms.
   */
  resyncIntervalMs?: number;
  /**
   * Bytes per APPEND message. Default: what fills one link frame (the link's framePayload
   * minus the APPEND header), so an APPEND is one datagram, one HMAC, no reassembly.
   */
  appendChunk?: number;
  /** Bytes per READ request, and how many are in flight. Default 64 KiB, 4. */
  readChunk?: number;
  readParallel?: number;
  /** Bound on the unstable bytes kept here (all connections); beyond it appends are dropped, counted. Default 256 MiB. */
  maxPendingBytes?: number;
  /** Per-connection cap on out-of-order bytes held here. Default 4 MiB. */
  maxHeldBytes?: number;
  /** The owner calls tick(now) (tests on SimNetwork); otherwise an internal timer does. */
  manualClock?: boolean;
  logger?: Logger;
}

/** Log-client counters (linkStats().client). */
export interface RemoteCounters {
  /** The server was found again after being inactive. */
  reconnects: number;
  /** A new server boot id (a restart of the log server). */
  serverRestarts: number;
  /** Re-registration rounds (every cause). */
  resyncs: number;
  /** Link events answered by a round already scheduled or run less than resyncIntervalMs before. */
  resyncsCoalesced: number;
  /** Link messages reported lost. */
  lostMessages: number;
  /** open requests sent for connections already open (re-registrations). */
  reRegistrations: number;
  requestRetries: number;
  stallProbes: number;
  /** In-stream bytes sent more than once. */
  bytesResent: number;
  appendMessages: number;
  bytesSent: number;
  /** The status became FAILED because the server stayed silent. */
  failures: number;
  /** Connections whose stable bytes the server lost (reported expired). */
  lostStable: number;
  /** STABLE reports beyond what was sent (clipped). */
  stableBeyondSent: number;
  malformed: number;
  staleReplies: number;
  /** Pages of `list` replies received (fetchActive). */
  listPages: number;
  registerErrors: number;
  /** state requests sent (each record once, more on a resend), answered with an error, and records from the server that did not decode. */
  stateRequests: number;
  stateErrors: number;
  badState: number;
  /** Step 9: claims granted, times fenced, and the epoch held now (0: none). */
  claims: number;
  fenced: number;
  epoch: number;
  /** Step 10: connections left to the log server (forget: a release, a fence), never closed there. */
  forgotten: number;
}

/** Step 9: this gateway's writes are refused since `at` (ms since 1970), by epoch `epoch`. */
export interface Fenced {
  readonly epoch: number;
  readonly at: number;
}

/** A connection as the client holds it (the front's fields, and the link's). */
export interface RConn extends FrontConn, StateSlot {
  readonly id: number;
  remoteId: number | null;
  registering: boolean;
  regReq: number | null;
  opened: boolean;
  openResolve: ((id: number) => void) | null;
  openReject: ((err: unknown) => void) | null;
  buf: SlabStore;
  /** Bytes below this are dropped here (they are stable at the server). */
  keptFrom: number;
  sentEnd: number;
  sentMax: number;
  finSent: boolean;
  gcSent: number;
  progressAt: number;
  retryAt: number;
}

export abstract class RemoteSender extends LogFront<RConn> {
  readonly counters: RemoteCounters = {
    reconnects: 0, serverRestarts: 0, resyncs: 0, resyncsCoalesced: 0, lostMessages: 0, reRegistrations: 0, requestRetries: 0,
    stallProbes: 0, bytesResent: 0, appendMessages: 0, bytesSent: 0, failures: 0, lostStable: 0,
    stableBeyondSent: 0, malformed: 0, staleReplies: 0, listPages: 0, registerErrors: 0, stateRequests: 0, stateErrors: 0, badState: 0,
    claims: 0, fenced: 0, epoch: 0, forgotten: 0,
  };

  protected ep: LinkEndpoint | null = null;
  /** Server id → connection (STABLE reports and expiries name server ids). */
  protected readonly byRemote = new Map<number, RConn>();
  /** Step 4: every request kept until answered. */
  protected readonly reqs: Requests;
  /** Connections with something to send (bytes, FIN, gc point). */
  private readonly dirty = new Set<RConn>();
  protected now: number;
  protected readonly manualClock: boolean;
  protected pendingBytes = 0;
  protected readonly o: Required<Omit<RemoteLogOptions, 'logger' | 'manualClock' | 'appendChunk'>>;
  protected appendChunk: number;
  protected readonly appendChunkSet: boolean;
  private pumpScheduled = false;
  protected readonly log: Logger;
  /** Step 9: fenced by a newer epoch (null: not fenced). */
  protected fencedBy: Fenced | null = null;

  constructor(opts: RemoteLogOptions) {
    super();
    this.o = {
      failAfterMs: opts.failAfterMs ?? 2000,
      requestTimeoutMs: opts.requestTimeoutMs ?? 1000,
      stallResyncMs: opts.stallResyncMs ?? 1000,
      resyncIntervalMs: opts.resyncIntervalMs ?? 250,
      readChunk: Math.min(opts.readChunk ?? 64 * 1024, MAX_READ_CHUNK),
      readParallel: opts.readParallel ?? 4,
      maxPendingBytes: opts.maxPendingBytes ?? 256 * 1024 * 1024,
      maxHeldBytes: opts.maxHeldBytes ?? DEFAULT_MAX_HELD_BYTES,
    };
    this.reqs = new Requests(this.o.requestTimeoutMs);
    this.appendChunkSet = opts.appendChunk !== undefined;
    this.appendChunk = opts.appendChunk ?? 16 * 1024 - APPEND_HEADER;
    this.log = opts.logger ?? rootLogger.child({ mod: 'logclient' });
    this.manualClock = opts.manualClock === true;
    this.now = opts.manualClock ? 0 : performance.now();
  }

  // ---- the front's hooks: bytes stay here until the server reports them stable --------

  /** A connection is usable once the server answered its first open. */
  protected override isOpen(c: RConn): boolean {
    return c.opened;
  }

  protected admit(_c: RConn, n: number): boolean {
    if (this.pendingBytes + n > this.o.maxPendingBytes) {
      this.logStats.appendsOverCapacity++;
      return false;
    }
    return true;
  }

  protected keep(c: RConn, data: Uint8Array): void {
    c.buf.append(data);
    this.pendingBytes += data.length;
  }

  protected appended(c: RConn, prefixEnd: number): void {
    if (c.asm.end > prefixEnd) this.markDirty(c);
  }

  /** The FIN (like the gc point below) goes to the server with the connection's next pump. */
  protected persistFin(c: RConn): void {
    this.markDirty(c);
  }

  protected collect(c: RConn): void {
    this.markDirty(c);
  }

  // ---- stability ------------------------------------------------------------------------

  /** Step 2: monotonic, never beyond what was sent; the bytes below it are dropped here. */
  protected stableAdvance(c: RConn, s: number): void {
    if (c.closed || s <= c.stable) return;
    const dataLimit = Math.max(c.sentMax, c.sentEnd);
    const limit = c.finOffset !== null && dataLimit >= c.finOffset ? c.finOffset + 1 : dataLimit;
    if (s > limit) {
      this.counters.stableBeyondSent++;
      s = limit;
      if (s <= c.stable) return;
    }
    c.stable = s;
    c.stableData = c.finOffset !== null && s > c.finOffset ? c.finOffset : s;
    if (c.stableData > c.keptFrom) {
      c.buf.discardBelow(c.stableData);
      this.pendingBytes -= c.stableData - c.keptFrom;
      c.keptFrom = c.stableData;
    }
    if (c.sentEnd < c.stableData) c.sentEnd = c.stableData;
    c.progressAt = this.now;
    this.stableListener?.(c.id, s);
  }

  /** The connection leaves this client: its unstable bytes are released from the bound. */
  protected drop(c: RConn): void {
    c.closed = true;
    if (c.remoteId !== null && this.byRemote.get(c.remoteId) === c) this.byRemote.delete(c.remoteId);
    this.dirty.delete(c);
    this.pendingBytes -= c.asm.end - c.keptFrom;
    c.keptFrom = c.asm.end;
  }

  protected closeRemote(rid: number): void {
    this.request({ op: 'close', id: rid }, true, () => {}, () => {});
  }

  /**
   * The pump runs once per turn of the event loop (setImmediate, not a microtask), so the
   * appends a gateway makes for one connection while handling a burst of packets leave
   * as one APPEND message (up to appendChunk) instead of one message per segment.
   */
  protected markDirty(c: RConn): void {
    this.dirty.add(c);
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  // ---- sending -------------------------------------------------------------------------

  private canSend(): boolean {
    return this.ep !== null && this.ep.peerState === 'active' && !this.isShutdown;
  }

  protected pump(): void {
    if (!this.canSend()) return;
    const ep = this.ep!;
    if (!this.reqs.sendPending(ep, this.now)) return;
    if (this.fencedBy !== null) return; // step 9: refused anyway; the bytes wait for a claim or the end
    for (const c of this.dirty) {
      if (c.closed || c.remoteId === null || c.registering) {
        this.dirty.delete(c);
        continue;
      }
      const rid = c.remoteId;
      while (c.sentEnd < c.asm.end) {
        const n = Math.min(this.appendChunk, c.asm.end - c.sentEnd);
        const msg = allocAppend(rid, c.sentEnd, n);
        c.buf.read(c.sentEnd, c.sentEnd + n).copy(msg, APPEND_HEADER);
        if (!ep.send(msg)) return;
        this.counters.appendMessages++;
        this.counters.bytesSent += n;
        const end = c.sentEnd + n;
        if (c.sentEnd < c.sentMax) this.counters.bytesResent += Math.min(end, c.sentMax) - c.sentEnd;
        c.sentEnd = end;
        if (end > c.sentMax) c.sentMax = end;
      }
      if (c.finOffset !== null && !c.finSent) {
        if (!ep.send(encodeFin(rid, c.finOffset))) return;
        c.finSent = true;
      }
      if (c.gcSent < c.gcThrough) {
        if (!ep.send(encodeGc(rid, c.gcThrough))) return;
        c.gcSent = c.gcThrough;
      }
      this.dirty.delete(c);
    }
  }

  protected request(body: Request, staleOnRestart: boolean, onReply: (r: Reply) => void, onFail: (err: unknown) => void): number {
    const reqId = this.reqs.add((id) => {
      const msg = encodeRequest(id, body);
      return {
        build: () => msg,
        settle: (m) => onReply(m.reply ?? { ok: false, code: 'FTCP_LOG_PROTOCOL', message: 'unexpected data reply' }),
        fail: onFail,
        staleOnRestart,
      };
    });
    queueMicrotask(() => this.pump());
    return reqId;
  }

  /**
   * Sends `body`, settled by `onReply` (which may throw to reject); unanswered after `timeoutMs`
   * the request is cancelled (never resent again) and the promise rejects FTCP_LOG_TIMEOUT.
   */
  protected requestWithin<T>(body: Request, timeoutMs: number, what: string, onReply: (r: Reply) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.reqs.cancel(reqId);
        reject(new FtcpError('FTCP_LOG_TIMEOUT', `${what}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      const reqId = this.request(body, false, (r) => {
        clearTimeout(timer);
        try {
          resolve(onReply(r));
        } catch (err) {
          reject(err);
        }
      }, (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }
}
