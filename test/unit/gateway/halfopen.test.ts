/**
 * Half-open connections (issue 11 item 6): the log registers a connection only at the end of
 * its handshake (the client's ACK of the server's ISN+1, or its first data), so a SYN flood
 * costs the log nothing; half-open flows are capped (--max-half-open: the oldest is evicted, as
 * a SYN queue does) and time out on their own (--half-open-timeout, from their latest SYN or
 * SYN-ACK), and a legitimate connection that completes its handshake during a flood is
 * protected: logged, masked and rebuilt at a crash.
 * Through the whole pipeline on a FakeTun (test/unit/recovery/harness.ts).
 */
import { describe, it, expect } from 'vitest';
import {
  Harness, Client, Server, FakeOracle, hasFlag, outBytes, outputFor, type Seg,
  CLIENT, SERVER, SPORT, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN,
} from '../../support/gateway-harness.js';
import { emitTcpPacket } from '../../../src/wire/repr.js';
import { seqAdd, type Seq } from '../../../src/wire/seq.js';
import { mulberry32 } from '../../../src/util/rng.js';
import { recOf } from '../../../src/recovery/rebuild.js';

const SPOOF_NET = 0xc6128000; // 198.18.128.0/17, as inject.mjs floods

/** A spoofed SYN and the server's SYN-ACK to it (as a server with SYN cookies answers every SYN). */
function spoofed(rand: () => number): [Buffer, Buffer] {
  const src = (SPOOF_NET + Math.floor(rand() * 0x8000)) >>> 0;
  const port = 1024 + Math.floor(rand() * 64000);
  const isn = Math.floor(rand() * 2 ** 32) >>> 0 as Seq;
  const syn = emitTcpPacket({ src, dst: SERVER, srcPort: port, dstPort: SPORT, seq: isn, ack: 0, flags: TCP_SYN, window: 64240 });
  const synAck = emitTcpPacket({
    src: SERVER, dst: src, srcPort: SPORT, dstPort: port, seq: Math.floor(rand() * 2 ** 32) >>> 0, ack: seqAdd(isn, 1),
    flags: TCP_SYN | TCP_ACK, window: 65160,
  });
  return [syn, synAck];
}

function flood(h: Harness, rand: () => number, n: number): void {
  for (let i = 0; i < n; i++) h.send(...spoofed(rand));
}

/** The client's SYN through the gateway to the server, and the server's SYN-ACK back to the client; returns the client's ACK. */
function synAndSynAck(h: Harness, c: Client, s: Server): Buffer {
  const [syn] = h.send(c.syn());
  const [synAck] = h.send(...s.receive(syn!));
  expect(hasFlag(synAck!, TCP_SYN | TCP_ACK)).toBe(true);
  return c.receive(synAck!)!;
}

const noEnd = (segs: Seg[]) => segs.filter((x) => x.dst === CLIENT && (hasFlag(x, TCP_FIN) || hasFlag(x, TCP_RST)));

