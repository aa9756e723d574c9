/**
 * Deterministic request scripts for the line-oriented demos, derived from a seed through
 * the keystream: the same (seed, connection) always yields the same requests.
 */
import { Keystream } from './keystream.js';

const ALPHABET = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .', 'latin1');

/** Longest echo line the client sends (characters, without '\n'). */
export const ECHO_MAX_LINE = 200;

/** Echo request lines: 1..200 printable characters each, returned with their '\n'. */
export class EchoScript {
  private readonly ks: Keystream;

  constructor(seed: string) {
    this.ks = new Keystream(`echo:${seed}`);
  }

  nextLine(): Buffer {
    const len = 1 + (this.ks.byte() % ECHO_MAX_LINE);
    const raw = this.ks.next(len);
    const line = Buffer.allocUnsafe(len + 1);
    for (let i = 0; i < len; i++) line[i] = ALPHABET[raw[i]! & 63]!;
    line[len] = 10;
    return line;
  }
}

/** Keys per kv connection: few, so that SET/GET/INCR/DEL meet on the same keys often. */
export const KV_KEYS_PER_CONN = 8;

/**
 * A kv connection's requests. Keys are `c<conn>:k<j>`, disjoint between connection indices.
 * The first requests SET every key, so the responses never depend on what an earlier run
 * left in the store; then a mix of SET (text or integer values), GET, INCR, DEL and the
 * occasional malformed command.
 */
export class KvScript {
  private readonly ks: Keystream;
  private index = 0;

  constructor(readonly conn: number, seed: string) {
    this.ks = new Keystream(`kv:${seed}`);
  }

  nextRequest(): string {
    const i = this.index++;
    const key = (j: number) => `c${this.conn}:k${j}`;
    if (i < KV_KEYS_PER_CONN) return `SET ${key(i)} init-${i}`;
    const r = this.ks.next(4);
    const k = key(r[1]! % KV_KEYS_PER_CONN);
    const op = r[0]! % 16;
    if (op < 3) return `SET ${k} v${r[2]} ${r[3]}`; // text value with a space
    if (op < 6) return `SET ${k} ${r[2]! - 128}`; // integer value, maybe negative
    if (op < 9) return `GET ${k}`;
    if (op < 12) return `INCR ${k}`;
    if (op < 14) return `DEL ${k}`;
    const bad = ['PING', `GET`, `SET ${k}`, `FLUSH ${k}`, `get ${k}`, `INCR ${k} 2`];
    return bad[r[2]! % bad.length]!;
  }
}
