/**
 * Clients for the demo servers. Each run opens N concurrent connections; connection i uses
 * seed S+i. Every connection hashes (SHA-256) all it sent and received and checks every
 * byte of the server's answer:
 *
 *   upload    sends B stream bytes, half-closes, expects "<sha256 of sent> <B>\n" then FIN
 *   download  sends "GET <S+i> <B>\n", compares each arriving chunk with the locally
 *             regenerated stream (so also its SHA-256), expects exactly B bytes then FIN
 *   echo      L lines, at most ECHO_WINDOW outstanding; each response must equal its request
 *   kv        L commands (KvScript), at most ECHO_WINDOW outstanding; each response must equal
 *             what the local KvStore model answers
 *   stall     L requests (StallScript, ~100 B each) written all at once, replies of 0.5-4.5 KB
 *             read late (nothing for STALL_READ_LATE_MS, then a STALL_READ_PAUSE_MS pause
 *             after every STALL_READ_BURST bytes): the server's output blocks and it stops
 *             reading, as memcached does under a pipelining client; every reply checked
 *   random    L requests "<seed> <id>\n", RANDOM_WINDOW in flight; every reply verified by
 *   random-var  its mac (random-client.ts); the connection's `random.outcome` says how it
 *             ended (ok, reset, inconsistent, misframed, hung, error)
 *
 * echo/kv with idleMs > 0: the even connections go quiet halfway (every request answered,
 * then nothing either way for idleMs) and carry on; the odd ones stay active, one request
 * at a time every ~2*idleMs/L ms, so they are still running when the idle ones wake up.
 *
 * A DemoClientControl (the CLI's --progress-ms / --control) reads the run's progress
 * (bytes moved or responses checked, of the total; idle connections) and can stop and
 * resume reading on every connection (the receive window then closes: a zero window).

 * maxStallMs is the longest gap between consecutive progress events on a connection: the
 * connect, every data arrival, the server's FIN and, for upload (where the server says
 * nothing until the end), every time the sender resumes (after a 'drain' of the send
 * buffer or a yield). It is what a user of the connection experiences as a pause.
 *
 * The run's deadline (timeoutMs) fails every unfinished connection with code TIMEOUT.
 */
import { createHash, type Hash } from 'node:crypto';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { CHUNK_BYTES, Keystream } from './keystream.js';
import { KvStore } from './kv.js';
import { LineSplitter } from './lines.js';
import { EchoScript, KvScript } from './scripts.js';
import { StallScript } from './stall.js';
import type { DemoKind } from './server.js';
import { countOutcomes, RandomDriver } from './random-client.js';
import type { ConnApi, Driver, RandomConnResult } from './driver.js';
import type { RandomOutcome } from './random.js';

/** Most requests in flight on one echo/kv connection. */
export const ECHO_WINDOW = 16;

export interface DemoClientOptions {
  kind: DemoKind;
  host: string;
  port: number;
  /** Concurrent connections (default 1). */
  connections?: number;
  /** upload/download: bytes per connection (default 1 MiB). */
  bytes?: number;
  /** echo/kv: requests per connection (default 1000). */
  lines?: number;
  /** Base seed; connection i uses seed + i (default 1). */
  seed?: number;
  /** Deadline for the whole run (default 120000). */
  timeoutMs?: number;
  /** download: shut the sending side right after the request (the server streams to a half-closed peer). */
  halfClose?: boolean;
  /** echo/kv: the even connections go idle for this long halfway (default 0: none). */
  idleMs?: number;
  /** Progress and reading control, for a caller that places crashes (the drill). */
  control?: DemoClientControl;
}

/** stall: nothing is read for this long after the connect. */
export const STALL_READ_LATE_MS = 300;
/** stall: reading pauses for STALL_READ_PAUSE_MS after every STALL_READ_BURST bytes. */
export const STALL_READ_BURST = 256 * 1024;
export const STALL_READ_PAUSE_MS = 20;

/** Where a run is: `done` of `total` units (upload/download: bytes; echo/kv/stall: responses checked). */
export interface DemoProgress {
  /** ms since the run started. */
  t: number;
  unit: 'bytes' | 'responses';
  done: number;
  total: number;
  connections: number;
  /** Connections finished (passed or failed). */
  finished: number;
  failed: number;
  /** Reading stopped by the control (pauseReading). */
  paused: boolean;
  /** Connections that go idle (idleMs), those idle now, and how long the most recent of them has been. */
  idleConns: number;
  idleNow: number;
  idleForMs: number;
  bytesSent: number;
  bytesReceived: number;
}

