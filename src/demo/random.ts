/**
 * The `random` and `random-var` demo protocols: a NON-deterministic server whose every reply
 * a client can check alone. It is the instrument of issue 13: a restarted incarnation fed
 * the same requests answers with other bytes (and, for random-var, other lengths), so a
 * recovery that splices the dead process's output with the new one's shows up at the
 * client as a reply that fails its check or as bytes that cannot be a reply.
 *
 *     request           "<tag> <id>\n"     tag: 1..32 printable characters (the client's
 *                                           seed), id: decimal; the whole line is bound
 *     reply random      body ‖ mac          RANDOM_REPLY = 4096 B in all
 *     reply random-var  len ‖ body ‖ mac    len: u32 big-endian, the reply's total length,
 *                                           picked by the SERVER in RANDOM_VAR_MIN..MAX
 *     body              fresh crypto.randomBytes, never the same twice
 *     mac               SHA-256("ftcp-random\0" ‖ request line without '\n' ‖ "\n" ‖
 *                                every reply byte before the mac), 32 B
 *
 * A reply made of the dead incarnation's first part and the new one's rest fails its mac
 * (the two bodies differ); with random-var the new incarnation also frames differently, so
 * the client reads a length out of random bytes (out of range: misframed) or a reply that
 * belongs to no request of its own. The server answers any line; more than
 * RANDOM_MAX_REQUEST bytes without a '\n' end the connection (nothing more is answered).
 *
 * The server writes each reply in two pieces with a turn of the event loop between them
 * (randomPieces), so that a kill -9 lands inside a reply.
 *
 * The client's side is RandomVerifier: pure (bytes in, a verdict out), so the unit tests
 * feed it splices made by hand.
 */
import { createHash, randomBytes, randomInt } from 'node:crypto';

export type RandomKind = 'random' | 'random-var';
export const RANDOM_KINDS: readonly RandomKind[] = ['random', 'random-var'];

export function isRandomKind(s: string): s is RandomKind {
  return (RANDOM_KINDS as readonly string[]).includes(s);
}

/** random: every reply's length. */
export const RANDOM_REPLY = 4096;
/** random-var: the bounds of a reply's length (header and mac included). */
export const RANDOM_VAR_MIN = 64;
export const RANDOM_VAR_MAX = 16_384;
/** Most bytes the server waits for a '\n' (a longer unterminated line ends the connection). */
export const RANDOM_MAX_REQUEST = 64;
export const MAC_BYTES = 32;
const LEN_BYTES = 4;
const MAC_TAG = Buffer.from('ftcp-random\0', 'latin1');
const NL = Buffer.from('\n', 'latin1');

/** The mac over a reply's bytes before it, bound to its request line (without '\n'). */
export function randomMac(request: Buffer, head: Buffer): Buffer {
  return createHash('sha256').update(MAC_TAG).update(request).update(NL).update(head).digest();
}

/**
 * A fresh reply to one request line (without '\n'). `length` is random-var's total length
 * (default: a random one, the server's choice); random ignores it.
 */
export function randomReply(kind: RandomKind, request: Buffer, length?: number): Buffer {
  const total = kind === 'random' ? RANDOM_REPLY : length ?? randomInt(RANDOM_VAR_MIN, RANDOM_VAR_MAX + 1);
  if (total < RANDOM_VAR_MIN || total > RANDOM_VAR_MAX) throw new RangeError(`reply length ${total} outside ${RANDOM_VAR_MIN}..${RANDOM_VAR_MAX}`);
  const out = Buffer.allocUnsafe(total);
  const head = kind === 'random' ? 0 : LEN_BYTES;
  if (kind === 'random-var') out.writeUInt32BE(total, 0);
  randomBytes(total - head - MAC_BYTES).copy(out, head);
  randomMac(request, out.subarray(0, total - MAC_BYTES)).copy(out, total - MAC_BYTES);
  return out;
}

/**
 * A reply cut in two at a random point, for the server to write a turn of the event loop
 * apart. Why: on kill -9 the kernel still sends what the process had written (the socket
 * closes with a FIN when no input is unread), so a server writing whole replies is cut
 * between two replies, and a fixed-length client then sees no splice at all; a server that
 * produces its output as it goes (most do) is cut inside one.
 */
export function randomPieces(reply: Buffer): Buffer[] {
  const at = randomInt(1, reply.length);
  return [reply.subarray(0, at), reply.subarray(at)];
}

/** The request line of exchange `id` on a connection with `tag` (with its '\n'). */
export function randomRequest(tag: string, id: number): Buffer {
  return Buffer.from(`${tag} ${id}\n`, 'latin1');
}

