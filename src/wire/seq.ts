/**
 * 32-bit TCP sequence-number arithmetic (RFC 793 section 3.3, RFC 1982 serial numbers;
 * Linux include/net/tcp.h before()/after()/between(); gVisor pkg/tcpip/seqnum).
 *
 * This is the ONLY module that compares or adds sequence numbers. Everywhere else a
 * sequence number is an opaque `Seq`; no bare `<`, `>` or `+` touches one.
 *
 *          seqLt(a, b)  <=>  (int32)(a - b) < 0
 *
 *   0 ........ a ====== 2^31 ======> b ........ 2^32-1 (wraps to 0)
 *
 * Two numbers more than 2^31 apart compare the "short way round", like Linux.
 * All results are normalised with `>>> 0` (non-negative, < 2^32).
 */

/** An unsigned 32-bit sequence number, always normalised with `>>> 0`. */
export type Seq = number;

/** (a + n) mod 2^32. `n` may be negative (any integer with |n| < 2^53). */
export function seqAdd(a: Seq, n: number): Seq {
  return (a + n) >>> 0;
}

/** Signed distance a - b, as an int32 in [-2^31, 2^31). */
export function seqDiff(a: Seq, b: Seq): number {
  return (a - b) | 0;
}

/** Linux before(a, b). */
export function seqLt(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) < 0;
}

export function seqLe(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) <= 0;
}

/** Linux after(a, b). */
export function seqGt(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) > 0;
}

export function seqGe(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) >= 0;
}

export function seqMax(a: Seq, b: Seq): Seq {
  return ((a - b) | 0) >= 0 ? a >>> 0 : b >>> 0;
}

export function seqMin(a: Seq, b: Seq): Seq {
  return ((a - b) | 0) <= 0 ? a >>> 0 : b >>> 0;
}

/**
 * start <= x < start + len (mod 2^32), len in [0, 2^32). An empty window (len 0)
 * contains nothing. Computed as an unsigned offset so windows up to 2^32-1 work
 * (a scaled TCP window may exceed 2^31).
 */
export function seqInWindow(x: Seq, start: Seq, len: number): boolean {
  return ((x - start) >>> 0) < len;
}

/** Linux between(seq2, seq1, seq3): seq1 <= x <= seq3 (inclusive both ends). */
export function seqBetween(x: Seq, lo: Seq, hi: Seq): boolean {
  return ((hi - lo) >>> 0) >= ((x - lo) >>> 0);
}
