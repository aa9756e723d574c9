/**
 * RemoteLog: the gateway's side of a log server, a `LogStore` over the link protocol. Its
 * front (argument guards, FIN rules, registry, read checks, listeners) is the embedded
 * stores' (src/log/front.ts); what follows is how the bytes reach the server and when they
 * count as stable.
 *
 * Per connection, in offsets of the client→server stream:
 *
 *   0        keptFrom = stableData        sentEnd            asm.end        held (out of order)
 *   |-- at the server only --|--- sent, not yet stable ---|-- to send --|  gap  [xx]  [xxx]
 *                            (kept here until the server reports it stable)
 *
 * Steps, and what each one guarantees:
 *  1. append: bytes go through the front's gap-free prefix tracker (the Reassembler);
 *     only the gap-free prefix is sent, in APPEND messages of at most `appendChunk`
 *     bytes, as the link window allows. Every byte of it stays here until the server
 *     reports it stable (so it can always be sent again).
 *  2. STABLE from the server: the stable point advances (monotonic, never beyond what was
 *     sent), the bytes below it are dropped here, the listener is told.
 *  3. Anything the link reports (a message given up, a resynchronisation on either side,
 *     the server found again after silence, the server restarted) → re-registration of
 *     every connection: `open` again with the same metadata. The server answers with the
 *     connection it holds (same 4-tuple and ISNs: the same one; after a restart of a disk
 *     server: the recovered one; of a memory server: a fresh one) and its stable point;
 *     ids are mapped (local id → server id), and everything from the server's stable
 *     point on is sent again, FIN included. A server that holds less than it once
 *     reported stable (a memory server restarted) has lost acked bytes: the connection
 *     is reported as expired with a reason, never silently continued.
 *  4. Requests (open, read, close, register, expiry) are kept until answered and resent
 *     after a loss or `requestTimeoutMs`; all are idempotent at the server.
 *  5. A connection whose bytes stay unstable for `stallResyncMs` is re-registered alone
 *     (covers a lost STABLE and appends the server refused at its byte bound).
 *  6. The server inactive (link silence) for `failAfterMs` → status FAILED (onStatus);
 *     found again → re-registration, then the server's status.
 *  7. setState: the newest record of a connection goes in a `state` request (an older one
 *     still unanswered is dropped: the newer covers it), kept until the server answers that
 *     it is stable there. A re-registration whose reply shows the server holding an older
 *     record (a memory server restarted) sends the newest again.
 *  8. Versions: every `open` carries LOG_PROTOCOL_VERSION; a server of another version
 *     (its refusal, or a reply without the version) makes the log FAILED with
 *     FTCP_LOG_VERSION, and further opens are refused with it.
 *  9. Epochs (epochs.ts): `claim()` makes this gateway the log's one writer (the promise of
 *     the epoch granted). Fenced (a STATUS FENCED, or a request refused FTCP_LOG_FENCED):
 *     the log is FAILED, nothing more is sent but requests, opens are refused, the status
 *     listener is told once with `fenced: epoch`. A later claim that succeeds ends it (every
 *     connection is registered again: the server dropped what it refused meanwhile).
 * 10. forget(id): the gateway leaves a connection to the log (a release, a fence): it goes from
 *     here alone, nothing more about it is sent (its unanswered requests cancelled), the server
 *     keeps it open for the gateway that takes it over; forgetOpening() does the same for the
 *     opens still on their way. Counted: `forgotten`.
 *
 * Ids here are local (stable for the gateway's lifetime); `read` is chunked
 * (`readChunk` bytes per request, `readParallel` in flight).
 *
 * Where each part lives: this file holds RemoteLog (the public API, the link events, the
 * timers) and connectUdp. RemoteLog builds on registration.ts (steps 3, 7 and 8, the fence of
 * step 9), which builds on sending.ts (steps 1 and 2: the bytes held, the pump). Beside them:
 * requests.ts (step 4), state-request.ts (step 7's request), reads.ts (the chunked reads),
 * listing.ts (the paged list, for adoption); epochs.ts is the server's side of step 9.
 */