describe('the log registration at the end of the handshake', () => {
  it('a SYN and its SYN-ACK open nothing in the log; the client ACK of the server ISN+1 does', async () => {
    const h = new Harness();
    const c = new Client({ isn: 0x10000, ts: 1 });
    const s = new Server({ isn: 0x20000, ts: 1 });
    const ack = synAndSynAck(h, c, s);
    await h.settle();
    expect(h.log.opened).toHaveLength(0);
    expect(h.flow().state).toBe('SYN_ACKED');
    expect(h.gw.table.halfOpenCount).toBe(1);
    // an ACK of something else (not the server's ISN+1) does not end the handshake
    const wrong = emitTcpPacket({ src: CLIENT, dst: SERVER, srcPort: c.port, dstPort: SPORT, seq: c.seq(0), ack: c.outSeq(5), flags: TCP_ACK, window: 502 });
    expect(h.send(wrong)).toHaveLength(1);
    await h.settle();
    expect(h.log.opened).toHaveLength(0);

    expect(h.send(ack)).toHaveLength(1);
    await h.settle();
    expect(h.log.opened).toHaveLength(1);
    expect(h.log.opened[0]).toMatchObject({ clientIsn: 0x10000, serverIsn: 0x20000 });
    expect(h.flow().state).toBe('ESTABLISHED');
    expect(h.flow().logId).toBeGreaterThan(0);
    expect(h.gw.table.halfOpenCount).toBe(0);
    expect(h.gw.south.stats.handshakesCompleted).toBe(1);
    // and the connection works, its bytes logged
    h.tun.inject(...c.write(300)).flush();
    await h.run(c, s);
    expect(c.bytes().equals(outBytes(0, outputFor(300)))).toBe(true);
    expect(h.log.bytes(h.logId()).length).toBe(300);
  });

  it('the third ACK lost: the first data segment (acking the server ISN+1) ends the handshake, its bytes kept and logged', async () => {
    const h = new Harness();
    const c = new Client({ isn: 0xfffffff0, ts: 1 }); // across the 2^32 wrap
    const s = new Server({ isn: 0x20000, ts: 1 });
    synAndSynAck(h, c, s); // the ACK is lost before the gateway
    h.tun.inject(...c.write(200)).flush();
    await h.run(c, s);
    expect(h.log.opened).toHaveLength(1);
    expect(h.flow().state).toBe('ESTABLISHED');
    expect(h.log.bytes(h.logId()).length).toBe(200);
    expect(c.bytes().equals(outBytes(0, outputFor(200)))).toBe(true);
  });

  it('a SYN-ACK that does not ack the client ISN+1 does not move the flow (counted)', async () => {
    const h = new Harness();
    const c = new Client({ isn: 1000, ts: 1 });
    h.send(c.syn());
    const bad = emitTcpPacket({ src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: c.port, seq: 5000, ack: 7777, flags: TCP_SYN | TCP_ACK, window: 65160 });
    expect(h.send(bad)).toHaveLength(1);
    expect(h.flow().state).toBe('SYN_SEEN');
    expect(h.gw.south.stats.synAckMismatch).toBe(1);
    h.send(emitTcpPacket({ src: CLIENT, dst: SERVER, srcPort: c.port, dstPort: SPORT, seq: 1001, ack: 5001, flags: TCP_ACK, window: 502 }));
    await h.settle();
    expect(h.log.opened).toHaveLength(0);
  });

  it('a RST answering the handshake releases the half-open flow: the server refusing, or a client refusing a SYN-ACK', () => {
    const h = new Harness();
    const c = new Client({ isn: 1000, ts: 1 });
    h.send(c.syn());
    const refused = emitTcpPacket({ src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: c.port, seq: 0, ack: 1001, flags: TCP_RST | TCP_ACK, window: 0 });
    expect(h.send(refused)).toHaveLength(1); // forwarded: the client learns
    expect(h.gw.table.size).toBe(0);

    const s = new Server({ isn: 0x20000, ts: 1 });
    const c2 = new Client({ isn: 3000, ts: 1, port: 40001 });
    synAndSynAck(h, c2, s);
    // a RST elsewhere than the client's ISN+1 is not the handshake's answer: kept
    h.send(emitTcpPacket({ src: CLIENT, dst: SERVER, srcPort: c2.port, dstPort: SPORT, seq: 9999, ack: 0, flags: TCP_RST, window: 0 }));
    expect(h.gw.table.size).toBe(1);
    h.send(emitTcpPacket({ src: CLIENT, dst: SERVER, srcPort: c2.port, dstPort: SPORT, seq: 3001, ack: 0, flags: TCP_RST, window: 0 }));
    expect(h.gw.table.size).toBe(0);
    expect(h.gw.table.halfOpenCount).toBe(0);
    expect(h.gw.south.stats.halfOpenReset).toBe(2);
    expect(h.log.opened).toHaveLength(0);
  });
});