/**
 * How one connection of a random client ended, one of:
 *   ok            every reply verified, then the server's FIN with nothing left over
 *   reset         ECONNRESET (or EPIPE) after `verified` good replies and no bad one
 *   inconsistent  a reply failed its mac: a splice of two incarnations' output
 *   misframed     bytes that cannot be a reply: a length out of range, a reply no request
 *                 asked for, a partial reply at the FIN
 *   hung          the run's deadline expired
 *   error         anything else (refused, a FIN with requests unanswered, ...)
 */
export type RandomOutcome = 'ok' | 'reset' | 'inconsistent' | 'misframed' | 'hung' | 'error';
export const RANDOM_OUTCOMES: readonly RandomOutcome[] = ['ok', 'reset', 'inconsistent', 'misframed', 'hung', 'error'];

/** The verifier's failure: which outcome, at which reply (0-based), why. */
export interface RandomBad {
  outcome: 'inconsistent' | 'misframed';
  /** Index of the reply that failed (the first bad one). */
  reply: number;
  /** Stream offset (server→client) where that reply began. */
  offset: number;
  reason: string;
}

/**
 * Checks a server→client stream against the requests sent, reply by reply. expect() each
 * request before it is written; push() the bytes as they arrive; end() at the server's FIN.
 * The first failure sticks: later bytes are not looked at.
 */
export class RandomVerifier {
  /** Replies verified. */
  verified = 0;
  /** Bytes pushed. */
  bytes = 0;
  bad: RandomBad | null = null;
  private readonly requests: Buffer[] = [];
  private head = 0;
  /** The reply being assembled, its expected length (0: random-var's header not read yet). */
  private cur: Buffer = Buffer.allocUnsafe(RANDOM_VAR_MAX);
  private have = 0;
  private want: number;
  private replyStart = 0;

  constructor(readonly kind: RandomKind) {
    this.want = kind === 'random' ? RANDOM_REPLY : 0;
  }

  /** Requests sent and not answered yet. */
  get outstanding(): number {
    return this.requests.length - this.head;
  }

  /** Bytes held of a reply not complete yet. */
  get partial(): number {
    return this.have;
  }

  /** A request (with or without its '\n') is about to be sent. */
  expect(request: Buffer): void {
    this.requests.push(request.at(-1) === 10 ? request.subarray(0, -1) : request);
  }

  /** Feeds bytes; returns the failure if there is one (now or before). */
  push(b: Buffer): RandomBad | null {
    let i = 0;
    while (this.bad === null && i < b.length) {
      if (this.have === 0 && this.outstanding === 0) {
        return this.fail('misframed', `${b.length - i} B arrived with no request outstanding`);
      }
      if (this.want === 0) {
        // random-var: the 4-byte length first.
        const n = Math.min(LEN_BYTES - this.have, b.length - i);
        b.copy(this.cur, this.have, i, i + n);
        this.have += n;
        this.bytes += n;
        i += n;
        if (this.have < LEN_BYTES) break;
        const len = this.cur.readUInt32BE(0);
        if (len < RANDOM_VAR_MIN || len > RANDOM_VAR_MAX) {
          return this.fail('misframed', `reply length ${len} outside ${RANDOM_VAR_MIN}..${RANDOM_VAR_MAX}`);
        }
        this.want = len;
        continue;
      }
      const n = Math.min(this.want - this.have, b.length - i);
      b.copy(this.cur, this.have, i, i + n);
      this.have += n;
      this.bytes += n;
      i += n;
      if (this.have === this.want) this.check();
    }
    return this.bad;
  }

  /** The server's FIN: a failure if a reply is incomplete (else null; requests may be unanswered). */
  end(): RandomBad | null {
    if (this.bad === null && this.have > 0) this.fail('misframed', `the stream ended inside a reply (${this.have} B of ${this.want || '?'})`);
    return this.bad;
  }

  private check(): void {
    const reply = this.cur.subarray(0, this.want);
    const request = this.requests[this.head]!;
    const mac = randomMac(request, reply.subarray(0, this.want - MAC_BYTES));
    if (!mac.equals(reply.subarray(this.want - MAC_BYTES))) {
      this.fail('inconsistent', `reply ${this.verified} (${this.want} B) to ${JSON.stringify(request.toString('latin1'))} fails its mac`);
      return;
    }
    this.verified++;
    this.requests[this.head] = EMPTY;
    this.head++;
    if (this.head >= 1024) {
      this.requests.splice(0, this.head);
      this.head = 0;
    }
    this.replyStart = this.bytes;
    this.have = 0;
    this.want = this.kind === 'random' ? RANDOM_REPLY : 0;
  }

  private fail(outcome: RandomBad['outcome'], reason: string): RandomBad {
    this.bad ??= { outcome, reply: this.verified, offset: this.replyStart, reason };
    return this.bad;
  }
}

const EMPTY = Buffer.alloc(0);
