/**
 * Whole-packet reprs (smoltcp's `TcpRepr`/`Ipv4Repr`, dns-packet's encode/decode): plain
 * objects for slow paths — SYN handling, ACKs the gateway synthesizes, spoofed SYNs of a
 * rebuild, tests. They allocate; the forwarding path reads and rewrites fields in place at
 * the named offsets (`IPV4_OFF_*`, `TCP_OFF_*`, `ICMP_OFF_*`) with PacketInfo from
 * parsePacket and rewrite.ts, and never builds one of these.
 */

import { FtcpError } from '../util/errors.js';
import { fillIpv4HeaderChecksum, fillTcpChecksum, checksum } from './checksum.js';
import {
  IPPROTO_ICMP, IPPROTO_TCP, IPV4_DF, IPV4_MIN_HEADER, IPV4_OFF_DST, IPV4_OFF_FLAGS_FRAG, IPV4_OFF_IDENTIFICATION,
  IPV4_OFF_PROTOCOL, IPV4_OFF_SRC, IPV4_OFF_TOS, IPV4_OFF_TOTAL_LENGTH, IPV4_OFF_TTL, IPV4_OFF_VER_IHL, readU16, readU32,
  writeU16, writeU32,
} from './ipv4.js';
import {
  ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_HEADER_LEN, ICMP_HOST_UNREACH, ICMP_OFF_CHECKSUM, ICMP_OFF_CODE,
  ICMP_OFF_NEXT_HOP_MTU, ICMP_OFF_REST, ICMP_OFF_TYPE, IcmpQuote, parseIcmpQuote,
} from './icmp.js';
import { PacketInfo, Verdict, parsePacket, verdictName } from './packet.js';
import type { Seq } from './seq.js';
import {
  TCP_MIN_HEADER, TCP_MAX_HEADER, TCP_OFF_ACK, TCP_OFF_CHECKSUM, TCP_OFF_DATA_OFFSET, TCP_OFF_DST_PORT, TCP_OFF_FLAGS, TCP_OFF_SEQ,
  TCP_OFF_SRC_PORT, TCP_OFF_URGENT, TCP_OFF_WINDOW,
} from './tcp.js';
import { TCPOLEN_TS, TCPOPT_NOP, TCPOPT_TS, TCPOPT_OFF_LEN, TCPOPT_TS_OFF_VAL, TCPOPT_TS_OFF_ECR } from './tcp-options.js';

/** Version 4, IHL 5 (20 bytes, no options): byte 0 of every IPv4 header made here. */
const IPV4_VER_IHL_PLAIN = 0x45;

/** Bad bytes handed to a slow-path parser. `verdict` is the parsePacket verdict. */
export class WireError extends FtcpError {
  readonly verdict: number;
  constructor(verdict: number, message: string) {
    super(`FTCP_WIRE_${verdictName(verdict)}`, message);
    this.name = 'WireError';
    this.verdict = verdict;
  }
}

