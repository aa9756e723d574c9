/**
 * Link-layer frame: the one datagram format of the log link protocol (DESIGN.md §6,
 * seed 000). Every UDP datagram between two link endpoints is exactly one frame.
 *
 *   0       1       2       3       4
 *   +-------+-------+-------+-------+
 *   |version| flags |pathId | rsvd  |   version = 1; rsvd = 0
 *   +-------+-------+-------+-------+
 *   |          srcBoot (u32)        |   sender's session/boot id (random, never 0)
 *   |          dstBoot (u32)        |   sender's view of the receiver's boot id (0 = unknown)
 *   |          pktHi   (u32)        |   per-session datagram counter, 64 bits, never reused:
 *   |          pktLo   (u32)        |     the anti-replay number (WireGuard-style window)
 *   |          seq     (u32)        |   DATA: this frame's sequence number
 *   |          ack     (u32)        |   ACK flag: last in-order seq received (cumulative)
 *   |          base    (u32)        |   DATA: first seq of the sender's current numbering
 *   |          rejLast (u32)        |   REJECT: last in-order seq received
 *   |          rejCount(u32)        |   REJECT: length of the gap after rejLast (seqs missing)
 *   |          rsFrom  (u32)        |   receiver's latest resynchronisation: first seq skipped
 *   |          rsCount (u32)        |     and how many were skipped
 *   +---------------+---------------+
 *   |  rsGen (u16)  | payloadLen u16|   rsGen counts the receiver's resyncs (mod 2^16)
 *   +---------------+---------------+
 *   |          payload ...          |   DATA: one chunk of a message; REJECT: u32 highest seq
 *   |                               |     held, then u32 start + u32 count per gap (selective)
 *   +-------------------------------+
 *   |  HMAC-SHA256(key, all above),  |
 *   |  truncated to 16 bytes         |
 *   +-------------------------------+
 *
 * All integers big-endian. Sequence numbers are 32-bit serial numbers compared only
 * through src/wire/seq.ts.
 *
 * Flags: DATA (carries a sequenced chunk), ACK (the ack field is valid: the sender is
 * synchronised to the receiver's numbering), REJECT (FIG. 5 step 545 / FIG. 6 step 620),
 * CHECK and CHECK_REPLY (FIG. 7 connectivity), RESET (FIG. 4 step 330: the sender has
 * restarted its numbering at `base`; the receiver resynchronises to it), CHUNK_FIRST and
 * CHUNK_LAST (a message split over several DATA frames; a small message has both).
 *
 * `decodeFrame` never throws: bad input yields a named drop reason that the caller
 * counts (STYLE.md 6). `encodeFrame` writes a fresh Buffer.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Seq } from '../wire/seq.js';

export const FRAME_VERSION = 1;
export const HEADER_LEN = 52;
export const MAC_LEN = 16;
export const FRAME_OVERHEAD = HEADER_LEN + MAC_LEN;
export const MAX_PAYLOAD = 0xffff;

export const F_DATA = 0x01;
export const F_ACK = 0x02;
export const F_REJECT = 0x04;
export const F_CHECK = 0x08;
export const F_CHECK_REPLY = 0x10;
export const F_RESET = 0x20;
export const F_CHUNK_FIRST = 0x40;
export const F_CHUNK_LAST = 0x80;

/** Offsets of the header fields. */
export const OFF = {
  version: 0,
  flags: 1,
  pathId: 2,
  reserved: 3,
  srcBoot: 4,
  dstBoot: 8,
  pktHi: 12,
  pktLo: 16,
  seq: 20,
  ack: 24,
  base: 28,
  rejLast: 32,
  rejCount: 36,
  rsFrom: 40,
  rsCount: 44,
  rsGen: 48,
  payloadLen: 50,
} as const;

/** A decoded frame (small plain object; the payload is a view into the datagram). */
export interface Frame {
  flags: number;
  pathId: number;
  srcBoot: number;
  dstBoot: number;
  /** Anti-replay datagram number (< 2^53). */
  pkt: number;
  seq: Seq;
  ack: Seq;
  base: Seq;
  rejLast: Seq;
  rejCount: number;
  rsFrom: Seq;
  rsCount: number;
  rsGen: number;
  payload: Buffer;
}

export type DecodeDrop = 'short' | 'version' | 'length' | 'reserved' | 'zero-boot' | 'mac';

export type DecodeResult = { ok: true; frame: Frame } | { ok: false; reason: DecodeDrop };

const TWO32 = 0x1_0000_0000;

function mac(key: Buffer, bytes: Buffer): Buffer {
  return createHmac('sha256', key).update(bytes).digest().subarray(0, MAC_LEN);
}

