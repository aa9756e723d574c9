/**
 * The durable connection state (src/recovery/durable.ts) through the whole pipeline on a
 * FakeTun: each phase of a rebuild is written to the log with a rising update, the record
 * holds every incarnation's translation, and the ordering rule — no client sees a translated
 * byte whose translation is not stable — with a log whose setState the test holds
 * (ManualLog.holdStates): the first translated segment toward the client is dropped
 * (TRANSLATION_UNSTABLE) while the write is pending, the replay toward the server goes on,
 * and the same segment retransmitted after the write is stable reaches the client.
 */
import { describe, it, expect } from 'vitest';
import {
  Harness, Client, Server, FakeOracle, exchanged, hasFlag, parseSeg, inBytes, outBytes, outputFor,
  CLIENT, SERVER, CPORT, SPORT, TCP_FIN, TCP_SYN, type Seg,
} from '../../support/gateway-harness.js';
import { seqAdd, seqDiff, type Seq } from '../../../src/wire/seq.js';
import { DropReason } from '../../../src/wrappers/contract.js';
import { recOf } from '../../../src/recovery/rebuild.js';
import { FtcpError } from '../../../src/util/errors.js';
import { u32ToIp } from '../../../src/wire/addr.js';
import { DurableState } from '../../../src/recovery/durable.js';
import { MAX_INCARNATIONS } from '../../../src/log/state.js';

const C_ISN = 0xfffffc00 as Seq;
const S_ISN = 0x90000000 as Seq;
const S2_ISN = 0x0badf00d as Seq;
const S3_ISN = 0x44444444 as Seq;
const IN0 = 2500;
const OUT0 = outputFor(IN0);

const toServer = (l: Seg[]) => l.filter((x) => x.dst === SERVER);
const toClient = (l: Seg[]) => l.filter((x) => x.dst === CLIENT);
const dataLen = (x: Seg) => x.payload?.length ?? 0;
const replayed = (l: Seg[]) => toServer(l).filter((x) => dataLen(x) > 0 || hasFlag(x, TCP_FIN));

/** A connection with IN0/OUT0 exchanged, then its server's crash. */
async function crashed(): Promise<{ h: Harness; o: FakeOracle; c: Client }> {
  const c = new Client({ isn: C_ISN, ts: 1000 });
  const s = new Server({ isn: S_ISN, ts: 500_000 });
  const o = new FakeOracle();
  const h = await exchanged(c, s, IN0, o);
  expect(c.bytes().equals(outBytes(0, OUT0))).toBe(true);
  h.now += 10;
  o.emit('crashed');
  toClient(h.drain()).forEach((x) => c.receive(x));
  return { h, o, c };
}

/** The service listens again; the new incarnation answers the SYN. Returns what the gateway wrote. */
async function rebuildInto(h: Harness, o: FakeOracle, s2: Server): Promise<Seg[]> {
  h.now += 100;
  o.emit('listening');
  const syn = h.drain().find((x) => x.flags === TCP_SYN)!;
  const out = h.send(...s2.receive(syn));
  await h.settle(); // the log read
  return [...out, ...h.drain()];
}

/** The service listens again; the harness routes everything until the rebuild is over. */
async function rebuildThrough(h: Harness, o: FakeOracle, c: Client, s2: Server): Promise<void> {
  h.now += 100;
  o.emit('listening');
  const syn = h.drain().find((x) => x.flags === TCP_SYN)!;
  h.tun.inject(...s2.receive(syn)).flush();
  await h.run(c, s2);
}

describe('the durable record of a rebuild', () => {
  it('writes every phase with a rising update, and the incarnations with their translations, across two crashes', async () => {
    const { h, o, c } = await crashed();
    const id = h.flow().logId;
    const s2 = new Server({ isn: S2_ISN, ts: 3, wscale: 9 });
    await rebuildThrough(h, o, c, s2);
    expect(recOf(h.flow())).toBeNull();
    const first = h.log.states.map((x) => x.state);
    expect(h.log.states.every((x) => x.id === id)).toBe(true);
    expect(first.map((x) => x.phase)).toEqual(['MASKED', 'HANDSHAKE', 'REPLAY', 'ABSORB', 'LIVE']);
    expect(first.map((x) => x.update)).toEqual([1, 2, 3, 4, 5]);
    expect(first.every((x) => x.crashes === 1)).toBe(true);
    expect(first[0]!.incarnations).toEqual([]);
    expect(first[1]!.incarnations).toEqual([]);
    const inc2 = {
      serverIsn: S2_ISN, seqDelta: seqAdd(S_ISN, -S2_ISN) >>> 0, tsDelta: first[2]!.incarnations[0]!.tsDelta,
      server: { addr: u32ToIp(SERVER), port: SPORT }, serverSidePort: CPORT, oldShift: 7, newShift: 9,
    };
    for (const x of first.slice(2)) expect(x.incarnations).toEqual([inc2]);
    expect(inc2.tsDelta).not.toBe(0); // the new incarnation's clock is far below the old one's
    expect(h.gw.north.stats.stateWrites).toBe(5);

    // A second crash: the record keeps the first incarnation and adds the next one.
    h.now += 50;
    o.emit('crashed');
    toClient(h.drain()).forEach((x) => c.receive(x));
    const s3 = new Server({ isn: S3_ISN, ts: 11 });
    await rebuildThrough(h, o, c, s3);
    const second = h.log.states.slice(5).map((x) => x.state);
    expect(second.map((x) => x.phase)).toEqual(['MASKED', 'HANDSHAKE', 'REPLAY', 'ABSORB', 'LIVE']);
    expect(second.map((x) => x.update)).toEqual([6, 7, 8, 9, 10]);
    expect(second.every((x) => x.crashes === 2)).toBe(true);
    expect(second[0]!.incarnations).toEqual([inc2]);
    const last = second[4]!.incarnations;
    expect(last).toHaveLength(2);
    expect(last[1]!).toMatchObject({ serverIsn: S3_ISN, seqDelta: seqAdd(S_ISN, -S3_ISN) >>> 0, serverSidePort: CPORT });
    h.tun.inject(...c.write(300)).flush();
    await h.run(c, s3);
    expect(s3.bytes().equals(inBytes(0, IN0 + 300))).toBe(true);
    expect(c.bytes().equals(outBytes(0, outputFor(IN0 + 300)))).toBe(true);
    expect(c.violations).toEqual([]);
    expect(h.gw.wrapperDrops.get(DropReason.TRANSLATION_UNSTABLE)).toBe(0); // a log that is stable at once delays nothing
  });
});

