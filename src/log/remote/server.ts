/**
 * LogServer: serves one LogStore (memory or disk) to gateways over the link protocol,
 * one LinkEndpoint per gateway peer.
 *
 *   gateway A ── link (2 paths) ──▶ Peer A ─┐
 *   gateway B ── link (2 paths) ──▶ Peer B ─┼─▶ store (MemoryLog | DiskLog)
 *                                            │     onStable ─▶ STABLE to the connection's owner
 *                                            │     onStatus ─▶ STATUS to every peer (expiry: owner)
 *
 * Transport-neutral: `attachPeer(make)` takes a function building the peer's endpoint
 * (the UDP listener below demultiplexes datagrams by the sender's boot id; tests attach
 * SimNetwork endpoints). The owner ticks the endpoints; `tick(now)` reaps dead peers.
 *
 * Connections are the store's, not the peer's: an `open` carrying the metadata of a
 * connection the store already holds (same 4-tuple and ISNs) returns that connection and
 * its stable point instead of opening a second one. That is how a gateway re-registers
 * after a resynchronisation, a reconnection or a restart of this server (disk: the store
 * recovered the connections; memory: they are opened afresh, at stable 0).
 *
 * A connection's state record (`state` requests) is answered once the store made it stable
 * (memory: at once; disk: committed and fsynced), never before. An `open` of another protocol
 * version (protocol.ts LOG_PROTOCOL_VERSION) is refused with FTCP_LOG_VERSION.
 *
 * Fencing (epochs.ts): once a gateway claimed the log, every write of another gateway (append,
 * fin, gc; the requests open, close, state, register, expiry) is refused and counted, that
 * gateway is told once (STATUS FENCED), and no STABLE goes to it: only the holder of the
 * newest epoch can ever learn that a byte is stable, so only it can acknowledge client data.
 *
 * Back-pressure: replies wait in a bounded per-peer outbox while the link window is
 * full; STABLE notifications are coalesced per connection (latest value) and flushed
 * after the outbox. A lost STABLE is harmless: the gateway re-registers (learning the
 * stable point from the reply) after any loss the link reports.
 */
import type { Logger } from '../../util/logger.js';
import { logger as rootLogger } from '../../util/logger.js';
import { FtcpError } from '../../util/errors.js';
import type { LinkEndpoint, LostReason, PeerEvent } from '../../link/endpoint.js';
import type { ConnectionRecord, LogStore } from '../types.js';
import { stateFromHex } from '../state.js';
import { Epochs, MemoryEpochs, type EpochStore } from './epochs.js';
import {
  decode,
  encodeData,
  encodeReply,
  encodeReplyText,
  encodeStable,
  encodeStatus,
  isEpoch,
  LIST_PAGE_BYTES,
  LIST_PAGE_RECORDS,
  MAX_STABLE_ENTRIES,
  metaFromWire,
  metaKey,
  recordToWire,
  T_APPEND,
  T_FIN,
  T_GC,
  T_READ,
  T_REQUEST,
  LOG_PROTOCOL_VERSION,
  type Reply,
  type Request,
  type StatusMsg,
} from './protocol.js';

/** Largest READ reply; a client asks for at most this much per request. */
export const MAX_READ_CHUNK = 256 * 1024;

export interface PeerHandlers {
  onMessage: (msg: Buffer) => void;
  onLost: (ids: number[], reason: LostReason) => void;
  onPeerState: (state: PeerEvent) => void;
  onWritable: () => void;
}

export interface LogServerOptions {
  store: LogStore;
  logger?: Logger;
  /** Messages an outbox holds while the window is full (beyond: dropped, counted). Default 4096. */
  maxOutbox?: number;
  /** A peer inactive this long is forgotten (its connections stay in the store). Default 60 s. */
  reapAfterMs?: number;
  /**
   * Where the epoch of the fencing is kept (epochs.ts): a disk store's FileEpochs in its
   * directory, so that a restart never grants an old epoch again. Default: in memory.
   */
  epochs?: EpochStore;
  /** JSON bytes of records per `list` page (at least one record goes). Default and most: LIST_PAGE_BYTES. */
  listPageBytes?: number;
}

