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

declare const seqBrand: unique symbol;
declare const offsetBrand: unique symbol;

/**
 * An unsigned 32-bit sequence number, always normalised with `>>> 0`. Branded (a type-only
 * tag, nothing at run time) so that tsc rejects a plain number or a stream `Offset` where a
 * sequence number is expected: one is made only by the arithmetic below or by a cast at a
 * boundary (a raw header read, an ISN, a literal). TCP timestamps (TSval, TSecr) are typed
 * `Seq` too: 32-bit serial numbers that PAWS compares the same way (RFC 7323 §5.2); a
 * tsValOf result is cast where it is read, its -1 (no timestamp) checked before any use.
 */
export type Seq = number & { readonly [seqBrand]: true };

/**
 * A byte offset in a connection's in-stream or out-stream (DESIGN.md §2): counts from the
 * ISN + 1, never wraps (up to 2^53). Flow.inSeq/outSeq and inOffset/outOffset convert
 * between the two. A soft brand: offset arithmetic is plain `+`/`<` on numbers, so any
 * number is an Offset, but a `Seq` is not, and a value declared `Offset` is neither a `Seq`
 * nor a `SeqDelta` (tsc rejects the mixing both ways without a cast on every sum).
 */
export type Offset = number & { readonly [offsetBrand]?: true; readonly [seqBrand]?: never };

/**
 * The `n` of seqAdd: any number but an `Offset` (adding a whole stream offset to a sequence
 * number is the mixing the brands exist to catch; reduce it mod 2^32 first, as Flow.inSeq
 * does) or a `Seq` (a sum of two sequence numbers means nothing).
 */
export type SeqDelta = number & { readonly [offsetBrand]?: never; readonly [seqBrand]?: never };

/** (a + n) mod 2^32. `n` may be negative (any integer with |n| < 2^53). */
export function seqAdd(a: Seq, n: SeqDelta): Seq {
  return (a + n) >>> 0 as Seq;
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
  return ((a - b) | 0) >= 0 ? a >>> 0 as Seq : b >>> 0 as Seq;
}

export function seqMin(a: Seq, b: Seq): Seq {
  return ((a - b) | 0) <= 0 ? a >>> 0 as Seq : b >>> 0 as Seq;
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
