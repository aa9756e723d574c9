/**
 * Where the drill's crashes land: at points of the transfer, not of the clock (issue 10
 * item 9: a 200 MB download at 3 Gb/s was over before a kill placed 0.4-0.8 s in).
 *
 * The clients report progress as `done` of `total` units (bytes moved for upload and
 * download, responses checked for echo/kv/stall). A crash is due when the *leading*
 * client has reached its fraction: every other client is behind it, so at a fraction
 * below 1 every client still has work left and the crash hits live connections.
 *
 *     0 ──── lo ──┬──────┬──────┬──── hi ──── 1        n crashes: [lo, hi] cut in n equal
 *                 f1     f2     f3                     slots, one seeded point in each,
 *                                                      so f1 < f2 < ... < fn
 */
import { UsageError } from '../util/errors.js';
import { mulberry32 } from '../util/rng.js';

/** The span the seeded fractions are drawn from (the ends keep clear of start and finish). */
export const CRASH_SPAN = { lo: 0.15, hi: 0.75 } as const;

/** A small seeded generator (mulberry32 over a multiplicative hash of the seed). */
export function rng(seed: number): () => number {
  return mulberry32((seed * 2654435761) >>> 0);
}

/** n strictly increasing fractions in [lo, hi), one in each of n equal slots. */
export function crashFractions(n: number, rand: () => number, lo: number = CRASH_SPAN.lo, hi: number = CRASH_SPAN.hi): number[] {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`crash count must be an integer >= 0, got ${n}`);
  if (!(lo >= 0 && hi <= 1 && lo < hi)) throw new RangeError(`bad span [${lo}, ${hi}]`);
  const slot = (hi - lo) / Math.max(1, n);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(round4(lo + slot * (i + 0.05 + 0.9 * rand())));
  return out;
}

const round4 = (x: number) => Math.round(x * 10_000) / 10_000;

/**
 * `--crash-at 0.2,0.5`: the fractions of the transfer at which to crash, each in (0, 1),
 * strictly increasing. The count is the number of crashes.
 */
export function parseCrashAt(s: string): number[] {
  const parts = s.split(',');
  const out: number[] = [];
  for (const p of parts) {
    const t = p.trim();
    if (!/^0?\.\d{1,6}$/.test(t)) throw new UsageError(`--crash-at: expected fractions of the transfer such as 0.25,0.6 (each in (0, 1)), got '${s}'`);
    const f = Number(t);
    if (!(f > 0 && f < 1)) throw new UsageError(`--crash-at: ${t} is not in (0, 1)`);
    if (out.length > 0 && f <= out[out.length - 1]!) throw new UsageError(`--crash-at: the fractions must increase, got '${s}'`);
    out.push(f);
  }
  if (out.length > 16) throw new UsageError(`--crash-at: at most 16 crashes, got ${out.length}`);
  return out;
}

/** A client's progress as the placement needs it. */
export interface Progress {
  done: number;
  total: number;
  finished: number;
  connections: number;
}

/**
 * The leading client's fraction done, among the clients still running (0 before any
 * report; a client with nothing to do counts 0). A finished client no longer leads: the
 * next crash is placed by the progress of those the crash can still hit.
 */
export function leadingFraction(ps: ReadonlyArray<Progress | null>): number {
  let f = 0;
  for (const p of ps) if (p !== null && p.total > 0 && !clientFinished(p)) f = Math.max(f, p.done / p.total);
  return f;
}

/** Every connection of this client is over. */
export function clientFinished(p: Progress): boolean {
  return p.connections > 0 && p.finished >= p.connections;
}

/** This running client has done at least fraction `f` of its work. */
export function reached(p: Progress, f: number): boolean {
  return p.total > 0 && !clientFinished(p) && p.done / p.total >= f;
}

/** Every client has finished all of its connections. */
export function allFinished(ps: ReadonlyArray<Progress | null>): boolean {
  return ps.length > 0 && ps.every((p) => p !== null && p.connections > 0 && p.finished === p.connections);
}

/**
 * How long the idle connections must have been quiet before the crash so that the gateway
 * has expired their flows: its idle timeout, one sweep period (1 s), and a margin.
 */
export function idleCrashAfterMs(idleTimeoutS: number, sweepMs = 1000, marginMs = 300): number {
  return Math.ceil(idleTimeoutS * 1000) + sweepMs + marginMs;
}

/**
 * Throughput after the last crash against before the first, from progress samples
 * (epoch ms, units done). `ratio` = after / before; null when either side has too little
 * to measure (under 50 ms or no bytes).
 */
export function rateAcrossCrashes(samples: ReadonlyArray<{ at: number; done: number }>, firstKillAt: number, resumedAt: number, endAt: number): { before: number; after: number; ratio: number } | null {
  if (samples.length === 0 || firstKillAt <= 0 || resumedAt <= 0) return null;
  const t0 = samples[0]!.at;
  const at = (t: number) => {
    let d = 0;
    for (const s of samples) if (s.at <= t) d = s.done;
    return d;
  };
  const beforeMs = firstKillAt - t0;
  const afterMs = endAt - resumedAt;
  if (beforeMs < 50 || afterMs < 50) return null;
  const before = (at(firstKillAt) * 1000) / beforeMs;
  const after = ((at(endAt) - at(resumedAt)) * 1000) / afterMs;
  if (before <= 0) return null;
  return { before, after, ratio: after / before };
}
