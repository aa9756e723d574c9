/**
 * The supervisor (`ftcp supervise`, DESIGN.md §1, §4): runs the server program on the server
 * host, restarts it when it dies, and tells the gateway at once.
 *
 *   start ─▶ spawn (generation g) ──▶ 'hello' (g = 1) or 'restarted' (g > 1), with the pid
 *              │  poll /proc/net/tcp{,6} every 15 ms (bounded) for the service port in LISTEN
 *              │  ──▶ 'listening' ×3
 *              ▼
 *            exit ── code 0 ───────────────────────────▶ 'stopped' ×3, exit 0
 *              │
 *              └── code ≠ 0 or signal ──▶ 'crashed' ×3 (exitCode/signal)
 *                        │  --max-restarts reached ──▶ exit 1 (the gateway hears silence)
 *                        └─ wait backoff (100 ms doubling to 5 s; reset after a 30 s healthy run)
 *                           ──▶ spawn (generation g+1)
 *
 *   every --heartbeat-ms: 'heartbeat' { generation, alive, listening, pid }
 *   SIGTERM/SIGINT: 'stopping' ×3, SIGTERM the program (SIGKILL after --stop-timeout-ms),
 *                   'stopped' ×3, exit 0
 *
 * "×3": important notices are sent three times 5 ms apart with the same seq (UDP may drop;
 * the oracle dedupes by seq). Sends never block the supervisor and their errors (the gateway
 * unreachable) are logged and ignored: the program's life does not depend on the gateway.
 *
 * Limitation: a SIGKILL of the supervisor itself leaves the program running unsupervised
 * (Node has no PR_SET_PDEATHSIG); the gateway then hears silence and judges the host dead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { logger as rootLogger, type Logger } from '../util/logger.js';
import { encodeNotice, newBootId, type Notice, type NoticeType } from './messages.js';

// ---- backoff ------------------------------------------------------------------------------

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  /** A run at least this long resets the delay to initialMs. */
  resetAfterMs?: number;
}

/** Exponential restart backoff: 100, 200, 400, … capped at 5000 ms; reset after a healthy run. */
export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly resetAfterMs: number;
  private delay: number;

  constructor(o: BackoffOptions = {}) {
    this.initialMs = o.initialMs ?? 100;
    this.maxMs = o.maxMs ?? 5000;
    this.resetAfterMs = o.resetAfterMs ?? 30_000;
    this.delay = this.initialMs;
  }

  /** The delay before the next start, given how long the run that just ended lasted. */
  next(ranMs: number): number {
    if (ranMs >= this.resetAfterMs) this.delay = this.initialMs;
    const d = this.delay;
    this.delay = Math.min(this.maxMs, this.delay * 2);
    return d;
  }
}

// ---- /proc/net/tcp ------------------------------------------------------------------------

export interface ProcTcpEntry {
  /** Dotted IPv4, '::' for the IPv6 wildcard, or null for another IPv6 address. */
  localIp: string | null;
  localPort: number;
  /** Kernel TCP state, e.g. 0x0A = LISTEN. */
  state: number;
}

export const TCP_LISTEN = 0x0a;

/** One 32-bit word as the kernel prints it (%08X of the value in host byte order) → 4 bytes. */
function wordBytes(hex: string, little: boolean): number[] {
  const v = parseInt(hex, 16) >>> 0;
  const be = [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  return little ? be.reverse() : be;
}

/** Parses /proc/net/tcp or /proc/net/tcp6 text. Unparseable lines are skipped. */
export function parseProcNetTcp(text: string, little = endianness() === 'LE'): ProcTcpEntry[] {
  const out: ProcTcpEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*\d+:\s+([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})\s+\S+\s+([0-9A-Fa-f]{2})\s/.exec(line);
    if (!m) continue;
    const addr = m[1]!;
    let localIp: string | null;
    if (addr.length === 8) {
      localIp = wordBytes(addr, little).join('.');
    } else {
      const bytes = [0, 8, 16, 24].flatMap((i) => wordBytes(addr.slice(i, i + 8), little));
      if (bytes.every((b) => b === 0)) localIp = '::';
      else if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) localIp = bytes.slice(12).join('.');
      else localIp = null;
    }
    out.push({ localIp, localPort: parseInt(m[2]!, 16), state: parseInt(m[3]!, 16) });
  }
  return out;
}

