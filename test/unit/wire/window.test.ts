/**
 * windowField replaced three copies of the window-field calculation (issue 12 item 4). The
 * three copies as they stood before are kept here, verbatim, as the reference: each call site
 * now calls windowField with the arguments below, and must get the same field bit for bit.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { WINDOW_FIELD_MAX, windowField } from '../../../src/wire/window.js';

// ---- the old code (reference only) --------------------------------------------------------

/** src/wrappers/south.ts `windowFor` (also the inline copy in rebuild.ts `ackClient`). */
function oldWindowFor(rightEdge: number, ackOff: number, shift: number): number {
  const w = Math.ceil((rightEdge - ackOff) / 2 ** shift);
  return w > 0xffff ? 0xffff : w < 0 ? 0 : w;
}

/** src/recovery/rebuild.ts `absorbWindow`'s last two lines: `bytes` of room at client scale `cws`. */
function oldAbsorbField(bytes: number, cws: number): number {
  const w = Math.ceil(bytes / 2 ** cws);
  return w > 0xffff ? 0xffff : w;
}

/** src/recovery/translate.ts `translateToClient`: field `win` at newShift, rescaled to oldShift. */
function oldTranslated(win: number, newShift: number, oldShift: number): number {
  let w = Math.ceil((win * 2 ** newShift) / 2 ** oldShift);
  if (w > 0xffff) w = 0xffff;
  return w;
}

// ---- the call sites' arguments ------------------------------------------------------------

const viaSouth = (rightEdge: number, ackOff: number, shift: number) => windowField(rightEdge, ackOff, shift);
const viaAbsorb = (bytes: number, cws: number) => windowField(bytes, 0, cws);
const viaTranslate = (win: number, newShift: number, oldShift: number) => windowField(win * 2 ** newShift, 0, oldShift);

const shift = fc.integer({ min: 0, max: 14 });
/** Stream offsets well past 2^32 (offsets are 53-bit counts, not sequence numbers). */
const offset = fc.integer({ min: 0, max: 2 ** 40 });

describe('windowField: the same field as each old copy', () => {
  it('south windowFor / ackClient: rounding up, clamping to 0xffff, negative to 0', () => {
    const cases: Array<[number, number, number]> = [
      [1000, 1000, 0], // zero window
      [1000, 1001, 0], // edge left of the ack: negative → 0
      [1000, 1_000_000, 7], // far left
      [1001, 1000, 7], // 1 byte at scale 7 rounds up to 1
      [1000 + 128, 1000, 7], // exactly one unit
      [1000 + 129, 1000, 7], // one unit and a byte: 2
      [0xffff, 0, 0], // exactly the field's maximum
      [0x10000, 0, 0], // one past: clamped
      [0xffff * 128 + 1, 0, 7], // rounds up past the maximum: clamped
      [2 ** 33 + 5, 2 ** 33, 14], // offsets past 2^32
      [2 ** 40, 0, 14], // huge: clamped
    ];
    for (const [e, a, s] of cases) expect([e, a, s, viaSouth(e, a, s)]).toEqual([e, a, s, oldWindowFor(e, a, s)]);
    fc.assert(fc.property(offset, offset, shift, (e, a, s) => viaSouth(e, a, s) === oldWindowFor(e, a, s)), { numRuns: 5000 });
  });

  it('rebuild absorbWindow: bytes of room at the client scale', () => {
    const cases: Array<[number, number]> = [[0, 0], [1, 0], [1, 7], [128, 7], [129, 7], [0xffff, 0], [0x10000, 0], [0xffff * 16384 + 1, 14], [2 ** 40, 14]];
    for (const [b, s] of cases) expect([b, s, viaAbsorb(b, s)]).toEqual([b, s, oldAbsorbField(b, s)]);
    fc.assert(fc.property(offset, shift, (b, s) => viaAbsorb(b, s) === oldAbsorbField(b, s)), { numRuns: 5000 });
  });

  it('translate: a field rescaled from the new incarnation\'s shift to the old one', () => {
    const cases: Array<[number, number, number]> = [[0, 7, 0], [1, 0, 7], [127, 0, 7], [128, 0, 7], [129, 0, 7], [0xffff, 7, 0], [0xffff, 14, 13], [0xffff, 0, 14], [300, 9, 7]];
    for (const [w, n, o] of cases) expect([w, n, o, viaTranslate(w, n, o)]).toEqual([w, n, o, oldTranslated(w, n, o)]);
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), shift, shift, (w, n, o) => viaTranslate(w, n, o) === oldTranslated(w, n, o)), { numRuns: 5000 });
  });

  it('names its bounds: never above the field, never negative, the edge never moves left', () => {
    fc.assert(fc.property(offset, offset, shift, (e, a, s) => {
      const w = windowField(e, a, s);
      return w >= 0 && w <= WINDOW_FIELD_MAX && (w === WINDOW_FIELD_MAX || e <= a || a + w * 2 ** s >= e);
    }), { numRuns: 5000 });
  });
});