/**
 * The caller's handle on a run: progress() at any time, pauseReading()/resumeReading() on
 * every connection. Pass one in `control`; it attaches when the run starts.
 */
export class DemoClientControl {
  private conns: Conn[] = [];
  private t0 = 0;
  private unit: DemoProgress['unit'] = 'bytes';
  private paused = false;

  /** @internal */
  attach(conns: Conn[], t0: number, unit: DemoProgress['unit']): void {
    this.conns = conns;
    this.t0 = t0;
    this.unit = unit;
    if (this.paused) for (const c of conns) c.setPaused('control', true);
  }

  pauseReading(): void {
    this.paused = true;
    for (const c of this.conns) c.setPaused('control', true);
  }

  resumeReading(): void {
    this.paused = false;
    for (const c of this.conns) c.setPaused('control', false);
  }

  progress(): DemoProgress {
    const now = performance.now();
    let done = 0, total = 0, finished = 0, failed = 0, idleConns = 0, idleNow = 0, bytesSent = 0, bytesReceived = 0;
    let idleFor = Infinity;
    for (const c of this.conns) {
      const u = c.units();
      done += u.done;
      total += u.total;
      if (c.finished) finished++;
      if (c.failedNow) failed++;
      if (c.goesIdle) idleConns++;
      if (c.idleSince > 0) {
        idleNow++;
        idleFor = Math.min(idleFor, now - c.idleSince);
      }
      bytesSent += c.sentCount;
      bytesReceived += c.receivedCount;
    }
    return {
      t: round3(this.t0 > 0 ? now - this.t0 : 0), unit: this.unit, done, total, connections: this.conns.length, finished, failed,
      paused: this.paused, idleConns, idleNow, idleForMs: idleNow > 0 ? Math.round(idleFor) : 0, bytesSent, bytesReceived,
    };
  }
}

export interface DemoConnError {
  conn: number;
  code: string;
  message: string;
}

export interface DemoConnReport {
  conn: number;
  ok: boolean;
  sentSha256: string;
  recvSha256: string;
  bytesSent: number;
  bytesReceived: number;
  error?: { code: string; message: string };
  maxStallMs: number;
  /** random/random-var: how the connection ended, replies verified, the first bad one. */
  random?: RandomConnResult;
}

export interface DemoClientReport {
  kind: DemoKind;
  /** Number of connections run. */
  connections: number;
  /** Number of connections that passed every check. */
  ok: number;
  /** Number of connections that failed. */
  failed: number;
  /** True when every connection passed (ok === connections). */
  allOk: boolean;
  errors: DemoConnError[];
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
  /** (bytesSent + bytesReceived) * 8 / duration, in 10^6 bit/s. */
  throughputMbps: number;
  perConnection: DemoConnReport[];
  /** random/random-var: connections per outcome (a reset is not judged here: the drill does). */
  outcomes?: Record<RandomOutcome, number>;
}

export const DEFAULT_BYTES = 1 << 20;
export const DEFAULT_LINES = 1000;
export const DEFAULT_SEED = 1;
export const DEFAULT_TIMEOUT_MS = 120_000;

