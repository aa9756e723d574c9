/**
 * The liveness-verdict hold (src/recovery/verdict.ts, DESIGN.md §3.3 and §4), through the
 * whole pipeline: a FakeTun, a ManualLog and a scripted oracle. A server FIN or RST is held
 * until the verdict; 'alive' releases it byte-identical, 'dead' masks the service's flows.
 */
import { describe, it, expect } from 'vitest';
import {
  Harness, Client, Server, FakeOracle, connect, hasFlag, outBytes, outputFor,
  CLIENT, SERVER, SPORT, SVC_NAME, TCP_ACK, TCP_FIN, TCP_RST,
} from '../../support/gateway-harness.js';
import { emitTcpPacket } from '../../../src/wire/repr.js';
import type { CrashPolicy } from '../../../src/recovery/verdict.js';
import { northOf, recOf } from '../../../src/recovery/rebuild.js';

interface World {
  h: Harness;
  c: Client;
  s: Server;
}

/** An established connection with 500 bytes each way (and their stable acks) behind it. */
async function world(oracle: FakeOracle | null, crashPolicy: CrashPolicy = 'none', holdMs = 300): Promise<World> {
  const h = new Harness({ oracle, crashPolicy, holdMs });
  const c = new Client({ isn: 0x10000000, ts: 1000 });
  const s = new Server({ isn: 0xfffff000, ts: 70000 });
  await connect(h, c, s);
  h.tun.inject(...c.write(500)).flush();
  await h.run(c, s);
  expect(c.bytes().equals(outBytes(0, outputFor(500)))).toBe(true);
  return { h, c, s };
}

/** The server's RST, in its window, as its TCP would send it. */
function serverRst(s: Server): Buffer {
  return emitTcpPacket({ src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: s.peerPort, seq: s.seq(s.sndNxt), ack: s.inSeq(s.rcvNxt), flags: TCP_RST | TCP_ACK, window: 0 });
}

