/**
 * The log link under the drill's log-loss impairment (src/lab/faults.ts LOG_IMPAIRMENT:
 * 3 % loss, 2 % duplication, 20 % of datagrams delayed by up to 5 ms), at full rate on a
 * path of bounded capacity. Issue 10 item 1: on a busy machine this collapsed into a
 * retransmission livelock (every reordering answered by a REJECT, every REJECT by a resend
 * of everything outstanding, REJECT limits ending in resyncs). Here the link must carry
 * the stream exactly once in order, without a resync, with retransmissions a small
 * fraction of the datagrams, near the path's capacity.
 */
import { describe, expect, it } from 'vitest';
import { SimNetwork, type PathFault } from '../../../src/link/sim.js';
import { FRAME_OVERHEAD } from '../../../src/link/frame.js';
import { DEFAULT_MAX_DATAGRAM } from '../../../src/link/endpoint.js';
import { drive, Flow, pair } from './harness.js';

/**
 * LOG_IMPAIRMENT, on a path of 50 MB/s whose queue (the peer's 4 MiB socket buffer in the
 * lab) holds more than the link's 1 MiB window.
 */
const DRILL_FAULT: Partial<PathFault> = {
  loss: 0.03,
  dup: 0.02,
  reorder: 0.2,
  reorderMs: 5,
  delayMs: 0.2,
  jitterMs: 0.1,
  rateBytesPerMs: 50_000,
  queueBytes: 2 << 20,
};

const PAYLOAD = DEFAULT_MAX_DATAGRAM - FRAME_OVERHEAD - 16; // an APPEND filling one frame

function run(seed: number, total: number) {
  const sim = new SimNetwork({ seed, fault: DRILL_FAULT });
  // a → b: APPENDs as fast as the window allows; b → a: small replies (STABLE notices).
  const ab = new Flow(total, () => PAYLOAD);
  const ba = new Flow(total, () => 64, 4);
  const { a, b } = pair(sim, ab, ba, { chunkSize: undefined });
  const t0 = sim.now;
  const ok = drive(sim, [ab, ba], 60_000, 1);
  return { ok, sim, ab, ba, a, b, ms: sim.now - t0 };
}

describe('log link at the drill impairment, full rate (issue 10 item 1)', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: exactly once in order, no resync, retransmissions bounded, near capacity`, () => {
      const total = 3000; // ~48 MB
      const { ok, sim, ab, ba, a, b, ms } = run(seed, total);
      const detail = JSON.stringify({ ms: Math.round(ms), a: a.counters, b: b.counters, queueDrops: sim.queueDrops });
      expect(ok, detail).toBe(true);
      ab.check();
      ba.check();
      expect(ab.lost.size + ba.lost.size, detail).toBe(0);
      expect(ab.delivered.length).toBe(total);
      expect(ba.delivered.length).toBe(total);
      expect(a.counters.resyncs + b.counters.resyncs, detail).toBe(0);
      expect(a.counters.peerResyncs + b.counters.peerResyncs, detail).toBe(0);
      // Loss is 3 % (plus what overflows the queue): resending more than 15 % of the
      // datagrams is resending what the peer already holds.
      expect(a.counters.retransmitted / a.counters.datagramsOut, detail).toBeLessThan(0.15);
      expect(b.counters.retransmitted / Math.max(1, b.counters.datagramsOut), detail).toBeLessThan(0.15);
      expect(a.counters.pathSwitches + b.counters.pathSwitches, detail).toBe(0);
      // Full rate: at least half of the path's capacity (the rest: loss, repair, slow start).
      const wire = total * (PAYLOAD + FRAME_OVERHEAD);
      expect(wire / ms, detail).toBeGreaterThan(DRILL_FAULT.rateBytesPerMs! / 2);
    });
  }
});
