/**
 * Demo servers. All but the random ones are deterministic: fed the same input bytes on a
 * connection, each produces the same output bytes (kv: given that connections use disjoint
 * keys), with no timestamps and no randomness: the kind of server ftcp can replay after a
 * crash. random and random-var are the opposite on purpose (issue 13): see random.ts.
 *
 *   upload    in: any bytes, then FIN      out: "<sha256 hex> <bytes>\n", FIN
 *   download  in: "GET <seed> <bytes>\n"   out: <bytes> bytes of stream(seed), FIN
 *   echo      in: "<text>\n" ...           out: "<text>\n" ... ; FIN after the client's FIN
 *   kv        in: commands (see kv.ts)     out: one response line each; FIN after client's
 *   stall     in: "Q <n> <payload>\n" ...  out: "R <payload repeated to n chars>\n" each (see
 *             stall.ts); it does not read the next request until the previous reply went
 *             into the socket, and stops reading while its output is blocked, like memcached
 *   random    in: "<tag> <id>\n" ...      out: per request, 4 KiB of fresh random bytes and a
 *             SHA-256 binding them to the request (random.ts); answered in order like stall,
 *             each reply written in two pieces a turn apart
 *   random-var                            the same, each reply length-prefixed, its length
 *             (64 B..16 KiB) picked at random by the server
 *
 * Every writer respects backpressure: a write that returns false stops the producer (or
 * pauses reading the socket) until 'drain'.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import { CHUNK_BYTES, Keystream } from './keystream.js';
import { KvStore } from './kv.js';
import { LineSplitter } from './lines.js';
import { STALL_MAX_REQUEST, stallAnswer } from './stall.js';
import { RANDOM_KINDS, RANDOM_MAX_REQUEST, randomPieces, randomReply, type RandomKind } from './random.js';

export type DemoKind = 'upload' | 'download' | 'echo' | 'kv' | 'stall' | RandomKind;
export const DEMO_KINDS: readonly DemoKind[] = ['upload', 'download', 'echo', 'kv', 'stall', ...RANDOM_KINDS];
/** The kinds whose output is a function of their input (the others: random.ts). */
export const DETERMINISTIC_KINDS: readonly DemoKind[] = DEMO_KINDS.filter((k) => !(RANDOM_KINDS as readonly string[]).includes(k));

export function isDemoKind(s: string): s is DemoKind {
  return (DEMO_KINDS as readonly string[]).includes(s);
}

export interface DemoServer {
  readonly kind: DemoKind;
  readonly host: string;
  readonly port: number;
  /** Connections currently open. */
  readonly connections: number;
  /** Closes the listener, ends every connection (destroys those still open after graceMs). */
  close(graceMs?: number): Promise<void>;
}

/** Longest request line accepted by download (bytes). */
const MAX_REQUEST_LINE = 1024;
/** Longest echo/kv line accepted; beyond it the server answers an error and closes. */
const MAX_LINE = 1 << 20;
/** Chunks written per event-loop turn before yielding. */
const TURN_CHUNKS = 16;
const GET_LINE = /^GET (\S+) (\d{1,16})\r?$/;

type Handler = (sock: net.Socket, stopping: () => boolean) => void;

export async function startDemoServer(kind: DemoKind, host: string, port: number): Promise<DemoServer> {
  if (!isDemoKind(kind)) throw new TypeError(`unknown demo kind '${String(kind)}'`);
  const store = new KvStore();
  const handler: Handler =
    kind === 'upload' ? serveUpload
    : kind === 'download' ? serveDownload
    : kind === 'echo' ? serveEcho
    : kind === 'stall' ? (s) => serveInOrder(s, STALL_MAX_REQUEST, stallAnswer, 'ERR line too long\n')
    : kind === 'random' || kind === 'random-var' ? (s) => serveInOrder(s, RANDOM_MAX_REQUEST, (line) => randomPieces(randomReply(kind, line)), '')
    : (s) => serveKv(s, store);
  const sockets = new Set<net.Socket>();
  let stopping = false;
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy()); // ECONNRESET and the like: this connection is over
    if (stopping) {
      sock.destroy();
      return;
    }
    handler(sock, () => stopping);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;
  let closed: Promise<void> | undefined;
  return {
    kind,
    host: addr.address,
    port: addr.port,
    get connections() {
      return sockets.size;
    },
    close(graceMs = 3000) {
      closed ??= (async () => {
        stopping = true;
        const listenerClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        const all = [...sockets].map((s) => new Promise<void>((resolve) => {
          if (s.destroyed) return resolve();
          s.once('close', () => resolve());
          s.end();
        }));
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([Promise.all(all), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
        clearTimeout(timer);
        for (const s of sockets) s.destroy();
        await listenerClosed;
      })();
      return closed;
    },
  };
}

/** Resolves on 'drain', or when the socket closes (then the producer sees it destroyed). */
function drained(sock: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sock.off('drain', done);
      sock.off('close', done);
      resolve();
    };
    sock.on('drain', done);
    sock.on('close', done);
  });
}

/** Pauses reading while the socket's send buffer is over its high-water mark. */
function writeOrPause(sock: net.Socket, data: Buffer | string): void {
  if (!sock.write(data)) {
    sock.pause();
    sock.once('drain', () => sock.resume());
  }
}

function serveUpload(sock: net.Socket): void {
  const h = createHash('sha256');
  let n = 0;
  sock.on('data', (b: Buffer) => {
    h.update(b);
    n += b.length;
  });
  sock.on('end', () => sock.end(`${h.digest('hex')} ${n}\n`));
}

