/**
 * TCP header (RFC 9293 section 3.1), as a view over a Buffer; `off` is the start of the
 * TCP header.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |          Source Port          |       Destination Port        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                        Sequence Number                        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Acknowledgment Number                      |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  Data |       |C|E|U|A|P|R|S|F|                               |
 *   | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
 *   |       |       |R|E|G|K|H|T|N|N|                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |           Checksum            |         Urgent Pointer        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                    Options                    |    Padding    |
 *
 * Sequence numbers read here are plain u32; compare them only through seq.ts.
 */

import { readU16, readU32, writeU16, writeU32 } from './ipv4.js';

/** Field offsets from the start of the TCP header. */
export const TCP_OFF_SRC_PORT = 0;
export const TCP_OFF_DST_PORT = 2;
export const TCP_OFF_SEQ = 4;
export const TCP_OFF_ACK = 8;
export const TCP_OFF_DATA_OFFSET = 12;
export const TCP_OFF_FLAGS = 13;
export const TCP_OFF_WINDOW = 14;
export const TCP_OFF_CHECKSUM = 16;
export const TCP_OFF_URGENT = 18;
export const TCP_MIN_HEADER = 20;
export const TCP_MAX_HEADER = 60;

/** Flag bits of byte 13. */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

/** Formats a flags byte like tcpdump ("S.", "F.", "R", "P."), for logs and tests. */
export function tcpFlagsString(flags: number): string {
  let s = '';
  if (flags & TCP_SYN) s += 'S';
  if (flags & TCP_FIN) s += 'F';
  if (flags & TCP_RST) s += 'R';
  if (flags & TCP_PSH) s += 'P';
  if (flags & TCP_URG) s += 'U';
  if (flags & TCP_ECE) s += 'E';
  if (flags & TCP_CWR) s += 'W';
  if (flags & TCP_ACK) s += '.';
  return s === '' ? 'none' : s;
}

const EMPTY = Buffer.alloc(0);

export class TcpView {
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

  get srcPort(): number {
    return readU16(this.buf, this.off + TCP_OFF_SRC_PORT);
  }
  set srcPort(v: number) {
    writeU16(this.buf, this.off + TCP_OFF_SRC_PORT, v);
  }

  get dstPort(): number {
    return readU16(this.buf, this.off + TCP_OFF_DST_PORT);
  }
  set dstPort(v: number) {
    writeU16(this.buf, this.off + TCP_OFF_DST_PORT, v);
  }

  get seq(): number {
    return readU32(this.buf, this.off + TCP_OFF_SEQ);
  }
  set seq(v: number) {
    writeU32(this.buf, this.off + TCP_OFF_SEQ, v);
  }

  get ack(): number {
    return readU32(this.buf, this.off + TCP_OFF_ACK);
  }
  set ack(v: number) {
    writeU32(this.buf, this.off + TCP_OFF_ACK, v);
  }

  /** Header length in BYTES (the Data Offset field times 4). */
  get dataOffset(): number {
    return (this.buf[this.off + TCP_OFF_DATA_OFFSET]! >>> 4) << 2;
  }
  /** Takes bytes; keeps the low (reserved/AE) bits of byte 12. */
  set dataOffset(bytes: number) {
    const o = this.off + TCP_OFF_DATA_OFFSET;
    this.buf[o] = (((bytes >>> 2) & 0x0f) << 4) | (this.buf[o]! & 0x0f);
  }

  /** Flags byte: FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32 ECE=64 CWR=128. */
  get flags(): number {
    return this.buf[this.off + TCP_OFF_FLAGS]!;
  }
  set flags(v: number) {
    this.buf[this.off + TCP_OFF_FLAGS] = v & 0xff;
  }

  /** The raw (unscaled) window field. */
  get window(): number {
    return readU16(this.buf, this.off + TCP_OFF_WINDOW);
  }
  set window(v: number) {
    writeU16(this.buf, this.off + TCP_OFF_WINDOW, v);
  }

  get checksum(): number {
    return readU16(this.buf, this.off + TCP_OFF_CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.buf, this.off + TCP_OFF_CHECKSUM, v);
  }

  get urgent(): number {
    return readU16(this.buf, this.off + TCP_OFF_URGENT);
  }
  set urgent(v: number) {
    writeU16(this.buf, this.off + TCP_OFF_URGENT, v);
  }

  /** Absolute offset of the first option byte (off + 20). */
  get optionsOff(): number {
    return this.off + TCP_MIN_HEADER;
  }
}
