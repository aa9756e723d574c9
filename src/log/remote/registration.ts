/**
 * The middle layer of the log client (RemoteLog, client.ts): registration, steps 3, 7 and 8
 * of client.ts's header, with the refusals that end writing (step 9's fence). A connection is
 * registered by an `open` request with its metadata; the answer maps the local id to the
 * server's and says what the server holds (its stable point, its gc point, the update of the
 * state record it has): bytes and FIN are sent again from its stable point, the newest state
 * record when the server's is older. The same registration, of every connection at once,
 * answers whatever the link reports (a loss, a resynchronisation, the server found again or
 * restarted), at most once per `resyncIntervalMs`: each round costs a request per connection
 * and a resend of every unstable byte, so a round per event of a burst would be load that
 * makes more events. The server's settings (services, idle expiry) go again with every round.
 *
 * Built on sending.ts (the bytes and the pump); RemoteLog (client.ts) adds the public API, the
 * link events and the timers.
 */
import { performance } from 'node:perf_hooks';
import { FtcpError } from '../../util/errors.js';
import { SlabStore } from '../memory.js';
import type { ConnectionState, Endpoint, LogStatus } from '../types.js';
import { isEpoch, LOG_PROTOCOL_VERSION, metaToWire, type Reply } from './protocol.js';
import { replyError } from './requests.js';
import { requestState } from './state-request.js';
import { RemoteSender, type RConn } from './sending.js';

export abstract class RemoteRegistrar extends RemoteSender {
  protected serverStatus: LogStatus = 'OK';
  /** Step 8: the log server speaks another protocol version (the log is FAILED for good). */
  protected versionError: FtcpError | null = null;
  private serverBoot = 0;
  private services: Endpoint[] | null = null;
  private servicesReq: number | null = null;
  private expiryMs: number | null = null;
  private expiryReq: number | null = null;
  private resyncScheduled = false;
  /** A round is owed once resyncIntervalMs has passed since the last one (tick runs it). */
  private resyncOwed = false;
  private lastResyncAt = -Infinity;

  registerServices(services: Endpoint[]): void {
    this.services = services.map((s) => ({ addr: s.addr, port: s.port }));
    this.sendServices();
  }

  setIdleExpiry(ms: number): void {
    this.expiryMs = ms;
    this.sendExpiry();
  }

  /** Step 7: the newest record replaces any older one still unanswered. */
  protected persistState(c: RConn, state: ConnectionState, bytes: Buffer): void {
    c.stateSend = { state, hex: bytes.toString('hex') };
    this.sendState(c);
  }

  // ---- re-registration rounds -------------------------------------------------------

  /**
   * One re-registration round soon: at once (next microtask) if none ran in the last
   * resyncIntervalMs, else owed and run by tick when the interval is over. Rounds are
   * rate-limited because each one costs a request per connection and a resend of every
   * unstable byte: answering each of a burst of link events with its own round is load
   * that makes more link events.
   */
  protected scheduleResync(): void {
    if (this.isShutdown) return;
    const now = this.manualClock ? this.now : performance.now();
    // A restarted server is never made to wait: its ids mean other connections now.
    const restarted = this.ep !== null && this.ep.peerBootId !== 0 && this.serverBoot !== 0 && this.ep.peerBootId !== this.serverBoot;
    if (this.resyncScheduled || (!restarted && now - this.lastResyncAt < this.o.resyncIntervalMs)) {
      if (!this.resyncScheduled) this.resyncOwed = true;
      this.counters.resyncsCoalesced++;
      return;
    }
    this.resyncScheduled = true;
    this.resyncOwed = false;
    queueMicrotask(() => {
      this.resyncScheduled = false;
      this.lastResyncAt = this.manualClock ? this.now : performance.now();
      this.resyncAll();
    });
  }

  /** The round owed (scheduleResync) once its interval is over; tick calls it. */
  protected resyncIfOwed(now: number): void {
    if (this.resyncOwed && now - this.lastResyncAt >= this.o.resyncIntervalMs) this.scheduleResync();
  }

  /** Step 3: settings first, then every connection again; pending requests resent. */
  private resyncAll(): void {
    if (this.ep === null || this.isShutdown) return;
    this.counters.resyncs++;
    const boot = this.ep.peerBootId;
    if (boot !== 0 && boot !== this.serverBoot) {
      if (this.serverBoot !== 0) {
        this.counters.serverRestarts++;
        this.log.warn({ boot: boot.toString(16) }, 'log server restarted: re-registering every connection');
        this.byRemote.clear();
        for (const c of this.conns.values()) c.remoteId = null;
        this.reqs.failStale(() => new FtcpError('FTCP_LOG_RESTARTED', 'log server restarted'));
        this.serverStatus = 'OK';
      }
      this.serverBoot = boot;
    }
    this.reqs.resendAll();
    if (this.services !== null) this.sendServices();
    if (this.expiryMs !== null) this.sendExpiry();
    for (const c of this.conns.values()) {
      // A registration still unanswered is sent again as it is (sentAt cleared above):
      // whichever copy is answered settles it.
      if (c.registering && c.regReq !== null && this.reqs.has(c.regReq)) continue;
      this.register(c);
    }
    this.pump();
  }

  // ---- one connection ------------------------------------------------------------------

