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
 */
import dgram from 'node:dgram';
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
} from './liveness.js';

export type { ServiceInfo, ServiceState, Verdict, OracleEventName, LivenessCounters };

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

  private constructor(socket: dgram.Socket, key: Buffer, opts: OracleOptions) {
    super();
    this.socket = socket;
    const log = opts.log ?? logger.child({ mod: 'oracle' });
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
    socket.on('message', (buf) => {
      this.tracker.receive(buf);
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

  get counters(): LivenessCounters {
    return this.tracker.counters;
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
