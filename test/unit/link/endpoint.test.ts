import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrame, F_DATA, F_CHUNK_FIRST, FRAME_OVERHEAD } from '../../../src/link/frame.js';
import { DEFAULT_MAX_DATAGRAM, MAX_UDP_DATAGRAM } from '../../../src/link/endpoint.js';
import { SimNetwork } from '../../../src/link/sim.js';
import { FtcpError } from '../../../src/util/errors.js';
import { checkMessage, drive, Flow, KEY, makeMessage, pair } from './harness.js';

/** Message id carried by a DATA frame that starts a message, else -1. */
function firstChunkId(dg: Buffer): number {
  const r = decodeFrame(KEY, dg);
  if (!r.ok || !(r.frame.flags & F_DATA) || !(r.frame.flags & F_CHUNK_FIRST)) return -1;
  return r.frame.payload.readUInt32BE(0);
}

function setup(seed: number, fault = {}, total = 500, sizeOf?: (i: number) => number, perPump = 10) {
  const sim = new SimNetwork({ seed, fault });
  const ab = new Flow(total, sizeOf, perPump);
  const ba = new Flow(total, sizeOf, perPump);
  const { a, b } = pair(sim, ab, ba);
  return { sim, ab, ba, a, b };
}

describe('clean network', () => {
  it('delivers both directions in order exactly once, without REJECTs or loss', () => {
    const { sim, ab, ba, a, b } = setup(1, {}, 2000, (i) => (i % 50 === 0 ? 5000 : 100));
    expect(drive(sim, [ab, ba], 10_000)).toBe(true);
    ab.check();
    ba.check();
    expect(ab.delivered.length).toBe(2000);
    expect(ba.delivered.length).toBe(2000);
    expect(ab.lost.size + ba.lost.size).toBe(0);
    expect(a.counters.rejectsSent + b.counters.rejectsSent).toBe(0);
    expect(a.counters.resyncs + b.counters.resyncs).toBe(0);
    expect(ab.events).toEqual(['active']);
  });

  it('refuses sends beyond the window and calls onWritable when it opens', () => {
    const sim = new SimNetwork({ seed: 2 });
    const ab = new Flow(100, () => 1000);
    const ba = new Flow(0);
    const { a } = pair(sim, ab, ba, { windowFrames: 8 });
    expect(a.send(Buffer.alloc(10))).toBe(false); // peer not yet active
    // The peer becoming active is the onWritable that starts the flow.
    expect(sim.runUntil(() => a.peerState === 'active', 100)).toBe(true);
    expect(ab.next).toBe(8);
    expect(a.inFlight).toBe(8);
    expect(drive(sim, [ab], 5000)).toBe(true);
    ab.check();
    expect(ab.delivered.length).toBe(100);
    expect(() => a.send(Buffer.alloc(8 * 1200 + 1))).toThrow(FtcpError);
  });
});

describe('datagram size', () => {
  it('defaults to 16 KiB datagrams: a message up to framePayload is one datagram, a larger one is chunked', () => {
    const sim = new SimNetwork({ seed: 3 });
    sim.recordWire = true;
    const ab = new Flow(0);
    const ba = new Flow(0);
    const { a, b } = pair(sim, ab, ba, { chunkSize: undefined });
    expect(a.framePayload).toBe(DEFAULT_MAX_DATAGRAM - FRAME_OVERHEAD);
    expect(sim.runUntil(() => a.peerState === 'active' && b.peerState === 'active', 100)).toBe(true);
    sim.wire.length = 0;
    expect(a.send(makeMessage(0, a.framePayload))).toBe(true);
    expect(a.send(makeMessage(1, a.framePayload + 1))).toBe(true);
    sim.run(50);
    expect(ab.delivered).toEqual([0, 1]);
    const isData = (dg: Buffer) => {
      const r = decodeFrame(KEY, dg);
      return r.ok && (r.frame.flags & F_DATA) !== 0;
    };
    const data = sim.wire.filter((w) => w.from === 'a' && isData(w.dg));
    expect(data.map((w) => w.dg.length)).toEqual([DEFAULT_MAX_DATAGRAM, DEFAULT_MAX_DATAGRAM, 1 + FRAME_OVERHEAD]);
  });

  it('maxDatagram sets the frame size; beyond a UDP datagram it is refused', () => {
    const sim = new SimNetwork({ seed: 4 });
    const { a } = pair(sim, new Flow(0), new Flow(0), { chunkSize: undefined, maxDatagram: 60_000 });
    expect(a.framePayload).toBe(60_000 - FRAME_OVERHEAD);
    expect(() => new SimNetwork({ seed: 5 }).addEndpoint('a', { key: KEY, maxDatagram: MAX_UDP_DATAGRAM + 1 })).toThrow();
    expect(() => new SimNetwork({ seed: 5 }).addEndpoint('a', { key: KEY, maxDatagram: FRAME_OVERHEAD })).toThrow();
  });
});

