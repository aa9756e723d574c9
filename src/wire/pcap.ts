/**
 * Classic libpcap files (https://www.tcpdump.org/manpages/pcap-savefile.5.html).
 *
 *   global header (24 bytes): magic, version 2.4, thiszone, sigfigs, snaplen, linktype
 *   per record (16 bytes):    ts_sec, ts_usec|ts_nsec, incl_len, orig_len, then data
 *
 * Magic 0xa1b2c3d4 = microsecond timestamps, 0xa1b23c4d = nanosecond; either byte order
 * on read. Link types read: RAW (101), IPV4 (228), ETHERNET (1, with 802.1Q/802.1ad
 * tags), LINUX_SLL (113), LINUX_SLL2 (276). pcapng is not supported (tcpdump -w writes
 * classic pcap).
 */

import { ipv4Version, readU16 } from './ipv4.js';

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_LINUX_SLL2 = 276;

const MAGIC_US = 0xa1b2c3d4;
const MAGIC_NS = 0xa1b23c4d;
const PCAPNG_MAGIC = 0x0a0d0d0a;
/** libpcap's MAXIMUM_SNAPLEN: a record claiming more captured bytes is corrupt. */
export const MAX_CAPLEN = 262144;

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const ETHERTYPE_QINQ = 0x88a8;
/** Link headers: where the EtherType (or protocol) field is, and where the IP header starts. */
const ETHER_OFF_TYPE = 12;
const VLAN_TAG_LEN = 4;
const SLL_OFF_PROTOCOL = 14;
const SLL_HEADER_LEN = 16;
const SLL2_OFF_PROTOCOL = 0;
const SLL2_HEADER_LEN = 20;

export interface PcapRecord {
  tsNs: bigint;
  linktype: number;
  /** The captured bytes (a view into the file buffer), link header included. */
  data: Buffer;
  /** Offset of the IP header inside `data`, or -1 when the frame is not IPv4/IPv6. */
  ipOff: number;
  /** Original length on the wire (>= data.length when the capture was truncated). */
  origLen: number;
}

export class PcapWriter {
  readonly linktype: number;
  readonly nanosecond: boolean;
  readonly snaplen: number;
  private readonly chunks: Buffer[] = [];

  /** Defaults: LINKTYPE_RAW, microsecond timestamps (the most widely readable), snaplen 262144. */
  constructor(linktype = LINKTYPE_RAW, opts: { nanosecond?: boolean; snaplen?: number } = {}) {
    this.linktype = linktype;
    this.nanosecond = opts.nanosecond ?? false;
    this.snaplen = opts.snaplen ?? 262144;
    const h = Buffer.alloc(24);
    h.writeUInt32LE(this.nanosecond ? MAGIC_NS : MAGIC_US, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeInt32LE(0, 8);
    h.writeUInt32LE(0, 12);
    h.writeUInt32LE(this.snaplen, 16);
    h.writeUInt32LE(linktype, 20);
    this.chunks.push(h);
  }

  /** Appends a record; the packet is copied (truncated to snaplen). */
  add(tsNs: bigint, pkt: Uint8Array): void {
    if (tsNs < 0n) throw new RangeError('pcap timestamp before the epoch');
    const sec = tsNs / 1_000_000_000n;
    if (sec > 0xffffffffn) throw new RangeError('pcap timestamp beyond 2106');
    const frac = tsNs % 1_000_000_000n;
    const incl = Math.min(pkt.length, this.snaplen);
    const r = Buffer.alloc(16 + incl);
    r.writeUInt32LE(Number(sec), 0);
    r.writeUInt32LE(Number(this.nanosecond ? frac : frac / 1000n), 4);
    r.writeUInt32LE(incl, 8);
    r.writeUInt32LE(pkt.length, 12);
    r.set(pkt.subarray(0, incl), 16);
    this.chunks.push(r);
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Where the IP header starts in a frame of the given link type, or -1. */
export function linkIpOffset(linktype: number, data: Uint8Array): number {
  const isIp = (off: number): number => {
    if (off >= data.length) return -1;
    const v = ipv4Version(data, off); // the version nibble sits in the same place in IPv6
    return v === 4 || v === 6 ? off : -1;
  };
  const etherIp = (type: number, off: number): number =>
    type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? isIp(off) : -1;
  switch (linktype) {
    case LINKTYPE_RAW:
    case LINKTYPE_IPV4:
      return isIp(0);
    case LINKTYPE_ETHERNET: {
      let off = ETHER_OFF_TYPE;
      if (data.length < off + 2) return -1;
      let type = readU16(data, off);
      // Up to two VLAN tags.
      for (let n = 0; n < 2 && (type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ); n++) {
        off += VLAN_TAG_LEN;
        if (data.length < off + 2) return -1;
        type = readU16(data, off);
      }
      return etherIp(type, off + 2);
    }
    case LINKTYPE_LINUX_SLL:
      if (data.length < SLL_HEADER_LEN) return -1;
      return etherIp(readU16(data, SLL_OFF_PROTOCOL), SLL_HEADER_LEN);
    case LINKTYPE_LINUX_SLL2:
      if (data.length < SLL2_HEADER_LEN) return -1;
      return etherIp(readU16(data, SLL2_OFF_PROTOCOL), SLL2_HEADER_LEN);
    default:
      return -1;
  }
}

/** Reads a classic pcap file. Throws RangeError on a bad header or a truncated record. */
export function readPcap(buf: Buffer): PcapRecord[] {
  if (buf.length < 24) throw new RangeError('pcap: file shorter than its 24-byte header');
  let le: boolean;
  let ns: boolean;
  const m = buf.readUInt32LE(0);
  if (m === MAGIC_US || m === MAGIC_NS) {
    le = true;
    ns = m === MAGIC_NS;
  } else {
    const mb = buf.readUInt32BE(0);
    if (mb !== MAGIC_US && mb !== MAGIC_NS) {
      if (m === PCAPNG_MAGIC) throw new RangeError('pcap: this is a pcapng file; write classic pcap (tcpdump -w)');
      throw new RangeError(`pcap: bad magic 0x${m.toString(16)}`);
    }
    le = false;
    ns = mb === MAGIC_NS;
  }
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  // The low 16 bits carry the link type; the upper bits are FCS info (pcap-savefile(5)).
  const linktype = u32(20) & 0xffff;
  const out: PcapRecord[] = [];
  let o = 24;
  while (o < buf.length) {
    if (o + 16 > buf.length) throw new RangeError(`pcap: truncated record header at ${o}`);
    const sec = BigInt(u32(o));
    const frac = BigInt(u32(o + 4));
    const incl = u32(o + 8);
    const orig = u32(o + 12);
    if (incl > MAX_CAPLEN) throw new RangeError(`pcap: record at ${o} claims ${incl} captured bytes, more than any capture holds (${MAX_CAPLEN})`);
    if (o + 16 + incl > buf.length) throw new RangeError(`pcap: truncated record at ${o} (${incl} bytes)`);
    const data = buf.subarray(o + 16, o + 16 + incl);
    out.push({
      tsNs: sec * 1_000_000_000n + (ns ? frac : frac * 1000n),
      linktype,
      data,
      ipOff: linkIpOffset(linktype, data),
      origLen: orig,
    });
    o += 16 + incl;
  }
  return out;
}
