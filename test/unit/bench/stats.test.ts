import { describe, it, expect } from 'vitest';
import { latencySummary, percentile, summarize } from '../../../src/bench/stats.js';

describe('percentile (nearest rank)', () => {
  const xs = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
  it('picks measured values, never interpolates', () => {
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 51)).toBe(60);
    expect(percentile(xs, 90)).toBe(90);
    expect(percentile(xs, 99)).toBe(100);
    expect(percentile(xs, 0)).toBe(10);
    expect(percentile(xs, 100)).toBe(100);
  });
  it('p99 of 1..1000 is 990, p99.9 is 999', () => {
    const a = Float64Array.from({ length: 1000 }, (_, i) => i + 1);
    expect(percentile(a, 99)).toBe(990);
    expect(percentile(a, 99.9)).toBe(999);
  });
  it('NaN for no samples, RangeError for a p outside 0..100', () => {
    expect(percentile([], 50)).toBeNaN();
    expect(() => percentile(xs, 101)).toThrow(RangeError);
    expect(() => percentile(xs, -1)).toThrow(RangeError);
    expect(() => percentile(xs, NaN)).toThrow(RangeError);
  });
});

describe('summarize', () => {
  it('median of an odd count is the middle value, of an even count the lower middle one', () => {
    expect(summarize([5, 1, 3])).toEqual({ n: 3, median: 3, min: 1, max: 5 });
    expect(summarize([4, 1, 3, 2])).toEqual({ n: 4, median: 2, min: 1, max: 4 });
  });
  it('ignores non-finite values and returns null when nothing is left', () => {
    expect(summarize([2, NaN, Infinity, 1])).toEqual({ n: 2, median: 1, min: 1, max: 2 });
    expect(summarize([])).toBeNull();
    expect(summarize([NaN])).toBeNull();
  });
});

describe('latencySummary', () => {
  it('sorts numerically (not as strings) and reports the percentiles', () => {
    const s = latencySummary(Float64Array.from([100, 9, 20, 3, 1000]));
    expect(s).toMatchObject({ count: 5, minUs: 3, p50Us: 20, p99Us: 1000, maxUs: 1000, meanUs: 226.4 });
  });
});
