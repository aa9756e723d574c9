/**
 * TCP options (RFC 9293 3.2 MSS/EOL/NOP, RFC 7323 window scale and timestamps,
 * RFC 2018 SACK).
 *
 * Two layers, as everywhere in wire/:
 *  - `parseTcpOptions` fills a reusable `TcpOptions` struct with values and ABSOLUTE
 *    buffer offsets (so the gateway can rewrite TSval/TSecr and SACK edges in place),
 *    allocation-free, for the forwarding path;
 *  - `decodeTcpOptions` / `encodeTcpOptions` convert to and from a plain repr for slow
 *    paths (SYN options kept per flow, tests). decode(encode(r)) deep-equals r.
 *
 * Structure errors (an option with length < 2, or running past the end) are malformed.
 * A known kind with a wrong length (MSS not 4 bytes, ...) is ignored as Linux does
 * (tcp_parse_options checks `opsize == TCPOLEN_*`): it counts as unknown and the repr
 * keeps it byte-exact in `unknown`.
 */

import { readU16, readU32 } from './ipv4.js';
import type { Seq } from './seq.js';

export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
export const TCPOPT_MSS = 2;
export const TCPOPT_WSCALE = 3;
export const TCPOPT_SACK_PERM = 4;
export const TCPOPT_SACK = 5;
export const TCPOPT_TS = 8;

export const TCPOLEN_MSS = 4;
export const TCPOLEN_WSCALE = 3;
export const TCPOLEN_SACK_PERM = 2;
export const TCPOLEN_TS = 10;
export const TCPOLEN_SACK_BASE = 2;
export const TCPOLEN_SACK_PERBLOCK = 8;
export const TCP_MAX_OPTIONS_LEN = 40;

/** Offsets from an option's kind byte: its length, its value; TSval and TSecr of the TS option. */
export const TCPOPT_OFF_LEN = 1;
export const TCPOPT_OFF_VALUE = 2;
export const TCPOPT_TS_OFF_VAL = 2;
export const TCPOPT_TS_OFF_ECR = 6;

/** Reusable parse result. Offsets are absolute offsets into the parsed buffer. */
export class TcpOptions {
  /** MSS value, -1 if absent. */
  mss = -1;
  mssOff = -1;
  /** Shift count, -1 if absent. */
  wscale = -1;
  wscaleOff = -1;
  sackPermitted = false;
  /** Offset of the TS option's kind byte (TSval at +2, TSecr at +6), -1 if absent. */
  tsOff = -1;
  tsVal = 0 as Seq;
  tsEcr = 0 as Seq;
  /** Offset of the first SACK block's left edge (blocks are 8 bytes: left, right), -1 if absent. */
  sackOff = -1;
  sackCount = 0;
  unknownCount = 0;

  reset(): void {
    this.mss = -1;
    this.mssOff = -1;
    this.wscale = -1;
    this.wscaleOff = -1;
    this.sackPermitted = false;
    this.tsOff = -1;
    this.tsVal = 0 as Seq;
    this.tsEcr = 0 as Seq;
    this.sackOff = -1;
    this.sackCount = 0;
    this.unknownCount = 0;
  }
}

/**
 * Structure-only walk used by parsePacket: returns true when every option fits.
 * Parsing stops at EOL; bytes after it are padding.
 */
export function tcpOptionsWellFormed(buf: Uint8Array, optOff: number, optLen: number): boolean {
  let i = optOff;
  const end = optOff + optLen;
  while (i < end) {
    const kind = buf[i]!;
    if (kind === TCPOPT_EOL) return true;
    if (kind === TCPOPT_NOP) {
      i++;
      continue;
    }
    if (i + TCPOPT_OFF_LEN >= end) return false;
    const len = buf[i + TCPOPT_OFF_LEN]!;
    if (len < 2 || i + len > end) return false;
    i += len;
  }
  return true;
}