export async function runDemoClient(opts: DemoClientOptions): Promise<DemoClientReport> {
  const n = opts.connections ?? 1;
  const bytes = opts.bytes ?? DEFAULT_BYTES;
  const lines = opts.lines ?? DEFAULT_LINES;
  const seed = opts.seed ?? DEFAULT_SEED;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  checkCount('connections', n, 1);
  checkCount('bytes', bytes, 0);
  checkCount('lines', lines, 0);
  checkCount('seed', seed, 0);
  checkCount('timeoutMs', timeoutMs, 1);
  const idleMs = opts.idleMs ?? 0;
  checkCount('idleMs', idleMs, 0);
  if (idleMs > 0 && opts.kind !== 'echo' && opts.kind !== 'kv') throw new RangeError(`idleMs applies to echo and kv, not ${opts.kind}`);

  const t0 = performance.now();
  const conns: Conn[] = [];
  for (let i = 0; i < n; i++) {
    const s = String(seed + i);
    const idle: LinePace = idleMs === 0 ? { kind: 'window' } : i % 2 === 0 ? { kind: 'idle', ms: idleMs } : { kind: 'paced', gapMs: Math.max(1, Math.round((2 * idleMs) / Math.max(1, lines))) };
    const driver =
      opts.kind === 'upload' ? new UploadDriver(s, bytes)
      : opts.kind === 'download' ? new DownloadDriver(s, bytes, opts.halfClose === true)
      : opts.kind === 'echo' ? new EchoDriver(s, lines, idle)
      : opts.kind === 'kv' ? new KvDriver(i, s, lines, idle)
      : opts.kind === 'stall' ? new StallDriver(s, lines)
      : opts.kind === 'random' || opts.kind === 'random-var' ? new RandomDriver(opts.kind, s, lines)
      : null;
    if (!driver) throw new TypeError(`unknown demo kind '${String(opts.kind)}'`);
    conns.push(new Conn(i, opts.host, opts.port, driver));
  }
  opts.control?.attach(conns, t0, opts.kind === 'upload' || opts.kind === 'download' ? 'bytes' : 'responses');
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      for (const c of conns) c.fail('TIMEOUT', `run deadline of ${timeoutMs} ms expired`);
      resolve();
    }, timeoutMs);
  });
  await Promise.race([Promise.all(conns.map((c) => c.done)), deadline]);
  clearTimeout(timer);
  const durationMs = performance.now() - t0;

  const perConnection = conns.map((c) => c.report());
  const errors = perConnection.flatMap((r) => (r.error ? [{ conn: r.conn, ...r.error }] : []));
  const bytesSent = sum(perConnection.map((r) => r.bytesSent));
  const bytesReceived = sum(perConnection.map((r) => r.bytesReceived));
  const ok = perConnection.filter((r) => r.ok).length;
  const randoms = perConnection.flatMap((r) => (r.random ? [r.random] : []));
  return {
    kind: opts.kind,
    connections: n,
    ok,
    failed: n - ok,
    allOk: ok === n,
    errors,
    bytesSent,
    bytesReceived,
    durationMs: round3(durationMs),
    throughputMbps: Math.round(((bytesSent + bytesReceived) * 8) / (durationMs * 1000) * 100) / 100,
    perConnection,
    ...(randoms.length > 0 ? { outcomes: countOutcomes(randoms) } : {}),
  };
}

