/**
 * Whole-packet reprs (smoltcp's `TcpRepr`/`Ipv4Repr`, dns-packet's encode/decode): plain
 * objects for slow paths — SYN handling, ACKs the gateway synthesizes, spoofed SYNs of a
 * rebuild, tests. They allocate; the forwarding path uses the views instead.
 */

import { FtcpError } from '../util/errors.js';
import { fillIpv4HeaderChecksum, fillTcpChecksum, checksum } from './checksum.js';
import {
  IPPROTO_ICMP, IPPROTO_TCP, IPV4_MIN_HEADER, readU16, readU32, writeU16, writeU32,
} from './ipv4.js';
import {
  ICMP_DEST_UNREACH, ICMP_HEADER_LEN, ICMP_HOST_UNREACH, IcmpQuote, parseIcmpQuote,
} from './icmp.js';
import { PacketInfo, Verdict, parsePacket, verdictName } from './packet.js';
import { TCP_MIN_HEADER, TCP_MAX_HEADER } from './tcp.js';
import { TCPOLEN_TS, TCPOPT_NOP, TCPOPT_TS } from './tcp-options.js';

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
  b[ip] = 0x45;
  b[ip + 1] = u('tos', r.tos ?? 0, 0xff);
  writeU16(b, ip + 2, len);
  writeU16(b, ip + 4, u('id', r.id ?? 0, 0xffff));
  writeU16(b, ip + 6, 0x4000); // DF, offset 0
  b[ip + 8] = u('ttl', r.ttl ?? 64, 0xff);
  b[ip + 9] = IPPROTO_TCP;
  writeU32(b, ip + 12, u('src', r.src, 0xffffffff));
  writeU32(b, ip + 16, u('dst', r.dst, 0xffffffff));
  fillIpv4HeaderChecksum(b, ip);
  const t = ip + IPV4_MIN_HEADER;
  writeU16(b, t, u('srcPort', r.srcPort, 0xffff));
  writeU16(b, t + 2, u('dstPort', r.dstPort, 0xffff));
  writeU32(b, t + 4, u('seq', r.seq, 0xffffffff));
  writeU32(b, t + 8, u('ack', r.ack, 0xffffffff));
  b[t + 12] = ((TCP_MIN_HEADER + optLen) >>> 2) << 4;
  b[t + 13] = u('flags', r.flags, 0xff);
  writeU16(b, t + 14, u('window', r.window, 0xffff));
  writeU16(b, t + 16, 0);
  writeU16(b, t + 18, u('urgent', r.urgent ?? 0, 0xffff));
  let o = t + TCP_MIN_HEADER;
  if (r.tsVal !== undefined) {
    b[o] = TCPOPT_NOP;
    b[o + 1] = TCPOPT_NOP;
    b[o + 2] = TCPOPT_TS;
    b[o + 3] = TCPOLEN_TS;
    writeU32(b, o + 4, u('tsVal', r.tsVal, 0xffffffff));
    writeU32(b, o + 8, u('tsEcr', r.tsEcr ?? 0, 0xffffffff));
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
export function parseTcpPacket(buf: Buffer, off = 0, len = buf.length - off): TcpPacketRepr {
  const info = new PacketInfo();
  const v = parsePacket(buf, off, len, info);
  if (v !== Verdict.IPV4_TCP) throw new WireError(v, `not a valid IPv4/TCP packet: ${verdictName(v)}`);
  const r: TcpPacketRepr = {
    src: info.src,
    dst: info.dst,
    srcPort: info.srcPort,
    dstPort: info.dstPort,
    seq: info.seq,
    ack: info.ack,
    flags: info.flags,
    window: info.window,
    ttl: info.ttl,
    id: readU16(buf, off + 4),
    tos: buf[off + 1]!,
    urgent: readU16(buf, info.l4Off + 18),
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
  if (q.type === ICMP_DEST_UNREACH && q.code === 4) r.mtu = q.rest & 0xffff;
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
  const origTotal = Math.min(readU16(orig, 2), orig.length);
  const maxQuote = 576 - IPV4_MIN_HEADER - ICMP_HEADER_LEN;
  const qLen = Math.min(opts.quoteLen ?? maxQuote, origTotal);
  const len = IPV4_MIN_HEADER + ICMP_HEADER_LEN + qLen;
  const b = Buffer.alloc(len);
  b[0] = 0x45;
  b[1] = 0xc0; // Linux sends ICMP errors with TOS/precedence 0xc0 (internetwork control)
  writeU16(b, 2, len);
  writeU16(b, 4, u('id', opts.id ?? 0, 0xffff));
  writeU16(b, 6, 0);
  b[8] = u('ttl', opts.ttl ?? 64, 0xff);
  b[9] = IPPROTO_ICMP;
  writeU32(b, 12, u('src', opts.src, 0xffffffff));
  writeU32(b, 16, u('dst', opts.dst ?? readU32(orig, 12), 0xffffffff));
  fillIpv4HeaderChecksum(b, 0);
  const i = IPV4_MIN_HEADER;
  b[i] = u('type', opts.type ?? ICMP_DEST_UNREACH, 0xff);
  b[i + 1] = u('code', opts.code ?? ICMP_HOST_UNREACH, 0xff);
  writeU32(b, i + 4, 0);
  if (opts.mtu !== undefined) writeU16(b, i + 6, u('mtu', opts.mtu, 0xffff));
  b.set(orig.subarray(0, qLen), i + ICMP_HEADER_LEN);
  const c = checksum(b, i, ICMP_HEADER_LEN + qLen);
  writeU16(b, i + 2, c);
  return b;
}

/** True when the ICMP message checksum at buf[icmpOff, icmpOff+icmpLen) verifies. */
export function icmpChecksumOk(buf: Buffer, icmpOff: number, icmpLen: number): boolean {
  return checksum(buf, icmpOff, icmpLen) === 0;
}
