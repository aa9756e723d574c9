/**
 * The gateway's packet pipeline (normal operation).
 *
 *   TUN read batch ─▶ parsePacket ─┬─ IPv4 TCP to/from a protected service ─▶ the wrappers ───┐
 *                                   │     (FORWARD, or a drop reason: counted in wrapperDrops) │
 *                                   ├─ anything else IPv4, IPv6, fragments ─▶ untouched ─────┤
 *                                   └─ malformed ─▶ counted drop reason (drops)             │
 *   TUN write batch ◀── packets kept in place in the read buffer (rewritten in place) ◀─────┘
 *   TUN write ◀── packets the gateway makes itself (released ACKs, keepalives, the replay)
 *
 * The two wrappers are peers (src/wrappers/contract.ts's Wrapper): neither holds the other. The
 * gateway composes them in one fixed order, the first drop ends a segment's way:
 *
 *   client ─▶ south.fromClient ───────────▶ north.fromClient ─────────────────────────▶ server
 *             (validate against the flow,     (only a masked, rebuilding or translated
 *              log the bytes, move the flow)   connection: dropped, or translated to the
 *                                              new incarnation's numbering)
 *   South first: every byte a client sends is logged, masked or not; the north side then
 *   decides whether the (dead or rebuilt) server sees it, and in which numbering.
 *
 *   server ─▶ north.fromServer ──▶ south.fromServer ──┬──────────────────────────────▶ client
 *             (masked: the dead     (validate against   │ a FIN or RST it accepted:
 *              incarnation dropped;  the flow in the     ▼
 *              rebuilt: translated   client's numbers;  verdict stage (CrashMasking, north side):
 *              to the client's       hold ACKs beyond   held until the liveness verdict, then
 *              numbering)            `stable`)          released through south again, or
 *                                                       suppressed and the service masked
 *   North first: south's rules (acceptability, the stable-ACK rule) are stated in the
 *   client's numbering, which only the north side can give a rebuilt incarnation's segments.
 *
 *   The other events between the parts go through the gateway, never wrapper to wrapper:
 *   log stability ─▶ south.stableAdvanced ─▶ north.onStable ─▶ south.releaseStable
 *     (the north side acks a masked client itself; south releases held ACKs unless masked)
 *   south released a flow ─▶ masking.forget, north.forget  (SouthEvents.released)
 *   south completed a handshake ─▶ north.handshakeCompleted (its incarnation may have died)
 *   south asks whether the service is down (a RST to a SYN) ─▶ north.isDown, whether a
 *     connection is being rebuilt (its output regenerated from 0) ─▶ north.rebuilding
 *   south accepted a server segment ─▶ north.serverAccepted (what the incarnation acked)
 *   south has a segment of an adopted connection whose server is not settled (Flow.gate; a
 *     server RST once acceptable) ─▶ adoptGate.segment (dropped while it waits; rebuilt on a RST)
 *
 * Fenced (fence.ts: another gateway claimed the log server's epoch): every protected packet, and
 * every packet the gateway makes, is dropped (FENCED) until a restart or a claim of its own.
 * Standing by (standby.ts: `--standby` before its takeover, or released): the same, STANDBY.
 *
 * Every packet dropped has a named reason, counted once: a malformed one or a bad checksum by
 * its wire verdict (src/wire/packet.ts), a protected segment by the reason its wrapper returned
 * (src/wrappers/contract.ts). /status `drops` and /metrics `ftcp_drops_total{reason}` show both.
 *
 * One JS call per batch; per packet the work is a parse into a reused struct, one or two
 * Map lookups by number, and in-place header rewrites.
 */
