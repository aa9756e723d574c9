/**
 * The gateway's liveness oracle: a UDP socket receiving supervisor notices (messages.ts),
 * with the state machine, replay check and verdicts of liveness.ts behind it.
 *
 *   const oracle = await LivenessOracle.listen('198.18.2.1', 7071, key, { services: ['198.18.2.2:5001'] });
 *   oracle.on('crashed', (service, info) => …);
 *   const v = await oracle.waitVerdict('198.18.2.2:5001', 300);   // 'alive' | 'dead' | 'unknown'
 *
 * Events (service: 'ip:port', info: ServiceInfo after the transition): 'alive', 'crashed',
 * 'restarted', 'listening', 'stopping', 'stopped', 'silent'. Verdict semantics, the state
 * diagram and the replay rules are documented in liveness.ts.
 *
 * Hostile notices (forged with a wrong key, garbage, replayed, of an older generation) are
 * dropped and counted by the tracker; `counters` adds `socketDrops`, the datagrams the kernel
 * dropped at this socket before the oracle read them (a flood past its receive buffer; from
 * /proc/net/udp), so every datagram sent to the oracle is in `received` or in `socketDrops`.
 * Dropped notices are logged at warn level with their source: the first of each reason, then
 * at most one summary every DROP_LOG_MS.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { EventEmitter } from 'node:events';
import { logger, type Logger } from '../util/logger.js';
import { FtcpError } from '../util/errors.js';
import {
  LivenessTracker,
  type LivenessCounters,
  type OracleEventName,
  type ServiceInfo,
  type ServiceState,
  type Verdict,
  type ReceiveResult,
} from './liveness.js';

/** At most one warning about dropped notices this often (ms), after the first of each reason. */
export const DROP_LOG_MS = 10_000;
/** The oracle socket's receive buffer (bytes; the kernel caps it at net.core.rmem_max). */
const RECV_BUFFER = 1 << 20;

export type { ServiceInfo, ServiceState, Verdict, OracleEventName, LivenessCounters };

/** The tracker's counters and the kernel's drops at the oracle's socket. */
export type OracleCounters = LivenessCounters & { socketDrops: number };

export interface OracleOptions {
  /** Default 3 × heartbeatMs + 50. */
  silenceMs?: number;
  /** The supervisors' heartbeat interval (default 100), for the default silenceMs. */
  heartbeatMs?: number;
  /** Only these services are tracked (others dropped, counted). Default: any. */
  services?: string[];
  /** See liveness.ts: drop notices whose sentAt is further than this from our wall clock. */
  maxAgeMs?: number;
  /** See liveness.ts: the anchoring window for crashes heard first (default silenceMs). */
  confirmMs?: number;
  log?: Logger;
}

type Listener = (service: string, info: ServiceInfo) => void;

export class LivenessOracle extends EventEmitter<Record<OracleEventName, [string, ServiceInfo]>> {
  private readonly tracker: LivenessTracker;
  private readonly socket: dgram.Socket;
  private readonly ticker: NodeJS.Timeout;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly log: Logger;
  /** Dropped notices by reason since the last warning, and when that was. */
  private dropsSinceLog = new Map<ReceiveResult, number>();
  private readonly reasonsLogged = new Set<ReceiveResult>();
  private lastDropLog = 0;
  private readonly procAddr: string;

  private constructor(socket: dgram.Socket, key: Buffer, opts: OracleOptions) {
    super();
    this.socket = socket;
    const log = opts.log ?? logger.child({ mod: 'oracle' });
    this.log = log;
    const a = socket.address();
    this.procAddr = procNetAddr(a.address, a.port);
    try {
      socket.setRecvBufferSize(RECV_BUFFER);
    } catch {
      // the default buffer; overflows are counted in socketDrops
    }
    this.tracker = new LivenessTracker(key, {
      now: () => performance.now(),
      silenceMs: opts.silenceMs,
      heartbeatMs: opts.heartbeatMs,
      services: opts.services,
      maxAgeMs: opts.maxAgeMs,
      confirmMs: opts.confirmMs,
      log,
      emit: (ev, service, info) => this.emit(ev, service, info),
    });
    // counters.socketDrops: read from the kernel when looked at (the last reading once closed).
    let drops = 0;
    Object.defineProperty(this.tracker.counters, 'socketDrops', {
      enumerable: true,
      get: () => (this.closed ? drops : (drops = Math.max(drops, socketDrops(this.procAddr)))),
    });
    socket.on('message', (buf, rinfo) => {
      const r = this.tracker.receive(buf);
      if (r !== 'accepted' && r !== 'duplicate') this.dropped(r, rinfo);
      this.armDeadline();
    });
    socket.on('error', (err) => log.error({ err }, 'oracle socket error'));
    // Silence is noticed within a quarter of silenceMs (bounded 10..100 ms).
    const period = Math.max(10, Math.min(100, Math.floor(this.tracker.silenceMs / 4)));
    this.ticker = setInterval(() => this.tracker.tick(), period);
    this.ticker.unref();
  }