/** Fills `out` from the options at buf[optOff, optOff+optLen). Returns false if malformed. */
export function parseTcpOptions(buf: Buffer, optOff: number, optLen: number, out: TcpOptions): boolean {
  out.reset();
  let i = optOff;
  const end = optOff + optLen;
  while (i < end) {
    const kind = buf[i]!;
    if (kind === TCPOPT_EOL) return true;
    if (kind === TCPOPT_NOP) {
      i++;
      continue;
    }
    if (i + TCPOPT_OFF_LEN >= end) return false;
    const len = buf[i + TCPOPT_OFF_LEN]!;
    if (len < 2 || i + len > end) return false;
    if (kind === TCPOPT_MSS && len === TCPOLEN_MSS) {
      out.mss = readU16(buf, i + TCPOPT_OFF_VALUE);
      out.mssOff = i;
    } else if (kind === TCPOPT_WSCALE && len === TCPOLEN_WSCALE) {
      out.wscale = buf[i + TCPOPT_OFF_VALUE]!;
      out.wscaleOff = i;
    } else if (kind === TCPOPT_SACK_PERM && len === TCPOLEN_SACK_PERM) {
      out.sackPermitted = true;
    } else if (kind === TCPOPT_TS && len === TCPOLEN_TS) {
      out.tsOff = i;
      out.tsVal = readU32(buf, i + TCPOPT_TS_OFF_VAL) as Seq;
      out.tsEcr = readU32(buf, i + TCPOPT_TS_OFF_ECR) as Seq;
    } else if (kind === TCPOPT_SACK && len >= TCPOLEN_SACK_BASE + TCPOLEN_SACK_PERBLOCK &&
      ((len - TCPOLEN_SACK_BASE) & 7) === 0) {
      out.sackOff = i + TCPOPT_OFF_VALUE;
      out.sackCount = (len - TCPOLEN_SACK_BASE) >>> 3;
    } else {
      out.unknownCount++;
    }
    i += len;
  }
  return true;
}

export interface TcpOptionsRepr {
  mss?: number;
  wscale?: number;
  sackPermitted?: boolean;
  timestamps?: { tsVal: number; tsEcr: number };
  /** SACK blocks as [left, right) edges. */
  sack?: Array<[number, number]>;
  /** Options of other kinds (or known kinds with a non-standard length), byte-exact. */
  unknown?: Array<{ kind: number; data: Uint8Array }>;
}

/**
 * Slow path: decodes option bytes into a repr. Throws RangeError on malformed structure.
 * NOP/EOL padding is dropped. A repeated known option: the last one wins (as in Linux).
 */
export function decodeTcpOptions(bytes: Uint8Array): TcpOptionsRepr {
  const r: TcpOptionsRepr = {};
  let i = 0;
  const end = bytes.length;
  while (i < end) {
    const kind = bytes[i]!;
    if (kind === TCPOPT_EOL) break;
    if (kind === TCPOPT_NOP) {
      i++;
      continue;
    }
    if (i + TCPOPT_OFF_LEN >= end) throw new RangeError(`TCP option kind ${kind} at ${i}: no length byte`);
    const len = bytes[i + TCPOPT_OFF_LEN]!;
    if (len < 2) throw new RangeError(`TCP option kind ${kind} at ${i}: length ${len} < 2`);
    if (i + len > end) throw new RangeError(`TCP option kind ${kind} at ${i}: length ${len} runs past the end`);
    if (kind === TCPOPT_MSS && len === TCPOLEN_MSS) {
      r.mss = readU16(bytes, i + TCPOPT_OFF_VALUE);
    } else if (kind === TCPOPT_WSCALE && len === TCPOLEN_WSCALE) {
      r.wscale = bytes[i + TCPOPT_OFF_VALUE]!;
    } else if (kind === TCPOPT_SACK_PERM && len === TCPOLEN_SACK_PERM) {
      r.sackPermitted = true;
    } else if (kind === TCPOPT_TS && len === TCPOLEN_TS) {
      r.timestamps = { tsVal: readU32(bytes, i + TCPOPT_TS_OFF_VAL), tsEcr: readU32(bytes, i + TCPOPT_TS_OFF_ECR) };
    } else if (kind === TCPOPT_SACK && len >= TCPOLEN_SACK_BASE + TCPOLEN_SACK_PERBLOCK &&
      ((len - TCPOLEN_SACK_BASE) & 7) === 0) {
      const blocks: Array<[number, number]> = [];
      for (let b = i + TCPOPT_OFF_VALUE; b < i + len; b += TCPOLEN_SACK_PERBLOCK) blocks.push([readU32(bytes, b), readU32(bytes, b + 4)]);
      r.sack = blocks;
    } else {
      (r.unknown ??= []).push({ kind, data: new Uint8Array(bytes.subarray(i + TCPOPT_OFF_VALUE, i + len)) });
    }
    i += len;
  }
  return r;
}