import { u32ToIp } from '../wire/addr.js';
import type { PacketBatch, TunDevice } from '../tun/device.js';
import type { LogStatus, LogStore, StatusListener } from '../log/types.js';
import { FlowTable, serviceName, type Service, type ServiceSpec } from '../flow/table.js';
import { SouthWrapper, defaultSouthOptions, type SouthEvents, type SouthOptions } from '../wrappers/south.js';
import { FORWARD, DropReason, WrapperDrops, type WrapperVerdict } from '../wrappers/contract.js';
import { PacketInfo, parsePacket, checksumVerdict, Verdict, DropCounters, isDrop } from '../wire/packet.js';
import type { Logger } from '../util/logger.js';
import { NorthWrapper } from '../recovery/engine.js';
import { defaultNorthOptions, type NorthOptions } from '../recovery/options.js';
import { CrashMasking, type CrashPolicy, type LivenessSource } from '../recovery/verdict.js';
import { parseIcmpError } from '../wire/repr.js';
import { IPPROTO_TCP } from '../wire/ipv4.js';
import { VnetPath } from './offload.js';
import { assertHeadroom } from '../wire/headroom.js';
import { metricsText } from './metrics.js';
import { authDrops, dropReasons, gatewayLimits, statusSnapshot } from './snapshot.js';
import { GatewayStats, type ChecksumPolicy, type ControlView, type GatewayRole, type GatewayView, type LogFailurePolicy, type StandbyView } from './view.js';
import { AdoptionStats, adoptFromLog, adoptRecords, type AdoptDeps, type Listed } from './adopt.js';
import { AdoptGate, runningIncarnation } from './adopt-gate.js';
import { claimLog, leaveAll, type FencedState } from './fence.js';
import { logFailed, overBound } from './log-policy.js';

// Declared in view.ts with what status shows of the gateway; its options' types, for its callers.
export type { ChecksumPolicy, GatewayRole, LogFailurePolicy };

export interface GatewayOptions {
  tun: TunDevice;
  services: readonly ServiceSpec[];
  log: LogStore;
  logger: Logger;
  south?: Partial<SouthOptions>;
  now?: () => number;
  /** Sweep period for closed and idle connections (ms). */
  sweepMs?: number;
  /** The supervisors' liveness oracle (null: none). */
  oracle?: LivenessSource | null;
  /** Without an oracle's verdict: 'rst' treats a server RST as a crash. */
  crashPolicy?: CrashPolicy;
  /** Bound on holding a server FIN/RST for the verdict (ms). */
  holdMs?: number;
  /** An alive notice counts for a held FIN/RST only if accepted this long after the hold began. */
  minGapMs?: number;
  north?: Partial<NorthOptions>;
  /** What to do when the log FAILS (log server unreachable): see log-policy.ts logFailed. Default 'stall'. */
  onLogFailure?: LogFailurePolicy;
  /** The path MTU toward both sides: packets the gateway emits above it go out as GSO (offload only). */
  mtu?: number;
  /** 'verify' (default): protected segments with a bad checksum are dropped (see routeOne); 'trust': not checked. */
  checksums?: ChecksumPolicy;
  /** How long adopted connections wait for the supervisor's word on the server's incarnation (ms; adopt-gate.ts). */
  adoptWaitMs?: number;
}