describe('verdict hold with an oracle', () => {
  it("holds a server FIN until the verdict; 'alive' releases it byte-identical and the connection closes normally", async () => {
    const o = new FakeOracle();
    const { h, c, s } = await world(o, 'none', 250);
    const fin = s.fin();
    expect(h.send(fin)).toHaveLength(0);
    expect(h.gw.masking.stats.held).toBe(1);
    expect(o.asked).toHaveLength(1);
    expect(o.asked[0]!.service).toBe(SVC_NAME);
    expect(o.asked[0]!.timeoutMs).toBe(250);
    // A retransmission of the FIN while the verdict is pending is not written either (a duplicate).
    expect(h.send(fin)).toHaveLength(0);
    expect(h.gw.masking.stats.heldDuplicates).toBe(1);
    await h.settle();
    expect(h.drain()).toHaveLength(0); // still no verdict: still held

    o.answer('alive');
    await h.settle();
    const out = h.drain();
    expect(out).toHaveLength(1); // released once, byte-identical
    expect(out[0]!.raw.equals(fin)).toBe(true);
    expect(h.gw.masking.stats.releasedAlive).toBe(1);
    expect(recOf(h.flow())).toBeNull();
    expect(h.flow().state).toBe('CLOSING');

    // The client acks the FIN and closes its side; the server acks that: CLOSED.
    for (const x of out) {
      const a = c.receive(x);
      if (a) h.tun.inject(a);
    }
    h.tun.inject(...c.write(0, true)).flush();
    await h.run(c, s);
    expect(s.finRcvd).toBe(true);
    expect(c.serverFin).toBe(true);
    expect(h.flow().state).toBe('CLOSED');
    expect(h.gw.north.stats.crashes).toBe(0);
    expect(c.resets).toBe(0);
  });

  it('a service no supervisor ever spoke for (UNKNOWN) is not held: its FIN passes at once', async () => {
    const o = new FakeOracle();
    const { h, s } = await world(o);
    o.st = 'UNKNOWN';
    const fin = s.fin();
    const out = h.send(fin);
    expect(out).toHaveLength(1);
    expect(out[0]!.raw.equals(fin)).toBe(true);
    expect(o.asked).toHaveLength(0);
    expect(h.gw.masking.stats.held).toBe(0);
  });

  it("'dead': the FIN never reaches the client and every connection of the service is masked", async () => {
    const o = new FakeOracle();
    const { h, c, s } = await world(o);
    // A second connection of the same service.
    const c2 = new Client({ isn: 0x20000000, ts: 3000, port: 40002 });
    const s2 = new Server({ isn: 0x30000000, ts: 9000 });
    h.tun.inject(c2.syn()).flush();
    await h.run([c, c2], [s, s2]);
    expect(h.flowOf(40002).state).toBe('ESTABLISHED');

    const fin = s.fin();
    expect(h.send(fin)).toHaveLength(0);
    o.answer('dead');
    await h.settle();
    const out = h.drain();
    expect(out.filter((x) => hasFlag(x, TCP_FIN))).toHaveLength(0);
    expect(h.gw.masking.stats.suppressed).toBe(1);
    expect(h.gw.masking.stats.releasedAlive).toBe(0);
    expect(h.gw.north.stats.crashes).toBe(1);
    expect(h.gw.north.stats.flowsMasked).toBe(2);
    expect(recOf(h.flowOf(c.port))?.phase).toBe('MASKED');
    expect(recOf(h.flowOf(40002))?.phase).toBe('MASKED');
    expect(h.gw.north.isDown(h.svc)).toBe(true);
    expect(h.gw.north.timelines).toHaveLength(1);
    expect(h.gw.north.timelines[0]!.connections).toBe(2);
    // Only keepalive ACKs went to the clients (one per connection at the crash).
    expect(out.every((x) => x.dst === CLIENT && x.flags === TCP_ACK)).toBe(true);
    expect(new Set(out.map((x) => x.dstPort))).toEqual(new Set([c.port, 40002]));
    // The FIN sent again by the dead incarnation is dropped too, and never asks again.
    expect(h.send(fin)).toHaveLength(0);
    expect(o.asked).toHaveLength(0);
    expect(h.gw.north.stats.deadDropped).toBe(1);
  });

  it("'unknown' with --assume-crash-on rst: a RST is suppressed (crash), a FIN is released", async () => {
    {
      const o = new FakeOracle();
      const { h, s } = await world(o, 'rst');
      const rst = serverRst(s);
      expect(h.send(rst)).toHaveLength(0);
      o.answer('unknown');
      await h.settle();
      const out = h.drain();
      expect(out.filter((x) => hasFlag(x, TCP_RST))).toHaveLength(0);
      expect(recOf(h.flow())?.phase).toBe('MASKED');
      expect(h.flow().state).toBe('ESTABLISHED');
      expect(h.gw.masking.stats.suppressed).toBe(1);
    }
    {
      const o = new FakeOracle();
      const { h, s } = await world(o, 'rst');
      const fin = s.fin();
      expect(h.send(fin)).toHaveLength(0);
      o.answer('unknown');
      await h.settle();
      const out = h.drain();
      expect(out).toHaveLength(1);
      expect(out[0]!.raw.equals(fin)).toBe(true);
      expect(recOf(h.flow())).toBeNull();
      expect(h.gw.north.stats.crashes).toBe(0);
    }
  });

  it("'unknown' without the rst policy: a RST is the server's own abort and passes", async () => {
    const o = new FakeOracle();
    const { h, s } = await world(o, 'none');
    const rst = serverRst(s);
    expect(h.send(rst)).toHaveLength(0);
    o.answer('unknown');
    await h.settle();
    const out = h.drain();
    expect(out).toHaveLength(1);
    expect(out[0]!.raw.equals(rst)).toBe(true);
    expect(h.flow().state).toBe('CLOSED');
  });

  it("a server RST passes when the verdict is 'alive' (the process aborted the connection itself)", async () => {
    const o = new FakeOracle();
    const { h, s } = await world(o, 'rst');
    const rst = serverRst(s);
    expect(h.send(rst)).toHaveLength(0);
    expect(h.flow().state).toBe('ESTABLISHED');
    o.answer('alive');
    await h.settle();
    const out = h.drain();
    expect(out).toHaveLength(1);
    expect(out[0]!.raw.equals(rst)).toBe(true);
    expect(h.flow().state).toBe('CLOSED');
    expect(recOf(h.flow())).toBeNull();
    expect(h.gw.south.stats.flowsReset).toBe(1);
    expect(h.gw.north.stats.crashes).toBe(0);
  });

  it("a crash reported while a FIN is held takes the FIN: a later 'alive' releases nothing", async () => {
    const o = new FakeOracle();
    const { h, s } = await world(o);
    expect(h.send(s.fin())).toHaveLength(0);
    o.emit('crashed');
    expect(recOf(h.flow())?.phase).toBe('MASKED');
    expect(northOf(h.flow()).verdictHold).toBeNull();
    h.drain();
    o.answer('alive');
    await h.settle();
    expect(h.drain().filter((x) => hasFlag(x, TCP_FIN))).toHaveLength(0);
    expect(h.gw.masking.stats.releasedAlive).toBe(0);
  });
});

