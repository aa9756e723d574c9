/**
 * The one gateway test harness: a Gateway on the in-memory FakeTun (src/tun/fake.ts), a
 * log (a ManualLog whose stability the test drives, or any LogStore), an injected clock,
 * a scripted liveness oracle, and the lab's addresses (segments.ts). Every gateway and
 * recovery unit test builds its world from here.
 *
 *   Client ──inject──▶ FakeTun ──▶ Gateway (south/north) ──▶ FakeTun.written ──route──▶ Server
 *      ▲                                                            │
 *      └──────────────────────── route ◀────────────────────────────┘
 *
 * `GatewayRig` is the bare world (a gateway, its TUN and log): tests that script segments
 * by hand use it. `Harness` adds the routing between the scripted endpoints of peers.ts.
 *
 * Waiting for the log: the rig records the promise of every `open` the gateway makes on
 * its log, and `logOpened()` awaits them. The gateway attached its own handler to each
 * promise before the test could, so once the test's wait resolves the gateway has bound the
 * log id (promise reactions run in the order they were attached): no counting of turns.
 */
import { FakeTun } from '../../src/tun/fake.js';
import { Gateway, type GatewayOptions } from '../../src/gateway/gateway.js';
import type { Flow } from '../../src/flow/flow.js';
import type { Service } from '../../src/flow/table.js';
import type { NorthOptions } from '../../src/recovery/options.js';
import type { SouthOptions } from '../../src/wrappers/south.js';
import type { CrashPolicy, LivenessSource, LivenessVerdict } from '../../src/recovery/verdict.js';
import type { LogStore } from '../../src/log/types.js';
import { ManualLog } from './manual-log.js';
import { testLogger } from './test-logger.js';
import { CLIENT, SERVER, SPORT, SVC_NAME, TCP_SYN, hasFlag, parseSeg, type Seg } from './segments.js';
import type { Client, Server } from './peers.js';

export * from './segments.js';
export * from './peers.js';

/** Lets every queued promise reaction run: one turn of the event loop comes after all of them. */
export function drainMicrotasks(): Promise<void> {
  return new Promise<void>((r) => setImmediate(r));
}

// ---- waiting for the log -------------------------------------------------------------

/** The promises of every `open` made on a log (the log's own method, wrapped on the instance). */
export class LogOpens {
  private readonly pending: Array<Promise<unknown>> = [];
  private done = 0;

  constructor(log: LogStore) {
    const open = log.open.bind(log);
    log.open = (meta) => {
      const p = open(meta);
      this.pending.push(p);
      return p;
    };
  }

  /** Opens made so far. */
  get count(): number {
    return this.pending.length;
  }

  /** Resolves once every open made so far (and any made meanwhile) has been answered, either way. */
  async settled(): Promise<void> {
    while (this.done < this.pending.length) {
      const upTo = this.pending.length;
      await Promise.allSettled(this.pending.slice(this.done, upTo));
      this.done = upTo;
    }
  }
}

// ---- the liveness oracle ------------------------------------------------------------

// ---- the liveness oracle ------------------------------------------------------------

/** A LivenessSource the test answers by hand. */
export class FakeOracle implements LivenessSource {
  readonly asked: Array<{ service: string; timeoutMs: number; answer: (v: LivenessVerdict) => void }> = [];
  private readonly listeners = new Map<string, Array<(service: string) => void>>();
  st = 'LISTENING';

  waitVerdict(service: string, timeoutMs: number): Promise<LivenessVerdict> {
    return new Promise((resolve) => this.asked.push({ service, timeoutMs, answer: resolve }));
  }
  state(_service: string): string {
    return this.st;
  }
  on(ev: 'crashed' | 'silent' | 'listening', fn: (service: string) => void): this {
    const l = this.listeners.get(ev) ?? [];
    l.push(fn);
    this.listeners.set(ev, l);
    return this;
  }
  emit(ev: 'crashed' | 'silent' | 'listening', service = SVC_NAME): void {
    if (ev === 'listening') this.st = 'LISTENING';
    else this.st = 'DOWN';
    for (const fn of this.listeners.get(ev) ?? []) fn(service);
  }
  /** Answers the oldest pending waitVerdict. */
  answer(v: LivenessVerdict): void {
    const q = this.asked.shift();
    if (!q) throw new Error('FakeOracle: no verdict was asked for');
    q.answer(v);
  }
}


