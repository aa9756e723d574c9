/**
 * The south wrapper's flow lifecycle, the base of its layers (south.ts → south-judge.ts →
 * south-stable.ts → this file): the wrapper's state given at construction, the end of a
 * handshake (the flow registered with the log, client bytes kept pending until it answers),
 * room for half-open flows and the --max-flows cap, the end of a connection (release, linger)
 * and the sweep of idle, half-open and closed flows.
 */
import { u32ToIp } from '../wire/addr.js';
import { Flow, isHalfOpen } from '../flow/flow.js';
import type { FlowTable, Service } from '../flow/table.js';
import type { LogStore } from '../log/types.js';
import { TCP_FIN, TCP_RST } from '../wire/tcp.js';
import type { PacketInfo } from '../wire/packet.js';
import type { Logger } from '../util/logger.js';
import { NO_SOUTH_EVENTS, SouthStats, type SouthEvents, type SouthOptions } from './south-config.js';

/** Unknown connections remembered (to count and log each once): 4096 numbers in a Map, ~200 KB. */
export const MAX_UNKNOWN_TRACKED = 4096;
/** Log lines about unknown connections per second, at most (a restart under load meets thousands). */
export const UNKNOWN_LOG_PER_S = 5;

export abstract class SouthFlows {
  readonly stats = new SouthStats();
  /** The log FAILED and the policy is passthrough: new connections are not protected. */
  passthrough = false;
  /** Clock of the last over-cap warning (rate-limited). */
  private capWarnedAt = -Infinity;
  /**
   * Connections of a protected service seen mid-stream with no flow (they predate this gateway
   * process, e.g. after a restart, or were over --max-flows), by client address*65536+port, in
   * the order first seen: each is counted (unknownFlows) and logged once. Bounded at
   * MAX_UNKNOWN_TRACKED (the oldest is forgotten; it would be counted again if it is still going).
   */
  private readonly unknown = new Map<number, true>();
  /** The rate limit of the per-connection log lines: the current one-second window, lines in it. */
  private unknownLogWindow = -Infinity;
  private unknownLogLines = 0;

  constructor(
    protected readonly table: FlowTable,
    protected readonly log: LogStore,
    /** Writes a packet the gateway made itself (a released ACK) toward the client. */
    protected readonly emit: (buf: Buffer, off: number, len: number) => void,
    protected readonly options: SouthOptions,
    protected readonly logger: Logger,
    protected readonly now: () => number = Date.now,
    /** The gateway, told of releases, completed handshakes and FIN/RSTs (see SouthEvents). */
    protected readonly events: SouthEvents = NO_SOUTH_EVENTS,
  ) {}

  // ---- start of a connection -------------------------------------------------------

  /**
   * The client acked the server's ISN+1: the connection exists at both ends, and only now is it
   * registered with the log (a SYN flood never gets here, so it costs the log nothing). Client
   * bytes that arrive before the log's answer are kept pending.
   */
  protected established(svc: Service, flow: Flow): void {
    this.table.leaveHalfOpen(flow);
    flow.to('ESTABLISHED', 'client ACK of the SYN-ACK', this.logger);
    this.stats.handshakesCompleted++;
    if (flow.unprotected) return;
    this.openLog(flow);
    // The incarnation that sent the SYN-ACK may have died before the client's ACK came: the
    // gateway has the north side mask it with the others of that crash.
    this.events.established(svc, flow);
  }

  private openLog(flow: Flow): void {
    this.attachLog(flow, this.log.open({
      client: { addr: u32ToIp(flow.clientIp), port: flow.clientPort },
      server: { addr: u32ToIp(flow.serverIp), port: flow.serverPort },
      clientIsn: flow.clientIsn,
      serverIsn: flow.serverIsn,
      clientSynOptions: flow.clientSynOptions,
      serverSynOptions: flow.serverSynOptions,
    }));
  }