/** Whether some socket in this network namespace listens on ip:port (or the wildcard). */
export async function isListening(ip: string, port: number, procNet = '/proc/net'): Promise<boolean> {
  for (const f of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = await readFile(`${procNet}/${f}`, 'utf8');
    } catch {
      continue; // no IPv6 in this kernel/namespace
    }
    for (const e of parseProcNetTcp(text)) {
      if (e.state === TCP_LISTEN && e.localPort === port && (e.localIp === ip || e.localIp === '0.0.0.0' || e.localIp === '::')) return true;
    }
  }
  return false;
}

// ---- the supervisor -----------------------------------------------------------------------

export interface SupervisorOptions {
  gateway: { addr: string; port: number };
  /** The protected service 'ip:port' (the port watched for LISTEN). */
  service: string;
  key: Buffer;
  command: string;
  args: string[];
  heartbeatMs?: number;
  stopTimeoutMs?: number;
  /** Give up (exit 1) after this many restarts. Default: never. */
  maxRestarts?: number;
  backoff?: BackoffOptions;
  listenPollMs?: number;
  /** Stop polling for LISTEN after this long (the heartbeat keeps saying listening: false). */
  listenTimeoutMs?: number;
  /** stdio for the program. Default 'inherit'. */
  stdio?: 'inherit' | 'ignore';
  log?: Logger;
  /** For tests: the LISTEN probe. */
  probe?: (ip: string, port: number) => Promise<boolean>;
}