export class Gateway implements GatewayView {
  readonly stats = new GatewayStats();
  /** Malformed packets and bad checksums, by wire verdict. */
  readonly drops = new DropCounters();
  /** Protected segments a wrapper did not forward, by the reason it returned (the one place they are counted). */
  readonly wrapperDrops = new WrapperDrops();
  readonly table: FlowTable;
  readonly south: SouthWrapper;
  readonly north: NorthWrapper;
  readonly masking: CrashMasking;
  private recoveryTimer: NodeJS.Timeout | null = null;
  private readonly info = new PacketInfo();
  private outOffsets = new Uint32Array(256);
  private outLengths = new Uint32Array(256);
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly tun: TunDevice;
  private readonly log: LogStore;
  private readonly logger: Logger;
  private readonly sweepMs: number;
  readonly startedAt = Date.now();
  readonly onLogFailure: LogFailurePolicy;
  /** Times the log reported FAILED. */
  logFailures = 0;
  /** passthrough: log ids of the flows marked unprotected when the log failed (log-policy.ts logFailed). */
  readonly unprotected = new Set<number>();
  /**
   * Connections that went past a bound of the log (log-policy.ts overBound): unprotected because of
   * the per-connection bound or the total budget; `deferred`: reports about a connection
   * being rebuilt, which keeps its log until the rebuild is over.
   */
  readonly boundStats = { connection: 0, total: 0, deferred: 0 };
  /** The TUN carries virtio-net headers (offloads, the default): super-packets, partial checksums. */
  readonly vnet: VnetPath | null;
  /** Set by route(): the last packet belonged to a protected service. */
  lastProtected = false;
  readonly checksums: ChecksumPolicy;
  private readonly verify: boolean;
  /** The control endpoint, when one runs (its counters are in the snapshot and the metrics). */
  control: ControlView | null = null;
  /** The connections adopted from the log at start-up (adopt.ts). */
  readonly adoption = new AdoptionStats();
  /** Adopted connections waiting for the server's incarnation (adopt-gate.ts). */
  readonly adoptGate: AdoptGate;
  private readonly now: () => number;
  /** How the process found its TUN and steering (created, or reused after a restart); set by the CLI, shown in status. */
  startState: Record<string, unknown> | null = null;
  /** The log epoch this gateway claimed (null: none, or a log without epochs), and whether another's fenced it (fence.ts). */
  epoch: number | null = null;
  fenced: FencedState | null = null;
  /** A --standby gateway not active (standby.ts sets it): every protected packet is dropped (STANDBY), none is made. */
  standingBy = false;
  /** The standby's state machine, when the gateway runs with --standby (standby.ts sets it). */
  standby: StandbyView | null = null;

  get role(): GatewayRole {
    return this.fenced !== null ? 'fenced' : this.standingBy ? 'standby' : 'active';
  }

  constructor(opts: GatewayOptions) {
    this.tun = opts.tun;
    this.log = opts.log;
    this.logger = opts.logger;
    this.sweepMs = opts.sweepMs ?? 1000;
    this.now = opts.now ?? Date.now;
    this.onLogFailure = opts.onLogFailure ?? 'stall';
    this.checksums = opts.checksums ?? 'verify';
    this.verify = this.checksums === 'verify';
    this.table = new FlowTable(opts.services);
    this.vnet = (opts.tun.vnetHdrLen ?? 0) > 0 ? new VnetPath(this, opts.tun, opts.logger.child({ mod: 'offload' }), opts.mtu ?? 1500) : null;
    const policy = opts.crashPolicy ?? 'none';
    const oracle = opts.oracle ?? null;
    this.north = new NorthWrapper(
      this.table,
      opts.log,
      (buf, off, len) => this.emit(buf, off, len),
      { ...defaultNorthOptions, probeWithoutOracle: oracle === null && policy !== 'none', ...opts.north },
      opts.logger.child({ mod: 'north' }),
      opts.now ?? Date.now,
    );
    this.north.onFailed = (svc, flow) => {
      // The connection is over: its log connection (and, in the memory log, its bytes) too.
      this.table.remove(svc, flow);
      if (flow.logId >= 0) this.log.close(flow.logId);
    };
    const vnet = this.vnet;
    if (vnet !== null) this.north.superPacketMtu = () => (vnet.active ? vnet.mtu : 0);
    const info = oracle?.info?.bind(oracle);
    if (info !== undefined) this.north.serverIncarnation = (svc) => runningIncarnation(info(serviceName(svc)));
    this.adoptGate = new AdoptGate(this.table, this.north, info ?? null, opts.logger.child({ mod: 'adopt' }), opts.adoptWaitMs);
    this.masking = new CrashMasking(this.table, this.north, oracle, policy, opts.holdMs ?? 1000, opts.minGapMs ?? 25);
    this.south = new SouthWrapper(
      this.table,
      opts.log,
      (buf, off, len) => this.emit(buf, off, len),
      { ...defaultSouthOptions, ...opts.south },
      opts.logger,
      opts.now ?? Date.now,
      this.southEvents(),
    );
  }

