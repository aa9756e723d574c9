/**
 * ICMPv4 (RFC 792, RFC 1191 for "fragmentation needed" MTU): an offset table over a Buffer
 * (fields at `icmpOff + ICMP_OFF_*`).
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

import {
  IPPROTO_TCP, IPPROTO_UDP, IPV4_MIN_HEADER, IPV4_OFF_DST, IPV4_OFF_PROTOCOL, IPV4_OFF_SRC, ipv4FragmentOffset, ipv4HeaderLen,
  ipv4Version, readU16, readU32,
} from './ipv4.js';
import { TCP_OFF_DST_PORT, TCP_OFF_SEQ, TCP_OFF_SRC_PORT } from './tcp.js';

export const ICMP_OFF_TYPE = 0;
export const ICMP_OFF_CODE = 1;
export const ICMP_OFF_CHECKSUM = 2;
export const ICMP_OFF_REST = 4;
/** Echo identifier and sequence number (bytes 4-5, 6-7). */
export const ICMP_OFF_ECHO_ID = 4;
export const ICMP_OFF_ECHO_SEQ = 6;
/** Next-hop MTU of a "fragmentation needed" error (RFC 1191; bytes 6-7). */
export const ICMP_OFF_NEXT_HOP_MTU = 6;
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
  if (icmpLen < ICMP_HEADER_LEN + IPV4_MIN_HEADER) return false;
  const type = buf[icmpOff + ICMP_OFF_TYPE]!;
  if (!icmpIsError(type)) return false;
  const q = icmpOff + ICMP_OFF_QUOTE;
  const qLen = icmpLen - ICMP_OFF_QUOTE;
  if (ipv4Version(buf, q) !== 4) return false;
  const hl = ipv4HeaderLen(buf, q);
  if (hl < IPV4_MIN_HEADER || hl > qLen) return false;
  const proto = buf[q + IPV4_OFF_PROTOCOL]!;
  const fragOff = ipv4FragmentOffset(buf, q);
  out.type = type;
  out.code = buf[icmpOff + ICMP_OFF_CODE]!;
  out.rest = readU32(buf, icmpOff + ICMP_OFF_REST);
  out.ipOff = q;
  out.ipHdrLen = hl;
  out.proto = proto;
  out.src = readU32(buf, q + IPV4_OFF_SRC);
  out.dst = readU32(buf, q + IPV4_OFF_DST);
  out.l4Off = q + hl;
  out.l4Len = qLen - hl;
  out.srcPort = 0;
  out.dstPort = 0;
  out.seq = 0;
  out.hasSeq = false;
  if (fragOff === 0 && (proto === IPPROTO_TCP || proto === IPPROTO_UDP)) {
    if (out.l4Len < 4) return false;
    // UDP's ports sit where TCP's do (RFC 768).
    out.srcPort = readU16(buf, out.l4Off + TCP_OFF_SRC_PORT);
    out.dstPort = readU16(buf, out.l4Off + TCP_OFF_DST_PORT);
    if (proto === IPPROTO_TCP && out.l4Len >= TCP_OFF_SEQ + 4) {
      out.seq = readU32(buf, out.l4Off + TCP_OFF_SEQ);
      out.hasSeq = true;
    }
  }
  return true;
}
