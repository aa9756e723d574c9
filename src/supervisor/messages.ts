/**
 * Supervisor → gateway notices (DESIGN.md §4): one UDP datagram each, authenticated with a
 * shared key.
 *
 *   0        4                                   n        n+32
 *   ┌────────┬───────────────────────────────────┬─────────┐
 *   │ "FTSN" │ JSON body (UTF-8, ≤ 900 bytes)    │ HMAC    │   HMAC = HMAC-SHA256(key, bytes 0..n)
 *   └────────┴───────────────────────────────────┴─────────┘
 *
 * Body: { v:1, type, service:'ip:port', boot:'<16 hex>', seq, generation, sentAt, pid?,
 *         exitCode?, signal?, alive?, listening? }
 *
 * * `boot`: a random 64-bit id per supervisor run; `seq`: monotonic within one boot (starts
 *   at 1). Receivers drop a notice whose seq is not greater than the last seen for its boot
 *   (see liveness.ts for how old boots are bounded).
 * * `generation`: incremented at each start of the server program (1 = first start).
 * * `sentAt`: the supervisor host's wall clock (ms since the epoch).
 *
 * Decoding never throws: bad input from the wire is a named drop reason —
 * MALFORMED (too short/long, no magic, not a valid body) or FORGED (HMAC mismatch).
 *
 * Key: the shared key, its file format and DEV_KEY live with the link (src/link/key.ts):
 * the same key authenticates the log link.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const NOTICE_TYPES = ['hello', 'heartbeat', 'crashed', 'restarted', 'listening', 'stopping', 'stopped'] as const;
export type NoticeType = (typeof NOTICE_TYPES)[number];

export interface Notice {
  v: 1;
  type: NoticeType;
  /** The protected service, 'a.b.c.d:port'. */
  service: string;
  /** Random 64-bit id of this supervisor run, 16 lowercase hex digits. */
  boot: string;
  /** Monotonic per boot, ≥ 1. */
  seq: number;
  /** Number of starts of the server program so far (0 before the first start). */
  generation: number;
  /** Sender's wall clock, ms. */
  sentAt: number;
  pid?: number;
  exitCode?: number;
  signal?: string;
  /** heartbeat/hello: whether the server program is running. */
  alive?: boolean;
  /** heartbeat: whether this generation's service port has been seen in LISTEN. */
  listening?: boolean;
}

export type DecodeError = { error: 'FORGED' | 'MALFORMED' };

export const MAGIC = Buffer.from('FTSN', 'latin1');
export const TAG_LEN = 32;
export const MAX_BODY = 900;

function tag(key: Buffer, data: Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** A fresh random boot id (64 bits, hex). */
export function newBootId(): string {
  return randomBytes(8).toString('hex');
}

/** Encodes and signs a notice. Throws on an internal misuse (body too long), never on input from the wire. */
export function encodeNotice(n: Notice, key: Buffer): Buffer {
  const body: Record<string, unknown> = {
    v: 1,
    type: n.type,
    service: n.service,
    boot: n.boot,
    seq: n.seq,
    generation: n.generation,
    sentAt: n.sentAt,
  };
  for (const k of ['pid', 'exitCode', 'signal', 'alive', 'listening'] as const) if (n[k] !== undefined) body[k] = n[k];
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  if (json.length > MAX_BODY) throw new Error(`invariant violated: notice body too long (${json.length})`);
  const signed = Buffer.concat([MAGIC, json]);
  return Buffer.concat([signed, tag(key, signed)]);
}

const isInt = (x: unknown, min: number): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= min;

/** Checks the shape of an authentic body. Returns the notice or null. */
function validate(o: unknown): Notice | null {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return null;
  const r = o as Record<string, unknown>;
  if (r.v !== 1) return null;
  if (typeof r.type !== 'string' || !(NOTICE_TYPES as readonly string[]).includes(r.type)) return null;
  if (typeof r.service !== 'string' || !/^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$/.test(r.service)) return null;
  if (typeof r.boot !== 'string' || !/^[0-9a-f]{16}$/.test(r.boot)) return null;
  if (!isInt(r.seq, 1) || !isInt(r.generation, 0) || !isInt(r.sentAt, 0)) return null;
  if (r.pid !== undefined && !isInt(r.pid, 1)) return null;
  if (r.exitCode !== undefined && !isInt(r.exitCode, 0)) return null;
  if (r.signal !== undefined && (typeof r.signal !== 'string' || !/^SIG[A-Z0-9]+$/.test(r.signal))) return null;
  if (r.alive !== undefined && typeof r.alive !== 'boolean') return null;
  if (r.listening !== undefined && typeof r.listening !== 'boolean') return null;
  const n: Notice = {
    v: 1,
    type: r.type as NoticeType,
    service: r.service,
    boot: r.boot,
    seq: r.seq,
    generation: r.generation,
    sentAt: r.sentAt,
  };
  if (r.pid !== undefined) n.pid = r.pid as number;
  if (r.exitCode !== undefined) n.exitCode = r.exitCode as number;
  if (r.signal !== undefined) n.signal = r.signal as string;
  if (r.alive !== undefined) n.alive = r.alive as boolean;
  if (r.listening !== undefined) n.listening = r.listening as boolean;
  return n;
}

/** Verifies and decodes one datagram. Never throws. */
export function decodeNotice(buf: Buffer, key: Buffer): Notice | DecodeError {
  if (buf.length < MAGIC.length + 2 + TAG_LEN || buf.length > MAGIC.length + MAX_BODY + TAG_LEN) return { error: 'MALFORMED' };
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) return { error: 'MALFORMED' };
  const signed = buf.subarray(0, buf.length - TAG_LEN);
  if (!timingSafeEqual(tag(key, signed), buf.subarray(buf.length - TAG_LEN))) return { error: 'FORGED' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(signed.subarray(MAGIC.length).toString('utf8'));
  } catch {
    return { error: 'MALFORMED' };
  }
  return validate(parsed) ?? { error: 'MALFORMED' };
}

export function isDecodeError(x: Notice | DecodeError): x is DecodeError {
  return (x as DecodeError).error !== undefined;
}
