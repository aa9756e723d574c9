/**
 * One parse step for a packet from the TUN: validate the IPv4 header, classify, and for
 * TCP validate the header and the option structure. Results go into a reusable
 * `PacketInfo`; the return value is a `Verdict` (a small int). Never throws, never
 * allocates (gVisor's header validation + Linux's named drop reasons).
 *
 * Checks, in order (the first failure is the verdict):
 *   len < 1                                    TOO_SHORT
 *   version 6                                  IPV6         (not parsed further)
 *   version != 4                               BAD_VERSION
 *   len < 20                                   TOO_SHORT
 *   IHL < 5, or IHL*4 > len                    BAD_IHL
 *   totalLen < IHL*4, or totalLen > len        BAD_TOTAL_LENGTH  (bytes past totalLen,
 *                                                                  link padding, are ignored)
 *   MF set or fragment offset != 0             IPV4_FRAGMENT (L4 not parsed)
 *   TCP: segment < 20 bytes                    TCP_TOO_SHORT
 *        data offset < 20 or > segment         BAD_TCP_OFFSET
 *        an option with length < 2 or past
 *        the header's end                      BAD_TCP_OPTION
 *   ICMP: message < 8 bytes                    ICMP_TOO_SHORT
 *   other protocols                            IPV4_OTHER
 *
 * Checksums are NOT verified here (most traffic is not ours to judge): the gateway verifies
 * them for the protected services' segments only, before they change a flow or reach the
 * log (checksumVerdict below; verdicts BAD_IPV4_CHECKSUM, BAD_TCP_CHECKSUM).
 */

import {
  IPPROTO_ICMP, IPPROTO_TCP, IPV4_MIN_HEADER, IPV4_OFF_DST, IPV4_OFF_PROTOCOL, IPV4_OFF_SRC, IPV4_OFF_TOTAL_LENGTH, IPV4_OFF_TTL,
  ipv4HeaderLen, ipv4IsFragment, ipv4Version, readU16, readU32,
} from './ipv4.js';
import {
  TCP_MIN_HEADER, TCP_OFF_ACK, TCP_OFF_DST_PORT, TCP_OFF_FLAGS, TCP_OFF_SEQ, TCP_OFF_SRC_PORT, TCP_OFF_WINDOW, tcpHeaderLen,
} from './tcp.js';
import { ICMP_HEADER_LEN } from './icmp.js';
import { tcpOptionsWellFormed } from './tcp-options.js';
import { ipv4HeaderChecksumOk, tcpChecksumOk } from './checksum.js';
import type { Seq } from './seq.js';

export const Verdict = {
  IPV4_TCP: 0,
  IPV4_ICMP: 1,
  IPV4_OTHER: 2,
  IPV4_FRAGMENT: 3,
  IPV6: 4,
  // Drop reasons (>= FIRST_DROP).
  TOO_SHORT: 5,
  BAD_VERSION: 6,
  BAD_IHL: 7,
  BAD_TOTAL_LENGTH: 8,
  TCP_TOO_SHORT: 9,
  BAD_TCP_OFFSET: 10,
  BAD_TCP_OPTION: 11,
  ICMP_TOO_SHORT: 12,
  // Not parsePacket's: the gateway's checksum verification of protected traffic
  // (Gateway.routeOne, with checksumVerdict below).
  BAD_IPV4_CHECKSUM: 13,
  BAD_TCP_CHECKSUM: 14,
} as const;

export type Verdict = (typeof Verdict)[keyof typeof Verdict];

export const FIRST_DROP = Verdict.TOO_SHORT;
export const VERDICT_COUNT = 15;

const NAMES: readonly string[] = (() => {
  const a: string[] = new Array<string>(VERDICT_COUNT).fill('');
  for (const [k, v] of Object.entries(Verdict)) a[v] = k;
  return a;
})();

/** The verdict's name ("BAD_IHL"), or "UNKNOWN_<n>". Returns a constant string. */
export function verdictName(v: number): string {
  return v >= 0 && v < VERDICT_COUNT ? NAMES[v]! : `UNKNOWN_${v}`;
}

/** True for drop reasons (malformed packets). */
export function isDrop(v: number): boolean {
  return v >= FIRST_DROP;
}

/** Filled by parsePacket. All offsets are absolute offsets into the buffer. */
export class PacketInfo {
  ipOff = 0;
  ipHdrLen = 0;
  /** IPv4 total length (bytes past it in the buffer are link padding). */
  totalLen = 0;
  proto = 0;
  src = 0;
  dst = 0;
  ttl = 0;
  l4Off = 0;
  l4Len = 0;
  // TCP only (zero otherwise).
  srcPort = 0;
  dstPort = 0;
  seq = 0 as Seq;
  ack = 0 as Seq;
  tcpHdrLen = 0;
  flags = 0;
  window = 0;
  optOff = 0;
  optLen = 0;
  payloadOff = 0;
  payloadLen = 0;

  clearTcp(): void {
    this.srcPort = 0;
    this.dstPort = 0;
    this.seq = 0 as Seq;
    this.ack = 0 as Seq;
    this.tcpHdrLen = 0;
    this.flags = 0;
    this.window = 0;
    this.optOff = 0;
    this.optLen = 0;
    this.payloadOff = 0;
    this.payloadLen = 0;
  }
}

