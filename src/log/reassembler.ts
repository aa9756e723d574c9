/**
 * Gap-free prefix tracking, the first step of every log store's front (src/log/front.ts):
 * the embedded stores and the remote client hand a connection's bytes to a `Reassembler`,
 * which passes on only what extends the gap-free prefix and holds the rest until the gap
 * fills.
 */

/** Default per-connection cap on held out-of-order bytes (beyond it they are dropped). */
export const DEFAULT_MAX_HELD_BYTES = 4 * 1024 * 1024;

/** Receives bytes that extend the gap-free prefix, in order, starting at `offset`. */
export type PrefixSink = (data: Uint8Array, offset: number) => void;

interface HeldSegment {
  off: number;
  data: Uint8Array;
}

const NO_SEGS: HeldSegment[] = Object.freeze([]) as unknown as HeldSegment[];

export interface PushResult {
  duplicate: number;
  dropped: number;
  beyondLimit: number;
}

/**
 * Gap-free prefix tracking for one stream. Bytes at the prefix end go straight to the
 * sink (as views of the caller's buffer: the sink copies); bytes beyond a gap are copied
 * and held, as sorted non-overlapping segments, up to `maxHeld` bytes, and handed to the
 * sink when the gap fills. Bytes at or beyond `limit` (the FIN offset) are refused.
 */
export class Reassembler {
  /** Length of the gap-free prefix handed to the sink. */
  end: number;
  /** Offsets at or beyond this are refused (the FIN offset, once known). */
  limit = Number.POSITIVE_INFINITY;
  heldBytes = 0;
  /** NO_SEGS (shared, frozen) until something is held: most streams never have a gap. */
  private segs: HeldSegment[] = NO_SEGS;

  constructor(
    start: number,
    readonly maxHeld: number,
  ) {
    this.end = start;
  }

  get heldSegments(): number {
    return this.segs.length;
  }

  /** Refuses everything from `limit` on, dropping held bytes there. Returns bytes dropped. */
  setLimit(limit: number): number {
    this.limit = limit;
    let dropped = 0;
    while (this.segs.length > 0) {
      const last = this.segs[this.segs.length - 1]!;
      const lastEnd = last.off + last.data.length;
      if (lastEnd <= limit) break;
      if (last.off >= limit) {
        this.segs.pop();
        dropped += last.data.length;
      } else {
        const keep = limit - last.off;
        dropped += last.data.length - keep;
        last.data = last.data.subarray(0, keep);
      }
    }
    this.heldBytes -= dropped;
    return dropped;
  }

  push(offset: number, data: Uint8Array, sink: PrefixSink): PushResult {
    const res: PushResult = { duplicate: 0, dropped: 0, beyondLimit: 0 };
    let o = offset;
    let d = data;
    if (o + d.length > this.limit) {
      const keep = Math.max(0, this.limit - o);
      res.beyondLimit = d.length - keep;
      d = d.subarray(0, keep);
    }
    if (d.length === 0) return res;
    if (o + d.length <= this.end) {
      res.duplicate = d.length;
      return res;
    }
    if (o < this.end) {
      res.duplicate = this.end - o;
      d = d.subarray(this.end - o);
      o = this.end;
    }
    if (o === this.end) {
      this.end = o + d.length;
      sink(d, o);
      this.drain(sink, res);
    } else {
      this.hold(o, d, res);
    }
    return res;
  }

  /** Hands over held segments that now touch the prefix end. */
  private drain(sink: PrefixSink, res: PushResult): void {
    let n = 0;
    while (n < this.segs.length && this.segs[n]!.off <= this.end) {
      const s = this.segs[n]!;
      n++;
      this.heldBytes -= s.data.length;
      const sEnd = s.off + s.data.length;
      if (sEnd <= this.end) {
        res.duplicate += s.data.length;
        continue;
      }
      const from = this.end;
      res.duplicate += from - s.off;
      this.end = sEnd;
      sink(s.data.subarray(from - s.off), from);
    }
    if (n > 0) this.segs.splice(0, n);
  }

  /** Holds the parts of [o, o+len) no held segment covers (copies), within the cap. */
  private hold(o: number, d: Uint8Array, res: PushResult): void {
    const e = o + d.length;
    // First segment ending after o (segments are sorted and disjoint: ends are sorted too).
    let lo = 0;
    let hi = this.segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const s = this.segs[mid]!;
      if (s.off + s.data.length <= o) lo = mid + 1;
      else hi = mid;
    }
    const pieces: { at: number; from: number; to: number }[] = [];
    let cur = o;
    let i = lo;
    while (cur < e) {
      const s = this.segs[i];
      if (s === undefined || s.off >= e) {
        pieces.push({ at: i, from: cur, to: e });
        break;
      }
      if (s.off > cur) pieces.push({ at: i, from: cur, to: s.off });
      const sEnd = s.off + s.data.length;
      res.duplicate += Math.min(sEnd, e) - Math.max(s.off, cur);
      cur = Math.max(cur, sEnd);
      i++;
    }
    // Keep the lowest pieces first (they are the next to be needed), within the cap.
    const kept: typeof pieces = [];
    for (const p of pieces) {
      const len = p.to - p.from;
      if (this.heldBytes + len > this.maxHeld) {
        res.dropped += len;
        continue;
      }
      this.heldBytes += len;
      kept.push(p);
    }
    if (kept.length > 0 && this.segs === NO_SEGS) this.segs = [];
    for (let k = kept.length - 1; k >= 0; k--) {
      const p = kept[k]!;
      this.segs.splice(p.at, 0, { off: p.from, data: Uint8Array.prototype.slice.call(d, p.from - o, p.to - o) });
    }
  }
}