describe('the half-open cap and timeout', () => {
  it('at --max-half-open a new SYN evicts the half-open flow whose latest SYN or SYN-ACK is the oldest, counted', () => {
    const h = new Harness({ south: { maxHalfOpen: 2 } });
    const a = new Client({ isn: 1, ts: 1, port: 41001 });
    const b = new Client({ isn: 2, ts: 1, port: 41002 });
    const c = new Client({ isn: 3, ts: 1, port: 41003 });
    h.send(a.syn());
    h.now += 1000;
    h.send(b.syn());
    h.now += 1000;
    // a's SYN-ACK moves it behind b
    h.send(emitTcpPacket({ src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: a.port, seq: 77, ack: 2, flags: TCP_SYN | TCP_ACK, window: 65160 }));
    h.now += 1000;
    expect(h.send(c.syn())).toHaveLength(1); // forwarded, protected (a flow of its own)
    expect(h.gw.table.size).toBe(2);
    expect(h.gw.table.halfOpenCount).toBe(2);
    expect(() => h.flowOf(b.port)).toThrow();
    expect(h.flowOf(a.port).state).toBe('SYN_ACKED');
    expect(h.flowOf(c.port).state).toBe('SYN_SEEN');
    expect(h.gw.south.stats.halfOpenEvicted).toBe(1);
  });

  it('a flood of 5,000 spoofed SYNs (answered) leaves at most --max-half-open flows and opens nothing in the log', async () => {
    const h = new Harness({ south: { maxHalfOpen: 300 } });
    flood(h, mulberry32(11), 5000);
    await h.settle();
    expect(h.gw.table.size).toBe(300);
    expect(h.gw.table.halfOpenCount).toBe(300);
    expect(h.gw.south.stats.halfOpenEvicted).toBe(4700);
    expect(h.log.opened).toHaveLength(0);
    const snap = h.gw.snapshot();
    expect(snap.halfOpen).toBe(300);
    expect(snap.limits).toMatchObject({ maxHalfOpen: 300, halfOpenTimeoutMs: 30_000 });
    const m = h.gw.metrics();
    expect(m).toContain('ftcp_half_open 300');
    expect(m).toContain('ftcp_limit{name="maxHalfOpen"} 300');
    expect(m).toContain('ftcp_limit{name="halfOpenTimeoutMs"} 30000');
    expect(m).toContain('ftcp_south_half_open_evicted_total 4700');
  });

  it('the table at --max-flows: a new SYN evicts the oldest half-open flow rather than going unprotected', async () => {
    const h = new Harness({ south: { maxFlows: 3, maxHalfOpen: 100 } });
    const c = new Client({ isn: 1, ts: 1, port: 41001 });
    const s = new Server({ isn: 9, ts: 1 });
    h.send(synAndSynAck(h, c, s));
    flood(h, mulberry32(5), 50);
    expect(h.gw.table.size).toBe(3);
    expect(h.gw.south.stats.flowsOverCap).toBe(0);
    expect(h.flowOf(c.port).state).toBe('ESTABLISHED');
  });

  it('a half-open flow is released --half-open-timeout after its latest SYN or SYN-ACK (30 s by default), counted', () => {
    const h = new Harness();
    const c = new Client({ isn: 1000, ts: 1 });
    h.send(c.syn());
    h.now += 20_000;
    h.send(emitTcpPacket({ src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: c.port, seq: 5000, ack: 1001, flags: TCP_SYN | TCP_ACK, window: 65160 }));
    h.now += 29_999;
    h.gw.south.sweep();
    expect(h.gw.table.size).toBe(1); // 50 s after the SYN, but 30 s after the SYN-ACK only at the next ms
    h.now += 1;
    h.gw.south.sweep();
    expect(h.gw.table.size).toBe(0);
    expect(h.gw.table.halfOpenCount).toBe(0);
    expect(h.gw.south.stats.halfOpenExpired).toBe(1);
    expect(h.gw.south.stats.flowsExpired).toBe(1);
  });

  it('the half-open timeout expires the flood and leaves established connections, however idle', async () => {
    const h = new Harness({ south: { halfOpenTimeoutMs: 5_000 } });
    const c = new Client({ isn: 1, ts: 1, port: 41001 });
    const s = new Server({ isn: 9, ts: 1 });
    h.send(synAndSynAck(h, c, s));
    flood(h, mulberry32(3), 1000);
    h.now += 5_000;
    h.gw.south.sweep();
    expect(h.gw.table.size).toBe(1);
    expect(h.gw.south.stats.halfOpenExpired).toBe(1000);
    expect(h.flowOf(c.port).state).toBe('ESTABLISHED');
  });
});

