/**
 * Internet checksum (RFC 1071) and incremental update (RFC 1624).
 *
 * The ones-complement sum is kept "unfolded" in a plain JS number while bytes are added
 * (exact up to 2^53, far beyond any packet), and folded to 16 bits at the end. Folding
 * is reduction modulo 0xFFFF with the value range [1, 0xFFFF] for any non-zero input,
 * so pieces may be summed separately and added, as long as each piece starts at an
 * even offset from the start of the checksummed data (RFC 1071 section 2 (B)).
 *
 * Nothing here allocates.
 */

import { IPV4_OFF_CHECKSUM, IPV4_OFF_PROTOCOL, IPV4_OFF_SRC, IPV4_OFF_TOTAL_LENGTH, ipv4HeaderLen, readU16 } from './ipv4.js';
import { TCP_OFF_CHECKSUM } from './tcp.js';

/** Lengths from which onesSum reads aligned 32-bit words instead of bytes. */
const WIDE_MIN = 64;
/** The host stores a Uint32Array word little-endian (every machine this runs on). */
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
// One 32-bit view over the last ArrayBuffer summed (the TUN's batch buffer, read into
// again and again): made when the buffer changes, so the packet path allocates nothing.
let wideOf: ArrayBufferLike | null = null;
let wide: Uint32Array<ArrayBufferLike> = new Uint32Array(0);

/**
 * Adds the 16-bit big-endian words of buf[off, off+len) to `acc` (an odd trailing byte
 * is padded with a zero low byte). Returns the unfolded accumulator.
 *
 * From WIDE_MIN bytes at an even address it sums aligned 32-bit words through a
 * Uint32Array view (about 3x faster than bytes: a 1460-byte payload in ~0.2 µs): the
 * ones-complement sum does not care about the grouping of 16-bit words (2^16 ≡ 1 mod
 * 0xFFFF) and a sum of byte-swapped words is the byte-swapped sum (RFC 1071 section 2
 * (B)), so the host-order sum is folded, swapped back and added.
 */
export function onesSum(buf: Uint8Array, off: number, len: number, acc = 0): number {
  let sum = acc;
  let i = off;
  const end = off + len;
  if (len >= WIDE_MIN && ((buf.byteOffset + off) & 1) === 0) {
    if (((buf.byteOffset + i) & 2) !== 0) {
      sum += (buf[i]! << 8) | buf[i + 1]!;
      i += 2;
    }
    const ab = buf.buffer;
    if (wideOf !== ab) {
      wide = new Uint32Array(ab, 0, ab.byteLength >>> 2);
      wideOf = ab;
    }
    const k = (buf.byteOffset + i) >>> 2;
    const words = (end - i) >>> 2;
    const f = foldSum(wordSum(wide, k, k + words));
    sum += HOST_LE ? ((f & 0xff) << 8) | (f >>> 8) : f;
    i += words << 2;
  }
  const end8 = end - 7;
  // Four words per iteration; the sum stays far below 2^53.
  while (i < end8) {
    sum += ((buf[i]! << 8) | buf[i + 1]!) + ((buf[i + 2]! << 8) | buf[i + 3]!) +
      ((buf[i + 4]! << 8) | buf[i + 5]!) + ((buf[i + 6]! << 8) | buf[i + 7]!);
    i += 8;
  }
  const end2 = end - 1;
  while (i < end2) {
    sum += (buf[i]! << 8) | buf[i + 1]!;
    i += 2;
  }
  if (i < end) sum += buf[i]! << 8;
  return sum;
}

/** The plain sum of w[k, kEnd) (host-order 32-bit words; below 2^53 for any packet). */
function wordSum(w: Uint32Array<ArrayBufferLike>, k0: number, kEnd: number): number {
  let s = 0;
  let k = k0;
  const kEnd4 = kEnd - 3;
  while (k < kEnd4) {
    s += w[k]! + w[k + 1]! + w[k + 2]! + w[k + 3]!;
    k += 4;
  }
  while (k < kEnd) s += w[k++]!;
  return s;
}

