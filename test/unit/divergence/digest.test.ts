/**
 * The digest (src/divergence/digest.ts) and the comparator (compare.ts) on their own: blocks,
 * the partial block at an unaligned acked0, reordered bytes both ways, the caps and the budget.
 */
import { describe, it, expect } from 'vitest';
import xxhash from 'xxhash-wasm';
import { DigestBudget, OutDigest, HASH_BYTES, type DigestLimits } from '../../../src/divergence/digest.js';
import { Comparator } from '../../../src/divergence/compare.js';

const B = 1000;
const limits = (o: Partial<DigestLimits> = {}): DigestLimits => ({ blockBytes: B, keptCapBytes: 1 << 20, budgetBytes: 1 << 24, ...o });

function stream(n: number, seed = 7): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const { h64Raw } = await xxhash();

/** xxHash64 of `b` in one call (the digest streams it, segment by segment), as (hi, lo). */
function xxh64(b: Uint8Array): [number, number] {
  const d = h64Raw(b, 0n);
  return [Number(d >> 32n), Number(d & 0xffff_ffffn)];
}

/** Records `data` in segments of `seg` bytes (in order), the client acking through `acked`. */
function recorded(data: Buffer, acked: number, budget = new DigestBudget(limits()), seg = 333): OutDigest {
  const d = new OutDigest(budget);
  for (let o = 0; o < data.length; o += seg) d.record(o, data.subarray(o, Math.min(data.length, o + seg)), 0);
  d.ackTo(acked);
  return d;
}

describe('OutDigest', () => {
  it('hashes full blocks aligned on offsets, whatever the segmentation, and keeps only [acked, end)', () => {
    const data = stream(4500);
    for (const seg of [1, 333, 1000, 4500]) {
      const d = recorded(data, 3200, new DigestBudget(limits()), seg);
      expect(d.blocks).toBe(3);
      for (let i = 0; i < 3; i++) expect(d.hashAt(i)).toEqual(xxh64(data.subarray(i * B, (i + 1) * B)));
      expect(d.hashedEnd).toBe(3200);
      expect(d.end).toBe(4500);
      expect(d.keptBytes).toBe(1300);
      expect(d.digestBytes).toBe(3 * HASH_BYTES);
      const kept: Buffer[] = [];
      d.readKept(3200, 4500, (v) => kept.push(Buffer.from(v)));
      expect(Buffer.concat(kept).equals(data.subarray(3200))).toBe(true);
    }
  });

  it('freezes the partial block at an unaligned acked0 and pins the kept bytes for the comparison', () => {
    const data = stream(4500);
    const d = recorded(data, 0);
    const snap = d.freeze(3200)!;
    expect(snap).toMatchObject({ acked0: 3200, end0: 4500, blocks0: 3 });
    expect(snap.partial0).toEqual(xxh64(data.subarray(3000, 3200)));
    // The client acks more: hashed, but still readable (pinned) until unpinned.
    d.ackTo(4500);
    expect(d.hashedEnd).toBe(4500);
    expect(d.keptBytes).toBe(1300);
    const v: Buffer[] = [];
    d.readKept(3200, 4500, (x) => v.push(Buffer.from(x)));
    expect(Buffer.concat(v).equals(data.subarray(3200))).toBe(true);
    d.unpin();
    expect(d.keptBytes).toBe(0);
    expect(d.blocks).toBe(4);
  });

  it('takes reordered forwarded bytes once the gap fills; retransmissions change nothing', () => {
    const data = stream(3000);
    const d = new OutDigest(new DigestBudget(limits()));
    d.record(1000, data.subarray(1000, 2000), 0);
    d.record(2000, data.subarray(2000, 3000), 0);
    expect(d.end).toBe(0);
    expect(d.keptBytes).toBe(2000); // held
    d.record(0, data.subarray(0, 1000), 0);
    expect(d.end).toBe(3000);
    d.record(500, Buffer.alloc(1000, 0xee), 0); // a retransmission with other bytes: ignored
    d.ackTo(3000);
    for (let i = 0; i < 3; i++) expect(d.hashAt(i)).toEqual(xxh64(data.subarray(i * B, (i + 1) * B)));
    expect(d.abandoned).toBeNull();
  });

  it('idle after the client acked everything: block hashes and no byte', () => {
    const budget = new DigestBudget(limits());
    const d = recorded(stream(100_000), 100_000, budget);
    expect(d.keptBytes).toBe(0);
    expect(budget.keptBytes).toBe(0);
    expect(budget.digestBytes).toBe(100 * HASH_BYTES);
  });

  it('past the per-connection cap: abandoned, its memory freed, counted once by the caller', () => {
    const budget = new DigestBudget(limits({ keptCapBytes: 5000 }));
    const d = new OutDigest(budget);
    d.record(0, stream(4000), 0);
    expect(d.abandoned).toBeNull();
    d.record(4000, stream(2000), 0);
    expect(d.abandoned).toMatch(/per-connection cap/);
    expect([d.keptBytes, budget.keptBytes, budget.digestBytes]).toEqual([0, 0, 0]);
    d.record(6000, stream(10), 0); // nothing more recorded
    expect(d.end).toBe(6000);
    expect(d.freeze(6000)).toBeNull();
  });

  it('the gateway-wide budget: the digest that would pass it is abandoned, the others go on', () => {
    const budget = new DigestBudget(limits({ budgetBytes: 10_000 }));
    const a = new OutDigest(budget);
    const b = new OutDigest(budget);
    a.record(0, stream(6000), 0);
    b.record(0, stream(3000), 0);
    expect(budget.used).toBe(9000);
    b.record(3000, stream(2000), 0);
    expect(b.abandoned).toMatch(/budget/);
    expect(a.abandoned).toBeNull();
    expect(budget.used).toBe(6000);
    a.dispose();
    expect(budget.used).toBe(0);
  });

  it('a client acking bytes the gateway never recorded: abandoned (the digest cannot be complete)', () => {
    const d = new OutDigest(new DigestBudget(limits()));
    d.record(0, stream(100), 0);
    d.ackTo(150);
    expect(d.abandoned).toMatch(/acknowledged offset 150/);
  });

  it('reordered bytes beyond the hold cap: abandoned', () => {
    const d = new OutDigest(new DigestBudget(limits({ keptCapBytes: 1000 })));
    d.record(10, stream(1500), 0);
    expect(d.abandoned).toMatch(/hold cap/);
  });
});

