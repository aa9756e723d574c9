/**
 * The gateway fuzz (issue 11): mutated packets into a whole gateway (src/gateway/gateway.ts)
 * on the in-memory fake TUN with the memory log, while genuine connections of four services
 * go through every phase a protected connection has, and every invariant checked per packet.
 *
 *   FuzzClient ×N ─┐  genuine packets      ┌──────────────────────────┐     ┌─ FuzzServer (incarnation k)
 *                  ├──────────────────────▶│ CheckedTun ─▶ Gateway ──▶│────▶┤
 *   fuzzer ────────┘  mutated packets      │   (every write checked)  │     └─ ScriptedOracle (crash, listening,
 *   (copies of genuine ones, mutated)      └──────────────────────────┘         verdicts on held FINs/RSTs)
 *
 * One round (10 ms of the gateway's injected clock):
 *   1. microtasks settle (log stability, log opens, verdicts); the recovery tick runs;
 *   2. each service's cycle moves on (see Cycle): new connections, data, FINs, crashes,
 *      restarts, closes — genuine packets, each injected and routed to its endpoint;
 *   3. the fuzzer injects `mutatedPerRound` packets aimed at flows chosen uniformly over the
 *      phases present (established, held FIN, masked, handshake, replay, translated, closing,
 *      half-open, ...): copies of genuine packets of that flow, mutated (mutate.ts), half with
 *      both checksums fixed up; duplicates of older genuine packets (reordering); ICMP errors
 *      quoting the flow's packets. What the gateway writes meanwhile is checked, never routed
 *      to the endpoints (a real endpoint would reject it; the scripted ones would not);
 *   4. every flow is checked.
 *
 * Each service cycles OPEN → TRAFFIC → (DYING → MASKED → RESTART → LIVE →)* CLOSE → OPEN, the
 * four services out of step, so that every phase is present most of the time.
 *
 * Checks (a break is counted by name; the first of each name keeps the seed, round, packet
 * index and the packet's hex):
 *   - no exception escapes the gateway, and `stats.internalErrors` stays 0 (a caught error is
 *     a bug too: the gateway's log line with the packet's hex is kept);
 *   - stable-ACK rule: every packet written toward a genuine client, well formed and with
 *     valid checksums (a client drops anything else) and not a RST, acks no in-stream offset
 *     in (stable, what the client sent] — beyond what it sent the client ignores the ack;
 *   - per flow: received, stable, complete, delivered, cliAcked never decrease; complete ≤
 *     stable ≤ received ≤ high; cliAcked ≤ sndMax; delivered ≤ high + 1 (the server cannot
 *     ack what the client never sent); sndMax ≤ cliAcked + the client's largest window + 1
 *     (the client drops anything beyond);
 *   - bounded state: the flow table within maxFlows, held copies ≤ 8 per flow, pending bytes
 *     within their bound; after a drain (every client gone, clocks past every deadline) no
 *     flow and no log connection is left;
 *   - flat memory: heap + ArrayBuffers after a GC, drained, at the end vs after the warm-up.
 */
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { FakeTun } from '../tun/fake.js';
import { Gateway } from '../gateway/gateway.js';
import type { Flow } from '../flow/flow.js';
import type { Service } from '../flow/table.js';
import { MemoryLog } from '../log/memory.js';
import type { LivenessSource, LivenessVerdict } from '../recovery/verdict.js';
import { peekNorth, recOf, xlateOf } from '../recovery/rebuild.js';
import { PacketInfo, parsePacket, Verdict as PacketVerdict } from '../wire/packet.js';
import { ipv4HeaderChecksumOk, tcpChecksumOk } from '../wire/checksum.js';
import { ipToU32, u32ToIp } from '../wire/addr.js';
import { seqAdd, seqDiff, type Seq } from '../wire/seq.js';
import { TCP_ACK, TCP_RST, TCP_SYN } from '../wire/tcp.js';
import { mulberry32 } from '../util/rng.js';
import { collectGarbageNow } from '../util/gc.js';
import { FuzzClient, FuzzServer, closedPortReset } from './peers.js';
import { MUTATIONS, fixChecksums, icmpAbout, mutate, rint, type Rng } from './mutate.js';

// ---- phases of a flow, as the fuzz counts them ------------------------------------------

export const FLOW_PHASES = [
  'halfOpen', 'established', 'heldFin', 'masked', 'handshake', 'replay', 'translated',
  'closing', 'closingTranslated', 'closed', 'failed', 'unprotected',
] as const;
export type FlowPhase = (typeof FLOW_PHASES)[number];

/** The phases every run must have aimed mutations at (issue 11: "flows in every state"). */
export const REQUIRED_PHASES: readonly FlowPhase[] = ['halfOpen', 'established', 'heldFin', 'masked', 'handshake', 'replay', 'translated', 'closing'];