describe('without an oracle', () => {
  it("policy 'none': nothing is held, FIN and RST pass at once and unchanged", async () => {
    const { h, s } = await world(null, 'none');
    expect(h.gw.masking.enabled).toBe(false);
    const fin = s.fin();
    const out = h.send(fin);
    expect(out).toHaveLength(1);
    expect(out[0]!.raw.equals(fin)).toBe(true);
    const rst = serverRst(s);
    const out2 = h.send(rst);
    expect(out2).toHaveLength(1);
    expect(out2[0]!.raw.equals(rst)).toBe(true);
    expect(h.flow().state).toBe('CLOSED');
    expect(h.gw.masking.stats.held).toBe(0);
    expect(h.gw.north.stats.crashes).toBe(0);
  });

  it("policy 'rst': a server RST masks the service (and the rebuild probes at once); a FIN passes", async () => {
    const { h, c, s } = await world(null, 'rst');
    const fin = s.fin();
    const out0 = h.send(fin);
    expect(out0).toHaveLength(1);
    expect(out0[0]!.raw.equals(fin)).toBe(true);
    c.receive(out0[0]!);

    const out = h.send(serverRst(s));
    expect(out.filter((x) => x.dst === CLIENT && hasFlag(x, TCP_RST))).toHaveLength(0);
    expect(h.gw.masking.stats.policyCrashes).toBe(1);
    expect(h.gw.north.stats.crashes).toBe(1);
    expect(h.flow().state).not.toBe('CLOSED');
    expect(recOf(h.flow())).not.toBeNull();
    // No 'listening' will come: the rebuild starts by itself (a spoofed SYN toward the server).
    expect(recOf(h.flow())!.phase).toBe('HANDSHAKE');
    const syn = out.find((x) => x.dst === SERVER && x.flags === 0x02);
    expect(syn?.seq).toBe(c.isn);
    expect(h.gw.north.timelines[0]!.reason).toMatch(/policy/);
  });
});

/** `pkt` (an IPv4 packet without options) with `optWords` 32-bit words of IP option 01 (NOP) added. */
function withIpOptions(pkt: Buffer, optWords: number): Buffer {
  const ihl = (pkt[0]! & 0x0f) * 4;
  const out = Buffer.concat([pkt.subarray(0, ihl), Buffer.alloc(optWords * 4, 1), pkt.subarray(ihl)]);
  out[0] = 0x40 | ((ihl / 4 + optWords) & 0x0f);
  out.writeUInt16BE(out.length, 2);
  out.writeUInt16BE(0, 10);
  let sum = 0;
  for (let i = 0; i < (out[0]! & 0x0f) * 4; i += 2) sum += out.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  out.writeUInt16BE(~sum & 0xffff, 10);
  return out;
}

