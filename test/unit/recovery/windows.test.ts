/**
 * The replay sender and the absorption against the new incarnation's and the client's windows
 * (issue 10, items 1-4): a server that stops reading while its output is unacknowledged
 * (memcached's shape), a client at a zero window, a client with a tiny receive buffer, the
 * regenerated tail that carries the FIN, and the progress deadline.
 */
import { describe, it, expect } from 'vitest';
import {
  Harness, Client, Server, FakeOracle, connect, hasFlag, parseSeg, inBytes, outBytes, outputFor,
  CLIENT, SERVER, CPORT, SPORT, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type Seg,
} from '../../support/gateway-harness.js';
import type { NorthOptions } from '../../../src/recovery/options.js';
import { emitTcpPacket } from '../../../src/wire/repr.js';
import { seqDiff } from '../../../src/wire/seq.js';
import { northOf, recOf } from '../../../src/recovery/rebuild.js';

const C_ISN = 0xfffff000;
const S_ISN = 0x70000000;
const S2_ISN = 0x1234abcd;

interface World { h: Harness; o: FakeOracle; c: Client; s: Server }

/** `input` client bytes exchanged and every reply acked by the client, then a crash. */
async function crashedAfter(input: number, north: Partial<NorthOptions> = {}, client: Partial<{ window: number; synWindow: number }> = {}): Promise<World> {
  const c = new Client({ isn: C_ISN, ts: 1000, window: client.window ?? 502 });
  if (client.synWindow !== undefined) c.synWindow = client.synWindow;
  const s = new Server({ isn: S_ISN, ts: 500_000, window: 4000 });
  const o = new FakeOracle();
  const h = new Harness({ oracle: o, north });
  await connect(h, c, s);
  for (let at = 0; at < input; at += 10_000) {
    h.tun.inject(...c.write(Math.min(10_000, input - at))).flush();
    await h.run(c, s, 2000);
  }
  expect(c.bytes().equals(outBytes(0, outputFor(input)))).toBe(true);
  expect(h.flow().cliAcked).toBe(outputFor(input));
  h.now += 10;
  o.emit('crashed');
  for (const x of h.drain()) if (x.dst === CLIENT) c.receive(x);
  return { h, o, c, s };
}

/** Routes segments the gateway wrote to their endpoint; returns the answers. */
function route(l: Seg[], c: Client, s2: Server): Buffer[] {
  const next: Buffer[] = [];
  for (const x of l) {
    if (x.dst === CLIENT) {
      const r = c.receive(x);
      if (r) next.push(r);
    } else if (x.dst === SERVER) next.push(...s2.receive(x));
  }
  return next;
}

/** The service listens again; then packets and timer ticks of `stepMs` until `done` or `ms`. */
async function rebuild(w: World, s2: Server, done: () => boolean, ms = 20_000, stepMs = 50): Promise<number> {
  const { h, o, c } = w;
  h.now += 100;
  o.emit('listening');
  let t = 0;
  h.tun.inject(...route(h.drain(), c, s2)).flush();
  for (; t <= ms; t += stepMs) {
    await h.run(c, s2, 5000);
    if (done()) return t;
    const next = route(h.tick(stepMs), c, s2);
    if (next.length > 0) h.tun.inject(...next).flush();
  }
  return -1;
}

const dataLen = (x: Seg) => x.payload?.length ?? 0;

describe('replay into a server that stops reading while its output is unacknowledged', () => {
  it('completes: no byte or pure ACK past the closed window, its output acked, every byte replayed (memcached shape)', async () => {
    const IN = 60_000;
    const MORE = 40_000; // requests pipelined after the last answer the client had: the dead server never saw them
    const w = await crashedAfter(IN - MORE);
    w.h.tun.inject(...w.c.write(MORE)).flush();
    await w.h.run(w.c, null);
    const s2 = new Server({ isn: S2_ISN, ts: 9, rcvBuf: 4096 });
    s2.synWindow = 4096;
    const toS2: Seg[] = [];
    const orig = s2.receive.bind(s2);
    s2.receive = (x: Seg) => {
      toS2.push(x);
      return orig(x);
    };
    const t = await rebuild(w, s2, () => recOf(w.h.flow()) === null);
    expect(w.h.gw.north.stats.rebuildFailed).toBe(0);
    expect(t).toBeGreaterThanOrEqual(0); // caught up (without the fix: stuck in REPLAY for ever)
    expect(s2.bytes().equals(inBytes(0, IN))).toBe(true);
    expect(s2.violations).toEqual([]);
    // No segment toward it began past its window (such a pure ACK is dropped unread); the
    // only unacceptable ones are window probes (a pure ACK at snd_una − 1, which draws an ACK).
    expect(s2.beyondWindow).toBe(0);
    expect(s2.unacceptable).toBeLessThanOrEqual(w.h.gw.north.stats.zeroWindowProbes);
    // The connection lives on: more input, its output reaches the client byte-exact.
    const { h, c } = w;
    h.tun.inject(...c.write(1000)).flush();
    for (let i = 0; i < 20 && c.bytes().length < outputFor(IN + 1000); i++) {
      await h.run(c, s2, 5000);
      h.tun.inject(...route(h.tick(50), c, s2)).flush();
    }
    expect(c.bytes().equals(outBytes(0, outputFor(IN + 1000)))).toBe(true);
    expect(c.resets).toBe(0);
  });
});