const REPEAT = 3;
const REPEAT_GAP_MS = 5;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Supervisor {
  readonly boot = newBootId();
  private readonly log: Logger;
  private readonly socket: dgram.Socket;
  private readonly backoff: Backoff;
  private readonly ip: string;
  private readonly port: number;
  private seq = 0;
  private generation = 0;
  private restarts = 0;
  private child: ChildProcess | null = null;
  private childPid: number | undefined;
  private childExited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;
  private childListening = false;
  private startedAt = 0;
  private stopping = false;
  /** finish() has begun (notices may still be leaving). */
  private finishing = false;
  private finished = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private resolveRun!: (code: number) => void;
  private readonly done: Promise<number>;
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly o: SupervisorOptions) {
    this.log = o.log ?? rootLogger.child({ mod: 'supervise' });
    this.backoff = new Backoff(o.backoff);
    const [ip, port] = o.service.split(':');
    this.ip = ip!;
    this.port = Number(port);
    this.socket = dgram.createSocket('udp4');
    this.socket.on('error', (err) => this.log.warn({ err: err.message }, 'notice socket error'));
    this.done = new Promise<number>((r) => (this.resolveRun = r));
  }

  /** Starts the program and resolves with the supervisor's exit code when it is done. */
  run(): Promise<number> {
    this.log.info({ boot: this.boot, service: this.o.service, gateway: `${this.o.gateway.addr}:${this.o.gateway.port}`, command: [this.o.command, ...this.o.args] }, 'supervisor starting');
    const hb = this.o.heartbeatMs ?? 100;
    this.heartbeat = setInterval(() => {
      // A program killed (or crashed) but not yet reaped is a zombie: not alive, whatever
      // `child` says yet. A zombie that exited 0 is a deliberate stop: 'stopped' follows.
      const alive = this.child !== null && this.childPid !== undefined && !diedAbnormally(this.childPid);
      this.send('heartbeat', { alive, listening: alive && this.childListening });
    }, hb);
    this.startChild();
    return this.done;
  }

  /** Graceful stop (SIGTERM/SIGINT to the supervisor). Idempotent. */
  async stop(why = 'signal'): Promise<void> {
    if (this.stopping || this.finishing) return this.done.then(() => undefined);
    this.stopping = true;
    this.log.info({ why }, 'stopping the program');
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const told = this.sendImportant('stopping', {});
    let result: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    const child = this.child;
    const exited = this.childExited;
    if (child && exited) {
      child.kill('SIGTERM');
      const timeout = this.o.stopTimeoutMs ?? 5000;
      result = await Promise.race([exited, sleep(timeout).then(() => null)]);
      if (!result) {
        this.log.warn({ pid: child.pid, timeoutMs: timeout }, 'program ignored SIGTERM: SIGKILL');
        child.kill('SIGKILL');
        result = await Promise.race([exited, sleep(2000).then(() => null)]);
      }
    }
    await told;
    const extra: Partial<Notice> = {};
    if (result?.code !== null && result?.code !== undefined) extra.exitCode = result.code;
    if (result?.signal) extra.signal = result.signal;
    await this.sendImportant('stopped', extra);
    await this.finish(0);
  }

  // ---- internals ------------------------------------------------------------------------

  private startChild(): void {
    if (this.stopping || this.finished) return;
    this.generation++;
    const gen = this.generation;
    this.childListening = false;
    this.childPid = undefined;
    this.startedAt = performance.now();
    let child: ChildProcess;
    let settle!: (r: { code: number | null; signal: NodeJS.Signals | null }) => void;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => (settle = r));
    let ended = false;
    const onEnd = (code: number | null, signal: NodeJS.Signals | null, err?: Error) => {
      if (ended) return;
      ended = true;
      settle({ code, signal });
      this.onChildEnd(gen, code, signal, err);
    };
    try {
      child = spawn(this.o.command, this.o.args, { stdio: this.o.stdio ?? 'inherit' });
    } catch (err) {
      this.child = null;
      onEnd(127, null, err as Error);
      return;
    }
    this.child = child;
    this.childExited = exited;
    child.once('spawn', () => {
      this.childPid = child.pid;
      this.log.info({ generation: gen, pid: child.pid }, gen === 1 ? 'program started' : 'program restarted');
      this.send(gen === 1 ? 'hello' : 'restarted', { alive: true });
      void this.track(this.pollListen(child, gen));
    });
    child.once('error', (err) => {
      if (this.childPid === undefined) onEnd(127, null, err);
      else this.log.warn({ err: err.message }, 'program error');
    });
    child.once('exit', (code, signal) => onEnd(code, signal));
  }

  private onChildEnd(gen: number, code: number | null, signal: NodeJS.Signals | null, err?: Error): void {
    const pid = this.childPid;
    const ranMs = performance.now() - this.startedAt;
    this.child = null;
    this.childListening = false;
    if (this.stopping || this.finishing) return; // stop() reports it
    if (code === 0 && signal === null) {
      this.log.info({ generation: gen, pid }, 'program exited normally: stopping');
      this.stopping = true;
      void this.sendImportant('stopped', { exitCode: 0 }).then(() => this.finish(0));
      return;
    }
    const extra: Partial<Notice> = {};
    if (pid !== undefined) extra.pid = pid;
    if (code !== null) extra.exitCode = code;
    if (signal !== null) extra.signal = signal;
    this.log.warn({ generation: gen, pid, exitCode: code, signal, err: err?.message, ranMs: Math.round(ranMs) }, 'program crashed');
    const told = this.sendImportant('crashed', extra);
    if (gen === 1 && err) {
      // The command cannot be started at all: no point retrying.
      this.log.error({ command: this.o.command, err: err.message }, 'cannot start the program');
      void told.then(() => this.finish(1));
      return;
    }
    if (this.o.maxRestarts !== undefined && this.restarts >= this.o.maxRestarts) {
      this.log.error({ restarts: this.restarts }, 'max restarts reached: giving up');
      void told.then(() => this.finish(1));
      return;
    }
    const delay = this.backoff.next(ranMs);
    this.restarts++;
    this.log.info({ delayMs: delay, restart: this.restarts }, 'restarting after backoff');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.startChild();
    }, delay);
  }

  /** Polls for the service port in LISTEN while this generation's program lives (bounded). */
  private async pollListen(child: ChildProcess, gen: number): Promise<void> {
    const every = this.o.listenPollMs ?? 15;
    const deadline = performance.now() + (this.o.listenTimeoutMs ?? 60_000);
    const probe = this.o.probe ?? isListening;
    while (this.child === child && this.generation === gen && !this.stopping && !this.finished) {
      if (await probe(this.ip, this.port)) {
        if (this.child !== child || this.stopping || this.finished) return;
        this.childListening = true;
        this.log.info({ generation: gen, pid: child.pid, service: this.o.service }, 'program listening');
        await this.sendImportant('listening', {});
        return;
      }
      if (performance.now() > deadline) {
        this.log.warn({ generation: gen, service: this.o.service }, 'program never listened on the service port: gave up polling');
        return;
      }
      await sleep(every);
    }
  }

  private notice(type: NoticeType, extra: Partial<Notice>): Buffer {
    const n: Notice = {
      v: 1,
      type,
      service: this.o.service,
      boot: this.boot,
      seq: ++this.seq,
      generation: this.generation,
      sentAt: Date.now(),
      ...extra,
    };
    if (n.pid === undefined && this.childPid !== undefined && this.child !== null) n.pid = this.childPid;
    return encodeNotice(n, this.o.key);
  }

  private send(type: NoticeType, extra: Partial<Notice>): void {
    if (this.finished) return;
    this.transmit(this.notice(type, extra));
  }

  /** Sends one notice REPEAT times REPEAT_GAP_MS apart (same seq). */
  private sendImportant(type: NoticeType, extra: Partial<Notice>): Promise<void> {
    if (this.finished) return Promise.resolve();
    const buf = this.notice(type, extra);
    return this.track(
      (async () => {
        for (let i = 0; i < REPEAT; i++) {
          if (i > 0) await sleep(REPEAT_GAP_MS);
          this.transmit(buf);
        }
      })(),
    );
  }

  /** Sends one datagram; tracked until the kernel has it, so finish() never closes the socket under it. */
  private transmit(buf: Buffer): void {
    if (this.finished) return;
    void this.track(
      new Promise<void>((resolve) => {
        this.socket.send(buf, this.o.gateway.port, this.o.gateway.addr, (err) => {
          if (err) this.log.debug({ err: err.message }, 'notice not sent');
          resolve();
        });
      }),
    );
  }

  private track(p: Promise<void>): Promise<void> {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  private async finish(code: number): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    // Let queued notices leave before the socket closes (sends started meanwhile are tracked too).
    const until = performance.now() + 500;
    while (this.pending.size > 0 && performance.now() < until) {
      await Promise.race([Promise.allSettled([...this.pending]), sleep(50)]);
    }
    this.finished = true;
    await new Promise<void>((r) => this.socket.close(() => r()));
    this.log.info({ code }, 'supervisor done');
    this.resolveRun(code);
  }
}