  /**
   * Binds `flow` to the log connection `opened` resolves to (a handshake's open, or an
   * adopted connection re-attached to a log server: src/gateway/adopt.ts): client bytes kept
   * pending meanwhile go to the log then, and its FIN.
   */
  attachLog(flow: Flow, opened: Promise<number>): void {
    const svcFlow = flow;
    opened
      .then(
        (id) => {
          const svc = this.table.service(svcFlow.serverIp, svcFlow.serverPort);
          if (svc === undefined || this.table.get(svc, svcFlow.clientIp, svcFlow.clientPort) !== svcFlow) {
            // Released (or replaced) while the open was pending: nothing may use this log
            // connection, and bound, its lookup entry would outlive the flow (issue 11 item 5).
            this.stats.logOpenOrphans++;
            this.log.close(id);
            return;
          }
          this.table.bindLogId(svcFlow, id);
          this.events.logBound(svcFlow);
          const pending = svcFlow.pending;
          svcFlow.pending = null;
          svcFlow.pendingBytes = 0;
          if (pending) {
            for (const seg of pending) {
              this.log.append(id, seg.offset, seg.data);
              this.stats.bytesLogged += seg.data.length;
            }
          }
          if (svcFlow.clientFin >= 0) this.log.appendFin(id, svcFlow.clientFin);
        },
        (err: unknown) => {
          this.stats.logOpenFailures++;
          this.logger.error({ flow: svcFlow.describe(), err }, 'log open failed: connection stays unacked');
        },
      );
  }

  protected keepPending(flow: Flow, offset: number, data: Buffer): void {
    if (flow.pendingBytes + data.length > this.options.maxPendingBytes) {
      // Not logged, so never acked: the client will send these bytes again.
      this.stats.pendingDropped += data.length;
      return;
    }
    (flow.pending ??= []).push({ offset, data: Buffer.from(data) });
    flow.pendingBytes += data.length;
  }

  /**
   * Before a new flow: at --max-half-open half-open flows, or with the table at --max-flows and
   * some of it half-open, the oldest half-open flow goes (a SYN queue's policy: a legitimate
   * handshake ends within an RTT, a spoofed one never does), counted.
   */
  protected roomForHalfOpen(): void {
    const t = this.table;
    while (t.halfOpenCount > 0 && (t.halfOpenCount >= this.options.maxHalfOpen || t.size >= this.options.maxFlows)) {
      const old = t.oldestHalfOpen()!;
      const svc = t.service(old.serverIp, old.serverPort)!;
      this.stats.halfOpenEvicted++;
      old.to('CLOSED', 'half-open, evicted (--max-half-open)', this.logger);
      this.release(svc, old, 'half-open evicted');
    }
  }

  /** A half-open connection ended by a RST answering its handshake: released, counted. */
  protected halfOpenEnded(svc: Service, flow: Flow, why: string): void {
    this.stats.halfOpenReset++;
    flow.to('CLOSED', why, this.logger);
    this.release(svc, flow, why);
  }

  // ---- end of a connection ---------------------------------------------------------

  /**
   * An unprotected connection is only forwarded, so its end is judged loosely: it is CLOSED
   * (and released after the linger) at an RST from either side or once both sides sent a
   * FIN. Late packets after the release pass as an unknown flow's do, unchanged. (Without
   * this it stayed in the table until the idle timeout.)
   */
  protected unprotectedEnd(flow: Flow, p: PacketInfo, fromClient: boolean): void {
    if (flow.state === 'CLOSED' || isHalfOpen(flow.state)) return;
    const flags = p.flags;
    if (flags & TCP_RST) {
      flow.to('CLOSED', fromClient ? 'client RST (unprotected)' : 'server RST (unprotected)', this.logger);
      flow.closedAt = this.now();
      return;
    }
    if (!(flags & TCP_FIN)) return;
    if (fromClient && flow.clientFin < 0) flow.clientFin = flow.inOffset(p.seq) + p.payloadLen;
    if (!fromClient && flow.serverFin < 0) flow.serverFin = flow.outOffset(p.seq) + p.payloadLen;
    if (flow.clientFin >= 0 && flow.serverFin >= 0) {
      flow.to('CLOSED', 'both FINs (unprotected)', this.logger);
      flow.closedAt = this.now();
    } else if (flow.state === 'ESTABLISHED') {
      flow.to('CLOSING', fromClient ? 'client FIN' : 'server FIN', this.logger);
    }
  }

  protected checkClosed(flow: Flow): void {
    if (flow.state !== 'CLOSING') return;
    if (flow.finsAcked()) {
      flow.to('CLOSED', 'both FINs acked', this.logger);
      flow.closedAt = this.now();
    }
  }

  protected release(svc: Service, flow: Flow, why: string): void {
    this.table.remove(svc, flow);
    this.forget(flow);
    if (flow.logId >= 0) this.log.close(flow.logId);
    this.stats.flowsClosed++;
    this.logger.debug({ flow: flow.describe(), why }, 'flow released');
  }

  /** A flow that left the table ends everything still running for it (SouthEvents.released). */
  protected forget(flow: Flow): void {
    this.events.released(flow);
  }