// ---- the bare gateway world ---------------------------------------------------------

/** Gateway options a test may set (the rig supplies the TUN, the log, the logger, the service, the clock). */
export type RigGatewayOptions = Omit<Partial<GatewayOptions>, 'tun' | 'log' | 'logger' | 'services' | 'now'>;

export interface RigOptions<L extends LogStore> {
  /** The log (default: a new ManualLog). */
  log?: L;
  /** FakeTun options (a virtio-net header, rejected GSO writes, ...). */
  tun?: ConstructorParameters<typeof FakeTun>[1];
  gateway?: RigGatewayOptions;
  /** The gateway reads the rig's clock `now` (default), or Date.now (false). */
  manualClock?: boolean;
  /**
   * 'start' (default): gw.start() — every log upcall, the TUN, the sweep and recovery timers
   * (unref'd, on the real clock). 'manual': the TUN, the stability and status upcalls only, no timers:
   * the test ticks recovery itself. 'none': nothing is wired.
   */
  wiring?: 'start' | 'manual' | 'none';
}

export class GatewayRig<L extends LogStore = ManualLog> {
  readonly tun: FakeTun;
  readonly log: L;
  now = 1_000_000;
  readonly gw: Gateway;
  readonly opens: LogOpens;

  constructor(o: RigOptions<L> = {}) {
    this.tun = new FakeTun('fake0', o.tun ?? {});
    this.log = o.log ?? (new ManualLog() as LogStore as L);
    this.opens = new LogOpens(this.log);
    this.gw = new Gateway({
      tun: this.tun,
      services: [{ ip: SERVER, port: SPORT }],
      log: this.log,
      logger: testLogger(),
      ...(o.manualClock ?? true ? { now: () => this.now } : {}),
      ...o.gateway,
    });
    const wiring = o.wiring ?? 'start';
    if (wiring === 'start') this.gw.start();
    else if (wiring === 'manual') {
      this.tun.start((b) => this.gw.onBatch(b));
      this.log.onStable((id, stable) => this.gw.onStable(id, stable));
      this.log.onStatus((status, detail) => this.gw.onLogStatus(status, detail));
    }
  }

  get svc(): Service {
    return this.gw.table.allServices()[0]!;
  }

  /** Resolves once the log has answered every open the gateway made, and the gateway has taken the answers. */
  logOpened(): Promise<void> {
    return this.opens.settled();
  }

  /** Lets the log's answers (opens, reads, stability reported in a microtask) and the oracle's verdicts run. */
  async settle(): Promise<void> {
    await this.logOpened();
    await drainMicrotasks();
  }
}

// ---- the routed world of scripted endpoints -----------------------------------------

export interface HarnessOptions {
  oracle?: FakeOracle | null;
  crashPolicy?: CrashPolicy;
  holdMs?: number;
  north?: Partial<NorthOptions>;
  /** South wrapper options over the harness's (linger 100 ms, idle timeout 600 s). */
  south?: Partial<SouthOptions>;
  /** Stabilize everything appended at the start of each routing round (default true). */
  autoStable?: boolean;
  /** The log (default a new ManualLog): a second harness on the first one's log is a restarted gateway. */
  log?: ManualLog;
}

/**
 * The gateway between scripted endpoints (peers.ts). Its own timers are not started
 * (gw.start() would run north.tick() on the real clock): the TUN and the log upcall are
 * wired by the rig, and tests call `tick(ms)`.
 */
export class Harness extends GatewayRig {
  readonly oracle: FakeOracle | null;
  autoStable: boolean;
  /** Every segment the gateway wrote toward the client, with the stable point at that time. */
  readonly toClientLog: Array<{ s: Seg; stable: number }> = [];
  /** Packets written that are not IPv4/TCP (ICMP passed through, ...). */
  readonly others: Buffer[] = [];

  constructor(o: HarnessOptions = {}) {
    const oracle = o.oracle === undefined ? new FakeOracle() : o.oracle;
    super({
      wiring: 'manual',
      ...(o.log !== undefined ? { log: o.log } : {}),
      gateway: {
        south: { lingerMs: 100, idleTimeoutMs: 600_000, ...o.south },
        oracle,
        crashPolicy: o.crashPolicy ?? 'none',
        holdMs: o.holdMs ?? 300,
        north: o.north ?? {},
      },
    });
    this.oracle = oracle;
    this.autoStable = o.autoStable ?? true;
  }