/** Folds an accumulator (any non-negative integer < 2^53) to a 16-bit ones-complement sum. */
export function foldSum(acc: number): number {
  let s = acc;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum field value: ~fold(sum), 16 bits. */
export function checksum(buf: Uint8Array, off: number, len: number, acc = 0): number {
  return ~foldSum(onesSum(buf, off, len, acc)) & 0xffff;
}

/**
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for a 16-bit field changing from `oldVal` to
 * `newVal` at an even offset of the checksummed data. Exact (not merely equivalent) to a
 * full recompute whenever the data are not all zero.
 */
export function csumReplace16(csum: number, oldVal: number, newVal: number): number {
  let s = (~csum & 0xffff) + (~oldVal & 0xffff) + (newVal & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** RFC 1624 for a 32-bit field (two 16-bit halves) at an even offset. */
export function csumReplace32(csum: number, oldVal: number, newVal: number): number {
  let s = (~csum & 0xffff) + (~(oldVal >>> 16) & 0xffff) + (~oldVal & 0xffff) +
    ((newVal >>> 16) & 0xffff) + (newVal & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * RFC 1624 given folded sums of the old and new contents of an (even-aligned) region:
 * HC' = ~(~HC + ~fold(old) + fold(new)). Used for fields at odd offsets (TCP options).
 */
export function csumReplaceSum(csum: number, oldFolded: number, newFolded: number): number {
  let s = (~csum & 0xffff) + (~oldFolded & 0xffff) + (newFolded & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** True when the IPv4 header checksum (over IHL bytes) verifies. */
export function ipv4HeaderChecksumOk(buf: Buffer, ipOff: number): boolean {
  return foldSum(onesSum(buf, ipOff, ipv4HeaderLen(buf, ipOff))) === 0xffff;
}

/** Computes and stores the IPv4 header checksum. */
export function fillIpv4HeaderChecksum(buf: Buffer, ipOff: number): void {
  buf[ipOff + IPV4_OFF_CHECKSUM] = 0;
  buf[ipOff + IPV4_OFF_CHECKSUM + 1] = 0;
  const c = checksum(buf, ipOff, ipv4HeaderLen(buf, ipOff));
  buf[ipOff + IPV4_OFF_CHECKSUM] = c >>> 8;
  buf[ipOff + IPV4_OFF_CHECKSUM + 1] = c & 0xff;
}

/** Pseudo-header + segment sum, unfolded, including whatever is in the checksum field. */
function tcpRawSum(buf: Buffer, ipOff: number): number {
  const hl = ipv4HeaderLen(buf, ipOff);
  const total = readU16(buf, ipOff + IPV4_OFF_TOTAL_LENGTH);
  const l4Len = total - hl;
  // Pseudo-header: src, dst (8 bytes from IPV4_OFF_SRC), zero, protocol, TCP length.
  let acc = onesSum(buf, ipOff + IPV4_OFF_SRC, 8);
  acc += buf[ipOff + IPV4_OFF_PROTOCOL]! + l4Len;
  return onesSum(buf, ipOff + hl, l4Len, acc);
}

/**
 * The value the TCP checksum field should hold (computed as if the field were zero),
 * over the pseudo-header and the whole segment (length from the IPv4 total length).
 * Does not modify the buffer.
 */
export function tcpChecksum(buf: Buffer, ipOff: number): number {
  const csumOff = ipOff + ipv4HeaderLen(buf, ipOff) + TCP_OFF_CHECKSUM;
  const stored = readU16(buf, csumOff);
  // Subtracting in ones complement = adding the complement.
  return ~foldSum(tcpRawSum(buf, ipOff) + (~stored & 0xffff)) & 0xffff;
}

export function fillTcpChecksum(buf: Buffer, ipOff: number): void {
  const c = tcpChecksum(buf, ipOff);
  const csumOff = ipOff + ipv4HeaderLen(buf, ipOff) + TCP_OFF_CHECKSUM;
  buf[csumOff] = c >>> 8;
  buf[csumOff + 1] = c & 0xff;
}

export function tcpChecksumOk(buf: Buffer, ipOff: number): boolean {
  return foldSum(tcpRawSum(buf, ipOff)) === 0xffff;
}
