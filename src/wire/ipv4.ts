/**
 * IPv4 header (RFC 791 section 3.1): an offset table over a Buffer. The forwarding path
 * reads and writes the fields at `ipOff + IPV4_OFF_*` (readU16/readU32 below; rewrite.ts
 * for writes that keep the checksums right); the bit-packed fields have accessors.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |Version|  IHL  |Type of Service|          Total Length         |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |         Identification        |Flags|      Fragment Offset    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Time to Live |    Protocol   |         Header Checksum       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                       Source Address                          |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Destination Address                        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Nothing here validates: run parsePacket first for bytes from the wire. Plain writes
 * store the field only; checksums are the caller's business (see rewrite.ts).
 */

/** Field offsets from the start of the IPv4 header. */
export const IPV4_OFF_VER_IHL = 0;
export const IPV4_OFF_TOS = 1;
export const IPV4_OFF_TOTAL_LENGTH = 2;
export const IPV4_OFF_IDENTIFICATION = 4;
export const IPV4_OFF_FLAGS_FRAG = 6;
export const IPV4_OFF_TTL = 8;
export const IPV4_OFF_PROTOCOL = 9;
export const IPV4_OFF_CHECKSUM = 10;
export const IPV4_OFF_SRC = 12;
export const IPV4_OFF_DST = 16;
export const IPV4_MIN_HEADER = 20;
export const IPV4_MAX_HEADER = 60;

/** Flags (the 3 high bits of byte 6), as the value of `flags`. */
export const IPV4_FLAG_DF = 0x2;
export const IPV4_FLAG_MF = 0x1;
/** The same bits in the 16-bit word at IPV4_OFF_FLAGS_FRAG, and the fragment offset (units of 8 bytes). */
export const IPV4_DF = 0x4000;
export const IPV4_MF = 0x2000;
export const IPV4_FRAG_OFFSET_MASK = 0x1fff;

/** IP protocol numbers. */
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export function readU16(buf: Uint8Array, off: number): number {
  return (buf[off]! << 8) | buf[off + 1]!;
}

export function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
}

export function writeU16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 8) & 0xff;
  buf[off + 1] = v & 0xff;
}

export function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 24) & 0xff;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}

/** The version nibble of byte 0 (4 for IPv4, 6 for IPv6). */
export function ipv4Version(buf: Uint8Array, ipOff: number): number {
  return buf[ipOff + IPV4_OFF_VER_IHL]! >>> 4;
}

/** Header length in BYTES (the IHL field times 4). */
export function ipv4HeaderLen(buf: Uint8Array, ipOff: number): number {
  return (buf[ipOff + IPV4_OFF_VER_IHL]! & 0x0f) << 2;
}

/** MF set or a non-zero fragment offset: a fragment, first or not. */
export function ipv4IsFragment(buf: Uint8Array, ipOff: number): boolean {
  return (readU16(buf, ipOff + IPV4_OFF_FLAGS_FRAG) & (IPV4_MF | IPV4_FRAG_OFFSET_MASK)) !== 0;
}

/** The fragment offset field (units of 8 bytes); non-zero: not the first fragment, no L4 header. */
export function ipv4FragmentOffset(buf: Uint8Array, ipOff: number): number {
  return readU16(buf, ipOff + IPV4_OFF_FLAGS_FRAG) & IPV4_FRAG_OFFSET_MASK;
}
