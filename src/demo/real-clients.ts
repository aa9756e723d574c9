/**
 * Checking clients for real third-party servers (`ftcp real-client`): memcached's text
 * protocol and HTTP/1.1 keep-alive (nginx serving static files). Like the demo clients,
 * they check every byte of every answer, but against what an unmodified server must say:
 *
 *   memcached  C connections; connection i (seed S+i) runs N operations on its own keys
 *              ("s<seed>-k<j>", j < KEYS), pipelined (at most `window` outstanding):
 *                set <key> <flags> 0 <len>   -> STORED
 *                get <key>                   -> VALUE <key> <flags> <len> <data> END  (its last set)
 *                get <key that was never set>-> END
 *              values binary (any byte, CR LF included), 1..1024 bytes, all drawn from the
 *              keystream "memcached/<seed>"; every reply byte compared with the model.
 *   http       C connections, each GETs every file of a manifest in order over ONE
 *              keep-alive connection (at most `window` requests outstanding); each answer
 *              must be 200 with Content-Length = the file's size and a body whose SHA-256 is
 *              the manifest's. writeHttpTree() makes the files and the manifest.
 *
 * After its last answer a connection half-closes and must then get the server's FIN (and
 * nothing else). Failures name what happened and how far the connection got:
 *   EARLY_EOF (the server closed first), ECONNRESET (an RST), DATA_MISMATCH / DIGEST_MISMATCH /
 *   LENGTH_MISMATCH / HTTP_STATUS / BAD_REPLY (wrong bytes), UNEXPECTED_DATA (bytes after the
 *   last answer), TIMEOUT (the run's deadline: a hang; with the time since the last byte).
 */
import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CHUNK_BYTES, Keystream } from './keystream.js';

export const REAL_KINDS = ['memcached', 'http'] as const;
export type RealKind = (typeof REAL_KINDS)[number];

export function isRealKind(s: string): s is RealKind {
  return (REAL_KINDS as readonly string[]).includes(s);
}

/** Keys per memcached connection. */
export const MEMCACHED_KEYS = 32;
/** Largest memcached value (bytes). */
export const MEMCACHED_MAX_VALUE = 1024;

export interface HttpFile {
  /** Request path, e.g. "/big.bin". */
  path: string;
  size: number;
  sha256: string;
}

export interface RealClientOptions {
  kind: RealKind;
  host: string;
  port: number;
  connections?: number;
  /** memcached: operations per connection. */
  ops?: number;
  /** http: the files to fetch, in order, on every connection. */
  files?: HttpFile[];
  /** Most requests outstanding per connection (default: memcached 32, http 1). */
  window?: number;
  seed?: number;
  timeoutMs?: number;
  /** Called every `progressMs` (and once at the end) with the totals so far. */
  onProgress?: (p: RealProgress) => void;
  progressMs?: number;
}

export interface RealProgress {
  /** Answers checked (memcached operations, http files) over all connections. */
  ops: number;
  /** What the run will check in total. */
  of: number;
  /** Bytes received over all connections. */
  bytes: number;
  /** Connections finished (passed or failed). */
  finished: number;
}

export interface RealConnReport {
  conn: number;
  ok: boolean;
  ops: number;
  of: number;
  bytesSent: number;
  bytesReceived: number;
  maxStallMs: number;
  error?: { code: string; message: string };
}

export interface RealClientReport {
  kind: RealKind;
  connections: number;
  ok: number;
  failed: number;
  allOk: boolean;
  errors: Array<{ conn: number; code: string; message: string }>;
  ops: number;
  of: number;
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
  maxStallMs: number;
  perConnection: RealConnReport[];
}

export const REAL_DEFAULT_TIMEOUT_MS = 120_000;

