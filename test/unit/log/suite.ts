/**
 * The behavioural suite every LogStore must pass; memory.test.ts and disk.test.ts run it
 * against their store. Waits poll the stability listener (bounded); nothing asserts time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { LogOptions } from '../../../src/log/common.js';
import type { LogStatus, LogStore } from '../../../src/log/types.js';
import { FtcpError } from '../../../src/util/errors.js';
import { openMeta, StableRecorder, STATE_LIVE, STATE_MASKED, STATE_REPLAY, streamBytes, turns, waitFor } from './helpers.js';

export interface Harness {
  log: LogStore;
  cleanup(): Promise<void>;
}

export type MakeLog = (options?: LogOptions) => Promise<Harness>;

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toBeInstanceOf(FtcpError);
  await expect(p).rejects.toMatchObject({ code });
}

/**
 * `asyncStatus`: the store learns its status from elsewhere (a remote log server), so
 * status checks wait (bounded) instead of holding right after the call, and counters
 * kept by the server (appendsOverCapacity) are not the client's.
 */
export function logSuite(name: string, make: MakeLog, opts: { propertyRuns: number; asyncStatus?: boolean }): void {
  const statusIs = async (log: LogStore, want: LogStatus): Promise<void> => {
    if (opts.asyncStatus) await waitFor(() => log.status() === want, 5000, `status ${want}`);
    expect(log.status()).toBe(want);
  };
  describe(`${name}: LogStore behaviour`, () => {
    const live: Harness[] = [];
    async function fresh(options?: LogOptions): Promise<{ log: LogStore; rec: StableRecorder }> {
      const h = await make(options);
      live.push(h);
      return { log: h.log, rec: new StableRecorder(h.log) };
    }
    afterEach(async () => {
      for (const h of live.splice(0)) await h.cleanup();
    });

    it('open assigns distinct ids and lists metadata', async () => {
      const { log } = await fresh();
      const m1 = openMeta();
      const m2 = openMeta({ serverIsn: 0xffffffff });
      const a = await log.open(m1);
      const b = await log.open(m2);
      expect(a).not.toBe(b);
      const recs = log.listActive();
      expect(recs.map((r) => r.id).sort()).toEqual([a, b].sort());
      const ra = recs.find((r) => r.id === a)!;
      expect(ra.client).toEqual(m1.client);
      expect(ra.server).toEqual(m1.server);
      expect(ra.clientIsn).toBe(m1.clientIsn);
      expect(ra.serverIsn).toBe(m1.serverIsn);
      expect(Buffer.from(ra.clientSynOptions).equals(Buffer.from(m1.clientSynOptions))).toBe(true);
      expect(Buffer.from(ra.serverSynOptions).equals(Buffer.from(m1.serverSynOptions))).toBe(true);
      expect(ra.stable).toBe(0);
      expect(ra.finOffset).toBeNull();
      expect(ra.gcThrough).toBe(0);
      expect(log.listActive().find((r) => r.id === b)!.serverIsn).toBe(0xffffffff);
    });

    it('open rejects malformed metadata', async () => {
      const { log } = await fresh();
      await rejectsWithCode(log.open(openMeta({ client: { addr: '10.9.0.1', port: 70000 } })), 'FTCP_LOG_BAD_META');
      await rejectsWithCode(log.open(openMeta({ clientIsn: -1 })), 'FTCP_LOG_BAD_META');
      expect(log.listActive()).toHaveLength(0);
    });

    it('append in order then read back', async () => {
      const { log, rec } = await fresh();
      const id = await log.open(openMeta());
      const data = streamBytes(1, 0, 10_000);
      for (let o = 0; o < data.length; o += 1448) log.append(id, o, data.subarray(o, Math.min(o + 1448, data.length)));
      await rec.until(id, data.length);
      expect(rec.stable(id)).toBe(data.length);
      expect((await log.read(id, 0, data.length)).equals(data)).toBe(true);
      expect((await log.read(id, 1000, 2000)).equals(data.subarray(1000, 2000))).toBe(true);
      // end past the stable point is clipped; an empty range is empty
      expect((await log.read(id, 9000, 1e9)).equals(data.subarray(9000))).toBe(true);
      expect((await log.read(id, 20_000, 30_000)).length).toBe(0);
      expect(log.listActive()[0]!.stable).toBe(data.length);
    });

    it('append copies the buffer it is given', async () => {
      const { log, rec } = await fresh();
      const id = await log.open(openMeta());
      const buf = Buffer.alloc(3000, 0x41);
      log.append(id, 0, buf);
      buf.fill(0x42); // the caller reuses its buffer at once
      log.append(id, 3000, buf.subarray(0, 1000));
      await rec.until(id, 4000);
      const got = await log.read(id, 0, 4000);
      expect(got.subarray(0, 3000).every((b) => b === 0x41)).toBe(true);
      expect(got.subarray(3000).every((b) => b === 0x42)).toBe(true);
    });

    it('read rejects unknown id', async () => {
      const { log } = await fresh();
      await rejectsWithCode(log.read(4242, 0, 10), 'FTCP_LOG_UNKNOWN');
    });

    it('append never throws on bad input', async () => {
      const { log, rec } = await fresh();
      const id = await log.open(openMeta());
      expect(() => log.append(id, -5, Buffer.alloc(10))).not.toThrow();
      expect(() => log.append(id, 1.5, Buffer.alloc(10))).not.toThrow();
      expect(() => log.append(id, Number.NaN, Buffer.alloc(10))).not.toThrow();
      expect(() => log.append(999_999, 0, Buffer.alloc(10))).not.toThrow();
      expect(() => log.appendFin(999_999, 0)).not.toThrow();
      log.append(id, 0, Buffer.alloc(5, 1));
      await rec.until(id, 5);
      await turns(3);
      expect(rec.stable(id)).toBe(5);
      const st = log.stats!();
      expect(st.badOffset).toBe(3);
      expect(st.unknownId).toBe(2);
    });

    it('stable never covers a gap until it fills', async () => {
      const { log, rec } = await fresh();
      const id = await log.open(openMeta());
      const data = streamBytes(2, 0, 300);
      log.append(id, 0, data.subarray(0, 100));
      log.append(id, 200, data.subarray(200, 300));
      await rec.until(id, 100);
      await turns(5);
      expect(rec.stable(id)).toBe(100);
      expect(log.listActive()[0]!.stable).toBe(100);
      expect((await log.read(id, 0, 300)).equals(data.subarray(0, 100))).toBe(true);
      log.append(id, 100, data.subarray(100, 200));
      await rec.until(id, 300);
      expect(rec.stable(id)).toBe(300);
      expect((await log.read(id, 0, 300)).equals(data)).toBe(true);
    });

    it('overlapping and duplicate appends keep one copy', async () => {
      const { log, rec } = await fresh();
      const id = await log.open(openMeta());
      const data = streamBytes(3, 0, 1000);
      log.append(id, 0, data.subarray(0, 100));
      log.append(id, 50, data.subarray(50, 150));
      log.append(id, 0, data.subarray(0, 150));
      log.append(id, 400, data.subarray(400, 600)); // held
      log.append(id, 450, data.subarray(450, 500)); // inside a held segment
      log.append(id, 300, data.subarray(300, 700)); // overlaps the held one on both sides
      log.append(id, 140, data.subarray(140, 310)); // fills the gap, overlapping both sides
      await rec.until(id, 700);
      expect(rec.stable(id)).toBe(700);
      expect((await log.read(id, 0, 700)).equals(data.subarray(0, 700))).toBe(true);
      const st = log.stats!();
      expect(st.bytesAccepted).toBe(700);
      expect(st.bytesDuplicate).toBeGreaterThan(0);
    });

    it('held out-of-order bytes are bounded then resent', async () => {
      const { log, rec } = await fresh({ maxHeldBytes: 1000 });
      const id = await log.open(openMeta());
      const data = streamBytes(4, 0, 4000);
      log.append(id, 1000, data.subarray(1000, 1800)); // held (800)
      log.append(id, 2000, data.subarray(2000, 4000)); // over the cap: dropped
      log.append(id, 0, data.subarray(0, 1000));
      await rec.until(id, 1800);
      await turns(5);
      expect(rec.stable(id)).toBe(1800);
      expect(log.stats!().bytesHeldDropped).toBe(2000);
      log.append(id, 1800, data.subarray(1800, 4000)); // the gateway resends
      await rec.until(id, 4000);
      expect((await log.read(id, 0, 4000)).equals(data)).toBe(true);
    });

    it('property random segmentation shuffle duplication yields the stream', async () => {
      const { log, rec } = await fresh();
      const scenario = fc
        .record({
          stream: fc.uint8Array({ minLength: 1, maxLength: 4000 }),
          cutSeeds: fc.array(fc.nat(), { maxLength: 40 }),
          dupSeeds: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 15 }),
          yieldEvery: fc.integer({ min: 0, max: 6 }),
        })
        .chain(({ stream, cutSeeds, dupSeeds, yieldEvery }) => {
          const L = stream.length;
          const cuts = [...new Set(cutSeeds.map((s) => s % L).filter((c) => c > 0))].sort((a, b) => a - b);
          const bounds = [0, ...cuts, L];
          const segs: [number, number][] = [];
          for (let i = 0; i + 1 < bounds.length; i++) segs.push([bounds[i]!, bounds[i + 1]!]);
          for (const [s, n] of dupSeeds) {
            const start = s % L;
            segs.push([start, Math.min(L, start + 1 + (n % L))]);
          }
          return fc.record({
            stream: fc.constant(stream),
            order: fc.shuffledSubarray(segs, { minLength: segs.length, maxLength: segs.length }),
            yieldEvery: fc.constant(yieldEvery),
          });
        });
      await fc.assert(
        fc.asyncProperty(scenario, async ({ stream, order, yieldEvery }) => {
          const L = stream.length;
          const id = await log.open(openMeta());
          const covered = new Uint8Array(L);
          let prefix = 0;
          let violation = '';
          let last = 0;
          rec.check = (cid, stable) => {
            if (cid !== id) return;
            if (stable > prefix) violation = `stable ${stable} covers a gap (gap-free prefix ${prefix})`;
            if (stable <= last) violation = `not monotonic: ${stable} after ${last}`;
            last = stable;
          };
          let n = 0;
          for (const [s, e] of order) {
            log.append(id, s, stream.subarray(s, e));
            covered.fill(1, s, e);
            while (prefix < L && covered[prefix] === 1) prefix++;
            n++;
            if (yieldEvery > 0 && n % yieldEvery === 0) await new Promise((r) => setImmediate(r));
          }
          expect(prefix).toBe(L);
          await rec.until(id, L);
          rec.check = undefined;
          expect(violation).toBe('');
          expect(rec.stable(id)).toBe(L);
          const got = await log.read(id, 0, L);
          expect(got.equals(Buffer.from(stream))).toBe(true);
          log.close(id);
        }),
        { numRuns: opts.propertyRuns },
      );
    });

    it('notifications are async coalesced and monotonic', async () => {
      const { log, rec } = await fresh();
      const a = await log.open(openMeta());
      const b = await log.open(openMeta());
      const data = streamBytes(5, 0, 100 * 1448);
      for (let i = 0; i < 100; i++) {
        log.append(a, i * 1448, data.subarray(i * 1448, (i + 1) * 1448));
        log.append(b, i * 1448, data.subarray(i * 1448, (i + 1) * 1448));
      }
      expect(rec.calls).toHaveLength(0); // never from inside append
      await rec.until(a, data.length);
      await rec.until(b, data.length);
      for (const id of [a, b]) {
        const seq = rec.callsFor(id);
        for (let i = 1; i < seq.length; i++) expect(seq[i]!).toBeGreaterThan(seq[i - 1]!);
        // 200 appends in one turn: far fewer calls than appends
        expect(seq.length).toBeLessThan(20);
        expect(seq[seq.length - 1]).toBe(data.length);
      }
      // Replacing the listener: only the new one is called.
      const seen: number[] = [];
      log.onStable((_id, s) => seen.push(s));
      log.append(a, data.length, Buffer.alloc(10));
      await waitFor(() => seen.length > 0);
      expect(seen).toEqual([data.length + 10]);
      expect(rec.stable(a)).toBe(data.length);
    });

    it('a FIN is stable after the bytes before it', async () => {
      const { log, rec } = await fresh();
      const id = await log.open(openMeta());
      const data = streamBytes(6, 0, 500);
      log.append(id, 0, data.subarray(0, 200));
      log.appendFin(id, 500); // FIN known before the data that precedes it
      await rec.until(id, 200);
      await turns(5);
      expect(rec.stable(id)).toBe(200);
      expect(log.listActive()[0]!.finOffset).toBe(500);
      log.append(id, 200, data.subarray(200, 500));
      await rec.until(id, 501);
      expect(rec.stable(id)).toBe(501); // the FIN counts as one offset
      expect(log.listActive()[0]!.stable).toBe(501);
      // read returns data only
      expect((await log.read(id, 0, 1000)).equals(data)).toBe(true);
      // bytes past the FIN and a contradicting FIN are ignored and counted
      log.append(id, 500, Buffer.alloc(10));
      log.appendFin(id, 600);
      await turns(5);
      expect(rec.stable(id)).toBe(501);
      expect((await log.read(id, 0, 1000)).length).toBe(500);
      const st = log.stats!();
      expect(st.bytesBeyondFin).toBe(10);
      expect(st.finConflict).toBe(1);
    });

    it('a FIN drops held bytes beyond it, and a FIN on an empty stream', async () => {
      const { log, rec } = await fresh();
      const id = await log.open(openMeta());
      log.append(id, 100, Buffer.alloc(50, 9)); // held, partly past the FIN
      log.appendFin(id, 120);
      log.append(id, 0, Buffer.alloc(100, 8));
      await rec.until(id, 121);
      expect((await log.read(id, 0, 200)).length).toBe(120);
      expect(log.stats!().bytesBeyondFin).toBe(30);
      const e = await log.open(openMeta());
      log.appendFin(e, 0);
      await rec.until(e, 1);
      expect(log.listActive().find((r) => r.id === e)!.stable).toBe(1);
    });

    it('gc discards below and reads there reject', async () => {
      const { log, rec } = await fresh();
      const id = await log.open(openMeta());
      const data = streamBytes(7, 0, 300_000);
      for (let o = 0; o < data.length; o += 1448) log.append(id, o, data.subarray(o, Math.min(o + 1448, data.length)));
      await rec.until(id, data.length);
      log.gc(id, 100_000);
      expect(log.listActive()[0]!.gcThrough).toBe(100_000);
      await rejectsWithCode(log.read(id, 0, 10), 'FTCP_LOG_GC');
      await rejectsWithCode(log.read(id, 99_999, 100_010), 'FTCP_LOG_GC');
      expect((await log.read(id, 100_000, 300_000)).equals(data.subarray(100_000))).toBe(true);
      // gc never goes backwards and is clipped to the stable point
      log.gc(id, 50_000);
      expect(log.listActive()[0]!.gcThrough).toBe(100_000);
      log.gc(id, 10_000_000);
      expect(log.listActive()[0]!.gcThrough).toBe(300_000);
      expect((await log.read(id, 300_000, 400_000)).length).toBe(0);
      // the stream goes on after a full gc
      log.append(id, 300_000, Buffer.alloc(100, 3));
      await rec.until(id, 300_100);
      expect((await log.read(id, 300_000, 300_100)).equals(Buffer.alloc(100, 3))).toBe(true);
    });

    it('close forgets the connection', async () => {
      const { log, rec } = await fresh();
      const id = await log.open(openMeta());
      const keep = await log.open(openMeta());
      log.append(id, 0, Buffer.alloc(100, 1));
      log.append(keep, 0, Buffer.alloc(100, 2));
      await rec.until(id, 100);
      await rec.until(keep, 100);
      log.append(id, 100, Buffer.alloc(100, 1));
      log.close(id); // before the new bytes' notification
      await turns(5);
      expect(rec.callsFor(id)).toEqual([100]);
      expect(log.listActive().map((r) => r.id)).toEqual([keep]);
      if (log.listIds !== undefined) expect(log.listIds()).toEqual([keep]); // what a log server's list starts from
      await rejectsWithCode(log.read(id, 0, 10), 'FTCP_LOG_UNKNOWN');
      const before = log.stats!().unknownId;
      log.append(id, 200, Buffer.alloc(1));
      expect(log.stats!().unknownId).toBe(before + 1);
      expect(() => log.close(id)).not.toThrow();
      expect((await log.read(keep, 0, 100)).equals(Buffer.alloc(100, 2))).toBe(true);
    });

    it('setState resolves once the record is stable; listActive and queryEndpoint return it; an older update never replaces it', async () => {
      const { log } = await fresh();
      const meta = openMeta();
      const id = await log.open(meta);
      const stateOf = () => log.listActive().find((r) => r.id === id)!.state;
      expect(stateOf()).toBeNull();
      await log.setState(id, STATE_MASKED);
      expect(stateOf()).toEqual(STATE_MASKED);
      // Two writes in a row: both resolve, the newer is the record.
      await Promise.all([log.setState(id, STATE_REPLAY), log.setState(id, STATE_LIVE)]);
      expect(stateOf()).toEqual(STATE_LIVE);
      expect(log.queryEndpoint(meta.client)!.state).toEqual(STATE_LIVE);
      // A late, older write resolves (a newer one is stable) and changes nothing.
      await log.setState(id, STATE_REPLAY);
      await log.setState(id, STATE_MASKED);
      expect(stateOf()).toEqual(STATE_LIVE);
      // The store keeps its own copy.
      const mine = { ...STATE_LIVE, update: 4, incarnations: [...STATE_LIVE.incarnations] };
      await log.setState(id, mine);
      mine.incarnations.length = 0;
      expect(stateOf()!.incarnations).toHaveLength(1);
    });

    it('setState refuses a malformed record (counted) and an id that is not open', async () => {
      const { log } = await fresh();
      const id = await log.open(openMeta());
      await rejectsWithCode(log.setState(id, { ...STATE_MASKED, update: 0 }), 'FTCP_LOG_BAD_STATE');
      await rejectsWithCode(log.setState(id, { ...STATE_REPLAY, incarnations: [] }), 'FTCP_LOG_BAD_STATE');
      expect(log.stats!().badState).toBe(2);
      expect(log.listActive()[0]!.state).toBeNull();
      await rejectsWithCode(log.setState(id + 1000, STATE_MASKED), 'FTCP_LOG_UNKNOWN');
      log.close(id);
      await rejectsWithCode(log.setState(id, STATE_MASKED), 'FTCP_LOG_UNKNOWN');
    });

    it('query endpoint by client then server', async () => {
      const { log } = await fresh();
      const m1 = openMeta();
      const m2 = openMeta({ server: { addr: '10.9.0.3', port: 443 } });
      const m3 = openMeta();
      const [a, b, c] = [await log.open(m1), await log.open(m2), await log.open(m3)];
      expect(log.queryEndpoint(m2.client)?.id).toBe(b);
      expect(log.queryEndpoint(m3.client, m3.server)?.id).toBe(c);
      expect(log.queryEndpoint(m3.client, m2.server)).toBeUndefined();
      expect(log.queryEndpoint({ addr: '10.9.0.3', port: 443 })?.id).toBe(b); // by server endpoint
      expect([a, c]).toContain(log.queryEndpoint(m1.server)?.id);
      expect(log.queryEndpoint({ addr: '192.0.2.1', port: 1 })).toBeUndefined();
      log.close(b);
      expect(log.queryEndpoint(m2.client)).toBeUndefined();
    });

    it('registered services limit what is logged', async () => {
      const { log } = await fresh();
      await log.open(openMeta({ server: { addr: '10.9.0.2', port: 81 } })); // nothing registered: all logged
      log.registerServices([{ addr: '10.9.0.2', port: 80 }, { addr: '0.0.0.0', port: 8080 }]);
      expect(await log.open(openMeta({ server: { addr: '10.9.0.2', port: 80 } }))).toBeGreaterThan(0);
      expect(await log.open(openMeta({ server: { addr: '10.9.0.7', port: 8080 } }))).toBeGreaterThan(0);
      await rejectsWithCode(log.open(openMeta({ server: { addr: '10.9.0.2', port: 81 } })), 'FTCP_LOG_UNREGISTERED');
      await rejectsWithCode(log.open(openMeta({ server: { addr: '10.9.0.3', port: 80 } })), 'FTCP_LOG_UNREGISTERED');
      log.registerServices([{ addr: '10.9.0.2', port: 0 }]);
      expect(await log.open(openMeta({ server: { addr: '10.9.0.2', port: 81 } }))).toBeGreaterThan(0);
      log.registerServices([]);
      expect(await log.open(openMeta({ server: { addr: '10.9.0.3', port: 1 } }))).toBeGreaterThan(0);
    });

    it('idle connections expire and are reported', async () => {
      const { log } = await fresh();
      const events: { status: LogStatus; expired?: number }[] = [];
      log.onStatus((status, detail) => events.push({ status, expired: detail?.expired }));
      const idle = await log.open(openMeta());
      const busy = await log.open(openMeta());
      log.setIdleExpiry(60);
      let off = 0;
      const deadline = Date.now() + 2000;
      while (!events.some((e) => e.expired === idle) && Date.now() < deadline) {
        log.append(busy, off, Buffer.alloc(10));
        off += 10;
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(events).toContainEqual({ status: 'OK', expired: idle });
      expect(log.listActive().map((r) => r.id)).toEqual([busy]);
      await rejectsWithCode(log.read(idle, 0, 1), 'FTCP_LOG_UNKNOWN');
      // once appends stop, the busy one expires too
      await waitFor(() => events.some((e) => e.expired === busy), 3000, 'busy connection to expire');
      expect(log.listActive()).toHaveLength(0);
      expect(log.stats!().expired).toBe(2);
      log.setIdleExpiry(0); // disabled
      const later = await log.open(openMeta());
      await new Promise((r) => setTimeout(r, 100));
      expect(log.listActive().map((r) => r.id)).toEqual([later]);
    });

    it('status OK, LOW-SPACE, and the capacity bound', async () => {
      const { log, rec } = await fresh({ maxBytes: 10_000 });
      const events: LogStatus[] = [];
      log.onStatus((s) => events.push(s));
      expect(log.status()).toBe('OK');
      const id = await log.open(openMeta());
      log.append(id, 0, Buffer.alloc(8000, 1));
      if (opts.asyncStatus) await rec.until(id, 8000);
      expect(log.status()).toBe('OK');
      log.append(id, 8000, Buffer.alloc(1000, 1)); // 9000 >= 90% of 10000
      await statusIs(log, 'LOW-SPACE');
      expect(events).toEqual(['LOW-SPACE']);
      log.append(id, 9000, Buffer.alloc(1500, 1)); // would exceed the bound: dropped
      if (!opts.asyncStatus) expect(log.stats!().appendsOverCapacity).toBe(1);
      await rec.until(id, 9000);
      await turns(opts.asyncStatus ? 50 : 3);
      expect(rec.stable(id)).toBe(9000);
      log.close(id);
      await statusIs(log, 'OK');
      expect(events).toEqual(['LOW-SPACE', 'OK']);
      const id2 = await log.open(openMeta());
      log.append(id2, 0, Buffer.alloc(9500, 1));
      await statusIs(log, 'LOW-SPACE');
      await rec.until(id2, 9500);
      log.gc(id2, 9500);
      await statusIs(log, 'OK');
      expect(events).toEqual(['LOW-SPACE', 'OK', 'LOW-SPACE', 'OK']);
    });
  });
}