  /** What the south wrapper reports, dispatched to the north side (the drawing at the top). */
  private southEvents(): SouthEvents {
    const release = (svc: Service, b: Buffer): void => {
      const v = this.south.releaseHeld(svc, b) ?? FORWARD;
      if (v === FORWARD) this.north.forwardedPacket(svc, b);
      this.wrapperDrops.count(v);
    };
    return {
      released: (flow) => {
        this.masking.forget(flow);
        this.north.forget(flow);
        this.adoptGate.forget(flow);
      },
      established: (svc, flow) => this.north.handshakeCompleted(svc, flow),
      logBound: (flow) => this.north.logBound(flow),
      serviceDown: (svc) => this.north.isDown(svc),
      rebuilding: (flow) => this.north.rebuilding(flow),
      serverAccepted: (flow, p) => this.north.serverAccepted(flow, p),
      finOrRst: (svc, flow, buf, p) => this.masking.enabled && this.masking.hold(svc, flow, buf, p, release),
      gated: (flow, p, fromClient) => this.adoptGate.segment(flow, p.flags, fromClient, this.now()),
    };
  }

  /** The log's stability upcall: south's stable point, then the north side, then what south held. */
  onStable(id: number, stable: number): void {
    const flow = this.south.stableAdvanced(id, stable);
    if (flow === null) return;
    if (!this.north.onStable(flow)) return;
    this.south.releaseStable(flow);
  }

  /**
   * Adopts every open connection of a protected service the log holds (adopt.ts): called once,
   * before start(), so no packet is forwarded before the connections are known again.
   */
  async adopt(): Promise<AdoptionStats> {
    // The log first becomes this gateway's alone (fence.ts): a restart in place takes over from
    // its dead self, and no other gateway acknowledges data of what is adopted here.
    await this.claim();
    await adoptFromLog(this.adoptDeps(), this.adoption);
    this.traceAdopted();
    // The server may have restarted while no gateway ran: nothing passes until that is known.
    this.adoptGate.adopted();
    return this.adoption;
  }

  /**
   * Adopts listed records on a running gateway (a standby's takeover, standby.ts): synchronous,
   * so no packet is routed between the first connection adopted and the last.
   */
  adoptListed(listed: Listed): void {
    adoptRecords(this.adoptDeps(), this.adoption, listed.records, listed.remote);
    this.traceAdopted();
    // The server may have restarted while no gateway carried its connections (the primary's
    // death): nothing passes until the supervisor says which process runs, bounded from now.
    this.adoptGate.adopted();
    this.adoptGate.start(this.now());
  }

  private adoptDeps(): AdoptDeps {
    const { south, north, table, log, logger, now } = this;
    return { table, south, north, log, logger, now, maxFlows: south.limits().maxFlows };
  }

  /**
   * Each adopted connection starts from the log's stable point, which may be past the last one
   * the dead gateway reported (a commit that finished as it died): the stability trace (the
   * ack check's input) must know it before the first ack up to it leaves.
   */
  private traceAdopted(): void {
    const trace = this.south.onStableAdvance;
    if (trace !== null) for (const [, f] of this.table.flows()) if (f.adopted) trace(f);
  }

  /**
   * Claims the log (fence.ts claimLog): the epoch granted, or null for a log without epochs. A
   * fenced gateway whose claim succeeds is no longer fenced. Rejects when the claim fails.
   */
  async claim(): Promise<number | null> {
    const epoch = await claimLog(this.log);
    this.epoch = epoch;
    if (epoch !== null && this.fenced !== null) {
      this.logger.warn({ epoch, fencedBy: this.fenced.epoch }, 'log claimed again: no longer fenced');
      this.fenced = null;
    }
    return epoch;
  }