describe('a client at a zero window', () => {
  it('its window update during the replay reaches the new incarnation in an ACK it accepts', async () => {
    const w = await crashedAfter(20_000);
    const { h, c } = w;
    // The client stops reading.
    c.window = 0;
    h.send(c.ack());
    expect(h.flow().cliWindow).toBe(0);
    const s2 = new Server({ isn: S2_ISN, ts: 9, rcvBuf: 2048 });
    s2.synWindow = 2048;
    h.now += 100;
    w.o.emit('listening');
    h.tun.inject(...route(h.drain(), c, s2)).flush(); // the SYN-ACK
    await h.settle();
    // The handshake's ACK and the first replayed window, held back: the server has nothing yet.
    const held = h.drain();
    expect(recOf(h.flow())?.phase).toBe('REPLAY');
    expect(s2.rcvNxt).toBe(0);
    // The client reads again: its window update (seq = its snd_nxt, past the replay).
    c.window = 502;
    const before = h.gw.north.stats.clientAcksReplaced;
    const upd = c.ack();
    h.tun.inject(upd).flush();
    await h.settle();
    const out = h.drain().filter((x) => x.dst === SERVER);
    expect(h.gw.north.stats.clientAcksReplaced).toBe(before + 1);
    // What went to the server instead: the gateway's ACK, within the server's window, with the window.
    expect(out.length).toBeGreaterThan(0);
    for (const x of out) {
      const off = seqDiff(x.seq, s2.inSeq(0));
      expect(off).toBeLessThanOrEqual(s2.edge);
    }
    expect(out.some((x) => x.window === 502)).toBe(true);
    h.tun.inject(...route([...held, ...out], c, s2)).flush();
    for (let i = 0; i < 100 && recOf(h.flow()) !== null; i++) {
      await h.run(c, s2, 5000);
      h.tun.inject(...route(h.tick(50), c, s2)).flush();
    }
    expect(recOf(h.flow())).toBe(null);
    expect(s2.bytes().equals(inBytes(0, 20_000))).toBe(true);
    expect(h.gw.north.stats.rebuildFailed).toBe(0);
  });

  it('is no reason to give up: a client that keeps its window closed holds the rebuild past the progress deadline', async () => {
    const w = await crashedAfter(2_000, { progressDeadlineMs: 1000 });
    const { h, c } = w;
    c.window = 0;
    h.send(c.ack());
    const s2 = new Server({ isn: S2_ISN, ts: 9 });
    const t = await rebuild(w, s2, () => false, 3000, 100);
    expect(t).toBe(-1);
    expect(h.gw.north.stats.rebuildFailed).toBe(0);
  });
});

describe('the window advertised to the new incarnation', () => {
  it("never exceeds the largest window the real client offered (a 2 KB receive buffer)", async () => {
    // The client's windows: 11 << 7 = 1408 bytes at most, its SYN 2048. Its input makes
    // 1,950 bytes of output, inside that window: the scripted server sends its output at once
    // (no window), and the gateway takes no server byte past the client's window (issue 11).
    const w = await crashedAfter(1_300, {}, { window: 11, synWindow: 2048 });
    const s2 = new Server({ isn: S2_ISN, ts: 9 });
    const toS2: Seg[] = [];
    const orig = s2.receive.bind(s2);
    s2.receive = (x: Seg) => {
      toS2.push(x);
      return orig(x);
    };
    await rebuild(w, s2, () => recOf(w.h.flow()) === null);
    expect(recOf(w.h.flow())).toBe(null);
    const after = toS2.filter((x) => !hasFlag(x, TCP_SYN) && !hasFlag(x, TCP_RST));
    expect(after.length).toBeGreaterThan(0);
    // Scaled by the client's shift (7): at most max(2048, 1408) bytes.
    for (const x of after) expect(x.window * 2 ** 7).toBeLessThanOrEqual(2048 + 127);
  });
});