describe('the ordering rule: no translated byte before its translation is stable', () => {
  /**
   * Crash, 400 more client bytes while masked, the log holding its state writes, the
   * rebuild into s2; s2 takes the replay. Returns its regenerated output, and the part of it
   * the client lacks (beyond OUT0: the first translated bytes toward it).
   */
  async function heldRebuild() {
    const { h, o, c } = await crashed();
    h.log.holdStates = true;
    const s2 = new Server({ isn: S2_ISN, ts: 3 });
    h.tun.inject(...c.write(400)).flush();
    await h.run(c, null);
    const segs = replayed(await rebuildInto(h, o, s2));
    const regenerated = segs.flatMap((x) => s2.receive(x)).map(parseSeg);
    const fresh = regenerated.filter((r) => dataLen(r) > 0 && seqDiff(r.seq, s2.seq(0)) + dataLen(r) > OUT0);
    expect(fresh.length).toBeGreaterThan(0);
    return { h, c, s2, segs, regenerated, fresh };
  }

  it('drops the first translated segment toward the client while the write is pending, lets the replay go on, forwards its retransmission once stable', async () => {
    const { h, c, s2, segs, regenerated, fresh } = await heldRebuild();
    // The REPLAY record (with the translation) is written and pending; the replay went out all the same.
    const pending = h.log.states[h.log.states.length - 1]!.state;
    expect(pending.phase).toBe('REPLAY');
    expect(pending.incarnations).toHaveLength(1);
    expect(Buffer.concat(segs.map((x) => x.payload ?? Buffer.alloc(0))).equals(inBytes(0, IN0 + 400))).toBe(true);

    // The new incarnation's output: what the client had is absorbed (never reaches it), the
    // first segment beyond is the first translated byte toward the client.
    for (const r of regenerated) {
      if (r === fresh[0]) break;
      expect(toClient(h.send(r.raw)).filter((x) => dataLen(x) > 0)).toHaveLength(0);
    }
    const first = fresh[0]!;
    const off = seqDiff(first.seq, s2.seq(0));
    expect(toClient(h.send(first.raw))).toHaveLength(0);
    expect(h.gw.wrapperDrops.get(DropReason.TRANSLATION_UNSTABLE)).toBe(1);
    await h.settle();
    expect(toClient(h.drain())).toHaveLength(0); // dropped, not held: nothing comes later on its own

    // Stable now: the incarnation's retransmission reaches the client, in the client's numbering.
    expect(h.log.releaseStates()).toBeGreaterThan(0);
    await h.settle();
    const d = toClient(h.send(first.raw)).filter((x) => dataLen(x) > 0);
    expect(d).toHaveLength(1);
    expect(d[0]!.seq).toBe(c.outSeq(off));
    expect(Buffer.from(d[0]!.payload!).equals(outBytes(off, off + dataLen(first)))).toBe(true);
    expect(h.gw.wrapperDrops.get(DropReason.TRANSLATION_UNSTABLE)).toBe(1);
  });

  it('a write the log refuses is counted, and translated segments stay from the client (the stall policy)', async () => {
    const { h, fresh } = await heldRebuild();
    expect(h.log.failHeldStates(new FtcpError('FTCP_LOG_FAILED', 'test: the store failed'))).toBeGreaterThan(0);
    await h.settle();
    expect(h.gw.north.stats.stateWriteFailures).toBeGreaterThan(0);
    for (const r of fresh) expect(toClient(h.send(r.raw)).filter((x) => dataLen(x) > 0)).toHaveLength(0);
    expect(h.gw.wrapperDrops.get(DropReason.TRANSLATION_UNSTABLE)).toBe(fresh.length);
  });
});

describe('the record is bounded', () => {
  it(`keeps the last ${MAX_INCARNATIONS} incarnations (the crash count says how many there were), shown in the limits`, () => {
    const d = new DurableState();
    const inc = (k: number) => ({ serverIsn: k, seqDelta: k, tsDelta: 0, server: { addr: '10.0.0.1', port: 80 }, serverSidePort: 1000 + k, oldShift: 0, newShift: 0 });
    for (let k = 1; k <= MAX_INCARNATIONS + 3; k++) {
      d.addIncarnation(inc(k));
      const rec = d.next('REPLAY', k);
      expect(d.translationStable).toBe(false); // the record holding it is not stable yet
      d.stabilized(rec.update);
      expect(d.translationStable).toBe(true);
    }
    const last = d.next('LIVE', MAX_INCARNATIONS + 3);
    expect(last.incarnations.map((x) => x.serverIsn)).toEqual(Array.from({ length: MAX_INCARNATIONS }, (_, i) => i + 4));
    expect(new Harness().gw.metrics()).toContain(`ftcp_limit{name="stateIncarnations"} ${MAX_INCARNATIONS}`);
  });
});