  /** Tells the log which services are protected (their connections alone are logged). */
  registerServices(): void {
    this.log.registerServices(this.table.allServices().map((s) => ({ addr: u32ToIp(s.ip), port: s.port })));
  }

  /** Another gateway claimed the log (fence.ts): nothing protected is forwarded or made from now on. */
  private fence(epoch: number): void {
    if (this.fenced !== null) return;
    this.fenced = { epoch, at: Date.now() };
    this.logger.error({ epoch, connections: this.table.size }, 'FENCED: another gateway claimed the log; protected traffic is dropped here until this gateway is restarted');
    leaveAll(this, this.log); // the epoch holder's now (a takeover here adopts them afresh)
  }

  start(): void {
    // A standby registers at its takeover, after its claim (standby.ts): a log server refuses
    // writes of a gateway that does not hold the epoch and would tell it it is fenced.
    if (!this.standingBy) this.registerServices();
    this.log.onStable((id, stable) => this.guard('stable', () => this.onStable(id, stable)));
    this.log.onBound?.((id, bound, held) => this.guard('bound', () => overBound(this, this.log, this.logger, id, bound, held)));
    this.log.onStatus((status, detail) => this.onLogStatus(status, detail));
    const fenced = this.log.fenced?.() ?? null; // fenced before the upcall was installed (while adopting)
    if (fenced !== null) this.fence(fenced.epoch);
    this.adoptGate.start(this.now());
    this.tun.start((b) => this.onBatch(b));
    this.sweepTimer = setInterval(() => this.guard('sweep', () => {
      this.south.sweep();
      this.north.sweepDigests();
    }), this.sweepMs);
    this.sweepTimer.unref();
    this.recoveryTimer = setInterval(() => this.guard('recovery tick', () => {
      if (this.adoptGate.active) this.adoptGate.check(this.now());
      if (this.north.recovering === 0 && this.north.verifyingCount === 0) return;
      for (const svc of this.table.allServices()) {
        if (this.north.isDown(svc) && this.masking.serviceListening(svc)) this.north.listening(svc);
      }
      this.north.tick();
    }), 10);
    this.recoveryTimer.unref();
  }

  /** The log's status upcall (installed by start): fenced, a connection expired, FAILED or back. */
  onLogStatus(status: LogStatus, detail?: Parameters<StatusListener>[1]): void {
    this.guard('status', () => {
      if (detail?.fenced !== undefined) return this.fence(detail.fenced); // not a log failure: never passthrough
      if (detail?.expired !== undefined) this.south.onLogExpired(detail.expired);
      else this.logger.warn({ status, detail }, 'log status');
      if (status === 'FAILED' && detail?.expired === undefined) logFailed(this, this.logger, status);
      if (status !== 'FAILED' && this.south.passthrough) {
        this.south.passthrough = false; // new connections are protected again
        this.logger.warn({ status }, 'log back: new connections are protected again');
      }
    });
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    if (this.recoveryTimer) clearInterval(this.recoveryTimer);
    this.recoveryTimer = null;
    this.tun.close();
  }

  /**
   * Packets the gateway makes, from both wrappers: at buf[off, off + len) with headroom before
   * them (wire/headroom.ts), where the offload path writes the virtio-net header in place. A
   * plain TUN leaves the headroom unused, but the contract is checked here too, so a caller
   * that breaks it fails in every test, not only with offloads.
   */
  private emit(buf: Buffer, off: number, len: number): void {
    if (this.fenced !== null || this.standingBy) {
      this.wrapperDrops.count(this.fenced !== null ? DropReason.FENCED : DropReason.STANDBY);
      return;
    }
    this.stats.emitted++;
    if (this.vnet !== null) {
      if (!this.vnet.emit(buf, off, len)) this.stats.writeShort++;
      return;
    }
    assertHeadroom(buf, off, len);
    if (!this.tun.write(buf, off, len)) this.stats.writeShort++;
  }