/**
 * True when /proc says the process is dying or died abnormally though it was not reaped yet
 * (see `dyingAbnormally`). A process that is gone entirely (reaped) is left to the exit
 * handler: false.
 */
export function diedAbnormally(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return false;
  }
  return dyingAbnormally(stat);
}

/** PF_EXITING in the flags of /proc/<pid>/stat (include/linux/sched.h): do_exit() has begun. */
const PF_EXITING = 0x4;

/**
 * From the text of /proc/<pid>/stat: the process is a zombie with a non-zero wait status
 * (killed by a signal or exited non-zero), or it is still exiting (PF_EXITING, field 9) with a
 * non-zero exit code (field 52, Linux ≥ 3.5). The second matters: do_exit() sets the exit code
 * and PF_EXITING before it closes the files, so the dying process's sockets send their FINs
 * while it is not a zombie yet; on a loaded machine that window lasts long enough for a
 * heartbeat to be taken in it, and an 'alive' heartbeat then would release a dead server's FIN
 * to its clients (issue 10: 36 of 50 kv clients got one). A clean exit (code 0) is a
 * deliberate stop, whose FINs are real.
 */
export function dyingAbnormally(stat: string): boolean {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).trim().split(' ');
  const status = Number(rest[49]);
  const abnormal = !Number.isFinite(status) || status !== 0;
  if (rest[0] === 'Z' || rest[0] === 'X') return abnormal;
  const flags = Number(rest[6]);
  return Number.isFinite(flags) && (flags & PF_EXITING) !== 0 && abnormal;
}
