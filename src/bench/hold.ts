/**
 * The many-connection hold client (`scripts/bench hold`, used by `scripts/bench scale` and
 * the scale lab test): N connections to the echo demo server that stay open while
 * something happens to the server (a kill -9, a memory reading), then finish.
 *
 *   1. open    N connections, at most `concurrency` in flight at once (connecting or
 *              filling); each sends `bytes` stream bytes and checks the echo byte-exact
 *   2. ready   every connection is open and its echo complete: one line
 *              {"event":"ready",...} on stdout; then the connections sit idle
 *   3. release SIGUSR1 (or `release()`): each connection (again at most `concurrency` at
 *              once) sends `finalBytes` more, checks their echo byte-exact, half-closes,
 *              and waits for the server's FIN
 *   4. report  one JSON document: ok / failed / errors
 *
 * The stream of connection i is a window on one shared 1 MiB pattern (printable bytes, a
 * '\n' ending every LINE bytes, so the echo server answers each line whole):
 *
 *     stream_i[o] = PATTERN[(base_i + o) mod |PATTERN|],   base_i = (i * 61 * LINE) mod |PATTERN|
 *
 * so any received range is compared against the pattern directly, byte for byte, with no
 * per-connection generator state (10,000 connections cost their sockets and a few numbers).
 * Any byte that differs, arrives while idle, or any close/reset fails that connection.
 * Every phase has a deadline; a connection past it fails with TIMEOUT.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Keystream } from '../demo/keystream.js';
import { parseCli } from '../cli/args.js';
import { UsageError } from '../util/errors.js';

/** Line length of the stream (the echo server answers whole lines). */
export const LINE = 1024;
const PATTERN_BYTES = 1 << 20;

export interface HoldOptions {
  host: string;
  port: number;
  connections: number;
  /** Bytes each connection sends (and gets echoed) before ready; a multiple of LINE, 0 = idle. */
  bytes: number;
  /** Bytes each connection sends after the release; a multiple of LINE, > 0. */
  finalBytes: number;
  /** Connections connecting or exchanging at once (default 200). */
  concurrency?: number;
  /** Deadline for phase 1 (open + first echo), ms. */
  openTimeoutMs?: number;
  /** Longest wait for the release once ready, ms. */
  holdTimeoutMs?: number;
  /** Deadline for phase 3 (final exchange + close), ms. */
  finishTimeoutMs?: number;
  /** Pattern seed (default 1). */
  seed?: number;
}

export interface HoldError { conn: number; code: string; message: string }

export interface HoldReport {
  connections: number;
  bytes: number;
  finalBytes: number;
  ok: number;
  failed: number;
  allOk: boolean;
  /** Failures by code. */
  errorCodes: Record<string, number>;
  /** The first 20 failures. */
  errors: HoldError[];
  /** ms from the start: every connection open and echoed (-1: never). */
  readyMs: number;
  /** ms from the release to every connection finished. */
  finishMs: number;
  /** Bytes checked byte-exact against the pattern, over all connections. */
  bytesVerified: number;
}

export interface ReadyInfo { event: 'ready'; connections: number; failed: number; readyMs: number }

let patternCache: { seed: number; buf: Buffer } | null = null;

/** The shared pattern: keystream bytes mapped to '0'..'o' (no '\n'), '\n' at the end of every line. */
export function holdPattern(seed = 1): Buffer {
  if (patternCache?.seed === seed) return patternCache.buf;
  const buf = new Keystream(`hold-${seed}`).next(PATTERN_BYTES);
  for (let i = 0; i < buf.length; i++) buf[i] = (i % LINE === LINE - 1) ? 10 : 0x30 + (buf[i]! & 0x3f);
  patternCache = { seed, buf };
  return buf;
}

/** stream_i[from, to) (a fresh Buffer). */
export function holdStream(pattern: Buffer, conn: number, from: number, to: number): Buffer {
  const out = Buffer.allocUnsafe(to - from);
  let p = (baseOf(conn) + from) % pattern.length;
  for (let o = 0; o < out.length; ) {
    const n = Math.min(out.length - o, pattern.length - p);
    pattern.copy(out, o, p, p + n);
    o += n;
    p = 0;
  }
  return out;
}

const baseOf = (conn: number) => (conn * 61 * LINE) % PATTERN_BYTES;

/** Whether `b` equals stream_i[from, from + b.length). */
function matches(pattern: Buffer, conn: number, from: number, b: Buffer): number {
  let p = (baseOf(conn) + from) % pattern.length;
  for (let o = 0; o < b.length; ) {
    const n = Math.min(b.length - o, pattern.length - p);
    if (b.compare(pattern, p, p + n, o, o + n) !== 0) {
      for (let k = 0; k < n; k++) if (b[o + k] !== pattern[p + k]) return from + o + k;
    }
    o += n;
    p = 0;
  }
  return -1;
}

type Phase = 'connecting' | 'filling' | 'idle' | 'final' | 'closing' | 'done';

class HoldConn {
  phase: Phase = 'connecting';
  sock: net.Socket | null = null;
  recv = 0;
  error: { code: string; message: string } | null = null;
  private onStep: (() => void) | null = null;