describe('hostile input while a FIN is held (issue 11 item 1)', () => {
  it('a second server FIN with 40 bytes of IP options is held beside the first: no exception, the TUN still read', async () => {
    const o = new FakeOracle();
    const { h, c, s } = await world(o, 'none', 250);
    const fin = s.fin();
    expect(h.send(fin)).toHaveLength(0);
    // The same FIN with IHL 15: reading the held copy at this packet's offsets ran past its end.
    const evil = withIpOptions(fin, 10);
    expect((evil[0]! & 0x0f)).toBe(15);
    expect(() => h.send(evil)).not.toThrow();
    expect(h.gw.stats.internalErrors).toBe(0);
    expect(northOf(h.flow()).verdictHold).toHaveLength(2);
    // The gateway goes on: client data still flows.
    h.tun.inject(...c.write(100)).flush();
    await h.run(c, s);
    expect(s.bytes().length).toBe(600);
  });

  it('an exception inside a wrapper drops that packet, counted and logged, and the next packets pass', async () => {
    const { h, c, s } = await world(null);
    const real = h.gw.south.fromClient.bind(h.gw.south);
    let boom = true;
    h.gw.south.fromClient = (...a: Parameters<typeof real>) => {
      if (boom) throw new RangeError('injected');
      return real(...a);
    };
    const segs = c.write(100);
    expect(h.send(...segs)).toHaveLength(0);
    expect(h.gw.stats.internalErrors).toBe(segs.length);
    boom = false;
    h.tun.inject(...segs).flush();
    await h.run(c, s);
    expect(s.bytes().length).toBe(600);
    expect(h.gw.metrics()).toContain(`ftcp_gateway_internal_errors_total ${segs.length}`);
  });
});

describe('the end of a connection, said twice (issue 10 item 1: RSTs at the end of echo connections)', () => {
  it("a server FIN retransmitted after the verdict released the first is dropped, and so is a RST once both FINs are acked", async () => {
    const o = new FakeOracle();
    const { h, c, s } = await world(o, 'none', 250);
    const fin = s.fin();
    expect(h.send(fin)).toHaveLength(0);
    o.answer('alive');
    await h.settle();
    const rel = h.drain();
    expect(rel).toHaveLength(1);
    const ack = c.receive(rel[0]!);
    expect(c.serverFin).toBe(true);
    // The hold outlasted the server's FIN timer: its retransmission comes after the release,
    // before the client's ACK reached it. Not held again, not forwarded.
    h.now += 300;
    expect(h.send(fin)).toHaveLength(0);
    expect(h.gw.masking.stats.held).toBe(1);
    expect(h.gw.south.stats.finRetransmitsDropped).toBe(1);
    // The client's ACK of the FIN, then its own FIN: both FINs acked, the flow is CLOSED.
    h.tun.inject(ack!, ...c.write(0, true)).flush();
    await h.run(c, s);
    expect(h.flow().state).toBe('CLOSED');
    // A stray segment drew a RST from the closed server: dropped.
    expect(h.send(serverRst(s))).toHaveLength(0);
    expect(h.gw.south.stats.afterCloseDropped).toBe(1);
    // Nor any other server segment: a rebuilt incarnation's regenerated bytes, a SYN-ACK.
    const data = emitTcpPacket({ src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: s.peerPort, seq: s.seq(0), ack: s.inSeq(s.rcvNxt), flags: TCP_ACK, window: 100, payload: outBytes(0, 100) });
    expect(h.send(data)).toHaveLength(0);
    expect(h.gw.south.stats.afterCloseDropped).toBe(2);
    expect(c.resets).toBe(0);
  });

  it('a FIN the client never acked is forwarded again once finEchoMs has passed (a FIN lost on the way)', async () => {
    const o = new FakeOracle();
    const { h, s } = await world(o, 'none', 250);
    const fin = s.fin();
    h.send(fin);
    o.answer('alive');
    await h.settle();
    expect(h.drain()).toHaveLength(1); // lost on the way to the client
    h.now += 1500;
    expect(h.send(fin)).toHaveLength(0); // held for the verdict again, then released
    o.answer('alive');
    await h.settle();
    expect(h.drain()).toHaveLength(1);
    expect(h.gw.south.stats.finRetransmitsDropped).toBe(0);
  });
});