describe('a legitimate connection during a flood', () => {
  it('completes its handshake amid spoofed SYNs, is logged, and is masked and rebuilt at a crash', async () => {
    const o = new FakeOracle();
    const h = new Harness({ oracle: o, south: { maxHalfOpen: 100 } });
    const rand = mulberry32(7);
    flood(h, rand, 500);
    const c = new Client({ isn: 0x7fff0000, ts: 1000, port: 40000 });
    const s = new Server({ isn: 0x12340000, ts: 50_000 });
    const [syn] = h.send(c.syn());
    flood(h, rand, 40); // within the cap: the legitimate handshake is 40 SYNs old when it ends
    const [synAck] = h.send(...s.receive(syn!));
    flood(h, rand, 40);
    h.send(c.receive(synAck!)!);
    flood(h, rand, 2000);
    await h.settle();
    expect(h.log.opened).toHaveLength(1);
    expect(h.log.opened[0]).toMatchObject({ client: { port: 40000 } });
    expect(h.gw.table.size).toBeLessThanOrEqual(100 + 1);
    expect(h.flowOf(c.port).state).toBe('ESTABLISHED');

    h.tun.inject(...c.write(500)).flush();
    await h.run(c, s);
    expect(c.bytes().equals(outBytes(0, outputFor(500)))).toBe(true);
    expect(h.log.bytes(h.flowOf(c.port).logId).length).toBe(500);

    o.emit('crashed');
    expect(noEnd(h.drain())).toEqual([]);
    expect(recOf(h.flowOf(c.port))?.phase).toBe('MASKED');
    flood(h, rand, 1000); // the flood goes on while the server is down
    const s2 = new Server({ isn: 0x0badf00d, ts: 3 });
    h.now += 100;
    o.emit('listening');
    const seen = await h.run(c, s2);
    expect(h.gw.north.stats.caughtUp).toBe(1);
    h.tun.inject(...c.write(300)).flush();
    seen.push(...(await h.run(c, s2)));
    expect(c.bytes().equals(outBytes(0, outputFor(800)))).toBe(true);
    expect(noEnd(seen)).toEqual([]);
    expect(c.resets).toBe(0);
    expect(c.violations).toEqual([]);
    expect(h.log.opened).toHaveLength(1);
  });

  it('a handshake whose SYN-ACK came before a crash and its ACK after it is masked and rebuilt with the others', async () => {
    const o = new FakeOracle();
    const h = new Harness({ oracle: o });
    const c = new Client({ isn: 0x5000, ts: 1000, port: 40000 });
    const s = new Server({ isn: 0x9000, ts: 50_000 });
    const ack = synAndSynAck(h, c, s);
    h.now += 5;
    o.emit('crashed'); // the incarnation that sent the SYN-ACK dies; the ACK is on its way
    h.now += 5;
    h.tun.inject(ack, ...c.write(500)).flush();
    const masked = await h.run(c, null);
    expect(noEnd(masked)).toEqual([]);
    expect(recOf(h.flowOf(c.port))?.phase).toBe('MASKED');
    expect(h.log.bytes(h.flowOf(c.port).logId).length).toBe(500);
    const s2 = new Server({ isn: 0x0badf00d, ts: 3 });
    h.now += 100;
    o.emit('listening');
    const seen = await h.run(c, s2);
    expect(h.gw.north.stats.caughtUp).toBe(1);
    expect(c.bytes().equals(outBytes(0, outputFor(500)))).toBe(true);
    expect(noEnd(seen)).toEqual([]);
    expect(c.violations).toEqual([]);
  });
});