function checkInt(name: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`TCP option ${name}: ${v} out of range 0..${max}`);
}

/**
 * Slow path: encodes a repr with Linux's layout (tcp_options_write):
 *   MSS | SACK_PERM+TS (or NOP NOP TS, or NOP NOP SACK_PERM) | NOP WSCALE | NOP NOP SACK
 *   | unknown options | EOL padding to a multiple of 4.
 * Throws RangeError on out-of-range values or when the result exceeds 40 bytes.
 */
export function encodeTcpOptions(r: TcpOptionsRepr): Buffer {
  const out: number[] = [];
  const u16 = (v: number): void => {
    out.push((v >>> 8) & 0xff, v & 0xff);
  };
  const u32 = (v: number): void => {
    out.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  };
  if (r.mss !== undefined) {
    checkInt('mss', r.mss, 0xffff);
    out.push(TCPOPT_MSS, TCPOLEN_MSS);
    u16(r.mss);
  }
  const sackPerm = r.sackPermitted === true;
  if (r.timestamps !== undefined) {
    checkInt('tsVal', r.timestamps.tsVal, 0xffffffff);
    checkInt('tsEcr', r.timestamps.tsEcr, 0xffffffff);
    if (sackPerm) out.push(TCPOPT_SACK_PERM, TCPOLEN_SACK_PERM);
    else out.push(TCPOPT_NOP, TCPOPT_NOP);
    out.push(TCPOPT_TS, TCPOLEN_TS);
    u32(r.timestamps.tsVal);
    u32(r.timestamps.tsEcr);
  } else if (sackPerm) {
    out.push(TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK_PERM, TCPOLEN_SACK_PERM);
  }
  if (r.wscale !== undefined) {
    checkInt('wscale', r.wscale, 0xff);
    out.push(TCPOPT_NOP, TCPOPT_WSCALE, TCPOLEN_WSCALE, r.wscale);
  }
  if (r.sack !== undefined && r.sack.length > 0) {
    if (r.sack.length > 4) throw new RangeError(`TCP option sack: ${r.sack.length} blocks > 4`);
    out.push(TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK, TCPOLEN_SACK_BASE + TCPOLEN_SACK_PERBLOCK * r.sack.length);
    for (const [left, right] of r.sack) {
      checkInt('sack edge', left, 0xffffffff);
      checkInt('sack edge', right, 0xffffffff);
      u32(left);
      u32(right);
    }
  }
  for (const u of r.unknown ?? []) {
    checkInt('kind', u.kind, 0xff);
    if (u.kind === TCPOPT_EOL || u.kind === TCPOPT_NOP) throw new RangeError(`TCP option: unknown kind ${u.kind} is EOL/NOP`);
    if (u.data.length > TCP_MAX_OPTIONS_LEN - 2) throw new RangeError(`TCP option kind ${u.kind}: ${u.data.length} data bytes`);
    out.push(u.kind, u.data.length + 2, ...u.data);
  }
  while ((out.length & 3) !== 0) out.push(TCPOPT_EOL);
  if (out.length > TCP_MAX_OPTIONS_LEN) throw new RangeError(`TCP options: ${out.length} bytes > ${TCP_MAX_OPTIONS_LEN}`);
  return Buffer.from(out);
}

/**
 * The TSval of a segment whose options are buf[optOff, optOff+optLen), or -1: Linux puts
 * NOP NOP TS first on every non-SYN segment, so that shape is read directly; anything else
 * goes through the option parser (into `scratch`). Both wrappers read it on every segment.
 */
export function tsValOf(buf: Buffer, p: { readonly optOff: number; readonly optLen: number }, scratch: TcpOptions): number {
  const o = p.optOff;
  if (p.optLen >= 12 && buf[o] === 1 && buf[o + 1] === 1 && buf[o + 2] === 8 && buf[o + 3] === 10) return buf.readUInt32BE(o + 4);
  if (p.optLen === 0 || !parseTcpOptions(buf, o, p.optLen, scratch) || scratch.tsOff < 0) return -1;
  return scratch.tsVal;
}
