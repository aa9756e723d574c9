/** RangeSet (the coverage bookkeeping behind bytes, retransmissions and gaps) against a bitmap. */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { RangeSet } from '../../../src/inspect/ranges.js';

describe('RangeSet', () => {
  it('merges touching and overlapping ranges and returns the newly covered bytes', () => {
    const r = new RangeSet();
    expect(r.add(10, 20)).toBe(10);
    expect(r.add(20, 30)).toBe(10);
    expect(r.toArray()).toEqual([{ start: 10, end: 30 }]);
    expect(r.add(40, 50)).toBe(10);
    expect(r.add(5, 45)).toBe(5 + 10);
    expect(r.toArray()).toEqual([{ start: 5, end: 50 }]);
    expect(r.add(7, 9)).toBe(0);
    expect(r.add(9, 9)).toBe(0);
    expect(r.holes(0, 60)).toEqual([{ start: 0, end: 5 }, { start: 50, end: 60 }]);
  });

  it('agrees with a bitmap on random adds (size, fresh counts, holes, lowest/highest)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: -50, max: 200 }), fc.integer({ min: 0, max: 40 })), { maxLength: 40 }), (adds) => {
        const r = new RangeSet();
        const bits = new Set<number>();
        for (const [s, n] of adds) {
          let fresh = 0;
          for (let i = s; i < s + n; i++) if (!bits.has(i)) (bits.add(i), fresh++);
          expect(r.add(s, s + n)).toBe(fresh);
        }
        expect(r.size).toBe(bits.size);
        const sorted = [...bits].sort((a, b) => a - b);
        expect(r.lowest).toBe(sorted.length ? sorted[0] : null);
        expect(r.highest).toBe(sorted.length ? sorted[sorted.length - 1]! + 1 : null);
        const holes: number[] = [];
        for (let i = -60; i < 260; i++) if (!bits.has(i)) holes.push(i);
        const fromHoles = r.holes(-60, 260).flatMap((h) => Array.from({ length: h.end - h.start }, (_, k) => h.start + k));
        expect(fromHoles).toEqual(holes);
        // Kept sorted, disjoint and non-touching.
        const arr = r.toArray();
        for (let i = 1; i < arr.length; i++) expect(arr[i]!.start).toBeGreaterThan(arr[i - 1]!.end);
      }),
      { numRuns: 300 },
    );
  });
});