import { performance } from 'node:perf_hooks';
import { logger as rootLogger } from '../../util/logger.js';
import { FtcpError } from '../../util/errors.js';
import type { LinkEndpoint, LinkOptions, LostReason, PeerEvent } from '../../link/endpoint.js';
import { UdpLink, type UdpAddr } from '../../link/udp.js';
import { Reassembler } from '../reassembler.js';
import { SlabStore } from '../memory.js';
import type { ConnectionMeta, ConnectionRecord, LogLinkStats, LogStatus, OpenMeta } from '../types.js';
import {
  APPEND_HEADER,
  decode,
  isEpoch,
  LOG_PROTOCOL_VERSION,
  T_DATA,
  T_REPLY,
  T_STABLE,
  T_STATUS,
  type StatusMsg,
} from './protocol.js';
import { replyError } from './requests.js';
import { readStable } from './reads.js';
import { fetchActive, pageOf, type ListOptions, type ListPage } from './listing.js';
import type { Fenced, RConn, RemoteLogOptions } from './sending.js';
import { RemoteRegistrar } from './registration.js';

export type { ListOptions } from './listing.js';
export type { Fenced, RemoteCounters, RemoteLogOptions } from './sending.js';

export class RemoteLog extends RemoteRegistrar {
  /** The handlers the link endpoint must be built with. */
  readonly handlers: {
    onMessage: (msg: Buffer) => void;
    onLost: (ids: number[], reason: LostReason) => void;
    onPeerState: (s: PeerEvent) => void;
    onWritable: () => void;
  };

  private closeTransport: (() => Promise<void>) | null = null;
  private everActive = false;
  private inactiveSince: number | null;
  private linkFailed = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(opts: RemoteLogOptions = {}) {
    super(opts);
    this.inactiveSince = this.now;
    this.handlers = {
      onMessage: (m) => this.message(m),
      onLost: (ids, reason) => this.lost(ids, reason),
      onPeerState: (s) => this.peerState(s),
      onWritable: () => this.pump(),
    };
    if (!opts.manualClock) {
      this.timer = setInterval(() => this.tick(performance.now()), 20);
      this.timer.unref();
    }
  }

  get isClosed(): boolean {
    return this.isShutdown;
  }

  /** Connects the link endpoint (built with `handlers`); `close` releases its transport. */
  attach(ep: LinkEndpoint, close?: () => Promise<void>): void {
    this.ep = ep;
    if (!this.appendChunkSet) this.appendChunk = Math.max(1024, ep.framePayload - APPEND_HEADER);
    this.closeTransport = close ?? null;
    if (ep.peerState === 'active') this.peerState('active');
  }

  // ---- LogStore ----------------------------------------------------------------------

  /** Resolves once the server answered the connection's first open (step 3's register). */
  protected openConn(meta: ConnectionMeta): Promise<number> {
    const id = meta.id;
    return new Promise<number>((resolve, reject) => {
      const c: RConn = {
        id, meta, remoteId: null, registering: false, regReq: null, opened: false,
        openResolve: resolve, openReject: reject, asm: new Reassembler(0, this.o.maxHeldBytes), buf: new SlabStore(0),
        keptFrom: 0, sentEnd: 0, sentMax: 0, stable: 0, stableData: 0, finOffset: null, finSent: false,
        gcThrough: 0, gcSent: 0, modified: Date.now(), progressAt: this.now, retryAt: 0, closed: false,
        state: null, stateUpdate: 0, stateWaiters: null, stateSend: null, stateReq: null,
      };
      this.conns.set(id, c);
      this.register(c);
    });
  }

  status(): LogStatus {
    return this.linkFailed || this.versionError !== null || this.fencedBy !== null ? 'FAILED' : this.serverStatus;
  }

  protected override checkOpen(meta: OpenMeta): void {
    if (this.versionError !== null) throw this.versionError;
    if (this.fencedBy !== null) throw new FtcpError('FTCP_LOG_FENCED', `log open: this gateway is fenced by epoch ${this.fencedBy.epoch}`);
    super.checkOpen(meta);
  }

  /** Step 9: fenced by a newer epoch since when (null: not fenced). */
  fenced(): Fenced | null {
    return this.fencedBy;
  }

  /**
   * Step 10: this gateway leaves the connection `id` to the log (a release, a fence:
   * src/gateway/fence.ts). Here only: nothing is sent, the server keeps it open for the gateway
   * that takes it over, and this one's adoption may open it again (a new local id). Its requests
   * still unanswered are cancelled, so nothing about it reaches the server later: a registration
   * answered after this would close it there, a state record could overwrite a newer one. Its
   * unstable bytes are dropped (the client sends them again to whichever gateway is active).
   * An open still on its way resolves with its id, which names nothing here any more (its
   * caller finds the connection gone, and a close of it sends nothing). false: no such id.
   */
  forget(id: number): boolean {
    const c = this.conns.get(id);
    if (c === undefined) return false;
    this.conns.delete(id);
    if (c.regReq !== null) this.reqs.cancel(c.regReq);
    if (c.stateReq !== null) this.reqs.cancel(c.stateReq);
    c.regReq = c.stateReq = null;
    c.stateSend = null;
    this.failStates(c, new FtcpError('FTCP_LOG_UNKNOWN', `log: connection ${id} was left to the log server`));
    c.openResolve?.(id);
    c.openResolve = c.openReject = null;
    this.drop(c);
    this.counters.forgotten++;
    return true;
  }

