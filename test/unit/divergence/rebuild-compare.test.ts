/**
 * Divergence detection through the whole pipeline on the FakeTun (issue 13): a connection
 * with output the client acknowledged (below acked0) and output it did not ([acked0, end0)),
 * the server's crash, and a new incarnation that regenerates the same output, or not.
 */
import { describe, it, expect } from 'vitest';
import {
  Harness, Client, Server, FakeOracle, connect, parseSeg, outBytes, outputFor,
  CLIENT, SERVER, CPORT, SPORT, TCP_RST, TCP_SYN, SVC_NAME, type Seg,
} from '../../support/gateway-harness.js';
import type { NorthOptions } from '../../../src/recovery/options.js';
import { recOf, northOf, xlateOf } from '../../../src/recovery/rebuild.js';
import type { DivergencePolicy } from '../../../src/divergence/policy.js';
import { DropReason } from '../../../src/wrappers/contract.js';
import { seqDiff, type Seq } from '../../../src/wire/seq.js';
import { tcpChecksumOk } from '../../../src/wire/checksum.js';

const C_ISN = 0xfffffc00 as Seq;
const IN0 = 2500;
const ACKED0 = outputFor(IN0); // 3750: the client acknowledged this much before the crash
const IN1 = 400;
const END0 = outputFor(IN0 + IN1); // 4350: forwarded, the client never got [ACKED0, END0)
const BLOCK = 1024; // small blocks: 3 full ones below ACKED0, a partial one at it

const toServer = (l: Seg[]) => l.filter((x) => x.dst === SERVER);
/** An out-stream offset in the new incarnation's numbering (its ISN + 1 is 0). */
const seqOff = (q: Seq, s: Server) => seqDiff(q, s.seq(0));
const toClient = (l: Seg[]) => l.filter((x) => x.dst === CLIENT);

interface World {
  h: Harness;
  o: FakeOracle;
  c: Client;
  s2: Server;
}

/**
 * A connection through the gateway: IN0 bytes in, ACKED0 out and acked, then IN1 more whose
 * output the gateway forwards but the client never receives (lost on its way); the crash; a
 * new incarnation `s2` (`alter` it before rebuild()).
 */
async function crashed(policy: DivergencePolicy, north: Partial<NorthOptions> = {}): Promise<World> {
  const c = new Client({ isn: C_ISN, ts: 1000 });
  const s = new Server({ isn: 0x90000000, ts: 500_000 });
  const o = new FakeOracle();
  const h = new Harness({ oracle: o, north: { divergence: { dflt: policy, byService: new Map() }, digestBlockBytes: BLOCK, ...north } });
  await connect(h, c, s);
  h.tun.inject(...c.write(IN0)).flush();
  await h.run(c, s);
  expect(h.flow().cliAcked).toBe(ACKED0);
  // IN1 more: the server answers, the gateway forwards it, the client never gets it.
  const out = h.send(...c.write(IN1));
  await h.settle();
  h.stabilizeAll();
  const srvOut = toServer([...out, ...h.drain()]).flatMap((x) => s.receive(x));
  h.send(...srvOut);
  h.drain();
  expect(h.flow().sndMax).toBe(END0);
  expect(h.flow().cliAcked).toBe(ACKED0);
  h.now += 10;
  o.emit('crashed');
  toClient(h.drain()).forEach((x) => c.receive(x));
  expect(recOf(h.flow())?.phase).toBe('MASKED');
  return { h, o, c, s2: new Server({ isn: 0x0badf00d, ts: 3 }) };
}

/** The service listens again; the rebuild runs to its end (or its reset). */
async function rebuild(w: World): Promise<Seg[]> {
  const { h, o, c, s2 } = w;
  h.now += 100;
  o.emit('listening');
  const syn = h.drain().find((x) => x.flags === TCP_SYN)!;
  h.tun.inject(...s2.receive(syn)).flush();
  return h.run(c, s2);
}

function div(h: Harness) {
  return h.gw.snapshot().divergence as {
    policies: Record<string, string>; byService: Record<string, number>; total: number; resets: number; continued: number;
    shortOutputs: number; comparedBytes: number; originalBytesSent: number; digestsAbandoned: number; digestBytes: number; keptBytes: number;
    last: Record<string, unknown> | null;
  };
}

