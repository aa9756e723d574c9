/**
 * A server crash during the gateway's outage (src/gateway/adopt-gate.ts; issue 14 item 2): the
 * log record binds each connection to the server incarnation it lives in (src/log/state.ts
 * `boundTo`), and a restarted gateway passes nothing of an adopted connection until the
 * supervisor's first heartbeat has told it which incarnation runs now. Another one: the
 * connection is rebuilt from the log, byte-exact, and the client never sees the new server's
 * RST (the scripted kernel below resets whatever reaches it for a connection it does not
 * know). The same one: it carries on. No word yet: nothing forwarded, counted; no word within
 * the bound: released, counted.
 */
import { describe, it, expect } from 'vitest';
import {
  Harness, Client, Server, FakeOracle, HeartbeatOracle, connect, exchanged, inBytes, outBytes, outputFor, seg,
  CLIENT, SERVER, TCP_SYN, TCP_RST, type Seg,
} from '../../support/gateway-harness.js';
import type { Seq } from '../../../src/wire/seq.js';
import { DropReason } from '../../../src/wrappers/contract.js';
import { recOf } from '../../../src/recovery/rebuild.js';
import { FtcpError } from '../../../src/util/errors.js';

const C_ISN = 0x7000 as Seq, S_ISN = 0x80000001 as Seq, S2_ISN = 0x0c0ffee0 as Seq, S3_ISN = 0x55555555 as Seq;
const IN0 = 2300;
const BOOT = 'b0000000000000b1';

/** A connection with IN0 bytes exchanged through gateway 1, whose oracle heard generation 1. */
async function opened<O extends FakeOracle = HeartbeatOracle>(o1: O = new HeartbeatOracle(BOOT, 1) as FakeOracle as O): Promise<{ h: Harness; o: O; c: Client; s: Server }> {
  const c = new Client({ isn: C_ISN, ts: 1000 });
  const s = new Server({ isn: S_ISN, ts: 500_000 });
  const h = await exchanged(c, s, IN0, o1);
  return { h, o: o1, c, s };
}

/** Gateway 1 is gone (kill -9): gateway 2 starts on its log, with an oracle that has heard nothing yet. */
async function restart(h1: Harness): Promise<{ h: Harness; o: HeartbeatOracle }> {
  const o = new HeartbeatOracle(null, 0, 'UNKNOWN');
  const h = new Harness({ oracle: o, log: h1.log });
  h.now = h1.now + 500;
  await h.gw.adopt();
  h.gw.adoptGate.start(h.now);
  return { h, o };
}

/**
 * What a kernel without the connection does with a segment for it: a RST (RFC 9293 3.10.7.1),
 * which goes back through the gateway. Returns the segments the gateway wrote since.
 */
function strayResets(h: Harness, out: Seg[]): Seg[] {
  const rsts = out
    .filter((x) => x.dst === SERVER && !(x.flags & (TCP_SYN | TCP_RST)))
    .map((x) => seg({ fromClient: false, port: x.srcPort, seq: x.ack, flags: TCP_RST, window: 0 }));
  return rsts.length > 0 ? h.send(...rsts) : [];
}

const toServerData = (out: Seg[]) => out.filter((x) => x.dst === SERVER && !(x.flags & (TCP_SYN | TCP_RST)));