  /** Binds a UDP socket on addr:port (port 0: ephemeral; see `address()`). */
  static async listen(addr: string, port: number, key: Buffer, opts: OracleOptions = {}): Promise<LivenessOracle> {
    const socket = dgram.createSocket({ type: 'udp4' });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err) => reject(new FtcpError('FTCP_BIND', `oracle: cannot bind ${addr}:${port}: ${err.message}`, { cause: err })));
      socket.bind(port, addr, () => resolve());
    });
    socket.removeAllListeners('error');
    return new LivenessOracle(socket, key, opts);
  }

  address(): { address: string; port: number } {
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  get silenceMs(): number {
    return this.tracker.silenceMs;
  }

  get counters(): OracleCounters {
    return this.tracker.counters as OracleCounters;
  }

  /** A dropped notice: warned about with its source, the first of each reason, then summed up at most every DROP_LOG_MS. */
  private dropped(reason: ReceiveResult, from: { address: string; port: number }): void {
    this.dropsSinceLog.set(reason, (this.dropsSinceLog.get(reason) ?? 0) + 1);
    const now = performance.now();
    const first = !this.reasonsLogged.has(reason);
    if (!first && now - this.lastDropLog < DROP_LOG_MS) return;
    this.reasonsLogged.add(reason);
    this.lastDropLog = now;
    const c = this.tracker.counters;
    this.log.warn(
      { reason, from: `${from.address}:${from.port}`, sinceLastWarning: Object.fromEntries(this.dropsSinceLog),
        total: { forged: c.forged, malformed: c.malformed, replayed: c.replayed, badGeneration: c.badGeneration, unknownService: c.unknownService } },
      'supervisor notices dropped (wrong key, garbage, replay or an older generation): counted in ftcp status and ftcp_auth_drops_total',
    );
    this.dropsSinceLog = new Map();
  }

  verdict(service: string): Verdict {
    return this.tracker.verdict(service);
  }

  state(service: string): ServiceState {
    return this.tracker.state(service);
  }

  info(service: string): ServiceInfo {
    return this.tracker.info(service);
  }

  services(): string[] {
    return this.tracker.services();
  }

  /** See LivenessTracker.waitVerdict. */
  waitVerdict(service: string, timeoutMs: number, settle = false, minGapMs = 0): Promise<Verdict> {
    if (this.closed) return Promise.resolve(this.tracker.verdict(service));
    const p = this.tracker.waitVerdict(service, timeoutMs, settle, minGapMs);
    this.armDeadline();
    return p;
  }

  /** Convenience typed subscription (same as `on`). */
  onEvent(ev: OracleEventName, fn: Listener): this {
    return this.on(ev, fn);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.ticker);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.tracker.flushWaiters();
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  /** One timer for the earliest waiter deadline, so waitVerdict times out on time. */
  private armDeadline(): void {
    if (this.closed) return;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    const d = this.tracker.nextDeadline();
    if (d === null) return;
    this.deadlineTimer = setTimeout(() => {
      this.deadlineTimer = null;
      this.tracker.tick();
      this.armDeadline();
    }, Math.max(0, Math.ceil(d - performance.now())));
  }
}

/** "127.0.0.1", 7071 -> "0100007F:1BA7": the local address as /proc/net/udp prints it (host byte order). */
function procNetAddr(address: string, port: number): string {
  const b = Buffer.from(address.split('.').map(Number));
  const n = endianness() === 'LE' ? b.readUInt32LE(0) : b.readUInt32BE(0);
  return `${n.toString(16).toUpperCase().padStart(8, '0')}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The kernel's drop count of the UDP socket bound to `local` (procNetAddr), 0 when not found. */
function socketDrops(local: string): number {
  let text: string;
  try {
    text = readFileSync('/proc/self/net/udp', 'latin1');
  } catch {
    return 0;
  }
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref pointer drops
    if (f[1] === local && f.length >= 13) return Number(f[12]) || 0;
  }
  return 0;
}
