/**
 * In-place field rewrites with incremental checksum updates (RFC 1624), for the
 * forwarding path: sequence/ack translation, port and address changes, window, TSval /
 * TSecr and SACK edges. No allocation.
 *
 * Every function takes the absolute offset of the header it touches. A field at an odd
 * distance from the start of the checksummed data (TCP options can sit anywhere) is
 * handled by summing the even-aligned words that cover it before and after the write.
 */

import { csumReplace16, csumReplace32, csumReplaceSum, foldSum, onesSum } from './checksum.js';
import {
  IPPROTO_TCP, IPPROTO_UDP, IPV4_OFF_CHECKSUM, IPV4_OFF_DST, IPV4_OFF_PROTOCOL, IPV4_OFF_SRC, ipv4FragmentOffset, ipv4HeaderLen,
  readU16, readU32, writeU16, writeU32,
} from './ipv4.js';
import { TCP_OFF_ACK, TCP_OFF_CHECKSUM, TCP_OFF_DST_PORT, TCP_OFF_SEQ, TCP_OFF_SRC_PORT, TCP_OFF_WINDOW } from './tcp.js';
import { seqLe, seqLt, type Seq } from './seq.js';
import { TCPOPT_NOP } from './tcp-options.js';

/** UDP (RFC 768): the checksum field, and the header length. */
const UDP_OFF_CHECKSUM = 6;
const UDP_HEADER_LEN = 8;

/**
 * Writes a u16 at `fieldOff` and updates the checksum at `csumOff`; `base` is the start
 * of the checksummed data (for alignment).
 */
export function rewriteU16(buf: Buffer, base: number, csumOff: number, fieldOff: number, v: number): void {
  if (((fieldOff - base) & 1) === 0) {
    const old = readU16(buf, fieldOff);
    writeU16(buf, fieldOff, v);
    writeU16(buf, csumOff, csumReplace16(readU16(buf, csumOff), old, v));
    return;
  }
  const start = fieldOff - 1;
  const oldSum = foldSum(onesSum(buf, start, 4));
  writeU16(buf, fieldOff, v);
  writeU16(buf, csumOff, csumReplaceSum(readU16(buf, csumOff), oldSum, foldSum(onesSum(buf, start, 4))));
}

/** Writes a u32 at `fieldOff` and updates the checksum at `csumOff` (see rewriteU16). */
export function rewriteU32(buf: Buffer, base: number, csumOff: number, fieldOff: number, v: number): void {
  if (((fieldOff - base) & 1) === 0) {
    const old = readU32(buf, fieldOff);
    writeU32(buf, fieldOff, v);
    writeU16(buf, csumOff, csumReplace32(readU16(buf, csumOff), old, v));
    return;
  }
  const start = fieldOff - 1;
  const oldSum = foldSum(onesSum(buf, start, 6));
  writeU32(buf, fieldOff, v);
  writeU16(buf, csumOff, csumReplaceSum(readU16(buf, csumOff), oldSum, foldSum(onesSum(buf, start, 6))));
}

/** TCP field rewrites; `tcpOff` = start of the TCP header. */
export function tcpSetSeq(buf: Buffer, tcpOff: number, seq: Seq): void {
  rewriteU32(buf, tcpOff, tcpOff + TCP_OFF_CHECKSUM, tcpOff + TCP_OFF_SEQ, seq);
}
export function tcpSetAck(buf: Buffer, tcpOff: number, ack: Seq): void {
  rewriteU32(buf, tcpOff, tcpOff + TCP_OFF_CHECKSUM, tcpOff + TCP_OFF_ACK, ack);
}
export function tcpSetSrcPort(buf: Buffer, tcpOff: number, port: number): void {
  rewriteU16(buf, tcpOff, tcpOff + TCP_OFF_CHECKSUM, tcpOff + TCP_OFF_SRC_PORT, port);
}
export function tcpSetDstPort(buf: Buffer, tcpOff: number, port: number): void {
  rewriteU16(buf, tcpOff, tcpOff + TCP_OFF_CHECKSUM, tcpOff + TCP_OFF_DST_PORT, port);
}
export function tcpSetWindow(buf: Buffer, tcpOff: number, window: number): void {
  rewriteU16(buf, tcpOff, tcpOff + TCP_OFF_CHECKSUM, tcpOff + TCP_OFF_WINDOW, window);
}
/** Any u32 inside the TCP header or options (TSval at tsOff+2, TSecr at tsOff+6, SACK edges). */
export function tcpSetU32(buf: Buffer, tcpOff: number, fieldOff: number, v: number): void {
  rewriteU32(buf, tcpOff, tcpOff + TCP_OFF_CHECKSUM, fieldOff, v);
}

/**
 * Changes the IPv4 source or destination address, updating the header checksum and the
 * TCP/UDP checksum (the pseudo-header covers the addresses) when the L4 header is present
 * (first fragment) and long enough. A zero UDP checksum ("none") is left alone.
 */
