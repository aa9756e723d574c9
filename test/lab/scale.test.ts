/**
 * Many connections through one crash (issue 5, scale), on real kernels: 300 connections to
 * the supervised echo server, 64 KiB sent and echoed on each (logged), kill -9 of the server,
 * then every connection sends 1 KiB more and must get every byte back and close cleanly
 * (the hold client, src/bench/hold.ts); the gateway's recovery timeline must count all 300
 * handshaken, replayed and caught up. recoveryRun throws on any failed connection.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { recoveryRun } from '../../src/bench/scale.js';
import { listLeftovers } from '../../src/lab/index.js';
import { ensureBuilt } from '../support/build.js';

beforeAll(() => ensureBuilt());

describe('scale: many connections through one kill -9 (lab)', () => {
  it('300 connections x 64 KiB: every one byte-exact after the crash, the timeline covers all 300', async () => {
    const n = 300;
    const r = await recoveryRun(n, { bytes: 64 * 1024, concurrency: 100, offload: false });
    expect(r.connections).toBe(n);
    expect(r.detectedMs).toBeGreaterThanOrEqual(0);
    expect(r.listeningMs).toBeGreaterThanOrEqual(r.detectedMs);
    expect(r.handshakesMs).toBeGreaterThanOrEqual(0);
    expect(r.replayMs).toBeGreaterThanOrEqual(r.handshakesMs);
    expect(r.caughtUpMs).toBeGreaterThanOrEqual(r.replayMs);
    expect(r.north.handshakes).toBe(n);
    expect(r.north.caughtUp).toBe(n);
    expect(r.north.rebuildFailed).toBe(0);
    expect(r.north.rstsToClient).toBe(0);
    // Every connection's 64 KiB was replayed from the log (retransmissions aside).
    expect(r.north.replayBytes).toBeGreaterThanOrEqual(n * 64 * 1024);
    expect(await listLeftovers(r.lab)).toEqual([]);
  }, 120_000);
});