function checkCount(name: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const round3 = (x: number) => Math.round(x * 1000) / 1000;

class Conn implements ConnApi {
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private readonly sock: net.Socket;
  private readonly sent: Hash = createHash('sha256');
  private readonly recv: Hash = createHash('sha256');
  private bytesSent = 0;
  private bytesReceived = 0;
  private readonly pausedBy = new Set<string>();
  /** performance.now() when it went idle on purpose; 0: not idle. */
  idleSince = 0;
  private lastEvent = 0;
  private maxStall = 0;
  finished = false;
  private error?: { code: string; message: string };
  private digests?: { sent: string; recv: string };

  constructor(readonly conn: number, host: string, port: number, private readonly driver: Driver) {
    this.done = new Promise((r) => (this.resolveDone = r));
    this.sock = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
    this.sock.on('connect', () => {
      this.lastEvent = performance.now();
      this.driver.onConnect(this);
    });
    this.sock.on('data', (b: Buffer) => {
      if (this.finished) return;
      this.progress();
      this.recv.update(b);
      this.bytesReceived += b.length;
      this.driver.onData(this, b);
    });
    this.sock.on('end', () => {
      if (this.finished) return;
      this.progress();
      this.driver.onEnd(this);
    });
    this.sock.on('drain', () => {
      if (this.finished) return;
      this.driver.onDrain?.(this);
    });
    this.sock.on('error', (err: NodeJS.ErrnoException) => this.fail(err.code ?? 'ERROR', err.message));
    this.sock.on('close', () => this.fail('CLOSED', 'connection closed before the conversation ended'));
  }

  get sentCount(): number {
    return this.bytesSent;
  }

  get receivedCount(): number {
    return this.bytesReceived;
  }

  get failedNow(): boolean {
    return this.error !== undefined;
  }

  get goesIdle(): boolean {
    return this.driver.goesIdle === true;
  }

  units(): { done: number; total: number } {
    return this.driver.units(this);
  }

  flushed(): number {
    return this.bytesSent - (this.sock.writableLength ?? 0);
  }

  setPaused(why: string, on: boolean): void {
    if (on) this.pausedBy.add(why);
    else this.pausedBy.delete(why);
    if (this.finished) return;
    if (this.pausedBy.size > 0) this.sock.pause();
    else this.sock.resume();
  }

  setIdle(on: boolean): void {
    this.idleSince = on ? performance.now() : 0;
  }

  progress(): void {
    const now = performance.now();
    if (this.lastEvent > 0) this.maxStall = Math.max(this.maxStall, now - this.lastEvent);
    this.lastEvent = now;
  }

  write(b: Buffer): boolean {
    this.sent.update(b);
    this.bytesSent += b.length;
    return this.sock.write(b);
  }

  sentSha256(): string {
    return this.sent.copy().digest('hex');
  }

  end(): void {
    this.sock.end();
  }

  pass(): void {
    this.finish();
  }

  fail(code: string, message: string): void {
    if (this.finished) return;
    this.error = { code, message };
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.idleSince = 0;
    this.driver.onFinish?.();
    this.digests = { sent: this.sent.digest('hex'), recv: this.recv.digest('hex') };
    if (this.error) this.sock.destroy();
    else this.sock.end(); // the server has sent its FIN; complete the close
    this.resolveDone();
  }

  report(): DemoConnReport {
    const d = this.digests!;
    return {
      conn: this.conn,
      ok: !this.error,
      sentSha256: d.sent,
      recvSha256: d.recv,
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      ...(this.error ? { error: this.error } : {}),
      maxStallMs: round3(this.maxStall),
      ...(this.driver.result ? { random: this.driver.result(this.error) } : {}),
    };
  }
}

/** Chunks written per event-loop turn before yielding. */
const TURN_CHUNKS = 16;

/** Small answers (upload's digest line) are collected whole, up to this many bytes. */
const MAX_REPLY = 256;

class UploadDriver implements Driver {
  private readonly ks: Keystream;
  private left: number;
  private ended = false;
  private reply: Buffer[] = [];
  private replyBytes = 0;

  constructor(seed: string, private readonly bytes: number) {
    this.ks = new Keystream(seed);
    this.left = bytes;
  }

  units(c: ConnApi) {
    return { done: c.flushed(), total: this.bytes };
  }

  onConnect(c: ConnApi): void {
    this.pump(c);
  }

  onDrain(c: ConnApi): void {
    this.pump(c);
  }

  /**
   * Writes until the socket's buffer is full ('drain' resumes) or a turn's quota is written
   * (setImmediate resumes): on a fast path write() keeps returning true, and one
   * synchronous loop would starve the other connections and the deadline timer.
   */
  private pump(c: ConnApi): void {
    if (c.finished) return;
    c.progress();
    for (let turn = 0; this.left > 0; turn += 1) {
      if (turn === TURN_CHUNKS) {
        setImmediate(() => this.pump(c));
        return;
      }
      const n = Math.min(CHUNK_BYTES, this.left);
      this.left -= n;
      if (!c.write(this.ks.next(n))) return;
    }
    if (!this.ended) {
      this.ended = true;
      c.end();
    }
  }

  onData(c: ConnApi, b: Buffer): void {
    this.reply.push(b);
    this.replyBytes += b.length;
    if (this.replyBytes > MAX_REPLY) c.fail('BAD_REPLY', `reply longer than ${MAX_REPLY} bytes`);
  }

  onEnd(c: ConnApi): void {
    if (!this.ended || this.left > 0) {
      return c.fail('EARLY_EOF', `server closed after ${this.bytes - this.left} of ${this.bytes} bytes were sent`);
    }
    const text = Buffer.concat(this.reply).toString('latin1');
    const m = /^([0-9a-f]{64}) (\d+)\n$/.exec(text);
    if (!m) return c.fail(text.length === 0 ? 'EARLY_EOF' : 'BAD_REPLY', `unexpected reply ${JSON.stringify(text.slice(0, 100))}`);
    const want = c.sentSha256();
    if (Number(m[2]) !== this.bytes) return c.fail('LENGTH_MISMATCH', `server counted ${m[2]} bytes, client sent ${this.bytes}`);
    if (m[1] !== want) return c.fail('DIGEST_MISMATCH', `server digest ${m[1]} != client digest ${want}`);
    c.pass();
  }
}

class DownloadDriver implements Driver {
  private readonly expected: Keystream;
  private got = 0;

  constructor(private readonly seed: string, private readonly bytes: number, private readonly halfClose = false) {
    this.expected = new Keystream(seed);
  }

  units() {
    return { done: this.got, total: this.bytes };
  }

  onConnect(c: ConnApi): void {
    c.write(Buffer.from(`GET ${this.seed} ${this.bytes}\n`, 'latin1'));
    if (this.halfClose) c.end();
  }

  onData(c: ConnApi, b: Buffer): void {
    if (this.got + b.length > this.bytes) {
      return c.fail('LENGTH_MISMATCH', `server sent more than the ${this.bytes} bytes requested`);
    }
    // Byte-for-byte against the regenerated stream: equal bytes, hence equal SHA-256,
    // and a mismatch is reported at its offset.
    const want = this.expected.next(b.length);
    if (!want.equals(b)) {
      let i = 0;
      while (want[i] === b[i]) i++;
      return c.fail('DATA_MISMATCH', `byte ${this.got + i} differs from stream(${this.seed})`);
    }
    this.got += b.length;
  }

  onEnd(c: ConnApi): void {
    if (this.got !== this.bytes) return c.fail('EARLY_EOF', `server closed after ${this.got} of ${this.bytes} bytes`);
    c.pass();
  }
}

/**
 * How a line connection sends: 'window' keeps ECHO_WINDOW requests outstanding; 'idle'
 * does the same but halfway stops until every request is answered, stays quiet for `ms`,
 * then carries on; 'paced' sends one request at a time, `gapMs` after the last answer.
 */
type LinePace = { kind: 'window' } | { kind: 'idle'; ms: number } | { kind: 'paced'; gapMs: number };

/** Pipelined request/response over lines (see LinePace). */
abstract class LineDriver implements Driver {
  private readonly splitter = new LineSplitter(1 << 16);
  private readonly outstanding: Buffer[] = [];
  private head = 0;
  private sentCount = 0;
  private answered = 0;
  private ended = false;
  /** 'idle': halfway point; the idle phase: before, in, after. */
  private readonly idleAt: number;
  private idlePhase: 'before' | 'in' | 'after' = 'before';
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly total: number, private readonly pace: LinePace = { kind: 'window' }) {
    this.idleAt = pace.kind === 'idle' ? Math.floor(total / 2) : -1;
  }

  get goesIdle(): boolean {
    return this.pace.kind === 'idle';
  }

  units() {
    return { done: this.answered, total: this.total };
  }

  onFinish(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The next request (with '\n') and the response it must get (with '\n'). */
  protected abstract nextExchange(): { request: Buffer; response: Buffer };

  onConnect(c: ConnApi): void {
    this.fill(c);
  }

  private fill(c: ConnApi): void {
    if (c.finished || this.timer !== null) return;
    if (this.idlePhase === 'before' && this.answered === this.idleAt && this.sentCount === this.idleAt && this.idleAt < this.total) {
      // Every request so far answered: nothing moves either way for a while.
      const ms = (this.pace as { ms: number }).ms;
      this.idlePhase = 'in';
      c.setIdle(true);
      this.timer = setTimeout(() => {
        this.timer = null;
        this.idlePhase = 'after';
        c.setIdle(false);
        c.progress();
        this.fill(c);
      }, ms);
      return;
    }
    const window = this.pace.kind === 'paced' ? 1 : ECHO_WINDOW;
    const limit = this.idlePhase === 'before' && this.idleAt >= 0 ? this.idleAt : this.total;
    const batch: Buffer[] = [];
    while (this.sentCount < limit && this.sentCount - this.answered < window) {
      const { request, response } = this.nextExchange();
      batch.push(request);
      this.outstanding.push(response);
      this.sentCount++;
    }
    if (batch.length > 0) c.write(batch.length === 1 ? batch[0]! : Buffer.concat(batch));
    if (this.answered === this.total && !this.ended) {
      this.ended = true;
      c.end();
    }
  }

  onData(c: ConnApi, b: Buffer): void {
    let failed = false;
    const fits = this.splitter.push(b, (line) => {
      if (this.answered >= this.sentCount) {
        failed = true;
        c.fail('UNEXPECTED_DATA', `response line ${this.answered + 1} arrived without a request`);
        return false;
      }
      const want = this.outstanding[this.head]!;
      if (line.length !== want.length - 1 || !want.subarray(0, line.length).equals(line)) {
        failed = true;
        const got = JSON.stringify(line.subarray(0, 80).toString('latin1'));
        const exp = JSON.stringify(want.subarray(0, Math.min(80, want.length - 1)).toString('latin1'));
        c.fail('DATA_MISMATCH', `response ${this.answered + 1}: got ${got}, expected ${exp}`);
        return false;
      }
      this.head++;
      this.answered++;
      if (this.head > 1024) {
        this.outstanding.splice(0, this.head);
        this.head = 0;
      }
    });
    if (failed) return;
    if (!fits) return c.fail('BAD_REPLY', 'response line too long');
    if (this.pace.kind === 'paced' && this.answered < this.total && this.answered === this.sentCount) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.fill(c);
      }, this.pace.gapMs);
      return;
    }
    this.fill(c);
  }

  onEnd(c: ConnApi): void {
    if (this.answered < this.total || this.splitter.buffered > 0) {
      return c.fail('EARLY_EOF', `server closed after ${this.answered} of ${this.total} responses`);
    }
    c.pass();
  }
}