export interface LogServerCounters {
  peers: number;
  peersReaped: number;
  messages: number;
  malformed: number;
  appends: number;
  appendBytes: number;
  opens: number;
  reopens: number;
  reads: number;
  readBytes: number;
  stableSent: number;
  repliesDropped: number;
  lostReports: number;
  /** Datagrams from an unknown sender that failed authentication (UDP listener). */
  forged: number;
  /** State records written (state requests), refused as malformed, and opens refused for their protocol version. */
  states: number;
  badState: number;
  versionRefused: number;
  /** list pages served and the records in them; paged requests refused (a bad cursor), served with a page size clamped to LIST_PAGE_RECORDS; unpaged lists too large for one message. */
  listPages: number;
  listRecords: number;
  listRefused: number;
  listClamped: number;
  listTooLarge: number;
}

export class Peer {
  /** Replies waiting for room in the window, in order. */
  readonly outbox: Buffer[] = [];
  /** Latest stable point per connection not yet sent. */
  readonly pendingStable = new Map<number, number>();
  inactiveSince: number | null = null;
  /** The ids open when this peer's current `list` began, ascending (LogServer.list); null: none under way. */
  listIds: number[] | null = null;
  /** The epoch this peer was last told it is fenced by (0: never): told once per epoch. */
  toldFenced = 0;
  ep!: LinkEndpoint;
  constructor(readonly name: string) {}
}

export class LogServer {
  readonly store: LogStore;
  readonly counters: LogServerCounters = {
    peers: 0, peersReaped: 0, messages: 0, malformed: 0, appends: 0, appendBytes: 0, opens: 0, reopens: 0,
    reads: 0, readBytes: 0, stableSent: 0, repliesDropped: 0, lostReports: 0, forged: 0, states: 0, badState: 0,
    versionRefused: 0, listPages: 0, listRecords: 0, listRefused: 0, listClamped: 0, listTooLarge: 0,
  };
  /** The fencing: the newest epoch and the session holding it (epochs.ts). */
  readonly epochs: Epochs;
  private readonly peers = new Set<Peer>();
  /** Which peer opened (or last re-registered) each connection: it gets the STABLE notices. */
  private readonly owner = new Map<number, Peer>();
  /** metaKey → id of the open connections, and the opens still in progress. */
  private readonly byKey = new Map<string, number>();
  private readonly opening = new Map<string, Promise<number>>();
  private readonly log: Logger;
  private readonly maxOutbox: number;
  private readonly reapAfterMs: number;
  private readonly listPageBytes: number;
  private flushScheduled = false;
  private peerNames = 0;

  constructor(opts: LogServerOptions) {
    this.store = opts.store;
    this.log = opts.logger ?? rootLogger.child({ mod: 'logserver' });
    this.maxOutbox = opts.maxOutbox ?? 4096;
    this.reapAfterMs = opts.reapAfterMs ?? 60_000;
    this.listPageBytes = Math.min(opts.listPageBytes ?? LIST_PAGE_BYTES, LIST_PAGE_BYTES);
    this.epochs = new Epochs(opts.epochs ?? new MemoryEpochs());
    for (const r of this.store.listActive()) this.byKey.set(metaKey(r), r.id);
    this.store.onStable((id, stable) => this.stable(id, stable));
    this.store.onStatus((status, detail) => this.statusChanged({ status, ...detail }));
  }

  /** The server's bounds, by name (/metrics `ftcp_limit`). */
  limits(): Record<string, number> {
    return { maxOutbox: this.maxOutbox, reapAfterMs: this.reapAfterMs, listPageBytes: this.listPageBytes, listPageRecords: LIST_PAGE_RECORDS };
  }

  /** A new gateway peer; `make` builds its endpoint with these handlers. */
  attachPeer(make: (h: PeerHandlers) => LinkEndpoint): Peer {
    const peer = new Peer(`peer${++this.peerNames}`);
    peer.ep = make({
      onMessage: (m) => this.message(peer, m),
      onLost: (ids, reason) => this.lost(peer, ids, reason),
      onPeerState: (s) => this.peerState(peer, s),
      onWritable: () => this.flush(peer),
    });
    this.peers.add(peer);
    this.counters.peers++;
    return peer;
  }

