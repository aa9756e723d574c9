import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as branded from '../../../src/wire/seq.js';

/**
 * These tests feed the arithmetic raw u32 values, as a header read gives them. `Seq` is a
 * type-only brand (seq-brand.test.ts checks it), so here the functions are seen with plain
 * number parameters: the same functions, no wrapper.
 */
type Raw<F> = F extends (...a: infer A) => infer R ? (...a: { [I in keyof A]: number }) => R : never;
const seqAdd = branded.seqAdd as Raw<typeof branded.seqAdd>;
const seqBetween = branded.seqBetween as Raw<typeof branded.seqBetween>;
const seqDiff = branded.seqDiff as Raw<typeof branded.seqDiff>;
const seqGe = branded.seqGe as Raw<typeof branded.seqGe>;
const seqGt = branded.seqGt as Raw<typeof branded.seqGt>;
const seqInWindow = branded.seqInWindow as Raw<typeof branded.seqInWindow>;
const seqLe = branded.seqLe as Raw<typeof branded.seqLe>;
const seqLt = branded.seqLt as Raw<typeof branded.seqLt>;
const seqMax = branded.seqMax as Raw<typeof branded.seqMax>;
const seqMin = branded.seqMin as Raw<typeof branded.seqMin>;

const u32 = fc.integer({ min: 0, max: 0xffffffff });
/** Distances that stay within the comparable half of the space. */
const dist = fc.integer({ min: -(2 ** 31) + 1, max: 2 ** 31 - 1 });

describe('seq: across the 2^32 wrap', () => {
  it('adds with wrap-around, both directions', () => {
    expect(seqAdd(0xffffffff, 1)).toBe(0);
    expect(seqAdd(0xfffffff0, 0x20)).toBe(0x10);
    expect(seqAdd(0, -1)).toBe(0xffffffff);
    expect(seqAdd(5, -10)).toBe(0xfffffffb);
    expect(seqAdd(0x7fffffff, 1)).toBe(0x80000000);
  });

  it('compares the short way round (Linux before/after)', () => {
    expect(seqLt(0xfffffff0, 0x10)).toBe(true);
    expect(seqGt(0x10, 0xfffffff0)).toBe(true);
    expect(seqLe(0xfffffff0, 0xfffffff0)).toBe(true);
    expect(seqGe(0x10, 0xfffffff0)).toBe(true);
    expect(seqLt(0x10, 0xfffffff0)).toBe(false);
    // A plain `<` would get these wrong:
    expect(0xfffffff0 < 0x10).toBe(false);
  });

  it('measures signed distance across the wrap', () => {
    expect(seqDiff(0x10, 0xfffffff0)).toBe(0x20);
    expect(seqDiff(0xfffffff0, 0x10)).toBe(-0x20);
    expect(seqDiff(0, 0xffffffff)).toBe(1);
    expect(seqDiff(0x80000000, 0)).toBe(-(2 ** 31)); // exactly half way: int32 minimum
  });

  it('max/min across the wrap', () => {
    expect(seqMax(0xfffffff0, 0x10)).toBe(0x10);
    expect(seqMin(0xfffffff0, 0x10)).toBe(0xfffffff0);
  });

  it('window membership across the wrap, half-open', () => {
    expect(seqInWindow(0xfffffffe, 0xfffffff0, 0x20)).toBe(true);
    expect(seqInWindow(0x0f, 0xfffffff0, 0x20)).toBe(true);
    expect(seqInWindow(0x10, 0xfffffff0, 0x20)).toBe(false); // start + len is outside
    expect(seqInWindow(0xfffffff0, 0xfffffff0, 0x20)).toBe(true);
    expect(seqInWindow(0xffffffef, 0xfffffff0, 0x20)).toBe(false);
    expect(seqInWindow(5, 5, 0)).toBe(false); // empty window
    // A scaled window larger than 2^31 still works.
    expect(seqInWindow(0x9000_0000, 0, 0xa000_0000)).toBe(true);
    expect(seqBetween(0, 0xfffffff0, 0x10)).toBe(true);
    expect(seqBetween(0x10, 0xfffffff0, 0x10)).toBe(true);
    expect(seqBetween(0x11, 0xfffffff0, 0x10)).toBe(false);
  });
});

describe('seq: properties', () => {
  it('results are normalised u32', () => {
    fc.assert(fc.property(u32, fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), (a, n) => {
      const r = seqAdd(a, n);
      return Number.isInteger(r) && r >= 0 && r <= 0xffffffff;
    }));
  });

  it('seqDiff inverts seqAdd for |n| < 2^31', () => {
    fc.assert(fc.property(u32, dist, (a, n) => seqDiff(seqAdd(a, n), a) === n));
  });

  it('a + n is after a exactly when 0 < n < 2^31, and the relations are consistent', () => {
    fc.assert(fc.property(u32, dist, (a, n) => {
      const b = seqAdd(a, n);
      expect(seqGt(b, a)).toBe(n > 0);
      expect(seqLt(b, a)).toBe(n < 0);
      expect(seqGe(b, a)).toBe(n >= 0);
      expect(seqLe(b, a)).toBe(n <= 0);
      expect(seqLt(a, b)).toBe(seqGt(b, a));
      expect(seqMax(a, b)).toBe(n >= 0 ? b : a);
      expect(seqMin(a, b)).toBe(n >= 0 ? a : b);
    }));
  });

  it('ordering is invariant under a common shift (no edge at 0 or 2^31)', () => {
    fc.assert(fc.property(u32, dist, u32, (a, n, k) => {
      const b = seqAdd(a, n);
      return seqLt(seqAdd(a, k), seqAdd(b, k)) === seqLt(a, b);
    }));
  });

  it('seqInWindow agrees with offset arithmetic', () => {
    fc.assert(fc.property(u32, u32, fc.integer({ min: 0, max: 0xffffffff }), (start, off, len) => {
      const x = seqAdd(start, off);
      return seqInWindow(x, start, len) === off < len;
    }));
  });
});
