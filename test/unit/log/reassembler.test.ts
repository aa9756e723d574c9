import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Reassembler } from '../../../src/log/reassembler.js';

/** Runs pushes, collecting what reaches the sink as [offset, bytes]. */
function harness(maxHeld = 1 << 20) {
  const r = new Reassembler(0, maxHeld);
  const out: [number, number[]][] = [];
  const push = (off: number, bytes: number[]) => r.push(off, Uint8Array.from(bytes), (d, o) => out.push([o, [...d]]));
  return { r, out, push };
}

describe('Reassembler', () => {
  it('in-order bytes go straight to the sink', () => {
    const { r, out, push } = harness();
    push(0, [1, 2, 3]);
    push(3, [4]);
    expect(out).toEqual([
      [0, [1, 2, 3]],
      [3, [4]],
    ]);
    expect(r.end).toBe(4);
  });

  it('bytes beyond a gap are held then drained in order', () => {
    const { r, out, push } = harness();
    push(5, [6, 7]);
    push(2, [3, 4]);
    expect(out).toEqual([]);
    expect(r.heldBytes).toBe(4);
    expect(r.heldSegments).toBe(2);
    push(0, [1, 2]);
    expect(out).toEqual([
      [0, [1, 2]],
      [2, [3, 4]],
    ]);
    expect(r.end).toBe(4);
    push(4, [5]);
    expect(out.slice(2)).toEqual([
      [4, [5]],
      [5, [6, 7]],
    ]);
    expect(r.heldBytes).toBe(0);
  });

  it('held copies only uncovered bytes and counts duplicates', () => {
    const { r, push } = harness();
    push(10, [10, 11, 12]);
    const res = push(8, [8, 9, 10, 11, 12, 13, 14]);
    expect(res.duplicate).toBe(3);
    expect(r.heldBytes).toBe(7);
    expect(r.heldSegments).toBe(3);
  });

  it('held bytes are capped lowest first', () => {
    const { r, push } = harness(4);
    const res = push(10, [1, 2, 3, 4, 5, 6]);
    expect(res.dropped).toBe(6); // one piece larger than the room: dropped whole
    push(10, [1, 2, 3]);
    expect(push(20, [1, 2]).dropped).toBe(2);
    expect(r.heldBytes).toBe(3);
  });

  it('limit refuses bytes at or past the FIN', () => {
    const { r, out, push } = harness();
    push(5, [5, 6, 7, 8]);
    expect(r.setLimit(7)).toBe(2);
    const res = push(0, [0, 1, 2, 3, 4, 5, 6, 7]);
    expect(res.beyondLimit).toBe(1);
    expect(r.end).toBe(7);
    expect(out.flatMap(([, b]) => b)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('property sink receives exactly the stream once in order', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 50 })), { maxLength: 80 }),
        (L, segs) => {
          const stream = Array.from({ length: L }, (_, i) => (i * 7) & 0xff);
          const { r, out, push } = harness();
          const all = [...segs.map(([s, n]) => [s % L, Math.min(L, (s % L) + n + 1)] as const), [0, L] as const];
          for (const [s, e] of all) push(s, stream.slice(s, e));
          let next = 0;
          for (const [o, b] of out) {
            expect(o).toBe(next);
            next += b.length;
          }
          expect(out.flatMap(([, b]) => b)).toEqual(stream);
          expect(r.end).toBe(L);
          expect(r.heldBytes).toBe(0);
        },
      ),
    );
  });
});