  constructor(readonly i: number, private readonly h: Hold) {}

  /** Opens the connection and sends the first bytes; `step` runs when it is idle or failed. */
  open(step: () => void): void {
    this.onStep = step;
    const s = net.connect({ host: this.h.o.host, port: this.h.o.port, allowHalfOpen: true, noDelay: true });
    this.sock = s;
    s.on('connect', () => {
      if (this.phase !== 'connecting') return;
      if (this.h.o.bytes === 0) return this.idle();
      this.phase = 'filling';
      s.write(holdStream(this.h.pattern, this.i, 0, this.h.o.bytes));
    });
    s.on('data', (b: Buffer) => this.onData(b));
    s.on('end', () => {
      if (this.phase === 'closing' && this.recv === this.h.o.bytes + this.h.o.finalBytes) {
        this.phase = 'done';
        s.end();
        this.step();
      } else this.fail('EARLY_EOF', `server closed in phase ${this.phase} after ${this.recv} bytes`);
    });
    s.on('error', (e: NodeJS.ErrnoException) => this.fail(e.code ?? 'ERROR', e.message));
    s.on('close', () => this.fail('CLOSED', `closed in phase ${this.phase}`));
  }

  /** Sends the final bytes; `step` runs when finished or failed. */
  finish(step: () => void): void {
    this.onStep = step;
    if (this.phase !== 'idle' || this.sock === null || this.error !== null) return this.step();
    this.phase = 'final';
    const o = this.h.o;
    this.sock.write(holdStream(this.h.pattern, this.i, o.bytes, o.bytes + o.finalBytes));
  }

  private onData(b: Buffer): void {
    if (this.phase !== 'filling' && this.phase !== 'final') {
      if (this.phase !== 'done' && this.error === null) this.fail('UNEXPECTED_DATA', `${b.length} bytes in phase ${this.phase} (at ${this.recv})`);
      return;
    }
    const o = this.h.o;
    const limit = this.phase === 'filling' ? o.bytes : o.bytes + o.finalBytes;
    if (this.recv + b.length > limit) return this.fail('TOO_MUCH', `${this.recv + b.length - limit} bytes beyond ${limit}`);
    const bad = matches(this.h.pattern, this.i, this.recv, b);
    if (bad >= 0) return this.fail('DATA_MISMATCH', `byte ${bad} differs from the stream`);
    this.recv += b.length;
    this.h.verified += b.length;
    if (this.recv < limit) return;
    if (this.phase === 'filling') return this.idle();
    this.phase = 'closing';
    this.sock!.end();
  }

  private idle(): void {
    this.phase = 'idle';
    this.step();
  }

  fail(code: string, message: string): void {
    if (this.error !== null || this.phase === 'done') return;
    this.error = { code, message };
    this.sock?.destroy();
    this.step();
  }

  private step(): void {
    const f = this.onStep;
    this.onStep = null;
    f?.();
  }
}

class Hold {
  readonly pattern: Buffer;
  verified = 0;
  readonly conns: HoldConn[] = [];
  constructor(readonly o: Required<HoldOptions>) {
    this.pattern = holdPattern(o.seed);
    for (let i = 0; i < o.connections; i++) this.conns.push(new HoldConn(i, this));
  }

  /**
   * Runs `start(conn, done)` over every connection, at most `concurrency` unfinished at once;
   * past `timeoutMs`, fails the unfinished ones (TIMEOUT) and resolves.
   */
  async pool(start: (c: HoldConn, done: () => void) => void, timeoutMs: number, what: string): Promise<void> {
    const total = this.conns.length;
    let next = 0;
    let finished = 0;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      const launch = () => {
        while (next < total && next - finished < this.o.concurrency) {
          const c = this.conns[next++]!;
          let once = false;
          start(c, () => {
            if (once) return;
            once = true;
            finished++;
            if (finished === total) resolve();
            else setImmediate(launch);
          });
        }
      };
      timer = setTimeout(() => {
        for (const c of this.conns) if (c.phase !== 'idle' && c.phase !== 'done') c.fail('TIMEOUT', `${what}: deadline of ${timeoutMs} ms`);
        resolve();
      }, timeoutMs);
      if (total === 0) resolve();
      else launch();
    });
    clearTimeout(timer);
  }
}

/** A running hold: `ready` resolves once phase 1 is over; `release()` starts phase 3. */
export interface HoldRun {
  ready: Promise<ReadyInfo>;
  release(): void;
  report: Promise<HoldReport>;
}

