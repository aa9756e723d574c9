/**
 * The virtio-net header (struct virtio_net_hdr_v1, include/uapi/linux/virtio_net.h) that a
 * TUN opened with IFF_VNET_HDR puts in front of every packet it reads and expects in front
 * of every packet written to it. With TUNSETVNETHDRSZ 12 it is the v1 / mrg_rxbuf layout:
 *
 *    0        1        2        4          6            8             10            12
 *   +--------+--------+--------+----------+------------+-------------+-------------+
 *   | flags  |gso_type|hdr_len | gso_size | csum_start | csum_offset | num_buffers |
 *   +--------+--------+--------+----------+------------+-------------+-------------+
 *
 * Multi-byte fields are little-endian (virtio 1.0; a legacy TUN uses host order, which is
 * little-endian on every machine this runs on).
 *
 * flags NEEDS_CSUM: the L4 checksum is PARTIAL: the field at csum_start + csum_offset holds
 *   the folded (not complemented) pseudo-header sum, and whoever finishes the packet sums
 *   [csum_start, end) with that value in place and stores the complement there.
 * flags DATA_VALID: the checksum was verified (or need not be).
 * gso_type TCPV4/TCPV6: a super-packet of up to 64 KB; the kernel cuts it into gso_size
 *   payload pieces, each with the first hdr_len bytes (IP + TCP header) in front, and the
 *   sequence numbers, IP ids and checksums fixed per piece.
 *
 * Accessors (functions of a Buffer and the header's offset) for the hot path; `VnetHdr` with
 * parseVnet / encodeVnet for tests and slow paths.
 */
import { foldSum, onesSum } from './checksum.js';
import { IPV4_OFF_PROTOCOL, IPV4_OFF_SRC, IPV4_OFF_TOTAL_LENGTH, ipv4HeaderLen, readU16 } from './ipv4.js';

/** Bytes of the header as configured (TUNSETVNETHDRSZ). */
export const VNET_HDR_LEN = 12;

export const VNET_F_NEEDS_CSUM = 1;
export const VNET_F_DATA_VALID = 2;
export const VNET_F_RSC_INFO = 4;

export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_UDP = 3;
export const VNET_GSO_TCPV6 = 4;
export const VNET_GSO_UDP_L4 = 5;
export const VNET_GSO_ECN = 0x80;

export const VNET_OFF_FLAGS = 0;
export const VNET_OFF_GSO_TYPE = 1;
export const VNET_OFF_HDR_LEN = 2;
export const VNET_OFF_GSO_SIZE = 4;
export const VNET_OFF_CSUM_START = 6;
export const VNET_OFF_CSUM_OFFSET = 8;
export const VNET_OFF_NUM_BUFFERS = 10;

export interface VnetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  numBuffers: number;
}

export function le16(buf: Uint8Array, off: number): number {
  return buf[off]! | (buf[off + 1]! << 8);
}

export function setLe16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v & 0xff;
  buf[off + 1] = (v >>> 8) & 0xff;
}

// ---- accessors (off = start of the virtio-net header) ------------------------------

export const vnetFlags = (b: Uint8Array, off: number): number => b[off + VNET_OFF_FLAGS]!;
export const vnetGsoType = (b: Uint8Array, off: number): number => b[off + VNET_OFF_GSO_TYPE]!;
export const vnetHdrLen = (b: Uint8Array, off: number): number => le16(b, off + VNET_OFF_HDR_LEN);
export const vnetGsoSize = (b: Uint8Array, off: number): number => le16(b, off + VNET_OFF_GSO_SIZE);
export const vnetCsumStart = (b: Uint8Array, off: number): number => le16(b, off + VNET_OFF_CSUM_START);
export const vnetCsumOffset = (b: Uint8Array, off: number): number => le16(b, off + VNET_OFF_CSUM_OFFSET);