  detachPeer(peer: Peer): void {
    this.peers.delete(peer);
    for (const [id, p] of this.owner) if (p === peer) this.owner.delete(id);
  }

  hasPeer(peer: Peer): boolean {
    return this.peers.has(peer);
  }

  get peerCount(): number {
    return this.peers.size;
  }

  /** Reaps peers inactive past reapAfterMs. Call with the endpoints' clock. */
  tick(now: number): void {
    for (const p of [...this.peers]) {
      if (p.ep.peerState === 'active') {
        p.inactiveSince = null;
      } else if (p.inactiveSince === null) {
        p.inactiveSince = now;
      } else if (now - p.inactiveSince >= this.reapAfterMs) {
        this.counters.peersReaped++;
        this.detachPeer(p);
      }
    }
  }

  // ---- from the gateways -----------------------------------------------------------

  private message(peer: Peer, msg: Buffer): void {
    this.counters.messages++;
    const m = decode(msg);
    if (m === null) {
      this.counters.malformed++;
      return;
    }
    if ((m.t === T_APPEND || m.t === T_FIN || m.t === T_GC) && !this.writer(peer)) return;
    switch (m.t) {
      case T_APPEND:
        this.counters.appends++;
        this.counters.appendBytes += m.data.length;
        this.store.append(m.id, m.offset, m.data);
        return;
      case T_FIN:
        this.store.appendFin(m.id, m.offset);
        return;
      case T_GC:
        this.store.gc(m.id, m.offset);
        return;
      case T_READ:
        this.read(peer, m.reqId, m.id, m.start, m.end);
        return;
      case T_REQUEST:
        this.request(peer, m.reqId, m.req);
        return;
      default:
        this.counters.malformed++; // a server → gateway message sent to the server
    }
  }

  private read(peer: Peer, reqId: number, id: number, start: number, end: number): void {
    this.counters.reads++;
    const e = Math.min(end, start + MAX_READ_CHUNK);
    this.store.read(id, start, e).then(
      (data) => {
        this.counters.readBytes += data.length;
        this.send(peer, encodeData(reqId, data));
      },
      (err: unknown) => this.send(peer, encodeReply(reqId, errorReply(err))),
    );
  }