function ipv4SetAddr(buf: Buffer, ipOff: number, fieldOff: number, addr: number, l4Len: number): void {
  const old = readU32(buf, ipOff + fieldOff);
  writeU32(buf, ipOff + fieldOff, addr);
  const ipc = ipOff + IPV4_OFF_CHECKSUM;
  writeU16(buf, ipc, csumReplace32(readU16(buf, ipc), old, addr));
  if (ipv4FragmentOffset(buf, ipOff) !== 0) return;
  const proto = buf[ipOff + IPV4_OFF_PROTOCOL]!;
  const l4 = ipOff + ipv4HeaderLen(buf, ipOff);
  if (proto === IPPROTO_TCP && l4Len >= TCP_OFF_CHECKSUM + 2) {
    const c = l4 + TCP_OFF_CHECKSUM;
    writeU16(buf, c, csumReplace32(readU16(buf, c), old, addr));
  } else if (proto === IPPROTO_UDP && l4Len >= UDP_HEADER_LEN) {
    const c = l4 + UDP_OFF_CHECKSUM;
    const cur = readU16(buf, c);
    if (cur !== 0) {
      const n = csumReplace32(cur, old, addr);
      writeU16(buf, c, n === 0 ? 0xffff : n); // RFC 768: a computed 0 is sent as all ones
    }
  }
}

/** `l4Len`: bytes of L4 present (PacketInfo.l4Len). */
export function ipv4SetSrc(buf: Buffer, ipOff: number, addr: number, l4Len: number): void {
  ipv4SetAddr(buf, ipOff, IPV4_OFF_SRC, addr, l4Len);
}
export function ipv4SetDst(buf: Buffer, ipOff: number, addr: number, l4Len: number): void {
  ipv4SetAddr(buf, ipOff, IPV4_OFF_DST, addr, l4Len);
}

/**
 * Removes the SACK blocks of a TCP segment whose right edge is at or before `ack` (a D-SACK,
 * RFC 2883: a block below the cumulative ack reports a duplicate the receiver got), in place.
 * The option keeps its place: the blocks left are moved up, its length lowered, and the bytes
 * freed become NOPs (an option with no block left becomes NOPs entirely: a SACK option needs
 * one). `sackOff`, `count`: TcpOptions.sackOff / sackCount from parseTcpOptions on this
 * buffer. The TCP checksum is updated over the option area (optOff is 4-aligned from the
 * header, optLen a multiple of 4). Returns the number of blocks removed.
 */
export function tcpDropSackBelow(buf: Buffer, tcpOff: number, optOff: number, optLen: number, sackOff: number, count: number, ack: Seq): number {
  return dropSack(buf, tcpOff, optOff, optLen, sackOff, count, ack, ack, false);
}

/**
 * The sibling for an ack the receiver's peer is not shown: removes the blocks whose right edge
 * lies in (`above`, `upTo`], as tcpDropSackBelow does (same arguments, same result). A gateway
 * that lowers a receiver's ack from `upTo` to `above` takes out what the receiver reported
 * between the two (a duplicate it got below its own ack, RFC 2883): shown with the lower ack,
 * such a block reads as data the receiver holds out of order (RFC 2018), and the sender would
 * not resend it; one that starts below `above` is a D-SACK straddling the ack, which a sender
 * ignores (Linux tcp_is_sackblock_valid). Blocks above `upTo` (out-of-order data) are kept.
 */
export function tcpDropSackBetween(buf: Buffer, tcpOff: number, optOff: number, optLen: number, sackOff: number, count: number, above: Seq, upTo: Seq): number {
  return dropSack(buf, tcpOff, optOff, optLen, sackOff, count, above, upTo, true);
}

/** A block's right edge `r` is removed when r ≤ upTo and, if `bounded`, above < r. */
function dropped(r: Seq, above: Seq, upTo: Seq, bounded: boolean): boolean {
  return seqLe(r, upTo) && (!bounded || seqLt(above, r));
}

function dropSack(buf: Buffer, tcpOff: number, optOff: number, optLen: number, sackOff: number, count: number,
  above: Seq, upTo: Seq, bounded: boolean): number {
  let kept = 0;
  for (let i = 0; i < count; i++) {
    if (!dropped(readU32(buf, sackOff + 8 * i + 4) as Seq, above, upTo, bounded)) kept++;
  }
  if (kept === count) return 0;
  const oldSum = foldSum(onesSum(buf, optOff, optLen));
  let w = sackOff;
  for (let i = 0; i < count; i++) {
    const b = sackOff + 8 * i;
    if (dropped(readU32(buf, b + 4) as Seq, above, upTo, bounded)) continue;
    if (w !== b) buf.copy(buf, w, b, b + 8);
    w += 8;
  }
  const kind = sackOff - 2;
  if (kept === 0) {
    buf.fill(TCPOPT_NOP, kind, sackOff + 8 * count);
  } else {
    buf[kind + 1] = 2 + 8 * kept;
    buf.fill(TCPOPT_NOP, w, sackOff + 8 * count);
  }
  const c = tcpOff + TCP_OFF_CHECKSUM;
  writeU16(buf, c, csumReplaceSum(readU16(buf, c), oldSum, foldSum(onesSum(buf, optOff, optLen))));
  return count - kept;
}