  onBatch(batch: PacketBatch): void {
    if (this.vnet !== null) {
      this.vnet.onBatch(batch); // TUN offloads: virtio-net framed slots (src/gateway/offload.ts)
      return;
    }
    const { buf, slotSize, lengths, count } = batch;
    if (this.outOffsets.length < count) {
      this.outOffsets = new Uint32Array(count);
      this.outLengths = new Uint32Array(count);
    }
    const outOffsets = this.outOffsets;
    const outLengths = this.outLengths;
    const stats = this.stats;
    let n = 0;
    stats.batches++;
    stats.packets += count;
    for (let i = 0; i < count; i++) {
      const off = i * slotSize;
      const len = lengths[i]!;
      if (this.route(buf, off, len)) {
        outOffsets[n] = off;
        outLengths[n] = len;
        n++;
      }
    }
    if (n > 0) {
      const w = this.tun.writeBatch(buf, outOffsets, outLengths, n);
      if (w < n) stats.writeShort += n - w;
    }
  }

  /**
   * One packet (the IP packet at buf[off, off+len)) through the wrappers, rewritten in
   * place. Returns true to forward it. Sets `lastProtected` when it belonged to a
   * protected service (the wrappers may have rewritten it). `tcpTrusted`: the device
   * vouches for its TCP checksum (offload flags, see VnetPath.onBatch).
   */
  route(buf: Buffer, off: number, len: number, tcpTrusted = false): boolean {
    try {
      return this.routeOne(buf, off, len, tcpTrusted);
    } catch (err) {
      // Total: an internal error on one packet drops that packet, counted and logged (the
      // first few with the packet's bytes); the TUN keeps being read (DESIGN.md §7a).
      this.internalError('packet', err, buf.subarray(off, off + Math.min(len, 256)));
      this.lastProtected = false;
      return false;
    }
  }

  /** Counts an exception caught on a packet path or timer; logs the first 10 and then every 1000th. */
  internalError(where: string, err: unknown, pkt?: Buffer): void {
    const n = ++this.stats.internalErrors;
    if (n <= 10 || n % 1000 === 0) {
      this.logger.error({ where, count: n, err: (err as Error)?.stack ?? String(err), ...(pkt ? { packet: pkt.toString('hex') } : {}) }, 'internal error: the packet or event is dropped, the gateway goes on');
    }
  }

