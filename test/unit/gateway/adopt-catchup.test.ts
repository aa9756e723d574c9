/**
 * An adopted connection catching up (src/wrappers/south-catchup.ts). The dead gateway
 * forwarded 700 bytes that the server took but the log never made stable; after the restart
 * the client resends them and the server answers as Linux does to old data: a duplicate ack
 * echoing the TSval of the client's last segment before the kill, with a D-SACK block for
 * what was resent. Neither may reach the client (its Eifel and D-SACK undo would revert its
 * loss recovery, and the stale echo inflate its RTT: the crawl of BENCHMARKS.md "Gateway
 * restart"), while every ack stays within the stable point. The client's timestamps and
 * sequence numbers wrap during the test.
 */
import { describe, it, expect } from 'vitest';
import { Harness, Client, Server, exchanged, opts, CLIENT, SERVER, CPORT, SPORT, TCP_ACK, type Seg } from '../../support/gateway-harness.js';
import { emitTcpPacket } from '../../../src/wire/repr.js';
import { tcpChecksumOk } from '../../../src/wire/checksum.js';
import { seqDiff, seqGe, type Seq } from '../../../src/wire/seq.js';

const IN0 = 2300;
const LOST = 700;

/** The server's duplicate ack of old data (Linux tcp_send_dupack): its rcv_nxt, TS.Recent `ecr`, SACK blocks (in-stream offsets; a D-SACK first). */
function dupAck(s: Server, c: Client, ecr: number, blocks: Array<[number, number]>): Buffer {
  return emitTcpPacket({
    src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: CPORT, seq: s.seq(s.sndNxt), ack: c.seq(s.rcvNxt), flags: TCP_ACK, window: 400,
    options: encodeOpts(++s.tsVal, ecr, blocks.map(([a, b]) => [c.seq(a), c.seq(b)])),
  });
}

function encodeOpts(tsVal: number, tsEcr: number, sack: Array<[number, number]>): Buffer {
  // NOP NOP TS, NOP NOP SACK: Linux's layout.
  const b = Buffer.alloc(12 + 4 + 8 * sack.length);
  b.set([1, 1, 8, 10], 0);
  b.writeUInt32BE(tsVal >>> 0, 4);
  b.writeUInt32BE(tsEcr >>> 0, 8);
  b.set([1, 1, 5, 2 + 8 * sack.length], 12);
  sack.forEach(([l, r], i) => {
    b.writeUInt32BE(l >>> 0, 16 + 8 * i);
    b.writeUInt32BE(r >>> 0, 20 + 8 * i);
  });
  return b;
}

/** What the gateway sent the client: each segment's ack (in-stream offset), TSecr and SACK blocks (offsets). */
function seen(c: Client, l: Seg[]): Array<{ ack: number; ecr: number; sack: Array<[number, number]>; csumOk: boolean }> {
  return l.filter((x) => x.dst === CLIENT).map((x) => {
    const o = opts(x);
    return {
      ack: seqDiff(x.ack, c.seq(0)), ecr: o.timestamps?.tsEcr ?? -1,
      sack: (o.sack ?? []).map(([a, b]) => [seqDiff(a as Seq, c.seq(0)), seqDiff(b as Seq, c.seq(0))] as [number, number]),
      csumOk: tcpChecksumOk(x.raw, 0),
    };
  });
}

/** Gateway h takes server segment `pkt`; the log makes what it holds stable; what went to the client. */
async function throughStable(h: Harness, c: Client, pkt: Buffer): Promise<ReturnType<typeof seen>> {
  const out = h.send(pkt);
  await h.settle();
  h.stabilizeAll();
  await h.settle();
  out.push(...h.drain());
  const got = seen(c, out);
  expect(got.length).toBeGreaterThan(0);
  return got;
}

/** Gateway 1 forwarded LOST bytes the server took and died before they were stable; gateway 2 adopts. */
async function killedWithBytesAtServer(): Promise<{ h: Harness; c: Client; s: Server; staleEcr: number }> {
  const c = new Client({ isn: 0xfffff800 as Seq, ts: 0xfffffff0 });
  const s = new Server({ isn: 0x80000001 as Seq, ts: 500_000 });
  const h1 = await exchanged(c, s, IN0);
  h1.autoStable = false;
  h1.tun.inject(...c.write(LOST)).flush();
  await h1.run(c, s);
  expect([s.rcvNxt, c.maxAck]).toEqual([IN0 + LOST, IN0]); // acked ⇒ stable: the client was told no more
  const staleEcr = c.tsVal >>> 0; // the server's TS.Recent: the client's last segment before the kill
  const h = new Harness({ log: h1.log });
  h.now = h1.now + 500;
  await h.gw.adopt();
  return { h, c, s, staleEcr };
}