export async function runRealClient(o: RealClientOptions): Promise<RealClientReport> {
  const n = o.connections ?? 1;
  const seed = o.seed ?? 1;
  const timeoutMs = o.timeoutMs ?? REAL_DEFAULT_TIMEOUT_MS;
  for (const [k, v, min] of [['connections', n, 1], ['seed', seed, 0], ['timeoutMs', timeoutMs, 1]] as const) {
    if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${k} must be an integer >= ${min}, got ${v}`);
  }
  const t0 = performance.now();
  const conns: CheckedConn[] = [];
  for (let i = 0; i < n; i++) {
    let driver: Driver;
    if (o.kind === 'memcached') {
      const ops = o.ops ?? 1000;
      if (!Number.isSafeInteger(ops) || ops < 0) throw new RangeError(`ops must be an integer >= 0, got ${ops}`);
      driver = new MemcachedDriver(String(seed + i), ops, o.window ?? 32);
    } else if (o.kind === 'http') {
      if (!o.files || o.files.length === 0) throw new RangeError('http: no files to fetch');
      driver = new HttpDriver(o.files, `${o.host}:${o.port}`, o.window ?? 1);
    } else {
      throw new TypeError(`unknown kind '${String(o.kind)}'`);
    }
    conns.push(new CheckedConn(i, o.host, o.port, driver));
  }
  const progress = (): RealProgress => ({
    ops: sum(conns.map((c) => c.driver.done)),
    of: sum(conns.map((c) => c.driver.total)),
    bytes: sum(conns.map((c) => c.bytesReceived)),
    finished: conns.filter((c) => c.finished).length,
  });
  const ticker = o.onProgress ? setInterval(() => o.onProgress!(progress()), o.progressMs ?? 100) : undefined;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      const now = performance.now();
      for (const c of conns) {
        const quiet = c.lastRecvAt > 0 ? `nothing received for ${(now - c.lastRecvAt).toFixed(0)} ms` : 'nothing ever received';
        c.fail('TIMEOUT', `run deadline of ${timeoutMs} ms expired (hang): ${c.driver.done} of ${c.driver.total} answers checked, ${c.driver.afterLast ? 'waiting for the server\'s FIN' : 'waiting for answers'}; ${quiet}`);
      }
      resolve();
    }, timeoutMs);
  });
  await Promise.race([Promise.all(conns.map((c) => c.donePromise)), deadline]);
  clearTimeout(timer);
  if (ticker) clearInterval(ticker);
  o.onProgress?.(progress());
  const durationMs = performance.now() - t0;
  const perConnection = conns.map((c) => c.report());
  const ok = perConnection.filter((r) => r.ok).length;
  return {
    kind: o.kind,
    connections: n,
    ok,
    failed: n - ok,
    allOk: ok === n,
    errors: perConnection.flatMap((r) => (r.error ? [{ conn: r.conn, ...r.error }] : [])),
    ops: sum(perConnection.map((r) => r.ops)),
    of: sum(perConnection.map((r) => r.of)),
    bytesSent: sum(perConnection.map((r) => r.bytesSent)),
    bytesReceived: sum(perConnection.map((r) => r.bytesReceived)),
    durationMs: Math.round(durationMs),
    maxStallMs: Math.max(0, ...perConnection.map((r) => r.maxStallMs)),
    perConnection,
  };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

interface ConnApi {
  readonly finished: boolean;
  write(b: Buffer): void;
  /** Half-close after the last answer; the server's FIN must follow. */
  end(): void;
  fail(code: string, message: string): void;
}

interface Driver {
  /** Answers checked so far, and in all. */
  readonly done: number;
  readonly total: number;
  /** Every answer checked and the connection half-closed. */
  readonly afterLast: boolean;
  onConnect(c: ConnApi): void;
  onData(c: ConnApi, b: Buffer): void;
}

class CheckedConn implements ConnApi {
  readonly donePromise: Promise<void>;
  private resolveDone!: () => void;
  private readonly sock: net.Socket;
  bytesSent = 0;
  bytesReceived = 0;
  lastRecvAt = 0;
  private maxStall = 0;
  finished = false;
  private error?: { code: string; message: string };

  constructor(readonly conn: number, host: string, port: number, readonly driver: Driver) {
    this.donePromise = new Promise((r) => (this.resolveDone = r));
    this.sock = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
    this.sock.on('connect', () => {
      this.lastRecvAt = performance.now();
      this.driver.onConnect(this);
    });
    this.sock.on('data', (b: Buffer) => {
      if (this.finished) return;
      this.mark();
      this.bytesReceived += b.length;
      this.driver.onData(this, b);
    });
    this.sock.on('end', () => {
      if (this.finished) return;
      this.mark();
      if (!this.driver.afterLast) {
        return this.fail('EARLY_EOF', `the server closed (FIN) after ${this.driver.done} of ${this.driver.total} answers`);
      }
      this.finished = true;
      this.sock.end();
      this.resolveDone();
    });
    this.sock.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'ERROR';
      const what = code === 'ECONNRESET' ? 'connection reset (RST)' : err.message;
      this.fail(code, `${what} after ${this.driver.done} of ${this.driver.total} answers`);
    });
    this.sock.on('close', () => this.fail('CLOSED', `connection closed after ${this.driver.done} of ${this.driver.total} answers`));
  }

  private mark(): void {
    const now = performance.now();
    if (this.lastRecvAt > 0) this.maxStall = Math.max(this.maxStall, now - this.lastRecvAt);
    this.lastRecvAt = now;
  }

  write(b: Buffer): void {
    this.bytesSent += b.length;
    this.sock.write(b);
  }

  end(): void {
    this.sock.end();
  }

  fail(code: string, message: string): void {
    if (this.finished) return;
    this.finished = true;
    this.error = { code, message };
    this.sock.destroy();
    this.resolveDone();
  }

  report(): RealConnReport {
    return {
      conn: this.conn,
      ok: this.finished && !this.error,
      ops: this.driver.done,
      of: this.driver.total,
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      maxStallMs: Math.round(this.maxStall * 1000) / 1000,
      ...(this.error ? { error: this.error } : {}),
    };
  }
}

/** Printable excerpt of a buffer for an error message. */
function excerpt(b: Buffer): string {
  return JSON.stringify(b.subarray(0, 60).toString('latin1'));
}

/**
 * Expected answers, in order; arriving bytes are compared with them as they come (an answer
 * may span any number of segments, a segment any number of answers).
 */
class AnswerQueue {
  private readonly q: Buffer[] = [];
  private head = 0;
  /** Bytes of q[head] already matched. */
  private at = 0;

  get length(): number {
    return this.q.length - this.head;
  }

  push(b: Buffer): void {
    this.q.push(b);
  }

  /** Matches `b`; returns the number of answers completed, or a mismatch description. */
  consume(b: Buffer, onAnswer: () => void): string | null {
    let off = 0;
    while (off < b.length) {
      const want = this.q[this.head];
      if (want === undefined) return `${b.length - off} byte(s) beyond the last expected answer: ${excerpt(b.subarray(off))}`;
      const n = Math.min(want.length - this.at, b.length - off);
      const got = b.subarray(off, off + n);
      if (!got.equals(want.subarray(this.at, this.at + n))) {
        let i = 0;
        while (got[i] === want[this.at + i]) i++;
        return `byte ${this.at + i} of the answer differs: got ${excerpt(b.subarray(off + i))}, expected ${excerpt(want.subarray(this.at + i))}`;
      }
      off += n;
      this.at += n;
      if (this.at === want.length) {
        this.head++;
        this.at = 0;
        if (this.head > 1024) {
          this.q.splice(0, this.head);
          this.head = 0;
        }
        onAnswer();
      }
    }
    return null;
  }
}

/** The deterministic memcached conversation of one connection (see the file comment). */
export class MemcachedScript {
  private readonly ks: Keystream;
  private readonly values = new Map<number, { flags: number; data: Buffer }>();
  private n = 0;

  constructor(readonly seed: string) {
    this.ks = new Keystream(`memcached/${seed}`);
  }

  key(j: number): string {
    return `s${this.seed}-k${j}`;
  }

  /** The next request and the exact reply it must get. */
  next(): { request: Buffer; reply: Buffer } {
    const r = this.ks.next(6);
    const n = this.n++;
    const j = r[0]! % MEMCACHED_KEYS;
    if (r[1]! < 16) {
      return { request: Buffer.from(`get s${this.seed}-miss${n}\r\n`, 'latin1'), reply: Buffer.from('END\r\n', 'latin1') };
    }
    const cur = this.values.get(j);
    if (cur === undefined || r[1]! < 136) {
      const len = 1 + (r.readUInt16LE(2) % MEMCACHED_MAX_VALUE);
      const flags = r.readUInt16LE(4);
      const data = this.ks.next(len);
      this.values.set(j, { flags, data });
      return {
        request: Buffer.concat([Buffer.from(`set ${this.key(j)} ${flags} 0 ${len}\r\n`, 'latin1'), data, CRLF]),
        reply: Buffer.from('STORED\r\n', 'latin1'),
      };
    }
    return {
      request: Buffer.from(`get ${this.key(j)}\r\n`, 'latin1'),
      reply: Buffer.concat([Buffer.from(`VALUE ${this.key(j)} ${cur.flags} ${cur.data.length}\r\n`, 'latin1'), cur.data, Buffer.from('\r\nEND\r\n', 'latin1')]),
    };
  }
}

const CRLF = Buffer.from('\r\n', 'latin1');

class MemcachedDriver implements Driver {
  private readonly script: MemcachedScript;
  private readonly answers = new AnswerQueue();
  private sent = 0;
  done = 0;
  afterLast = false;

  constructor(seed: string, readonly total: number, private readonly window: number) {
    this.script = new MemcachedScript(seed);
  }

  onConnect(c: ConnApi): void {
    this.fill(c);
  }

  private fill(c: ConnApi): void {
    const batch: Buffer[] = [];
    while (this.sent < this.total && this.sent - this.done < this.window) {
      const { request, reply } = this.script.next();
      batch.push(request);
      this.answers.push(reply);
      this.sent++;
    }
    if (batch.length > 0) c.write(Buffer.concat(batch));
    if (this.done === this.total && !this.afterLast) {
      this.afterLast = true;
      c.end();
    }
  }

  onData(c: ConnApi, b: Buffer): void {
    const first = this.done;
    const bad = this.answers.consume(b, () => this.done++);
    if (bad !== null) {
      return c.fail(this.afterLast || this.answers.length === 0 ? 'UNEXPECTED_DATA' : 'DATA_MISMATCH', `operation ${this.done + 1} of ${this.total}: ${bad}`);
    }
    if (this.done > first || this.done === this.total) this.fill(c);
  }
}

/** HTTP/1.1 keep-alive: every file of the manifest, in order, each checked by SHA-256. */
class HttpDriver implements Driver {
  private sent = 0;
  done = 0;
  afterLast = false;
  private head: Buffer[] = [];
  private headBytes = 0;
  /** Body bytes still expected for the current answer, or -1 while reading its head. */
  private left = -1;
  private hash: Hash | null = null;

  constructor(private readonly files: HttpFile[], private readonly hostHeader: string, private readonly window: number) {}

  get total(): number {
    return this.files.length;
  }

  onConnect(c: ConnApi): void {
    this.fill(c);
  }

  private fill(c: ConnApi): void {
    const batch: string[] = [];
    while (this.sent < this.files.length && this.sent - this.done < this.window) {
      batch.push(`GET ${this.files[this.sent]!.path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\nUser-Agent: ftcp-real-client\r\n\r\n`);
      this.sent++;
    }
    if (batch.length > 0) c.write(Buffer.from(batch.join(''), 'latin1'));
    if (this.done === this.files.length && !this.afterLast) {
      this.afterLast = true;
      c.end();
    }
  }

  onData(c: ConnApi, b: Buffer): void {
    let off = 0;
    while (off < b.length && !c.finished) {
      if (this.done >= this.files.length) {
        return c.fail('UNEXPECTED_DATA', `${b.length - off} byte(s) after the last answer: ${excerpt(b.subarray(off))}`);
      }
      const file = this.files[this.done]!;
      if (this.left < 0) {
        // The head: up to the blank line, bounded.
        const chunk = b.subarray(off);
        this.head.push(chunk);
        this.headBytes += chunk.length;
        const all = Buffer.concat(this.head);
        const end = all.indexOf('\r\n\r\n');
        if (end < 0) {
          if (this.headBytes > 16_384) return c.fail('BAD_REPLY', `${file.path}: response head longer than 16 KiB`);
          this.head = [all];
          return;
        }
        const bad = this.startBody(all.subarray(0, end).toString('latin1'), file);
        if (bad) return c.fail(bad[0], `${file.path} (answer ${this.done + 1} of ${this.files.length}): ${bad[1]}`);
        off = b.length - (all.length - (end + 4));
        this.head = [];
        this.headBytes = 0;
      }
      const n = Math.min(this.left, b.length - off);
      this.hash!.update(b.subarray(off, off + n));
      this.left -= n;
      off += n;
      if (this.left === 0) {
        const got = this.hash!.digest('hex');
        if (got !== file.sha256) return c.fail('DIGEST_MISMATCH', `${file.path} (answer ${this.done + 1}): body SHA-256 ${got}, the file's is ${file.sha256}`);
        this.done++;
        this.left = -1;
        this.hash = null;
        this.fill(c);
      }
    }
  }

  /** Checks a response head; null when the body may follow. */
  private startBody(head: string, file: HttpFile): [string, string] | null {
    const lines = head.split('\r\n');
    const status = /^HTTP\/1\.1 (\d{3}) /.exec(lines[0]!);
    if (!status) return ['BAD_REPLY', `bad status line ${JSON.stringify(lines[0]!.slice(0, 80))}`];
    if (status[1] !== '200') return ['HTTP_STATUS', `status ${JSON.stringify(lines[0])}`];
    let length: number | null = null;
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i <= 0) return ['BAD_REPLY', `bad header line ${JSON.stringify(l.slice(0, 80))}`];
      const name = l.slice(0, i).trim().toLowerCase();
      const value = l.slice(i + 1).trim();
      if (name === 'content-length') length = /^\d+$/.test(value) ? Number(value) : NaN;
      if (name === 'transfer-encoding') return ['BAD_REPLY', `Transfer-Encoding ${value}: a static file should have a Content-Length`];
      if (name === 'connection' && value.toLowerCase() === 'close') return ['BAD_REPLY', 'Connection: close on a keep-alive connection'];
    }
    if (length === null || Number.isNaN(length)) return ['BAD_REPLY', 'no valid Content-Length'];
    if (length !== file.size) return ['LENGTH_MISMATCH', `Content-Length ${length}, the file has ${file.size} bytes`];
    this.left = length;
    this.hash = createHash('sha256');
    if (length === 0) this.hash.update(Buffer.alloc(0));
    return null;
  }
}

