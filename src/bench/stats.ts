/**
 * The few statistics the benchmark prints: nearest-rank percentiles over one run's samples,
 * and median/min/max over the per-run values of a cell. No interpolation: every number
 * printed is a value that was actually measured (for an even count, the median is the
 * lower middle one).
 */

/**
 * Nearest-rank percentile (p in 0..100) of `sorted` (ascending; a typed array or an array).
 * p = 0 is the minimum, p = 100 the maximum. NaN for an empty input.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile: p must be in 0..100, got ${p}`);
  const n = sorted.length;
  if (n === 0) return NaN;
  // 1-based; the epsilon keeps e.g. 99.9 % of 1000 at rank 999 despite binary fractions
  const rank = Math.ceil((p * n) / 100 - 1e-9);
  return sorted[Math.min(n, Math.max(1, rank)) - 1]!;
}

export interface Summary {
  /** Number of values (successful runs). */
  n: number;
  median: number;
  min: number;
  max: number;
}

/** Median (lower middle for an even count), min and max; null when there are no values. */
export function summarize(values: readonly number[]): Summary | null {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  return { n: v.length, median: v[Math.floor((v.length - 1) / 2)]!, min: v[0]!, max: v[v.length - 1]! };
}

/** Latency figures of one run, in microseconds. */
export interface LatencySummary {
  count: number;
  minUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  meanUs: number;
}

/** Sorts `samplesUs` in place and summarises it. */
export function latencySummary(samplesUs: Float64Array): LatencySummary {
  samplesUs.sort();
  let sum = 0;
  for (const x of samplesUs) sum += x;
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    count: samplesUs.length,
    minUs: r(percentile(samplesUs, 0)),
    p50Us: r(percentile(samplesUs, 50)),
    p90Us: r(percentile(samplesUs, 90)),
    p99Us: r(percentile(samplesUs, 99)),
    p999Us: r(percentile(samplesUs, 99.9)),
    maxUs: r(percentile(samplesUs, 100)),
    meanUs: samplesUs.length ? r(sum / samplesUs.length) : NaN,
  };
}