describe('the regenerated tail that carries the FIN', () => {
  it('data the client has is absorbed even with the FIN on it; the FIN alone reaches the client later', async () => {
    const IN = 3_000;
    const w = await crashedAfter(IN);
    const { h, c, o } = w;
    // The client closes: its FIN is logged (the dead server never answered with its own).
    h.tun.inject(...c.write(0, true)).flush();
    await h.run(c, null);
    const OUT = outputFor(IN);
    const TAIL = OUT - 100;
    const s2 = new Server({ isn: S2_ISN, ts: 9 });
    // Its regenerated output up to TAIL goes out as usual; the rest leaves with its FIN below.
    const orig = s2.receive.bind(s2);
    s2.receive = (x: Seg) => orig(x).map((b) => {
      const y = parseSeg(b);
      const off = seqDiff(y.seq, s2.seq(0));
      if (dataLen(y) === 0 || off + dataLen(y) <= TAIL) return b;
      return emitTcpPacket({ ...y, payload: off < TAIL ? Buffer.from(y.payload!).subarray(0, TAIL - off) : undefined, seq: off < TAIL ? y.seq : s2.seq(TAIL) });
    });
    await rebuild(w, s2, () => s2.finRcvd);
    await h.run(c, s2, 5000);
    expect(s2.finRcvd).toBe(true);
    expect(northOf(h.flow()).incSndMax).toBe(TAIL);
    expect(recOf(h.flow())).not.toBe(null); // still absorbing: the client has up to OUT
    const got0 = c.bytes().length;
    // The new incarnation closes: its last 100 bytes (the client has them) and its FIN in one segment.
    const tail = emitTcpPacket({
      src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: CPORT, seq: s2.seq(TAIL), ack: s2.inSeq(IN + 1),
      flags: TCP_ACK | TCP_PSH | TCP_FIN, window: 1000, payload: outBytes(TAIL, OUT),
    });
    const out = h.send(tail);
    await h.settle();
    // A FIN waits for the liveness verdict: the process is alive.
    while (o.asked.length > 0) o.answer('alive');
    await h.settle();
    const all = [...out, ...h.drain()];
    expect(all.filter((x) => x.dst === CLIENT && (dataLen(x) > 0 || hasFlag(x, TCP_FIN)))).toEqual([]);
    expect(c.bytes().length).toBe(got0);
    expect(h.gw.north.stats.finTailsAbsorbed).toBe(1);
    // The gateway acked the data, not the FIN: the new incarnation sends the FIN alone again.
    const acks = all.filter((x) => x.dst === SERVER);
    expect(acks.length).toBeGreaterThan(0);
    expect(seqDiff(acks[acks.length - 1]!.ack, s2.seq(0))).toBe(OUT);
    const finOnly = emitTcpPacket({
      src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: CPORT, seq: s2.seq(OUT), ack: s2.inSeq(IN + 1),
      flags: TCP_ACK | TCP_FIN, window: 1000,
    });
    h.send(finOnly);
    await h.settle();
    while (o.asked.length > 0) o.answer('alive');
    await h.settle();
    const fins = h.drain().filter((x) => x.dst === CLIENT && hasFlag(x, TCP_FIN));
    expect(fins).toHaveLength(1);
    expect(dataLen(fins[0]!)).toBe(0);
    expect(seqDiff(fins[0]!.seq, c.outSeq(0))).toBe(OUT);
  });
});

describe('the progress deadline', () => {
  it('a new incarnation that takes no replayed byte ends the connection with one counted RST and a reason', async () => {
    const w = await crashedAfter(5_000, { progressDeadlineMs: 2000 });
    const { h, c } = w;
    const s2 = new Server({ isn: S2_ISN, ts: 9 });
    // It completes the handshake, then never reads (its window stays closed).
    s2.synWindow = 0;
    const t = await rebuild(w, s2, () => h.gw.north.stats.rebuildFailed > 0, 10_000, 100);
    expect(t).toBeGreaterThan(1500);
    expect(h.gw.north.stats.progressFailures).toBe(1);
    expect(c.resets).toBe(1);
    // The bound and the count are visible to an operator.
    expect(h.gw.metrics()).toContain('ftcp_limit{name="progressDeadlineMs"} 2000');
    expect(h.gw.metrics()).toContain('ftcp_north_progress_failures_total 1');
    expect((h.gw.snapshot().limits as Record<string, number>).progressDeadlineMs).toBe(2000);
  });
});