  private request(peer: Peer, reqId: number, req: Request): void {
    const reply = (r: Reply) => this.send(peer, encodeReply(reqId, r));
    try {
      if ((req.op === 'open' || req.op === 'claim') && req.protocol !== LOG_PROTOCOL_VERSION) {
        this.counters.versionRefused++;
        if (req.op === 'claim') this.epochs.counters.badClaims++;
        const theirs = typeof req.protocol === 'number' ? req.protocol : 1;
        reply({ ok: false, code: 'FTCP_LOG_VERSION', message: `the gateway speaks log protocol ${theirs}, this log server ${LOG_PROTOCOL_VERSION}: run the same ftcp version on both` });
        return;
      }
      const fenced = (): Reply => ({
        ok: false, code: 'FTCP_LOG_FENCED', message: `log ${req.op}: this gateway is fenced, epoch ${this.epochs.epoch} belongs to another`, epoch: this.epochs.epoch,
      });
      if (WRITE_OPS.has(req.op) && !this.writer(peer)) {
        reply(fenced());
        return;
      }
      // An open or state answered after a claim fenced the asker (the store's write outlived it):
      // refused as well, since its answer (a stable point, a stable record) is a STABLE notice.
      const stillWriter = (): boolean => this.writer(peer);
      switch (req.op) {
        case 'claim':
          this.epochs.claim(peer.ep.peerBootId, (previous) => this.fencePrevious(previous.holder)).then(
            (epoch) => reply({ ok: true, epoch }),
            (err: unknown) => reply(errorReply(err)),
          );
          return;
        case 'open':
          this.open(peer, req.meta === undefined ? undefined : metaFromWire(req.meta), req.gcThrough).then(
            (id) => {
              const rec = this.recordOf(id);
              if (rec === undefined) {
                reply({ ok: false, code: 'FTCP_LOG_UNKNOWN', message: `connection ${id} vanished` });
                return;
              }
              if (!stillWriter()) return reply(fenced());
              reply({
                ok: true, id, stable: rec.stable, finOffset: rec.finOffset, gcThrough: rec.gcThrough,
                protocol: LOG_PROTOCOL_VERSION, stateUpdate: rec.state?.update ?? 0,
              });
            },
            (err: unknown) => reply(errorReply(err)),
          );
          return;
        case 'close':
          this.closeConn(Number(req.id));
          reply({ ok: true });
          return;
        case 'list':
          this.send(peer, this.list(peer, reqId, req));
          return;
        case 'query': {
          const r = this.store.queryEndpoint(req.client, req.server);
          reply({ ok: true, record: r === undefined ? null : recordToWire(r) });
          return;
        }
        case 'register':
          this.store.registerServices(Array.isArray(req.services) ? req.services : []);
          reply({ ok: true });
          return;
        case 'expiry':
          this.store.setIdleExpiry(Number(req.ms));
          reply({ ok: true });
          return;
        case 'state': {
          const st = stateFromHex(req.state);
          if (st === null) {
            this.counters.badState++;
            reply({ ok: false, code: 'FTCP_LOG_BAD_STATE', message: 'log state: not a well-formed state record' });
            return;
          }
          this.counters.states++;
          this.store.setState(Number(req.id), st).then(
            () => reply(stillWriter() ? { ok: true, update: st.update } : fenced()),
            (err: unknown) => reply(errorReply(err)),
          );
          return;
        }
        case 'stats': {
          const stats = this.store.stats?.();
          const epoch = this.epochs.epoch;
          reply(stats === undefined ? { ok: true, status: this.store.status(), epoch } : { ok: true, stats, status: this.store.status(), epoch });
          return;
        }
      }
    } catch (err) {
      this.counters.malformed++;
      reply(errorReply(err));
    }
  }

  /**
   * A `list` request's reply (protocol.ts "Paged list"): with a cursor, the page of records
   * whose ids follow it, ascending, bounded by LIST_PAGE_RECORDS and LIST_PAGE_BYTES; without
   * one, every record in one message, as before paging (refused when it does not fit).
   * The records of a reply stay within the page's bytes (a record alone larger than them still
   * goes: records are small, a state record at most STATE_MAX_BYTES), plus the reply's few fields.
   * Pages are cut from the ids open when the peer's listing began (`after` 0; kept on the
   * peer, so a page costs its own records, not the whole store's): each record as it is when
   * its page is cut, one closed meanwhile left out, one opened after the listing began not in it.
   * A page costs what it returns: the listing's ids come without a record built (the store's
   * listIds), and each record of the page is JSON-encoded once, measured and sent as it is.
   */
  private list(peer: Peer, reqId: number, req: { after?: unknown; max?: unknown }): Buffer {
    if (req.after === undefined) {
      const active = this.store.listActive();
      const msg = encodeReply(reqId, { ok: true, records: active.map(recordToWire) });
      if (msg.length <= peer.ep.maxMessage) return msg;
      this.counters.listTooLarge++;
      return encodeReply(reqId, { ok: false, code: 'FTCP_LOG_TOO_LARGE', message: `log list: ${active.length} connections do not fit one message: ask for pages ("after")` });
    }
    const after = req.after;
    if (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0) {
      this.counters.listRefused++;
      return encodeReply(reqId, { ok: false, code: 'FTCP_LOG_BAD_REQUEST', message: 'log list: "after" must be a connection id (an integer ≥ 0)' });
    }
    let max = LIST_PAGE_RECORDS;
    if (req.max !== undefined) {
      const m = req.max;
      if (typeof m === 'number' && Number.isSafeInteger(m) && m >= 1 && m <= LIST_PAGE_RECORDS) max = m;
      else this.counters.listClamped++; // served as a page of LIST_PAGE_RECORDS
    }
    if (after === 0 || peer.listIds === null) peer.listIds = this.openIds();
    const ids = peer.listIds;
    const records: string[] = []; // each record's JSON text
    let bytes = 0;
    let i = firstAbove(ids, after);
    for (; i < ids.length && records.length < max; i++) {
      const r = this.recordOf(ids[i]!);
      if (r === undefined) continue; // closed since the listing began
      const json = JSON.stringify(recordToWire(r));
      const n = Buffer.byteLength(json) + 1;
      if (records.length > 0 && bytes + n > this.listPageBytes) break;
      records.push(json);
      bytes += n;
    }
    this.counters.listPages++;
    this.counters.listRecords += records.length;
    const more = i < ids.length;
    if (!more) peer.listIds = null; // the listing is over: its ids are not kept
    // What encodeReply(reqId, { ok: true, records, next }) would send, without encoding the records again.
    return encodeReplyText(reqId, `{"ok":true,"records":[${records.join(',')}],"next":${more ? ids[i - 1]! : 'null'}}`);
  }