describe('a restarted gateway checks each adopted connection against the server incarnation running now', () => {
  it('the handshake binds the connection to the incarnation serving it (a LIVE record, crashes 0), written as soon as its log id is known', async () => {
    const { h } = await opened();
    const id = h.flow().logId;
    const recs = h.log.states.filter((x) => x.id === id);
    expect(recs).toHaveLength(1);
    expect(recs[0]!.state).toEqual({ update: 1, phase: 'LIVE', crashes: 0, incarnations: [], boundTo: { boot: BOOT, generation: 1 } });
    expect(h.log.listActive()[0]!.state?.boundTo).toEqual({ boot: BOOT, generation: 1 });
  });

  it('a binding the log refuses because the connection was closed meanwhile is no failure; a store failure is', async () => {
    for (const [code, failures] of [['FTCP_LOG_UNKNOWN', 0], ['FTCP_LOG_FAILED', 1]] as const) {
      const h = new Harness({ oracle: new HeartbeatOracle(BOOT, 1) });
      h.log.holdStates = true;
      await connect(h, new Client({ isn: C_ISN, ts: 1000 }), new Server({ isn: S_ISN, ts: 500_000 }));
      expect(h.log.failHeldStates(new FtcpError(code, 'test'))).toBe(1);
      await h.settle();
      expect(h.gw.north.stats).toMatchObject({ stateWrites: 1, stateWriteFailures: failures });
    }
  });

  it('another incarnation at the first heartbeat (the server restarted during the outage): masked, rebuilt from the log byte-exact, no RST reaches the client', async () => {
    const { h: h1, c } = await opened();
    const { h, o } = await restart(h1);
    expect(h.gw.snapshot().adoption).toMatchObject({ adopted: 1, incarnation: { waiting: 1, waited: 1 } });

    // The client's next bytes (lost with gateway 1): logged, but the server sees nothing yet.
    const early = h.send(...c.write(300));
    await h.settle();
    h.stabilizeAll();
    expect(toServerData(early)).toEqual([]);
    for (const x of strayResets(h, early)) if (x.dst === CLIENT) c.receive(x);
    expect(h.gw.wrapperDrops.get(DropReason.ADOPT_INCARNATION_UNKNOWN)).toBe(1);
    expect(h.gw.metrics()).toContain('ftcp_drops_total{reason="ADOPT_INCARNATION_UNKNOWN"} 1');
    expect(h.gw.metrics()).toContain('ftcp_limit{name="adoptIncarnationWaitMs"} 1000');

    // The supervisor's first heartbeat: generation 2 listens (the one of the log's record died).
    o.boot = BOOT;
    o.generation = 2;
    o.st = 'LISTENING';
    h.gw.adoptGate.check(h.now); // the gateway's recovery tick
    expect(h.gw.snapshot().adoption).toMatchObject({ incarnation: { waiting: 0, crashed: 1, released: 0 } });
    expect(h.gw.metrics()).toContain('ftcp_adoption_incarnation_crashed_total 1');
    const out = h.drain();
    const syn = out.find((x) => x.flags === TCP_SYN);
    expect(syn?.seq).toBe(c.seq(-1)); // the rebuild's SYN, with the client's ISN
    expect(toServerData(out)).toEqual([]);

    const s2 = new Server({ isn: S2_ISN, ts: 9 });
    h.tun.inject(c.ack()).flush(); // the client's next segment: its numbers
    h.tun.inject(...s2.receive(syn!)).flush();
    await h.run(c, s2);
    expect(recOf(h.flow())).toBeNull();
    expect(s2.bytes().equals(inBytes(0, IN0 + 300))).toBe(true);

    h.tun.inject(...c.write(200)).flush();
    await h.run(c, s2);
    expect(s2.bytes().equals(inBytes(0, c.sent))).toBe(true);
    expect(c.bytes().equals(outBytes(0, outputFor(c.sent)))).toBe(true);
    expect(c.resets).toBe(0);
    expect(c.violations).toEqual([]);
    // The new translation's record binds the new incarnation.
    expect(h.log.states.at(-1)!.state).toMatchObject({ phase: 'LIVE', crashes: 1, boundTo: { boot: BOOT, generation: 2 } });
  });

  it('the same incarnation at the first heartbeat: released, it carries on with the server it had, byte-exact', async () => {
    const { h: h1, c, s } = await opened();
    const { h, o } = await restart(h1);
    expect(toServerData(h.send(...c.write(300)))).toEqual([]); // before the heartbeat: held

    o.boot = BOOT;
    o.generation = 1;
    o.st = 'LISTENING';
    // The client's retransmission decides on its way (no tick needed) and passes.
    c.sent -= 300;
    const out = h.send(...c.write(300));
    expect(toServerData(out)).toHaveLength(1);
    expect(h.gw.snapshot().adoption).toMatchObject({ incarnation: { waiting: 0, released: 1, crashed: 0 } });
    for (const x of out) if (x.dst === SERVER) h.tun.inject(...s.receive(x));
    h.tun.flush();
    await h.run(c, s);
    expect(s.bytes().equals(inBytes(0, IN0 + 300))).toBe(true);
    expect(c.bytes().equals(outBytes(0, outputFor(c.sent)))).toBe(true);
    expect(recOf(h.flow())).toBeNull();
    expect(c.resets).toBe(0);
  });

  it('no heartbeat yet: nothing forwarded either way, counted; past the bound, released as adopted (counted timedOut)', async () => {
    const { h: h1, c, s } = await opened();
    const { h } = await restart(h1);
    for (let i = 0; i < 3; i++) {
      h.now += 100;
      h.gw.adoptGate.check(h.now);
      expect(h.send(c.ack(), s.ackNow())).toEqual([]);
    }
    expect(h.gw.wrapperDrops.get(DropReason.ADOPT_INCARNATION_UNKNOWN)).toBe(6);
    expect(h.gw.limits().adoptIncarnationWaitMs).toBe(1000);

    h.now += 1000;
    h.gw.adoptGate.check(h.now);
    expect(h.gw.snapshot().adoption).toMatchObject({ incarnation: { waiting: 0, timedOut: 1 } });
    h.tun.inject(...c.write(100)).flush();
    await h.run(c, s);
    expect(s.bytes().equals(inBytes(0, c.sent))).toBe(true);
    expect(c.resets).toBe(0);
  });

  it('no incarnation on record (a v1 record, none written): released on probation; the new server\'s RST is swallowed and the connection rebuilt, byte-exact', async () => {
    const { h: h1, c } = await opened(new FakeOracle()); // an oracle that names no incarnation: nothing bound
    expect(h1.log.states).toEqual([]);
    const { h, o } = await restart(h1);
    Object.assign(o, { boot: BOOT, generation: 2, st: 'LISTENING' });
    // The client's next bytes reach the server (nothing says it is another one) ...
    const out = h.send(...c.write(300));
    expect(toServerData(out)).toHaveLength(1);
    expect(h.gw.snapshot().adoption).toMatchObject({ incarnation: { unknownBinding: 1, probation: 1, crashed: 0 } });
    // ... whose kernel knows no such connection: its RST goes no further, the rebuild starts.
    const after = strayResets(h, out);
    // (Had it reached the verdict stage, the oracle would say alive: the new process heartbeats.)
    expect(o.asked).toHaveLength(0);
    await h.settle();
    for (const x of [...after, ...h.drain()]) if (x.dst === CLIENT) c.receive(x);
    expect(c.resets).toBe(0);
    expect(h.gw.snapshot().adoption).toMatchObject({ incarnation: { probation: 0, resetUnknown: 1 } });
    const syn = after.find((x) => x.flags === TCP_SYN)!;
    expect(syn.seq).toBe(c.seq(-1));
    const s2 = new Server({ isn: S2_ISN, ts: 9 });
    h.tun.inject(c.ack()).flush();
    h.tun.inject(...s2.receive(syn)).flush();
    await h.run(c, s2);
    c.sent -= 300; // the client retransmits what was never acked
    h.tun.inject(...c.write(300), ...c.write(100)).flush();
    await h.run(c, s2);
    expect(s2.bytes().equals(inBytes(0, c.sent))).toBe(true);
    expect(c.bytes().equals(outBytes(0, outputFor(c.sent)))).toBe(true);
    expect(c.resets).toBe(0);
  });

  it('on probation, only a RST the client would accept (at its rcv_nxt) rebuilds the connection: a spoofed or stale one is dropped, counted, and changes nothing', async () => {
    const { h: h1, c } = await opened(new FakeOracle());
    const { h, o } = await restart(h1);
    Object.assign(o, { boot: BOOT, generation: 2, st: 'LISTENING' });
    const flow = h.flow();
    expect(flow.gate).not.toBeNull(); // the gate's state is the flow's
    const rst = (seq: Seq): Buffer => seg({ fromClient: false, port: c.port, seq, flags: TCP_RST, window: 0 });
    const rcvNxt = c.outSeq(c.rcvNxt);
    // Before any client segment: the client's rcv_nxt is not known here, no RST can be judged.
    expect(h.send(rst(rcvNxt))).toEqual([]);
    const out = h.send(...c.write(300)); // decides: released on probation; the client side learnt
    expect(toServerData(out)).toHaveLength(1);
    expect(h.gw.snapshot().adoption).toMatchObject({ incarnation: { probation: 1 } });
    expect(flow.gate).not.toBeNull();
    // A RST past the client's rcv_nxt (blind, RFC 5961 §3), and one before it (stale).
    for (const seq of [(rcvNxt + 50_000) >>> 0, (rcvNxt - 1) >>> 0]) expect(h.send(rst(seq as Seq))).toEqual([]);
    await h.settle();
    expect(h.drain().filter((x) => x.flags & TCP_SYN)).toEqual([]); // no rebuild began
    expect(recOf(flow)).toBeNull();
    expect(h.gw.snapshot().adoption).toMatchObject({ incarnation: { probation: 1, resetUnknown: 0 } });
    expect(h.gw.south.stats.serverRstIgnored).toBe(3);
    expect(h.gw.wrapperDrops.get(DropReason.SERVER_RST_OUT_OF_WINDOW)).toBe(3);
    // The new server's kernel answers the client's bytes at its rcv_nxt: that one is the word.
    const after = strayResets(h, out);
    expect(after.find((x) => x.flags === TCP_SYN)?.seq).toBe(c.seq(-1));
    expect(h.gw.snapshot().adoption).toMatchObject({ incarnation: { probation: 0, resetUnknown: 1 } });
    expect(flow.gate).toBeNull();
    expect(c.resets).toBe(0);
  });

  it('a rebuilt connection is bound to the incarnation it was rebuilt into; a later one at the restart rebuilds it again', async () => {
    const { h: h1, o: o1, c } = await opened();
    h1.now += 10;
    o1.emit('crashed');
    for (const x of h1.drain()) if (x.dst === CLIENT) c.receive(x);
    o1.generation = 2;
    h1.now += 100;
    o1.emit('listening');
    const s2 = new Server({ isn: S2_ISN, ts: 9 });
    h1.tun.inject(...s2.receive(h1.drain().find((x) => x.flags === TCP_SYN)!)).flush();
    await h1.run(c, s2);
    expect(h1.log.states.at(-1)!.state).toMatchObject({ phase: 'LIVE', crashes: 1, boundTo: { boot: BOOT, generation: 2 } });

    const { h, o } = await restart(h1);
    Object.assign(o, { boot: BOOT, generation: 3, st: 'ALIVE' }); // generation 3 started, not listening yet
    h.gw.adoptGate.check(h.now);
    expect(h.gw.snapshot().adoption).toMatchObject({ incarnation: { crashed: 1 } });
    const s3 = new Server({ isn: S3_ISN, ts: 3 });
    const syn = h.drain().find((x) => x.flags === TCP_SYN)!;
    h.tun.inject(c.ack()).flush();
    h.tun.inject(...s3.receive(syn)).flush();
    await h.run(c, s3);
    h.tun.inject(...c.write(200)).flush();
    await h.run(c, s3);
    expect(s3.bytes().equals(inBytes(0, c.sent))).toBe(true);
    expect(c.bytes().equals(outBytes(0, outputFor(c.sent)))).toBe(true);
    expect(c.resets).toBe(0);
  });
});