export function setVnetFlags(b: Uint8Array, off: number, v: number): void {
  b[off + VNET_OFF_FLAGS] = v;
}
export function setVnetHdrLen(b: Uint8Array, off: number, v: number): void {
  setLe16(b, off + VNET_OFF_HDR_LEN, v);
}

/** Parses a header; null when fewer than VNET_HDR_LEN bytes are there. */
export function parseVnet(buf: Uint8Array, off = 0): VnetHdr | null {
  if (off < 0 || off + VNET_HDR_LEN > buf.length) return null;
  return {
    flags: buf[off + VNET_OFF_FLAGS]!,
    gsoType: buf[off + VNET_OFF_GSO_TYPE]!,
    hdrLen: le16(buf, off + VNET_OFF_HDR_LEN),
    gsoSize: le16(buf, off + VNET_OFF_GSO_SIZE),
    csumStart: le16(buf, off + VNET_OFF_CSUM_START),
    csumOffset: le16(buf, off + VNET_OFF_CSUM_OFFSET),
    numBuffers: le16(buf, off + VNET_OFF_NUM_BUFFERS),
  };
}

/** Writes `h` at `off` (a fresh 12-byte Buffer when `buf` is not given) and returns the buffer. */
export function encodeVnet(h: Partial<VnetHdr>, buf: Buffer = Buffer.alloc(VNET_HDR_LEN), off = 0): Buffer {
  buf[off + VNET_OFF_FLAGS] = h.flags ?? 0;
  buf[off + VNET_OFF_GSO_TYPE] = h.gsoType ?? VNET_GSO_NONE;
  setLe16(buf, off + VNET_OFF_HDR_LEN, h.hdrLen ?? 0);
  setLe16(buf, off + VNET_OFF_GSO_SIZE, h.gsoSize ?? 0);
  setLe16(buf, off + VNET_OFF_CSUM_START, h.csumStart ?? 0);
  setLe16(buf, off + VNET_OFF_CSUM_OFFSET, h.csumOffset ?? 0);
  setLe16(buf, off + VNET_OFF_NUM_BUFFERS, h.numBuffers ?? 0);
  return buf;
}

/** The zeroed header: flags 0, GSO NONE (a complete packet with a complete checksum). */
export function zeroVnet(buf: Uint8Array, off: number): void {
  buf.fill(0, off, off + VNET_HDR_LEN);
}

// ---- partial checksums ---------------------------------------------------------------

/**
 * The value a NEEDS_CSUM IPv4 TCP/UDP packet carries in its checksum field: the folded
 * pseudo-header sum (source, destination, protocol, L4 length = total length − IHL), not
 * complemented, as Linux's `~tcp_v4_check(len, saddr, daddr, 0)` leaves it. For a GSO
 * super-packet the length is the whole super-packet's, which is what the kernel's
 * segmentation (tcp_gso_segment) corrects per piece.
 */
export function ipv4PseudoSum(buf: Uint8Array, ipOff: number): number {
  const l4Len = readU16(buf, ipOff + IPV4_OFF_TOTAL_LENGTH) - ipv4HeaderLen(buf, ipOff);
  return foldSum(onesSum(buf, ipOff + IPV4_OFF_SRC, 8, buf[ipOff + IPV4_OFF_PROTOCOL]! + l4Len));
}

/**
 * Finishes a partial checksum as the device would (`skb_checksum_help`): sums
 * [csumStart, pktLen) of the packet at `pktOff`, with the pseudo-header sum in the field,
 * and stores the complement in the field. The packet's checksum is then complete.
 */
export function finishPartialChecksum(buf: Uint8Array, pktOff: number, pktLen: number, csumStart: number, csumOffset: number): void {
  const field = pktOff + csumStart + csumOffset;
  const c = ~foldSum(onesSum(buf, pktOff + csumStart, pktLen - csumStart)) & 0xffff;
  buf[field] = c >>> 8;
  buf[field + 1] = c & 0xff;
}