export function phaseOf(f: Flow): FlowPhase {
  if (f.unprotected) return 'unprotected';
  if ((peekNorth(f)?.verdictHold ?? null) !== null) return 'heldFin';
  const rec = recOf(f);
  if (rec !== null) {
    switch (rec.phase) {
      case 'MASKED': return 'masked';
      case 'HANDSHAKE': return 'handshake';
      case 'REPLAY':
      case 'ABSORB': return 'replay';
      default: return 'failed';
    }
  }
  // Anything before ESTABLISHED (SYN_SEEN, and any later split of the handshake) is half-open.
  if (f.state !== 'ESTABLISHED' && f.state !== 'CLOSING' && f.state !== 'CLOSED') return 'halfOpen';
  if (f.state === 'CLOSED') return 'closed';
  if (f.state === 'CLOSING') return xlateOf(f) !== null ? 'closingTranslated' : 'closing';
  return xlateOf(f) !== null ? 'translated' : 'established';
}

// ---- known causes of breaks --------------------------------------------------------------

/**
 * Breaks the fuzz can attribute to a known, open bug (each is counted under its cause, and
 * the unit test names the causes it still tolerates). A break no rule attributes is
 * `unexplained`: a new bug until shown otherwise.
 */
export const KNOWN_CAUSES = {
  forgedResetOrSyn: 'a forged RST exactly at rcv_nxt with a valid checksum ended the flow (RFC 5961 accepts it from an attacker on the path; the endpoint resets too), so what follows passes as an unknown flow\'s (before issue 11 items 3-4: also forged SYNs replacing flows and RSTs anywhere in the window)',
  outOfWindow: 'an out-of-window server ACK or segment moved delivered or sndMax (issue 11 item 4; fixed: fails the unit test)',
  forgedClientSegment: 'forged in-window client bytes with valid checksums, logged ahead of the genuine ones (the server takes them too): stable passing received, or a closing flow whose genuine FIN is not taken (open finding, RELIABILITY.md)',
  heldAckBelowComplete: 'south releaseHeldAck: a held ACK older than complete lowered complete (fixed: fails the unit test)',
  forgedHandshake: 'forged packets alone made an ESTABLISHED flow (a SYN-ACK taken without checking its ack; fixed with the half-open flows: fails the unit test)',
  synRstForwarded: 'a segment with both SYN and RST handled as a SYN (fixed: fails the unit test)',
} as const;
export type KnownCause = keyof typeof KNOWN_CAUSES;

// ---- the liveness oracle ----------------------------------------------------------------

/** A LivenessSource the engine scripts: crash/listening notices and verdicts answered by round. */
export class ScriptedOracle implements LivenessSource {
  private readonly states = new Map<string, string>();
  private readonly listeners = new Map<string, Array<(service: string) => void>>();
  private pending: Array<{ service: string; due: number; resolve: (v: LivenessVerdict) => void }> = [];
  round = 0;
  constructor(private readonly delay: () => number) {}

  get pendingVerdicts(): number {
    return this.pending.length;
  }
  waitVerdict(service: string): Promise<LivenessVerdict> {
    return new Promise((resolve) => this.pending.push({ service, due: this.round + this.delay(), resolve }));
  }
  state(service: string): string {
    return this.states.get(service) ?? 'UNKNOWN';
  }
  on(ev: 'crashed' | 'silent' | 'listening', fn: (service: string) => void): this {
    const l = this.listeners.get(ev) ?? [];
    l.push(fn);
    this.listeners.set(ev, l);
    return this;
  }
  emit(ev: 'crashed' | 'listening', service: string): void {
    this.states.set(service, ev === 'listening' ? 'LISTENING' : 'DOWN');
    for (const fn of this.listeners.get(ev) ?? []) fn(service);
  }
  /** Answers the verdicts due by now (all of them with `force`), each as `answer` says. */
  answerDue(answer: (service: string) => LivenessVerdict, force = false): void {
    if (this.pending.length === 0) return;
    const keep: typeof this.pending = [];
    for (const p of this.pending) {
      if (force || p.due <= this.round) p.resolve(answer(p.service));
      else keep.push(p);
    }
    this.pending = keep;
  }
}

// ---- the TUN that checks every write ------------------------------------------------------

class CheckedTun extends FakeTun {
  sink: (pkt: Buffer) => void = () => {};
  override write(buf: Buffer, off: number, len: number): boolean {
    this.sink(Buffer.from(buf.subarray(off, off + len)));
    return true;
  }
}

// ---- options and report -------------------------------------------------------------------

export interface FuzzOptions {
  /** Mutated packets to inject (after the warm-up). */
  packets: number;
  seed: number;
  /** Mutated packets per round (default 24). */
  perRound?: number;
  /** Share of mutated packets whose checksums are fixed up (default 0.5). */
  fixShare?: number;
  /** false: a control run, genuine traffic only, `packets` counts genuine packets. */
  mutate?: boolean;
  /** Called about every `progressEvery` mutated packets. */
  onProgress?: (r: FuzzReport) => void;
  progressEvery?: number;
  /** Findings kept per check name (default 3). */
  keepFindings?: number;
}

export interface Finding {
  check: string;
  seed: number;
  round: number;
  /** Index of the mutated packet (-1: a genuine packet or a timer). */
  index: number;
  packet: string;
  detail: string;
  /** A KNOWN_CAUSES key, or null: unexplained. */
  cause: KnownCause | null;
}