  /** The connection of client port `port`. */
  flowOf(port: number): Flow {
    const f = this.gw.table.get(this.svc, CLIENT, port);
    if (!f) throw new Error(`no flow for client port ${port}`);
    return f;
  }

  /** The (only) connection. */
  flow(): Flow {
    const all = [...this.gw.table.flows()];
    if (all.length !== 1) throw new Error(`expected one flow, found ${all.length}`);
    return all[0]![1];
  }

  /** Injects packets, delivers them, and returns everything written since the last drain. */
  send(...pkts: Buffer[]): Seg[] {
    if (pkts.length > 0) this.tun.inject(...pkts).flush();
    return this.drain();
  }

  /** Everything written so far (also packets the gateway made on its own), parsed. */
  drain(): Seg[] {
    const out: Seg[] = [];
    for (const b of this.tun.drain()) {
      if (b.length >= 20 && b[0] === 0x45 && b[9] === 6) out.push(parseSeg(b));
      else this.others.push(b);
    }
    for (const s of out) if (s.dst === CLIENT) this.toClientLog.push({ s, stable: this.stableNow() });
    return out;
  }

  /** Advances the clock, runs one recovery tick, returns what was written. */
  tick(ms: number): Seg[] {
    this.now += ms;
    this.gw.north.tick();
    return this.drain();
  }

  logId(): number {
    return this.flow().logId;
  }

  /** What the log holds for the connection (bytes, plus one for a logged FIN right after them). */
  loggedEnd(id = this.logId()): number {
    const n = this.log.bytes(id).length;
    const fin = this.log.fins.find((f) => f.id === id);
    return fin !== undefined && fin.offset === n ? n + 1 : n;
  }

  stableNow(): number {
    const all = [...this.gw.table.flows()];
    return all.length === 1 ? all[0]![1].stable : 0;
  }

  /** Makes everything logged so far stable (fires the upcall when it advances). */
  stabilizeAll(): void {
    for (const [, f] of this.gw.table.flows()) {
      if (f.logId < 0) continue;
      const end = this.loggedEnd(f.logId);
      if (end > f.stable) this.log.stabilize(f.logId, end);
    }
  }

  /**
   * Routes packets between the endpoints until nothing moves (bounded): each round
   * settles promises, stabilizes the log (when autoStable), and hands each written packet
   * to its addressee; a null server is a dead one (its packets vanish).
   */
  async run(client: Client | Client[], server: Server | Server[] | null, rounds = 200): Promise<Seg[]> {
    const clients = Array.isArray(client) ? client : [client];
    const servers = server === null ? [] : Array.isArray(server) ? server : [server];
    const seen: Seg[] = [];
    for (let i = 0; i < rounds; i++) {
      await this.settle();
      if (this.autoStable) this.stabilizeAll();
      const out = this.drain();
      if (out.length === 0) return seen;
      seen.push(...out);
      const next: Buffer[] = [];
      for (const s of out) {
        if (s.dst === CLIENT) {
          const c = clients.find((x) => x.port === s.dstPort) ?? clients[0]!;
          const r = c.receive(s);
          if (r) next.push(r);
        } else if (s.dst === SERVER) {
          const srv = servers.find((x) => x.peerPort === s.srcPort) ?? (hasFlag(s, TCP_SYN) ? servers.find((x) => x.peerPort === 0) : undefined);
          if (srv) next.push(...srv.receive(s));
        }
      }
      if (next.length > 0) this.tun.inject(...next).flush();
    }
    throw new Error(`run: still busy after ${rounds} rounds`);
  }
}

/** Client and server through the gateway up to an established, logged connection. */
export async function connect(h: Harness, c: Client, s: Server): Promise<void> {
  h.tun.inject(c.syn()).flush();
  await h.run(c, s);
  if (!s.established || h.flowOf(c.port).logId < 0) throw new Error('connect: the handshake did not complete');
}

/** A new harness (oracle `o`, log `log`) with client and server connected through it and `n` client bytes written and answered. */
export async function exchanged(c: Client, s: Server, n: number, o: FakeOracle = new FakeOracle(), log?: ManualLog): Promise<Harness> {
  const h = new Harness({ oracle: o, ...(log !== undefined ? { log } : {}) });
  await connect(h, c, s);
  h.tun.inject(...c.write(n)).flush();
  await h.run(c, s);
  return h;
}
