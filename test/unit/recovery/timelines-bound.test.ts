/**
 * The recovery timelines (one per crash of a service) are bounded: the gateway fuzz's 10^7
 * run crashed its services ~21,000 times and the heap, drained, grew by 3.5 MB, the array
 * of timelines (~400 B each) kept for ever. `ftcp status` shows the last 50; the drill
 * reads those; the gateway keeps the last MAX_TIMELINES.
 */
import { describe, it, expect } from 'vitest';
import { Harness, FakeOracle } from '../../support/gateway-harness.js';
import { MAX_TIMELINES } from '../../../src/recovery/rebuild.js';

describe('recovery timelines', () => {
  it(`keeps the last ${MAX_TIMELINES} crashes, numbered from the first`, () => {
    const o = new FakeOracle();
    const h = new Harness({ oracle: o });
    const crashes = MAX_TIMELINES + 100;
    for (let i = 0; i < crashes; i++) {
      h.now += 10;
      o.emit('crashed');
      h.now += 10;
      o.emit('listening');
    }
    const tl = h.gw.north.timelines;
    expect(h.gw.north.stats.crashes).toBe(crashes);
    expect(tl).toHaveLength(MAX_TIMELINES);
    expect(tl[tl.length - 1]!.crash).toBe(crashes);
    expect(tl[0]!.crash).toBe(crashes - MAX_TIMELINES + 1);
  });
});