void TCP_FIN;

describe('the end of the replay', () => {
  it('waits until the new incarnation holds every byte the gateway acked to the client, even one lost on its way there', async () => {
    const IN = 3_000;
    const w = await crashedAfter(IN);
    const { h, c, o } = w;
    const s2 = new Server({ isn: S2_ISN, ts: 9, strict: true });
    s2.synWindow = 65_000;
    h.now += 100;
    o.emit('listening');
    h.tun.inject(...route(h.drain(), c, s2)).flush(); // SYN-ACK
    await h.settle();
    const first = h.drain(); // the handshake's ACK and the replay
    // Client data during the replay: logged, forwarded, and lost on the way to the server.
    const more = c.write(1000);
    h.tun.inject(...more).flush();
    await h.settle();
    const lost = h.drain().filter((x) => x.dst === SERVER && dataLen(x) > 0);
    expect(lost.length).toBeGreaterThan(0);
    // Stable now: the replay sends it too, and that copy is lost as well.
    h.stabilizeAll();
    await h.settle();
    expect(h.drain().filter((x) => x.dst === SERVER && dataLen(x) > 0).length).toBeGreaterThan(0);
    // While the replay is on its way, the gateway's keepalive acks the client for it
    // (stable, inside the last window); the replay's own segments are not delivered yet.
    const held: Seg[] = [...first];
    for (let i = 0; i < 3; i++) {
      for (const x of h.tick(250)) {
        if (x.dst === CLIENT) c.receive(x);
        else held.push(x);
      }
    }
    expect(c.maxAck).toBe(IN + 1000);
    expect(recOf(h.flow())?.phase).toBe('REPLAY');
    h.tun.inject(...route(held.filter((x) => seqDiff(x.seq, c.seq(0)) + dataLen(x) <= IN), c, s2)).flush();
    await h.settle();
    // The new incarnation acked what the replay target was (3,000), not what the client was
    // told (4,000): the rebuild is not over (the replayed copy of the rest is due again).
    expect(s2.rcvNxt).toBe(IN);
    expect(h.flow().complete).toBe(IN + 1000);
    // (REPLAY before the phase split: the replay reached its target, the rebuild goes on in ABSORB.)
    expect(recOf(h.flow())?.phase).toBe('ABSORB');
    // However the rebuild goes on, it ends with the server holding all of it.
    for (let i = 0; i < 40 && recOf(h.flow()) !== null; i++) {
      await h.run(c, s2, 5000);
      h.tun.inject(...route(h.tick(250), c, s2)).flush();
    }
    await h.run(c, s2, 5000);
    expect(s2.bytes().equals(inBytes(0, IN + 1000))).toBe(true);
  });
});

describe('a connection over at both ends when its server dies', () => {
  it("once a keepalive acks the client's FIN (the server's FIN acked before), no keepalive follows: a client that closed second has no socket left", async () => {
    const IN = 2_000;
    const w = await crashedAfter(IN);
    const { h, c, s, o } = w;
    void o;
    // Before the crash (crashedAfter already killed it: this is the dead incarnation's last
    // FIN, forwarded before the kill in the real drill), the client acked the server's FIN.
    // Here: the server's FIN reaches the flow's bookkeeping as if forwarded, then the client closes.
    const f = h.flow();
    f.serverFin = outputFor(IN);
    f.sndMax = f.serverFin + 1;
    c.serverFin = true;
    c.rcvNxt = outputFor(IN);
    h.tun.inject(c.ack()).flush();
    h.drain();
    expect(f.cliAcked).toBe(f.serverFin + 1);
    h.tun.inject(...c.write(0, true)).flush(); // the client's FIN: logged, the dead server never acks it
    h.stabilizeAll();
    await h.settle();
    const first = h.drain().filter((x) => x.dst === CLIENT);
    const acks = [...first, ...h.tick(250).filter((x) => x.dst === CLIENT)];
    expect(acks.some((x) => seqDiff(x.ack, c.seq(0)) === IN + 1)).toBe(true); // the FIN acked
    expect(f.state).toBe('CLOSED');
    // From now on nothing more toward the client.
    let later = 0;
    for (let i = 0; i < 10; i++) later += h.tick(250).filter((x) => x.dst === CLIENT).length;
    expect(later).toBe(0);
    void s;
  });
});
