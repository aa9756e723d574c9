/**
 * ICMPv4 (RFC 792, RFC 1191 for "fragmentation needed" MTU), as a view over a Buffer.
 *
 *    0                   1                   2                   3
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     Type      |     Code      |          Checksum             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |        rest of header (unused / id+seq / next-hop MTU)        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |   error types: the offending datagram's IP header + >= 8 bytes |
 *
 * The checksum covers the whole ICMP message, no pseudo-header.
 * `IcmpQuote` + `parseIcmpQuote` read the quoted datagram of an error without allocating
 * (the gateway must recognise errors about protected connections on the forwarding path).
 */

import { IPPROTO_TCP, IPPROTO_UDP, readU16, readU32, writeU16, writeU32 } from './ipv4.js';

export const ICMP_OFF_TYPE = 0;
export const ICMP_OFF_CODE = 1;
export const ICMP_OFF_CHECKSUM = 2;
export const ICMP_OFF_REST = 4;
/** Offset of the quoted datagram in an error message (and of echo data). */
export const ICMP_OFF_QUOTE = 8;
export const ICMP_HEADER_LEN = 8;

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_REDIRECT = 5;
export const ICMP_ECHO = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAM_PROBLEM = 12;

/** Codes of ICMP_DEST_UNREACH. */
export const ICMP_NET_UNREACH = 0;
export const ICMP_HOST_UNREACH = 1;
export const ICMP_PROT_UNREACH = 2;
export const ICMP_PORT_UNREACH = 3;
export const ICMP_FRAG_NEEDED = 4;
export const ICMP_NET_PROHIBITED = 9;
export const ICMP_HOST_PROHIBITED = 10;
export const ICMP_ADMIN_PROHIBITED = 13;
/** Codes of ICMP_TIME_EXCEEDED. */
export const ICMP_EXC_TTL = 0;
export const ICMP_EXC_FRAGTIME = 1;

/** True for the types that quote an offending datagram (RFC 1122 3.2.2). */
export function icmpIsError(type: number): boolean {
  return type === ICMP_DEST_UNREACH || type === ICMP_TIME_EXCEEDED || type === ICMP_PARAM_PROBLEM ||
    type === ICMP_SOURCE_QUENCH || type === ICMP_REDIRECT;
}

const EMPTY = Buffer.alloc(0);

export class IcmpView {
  buf: Buffer;
  off: number;

  constructor(buf: Buffer = EMPTY, off = 0) {
    this.buf = buf;
    this.off = off;
  }

  wrap(buf: Buffer, off: number): this {
    this.buf = buf;
    this.off = off;
    return this;
  }

  get type(): number {
    return this.buf[this.off + ICMP_OFF_TYPE]!;
  }
  set type(v: number) {
    this.buf[this.off + ICMP_OFF_TYPE] = v & 0xff;
  }

  get code(): number {
    return this.buf[this.off + ICMP_OFF_CODE]!;
  }
  set code(v: number) {
    this.buf[this.off + ICMP_OFF_CODE] = v & 0xff;
  }

  get checksum(): number {
    return readU16(this.buf, this.off + ICMP_OFF_CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.buf, this.off + ICMP_OFF_CHECKSUM, v);
  }

  /** Bytes 4..7 as a u32 (unused in most errors; id+seq in echo). */
  get rest(): number {
    return readU32(this.buf, this.off + ICMP_OFF_REST);
  }
  set rest(v: number) {
    writeU32(this.buf, this.off + ICMP_OFF_REST, v);
  }

  /** Echo identifier (bytes 4-5). */
  get identifier(): number {
    return readU16(this.buf, this.off + 4);
  }
  /** Echo sequence number (bytes 6-7). */
  get sequence(): number {
    return readU16(this.buf, this.off + 6);
  }
  /** Next-hop MTU of a "fragmentation needed" error (RFC 1191; bytes 6-7). */
  get nextHopMtu(): number {
    return readU16(this.buf, this.off + 6);
  }
  set nextHopMtu(v: number) {
    writeU16(this.buf, this.off + 6, v);
  }

  get isError(): boolean {
    return icmpIsError(this.buf[this.off + ICMP_OFF_TYPE]!);
  }

  /** Absolute offset of the quoted IP header in an error message. */
  get quoteOff(): number {
    return this.off + ICMP_OFF_QUOTE;
  }
}

/** The quoted datagram of an ICMP error; reusable, filled by parseIcmpQuote. */
export class IcmpQuote {
  type = 0;
  code = 0;
  /** Absolute offset of the quoted IP header. */
  ipOff = 0;
  ipHdrLen = 0;
  proto = 0;
  src = 0;
  dst = 0;
  /** Absolute offset of the quoted L4 header, and how many of its bytes are present. */
  l4Off = 0;
  l4Len = 0;
  /** Quoted ports (TCP/UDP, first fragment, >= 4 bytes quoted), else 0. */
  srcPort = 0;
  dstPort = 0;
  /** Quoted TCP sequence number; valid when hasSeq. */
  seq = 0;
  hasSeq = false;
  /** Bytes 4..7 of the ICMP header (next-hop MTU in its low 16 bits for frag-needed). */
  rest = 0;
}

/**
 * Reads an ICMP error's quote into `out` without allocating. Returns false when the type
 * is not an error, or the quote is too short: fewer than 20 bytes of IP header, a quoted
 * version other than 4, a quoted IHL beyond the quote, or, for a TCP/UDP first fragment,
 * fewer than 4 bytes (the ports) of the L4 header. The TCP sequence number needs 8.
 */
export function parseIcmpQuote(buf: Buffer, icmpOff: number, icmpLen: number, out: IcmpQuote): boolean {
  if (icmpLen < ICMP_HEADER_LEN + 20) return false;
  const type = buf[icmpOff]!;
  if (!icmpIsError(type)) return false;
  const q = icmpOff + ICMP_OFF_QUOTE;
  const qLen = icmpLen - ICMP_OFF_QUOTE;
  const vi = buf[q]!;
  if (vi >>> 4 !== 4) return false;
  const hl = (vi & 0x0f) << 2;
  if (hl < 20 || hl > qLen) return false;
  const proto = buf[q + 9]!;
  const fragOff = readU16(buf, q + 6) & 0x1fff;
  out.type = type;
  out.code = buf[icmpOff + 1]!;
  out.rest = readU32(buf, icmpOff + ICMP_OFF_REST);
  out.ipOff = q;
  out.ipHdrLen = hl;
  out.proto = proto;
  out.src = readU32(buf, q + 12);
  out.dst = readU32(buf, q + 16);
  out.l4Off = q + hl;
  out.l4Len = qLen - hl;
  out.srcPort = 0;
  out.dstPort = 0;
  out.seq = 0;
  out.hasSeq = false;
  if (fragOff === 0 && (proto === IPPROTO_TCP || proto === IPPROTO_UDP)) {
    if (out.l4Len < 4) return false;
    out.srcPort = readU16(buf, out.l4Off);
    out.dstPort = readU16(buf, out.l4Off + 2);
    if (proto === IPPROTO_TCP && out.l4Len >= 8) {
      out.seq = readU32(buf, out.l4Off + 4);
      out.hasSeq = true;
    }
  }
  return true;
}