  /**
   * Step 10 for the opens still on their way (their callers know no id yet): each is forgotten
   * as by forget(id). A gateway that leaves every connection (fence.ts leaveAll) calls it: the
   * answer of such an open would otherwise reach a flow that left, whose caller closes its
   * connection, at the log server too. Returns how many.
   */
  forgetOpening(): number {
    let n = 0;
    for (const c of [...this.conns.values()]) if (!c.opened && this.forget(c.id)) n++;
    return n;
  }

  /**
   * Step 9: makes this gateway the log's one writer; resolves with the epoch granted (the same
   * again when it holds it already). Resent until answered, for `timeoutMs` at most: then the
   * request is cancelled, never resent, and the promise rejects FTCP_LOG_TIMEOUT. A claim left
   * pending past its caller's patience could be granted later, to a gateway that gave up its
   * takeover, and fence the one that is active. (A claim the server had already begun to save
   * when it was cancelled can still be granted: the next claim by the active one wins again.)
   */
  claim(timeoutMs = 5000): Promise<number> {
    return this.requestWithin({ op: 'claim', protocol: LOG_PROTOCOL_VERSION }, timeoutMs, 'log claim', (r) => {
      if (!r.ok) {
        if (r.code === 'FTCP_LOG_VERSION') this.versionMismatch(r.message);
        throw replyError(r);
      }
      if (!isEpoch(r.epoch)) {
        this.counters.malformed++;
        throw new FtcpError('FTCP_LOG_PROTOCOL', 'log claim: the reply names no epoch');
      }
      this.counters.claims++;
      this.counters.epoch = r.epoch;
      this.log.warn({ epoch: r.epoch }, 'log claimed: this gateway is the one writer');
      if (this.fencedBy !== null) {
        this.fencedBy = null;
        this.reportStatus('log claimed again: no longer fenced');
        this.scheduleResync();
      }
      return r.epoch;
    });
  }

  linkStats(): LogLinkStats {
    const ep = this.ep;
    return {
      peer: ep === null ? 'inactive' : ep.peerState,
      path: ep === null ? 0 : ep.currentPath,
      link: ep === null ? {} : { ...ep.counters },
      client: { ...this.counters, pendingBytes: this.pendingBytes, connections: this.conns.size, requests: this.reqs.size },
    };
  }

  /** The server's own list of open connections (all gateways), in pages (listing.ts). */
  fetchActive(opts: ListOptions): Promise<ConnectionRecord[]> {
    const page = (after: number, max: number, timeoutMs: number): Promise<ListPage> =>
      this.requestWithin({ op: 'list', after, max }, timeoutMs, `log list: the page after ${after}`, pageOf);
    return fetchActive(page, this.counters, opts);
  }

  protected closeConn(c: RConn): void {
    if (c.stateReq !== null) this.reqs.cancel(c.stateReq);
    c.stateReq = null;
    this.drop(c);
    if (c.remoteId !== null) this.closeRemote(c.remoteId);
  }

  /** Chunked (reads.ts): `readChunk` bytes per request, `readParallel` in flight. */
  protected readStable(c: RConn, start: number, e: number): Promise<Buffer> {
    return readStable(this.reqs, c, start, e, { chunk: this.o.readChunk, parallel: this.o.readParallel }, () => this.pump());
  }

