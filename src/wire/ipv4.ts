/**
 * IPv4 header (RFC 791 section 3.1), as a view over a Buffer.
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
 * The view does no validation: run parsePacket first for bytes from the wire. Setters
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

const EMPTY = Buffer.alloc(0);

export class Ipv4View {
  buf: Buffer;
  off: number;

  constructor(buf: Buffer = EMPTY, off = 0) {
    this.buf = buf;
    this.off = off;
  }

  /** Re-points the view; one instance serves every packet. */
  wrap(buf: Buffer, off: number): this {
    this.buf = buf;
    this.off = off;
    return this;
  }

  get version(): number {
    return this.buf[this.off]! >>> 4;
  }
  set version(v: number) {
    this.buf[this.off] = ((v & 0x0f) << 4) | (this.buf[this.off]! & 0x0f);
  }

  /** Header length in BYTES (the IHL field times 4). */
  get ihl(): number {
    return (this.buf[this.off]! & 0x0f) << 2;
  }
  /** Takes bytes (a multiple of 4, 20..60). */
  set ihl(bytes: number) {
    this.buf[this.off] = (this.buf[this.off]! & 0xf0) | ((bytes >>> 2) & 0x0f);
  }

  get tos(): number {
    return this.buf[this.off + IPV4_OFF_TOS]!;
  }
  set tos(v: number) {
    this.buf[this.off + IPV4_OFF_TOS] = v & 0xff;
  }

  get totalLength(): number {
    return readU16(this.buf, this.off + IPV4_OFF_TOTAL_LENGTH);
  }
  set totalLength(v: number) {
    writeU16(this.buf, this.off + IPV4_OFF_TOTAL_LENGTH, v);
  }

  get identification(): number {
    return readU16(this.buf, this.off + IPV4_OFF_IDENTIFICATION);
  }
  set identification(v: number) {
    writeU16(this.buf, this.off + IPV4_OFF_IDENTIFICATION, v);
  }

  /** The 3 flag bits: reserved (4), DF (2), MF (1). */
  get flags(): number {
    return this.buf[this.off + IPV4_OFF_FLAGS_FRAG]! >>> 5;
  }
  set flags(v: number) {
    const o = this.off + IPV4_OFF_FLAGS_FRAG;
    this.buf[o] = ((v & 0x7) << 5) | (this.buf[o]! & 0x1f);
  }

  get dontFragment(): boolean {
    return (this.buf[this.off + IPV4_OFF_FLAGS_FRAG]! & 0x40) !== 0;
  }
  get moreFragments(): boolean {
    return (this.buf[this.off + IPV4_OFF_FLAGS_FRAG]! & 0x20) !== 0;
  }

  /** Fragment offset in units of 8 bytes (the RFC field). */
  get fragmentOffset(): number {
    return readU16(this.buf, this.off + IPV4_OFF_FLAGS_FRAG) & 0x1fff;
  }
  set fragmentOffset(v: number) {
    const o = this.off + IPV4_OFF_FLAGS_FRAG;
    writeU16(this.buf, o, (readU16(this.buf, o) & 0xe000) | (v & 0x1fff));
  }

  get ttl(): number {
    return this.buf[this.off + IPV4_OFF_TTL]!;
  }
  set ttl(v: number) {
    this.buf[this.off + IPV4_OFF_TTL] = v & 0xff;
  }

  get protocol(): number {
    return this.buf[this.off + IPV4_OFF_PROTOCOL]!;
  }
  set protocol(v: number) {
    this.buf[this.off + IPV4_OFF_PROTOCOL] = v & 0xff;
  }

  get checksum(): number {
    return readU16(this.buf, this.off + IPV4_OFF_CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.buf, this.off + IPV4_OFF_CHECKSUM, v);
  }

  /** Source address as an unsigned 32-bit number. */
  get src(): number {
    return readU32(this.buf, this.off + IPV4_OFF_SRC);
  }
  set src(v: number) {
    writeU32(this.buf, this.off + IPV4_OFF_SRC, v);
  }

  get dst(): number {
    return readU32(this.buf, this.off + IPV4_OFF_DST);
  }
  set dst(v: number) {
    writeU32(this.buf, this.off + IPV4_OFF_DST, v);
  }

  /** Offset of the layer-4 header (off + ihl). */
  get payloadOff(): number {
    return this.off + ((this.buf[this.off]! & 0x0f) << 2);
  }
}
