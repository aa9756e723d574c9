/**
 * The `stall` demo protocol: small pipelined requests, replies of a few KB, the shape of
 * memcached's get traffic. A server that answers it strictly in order and stops reading
 * while its output is blocked (server.ts, serveStall) is what issue 10 item 2 found hard
 * to rebuild: the replay fills its receive buffer while its own output is unacknowledged.
 *
 *     request   "Q <n> <payload>\n"    n: 1..STALL_MAX_REPLY, payload: 1..200 printable
 *                                      characters (spaces allowed, no '\n')
 *     reply     "R <body>\n"            body: the payload repeated, cut to n characters
 *     otherwise "ERR bad request\n"
 *
 * Deterministic: the reply is a function of the request line alone.
 */
import { Keystream } from './keystream.js';

/** Longest body a request may ask for. */
export const STALL_MAX_REPLY = 65_536;
/** Longest request line accepted (bytes, without '\n'). */
export const STALL_MAX_REQUEST = 1024;

const REQUEST = /^Q (\d{1,6}) (.+?)\r?$/s;
const ERR = Buffer.from('ERR bad request\n', 'latin1');

/** The reply to one request line (without its '\n'), with its '\n'. */
export function stallAnswer(line: Buffer): Buffer {
  if (line.length > STALL_MAX_REQUEST) return ERR;
  const m = REQUEST.exec(line.toString('latin1'));
  const n = m ? Number(m[1]) : 0;
  if (!m || n < 1 || n > STALL_MAX_REPLY) return ERR;
  const payload = Buffer.from(m[2]!, 'latin1');
  if (payload.includes(10)) return ERR;
  const out = Buffer.allocUnsafe(n + 3);
  out[0] = 0x52; // 'R'
  out[1] = 0x20;
  for (let i = 0; i < n; i += payload.length) payload.copy(out, 2 + i, 0, Math.min(payload.length, n - i));
  out[n + 2] = 10;
  return out;
}

const ALPHABET = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .', 'latin1');

/** A connection's requests (~100 B each, replies of 512..4,607 B), from its seed. */
export class StallScript {
  private readonly ks: Keystream;

  constructor(seed: string) {
    this.ks = new Keystream(`stall:${seed}`);
  }

  /** The next request and the reply it must get, both with their '\n'. */
  next(): { request: Buffer; response: Buffer } {
    const r = this.ks.next(3);
    const len = 60 + (r[0]! % 80);
    const n = 512 + (((r[1]! << 8) | r[2]!) % 4096);
    const raw = this.ks.next(len);
    const payload = Buffer.allocUnsafe(len);
    for (let i = 0; i < len; i++) payload[i] = ALPHABET[raw[i]! & 63]!;
    const request = Buffer.concat([Buffer.from(`Q ${n} `, 'latin1'), payload, Buffer.from('\n')]);
    return { request, response: stallAnswer(request.subarray(0, request.length - 1)) };
  }
}
