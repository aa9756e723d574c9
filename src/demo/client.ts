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
 *
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
import type { DemoKind } from './server.js';

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

  const t0 = performance.now();
  const conns: Conn[] = [];
  for (let i = 0; i < n; i++) {
    const s = String(seed + i);
    const driver =
      opts.kind === 'upload' ? new UploadDriver(s, bytes)
      : opts.kind === 'download' ? new DownloadDriver(s, bytes, opts.halfClose === true)
      : opts.kind === 'echo' ? new EchoDriver(s, lines)
      : opts.kind === 'kv' ? new KvDriver(i, s, lines)
      : null;
    if (!driver) throw new TypeError(`unknown demo kind '${String(opts.kind)}'`);
    conns.push(new Conn(i, opts.host, opts.port, driver));
  }
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
  };
}

function checkCount(name: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** What a connection can do to its socket and its verdict; given to the kind's driver. */
interface ConnApi {
  readonly finished: boolean;
  /** Records send progress (for maxStallMs) where no data arrives. */
  progress(): void;
  write(b: Buffer): boolean;
  /** SHA-256 (hex) of everything written so far. */
  sentSha256(): string;
  end(): void;
  fail(code: string, message: string): void;
  pass(): void;
}

/** One kind's conversation. The Conn does the socket, hashing, counting and timing. */
interface Driver {
  onConnect(c: ConnApi): void;
  onData(c: ConnApi, b: Buffer): void;
  /** The server's FIN. The driver must pass() or fail(). */
  onEnd(c: ConnApi): void;
  onDrain?(c: ConnApi): void;
}

class Conn implements ConnApi {
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private readonly sock: net.Socket;
  private readonly sent: Hash = createHash('sha256');
  private readonly recv: Hash = createHash('sha256');
  private bytesSent = 0;
  private bytesReceived = 0;
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

/** Pipelined request/response over lines, at most ECHO_WINDOW requests outstanding. */
abstract class LineDriver implements Driver {
  private readonly splitter = new LineSplitter(1 << 16);
  private readonly outstanding: Buffer[] = [];
  private head = 0;
  private sentCount = 0;
  private answered = 0;
  private ended = false;

  constructor(private readonly total: number) {}

  /** The next request (with '\n') and the response it must get (with '\n'). */
  protected abstract nextExchange(): { request: Buffer; response: Buffer };

  onConnect(c: ConnApi): void {
    this.fill(c);
  }

  private fill(c: ConnApi): void {
    const batch: Buffer[] = [];
    while (this.sentCount < this.total && this.sentCount - this.answered < ECHO_WINDOW) {
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
    this.fill(c);
  }

  onEnd(c: ConnApi): void {
    if (this.answered < this.total || this.splitter.buffered > 0) {
      return c.fail('EARLY_EOF', `server closed after ${this.answered} of ${this.total} responses`);
    }
    c.pass();
  }
}

class EchoDriver extends LineDriver {
  private readonly script: EchoScript;
  constructor(seed: string, lines: number) {
    super(lines);
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
  constructor(conn: number, seed: string, lines: number) {
    super(lines);
    this.script = new KvScript(conn, seed);
  }
  protected nextExchange() {
    const req = this.script.nextRequest();
    return { request: Buffer.from(req + '\n', 'utf8'), response: Buffer.from(this.model.execute(req) + '\n', 'utf8') };
  }
}