describe('Comparator', () => {
  const data = stream(4500);
  const setup = () => {
    const d = recorded(data, 0);
    const snap = d.freeze(3200)!;
    return { d, cmp: new Comparator(d, snap, 0, new DigestBudget(limits())) };
  };

  it('identical output in any order: no mismatch; acks toward the incarnation held at a gap below acked0', () => {
    const { cmp } = setup();
    expect(cmp.ackLimit()).toBe(0);
    expect(cmp.feed(1500, data.subarray(1500, 2600), 1)).toBe(0);
    expect(cmp.end).toBe(0);
    expect(cmp.ackLimit()).toBe(0); // the hole [0, 1500) must come again
    cmp.feed(0, data.subarray(0, 1500), 2);
    expect(cmp.end).toBe(2600);
    expect(cmp.ackLimit()).toBe(2600);
    cmp.feed(2600, data.subarray(2600, 4500), 3);
    expect(cmp.mismatch).toBeNull();
    expect(cmp.throughAcked0).toBe(true);
    expect(cmp.ackLimit()).toBe(Infinity);
    expect(cmp.done).toBe(true);
    expect(cmp.compared).toBe(4500);
  });

  it('a changed byte in a full block: that block, offset unknown within it', () => {
    const { cmp } = setup();
    const alt = Buffer.from(data);
    alt[1234]! ^= 1;
    cmp.feed(0, alt.subarray(0, 4500), 0);
    expect(cmp.mismatch).toEqual({ kind: 'block', block: 1, blockOffset: 1000, byteOffset: null });
    expect(cmp.stopped).toBe(true);
  });

  it('a changed byte in [acked0, end0): that byte; originals() puts the original back in the packet', () => {
    const { cmp } = setup();
    const alt = Buffer.from(data);
    alt[4000]! ^= 0xff;
    cmp.feed(0, alt.subarray(0, 3500), 0);
    expect(cmp.mismatch).toBeNull();
    const seg = Buffer.from(alt.subarray(3500, 4500));
    cmp.feed(3500, seg, 0);
    expect(cmp.mismatch).toEqual({ kind: 'byte', block: 4, blockOffset: 4000, byteOffset: 4000 });
    expect(cmp.originals(3500, seg, 0, seg.length)).toBe(1);
    expect(seg.equals(data.subarray(3500, 4500))).toBe(true);
    // A segment straddling acked0: only [acked0, …) is the originals' (below it the client has acked).
    const straddle = Buffer.alloc(400, 0);
    expect(cmp.originals(3000, straddle, 0, 400)).toBe(200 - data.subarray(3200, 3400).filter((x) => x === 0).length);
    expect(straddle.subarray(0, 200).every((x) => x === 0)).toBe(true);
  });

  it('held regenerated bytes count in the gateway budget: past it they are refused', () => {
    const budget = new DigestBudget(limits({ budgetBytes: 2500 }));
    const d = new OutDigest(budget);
    for (let o = 0; o < 4500; o += 500) d.record(o, data.subarray(o, o + 500), Math.min(o, 3200)); // the client acks as it goes
    const cmp = new Comparator(d, d.freeze(3200)!, 0, budget);
    expect(budget.used).toBe(1300 + 3 * 8); // kept [3200, 4500) and three block hashes
    expect(cmp.feed(1000, data.subarray(1000, 2500), 0)).toBe(1500);
    expect(cmp.feed(1000, data.subarray(1000, 2000), 0)).toBe(0);
    expect(cmp.feed(0, data.subarray(0, 1000), 0)).toBe(0); // in order: never refused
    expect(cmp.end).toBe(2000);
    expect(budget.used).toBe(1300 + 3 * 8);
  });

  it('output beyond end0 is not compared', () => {
    const { cmp } = setup();
    cmp.feed(0, data, 0);
    expect(cmp.feed(4500, Buffer.alloc(100, 1), 0)).toBe(0);
    expect(cmp.mismatch).toBeNull();
    expect(cmp.compared).toBe(4500);
  });

  it('held regenerated bytes are bounded: beyond the cap they are refused (the caller drops the segment)', () => {
    const budget = new DigestBudget(limits({ keptCapBytes: 1000 }));
    const d = new OutDigest(budget);
    for (let o = 0; o < 4500; o += 500) d.record(o, data.subarray(o, o + 500), o); // the client acks as it goes
    const cmp = new Comparator(d, d.freeze(4200)!, 0, budget);
    expect(cmp.feed(100, data.subarray(100, 1300), 0)).toBe(1200); // beyond the gap [0, 100), over the 1,000-byte cap: refused whole
    const kept = budget.keptBytes;
    expect(cmp.feed(100, data.subarray(100, 900), 0)).toBe(0); // within it: held, counted in the budget
    expect(budget.keptBytes).toBe(kept + 800);
    cmp.dispose();
    expect(budget.keptBytes).toBe(kept);
    expect(cmp.end).toBe(0);
  });
});