describe('faulty network (fixed seeds)', () => {
  it('loss: REJECT and retransmission recover everything', () => {
    const { sim, ab, ba, a, b } = setup(11, { loss: 0.1 }, 1500, (i) => (i % 7 === 0 ? 4000 : 200));
    expect(drive(sim, [ab, ba], 60_000)).toBe(true);
    ab.check();
    ba.check();
    expect(b.counters.rejectsSent).toBeGreaterThan(0);
    expect(a.counters.rejectsReceived).toBeGreaterThan(0);
    expect(a.counters.retransmitted).toBeGreaterThan(0);
    expect(ab.delivered.length + ab.lost.size).toBeGreaterThanOrEqual(1500);
  });

  it('reordering and duplication: in order exactly once; copies dropped and counted', () => {
    const { sim, ab, ba, a, b } = setup(12, { reorder: 0.3, reorderMs: 8, dup: 0.1, jitterMs: 2 }, 1500);
    expect(drive(sim, [ab, ba], 60_000)).toBe(true);
    ab.check();
    ba.check();
    expect(ab.lost.size + ba.lost.size).toBe(0);
    expect(ab.delivered.length).toBe(1500);
    expect(a.counters.replayed + b.counters.replayed).toBeGreaterThan(0);
    // Reordering within the reorder window is waited out: no REJECT, nothing resent.
    expect(b.counters.rejectsSent).toBe(0);
    expect(a.counters.retransmitted).toBe(0);
  });

  it('reordering beyond the reorder window: the REJECT names only the missing frames', () => {
    const { sim, ab, ba, a, b } = setup(15, { reorder: 0.3, reorderMs: 40, jitterMs: 2 }, 1500);
    expect(drive(sim, [ab, ba], 60_000)).toBe(true);
    ab.check();
    ba.check();
    expect(ab.lost.size + ba.lost.size).toBe(0);
    expect(b.counters.rejectsSent).toBeGreaterThan(0);
    expect(a.counters.retransmitted).toBeGreaterThan(0);
    // Selective: a resend only for frames late beyond the window (30 % of them at most),
    // never for the frames the receiver already held.
    expect(a.counters.retransmitted).toBeLessThan(0.3 * a.counters.sent);
    expect(b.counters.resyncs).toBe(0);
  });

  it('one path dead mid-run: traffic switches to the other network, nothing lost', () => {
    const { sim, ab, ba, a, b } = setup(13, { jitterMs: 1 }, 3000);
    const ok = drive(sim, [ab, ba], 100);
    expect(ok).toBe(false);
    expect(a.currentPath).toBe(b.currentPath);
    const dead = a.currentPath;
    sim.setPathUp(dead, false);
    expect(drive(sim, [ab, ba], 30_000)).toBe(true);
    ab.check();
    ba.check();
    expect(ab.lost.size + ba.lost.size).toBe(0);
    expect(a.counters.pathSwitches + b.counters.pathSwitches).toBeGreaterThan(0);
    expect(a.currentPath).toBe(1 - dead);
    expect(b.currentPath).toBe(1 - dead);
    expect(ab.events).toEqual(['active']);
  });

  it('both paths dead, then back: peer inactive, in-flight reported, then traffic resumes', () => {
    const { sim, ab, ba, a, b } = setup(14, {}, 4000);
    drive(sim, [ab, ba], 100);
    sim.setPathUp(0, false);
    sim.setPathUp(1, false);
    sim.run(a.timers.inactiveAfterMs + 200); // nobody pumps meanwhile
    expect(a.peerState).toBe('inactive');
    expect(b.peerState).toBe('inactive');
    expect(ab.events).toContain('inactive');
    expect(ab.lost.size).toBeGreaterThan(0);
    expect([...ab.lost.values()].every((r) => r === 'inactive')).toBe(true);
    expect(a.inFlight).toBe(0);
    expect(a.send(Buffer.alloc(8))).toBe(false);
    sim.setPathUp(0, true);
    sim.setPathUp(1, true);
    expect(drive(sim, [ab, ba], 30_000)).toBe(true);
    expect(a.peerState).toBe('active');
    expect(ab.events.at(-1)).toBe('active');
    ab.check();
    ba.check();
    // Only what was in flight when the peer went silent was given up.
    expect(ab.delivered.length + ab.lost.size).toBeGreaterThanOrEqual(4000);
    expect(ab.delivered.at(-1)).toBe(3999);
  });
});