describe('divergence: the regenerated output compared with what the client may have', () => {
  it('identical regeneration: 0 divergences, every byte up to end0 compared, the connection LIVE and byte-exact', async () => {
    const w = await crashed('reset');
    expect(northOf(w.h.flow()).cmp?.acked0).toBe(ACKED0);
    expect(northOf(w.h.flow()).cmp?.end0).toBe(END0);
    await rebuild(w);
    const { h, c } = w;
    const d = div(h);
    expect(d.total).toBe(0);
    expect(d.byService).toEqual({ [SVC_NAME]: 0 });
    expect(d.policies).toEqual({ [SVC_NAME]: 'reset' });
    expect(d.comparedBytes).toBe(END0);
    expect(d.originalBytesSent).toBe(0);
    expect(recOf(h.flow())).toBeNull();
    expect(xlateOf(h.flow())).not.toBeNull();
    expect(c.bytes().equals(outBytes(0, END0))).toBe(true);
    expect(c.resets).toBe(0);
    // Compared through end0 and acked by the client: the sweep retires the comparison, frees the kept bytes.
    expect(northOf(h.flow()).cmp).not.toBeNull();
    h.gw.north.sweepDigests();
    expect(northOf(h.flow()).cmp).toBeNull();
    expect(d.digestsAbandoned).toBe(0);
    expect(div(h).keptBytes).toBe(0);
    expect(div(h).digestBytes).toBe(Math.floor(END0 / BLOCK) * 8);
    expect((h.gw.snapshot().flows as Array<{ verified: boolean }>)[0]!.verified).toBe(true);
    expect(h.gw.metrics()).toContain(`ftcp_divergence_total{service="${SVC_NAME}"} 0`);
  });

  it('one changed byte below acked0: detected at its block; reset: one RST to the client, one to the incarnation', async () => {
    const w = await crashed('reset');
    const at = 2100; // block 2 (2048..3071)
    w.s2.alter = (off, b) => {
      if (at >= off && at < off + b.length) b[at - off]! ^= 0x5a;
    };
    const seen = await rebuild(w);
    const { h, c } = w;
    const d = div(h);
    expect(d.total).toBe(1);
    expect(d.resets).toBe(1);
    expect(d.byService[SVC_NAME]).toBe(1);
    expect(d.last).toMatchObject({ block: 2, blockOffset: 2048, byteOffset: null, kind: 'block', acked0: ACKED0, end0: END0, policy: 'reset' });
    expect(h.gw.north.stats.failedDiverged).toBe(1);
    expect(h.gw.north.stats.rebuildFailed).toBe(1);
    expect(c.resets).toBe(1);
    const rsts = toServer(seen).filter((x) => x.flags & TCP_RST);
    expect(rsts).toHaveLength(1);
    expect(rsts[0]!.srcPort).toBe(CPORT);
    // Nothing regenerated reached the client: it has exactly what it had.
    expect(c.bytes().equals(outBytes(0, ACKED0))).toBe(true);
    expect(h.gw.metrics()).toContain(`ftcp_divergence_total{service="${SVC_NAME}"} 1`);
  });

  it('a change in the partial block at an unaligned acked0 is detected there', async () => {
    const w = await crashed('reset');
    const at = ACKED0 - 1; // block 3, the partial one (3072..3750)
    w.s2.alter = (off, b) => {
      if (at >= off && at < off + b.length) b[at - off]! ^= 1;
    };
    await rebuild(w);
    expect(div(w.h).last).toMatchObject({ block: 3, blockOffset: 3072, kind: 'partial' });
    expect(w.c.resets).toBe(1);
  });

  it('reset, a change in [acked0, end0): the differing segment never reaches the client (no splice), reset at its byte', async () => {
    const w = await crashed('reset');
    const at = ACKED0 + 300;
    w.s2.alter = (off, b) => {
      if (at >= off && at < off + b.length) b[at - off]! ^= 0xff;
    };
    await rebuild(w);
    const { h, c } = w;
    expect(div(h).last).toMatchObject({ kind: 'byte', byteOffset: at, block: Math.floor(at / BLOCK) });
    expect(c.resets).toBe(1);
    const got = c.bytes();
    expect(got.equals(outBytes(0, got.length))).toBe(true); // a prefix of the original stream, nothing else
    expect(h.gw.wrapperDrops.get(DropReason.DIVERGED)).toBeGreaterThanOrEqual(1);
  });

  it('continue, changes in [acked0, end0): the client receives the ORIGINAL bytes, counted once, the connection carries on', async () => {
    const w = await crashed('continue');
    const changed = [ACKED0 + 10, ACKED0 + 11, END0 - 1];
    w.s2.alter = (off, b) => {
      for (const at of changed) if (at >= off && at < off + b.length) b[at - off]! ^= 0x33;
    };
    await rebuild(w);
    const { h, c } = w;
    const d = div(h);
    expect(d.total).toBe(1);
    expect(d.continued).toBe(1);
    expect(d.resets).toBe(0);
    expect(d.originalBytesSent).toBe(changed.length);
    expect(d.last).toMatchObject({ kind: 'byte', byteOffset: ACKED0 + 10, policy: 'continue' });
    expect(c.resets).toBe(0);
    expect(recOf(h.flow())).toBeNull();
    expect(c.bytes().equals(outBytes(0, END0))).toBe(true); // the originals, not the regenerated bytes
    // The rewritten segments carry a correct TCP checksum.
    for (const x of h.toClientLog) expect(tcpChecksumOk(x.s.raw, 0)).toBe(true);
    // And on: new output after end0 flows as the new incarnation makes it.
    h.tun.inject(...c.write(200)).flush();
    await h.run(c, w.s2);
    expect(c.bytes().equals(outBytes(0, outputFor(IN0 + IN1 + 200)))).toBe(true);
    expect(c.violations).toEqual([]);
  });

  it('continue compares on past the first difference: a Date-like change in block 0 and one in block 2 are both counted, the rest verified', async () => {
    const w = await crashed('continue');
    const changed = [40, 41, 2100]; // block 0 (twice: one block) and block 2, both below acked0
    w.s2.alter = (off, b) => {
      for (const at of changed) if (at >= off && at < off + b.length) b[at - off]! ^= 0x21;
    };
    await rebuild(w);
    const { h, c } = w;
    const d = div(h) as ReturnType<typeof div> & { differingBlocks: number };
    expect(d.total).toBe(1); // one divergence per rebuild
    expect(d.continued).toBe(1);
    expect(d.last).toMatchObject({ kind: 'block', block: 0 });
    expect(d.differingBlocks).toBe(2);
    expect(d.comparedBytes).toBe(END0); // every byte through end0, not just the first block
    expect(c.resets).toBe(0);
    expect(c.bytes().equals(outBytes(0, END0))).toBe(true);
  });

  it('off: no digest, nothing compared, the regenerated bytes pass as they are', async () => {
    const w = await crashed('off');
    expect(northOf(w.h.flow()).digest).toBeNull();
    const at = ACKED0 + 5;
    w.s2.alter = (off, b) => {
      if (at >= off && at < off + b.length) b[at - off]! ^= 0x80;
    };
    await rebuild(w);
    const { h, c } = w;
    const d = div(h);
    expect(d.policies).toEqual({ [SVC_NAME]: 'off' });
    expect([d.total, d.comparedBytes, d.digestBytes, d.keptBytes]).toEqual([0, 0, 0, 0]);
    expect(c.resets).toBe(0);
    // Today's behaviour, the splice the issue is about: the client got the regenerated byte.
    expect(c.bytes()[at]).toBe(outBytes(at, at + 1)[0]! ^ 0x80);
    expect((h.gw.snapshot().flows as Array<{ verified: boolean }>)[0]!.verified).toBe(false);
  });

  it('short output: a new incarnation stopping below end0 is detected at the deadline (fake clock), reset', async () => {
    const w = await crashed('reset', { divergenceDeadlineMs: 5000 });
    w.s2.outputCap = ACKED0 + 200; // less than the dead one sent
    await rebuild(w);
    const { h, c } = w;
    expect(recOf(h.flow())).toBeNull(); // caught up through acked0: LIVE, the comparison goes on
    expect(c.bytes().equals(outBytes(0, ACKED0 + 200))).toBe(true);
    h.tick(4000);
    expect(div(h).total).toBe(0);
    h.tick(1500);
    const d = div(h);
    expect([d.total, d.shortOutputs, d.resets]).toEqual([1, 1, 1]);
    expect(c.resets).toBe(0);
    toClient(h.drain()).forEach((x) => c.receive(x));
    expect(h.toClientLog.some((x) => x.s.flags & TCP_RST)).toBe(true);
    expect(h.flow().state).toBe('CLOSED');
  });

  it('short output under continue: counted and logged once, the connection left alone', async () => {
    const w = await crashed('continue', { divergenceDeadlineMs: 5000 });
    w.s2.outputCap = ACKED0 + 200;
    await rebuild(w);
    const { h } = w;
    h.tick(6000);
    h.tick(6000);
    const d = div(h);
    expect([d.total, d.shortOutputs, d.continued, d.resets]).toEqual([1, 1, 1, 0]);
    expect(h.flow().state).not.toBe('CLOSED');
  });

  it('a per-service policy overrides the default', async () => {
    const w = await crashed('reset', { divergence: { dflt: 'reset', byService: new Map([[SVC_NAME, 'continue']]) } });
    const at = 100;
    w.s2.alter = (off, b) => {
      if (at >= off && at < off + b.length) b[at - off]! ^= 1;
    };
    await rebuild(w);
    expect(div(w.h)).toMatchObject({ total: 1, continued: 1, resets: 0, policies: { [SVC_NAME]: 'continue' } });
    expect(w.c.resets).toBe(0);
  });

  it('regenerated output out of order below acked0: held and compared once the gap fills; no ack toward the incarnation passes the gap', async () => {
    const w = await crashed('reset');
    const { h, o, c, s2 } = w;
    h.now += 100;
    o.emit('listening');
    const syn = h.drain().find((x) => x.flags === TCP_SYN)!;
    h.tun.inject(...s2.receive(syn)).flush();
    await h.settle();
    // The replay goes to s2; its acks come back at once, its output is kept back.
    const output: Buffer[] = [];
    const clientAcks: Buffer[] = [];
    const toTheClient = (l: Seg[]) => {
      for (const x of toClient(l)) {
        const r = c.receive(x);
        if (r) clientAcks.push(r);
      }
      return l;
    };
    for (let i = 0; i < 50; i++) {
      const srv = toServer(toTheClient(h.drain()));
      if (srv.length === 0) break;
      for (const x of srv) {
        for (const r of s2.receive(x)) {
          if ((parseSeg(r).payload?.length ?? 0) > 0) output.push(r);
          else h.tun.inject(r).flush();
        }
      }
      await h.settle();
    }
    expect(s2.sndNxt).toBeGreaterThanOrEqual(END0);
    const segs = output.map(parseSeg).filter((x) => seqOff(x.seq, s2) < ACKED0);
    expect(segs.length).toBeGreaterThan(2);
    // Everything below acked0 but the first segment, last first.
    let maxAck = 0;
    for (const x of segs.slice(1).reverse()) {
      h.tun.inject(x.raw).flush();
      await h.settle();
      for (const a of toServer(toTheClient(h.drain()))) maxAck = Math.max(maxAck, seqOff(a.ack, s2));
    }
    expect(maxAck).toBe(0); // held at the gap [0, first segment's end)
    expect(northOf(h.flow()).cmp!.end).toBe(0);
    h.tun.inject(segs[0]!.raw).flush();
    await h.settle();
    for (const a of toServer(toTheClient(h.drain()))) maxAck = Math.max(maxAck, seqOff(a.ack, s2));
    expect(maxAck).toBe(ACKED0); // the gap filled: acked through what the client has
    expect(northOf(h.flow()).cmp!.end).toBeGreaterThanOrEqual(ACKED0);
    // The rest as it comes: LIVE, byte-exact, no divergence.
    h.tun.inject(...output.filter((r) => seqOff(parseSeg(r).seq, s2) >= ACKED0), ...clientAcks).flush();
    await h.run(c, s2);
    expect(div(h).total).toBe(0);
    expect(recOf(h.flow())).toBeNull();
    expect(c.bytes().equals(outBytes(0, END0))).toBe(true);
  });

  it('limits list the digest bounds and the deadline (status and ftcp_limit)', () => {
    const h = new Harness({ north: { divergenceDeadlineMs: 7000 } });
    const l = h.gw.limits();
    expect(l).toMatchObject({ digestBlockBytes: 16384, divergenceDeadlineMs: 7000 });
    expect(l.digestKeptCapBytes).toBeGreaterThan(0);
    expect(l.digestBudgetBytes).toBeGreaterThan(0);
    expect(h.gw.metrics()).toContain('ftcp_limit{name="digestBudgetBytes"}');
    void parseSeg;
    void SPORT;
  });
});