  protected register(c: RConn): void {
    if (c.regReq !== null) this.reqs.cancel(c.regReq);
    if (c.opened) this.counters.reRegistrations++;
    c.registering = true;
    const wire = metaToWire(c.meta);
    c.regReq = this.request(
      { op: 'open', meta: wire, gcThrough: c.gcThrough, protocol: LOG_PROTOCOL_VERSION },
      false,
      (r) => this.registered(c, r),
      () => {},
    );
    this.pump();
  }

  private registered(c: RConn, r: Reply): void {
    c.regReq = null;
    if (!r.ok && r.code === 'FTCP_LOG_FENCED') this.fence(isEpoch(r.epoch) ? r.epoch : Number.MAX_SAFE_INTEGER);
    if (!r.ok && r.code === 'FTCP_LOG_VERSION') this.versionMismatch(r.message);
    else if (r.ok && r.protocol !== LOG_PROTOCOL_VERSION) {
      this.versionMismatch(`the log server speaks log protocol ${typeof r.protocol === 'number' ? r.protocol : 1}, this gateway ${LOG_PROTOCOL_VERSION}: run the same ftcp version on both`);
      r = { ok: false, code: 'FTCP_LOG_VERSION', message: this.versionError!.message };
    }
    if (!r.ok || r.id === undefined) {
      if (!c.opened) {
        this.conns.delete(c.id);
        c.closed = true;
        c.openReject?.(replyError(r));
        c.openReject = c.openResolve = null;
        return;
      }
      this.counters.registerErrors++;
      c.retryAt = this.now + this.o.requestTimeoutMs;
      return;
    }
    const rid = r.id;
    if (c.closed) {
      this.closeRemote(rid);
      return;
    }
    if (c.remoteId !== null && c.remoteId !== rid) this.byRemote.delete(c.remoteId);
    const other = this.byRemote.get(rid);
    if (other !== undefined && other !== c) other.remoteId = null;
    c.remoteId = rid;
    this.byRemote.set(rid, c);
    c.registering = false;
    const rs = r.stable ?? 0;
    const rsData = c.finOffset !== null && rs > c.finOffset ? c.finOffset : rs;
    if (rsData < c.keptFrom) {
      // The server holds less than it once reported stable: those bytes are gone.
      this.counters.lostStable++;
      this.log.error({ id: c.id, serverStable: rs, stable: c.stable }, 'log server lost stable bytes: connection unprotected');
      this.conns.delete(c.id);
      this.drop(c);
      this.closeRemote(rid);
      this.statusListener?.(this.status(), { expired: c.id, reason: 'log server lost stable bytes' });
      return;
    }
    if (rsData > c.asm.end) {
      // The server holds more than this gateway ever sent (an earlier gateway did): adopt it.
      this.pendingBytes -= c.asm.end - c.keptFrom;
      c.asm.end = rsData;
      c.buf = new SlabStore(rsData);
      c.keptFrom = rsData;
      c.sentMax = Math.max(c.sentMax, rsData);
    }
    c.sentEnd = Math.max(rsData, c.keptFrom);
    c.finSent = false;
    c.gcSent = Math.min(c.gcSent, r.gcThrough ?? 0);
    c.progressAt = this.now;
    if (!c.opened) {
      c.opened = true;
      c.openResolve?.(c.id);
      c.openResolve = c.openReject = null;
    }
    this.stableAdvance(c, rs);
    this.markDirty(c);
    // Step 7: the server holds an older record than the newest (lost, or never answered).
    const held = typeof r.stateUpdate === 'number' ? r.stateUpdate : 0;
    if (c.stateSend !== null && c.stateReq === null && held < c.stateSend.state.update) this.sendState(c);
  }

  /** Step 7 (state-request.ts): one `state` request for the newest record, kept until answered. */
  protected sendState(c: RConn): void {
    requestState(this.reqs, c, {
      sent: () => this.counters.stateRequests++,
      stable: (state) => this.stateStable(c, state),
      refused: (fatal) => {
        this.counters.stateErrors++;
        if (fatal !== null) this.failStates(c, fatal);
      },
      failed: (err) => this.failStates(c, err),
    });
    queueMicrotask(() => this.pump());
  }

  /** Step 8: the log server speaks another version: the log is FAILED, opens are refused. */
  protected versionMismatch(message: string): void {
    if (this.versionError !== null) return;
    this.versionError = new FtcpError('FTCP_LOG_VERSION', message);
    this.log.error({ protocol: LOG_PROTOCOL_VERSION }, `log server version mismatch: ${message}`);
    this.reportStatus(message);
  }

  private sendServices(): void {
    if (this.servicesReq !== null) this.reqs.cancel(this.servicesReq);
    const services = this.services ?? [];
    this.servicesReq = this.request({ op: 'register', services }, false, () => (this.servicesReq = null), () => {});
  }

  private sendExpiry(): void {
    if (this.expiryReq !== null) this.reqs.cancel(this.expiryReq);
    this.expiryReq = this.request({ op: 'expiry', ms: this.expiryMs ?? 0 }, false, () => (this.expiryReq = null), () => {});
  }

  /** Step 9: told (or refused) by the server: fenced by `epoch`, once. */
  protected fence(epoch: number): void {
    if (this.fencedBy !== null || this.isShutdown) return;
    this.fencedBy = { epoch, at: Date.now() };
    this.counters.fenced++;
    this.counters.epoch = 0;
    this.log.error({ epoch }, 'FENCED: another gateway claimed the log (a newer epoch): this gateway writes nothing more to it');
    this.lastStatus = this.status();
    this.statusListener?.(this.lastStatus, { fenced: epoch, reason: `fenced by epoch ${epoch}` });
  }
}