  /** The ids of the store's open connections, ascending (without building their records where the store can). */
  private openIds(): number[] {
    const ids = this.store.listIds !== undefined ? this.store.listIds() : this.store.listActive().map((r) => r.id);
    return ids.sort((a, b) => a - b);
  }

  /** Opens a connection, or returns the open one with the same 4-tuple and ISNs. */
  private async open(peer: Peer, meta: ReturnType<typeof metaFromWire> | undefined, gcThrough: number | undefined): Promise<number> {
    if (meta === undefined) throw new FtcpError('FTCP_LOG_BAD_META', 'log open: no metadata');
    const key = metaKey(meta);
    let id = this.byKey.get(key);
    if (id !== undefined && this.recordOf(id) !== undefined) {
      this.counters.reopens++;
    } else {
      let p = this.opening.get(key);
      if (p === undefined) {
        this.counters.opens++;
        p = this.store.open(meta);
        this.opening.set(key, p);
        p.then(
          (v) => {
            this.opening.delete(key);
            this.byKey.set(key, v);
          },
          () => this.opening.delete(key),
        );
      } else {
        this.counters.reopens++;
      }
      id = await p;
    }
    this.owner.set(id, peer);
    if (gcThrough !== undefined && gcThrough > 0) this.store.gc(id, gcThrough);
    return id;
  }

  /** The store's open connection `id` (by id where the store can; the whole list otherwise). */
  private recordOf(id: number): ConnectionRecord | undefined {
    return this.store.recordOf !== undefined ? this.store.recordOf(id) : this.store.listActive().find((r) => r.id === id);
  }

  private closeConn(id: number): void {
    this.store.close(id);
    this.forget(id);
  }

  private forget(id: number): void {
    this.owner.delete(id);
    for (const [k, v] of this.byKey) {
      if (v === id) {
        this.byKey.delete(k);
        break;
      }
    }
  }

  // ---- fencing (epochs.ts) ---------------------------------------------------------

  /** May `peer` write? If not: counted, and the peer told once per epoch. */
  private writer(peer: Peer): boolean {
    if (this.epochs.admits(peer.ep.peerBootId)) return true;
    this.epochs.counters.fencedWrites++;
    this.tellFenced(peer);
    return false;
  }

  private tellFenced(peer: Peer): void {
    const epoch = this.epochs.epoch;
    peer.pendingStable.clear();
    if (peer.toldFenced === epoch || !isEpoch(epoch)) return;
    peer.toldFenced = epoch;
    this.epochs.counters.fencedNotices++;
    this.send(peer, encodeStatus({ status: 'FENCED', epoch }));
  }

  /**
   * A new epoch was taken up: the previous holder, if connected, is told at once (it was the
   * writer). Other gateways (a standby that only reads) are told when they first write.
   */
  private fencePrevious(previous: number): void {
    const holder = this.epochs.holder;
    this.log.warn({ epoch: this.epochs.epoch, holder: holder.toString(16), previous: previous.toString(16) }, 'log claimed: a new epoch, every other gateway is fenced');
    for (const p of this.peers) if (previous !== 0 && p.ep.peerBootId === previous && previous !== holder) this.tellFenced(p);
  }

