/**
 * A set of half-open ranges [start, end) of stream offsets (plain numbers: offsets are
 * unwrapped from sequence numbers before they get here), kept sorted and merged.
 */
export interface Range {
  start: number;
  end: number;
}

export class RangeSet {
  private readonly r: Range[] = [];

  /** Adds [start, end); returns how many of its bytes were not covered before. */
  add(start: number, end: number): number {
    if (end <= start) return 0;
    const r = this.r;
    // First range that ends at or after `start` (touching ranges merge).
    let lo = 0;
    let hi = r.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (r[mid]!.end < start) lo = mid + 1;
      else hi = mid;
    }
    let i = lo;
    let s = start;
    let e = end;
    let covered = 0;
    let j = i;
    while (j < r.length && r[j]!.start <= end) {
      const x = r[j]!;
      covered += Math.max(0, Math.min(x.end, end) - Math.max(x.start, start));
      if (x.start < s) s = x.start;
      if (x.end > e) e = x.end;
      j++;
    }
    r.splice(i, j - i, { start: s, end: e });
    return end - start - covered;
  }

  /** Total bytes covered. */
  get size(): number {
    let n = 0;
    for (const x of this.r) n += x.end - x.start;
    return n;
  }

  get lowest(): number | null {
    return this.r.length ? this.r[0]!.start : null;
  }

  get highest(): number | null {
    return this.r.length ? this.r[this.r.length - 1]!.end : null;
  }

  /** The uncovered ranges inside [from, to). */
  holes(from: number, to: number): Range[] {
    const out: Range[] = [];
    let cur = from;
    for (const x of this.r) {
      if (x.end <= cur) continue;
      if (x.start >= to) break;
      if (x.start > cur) out.push({ start: cur, end: Math.min(x.start, to) });
      cur = Math.max(cur, x.end);
    }
    if (cur < to) out.push({ start: cur, end: to });
    return out;
  }

  toArray(): Range[] {
    return this.r.map((x) => ({ ...x }));
  }
}