describe('resynchronisation', () => {
  it('a message that can never get through: bounded REJECTs, resync, the sender is told exactly which', () => {
    const { sim, ab, ba, a, b } = setup(21, {}, 400, (i) => (i % 3 === 0 ? 3000 : 100));
    const victim = 150; // 3000 bytes: three chunks; only its first chunk is lost forever
    sim.dropIf = (from, _path, dg) => from === 'a' && firstChunkId(dg) === victim;
    expect(drive(sim, [ab, ba], 30_000)).toBe(true);
    ab.check();
    ba.check();
    expect([...ab.lost.entries()]).toEqual([[victim, 'resync']]);
    expect(ab.delivered).not.toContain(victim);
    expect(ab.delivered.length).toBe(399);
    expect(b.counters.resyncs).toBe(1);
    expect(b.counters.rejectsSent).toBeGreaterThanOrEqual(b.timers.maxRejects);
    expect(a.counters.peerResyncs).toBe(1);
    expect(b.counters.discardedChunks).toBeGreaterThan(0); // the victim's later chunks
    expect(ab.events).toContain('resync');
  });

  it('a restarted peer (new boot id): RESET resynchronises, old-session datagrams are replays', () => {
    const sim = new SimNetwork({ seed: 22 });
    sim.recordWire = true;
    const ab = new Flow(1000, undefined, 10);
    const ba = new Flow(0);
    const { a } = pair(sim, ab, ba);
    drive(sim, [ab], 60);
    const oldB = sim.endpoint('b');
    const oldFrames = sim.wire.filter((w) => w.from === 'b').map((w) => w.dg);
    // b restarts: a new endpoint, new boot id, empty state; same flow of deliveries.
    const delivered2: number[] = [];
    sim.addEndpoint('b', {
      key: KEY,
      onMessage: (m) => {
        delivered2.push(m.readUInt32BE(0));
        ab.delivered.push(checkMessage(m));
      },
    });
    expect(sim.endpoint('b').bootId).not.toBe(oldB.bootId);
    expect(drive(sim, [ab], 30_000)).toBe(true);
    expect(a.peerBootId).toBe(sim.endpoint('b').bootId);
    expect(ab.events).toContain('resync');
    expect(a.counters.resyncs).toBe(1);
    // What the old b had not acknowledged is reported; the old b's deliveries and the new
    // b's together are still in order, exactly once, and cover every unreported message.
    expect([...ab.lost.values()].every((r) => r === 'peer-restart')).toBe(true);
    ab.check();
    expect(delivered2.length).toBeGreaterThan(0);
    expect(delivered2.at(-1)).toBe(999);
    // Datagrams of b's old session, replayed to a, are dropped and counted.
    const before = a.counters.replayed;
    const deliveredBefore = delivered2.length;
    expect(oldFrames.length).toBeGreaterThan(5);
    for (const dg of oldFrames) sim.inject('a', 0, dg);
    sim.run(20);
    expect(a.counters.replayed - before).toBe(oldFrames.length);
    expect(delivered2.length).toBe(deliveredBefore);
  });
});

describe('authentication', () => {
  it('forged, tampered and replayed datagrams are dropped and counted; delivery unaffected', () => {
    const { sim, ab, ba, a, b } = setup(31, {}, 800);
    sim.recordWire = true;
    drive(sim, [ab, ba], 50);
    const captured = sim.wire.filter((w) => w.from === 'a').map((w) => w.dg);
    expect(captured.length).toBeGreaterThan(10);
    let forged = 0;
    for (let i = 0; i < 50; i++) {
      const c = Buffer.from(captured[i % captured.length]!);
      c[(i * 7) % (c.length - 20)]! ^= 0x40; // tamper a header or payload byte
      sim.inject('b', i % 2, c, i);
      forged++;
    }
    const garbage = Buffer.alloc(200, 0xab);
    sim.inject('b', 0, garbage, 1);
    forged++;
    for (let i = 0; i < 30; i++) sim.inject('b', 0, captured[i]!, 2 + i); // exact replays
    expect(drive(sim, [ab, ba], 30_000)).toBe(true);
    ab.check();
    ba.check();
    expect(ab.delivered.length).toBe(800);
    expect(b.counters.forged + b.counters.malformed).toBe(forged);
    expect(b.counters.forged).toBeGreaterThanOrEqual(forged - 2);
    expect(b.counters.replayed).toBeGreaterThanOrEqual(30);
    expect(a.counters.forged).toBe(0);
  });
});

describe('properties over random seeds and fault rates', () => {
  it('every promised message is delivered in order exactly once', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0x7fffffff }),
        fc.double({ min: 0, max: 0.3, noNaN: true }),
        fc.double({ min: 0, max: 0.1, noNaN: true }),
        fc.double({ min: 0, max: 0.3, noNaN: true }),
        fc.boolean(),
        (seed, loss, dup, reorder, killPath) => {
          const { sim, ab, ba } = setup(seed, { loss, dup, reorder, reorderMs: 6, jitterMs: 1 }, 300, (i) =>
            i % 11 === 0 ? 2500 : 50 + (i % 300),
          );
          if (killPath) {
            drive(sim, [ab, ba], 30);
            sim.setPathUp(0, false);
          }
          const ok = drive(sim, [ab, ba], 60_000);
          expect(ok).toBe(true);
          ab.check();
          ba.check();
        },
      ),
      { numRuns: 12, seed: 4242 },
    );
  });
});