function serveDownload(sock: net.Socket, stopping: () => boolean): void {
  const lines = new LineSplitter(MAX_REQUEST_LINE);
  let answered = false;
  const answer = (line: Buffer | null) => {
    answered = true;
    const m = line && GET_LINE.exec(line.toString('latin1'));
    const bytes = m ? Number(m[2]) : NaN;
    if (!m || !Number.isSafeInteger(bytes)) {
      sock.end('ERR bad request\n');
      return;
    }
    void stream(sock, new Keystream(m[1]!), bytes, stopping);
  };
  // Input after the request line is read and ignored, so the client's FIN is seen.
  sock.on('data', (b: Buffer) => {
    if (answered) return;
    let got: Buffer | null = null;
    const fits = lines.push(b, (line) => {
      got = line;
      return false;
    });
    if (got || !fits) answer(got);
  });
  sock.on('end', () => {
    if (!answered) answer(null);
  });
}

async function stream(sock: net.Socket, ks: Keystream, bytes: number, stopping: () => boolean): Promise<void> {
  for (let left = bytes, turn = 1; left > 0; turn += 1) {
    if (sock.destroyed || stopping()) return;
    const n = Math.min(CHUNK_BYTES, left);
    left -= n;
    if (!sock.write(ks.next(n))) await drained(sock);
    // On a fast path write() keeps returning true: yield now and then so the other
    // connections (and signals) get their turn.
    else if (turn % TURN_CHUNKS === 0) await new Promise((r) => setImmediate(r));
  }
  if (!sock.destroyed) sock.end();
}

/**
 * Echo answers each complete line with itself; a chunk's complete lines are one contiguous
 * range, written back as one subarray. An unterminated last line is dropped at the FIN.
 */
function serveEcho(sock: net.Socket): void {
  let partial: Buffer[] = [];
  let partialBytes = 0;
  sock.on('data', (b: Buffer) => {
    const last = b.lastIndexOf(10);
    if (last < 0) {
      partial.push(b);
      partialBytes += b.length;
      if (partialBytes > MAX_LINE) tooLong(sock);
      return;
    }
    if (partialBytes > 0) {
      partial.push(b.subarray(0, last + 1));
      writeOrPause(sock, Buffer.concat(partial));
      partial = [];
      partialBytes = 0;
    } else {
      writeOrPause(sock, b.subarray(0, last + 1));
    }
    if (last + 1 < b.length) {
      partial.push(b.subarray(last + 1));
      partialBytes = b.length - last - 1;
    }
  });
  sock.on('end', () => sock.end());
}

function serveKv(sock: net.Socket, store: KvStore): void {
  const lines = new LineSplitter(MAX_LINE);
  sock.on('data', (b: Buffer) => {
    const out: string[] = [];
    const ok = lines.push(b, (line) => {
      out.push(store.execute(line.toString('utf8')), '\n');
    });
    if (out.length > 0) writeOrPause(sock, out.join(''));
    if (!ok) tooLong(sock);
  });
  sock.on('end', () => sock.end());
}

/**
 * One request line at a time, memcached-style (stall, random): a request is answered only
 * once the previous reply went into the socket; when the socket's buffer is full (write()
 * returned false) the server stops both answering and reading (the kernel's receive buffer
 * fills and the window closes) until 'drain'. Bytes read but not yet answered wait in
 * `buf`. Past `maxRequest` bytes without a '\n', the server answers `tooLong` and ends.
 * An answer given in pieces (random) is written piece by piece with a turn of the event
 * loop between them, as a server that produces its output as it goes.
 */
function serveInOrder(sock: net.Socket, maxRequest: number, answer: (line: Buffer) => Buffer | Buffer[], tooLong: string): void {
  let buf: Buffer = Buffer.alloc(0);
  let off = 0;
  let blocked = false;
  let ended = false;
  let closing = false;
  /** The current answer's pieces not written yet, and a yield between two of them in progress. */
  let rest: Buffer[] = [];
  let yielding = false;
  const run = () => {
    while (!blocked && !closing && !yielding && !sock.destroyed) {
      let piece = rest.shift();
      if (piece === undefined) {
        const nl = buf.indexOf(10, off);
        if (nl < 0) {
          if (buf.length - off > maxRequest) {
            closing = true;
            sock.removeAllListeners('data');
            sock.end(tooLong);
          }
          break;
        }
        const line = buf.subarray(off, nl);
        off = nl + 1;
        const a = answer(line);
        [piece, rest] = Array.isArray(a) ? [a[0] ?? Buffer.alloc(0), a.slice(1)] : [a, []];
      }
      const fits = sock.write(piece);
      if (rest.length > 0) {
        yielding = true;
        setImmediate(() => {
          yielding = false;
          run();
        });
      }
      if (!fits) {
        blocked = true;
        sock.pause();
        sock.once('drain', () => {
          blocked = false;
          sock.resume();
          run();
        });
      }
    }
    if (ended && !blocked && !closing && !yielding && rest.length === 0) {
      closing = true;
      sock.end();
    }
  };
  sock.on('data', (b: Buffer) => {
    buf = off < buf.length ? Buffer.concat([buf.subarray(off), b]) : b;
    off = 0;
    run();
  });
  sock.on('end', () => {
    ended = true;
    run();
  });
}

function tooLong(sock: net.Socket): void {
  sock.removeAllListeners('data');
  sock.end('ERR line too long\n');
}