export function startHold(opts: HoldOptions): HoldRun {
  const o: Required<HoldOptions> = {
    concurrency: 200, openTimeoutMs: 120_000, holdTimeoutMs: 600_000, finishTimeoutMs: 120_000, seed: 1, ...opts,
  };
  const int = (name: string, v: number, min: number, max: number) => {
    if (!Number.isSafeInteger(v) || v < min || v > max) throw new RangeError(`${name}: an integer in ${min}..${max}, got ${v}`);
  };
  int('connections', o.connections, 1, 60_000);
  int('bytes', o.bytes, 0, 1 << 30);
  int('finalBytes', o.finalBytes, LINE, 1 << 30);
  int('concurrency', o.concurrency, 1, 60_000);
  int('port', o.port, 1, 65535);
  if (o.bytes % LINE !== 0 || o.finalBytes % LINE !== 0) throw new RangeError(`bytes and finalBytes must be multiples of ${LINE}`);
  const h = new Hold(o);
  const t0 = performance.now();
  let releaseFn: () => void = () => {};
  const released = new Promise<void>((r) => { releaseFn = r; });
  let readyMs = -1;
  const ready = (async (): Promise<ReadyInfo> => {
    await h.pool((c, done) => c.open(done), o.openTimeoutMs, 'open');
    readyMs = performance.now() - t0;
    return { event: 'ready', connections: o.connections, failed: h.conns.filter((c) => c.error !== null).length, readyMs: Math.round(readyMs) };
  })();
  const report = (async (): Promise<HoldReport> => {
    await ready;
    let holdTimer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      released.then(() => false),
      new Promise<boolean>((r) => { holdTimer = setTimeout(() => r(true), o.holdTimeoutMs); }),
    ]);
    clearTimeout(holdTimer);
    if (timedOut) for (const c of h.conns) c.fail('TIMEOUT', `no release within ${o.holdTimeoutMs} ms`);
    const t1 = performance.now();
    await h.pool((c, done) => c.finish(done), o.finishTimeoutMs, 'finish');
    const finishMs = performance.now() - t1;
    for (const c of h.conns) if (c.phase !== 'done') c.fail('UNFINISHED', `ended in phase ${c.phase}`);
    const failedConns = h.conns.filter((c) => c.error !== null);
    const errorCodes: Record<string, number> = {};
    for (const c of failedConns) errorCodes[c.error!.code] = (errorCodes[c.error!.code] ?? 0) + 1;
    for (const c of h.conns) c.sock?.destroy();
    return {
      connections: o.connections, bytes: o.bytes, finalBytes: o.finalBytes,
      ok: o.connections - failedConns.length, failed: failedConns.length, allOk: failedConns.length === 0,
      errorCodes, errors: failedConns.slice(0, 20).map((c) => ({ conn: c.i, ...c.error! })),
      readyMs: Math.round(readyMs), finishMs: Math.round(finishMs), bytesVerified: h.verified,
    };
  })();
  return { ready, release: () => releaseFn(), report };
}

const USAGE = `usage: scripts/bench hold --connect <ip:port> [options]

Opens N connections to the echo demo server, sends --bytes on each and checks the echo,
prints {"event":"ready",...}, waits for SIGUSR1, then sends --final-bytes on each, checks
them, closes, and prints a JSON report. Exit 0 only if every connection was byte-exact.

  --connections N     (default 100)
  --bytes B           per connection before ready, a multiple of ${LINE} (default 0: idle)
  --final-bytes B     per connection after the release, a multiple of ${LINE} (default ${LINE})
  --concurrency N     connections connecting or exchanging at once (default 200)
  --open-timeout-ms, --hold-timeout-ms, --finish-timeout-ms   phase deadlines
  --seed N            pattern seed (default 1)`;

/** `scripts/bench hold ...`: the child process form. */
export async function holdMain(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    connect: { type: 'string' },
    connections: { type: 'string', default: '100' },
    bytes: { type: 'string', default: '0' },
    'final-bytes': { type: 'string', default: String(LINE) },
    concurrency: { type: 'string', default: '200' },
    'open-timeout-ms': { type: 'string', default: '120000' },
    'hold-timeout-ms': { type: 'string', default: '600000' },
    'finish-timeout-ms': { type: 'string', default: '120000' },
    seed: { type: 'string', default: '1' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(values.connect ?? '');
  if (!m) throw new UsageError(`--connect: expected <ipv4>:<port>, got '${values.connect ?? ''}'`);
  const num = (v: string | undefined, flag: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${flag}: a non-negative integer, got '${v}'`);
    return n;
  };
  let run: HoldRun;
  try {
    run = startHold({
      host: m[1]!, port: Number(m[2]), connections: num(values.connections, '--connections'), bytes: num(values.bytes, '--bytes'),
      finalBytes: num(values['final-bytes'], '--final-bytes'), concurrency: num(values.concurrency, '--concurrency'),
      openTimeoutMs: num(values['open-timeout-ms'], '--open-timeout-ms'), holdTimeoutMs: num(values['hold-timeout-ms'], '--hold-timeout-ms'),
      finishTimeoutMs: num(values['finish-timeout-ms'], '--finish-timeout-ms'), seed: num(values.seed, '--seed'),
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const onRelease = () => run.release();
  process.on('SIGUSR1', onRelease);
  try {
    process.stdout.write(JSON.stringify(await run.ready) + '\n');
    const r = await run.report;
    process.stdout.write(JSON.stringify({ event: 'report', ...r }) + '\n');
    return r.allOk ? 0 : 1;
  } finally {
    process.off('SIGUSR1', onRelease);
  }
}