  /** Runs an upcall or timer body; an exception in it is counted and logged, never thrown. */
  private guard(where: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.internalError(where, err);
    }
  }

  /**
   * Checksums. A protected segment (either direction) is verified before it changes a flow
   * or reaches the log: a copy of a client segment with other bytes and a wrong checksum,
   * logged first, would make the genuine one a duplicate and be replayed into the next
   * incarnation after a crash, although the server's kernel dropped it; a bad-checksum FIN
   * would end the logged stream. A bad one is dropped and counted (BAD_IPV4_CHECKSUM,
   * BAD_TCP_CHECKSUM); its sender retransmits it as if the wire had lost it. The kernel
   * routing a packet into the TUN has checked the IPv4 header checksum already (ip_rcv),
   * so that check only guards against other feeders of the device. Unprotected traffic is
   * forwarded unverified: not ours to judge, its receiver will.
   */
  private routeOne(buf: Buffer, off: number, len: number, tcpTrusted: boolean): boolean {
    const info = this.info;
    const table = this.table;
    const stats = this.stats;
    const v = parsePacket(buf, off, len, info);
    let forward = true;
    this.lastProtected = false;
    if (v === Verdict.IPV4_TCP) {
      let svc = table.service(info.dst, info.dstPort);
      const fromClient = svc !== undefined;
      if (!fromClient) svc = table.service(info.src, info.srcPort);
      if (svc === undefined) {
        stats.unprotectedTcp++;
      } else if (this.fenced !== null || this.standingBy) {
        // Not active (fence.ts, standby.ts): dropped before the checksum, the flow table and the log; never forwarded.
        stats.protectedPackets++;
        this.lastProtected = true;
        this.wrapperDrops.count(this.fenced !== null ? DropReason.FENCED : DropReason.STANDBY);
        forward = false;
      } else {
        const c = this.verify ? checksumVerdict(buf, info, tcpTrusted) : Verdict.IPV4_TCP;
        if (c !== Verdict.IPV4_TCP) {
          this.drops.count(c);
          stats.dropped++;
          return false;
        }
        stats.protectedPackets++;
        this.lastProtected = true;
        // The wrappers in their fixed order (drawn at the top); the first drop ends it. (An
        // adopted connection whose server may have restarted meanwhile is the south wrapper's
        // to ask the adoption gate about: SouthEvents.gated.)
        let w: WrapperVerdict;
        if (fromClient) {
          w = this.south.fromClient(svc, buf, info);
          if (w === FORWARD) w = this.north.fromClient(svc, buf, info);
        } else {
          w = this.north.fromServer(svc, buf, info);
          if (w === FORWARD) w = this.south.fromServer(svc, buf, info);
          // What the client may have (DESIGN.md §7b), in its numbering; a held FIN's bytes count as sent.
          if (w === FORWARD || w === DropReason.FIN_HELD_UNSTABLE) this.north.forwarded(svc, buf, info);
        }
        if (w !== FORWARD) {
          this.wrapperDrops.count(w);
          forward = false;
        }
      }
    } else if (v === Verdict.IPV4_ICMP) {
      stats.icmp++;
      if (this.north.recovering > 0 && this.icmpAboutMasked(buf, info)) {
        stats.icmpSuppressed++;
        this.wrapperDrops.count(DropReason.ICMP_ABOUT_MASKED);
        forward = false;
      }
    } else if (v === Verdict.IPV6) {
      stats.ipv6++;
    } else if (v === Verdict.IPV4_FRAGMENT) {
      stats.fragments++;
    } else if (v === Verdict.IPV4_OTHER) {
      stats.otherIpv4++;
    } else if (isDrop(v)) {
      this.drops.count(v);
      stats.dropped++;
      forward = false;
    }
    return forward;
  }

  /**
   * An ICMP error toward a client about one of its protected connections whose server is
   * down or being rebuilt (e.g. host unreachable while the server host restarts): dropped.
   */
  private icmpAboutMasked(buf: Buffer, info: { l4Off: number; l4Len: number; dst: number }): boolean {
    const e = parseIcmpError(buf, info.l4Off, info.l4Len);
    if (e === null || e.quotedProto !== IPPROTO_TCP || e.quotedSrc !== info.dst) return false;
    const svc = this.table.service(e.quotedDst, e.quotedDstPort);
    if (svc === undefined) return false;
    const flow = this.table.get(svc, e.quotedSrc, e.quotedSrcPort);
    return (flow !== undefined && this.north.rebuilding(flow)) || this.north.isDown(svc);
  }

  /** The TUN device's name (status `tun`). */
  get tunName(): string {
    return this.tun.name;
  }

  // What `ftcp status`, GET /status and /metrics show (snapshot.ts, metrics.ts): they read this
  // gateway as a GatewayView (view.ts), and its log, which stays private to it.

  /** A page of the status (snapshot.ts statusSnapshot). */
  snapshot(page: { offset?: number; limit?: number } = {}): Record<string, unknown> {
    return statusSnapshot(this, this.log, page);
  }

  /** Every configured bound, by name (snapshot.ts gatewayLimits). */
  limits(): Record<string, number> {
    return gatewayLimits(this, this.log);
  }

  /** Packets dropped, by reason (snapshot.ts dropReasons). */
  dropReasons(): Record<string, number> {
    return dropReasons(this);
  }

  /** Control-channel datagrams dropped, by channel (snapshot.ts authDrops). */
  authDrops(): Record<string, Record<string, number>> {
    return authDrops(this, this.log);
  }

  /** Prometheus text exposition (metrics.ts). */
  metrics(): string {
    return metricsText(this, this.log);
  }
}