  protected async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const err = new FtcpError('FTCP_LOG_SHUTDOWN', 'log: the store is shut down');
    this.reqs.failAll(err);
    for (const c of this.conns.values()) c.openReject?.(err);
    this.conns.clear();
    this.byRemote.clear();
    await this.closeTransport?.();
  }

  // ---- timers --------------------------------------------------------------------------

  /** Failure detection, request retries, stall probes. Internal timer, or the owner (manualClock). */
  tick(now: number): void {
    this.now = now;
    if (this.isShutdown) return;
    const active = this.ep !== null && this.ep.peerState === 'active';
    if (active) {
      this.inactiveSince = null;
    } else {
      if (this.inactiveSince === null) this.inactiveSince = now;
      if (!this.linkFailed && now - this.inactiveSince >= this.o.failAfterMs) {
        this.linkFailed = true;
        this.counters.failures++;
        this.log.error({ silentMs: Math.round(now - this.inactiveSince) }, 'log server unreachable: log FAILED');
        this.reportStatus('log server unreachable');
      }
      return;
    }
    this.counters.requestRetries += this.reqs.retry(now);
    if (this.fencedBy !== null) {
      this.pump(); // requests only (a claim)
      return;
    }
    this.resyncIfOwed(now);
    for (const c of this.conns.values()) {
      if (c.registering) {
        if (c.regReq === null && now >= c.retryAt) this.register(c);
        continue;
      }
      const target = c.finOffset !== null && c.finSent ? c.finOffset + 1 : c.sentEnd;
      if (c.stable >= target) {
        c.progressAt = now;
      } else if (now - c.progressAt >= this.o.stallResyncMs) {
        this.counters.stallProbes++;
        c.progressAt = now;
        this.register(c);
      }
    }
    this.pump();
  }

  // ---- link events ---------------------------------------------------------------------

  private message(msg: Buffer): void {
    const m = decode(msg);
    if (m === null) {
      this.counters.malformed++;
      return;
    }
    switch (m.t) {
      case T_STABLE:
        for (const [rid, s] of m.entries) {
          const c = this.byRemote.get(rid);
          if (c !== undefined) this.stableAdvance(c, s);
        }
        return;
      case T_DATA:
      case T_REPLY: {
        if (!this.reqs.settle(m.reqId, m.t === T_DATA ? { data: m.data } : { reply: m.reply })) this.counters.staleReplies++;
        return;
      }
      case T_STATUS:
        this.statusMsg(m.status);
        return;
      default:
        this.counters.malformed++;
    }
  }

  private statusMsg(s: StatusMsg): void {
    if (s.status === 'FENCED') {
      if (isEpoch(s.epoch)) this.fence(s.epoch);
      else this.counters.malformed++;
      return;
    }
    if (s.expired !== undefined) {
      const c = this.byRemote.get(s.expired);
      if (c === undefined) return;
      this.conns.delete(c.id);
      this.drop(c);
      this.logStats.expired++;
      this.statusListener?.(this.status(), { expired: c.id });
      return;
    }
    this.serverStatus = s.status;
    this.reportStatus(s.reason);
  }

  private lost(ids: number[], reason: LostReason): void {
    this.counters.lostMessages += ids.length;
    this.log.info({ count: ids.length, reason }, 'log link lost messages: re-registering');
    this.scheduleResync();
  }

  private peerState(s: PeerEvent): void {
    if (s === 'active') {
      if (this.everActive) this.counters.reconnects++;
      this.everActive = true;
      if (this.linkFailed) {
        this.linkFailed = false;
        this.log.warn('log server reachable again');
        this.reportStatus('log server reachable again');
      }
      this.scheduleResync();
    } else if (s === 'resync') {
      this.scheduleResync();
    } else {
      this.log.warn('log server inactive');
    }
  }

}

// ---- UDP ---------------------------------------------------------------------------------

export interface UdpRemoteLogOptions extends RemoteLogOptions {
  key: Buffer;
  /** The log server's address on each network (one or two). */
  servers: UdpAddr[];
  /** Local address per network; default 0.0.0.0, any port (the route to each server picks the interface). */
  local?: UdpAddr[];
  link?: Omit<LinkOptions, 'key' | 'transmit' | 'now' | 'paths' | 'onMessage' | 'onLost' | 'onPeerState' | 'onWritable'>;
}

/**
 * A RemoteLog on UDP, usable at once: the sockets bind in the background (until then
 * the server counts as unreachable: requests wait, FAILED after failAfterMs).
 */
export function connectUdp(opts: UdpRemoteLogOptions): RemoteLog {
  const log = new RemoteLog(opts);
  const local = opts.local ?? opts.servers.map(() => ({ address: '0.0.0.0', port: 0 }));
  UdpLink.open({ ...opts.link, ...log.handlers, key: opts.key, local, remote: opts.servers, name: 'log-client' }).then(
    (link) => {
      if (log.isClosed) void link.close();
      else log.attach(link.endpoint, () => link.close());
    },
    (err: unknown) => {
      (opts.logger ?? rootLogger).error({ err }, 'log link: cannot open UDP sockets');
    },
  );
  return log;
}