/**
 * stall: every request written at once (Node buffers what the kernel does not take), the
 * replies read late and in bursts; each reply compared with what the request asked for.
 */
class StallDriver implements Driver {
  private readonly script: StallScript;
  private readonly splitter = new LineSplitter(1 << 17);
  private readonly expected: Buffer[] = [];
  private answered = 0;
  private ended = false;
  private sinceBurst = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(seed: string, private readonly total: number) {
    this.script = new StallScript(seed);
  }

  units() {
    return { done: this.answered, total: this.total };
  }

  onFinish(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private pauseFor(c: ConnApi, ms: number): void {
    c.setPaused('late', true);
    this.timer = setTimeout(() => {
      this.timer = null;
      c.setPaused('late', false);
    }, ms);
  }

  onConnect(c: ConnApi): void {
    this.pauseFor(c, STALL_READ_LATE_MS);
    const batch: Buffer[] = [];
    for (let i = 0; i < this.total; i++) {
      const { request, response } = this.script.next();
      batch.push(request);
      this.expected.push(response);
    }
    if (batch.length > 0) c.write(Buffer.concat(batch));
  }

  onData(c: ConnApi, b: Buffer): void {
    this.sinceBurst += b.length;
    let failed = false;
    const fits = this.splitter.push(b, (line) => {
      if (this.answered >= this.total) {
        failed = true;
        c.fail('UNEXPECTED_DATA', `reply ${this.answered + 1} arrived without a request`);
        return false;
      }
      const want = this.expected[this.answered]!;
      if (line.length !== want.length - 1 || !want.subarray(0, line.length).equals(line)) {
        failed = true;
        const got = JSON.stringify(line.subarray(0, 60).toString('latin1'));
        const exp = JSON.stringify(want.subarray(0, 60).toString('latin1'));
        c.fail('DATA_MISMATCH', `reply ${this.answered + 1} (${line.length} B): got ${got}..., expected ${exp}... (${want.length - 1} B)`);
        return false;
      }
      this.expected[this.answered] = EMPTY;
      this.answered++;
    });
    if (failed) return;
    if (!fits) return c.fail('BAD_REPLY', 'reply line too long');
    if (this.answered === this.total && !this.ended) {
      this.ended = true;
      c.end();
    }
    if (this.sinceBurst >= STALL_READ_BURST && this.timer === null && this.answered < this.total) {
      this.sinceBurst = 0;
      this.pauseFor(c, STALL_READ_PAUSE_MS);
    }
  }

  onEnd(c: ConnApi): void {
    if (this.answered < this.total || this.splitter.buffered > 0) {
      return c.fail('EARLY_EOF', `server closed after ${this.answered} of ${this.total} replies`);
    }
    c.pass();
  }
}

const EMPTY = Buffer.alloc(0);

class EchoDriver extends LineDriver {
  private readonly script: EchoScript;
  constructor(seed: string, lines: number, pace?: LinePace) {
    super(lines, pace);
    this.script = new EchoScript(seed);
  }
  protected nextExchange() {
    const line = this.script.nextLine();
    return { request: line, response: line };
  }
}

class KvDriver extends LineDriver {
  private readonly script: KvScript;
  private readonly model = new KvStore();
  constructor(conn: number, seed: string, lines: number, pace?: LinePace) {
    super(lines, pace);
    this.script = new KvScript(conn, seed);
  }
  protected nextExchange() {
    const req = this.script.nextRequest();
    return { request: Buffer.from(req + '\n', 'utf8'), response: Buffer.from(this.model.execute(req) + '\n', 'utf8') };
  }
}