/**
 * Parses buf[off, off+len) as an IPv4 packet into `out`; returns a Verdict. On a drop
 * verdict the fields of `out` that were not reached are unspecified.
 */
export function parsePacket(buf: Buffer, off: number, len: number, out: PacketInfo): number {
  out.ipOff = off;
  if (len < 1 || off < 0 || off + len > buf.length) return Verdict.TOO_SHORT;
  const version = ipv4Version(buf, off);
  if (version === 6) return Verdict.IPV6;
  if (version !== 4) return Verdict.BAD_VERSION;
  if (len < IPV4_MIN_HEADER) return Verdict.TOO_SHORT;
  const hl = ipv4HeaderLen(buf, off);
  if (hl < IPV4_MIN_HEADER || hl > len) return Verdict.BAD_IHL;
  const total = readU16(buf, off + IPV4_OFF_TOTAL_LENGTH);
  if (total < hl || total > len) return Verdict.BAD_TOTAL_LENGTH;
  const proto = buf[off + IPV4_OFF_PROTOCOL]!;
  out.ipHdrLen = hl;
  out.totalLen = total;
  out.proto = proto;
  out.ttl = buf[off + IPV4_OFF_TTL]!;
  out.src = readU32(buf, off + IPV4_OFF_SRC);
  out.dst = readU32(buf, off + IPV4_OFF_DST);
  const l4Off = off + hl;
  const l4Len = total - hl;
  out.l4Off = l4Off;
  out.l4Len = l4Len;
  out.clearTcp();
  // MF or a non-zero offset: a fragment, first or not.
  if (ipv4IsFragment(buf, off)) return Verdict.IPV4_FRAGMENT;
  if (proto === IPPROTO_TCP) {
    if (l4Len < TCP_MIN_HEADER) return Verdict.TCP_TOO_SHORT;
    const thl = tcpHeaderLen(buf, l4Off);
    if (thl < TCP_MIN_HEADER || thl > l4Len) return Verdict.BAD_TCP_OFFSET;
    if (thl > TCP_MIN_HEADER && !tcpOptionsWellFormed(buf, l4Off + TCP_MIN_HEADER, thl - TCP_MIN_HEADER)) return Verdict.BAD_TCP_OPTION;
    out.srcPort = readU16(buf, l4Off + TCP_OFF_SRC_PORT);
    out.dstPort = readU16(buf, l4Off + TCP_OFF_DST_PORT);
    out.seq = readU32(buf, l4Off + TCP_OFF_SEQ) as Seq;
    out.ack = readU32(buf, l4Off + TCP_OFF_ACK) as Seq;
    out.tcpHdrLen = thl;
    out.flags = buf[l4Off + TCP_OFF_FLAGS]!;
    out.window = readU16(buf, l4Off + TCP_OFF_WINDOW);
    out.optOff = l4Off + TCP_MIN_HEADER;
    out.optLen = thl - TCP_MIN_HEADER;
    out.payloadOff = l4Off + thl;
    out.payloadLen = l4Len - thl;
    return Verdict.IPV4_TCP;
  }
  if (proto === IPPROTO_ICMP) {
    if (l4Len < ICMP_HEADER_LEN) return Verdict.ICMP_TOO_SHORT;
    return Verdict.IPV4_ICMP;
  }
  return Verdict.IPV4_OTHER;
}

/**
 * The checksums of an IPv4 TCP packet that parsePacket accepted (`info` filled by it):
 * IPV4_TCP when they verify, else BAD_IPV4_CHECKSUM or BAD_TCP_CHECKSUM. `tcpTrusted`: the
 * device vouches for the TCP checksum (virtio-net NEEDS_CSUM: the kernel fills it in on the
 * way out, so the receiver will accept the bytes as they are; DATA_VALID: the kernel
 * verified it), and only the IPv4 header's is summed. Never throws, never allocates.
 */
export function checksumVerdict(buf: Buffer, info: PacketInfo, tcpTrusted: boolean): number {
  if (!ipv4HeaderChecksumOk(buf, info.ipOff)) return Verdict.BAD_IPV4_CHECKSUM;
  if (!tcpTrusted && !tcpChecksumOk(buf, info.ipOff)) return Verdict.BAD_TCP_CHECKSUM;
  return Verdict.IPV4_TCP;
}

/** Counts verdicts (drop reasons and classes alike) in a flat array; snapshot by name. */
export class DropCounters {
  readonly counts: Float64Array = new Float64Array(VERDICT_COUNT);
  unknown = 0;

  count(v: number): void {
    if (v >= 0 && v < VERDICT_COUNT) this.counts[v]!++;
    else this.unknown++;
  }

  get(v: number): number {
    return v >= 0 && v < VERDICT_COUNT ? this.counts[v]! : 0;
  }

  /** Total of the drop reasons only. */
  get drops(): number {
    let n = 0;
    for (let v = FIRST_DROP; v < VERDICT_COUNT; v++) n += this.counts[v]!;
    return n;
  }

  /** Every verdict name with its count (zeros included, so the shape is stable). */
  snapshot(): Record<string, number> {
    const r: Record<string, number> = {};
    for (let v = 0; v < VERDICT_COUNT; v++) r[NAMES[v]!] = this.counts[v]!;
    if (this.unknown > 0) r.UNKNOWN = this.unknown;
    return r;
  }

  reset(): void {
    this.counts.fill(0);
    this.unknown = 0;
  }
}