export interface TcpPacketRepr {
  src: number;
  dst: number;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** Raw option bytes (a multiple of 4, at most 40 with tsVal's 12); see encodeTcpOptions. */
  options?: Uint8Array;
  /**
   * A timestamp option (RFC 7323 §3) written in place, not allocated: NOP NOP TS(tsVal,
   * tsEcr), first among the options as Linux sends it, then `options`. parseTcpPacket
   * returns it among the raw `options`.
   */
  tsVal?: number;
  /** The TS option's echo reply (0 when absent); used only with tsVal. */
  tsEcr?: number;
  payload?: Uint8Array;
  /** Defaults: ttl 64, id 0, tos 0, urgent 0. */
  ttl?: number;
  id?: number;
  tos?: number;
  urgent?: number;
}

/** NOP NOP TS: the timestamp option as Linux lays it out (RFC 7323 Appendix A). */
const TS_OPTION_LEN = 12;

/**
 * What parseTcpPacket returns: the same fields, its seq and ack read from a header and so typed
 * `Seq` (a repr to emit takes plain numbers, as callers write literals).
 */
export type ParsedTcpPacket = TcpPacketRepr & { seq: Seq; ack: Seq };

/** Bytes emitTcpPacket writes: 20 (IPv4) + 20 + options (the TS option's 12 with tsVal) + payload. */
export function tcpPacketLength(r: TcpPacketRepr): number {
  return IPV4_MIN_HEADER + TCP_MIN_HEADER + optionsLength(r) + (r.payload?.length ?? 0);
}

function optionsLength(r: TcpPacketRepr): number {
  return (r.tsVal !== undefined ? TS_OPTION_LEN : 0) + (r.options?.length ?? 0);
}

function u(name: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${name}: ${v} out of range 0..${max}`);
  return v;
}

/**
 * Writes an IPv4 header (IHL 5, DF set, no options) and a TCP segment, both checksums
 * filled. Into `buf` at `off` when given (must have tcpPacketLength(r) bytes room),
 * else into a new Buffer. Returns the slice holding the packet.
 */
export function emitTcpPacket(r: TcpPacketRepr, buf?: Buffer, off = 0): Buffer {
  const b = buf ?? Buffer.alloc(tcpPacketLength(r));
  const len = writeTcpPacket(r, b, off);
  return b.subarray(off, off + len);
}

/**
 * emitTcpPacket into a buffer the caller owns, returning the packet's length: the gateway's
 * emit path (wire/headroom.ts), which allocates nothing per packet, not even the slice.
 */
export function writeTcpPacket(r: TcpPacketRepr, b: Buffer, off: number): number {
  const optLen = optionsLength(r);
  if ((optLen & 3) !== 0 || TCP_MIN_HEADER + optLen > TCP_MAX_HEADER) {
    throw new RangeError(`TCP options: length ${optLen} is not a multiple of 4 up to 40`);
  }
  const len = tcpPacketLength(r);
  if (len > 0xffff) throw new RangeError(`packet length ${len} > 65535`);
  if (off < 0 || off + len > b.length) throw new RangeError(`buffer too small: need ${len} bytes at ${off}`);
  const ip = off;
  b[ip + IPV4_OFF_VER_IHL] = IPV4_VER_IHL_PLAIN;
  b[ip + IPV4_OFF_TOS] = u('tos', r.tos ?? 0, 0xff);
  writeU16(b, ip + IPV4_OFF_TOTAL_LENGTH, len);
  writeU16(b, ip + IPV4_OFF_IDENTIFICATION, u('id', r.id ?? 0, 0xffff));
  writeU16(b, ip + IPV4_OFF_FLAGS_FRAG, IPV4_DF); // offset 0
  b[ip + IPV4_OFF_TTL] = u('ttl', r.ttl ?? 64, 0xff);
  b[ip + IPV4_OFF_PROTOCOL] = IPPROTO_TCP;
  writeU32(b, ip + IPV4_OFF_SRC, u('src', r.src, 0xffffffff));
  writeU32(b, ip + IPV4_OFF_DST, u('dst', r.dst, 0xffffffff));
  fillIpv4HeaderChecksum(b, ip);
  const t = ip + IPV4_MIN_HEADER;
  writeU16(b, t + TCP_OFF_SRC_PORT, u('srcPort', r.srcPort, 0xffff));
  writeU16(b, t + TCP_OFF_DST_PORT, u('dstPort', r.dstPort, 0xffff));
  writeU32(b, t + TCP_OFF_SEQ, u('seq', r.seq, 0xffffffff));
  writeU32(b, t + TCP_OFF_ACK, u('ack', r.ack, 0xffffffff));
  b[t + TCP_OFF_DATA_OFFSET] = ((TCP_MIN_HEADER + optLen) >>> 2) << 4;
  b[t + TCP_OFF_FLAGS] = u('flags', r.flags, 0xff);
  writeU16(b, t + TCP_OFF_WINDOW, u('window', r.window, 0xffff));
  writeU16(b, t + TCP_OFF_CHECKSUM, 0);
  writeU16(b, t + TCP_OFF_URGENT, u('urgent', r.urgent ?? 0, 0xffff));
  let o = t + TCP_MIN_HEADER;
  if (r.tsVal !== undefined) {
    // NOP NOP TS, as Linux lays it out: the option itself starts at o + 2.
    b[o] = TCPOPT_NOP;
    b[o + 1] = TCPOPT_NOP;
    b[o + 2] = TCPOPT_TS;
    b[o + 2 + TCPOPT_OFF_LEN] = TCPOLEN_TS;
    writeU32(b, o + 2 + TCPOPT_TS_OFF_VAL, u('tsVal', r.tsVal, 0xffffffff));
    writeU32(b, o + 2 + TCPOPT_TS_OFF_ECR, u('tsEcr', r.tsEcr ?? 0, 0xffffffff));
    o += TS_OPTION_LEN;
  }
  if (r.options && r.options.length > 0) {
    b.set(r.options, o);
    o += r.options.length;
  }
  if (r.payload && r.payload.length > 0) b.set(r.payload, o);
  fillTcpChecksum(b, ip);
  return len;
}

/**
 * Slow path: parses an IPv4/TCP packet into a repr (options and payload are copies,
 * present only when non-empty). Throws WireError (code FTCP_WIRE_<verdict>) on anything
 * parsePacket does not call IPV4_TCP. Checksums are not verified.
 */
export function parseTcpPacket(buf: Buffer, off = 0, len = buf.length - off): ParsedTcpPacket {
  const info = new PacketInfo();
  const v = parsePacket(buf, off, len, info);
  if (v !== Verdict.IPV4_TCP) throw new WireError(v, `not a valid IPv4/TCP packet: ${verdictName(v)}`);
  const r: ParsedTcpPacket = {
    src: info.src,
    dst: info.dst,
    srcPort: info.srcPort,
    dstPort: info.dstPort,
    seq: info.seq,
    ack: info.ack,
    flags: info.flags,
    window: info.window,
    ttl: info.ttl,
    id: readU16(buf, off + IPV4_OFF_IDENTIFICATION),
    tos: buf[off + IPV4_OFF_TOS]!,
    urgent: readU16(buf, info.l4Off + TCP_OFF_URGENT),
  };
  if (info.optLen > 0) r.options = Buffer.from(buf.subarray(info.optOff, info.optOff + info.optLen));
  if (info.payloadLen > 0) r.payload = Buffer.from(buf.subarray(info.payloadOff, info.payloadOff + info.payloadLen));
  return r;
}

export interface IcmpErrorInfo {
  type: number;
  code: number;
  quotedSrc: number;
  quotedDst: number;
  quotedProto: number;
  quotedSrcPort: number;
  quotedDstPort: number;
  /** The quoted TCP sequence number, when at least 8 bytes of TCP header are quoted. */
  quotedSeq?: number;
  /** Next-hop MTU, for "fragmentation needed" (type 3 code 4). */
  mtu?: number;
}

/**
 * Slow path: an ICMP error's quoted datagram. `icmpOff`/`icmpLen` delimit the ICMP
 * message (PacketInfo.l4Off/l4Len). Null if not an error type or the quote is too short
 * (see parseIcmpQuote).
 */
export function parseIcmpError(buf: Buffer, icmpOff: number, icmpLen: number): IcmpErrorInfo | null {
  const q = new IcmpQuote();
  if (!parseIcmpQuote(buf, icmpOff, icmpLen, q)) return null;
  const r: IcmpErrorInfo = {
    type: q.type,
    code: q.code,
    quotedSrc: q.src,
    quotedDst: q.dst,
    quotedProto: q.proto,
    quotedSrcPort: q.srcPort,
    quotedDstPort: q.dstPort,
  };
  if (q.hasSeq) r.quotedSeq = q.seq;
  if (q.type === ICMP_DEST_UNREACH && q.code === ICMP_FRAG_NEEDED) r.mtu = q.rest & 0xffff;
  return r;
}

export interface IcmpErrorOptions {
  /** Address of the router sending the error (the IPv4 source). */
  src: number;
  /** Destination; defaults to the quoted packet's source. */
  dst?: number;
  /** Defaults: destination unreachable / host unreachable. */
  type?: number;
  code?: number;
  /** Next-hop MTU for type 3 code 4. */
  mtu?: number;
  /**
   * How many bytes of the offending packet to quote. Default: as much as fits in 576
   * bytes total, like Linux icmp_send (RFC 1812 4.3.2.3); RFC 792's minimum is the IP
   * header + 8.
   */
  quoteLen?: number;
  ttl?: number;
  id?: number;
}

/**
 * Builds IPv4 + ICMP error quoting `orig` (an IPv4 packet starting at offset 0), both
 * checksums filled. For tests and for the lab.
 */
export function emitIcmpError(orig: Uint8Array, opts: IcmpErrorOptions): Buffer {
  if (orig.length < IPV4_MIN_HEADER) throw new RangeError('quoted packet shorter than an IPv4 header');
  const origTotal = Math.min(readU16(orig, IPV4_OFF_TOTAL_LENGTH), orig.length);
  const maxQuote = 576 - IPV4_MIN_HEADER - ICMP_HEADER_LEN;
  const qLen = Math.min(opts.quoteLen ?? maxQuote, origTotal);
  const len = IPV4_MIN_HEADER + ICMP_HEADER_LEN + qLen;
  const b = Buffer.alloc(len);
  b[IPV4_OFF_VER_IHL] = IPV4_VER_IHL_PLAIN;
  b[IPV4_OFF_TOS] = 0xc0; // Linux sends ICMP errors with TOS/precedence 0xc0 (internetwork control)
  writeU16(b, IPV4_OFF_TOTAL_LENGTH, len);
  writeU16(b, IPV4_OFF_IDENTIFICATION, u('id', opts.id ?? 0, 0xffff));
  writeU16(b, IPV4_OFF_FLAGS_FRAG, 0);
  b[IPV4_OFF_TTL] = u('ttl', opts.ttl ?? 64, 0xff);
  b[IPV4_OFF_PROTOCOL] = IPPROTO_ICMP;
  writeU32(b, IPV4_OFF_SRC, u('src', opts.src, 0xffffffff));
  writeU32(b, IPV4_OFF_DST, u('dst', opts.dst ?? readU32(orig, IPV4_OFF_SRC), 0xffffffff));
  fillIpv4HeaderChecksum(b, 0);
  const i = IPV4_MIN_HEADER;
  b[i + ICMP_OFF_TYPE] = u('type', opts.type ?? ICMP_DEST_UNREACH, 0xff);
  b[i + ICMP_OFF_CODE] = u('code', opts.code ?? ICMP_HOST_UNREACH, 0xff);
  writeU32(b, i + ICMP_OFF_REST, 0);
  if (opts.mtu !== undefined) writeU16(b, i + ICMP_OFF_NEXT_HOP_MTU, u('mtu', opts.mtu, 0xffff));
  b.set(orig.subarray(0, qLen), i + ICMP_HEADER_LEN);
  const c = checksum(b, i, ICMP_HEADER_LEN + qLen);
  writeU16(b, i + ICMP_OFF_CHECKSUM, c);
  return b;
}

/** True when the ICMP message checksum at buf[icmpOff, icmpOff+icmpLen) verifies. */
export function icmpChecksumOk(buf: Buffer, icmpOff: number, icmpLen: number): boolean {
  return checksum(buf, icmpOff, icmpLen) === 0;
}
