/** Where the drill's crashes land (issue 10 item 9): points of the transfer, not of the clock. */
import { describe, expect, it } from 'vitest';
import { allFinished, clientFinished, crashFractions, reached, idleCrashAfterMs, leadingFraction, parseCrashAt, rateAcrossCrashes, rng, CRASH_SPAN } from '../../../src/lab/placement.js';

describe('crashFractions', () => {
  it('draws n strictly increasing fractions inside the span, one per slot', () => {
    for (let seed = 0; seed < 200; seed++) {
      for (const n of [1, 2, 4, 7]) {
        const f = crashFractions(n, rng(seed));
        expect(f).toHaveLength(n);
        const slot = (CRASH_SPAN.hi - CRASH_SPAN.lo) / n;
        f.forEach((x, i) => {
          expect(x).toBeGreaterThanOrEqual(CRASH_SPAN.lo + slot * i);
          expect(x).toBeLessThan(CRASH_SPAN.lo + slot * (i + 1));
          if (i > 0) expect(x).toBeGreaterThan(f[i - 1]!);
        });
      }
    }
  });

  it('is the same for a seed and differs between seeds', () => {
    expect(crashFractions(3, rng(7))).toEqual(crashFractions(3, rng(7)));
    const seen = new Set<string>();
    for (let s = 0; s < 50; s++) seen.add(crashFractions(1, rng(s)).join());
    expect(seen.size).toBeGreaterThan(40);
  });

  it('zero crashes is an empty plan; bad counts and spans are refused', () => {
    expect(crashFractions(0, rng(1))).toEqual([]);
    expect(() => crashFractions(-1, rng(1))).toThrow(RangeError);
    expect(() => crashFractions(1, rng(1), 0.8, 0.2)).toThrow(RangeError);
  });
});

describe('parseCrashAt', () => {
  it('takes increasing fractions in (0, 1)', () => {
    expect(parseCrashAt('0.25')).toEqual([0.25]);
    expect(parseCrashAt('0.2,.5,0.75')).toEqual([0.2, 0.5, 0.75]);
  });

  it('refuses anything else, naming the flag', () => {
    for (const bad of ['', '0', '1', '1.0', '0.5,0.5', '0.6,0.5', '-0.1', 'abc', '0.5,', '50%', '1e-3']) {
      expect(() => parseCrashAt(bad), bad).toThrow(/--crash-at/);
    }
    expect(() => parseCrashAt(Array.from({ length: 17 }, (_, i) => `0.${String(i + 10)}`).join(','))).toThrow(/at most 16/);
  });
});

describe('progress', () => {
  const p = (done: number, total: number, finished = 0, connections = 1) => ({ done, total, finished, connections });

  it('the leading client decides: every other client is behind it, so still has work left', () => {
    expect(leadingFraction([])).toBe(0);
    expect(leadingFraction([null, p(10, 100)])).toBeCloseTo(0.1);
    expect(leadingFraction([p(10, 100), p(600, 1000), p(0, 0)])).toBeCloseTo(0.6);
  });

  it('a finished client no longer leads: the next crash waits for those still running', () => {
    expect(leadingFraction([p(100, 100, 1, 1), p(300, 1000, 0, 1)])).toBeCloseTo(0.3);
    expect(reached(p(100, 100, 1, 1), 0.5)).toBe(false);
    expect(reached(p(500, 1000, 0, 2), 0.5)).toBe(true);
    expect(reached(p(500, 1000, 1, 2), 0.5)).toBe(true);
    expect(reached(p(499, 1000, 0, 2), 0.5)).toBe(false);
    expect(reached(p(0, 0, 0, 1), 0)).toBe(false);
    expect(clientFinished(p(5, 5, 2, 2))).toBe(true);
  });

  it('allFinished needs every connection of every client done', () => {
    expect(allFinished([])).toBe(false);
    expect(allFinished([p(1, 1, 1, 1), null])).toBe(false);
    expect(allFinished([p(1, 1, 1, 1), p(5, 5, 1, 2)])).toBe(false);
    expect(allFinished([p(1, 1, 1, 1), p(5, 5, 2, 2)])).toBe(true);
  });

  it('the idle crash waits past the idle timeout and one sweep', () => {
    expect(idleCrashAfterMs(1)).toBe(2300);
    expect(idleCrashAfterMs(0.5, 1000, 0)).toBe(1500);
  });
});

describe('rateAcrossCrashes', () => {
  // 1 MB/s for 2 s, crash at 2 s, listening again at 2.5 s.
  const before = Array.from({ length: 21 }, (_, i) => ({ at: 1000 + i * 100, done: i * 100_000 }));
  it('a transfer that carries on at the same speed keeps its ratio near 1', () => {
    const after = Array.from({ length: 20 }, (_, i) => ({ at: 3500 + i * 100, done: 2_000_000 + (i + 1) * 100_000 }));
    const r = rateAcrossCrashes([...before, ...after], 3000, 3500, 5500)!;
    expect(r.before).toBeCloseTo(1_000_000, -3);
    expect(r.after).toBeGreaterThan(900_000);
    expect(r.ratio).toBeGreaterThan(0.9);
  });

  it('a collapse to a few KB/s shows as a ratio under 0.01', () => {
    const after = Array.from({ length: 20 }, (_, i) => ({ at: 3500 + i * 1000, done: 2_000_000 + (i + 1) * 6_000 }));
    const r = rateAcrossCrashes([...before, ...after], 3000, 3500, 23_500)!;
    expect(r.after).toBeLessThan(7_000);
    expect(r.ratio).toBeLessThan(0.01);
  });

  it('too little to measure is null', () => {
    expect(rateAcrossCrashes([], 3000, 3500, 5000)).toBeNull();
    expect(rateAcrossCrashes(before, 1020, 3500, 5000)).toBeNull();
    expect(rateAcrossCrashes(before, 3000, -1, 5000)).toBeNull();
  });
});