export interface FuzzReport {
  seed: number;
  packets: number;
  genuine: number;
  rounds: number;
  checksumsFixed: number;
  icmp: number;
  duplicates: number;
  states: Record<string, number>;
  mutations: Record<string, number>;
  exceptions: number;
  internalErrors: number;
  breaks: Record<string, number>;
  /** Breaks by known cause (KNOWN_CAUSES), and those no rule explains. */
  causes: Record<string, number>;
  unexplained: number;
  findings: Finding[];
  maxFlows: number;
  maxLogConnections: number;
  residual: { flows: number; logConnections: number; phases: Record<string, number> } | null;
  /** Bytes after a GC, drained: after the warm-up and at the end (heap + ArrayBuffers, and each). */
  memory: { warm: number; end: number; heap: [number, number]; arrayBuffers: [number, number]; gc: boolean } | null;
  gateway: Record<string, unknown>;
  elapsedMs: number;
  packetsPerSecond: number;
}

// ---- the world ------------------------------------------------------------------------------

const SERVER_IP = ipToU32('198.18.2.2');
const SERVICES = 4;
const CLIENTS = 5;
const ROUND_MS = 10;
const MAX_FLOWS = 1024;
const MAX_PENDING = 64 * 1024;
const HOLD_MAX = 8;
const MONOTONIC = ['received', 'stable', 'complete', 'delivered', 'cliAcked'] as const;

type CyclePhase = 'OPEN' | 'TRAFFIC' | 'DYING' | 'MASKED' | 'RESTART' | 'LIVE' | 'CLOSE';

interface Snap {
  received: number; stable: number; complete: number; delivered: number; cliAcked: number;
  /** The held ACK's offset at the last check (-1: none). */
  heldAck: number;
}

/** One protected service: its current server incarnation, its genuine clients, its cycle. */
class Cycle {
  phase: CyclePhase = 'OPEN';
  left = 0;
  server: FuzzServer;
  clients: FuzzClient[] = [];
  nextPort: number;
  readonly name: string;
  readonly clientIp: number;
  constructor(readonly index: number, readonly port: number, isn: number) {
    this.server = new FuzzServer(SERVER_IP, port, isn);
    this.nextPort = 40000 + index * 5000;
    this.name = `${u32ToIp(SERVER_IP)}:${port}`;
    this.clientIp = ipToU32(`198.18.1.${10 + index}`);
  }
}

export class FuzzEngine {
  private readonly rng: Rng;
  private readonly tun = new CheckedTun('fuzz0', { slotSize: 2048, batchSize: 64 });
  private readonly log = new MemoryLog();
  readonly oracle: ScriptedOracle;
  readonly gw: Gateway;
  private now = 1_000_000;
  private readonly cycles: Cycle[] = [];
  private readonly clients = new Map<number, FuzzClient>();
  /** The genuine flow object of each genuine client (its stable point is the one that counts). */
  private readonly flowOf = new WeakMap<FuzzClient, Flow>();
  private readonly clientOfFlow = new WeakMap<Flow, FuzzClient>();
  private readonly snaps = new WeakMap<Flow, Snap>();
  private readonly brokenOnce = new WeakMap<Flow, Set<string>>();
  private readonly history = new WeakMap<Flow, Buffer[]>();
  /** Flows a SYN+RST segment with valid checksums went through (see KNOWN_CAUSES.synRstForwarded). */
  private readonly synRst = new WeakSet<Flow>();
  private readonly recent: Buffer[] = [];
  private readonly info = new PacketInfo();
  private readonly winfo = new PacketInfo();
  private mutating = false;
  private outbox: Buffer[] = [];
  private current: Buffer | null = null;
  private currentIndex = -1;
  private lastInternalLog = '';
  private readonly opts: Required<Omit<FuzzOptions, 'onProgress'>> & Pick<FuzzOptions, 'onProgress'>;
  readonly report: FuzzReport;