  /** The flow table's limits, for status and metrics. */
  limits(): {
    maxFlows: number; maxHalfOpen: number; idleTimeoutMs: number; halfOpenTimeoutMs: number; lingerMs: number; finEchoMs: number; maxPendingBytes: number;
    maxUnknownTracked: number; unknownLogPerS: number;
  } {
    const o = this.options;
    return {
      maxFlows: o.maxFlows, maxHalfOpen: o.maxHalfOpen, idleTimeoutMs: o.idleTimeoutMs, halfOpenTimeoutMs: Math.min(o.idleTimeoutMs, o.halfOpenTimeoutMs),
      lingerMs: o.lingerMs, finEchoMs: o.finEchoMs, maxPendingBytes: o.maxPendingBytes,
      maxUnknownTracked: MAX_UNKNOWN_TRACKED, unknownLogPerS: UNKNOWN_LOG_PER_S,
    };
  }

  /**
   * A client segment (not a SYN) of a protected service with no flow: the connection passes
   * unprotected, as before the gateway knew of it, but never silently (issue 14): the first
   * segment of each such connection counts it in unknownFlows and writes one log line (at most
   * UNKNOWN_LOG_PER_S a second; the others counted in unknownFlowLogsSuppressed). Its FIN or
   * RST forgets it, so a new connection from the same port counts again.
   */
  protected unknownMidstream(p: PacketInfo): void {
    this.stats.unknownFlowPackets++;
    this.stats.unknownMidstream++;
    const key = p.src * 65536 + p.srcPort;
    if (p.flags & (TCP_FIN | TCP_RST)) {
      this.unknown.delete(key);
      return;
    }
    if (this.unknown.has(key)) return;
    if (this.unknown.size >= MAX_UNKNOWN_TRACKED) {
      const oldest = this.unknown.keys().next();
      if (!oldest.done) this.unknown.delete(oldest.value);
      this.stats.unknownFlowsForgotten++;
    }
    this.unknown.set(key, true);
    this.stats.unknownFlows++;
    const now = this.now();
    if (now - this.unknownLogWindow >= 1000) {
      this.unknownLogWindow = now;
      this.unknownLogLines = 0;
    }
    if (this.unknownLogLines >= UNKNOWN_LOG_PER_S) {
      this.stats.unknownFlowLogsSuppressed++;
      return;
    }
    this.unknownLogLines++;
    this.logger.warn(
      { client: `${u32ToIp(p.src)}:${p.srcPort}`, service: `${u32ToIp(p.dst)}:${p.dstPort}`, unknownFlows: this.stats.unknownFlows, suppressed: this.stats.unknownFlowLogsSuppressed },
      'a connection of a protected service that this gateway does not know passes UNPROTECTED (it predates this gateway process, or was over --max-flows)',
    );
  }

  /** A SYN when the table is full: the connection goes unprotected, counted, logged (at most every 10 s). */
  protected overCap(p: PacketInfo): void {
    this.stats.flowsOverCap++;
    const now = this.now();
    if (now - this.capWarnedAt < 10_000) return;
    this.capWarnedAt = now;
    this.logger.warn(
      { maxFlows: this.options.maxFlows, client: `${u32ToIp(p.src)}:${p.srcPort}`, overCap: this.stats.flowsOverCap },
      'flow table full (--max-flows): new connections pass UNPROTECTED (a server crash will break them)',
    );
  }

  /**
   * Releases half-open flows at the half-open timeout (from the head of the half-open list, as
   * far as flows are due: O(1) each), CLOSED flows after the linger time, and idle unprotected
   * flows after the idle timeout. Established and closing protected flows stay however idle.
   */
  sweep(): void {
    const now = this.now();
    const halfOpen = Math.min(this.options.idleTimeoutMs, this.options.halfOpenTimeoutMs);
    const t = this.table;
    for (let f = t.oldestHalfOpen(); f !== null && now - f.halfOpenAt >= halfOpen; f = t.oldestHalfOpen()) {
      this.stats.halfOpenExpired++;
      this.stats.flowsExpired++;
      f.to('CLOSED', 'half-open timeout', this.logger);
      this.release(t.service(f.serverIp, f.serverPort)!, f, 'half-open timeout');
    }
    for (const [svc, flow] of this.table.flows()) {
      if (flow.state === 'CLOSED') {
        if (now - flow.closedAt >= this.options.lingerMs) this.release(svc, flow, 'closed');
      } else if (!isHalfOpen(flow.state) && flow.unprotected && now - flow.lastActivity >= this.options.idleTimeoutMs) {
        this.stats.flowsExpired++;
        flow.to('CLOSED', 'idle timeout', this.logger);
        this.release(svc, flow, 'idle timeout');
      }
    }
  }
}