/** The client's retransmission of everything not acked to it; returns the TSval of its first segment. */
function resend(h: Harness, c: Client): number {
  const end = c.sent;
  c.sent = c.maxAck;
  const first = (c.tsVal + 1) >>> 0;
  h.send(...c.write(end - c.maxAck)); // to the server, which has these bytes already
  return first;
}

describe('an adopted connection catching up: no stale echo or D-SACK of the server reaches the client', () => {
  it("the server's duplicate ack of resent bytes reaches the client with a current echo and no D-SACK, acked no further than stable", async () => {
    const { h, c, s, staleEcr } = await killedWithBytesAtServer();
    const floor = resend(h, c);
    // The setup, not the gateway: the stale echo is below the floor, so the checks below can tell them apart.
    expect(seqGe(floor as Seq, (staleEcr + 1) as Seq)).toBe(true);
    const got = await throughStable(h, c, dupAck(s, c, staleEcr, [[IN0 + LOST - 100, IN0 + LOST]]));
    expect(got.at(-1)!.ack).toBe(IN0 + LOST); // the held ack, released once the resent bytes are stable
    for (const g of got) {
      expect(g.csumOk).toBe(true);
      expect(seqGe(g.ecr as Seq, floor as Seq)).toBe(true); // not the echo from before the kill
      expect(g.sack.filter(([, r]) => r <= IN0 + LOST)).toEqual([]); // no D-SACK
    }
    for (const { s: x, stable } of h.toClientLog) expect(seqDiff(x.ack, c.seq(0))).toBeLessThanOrEqual(stable);
    expect(h.gw.south.stats).toMatchObject({ adoptStaleEchoes: 1, adoptDsacksRemoved: 1, adoptUnchecked: 0 });
  });

  it('a D-SACK for resent bytes the log made stable before the server answered is removed too (the stable-ACK rule alone keeps it)', async () => {
    const { h, c, s, staleEcr } = await killedWithBytesAtServer();
    resend(h, c);
    await h.settle();
    h.stabilizeAll(); // a log faster than the server's round trip: stable reaches the server's ack first
    await h.settle();
    h.drain();
    expect(h.flow().stable).toBe(IN0 + LOST);
    // The server's ack is not lowered now, so no block lies between it and stable (south-stable.ts
    // sackAbove); the D-SACK below it is the catch-up's to remove (rule 2).
    const got = seen(c, h.send(dupAck(s, c, staleEcr, [[IN0 + LOST - 100, IN0 + LOST]])));
    expect(got).toEqual([expect.objectContaining({ ack: IN0 + LOST, sack: [], csumOk: true })]);
    expect(h.gw.south.stats).toMatchObject({ adoptDsacksRemoved: 1, sacksAboveStableRemoved: 0 });
  });

  it('a SACK block above the ack is kept beside a removed D-SACK', async () => {
    const { h, c, s, staleEcr } = await killedWithBytesAtServer();
    resend(h, c);
    // A second block, above the server's ack: out-of-order bytes it holds (RFC 2883 puts the D-SACK first).
    const got = await throughStable(h, c, dupAck(s, c, staleEcr, [[IN0, IN0 + 100], [IN0 + LOST + 200, IN0 + LOST + 300]]));
    for (const g of got) {
      expect(g.csumOk).toBe(true);
      expect(g.sack).toEqual([[IN0 + LOST + 200, IN0 + LOST + 300]]);
    }
  });

  it('once the server echoes a current TSval and the client is acked past what the server had, its segments pass as they are', async () => {
    const { h, c, s, staleEcr } = await killedWithBytesAtServer();
    resend(h, c);
    h.send(dupAck(s, c, staleEcr, [[IN0 + LOST - 100, IN0 + LOST]]));
    await h.run(c, s); // stable, acked to the client, new bytes both ways: the server's echoes are current now
    expect(c.maxAck).toBe(IN0 + LOST);
    h.tun.inject(...c.write(300)).flush();
    await h.run(c, s);
    const f = h.flow();
    expect(f.catchUpTsOn).toBe(false);
    // A D-SACK the network made (a duplicated segment) now reaches the client, as without a restart.
    const current = c.tsVal >>> 0;
    const out = h.send(dupAck(s, c, current, [[IN0 + LOST, IN0 + LOST + 300]]));
    const got = seen(c, out);
    expect(got).toHaveLength(1);
    expect(got[0]!.ecr).toBe(current);
    expect(got[0]!.sack).toEqual([[IN0 + LOST, IN0 + LOST + 300]]);
    expect(h.gw.south.stats.adoptStaleEchoes).toBe(1);
  });
});