  constructor(o: FuzzOptions) {
    this.opts = { perRound: 24, fixShare: 0.5, mutate: true, progressEvery: 100_000, keepFindings: 3, ...o };
    this.rng = mulberry32(o.seed);
    const rng = this.rng;
    this.oracle = new ScriptedOracle(() => 2 + rint(rng, 8));
    const capture = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        const s = chunk.toString();
        if (s.includes('internal error')) this.lastInternalLog = s;
        cb();
      },
    });
    this.gw = new Gateway({
      tun: this.tun,
      services: Array.from({ length: SERVICES }, (_, i) => ({ ip: SERVER_IP, port: 5001 + i })),
      log: this.log,
      logger: pino({ level: 'error' }, capture),
      now: () => this.now,
      south: { lingerMs: 300, idleTimeoutMs: 60_000, halfOpenTimeoutMs: 3_000, maxFlows: MAX_FLOWS, maxPendingBytes: MAX_PENDING },
      oracle: this.oracle,
      crashPolicy: 'none',
      holdMs: 300,
    });
    // The wiring Gateway.start() does, without its real-clock timers (the engine ticks).
    this.log.registerServices(this.gw.table.allServices().map((s) => ({ addr: u32ToIp(s.ip), port: s.port })));
    this.log.onStable((id, stable) => this.guarded(() => this.gw.onStable(id, stable)));
    this.tun.start((b) => this.gw.onBatch(b));
    this.tun.sink = (p) => this.onWrite(p);
    for (let i = 0; i < SERVICES; i++) {
      const c = new Cycle(i, 5001 + i, rint(rng, 0x100000000));
      c.left = i * 17; // out of step
      this.cycles.push(c);
      this.oracle.emit('listening', c.name);
    }
    this.report = {
      seed: o.seed, packets: 0, genuine: 0, rounds: 0, checksumsFixed: 0, icmp: 0, duplicates: 0,
      states: Object.fromEntries(FLOW_PHASES.map((p) => [p, 0])),
      mutations: Object.fromEntries(MUTATIONS.map((m) => [m, 0])),
      exceptions: 0, internalErrors: 0, breaks: {}, causes: {}, unexplained: 0, findings: [], maxFlows: 0, maxLogConnections: 0,
      residual: null, memory: null, gateway: {}, elapsedMs: 0, packetsPerSecond: 0,
    };
  }

  // ---- findings ----------------------------------------------------------------------------

  /** Counts a break (once per flow and check); `detail` is built only for a kept finding. */
  private brk(check: string, detail: string | (() => string), flow?: Flow, cause?: KnownCause | null): void {
    if (flow !== undefined) {
      let s = this.brokenOnce.get(flow);
      if (s === undefined) this.brokenOnce.set(flow, (s = new Set()));
      if (s.has(check)) return;
      if (cause === undefined) cause = this.causeOf(check, flow);
      s.add(check);
    }
    cause ??= null;
    const rep = this.report;
    rep.breaks[check] = (rep.breaks[check] ?? 0) + 1;
    if (cause === null) rep.unexplained++;
    else rep.causes[cause] = (rep.causes[cause] ?? 0) + 1;
    // Keep the first few of each check, unexplained ones first in line.
    const same = rep.findings.filter((f) => f.check === check && (f.cause === null) === (cause === null)).length;
    if (same < this.opts.keepFindings) {
      rep.findings.push({
        check, seed: this.opts.seed, round: rep.rounds, index: this.currentIndex,
        packet: this.current?.toString('hex') ?? '(timer or upcall)', detail: typeof detail === 'string' ? detail : detail(), cause,
      });
    }
  }

  /** The known cause of a break on flow `f`, or null (see KNOWN_CAUSES). */
  private causeOf(check: string, f: Flow): KnownCause | null {
    if (check === 'deliveredBeyondSent' || check === 'sndMaxBeyondClientWindow') return 'outOfWindow';
    const before = this.brokenOnce.get(f);
    if (before !== undefined && (before.has('deliveredBeyondSent') || before.has('sndMaxBeyondClientWindow'))) return 'outOfWindow';
    const s = this.snaps.get(f);
    if (f.clientFin >= 0 && (f.clientFin < f.received || (s !== undefined && f.clientFin < s.received))) return 'forgedClientSegment';
    const c = this.clientOfFlow.get(f);
    if (c !== undefined && (f.high > c.sndNxt || (f.clientFin >= 0 && (!c.finSent || f.clientFin !== c.sent)))) return 'forgedClientSegment';
    if (check === 'decreased:complete' && s !== undefined && s.heldAck === f.complete) return 'heldAckBelowComplete';
    if (check === 'residualFlow' && c === undefined && (f.state === 'ESTABLISHED' || f.state === 'CLOSING')) return 'forgedHandshake';
    if (check === 'residualFlow' && this.synRst.has(f)) return 'synRstForwarded';
    return null;
  }

  private guarded(fn: () => void): void {
    const ie = this.gw.stats.internalErrors;
    try {
      fn();
    } catch (err) {
      this.report.exceptions++;
      this.brk('exception', (err as Error)?.stack ?? String(err));
    }
    if (this.gw.stats.internalErrors !== ie) {
      this.report.internalErrors += this.gw.stats.internalErrors - ie;
      this.brk('internalError', this.lastInternalLog.slice(0, 2000));
    }
  }

  // ---- packets in and out -----------------------------------------------------------------

  /** Injects one packet; genuine ones are remembered (history of their flow) for the fuzzer. */
  private inject(pkt: Buffer, mutated: boolean): void {
    if (pkt.length > 2048) pkt = pkt.subarray(0, 2048); // the fake TUN's slot
    this.mutating = mutated;
    this.current = pkt;
    if (!mutated) {
      this.report.genuine++;
      this.remember(pkt);
    }
    this.guarded(() => this.tun.inject(pkt).flush());
    this.checkTuple(pkt);
    this.mutating = false;
    this.current = null;
  }

  /** The flow a well-formed TCP packet belongs to (either direction), if any. */
  private flowOfPacket(pkt: Buffer, p: PacketInfo): Flow | undefined {
    if (parsePacket(pkt, 0, pkt.length, p) !== PacketVerdict.IPV4_TCP) return undefined;
    const t = this.gw.table;
    let svc = t.service(p.dst, p.dstPort);
    if (svc !== undefined) return t.get(svc, p.src, p.srcPort);
    svc = t.service(p.src, p.srcPort);
    return svc !== undefined ? t.get(svc, p.dst, p.dstPort) : undefined;
  }

  private remember(pkt: Buffer): void {
    if (this.recent.length >= 256) this.recent[rint(this.rng, 256)] = pkt;
    else this.recent.push(pkt);
    const f = this.flowOfPacket(pkt, this.winfo);
    if (f === undefined) return;
    let h = this.history.get(f);
    if (h === undefined) this.history.set(f, (h = []));
    if (h.length >= 12) h.splice(rint(this.rng, 12), 1);
    h.push(pkt);
  }

  /** Everything the gateway writes: checked; routed to the endpoints unless a mutated packet is in. */
  private onWrite(pkt: Buffer): void {
    const p = this.winfo;
    if (parsePacket(pkt, 0, pkt.length, p) !== PacketVerdict.IPV4_TCP) return;
    const toClient = this.gw.table.service(p.src, p.srcPort) !== undefined;
    if (toClient) this.checkToClient(pkt, p);
    if ((p.flags & (TCP_SYN | TCP_RST)) === (TCP_SYN | TCP_RST) && ipv4HeaderChecksumOk(pkt, 0) && tcpChecksumOk(pkt, 0)) {
      const f = this.flowOfPacket(pkt, this.info);
      if (f !== undefined) this.synRst.add(f);
    }
    if (this.mutating) {
      // What the gateway forwards of the fuzzer's packets reaches no endpoint (the scripted
      // ones would take anything), except a RST with valid checksums: the endpoints judge it
      // as Linux does (RFC 5961), so that a forged RST that closes the gateway's flow closes
      // the endpoint too, or draws its challenge ACK, as on a real path.
      if (!(p.flags & TCP_RST) || !ipv4HeaderChecksumOk(pkt, 0) || !tcpChecksumOk(pkt, 0)) return;
    } else {
      this.remember(pkt);
    }
    if (toClient) {
      // A client that is gone (reset, or forgotten after its close) answers as a closed port does.
      const c = this.clients.get(p.dst * 65536 + p.dstPort);
      const r = c !== undefined && !c.dead ? c.receive(pkt, p) : closedPortReset(p);
      if (r) this.outbox.push(r);
    } else {
      const cy = this.cycles.find((x) => x.port === p.dstPort && p.dst === SERVER_IP);
      if (cy !== undefined) this.outbox.push(...cy.server.receive(pkt, p));
    }
  }

  /** The stable-ACK rule on a packet toward a client. */
  private checkToClient(pkt: Buffer, p: PacketInfo): void {
    if (!(p.flags & TCP_ACK) || p.flags & TCP_RST) return;
    // A client drops a packet with a bad checksum: whatever it acks never reaches its TCP.
    if (!ipv4HeaderChecksumOk(pkt, 0) || !tcpChecksumOk(pkt, 0)) return;
    const c = this.clients.get(p.dst * 65536 + p.dstPort);
    if (c === undefined) return;
    const f = this.flowOf.get(c);
    if (f === undefined || f.unprotected) return; // never protected (over the table's cap), or unprotected loudly
    const acked = seqDiff(p.ack, seqAdd(c.isn, 1));
    if (acked > f.stable && acked <= c.sndNxt) {
      const svc = this.gw.table.service(p.src, p.srcPort)!;
      const now = this.gw.table.get(svc, c.ip, c.port);
      const table = now === f ? 'in the table' : now === undefined ? 'no longer in the table' : `replaced in the table by a flow with ISN ${now.clientIsn} (${phaseOf(now)})`;
      // No known cause excuses an ack past `stable` on a live flow: only a flow a forged RST
      // ended (the endpoint reset too) is explained.
      const cause = now !== f || f.state === 'CLOSED' ? 'forgedResetOrSyn' : null;
      this.brk('stableAck', `ack of offset ${acked} reached client ${u32ToIp(c.ip)}:${c.port} with stable ${f.stable} (client sent ${c.sndNxt}; its flow ${phaseOf(f)}, ${table}; written ${pkt.toString('hex').slice(0, 120)})`, undefined, cause);
    }
  }

  // ---- flow checks ------------------------------------------------------------------------

  private checkTuple(pkt: Buffer): void {
    const f = this.flowOfPacket(pkt, this.winfo);
    if (f !== undefined) this.checkFlow(f);
  }

  private checkFlow(f: Flow): void {
    const s = this.snaps.get(f);
    const d = () => `${f.describe()} ${phaseOf(f)} received ${f.received} high ${f.high} stable ${f.stable} complete ${f.complete} delivered ${f.delivered} sndMax ${f.sndMax} cliAcked ${f.cliAcked} cliMaxWindow ${f.cliMaxWindow}`;
    if (s !== undefined) {
      for (const k of MONOTONIC) if (f[k] < s[k]) { const was = s[k]; this.brk(`decreased:${k}`, () => `${k} ${was} → ${f[k]}: ${d()}`, f); }
      for (const k of MONOTONIC) s[k] = f[k];
      s.heldAck = f.held !== null ? f.heldAck : -1;
    } else {
      this.snaps.set(f, { received: f.received, stable: f.stable, complete: f.complete, delivered: f.delivered, cliAcked: f.cliAcked, heldAck: f.held !== null ? f.heldAck : -1 });
    }
    if (f.complete > f.stable) this.brk('completeBeyondStable', d, f);
    // The log counts the client's FIN as one more offset; `received` counts data only.
    if (f.stable > f.received + (f.clientFin >= 0 && f.clientFin <= f.received ? 1 : 0)) this.brk('stableBeyondReceived', d, f);
    if (f.received > f.high) this.brk('receivedBeyondHigh', d, f);
    if (f.cliAcked > f.sndMax) this.brk('cliAckedBeyondSndMax', d, f);
    if (f.delivered > f.high + 1) this.brk('deliveredBeyondSent', d, f);
    // (The window field is rounded to 2^wscale: a FIN may sit up to that far past the edge.)
    if (f.state !== 'SYN_SEEN' && f.state !== 'SYN_ACKED' && f.sndMax > f.cliAcked + Math.max(f.cliMaxWindow, 65535) + 2 ** f.clientWscale + 1) this.brk('sndMaxBeyondClientWindow', d, f);
    const hold = peekNorth(f)?.verdictHold ?? null;
    if (hold !== null && hold.length > HOLD_MAX) this.brk('heldCopies', () => `${hold.length} held: ${d()}`, f);
    if (f.pendingBytes > MAX_PENDING) this.brk('pendingBytes', () => `${f.pendingBytes}: ${d()}`, f);
  }

  private checkAll(): void {
    const t = this.gw.table;
    for (const [, f] of t.flows()) this.checkFlow(f);
    if (t.size > this.report.maxFlows) this.report.maxFlows = t.size;
    if (t.size > MAX_FLOWS) this.brk('flowTable', `${t.size} flows > ${MAX_FLOWS}`);
    const lc = this.log.usage().connections;
    if (lc > this.report.maxLogConnections) this.report.maxLogConnections = lc;
  }

  // ---- the genuine world ----------------------------------------------------------------------

  private send(pkts: ReadonlyArray<Buffer | null>): void {
    for (const p of pkts) if (p !== null) this.inject(p, false);
  }

  /** Delivers what the endpoints answered, until quiet (bounded). */
  private exchange(): void {
    for (let i = 0; i < 4 && this.outbox.length > 0; i++) {
      const out = this.outbox;
      this.outbox = [];
      this.send(out);
    }
  }

  private newClient(cy: Cycle, halfOpen: boolean): FuzzClient {
    const port = cy.nextPort;
    cy.nextPort = cy.nextPort + 1 >= 40000 + (cy.index + 1) * 5000 ? 40000 + cy.index * 5000 : cy.nextPort + 1;
    const c = new FuzzClient(cy.clientIp, port, SERVER_IP, cy.port, rint(this.rng, 0x100000000) as Seq);
    const old = this.clients.get(c.ip * 65536 + port);
    if (old !== undefined) cy.clients = cy.clients.filter((x) => x !== old);
    this.clients.set(c.ip * 65536 + port, c);
    cy.clients.push(c);
    if (halfOpen) cy.server.ignore.add(port);
    else cy.server.ignore.delete(port);
    this.inject(c.syn(), false);
    const svc = this.gw.table.service(SERVER_IP, cy.port)!;
    const f = this.gw.table.get(svc, c.ip, port);
    if (f !== undefined && f.clientIsn === c.isn) {
      this.flowOf.set(c, f);
      this.clientOfFlow.set(f, c);
    }
    return c;
  }

  private traffic(cy: Cycle, closing: boolean): void {
    const rng = this.rng;
    for (const c of cy.clients) {
      if (rng() < 0.5) this.send(c.write(rint(rng, 1500)));
      else if (rng() < 0.1) this.send([c.ack()]);
      else if (rng() < 0.05) this.send(c.retransmit()); // its retransmission timer
    }
    if (closing || cy.clients.length === 0) return;
    const r = rng();
    const c = cy.clients[rint(rng, cy.clients.length)]!;
    if (r < 0.01) this.send([c.fin()]); // a half-close: the server keeps sending
    else if (r < 0.02) this.send([cy.server.close(c.ip, c.isn)]); // the server closes: its FIN is held for the verdict
  }

  private step(cy: Cycle): void {
    const rng = this.rng;
    if (cy.left > 0) {
      cy.left--;
      if (cy.phase === 'TRAFFIC' || cy.phase === 'MASKED' || cy.phase === 'LIVE' || cy.phase === 'RESTART') this.traffic(cy, false);
      if (cy.phase === 'RESTART' && cy.left === 0) cy.server.listening = true;
      if (cy.phase === 'CLOSE') this.traffic(cy, true);
      if (cy.phase === 'OPEN') for (const c of cy.clients) if (!c.synAcked && rng() < 0.05) this.inject(c.syn(), false);
      return;
    }
    switch (cy.phase) {
      case 'OPEN':
        // The last phase's clients are forgotten (their flows linger and go); new ones connect,
        // the first of them never answered (a half-open connection).
        for (const c of cy.clients) this.clients.delete(c.ip * 65536 + c.port);
        cy.clients = [];
        for (let i = 0; i < CLIENTS; i++) this.newClient(cy, i === 0);
        this.to(cy, 'TRAFFIC', 20 + rint(rng, 40));
        return;
      case 'TRAFFIC':
      case 'LIVE':
        if (rng() < (cy.phase === 'TRAFFIC' ? 0.75 : 0.4)) {
          this.to(cy, 'DYING', 2 + rint(rng, 6));
          // A dying process may close its sockets: FINs, held for the verdict, which will say dead.
          if (rng() < 0.5) for (const c of cy.clients) this.send([cy.server.close(c.ip, c.isn)]);
          return;
        }
        this.to(cy, 'CLOSE', 25);
        for (const c of cy.clients) {
          const r = rng();
          if (r < 0.55) this.send([c.fin()]);
          else if (r < 0.85) this.send([c.rst()]);
          else this.send([cy.server.abort(c.ip, c.isn)]);
        }
        return;
      case 'DYING':
        cy.server.dead = true;
        this.oracle.answerDue((s) => (s === cy.name ? 'dead' : 'alive'), true);
        this.guarded(() => this.oracle.emit('crashed', cy.name));
        this.to(cy, 'MASKED', 10 + rint(rng, 30));
        return;
      case 'MASKED':
        cy.server = new FuzzServer(SERVER_IP, cy.port, rint(rng, 0x100000000));
        cy.server.listening = false; // the handshake waits a while: rebuilds sit in HANDSHAKE
        for (const c of cy.clients) if (!c.synAcked) cy.server.ignore.add(c.port);
        this.guarded(() => this.oracle.emit('listening', cy.name));
        this.to(cy, 'RESTART', 5 + rint(rng, 20));
        return;
      case 'RESTART':
        cy.server.listening = true;
        this.to(cy, 'LIVE', 30 + rint(rng, 50));
        return;
      case 'CLOSE':
        for (const c of cy.clients) if (c.finSent && !c.dead) this.send([cy.server.close(c.ip, c.isn)]);
        this.to(cy, 'OPEN', 10);
        return;
    }
  }

  private to(cy: Cycle, phase: CyclePhase, rounds: number): void {
    cy.phase = phase;
    cy.left = rounds;
  }

  /** Verdicts: 'dead' for a service whose process is dying, else 'alive'. */
  private verdictFor = (service: string): LivenessVerdict => {
    const cy = this.cycles.find((c) => c.name === service);
    return cy !== undefined && (cy.phase === 'DYING' || cy.server.dead) ? 'dead' : 'alive';
  };

  private async settle(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
  }

  /** One round: clock, timers, the services' cycles and their exchanges (no mutation). */
  private async genuineRound(): Promise<void> {
    await this.settle();
    this.report.rounds++;
    this.oracle.round++;
    this.now += ROUND_MS;
    this.guarded(() => this.oracle.answerDue(this.verdictFor));
    await this.settle();
    this.guarded(() => {
      for (const svc of this.gw.table.allServices()) {
        if (this.gw.north.isDown(svc) && this.gw.masking.serviceListening(svc)) this.gw.north.listening(svc);
      }
      this.gw.north.tick();
    });
    if (this.report.rounds % 25 === 0) this.guarded(() => this.gw.south.sweep());
    this.exchange();
    for (const cy of this.cycles) {
      this.step(cy);
      this.exchange();
    }
  }

  // ---- the fuzzer ------------------------------------------------------------------------------

  private mutatedRound(): void {
    const rng = this.rng;
    const byPhase = new Map<FlowPhase, Flow[]>();
    for (const [, f] of this.gw.table.flows()) {
      const ph = phaseOf(f);
      const l = byPhase.get(ph);
      if (l === undefined) byPhase.set(ph, [f]);
      else l.push(f);
    }
    const phases = [...byPhase.keys()];
    for (let i = 0; i < this.opts.perRound; i++) {
      let base: Buffer | undefined;
      let phase: FlowPhase | null = null;
      if (phases.length > 0 && rng() < 0.95) {
        phase = phases[rint(rng, phases.length)]!;
        const fl = byPhase.get(phase)!;
        const h = this.history.get(fl[rint(rng, fl.length)]!);
        if (h !== undefined && h.length > 0) base = h[rint(rng, h.length)];
      }
      if (base === undefined) {
        if (this.recent.length === 0) return;
        base = this.recent[rint(rng, this.recent.length)]!;
        const f = this.flowOfPacket(base, this.info);
        phase = f !== undefined ? phaseOf(f) : null;
      }
      let pkt: Buffer;
      const r = rng();
      if (r < 0.08) {
        pkt = icmpAbout(rng, base, rng() < 0.5 ? SERVER_IP : ipToU32('198.18.2.1'));
        this.report.icmp++;
      } else if (r < 0.16) {
        pkt = base; // a duplicate, out of its order
        this.report.duplicates++;
      } else {
        pkt = base;
        const n = 1 + (rng() < 0.3 ? rint(rng, 3) : 0);
        for (let k = 0; k < n; k++) {
          const m = MUTATIONS[rint(rng, MUTATIONS.length)]!;
          this.report.mutations[m]!++;
          pkt = mutate(rng, m, pkt);
        }
        if (rng() < this.opts.fixShare && fixChecksums(pkt)) this.report.checksumsFixed++;
      }
      if (phase !== null) this.report.states[phase]!++;
      this.currentIndex = this.report.packets++;
      this.inject(pkt, true);
    }
    this.currentIndex = -1;
  }

  // ---- drain and memory -------------------------------------------------------------------------

  /**
   * Ends every genuine connection (client RSTs at exactly the server's rcv_nxt), brings every
   * service back, and moves the clock past every deadline. What is left afterwards leaked.
   */
  private async drain(): Promise<{ flows: number; logConnections: number; phases: Record<string, number> }> {
    for (const cy of this.cycles) {
      // Each client retransmits what was not acknowledged (its segments may have been dropped
      // while the server was down), then aborts at its snd_nxt.
      for (const c of cy.clients) this.send(c.retransmit());
      this.exchange();
      for (const c of cy.clients) this.send([c.rst()]);
      cy.clients = [];
      // A dead incarnation is restarted; a restarting one (its rebuilt connections in it) answers now.
      if (cy.server.dead) {
        cy.server = new FuzzServer(SERVER_IP, cy.port, rint(this.rng, 0x100000000));
        this.guarded(() => this.oracle.emit('listening', cy.name));
      }
      cy.server.listening = true;
      this.to(cy, 'OPEN', 0);
    }
    this.clients.clear();
    this.exchange();
    // 300 s in 1 s steps: past the mask, rebuild and progress deadlines, the half-open timeout, the linger.
    for (let i = 0; i < 300; i++) {
      await this.settle();
      this.now += 1000;
      this.oracle.round += 100;
      this.guarded(() => this.oracle.answerDue(this.verdictFor, true));
      await this.settle();
      this.guarded(() => {
        for (const svc of this.gw.table.allServices()) {
          if (this.gw.north.isDown(svc) && this.gw.masking.serviceListening(svc)) this.gw.north.listening(svc);
        }
        this.gw.north.tick();
        this.gw.south.sweep();
      });
      this.exchange();
    }
    await this.settle();
    const phases: Record<string, number> = {};
    let explained: KnownCause | null = null;
    let unexplainedFlows = 0;
    for (const [, f] of this.gw.table.flows()) {
      const ph = phaseOf(f);
      phases[ph] = (phases[ph] ?? 0) + 1;
      const cause = this.causeOf('residualFlow', f);
      if (cause === null) unexplainedFlows++;
      else explained = cause;
      this.brk('residualFlow', `left after the drain: ${f.describe()} ${ph} state ${f.state} received ${f.received} high ${f.high} delivered ${f.delivered} sndMax ${f.sndMax} cliAcked ${f.cliAcked} rightEdge ${f.rightEdge} clientFin ${f.clientFin} serverFin ${f.serverFin} logId ${f.logId} created ${f.created - this.now} ms ago, last activity ${f.lastActivity - this.now} ms ago, ISN ${f.clientIsn}`, f, cause);
    }
    const logConnections = this.log.usage().connections;
    if (logConnections > 0) {
      const orphans = this.log.listActive().filter((r) => this.gw.table.byLog(r.id) === undefined).length;
      // Log connections of flows left over share their cause; one bound to no flow leaked.
      const cause = orphans === 0 && unexplainedFlows === 0 ? explained : null;
      this.brk('residualLogConnection', `${logConnections} log connections left after the drain (${orphans} bound to no flow), ${this.gw.table.size} flows`, undefined, cause);
    }
    return { flows: this.gw.table.size, logConnections, phases };
  }

  /**
   * Heap + ArrayBuffers after full collections. ArrayBuffer backing stores are released
   * after the collection that finds them dead (concurrently): collect, let the loop turn,
   * collect again, three times, and take the last reading.
   */
  private async measure(): Promise<{ heap: number; arrayBuffers: number; gc: boolean }> {
    let gc = true;
    for (let i = 0; i < 3; i++) {
      gc = collectGarbageNow() && gc;
      await new Promise<void>((r) => setTimeout(r, 20));
    }
    const m = process.memoryUsage();
    return { heap: m.heapUsed, arrayBuffers: m.arrayBuffers, gc };
  }

  // ---- the run --------------------------------------------------------------------------------

  async run(): Promise<FuzzReport> {
    const t0 = Date.now();
    const o = this.opts;
    const rep = this.report;
    // Warm-up: 20 % of the run (at least 2,000 packets), then a drain and the memory baseline.
    const warm = Math.max(2000, Math.floor(o.packets / 5));
    const target = (n: number) => (o.mutate ? rep.packets < n : rep.genuine < n);
    let nextProgress = o.progressEvery;
    const loop = async (n: number) => {
      while (target(n)) {
        await this.genuineRound();
        if (o.mutate) this.mutatedRound();
        this.checkAll();
        if (o.onProgress && rep.packets + rep.genuine >= nextProgress) {
          nextProgress += o.progressEvery;
          this.finish(t0);
          o.onProgress(rep);
        }
      }
    };
    await loop(warm);
    await this.drain();
    const before = await this.measure();
    const done = o.mutate ? rep.packets : rep.genuine;
    await loop(done + o.packets);
    rep.residual = await this.drain();
    this.tun.close();
    const after = await this.measure();
    rep.memory = {
      warm: before.heap + before.arrayBuffers, end: after.heap + after.arrayBuffers,
      heap: [before.heap, after.heap], arrayBuffers: [before.arrayBuffers, after.arrayBuffers], gc: before.gc && after.gc,
    };
    this.finish(t0);
    return rep;
  }

  private finish(t0: number): void {
    const rep = this.report;
    rep.elapsedMs = Date.now() - t0;
    rep.packetsPerSecond = Math.round(((rep.packets + rep.genuine) * 1000) / Math.max(1, rep.elapsedMs));
    const g = this.gw;
    rep.gateway = {
      stats: { ...g.stats }, drops: g.dropReasons(), south: { ...g.south.stats }, north: { ...g.north.stats },
      masking: g.masking.describe(), recoveries: g.north.timelines.length,
    };
  }
}

/** Runs the fuzz engine once (the unit test and scripts/fuzz). */
export function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  return new FuzzEngine(o).run();
}