/** Encode and authenticate a frame. Invariant violations (a bad field) throw. */
export function encodeFrame(key: Buffer, f: Frame): Buffer {
  const len = f.payload.length;
  if (len > MAX_PAYLOAD) throw new RangeError(`frame payload ${len} > ${MAX_PAYLOAD}`);
  const buf = Buffer.allocUnsafe(HEADER_LEN + len + MAC_LEN);
  buf.writeUInt8(FRAME_VERSION, OFF.version);
  buf.writeUInt8(f.flags & 0xff, OFF.flags);
  buf.writeUInt8(f.pathId & 0xff, OFF.pathId);
  buf.writeUInt8(0, OFF.reserved);
  buf.writeUInt32BE(f.srcBoot >>> 0, OFF.srcBoot);
  buf.writeUInt32BE(f.dstBoot >>> 0, OFF.dstBoot);
  buf.writeUInt32BE(Math.floor(f.pkt / TWO32) >>> 0, OFF.pktHi);
  buf.writeUInt32BE(f.pkt % TWO32 >>> 0, OFF.pktLo);
  buf.writeUInt32BE(f.seq >>> 0, OFF.seq);
  buf.writeUInt32BE(f.ack >>> 0, OFF.ack);
  buf.writeUInt32BE(f.base >>> 0, OFF.base);
  buf.writeUInt32BE(f.rejLast >>> 0, OFF.rejLast);
  buf.writeUInt32BE(f.rejCount >>> 0, OFF.rejCount);
  buf.writeUInt32BE(f.rsFrom >>> 0, OFF.rsFrom);
  buf.writeUInt32BE(f.rsCount >>> 0, OFF.rsCount);
  buf.writeUInt16BE(f.rsGen & 0xffff, OFF.rsGen);
  buf.writeUInt16BE(len, OFF.payloadLen);
  f.payload.copy(buf, HEADER_LEN);
  mac(key, buf.subarray(0, HEADER_LEN + len)).copy(buf, HEADER_LEN + len);
  return buf;
}

/**
 * Check and parse a datagram. The MAC is checked first (a forged datagram is reported
 * as 'mac' whatever else is wrong with it, once its length is plausible).
 */
export function decodeFrame(key: Buffer, dg: Buffer): DecodeResult {
  if (dg.length < FRAME_OVERHEAD) return { ok: false, reason: 'short' };
  const len = dg.readUInt16BE(OFF.payloadLen);
  if (dg.length !== HEADER_LEN + len + MAC_LEN) return { ok: false, reason: 'length' };
  const body = dg.subarray(0, HEADER_LEN + len);
  const got = dg.subarray(HEADER_LEN + len);
  if (!timingSafeEqual(mac(key, body), got)) return { ok: false, reason: 'mac' };
  if (dg.readUInt8(OFF.version) !== FRAME_VERSION) return { ok: false, reason: 'version' };
  if (dg.readUInt8(OFF.reserved) !== 0) return { ok: false, reason: 'reserved' };
  const srcBoot = dg.readUInt32BE(OFF.srcBoot);
  if (srcBoot === 0) return { ok: false, reason: 'zero-boot' };
  return {
    ok: true,
    frame: {
      flags: dg.readUInt8(OFF.flags),
      pathId: dg.readUInt8(OFF.pathId),
      srcBoot,
      dstBoot: dg.readUInt32BE(OFF.dstBoot),
      pkt: dg.readUInt32BE(OFF.pktHi) * TWO32 + dg.readUInt32BE(OFF.pktLo),
      seq: dg.readUInt32BE(OFF.seq) as Seq,
      ack: dg.readUInt32BE(OFF.ack) as Seq,
      base: dg.readUInt32BE(OFF.base) as Seq,
      rejLast: dg.readUInt32BE(OFF.rejLast) as Seq,
      rejCount: dg.readUInt32BE(OFF.rejCount),
      rsFrom: dg.readUInt32BE(OFF.rsFrom) as Seq,
      rsCount: dg.readUInt32BE(OFF.rsCount),
      rsGen: dg.readUInt16BE(OFF.rsGen),
      payload: dg.subarray(HEADER_LEN, HEADER_LEN + len),
    },
  };
}

const EMPTY = Buffer.alloc(0);

/** A frame with every field zero and an empty payload (a base for building frames). */
export function blankFrame(): Frame {
  return {
    flags: 0,
    pathId: 0,
    srcBoot: 0,
    dstBoot: 0,
    pkt: 0,
    seq: 0 as Seq,
    ack: 0 as Seq,
    base: 0 as Seq,
    rejLast: 0 as Seq,
    rejCount: 0,
    rsFrom: 0 as Seq,
    rsCount: 0,
    rsGen: 0,
    payload: EMPTY,
  };
}

/** Flag names, for logs and test failure messages. */
export function flagNames(flags: number): string {
  const names: string[] = [];
  const all: [number, string][] = [
    [F_DATA, 'DATA'],
    [F_ACK, 'ACK'],
    [F_REJECT, 'REJECT'],
    [F_CHECK, 'CHECK'],
    [F_CHECK_REPLY, 'CHECK_REPLY'],
    [F_RESET, 'RESET'],
    [F_CHUNK_FIRST, 'FIRST'],
    [F_CHUNK_LAST, 'LAST'],
  ];
  for (const [bit, name] of all) if (flags & bit) names.push(name);
  return names.join('|') || 'NONE';
}