export interface HttpTreeOptions {
  seed: number;
  /** Size of /big.bin. */
  bigBytes: number;
  /** Number of /small/fNNNN.bin files, sizes uniform in [smallMin, smallMax]. */
  smallFiles: number;
  smallMin?: number;
  smallMax?: number;
}

/**
 * Writes the files an HTTP run fetches into `root` (/big.bin first, then the small ones) and
 * returns their manifest, in request order. Contents: the keystream "http/<seed><path>".
 */
export async function writeHttpTree(root: string, o: HttpTreeOptions): Promise<HttpFile[]> {
  const min = o.smallMin ?? 1024;
  const max = o.smallMax ?? 20 * 1024;
  if (!(Number.isSafeInteger(min) && Number.isSafeInteger(max) && min >= 0 && max >= min)) throw new RangeError(`bad small file sizes ${min}..${max}`);
  await mkdir(path.join(root, 'small'), { recursive: true });
  const sizes = new Keystream(`http-sizes/${o.seed}`);
  const files: Array<{ path: string; size: number }> = [{ path: '/big.bin', size: o.bigBytes }];
  for (let i = 0; i < o.smallFiles; i++) {
    files.push({ path: `/small/f${String(i).padStart(4, '0')}.bin`, size: min + (sizes.next(4).readUInt32LE(0) % (max - min + 1)) });
  }
  const out: HttpFile[] = [];
  for (const f of files) {
    const ks = new Keystream(`http/${o.seed}${f.path}`);
    const h = createHash('sha256');
    const fh = await open(path.join(root, f.path), 'w');
    try {
      for (let left = f.size; left > 0; ) {
        const n = Math.min(CHUNK_BYTES, left);
        const b = ks.next(n);
        h.update(b);
        await fh.write(b);
        left -= n;
      }
    } finally {
      await fh.close();
    }
    out.push({ path: f.path, size: f.size, sha256: h.digest('hex') });
  }
  return out;
}

/** Writes a manifest file for `ftcp real-client --kind http --manifest`. */
export async function writeManifest(file: string, files: HttpFile[]): Promise<void> {
  await writeFile(file, JSON.stringify({ files }, null, 1) + '\n');
}