  private lost(peer: Peer, ids: number[], reason: LostReason): void {
    // Replies and STABLE notices may be gone; the gateway re-registers on every loss it
    // sees (its own onLost / resync), so nothing is resent from here. Counted.
    this.counters.lostReports += ids.length;
    this.log.debug({ peer: peer.name, count: ids.length, reason }, 'log replies given up by the link');
  }

  private peerState(peer: Peer, s: PeerEvent): void {
    if (s === 'active') {
      this.log.info({ peer: peer.name, boot: peer.ep.peerBootId.toString(16) }, 'gateway peer active');
      peer.outbox.length = 0;
      this.send(peer, encodeStatus({ status: this.store.status() }));
    } else if (s === 'inactive') {
      this.log.warn({ peer: peer.name }, 'gateway peer inactive');
      peer.outbox.length = 0;
    }
  }

  // ---- to the gateways -------------------------------------------------------------

  private stable(id: number, stable: number): void {
    const peer = this.owner.get(id);
    if (peer === undefined || !this.epochs.admits(peer.ep.peerBootId)) return; // never a STABLE to a fenced gateway
    peer.pendingStable.set(id, stable);
    if (!this.flushScheduled) {
      // Once per turn of the event loop: the APPENDs of one burst of datagrams are
      // answered by one STABLE message (one frame, which also carries the link ack).
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        for (const p of this.peers) this.flush(p);
      });
    }
  }

  private statusChanged(s: StatusMsg): void {
    if (s.expired !== undefined) {
      const peer = this.owner.get(s.expired);
      this.forget(s.expired);
      if (peer !== undefined) this.send(peer, encodeStatus(s));
      return;
    }
    this.log.warn({ status: s.status, reason: s.reason }, 'log store status');
    for (const p of this.peers) this.send(p, encodeStatus(s));
  }

  private send(peer: Peer, msg: Buffer): void {
    if (peer.outbox.length === 0 && peer.ep.send(msg)) return;
    if (peer.ep.peerState === 'inactive') return; // the peer re-registers when it comes back
    if (peer.outbox.length >= this.maxOutbox) {
      this.counters.repliesDropped++;
      return;
    }
    peer.outbox.push(msg);
  }

  private flush(peer: Peer): void {
    let i = 0;
    while (i < peer.outbox.length && peer.ep.send(peer.outbox[i]!)) i++;
    if (i > 0) peer.outbox.splice(0, i);
    if (peer.outbox.length > 0 || peer.pendingStable.size === 0) return;
    if (!this.epochs.admits(peer.ep.peerBootId)) {
      peer.pendingStable.clear(); // fenced since they were queued
      return;
    }
    const entries: [number, number][] = [];
    for (const e of peer.pendingStable) {
      entries.push(e);
      if (entries.length === MAX_STABLE_ENTRIES) {
        if (!peer.ep.send(encodeStable(entries))) return;
        this.counters.stableSent += entries.length;
        for (const [id] of entries) peer.pendingStable.delete(id);
        entries.length = 0;
      }
    }
    if (entries.length > 0 && peer.ep.send(encodeStable(entries))) {
      this.counters.stableSent += entries.length;
      for (const [id] of entries) peer.pendingStable.delete(id);
    }
  }
}

/** Index of the first id above `after` in ascending `ids`. */
function firstAbove(ids: readonly number[], after: number): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid]! <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The requests that change the log (refused to a fenced gateway); the others only read it. */
const WRITE_OPS: ReadonlySet<Request['op']> = new Set(['open', 'close', 'state', 'register', 'expiry']);

function errorReply(err: unknown): Reply {
  if (err instanceof FtcpError) return { ok: false, code: err.code, message: err.message };
  return { ok: false, code: 'FTCP_LOG_ERROR', message: err instanceof Error ? err.message : String(err) };
}

export { UdpLogServer, parseImpairment, type Impairment, type UdpLogServerOptions } from './udp-server.js';
