/**
 * Segments validated against the flow's state (issue 11 items 3, 4, 5), through a whole
 * gateway on the fake TUN (the recovery harness: scripted client and server, a ManualLog,
 * a scripted liveness oracle, an injected clock):
 *
 *   item 3  a SYN on a live tuple never replaces its flow; a RST changes a flow only in its
 *           receiver's rcv_nxt range;
 *   item 4  data, FINs and ACKs outside what their receiver accepts move no offset, no FIN,
 *           no state, are never logged, start no verdict hold;
 *   item 5  a log open that resolves for a released flow binds nothing and is closed; a flow
 *           released during its recovery ends it.
 *
 * Each case runs with ordinary ISNs and with both ISNs just below 2^32, so every offset
 * crosses the wrap.
 */
import { describe, it, expect } from 'vitest';
import {
  Harness, Client, Server, FakeOracle, connect, inBytes, outBytes, outputFor, hasFlag, type Seg,
  CLIENT, SERVER, CPORT, SPORT, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN,
} from '../../support/gateway-harness.js';
import { emitTcpPacket } from '../../../src/wire/repr.js';
import { encodeTcpOptions } from '../../../src/wire/tcp-options.js';
import { seqAdd, type Seq } from '../../../src/wire/seq.js';
import { DropReason } from '../../../src/wrappers/contract.js';
import { northOf, recOf } from '../../../src/recovery/rebuild.js';

const toServer = (l: Seg[]) => l.filter((x) => x.dst === SERVER);
const toClient = (l: Seg[]) => l.filter((x) => x.dst === CLIENT);

/** A client segment with any numbers (what an attacker who knows the 4-tuple sends). */
function fromClient(seq: number, flags: number, o: { ack?: number; payload?: Buffer; window?: number; options?: Buffer; port?: number } = {}): Buffer {
  return emitTcpPacket({
    src: CLIENT, dst: SERVER, srcPort: o.port ?? CPORT, dstPort: SPORT, seq: seq >>> 0, ack: (o.ack ?? 0) >>> 0, flags,
    window: o.window ?? 502, options: o.options, payload: o.payload,
  });
}

/** A server segment with any numbers. */
function fromServer(seq: number, ack: number, flags: number, o: { payload?: Buffer; window?: number; port?: number } = {}): Buffer {
  return emitTcpPacket({
    src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: o.port ?? CPORT, seq: seq >>> 0, ack: ack >>> 0, flags,
    window: o.window ?? 1000, payload: o.payload,
  });
}

interface World { h: Harness; o: FakeOracle | null; c: Client; s: Server }

/** A protected connection with `input` client bytes exchanged (and their output acked). */
async function established(cIsn: number, sIsn: number, input: number, opts: { oracle?: FakeOracle | null; crashPolicy?: 'none' | 'rst' } = {}): Promise<World> {
  const o = opts.oracle === undefined ? new FakeOracle() : opts.oracle;
  const h = new Harness({ oracle: o, crashPolicy: opts.crashPolicy });
  const c = new Client({ isn: cIsn, ts: 1000 });
  const s = new Server({ isn: sIsn, ts: 500_000 });
  await connect(h, c, s);
  if (input > 0) {
    h.tun.inject(...c.write(input)).flush();
    await h.run(c, s);
  }
  expect(c.bytes().equals(outBytes(0, outputFor(input)))).toBe(true);
  return { h, o, c, s };
}

const ISNS: ReadonlyArray<readonly [string, Seq, Seq]> = [
  ['ordinary ISNs', 1000 as Seq, 5_000_000 as Seq],
  ['ISNs just below 2^32', 0xffffff00 as Seq, 0xfffffe80 as Seq],
];

for (const [label, C_ISN, S_ISN] of ISNS) {
  describe(`item 3: a SYN on a live tuple (${label})`, () => {
    it('another ISN on an established flow keeps the flow and its log; the next crash is masked and rebuilt byte-exact', async () => {
      const { h, o, c, s } = await established(C_ISN, S_ISN, 300);
      const f = h.flow();
      const id = f.logId;
      // The spoofed SYN: the real 4-tuple, another ISN.
      const spoofOpts = encodeTcpOptions({ mss: 1400, sackPermitted: true, wscale: 3 });
      const out = h.send(fromClient(C_ISN ^ 0x5a5a5a5a, TCP_SYN, { window: 29200, options: spoofOpts }));
      expect(toServer(out)).toHaveLength(1); // forwarded: the server answers with a challenge ACK
      expect(h.flow()).toBe(f);
      expect(f.state).toBe('ESTABLISHED');
      expect(f.clientIsn).toBe(C_ISN);
      expect(h.log.closed).not.toContain(id);
      expect(h.gw.south.stats.synOnEstablished).toBe(1);
      // The challenge ACK reaches the real client, which carries on.
      h.send(s.ackNow()).forEach((x) => c.receive(x));
      h.tun.inject(...c.write(5000)).flush();
      await h.run(c, s);
      expect(h.log.bytes(id).equals(inBytes(0, 5300))).toBe(true);
      expect(f.stable).toBe(5300);
      // The server dies: the connection is masked, not forgotten.
      h.now += 10;
      o!.emit('crashed');
      expect(recOf(f)?.phase).toBe('MASKED');
      // A SYN while masked reaches no one (the north wrapper drops it), the flow stays.
      expect(toServer(h.send(fromClient(C_ISN + 77, TCP_SYN, { options: spoofOpts })))).toHaveLength(0);
      expect(h.flow()).toBe(f);
      expect(h.gw.south.stats.synOnEstablished).toBe(2);
      toClient(h.drain()).forEach((x) => c.receive(x));
      // The new incarnation: rebuilt from the log, then more bytes, byte-exact both ways.
      const s2 = new Server({ isn: 0x31415926, ts: 9 });
      h.now += 100;
      o!.emit('listening');
      const syn = h.drain().find((x) => x.flags === TCP_SYN)!;
      expect(syn.seq).toBe(C_ISN);
      h.tun.inject(...s2.receive(syn)).flush();
      await h.run(c, s2);
      expect(recOf(f)).toBeNull();
      h.tun.inject(...c.write(700)).flush();
      await h.run(c, s2);
      expect(s2.bytes().equals(inBytes(0, 6000))).toBe(true);
      expect(c.bytes().equals(outBytes(0, outputFor(6000)))).toBe(true);
      expect(c.resets).toBe(0);
      expect(c.violations).toEqual([]);
    });

    it('a half-open flow keeps its SYN and remembers another; the SYN-ACK says which one the server took', async () => {
      for (const realFirst of [true, false]) {
        const h = new Harness();
        const c = new Client({ isn: C_ISN, ts: 1000 });
        const s = new Server({ isn: S_ISN, ts: 500_000 });
        const other = fromClient(C_ISN + 0x1000_0000, TCP_SYN, { window: 1000, options: encodeTcpOptions({ mss: 536 }) });
        const first = h.send(realFirst ? c.syn() : other);
        const second = h.send(realFirst ? other : c.syn());
        expect(toServer([...first, ...second])).toHaveLength(2); // both forwarded
        expect(h.gw.south.stats.synOnHalfOpen).toBe(1);
        expect(h.flow().state).toBe('SYN_SEEN');
        // The server answers the real one.
        const realSyn = [...first, ...second].find((x) => x.seq === C_ISN)!;
        h.tun.inject(s.synAck(realSyn)).flush();
        await h.run(c, s);
        const f = h.flow();
        expect(f.state).toBe('ESTABLISHED');
        expect(f.clientIsn).toBe(C_ISN);
        expect(f.clientSynOptions.equals(c.synOptions)).toBe(true);
        expect(f.clientSynWindow).toBe(c.synWindow);
        expect(h.log.opened[0]!.clientIsn).toBe(C_ISN);
        // And it is protected: its bytes are logged at the right offsets.
        h.tun.inject(...c.write(400)).flush();
        await h.run(c, s);
        expect(h.log.bytes(f.logId).equals(inBytes(0, 400))).toBe(true);
      }
    });

    it('a SYN-ACK answering neither SYN leaves the flow half-open (counted)', () => {
      const h = new Harness();
      const c = new Client({ isn: C_ISN, ts: 1000 });
      h.send(c.syn());
      h.send(fromServer(S_ISN, seqAdd(C_ISN, 12345), TCP_SYN | TCP_ACK));
      expect(h.flow().state).toBe('SYN_SEEN');
      expect(h.gw.south.stats.synAckMismatch).toBe(1);
    });

    it('a closed (lingering) flow is replaced by a new SYN: TIME_WAIT reuse by a real client still works', async () => {
      const { h, o, c, s } = await established(C_ISN, S_ISN, 200);
      const old = h.flow();
      // Both sides close; every FIN acked (the server's after the liveness verdict).
      h.tun.inject(...c.write(0, true)).flush();
      await h.run(c, s);
      h.tun.inject(s.fin()).flush();
      o!.answer('alive');
      await h.run(c, s);
      expect(old.state).toBe('CLOSED');
      // The client reuses the tuple with a later ISN, inside the linger.
      const c2 = new Client({ isn: seqAdd(C_ISN, 100_000), ts: 5000 });
      const s2 = new Server({ isn: seqAdd(S_ISN, 7), ts: 600_000 });
      await connect(h, c2, s2);
      const f = h.flow();
      expect(f).not.toBe(old);
      expect(f.clientIsn).toBe(c2.isn);
      expect(h.gw.south.stats.flowsReplaced).toBe(1);
      expect(h.log.closed).toContain(old.logId);
      h.tun.inject(...c2.write(300)).flush();
      await h.run(c2, s2);
      expect(h.log.bytes(f.logId).equals(inBytes(0, 300))).toBe(true);
    });
  });

  describe(`item 3: a RST counts only at its receiver's rcv_nxt (${label})`, () => {
    it('a client RST in the window but not at the server\'s rcv_nxt is forwarded and the flow kept; one at rcv_nxt closes it', async () => {
      const { h, c } = await established(C_ISN, S_ISN, 300);
      const f = h.flow();
      expect([f.delivered, f.received]).toEqual([300, 300]); // quiescent: rcv_nxt is known exactly
      const out = h.send(fromClient(c.seq(300 + 100), TCP_RST));
      expect(toServer(out)).toHaveLength(1); // the server answers it with a challenge ACK
      expect(f.state).toBe('ESTABLISHED');
      expect(h.gw.south.stats.clientRstIgnored).toBe(1);
      expect(h.gw.south.stats.flowsReset).toBe(0);
      h.send(fromClient(c.seq(299), TCP_RST));
      expect(f.state).toBe('ESTABLISHED');
      h.send(fromClient(c.seq(300), TCP_RST));
      expect(f.state).toBe('CLOSED');
      expect(h.gw.south.stats.flowsReset).toBe(1);
    });

    it('a server RST outside [cliAcked, sndMax] is dropped: no verdict hold, no crash; one at sndMax is held', async () => {
      const { h, c, s } = await established(C_ISN, S_ISN, 300);
      const f = h.flow();
      const OUT = outputFor(300);
      expect([f.cliAcked, f.sndMax]).toEqual([OUT, OUT]);
      expect(h.send(fromServer(c.outSeq(OUT + 5000), c.seq(300), TCP_RST | TCP_ACK))).toHaveLength(0);
      expect(northOf(f).verdictHold).toBeNull();
      expect(h.gw.masking.stats.held).toBe(0);
      expect(f.state).toBe('ESTABLISHED');
      expect(h.gw.south.stats.serverRstIgnored).toBe(1);
      expect(h.gw.wrapperDrops.get(DropReason.SERVER_RST_OUT_OF_WINDOW)).toBe(1);
      // At the client's rcv_nxt: held for the verdict as before.
      expect(h.send(fromServer(s.seq(s.sndNxt), c.seq(300), TCP_RST | TCP_ACK))).toHaveLength(0);
      expect(h.gw.masking.stats.held).toBe(1);
    });

    it('under --assume-crash-on rst an out-of-window server RST marks no crash', async () => {
      const { h, c } = await established(C_ISN, S_ISN, 300, { oracle: null, crashPolicy: 'rst' });
      const f = h.flow();
      h.send(fromServer(c.outSeq(f.sndMax + 0x4000_0000), 0, TCP_RST));
      expect(h.gw.north.stats.crashes).toBe(0);
      expect(recOf(f)).toBeNull();
      h.send(fromServer(c.outSeq(f.sndMax), 0, TCP_RST));
      expect(h.gw.north.stats.crashes).toBe(1);
    });
  });

  describe(`item 4: out-of-window segments move nothing (${label})`, () => {
    it('a spoofed out-of-window server FIN on a 35-byte flow: delivered, sndMax, FIN state, state unchanged, nothing held', async () => {
      const { h, c } = await established(C_ISN, S_ISN, 35);
      const f = h.flow();
      const before = { delivered: f.delivered, sndMax: f.sndMax, high: f.high, received: f.received, cliAcked: f.cliAcked };
      expect(before).toEqual({ delivered: 35, sndMax: 0, high: 35, received: 35, cliAcked: 0 });
      // The packet: a FIN 1.5e9 ahead, acking 24.9 M bytes the client never sent.
      const spoof = h.send(fromServer(c.outSeq(1_500_000_000), c.seq(24_900_000), TCP_FIN | TCP_ACK));
      // Held for the verdict, a FIN is judged 'alive' when the server lives (it does): released.
      if (h.oracle!.asked.length > 0) h.oracle!.answer('alive');
      await h.settle();
      expect({ delivered: f.delivered, sndMax: f.sndMax, high: f.high, received: f.received, cliAcked: f.cliAcked }).toEqual(before);
      expect([f.serverFin, f.state, f.heldFin, northOf(f).verdictHold]).toEqual([-1, 'ESTABLISHED', null, null]);
      expect(spoof).toHaveLength(0); // dropped: it acks bytes the client never sent
      expect(h.gw.south.stats.serverAckUnsent).toBe(1);
      expect(h.gw.wrapperDrops.get(DropReason.SERVER_ACK_UNSENT)).toBe(1);
      // The same with an ack the client could have had: forwarded (the client drops it), ignored here.
      expect(toClient(h.send(fromServer(c.outSeq(1_500_000_000), c.seq(35), TCP_FIN | TCP_ACK)))).toHaveLength(1);
      // Data out of the window, and a FIN before what the client acked: likewise.
      h.send(fromServer(c.outSeq(0x7000_0000), c.seq(35), TCP_ACK | TCP_PSH, { payload: Buffer.alloc(100, 0x58) }));
      h.send(fromServer(c.outSeq(-0x3000_0000), c.seq(35), TCP_FIN | TCP_ACK));
      expect({ delivered: f.delivered, sndMax: f.sndMax, high: f.high, received: f.received, cliAcked: f.cliAcked }).toEqual(before);
      expect([f.serverFin, f.state, f.heldFin, northOf(f).verdictHold]).toEqual([-1, 'ESTABLISHED', null, null]);
      expect(h.gw.masking.stats.held).toBe(0);
      expect(h.gw.south.stats.finsHeld).toBe(0);
      expect(h.gw.south.stats.serverOutOfWindow).toBe(1);
      expect(h.gw.south.stats.serverFinIgnored).toBe(2);
    });

    it('an out-of-window server segment whose ack is beyond stable reaches the client with its ack lowered to stable', async () => {
      const { h, c, s } = await established(C_ISN, S_ISN, 300);
      h.autoStable = false;
      h.tun.inject(...c.write(500)).flush();
      await h.run(c, null); // logged, not stable yet
      const f = h.flow();
      expect(f.stable).toBe(300);
      const out = toClient(h.send(fromServer(c.outSeq(f.sndMax + 0x1000_0000), c.seq(800), TCP_ACK | TCP_PSH, { payload: Buffer.alloc(10, 1) })));
      expect(out).toHaveLength(1);
      expect(out[0]!.ack).toBe(c.seq(300));
      expect(f.delivered).toBe(300);
      // A pure ACK out of the window beyond stable: dropped (it would move nothing).
      expect(h.send(fromServer(c.outSeq(f.sndMax + 0x1000_0000), c.seq(800), TCP_ACK))).toHaveLength(0);
      void s;
    });

    it('client data and FIN past the server\'s window are not logged and move nothing; a segment starting inside it is logged whole', async () => {
      const { h, c, s } = await established(C_ISN, S_ISN, 300);
      const f = h.flow();
      const edge = f.rightEdge;
      expect(edge).toBe(300 + 1000 * 2 ** 7);
      const appends = h.log.appends.length;
      // Far past the edge (a forged segment, or a FIN out of the window: issue 11 item 2).
      h.send(fromClient(c.seq(edge + 5000), TCP_ACK | TCP_PSH, { ack: c.outSeq(f.cliAcked), payload: Buffer.alloc(100, 0x58) }));
      h.send(fromClient(c.seq(edge + 5000), TCP_ACK | TCP_FIN, { ack: c.outSeq(f.cliAcked) }));
      expect(h.log.appends.length).toBe(appends);
      expect(h.log.fins).toHaveLength(0);
      expect(h.gw.south.stats.clientOutOfWindow).toBe(2);
      // Straddling the edge: logged whole, as the server takes it (a segment that starts in its
      // window is queued whole: Linux tcp_data_queue; trimmed, the log kept a gap the server
      // had acked past, and an upload stalled for good).
      h.send(fromClient(c.seq(edge - 50), TCP_ACK | TCP_PSH, { ack: c.outSeq(f.cliAcked), payload: Buffer.alloc(100, 0x59) }));
      const last = h.log.appends[h.log.appends.length - 1]!;
      expect([last.offset, last.offset + last.data.length]).toEqual([edge - 50, edge + 50]);
      expect(f.high).toBe(edge + 50);
      expect([f.received, f.clientFin, f.state]).toEqual([300, -1, 'ESTABLISHED']);
      // A FIN before bytes already forwarded gap-free: an old or forged one, not the stream's end.
      h.autoStable = false;
      h.send(fromClient(c.seq(300), TCP_ACK | TCP_PSH | TCP_FIN, { ack: c.outSeq(f.cliAcked), payload: inBytes(300, 400) }));
      expect(h.log.fins).toHaveLength(1); // this one is at 400 ≥ received: the stream's end
      expect(f.clientFin).toBe(400);
      h.send(fromClient(c.seq(350), TCP_ACK | TCP_FIN, { ack: c.outSeq(f.cliAcked) }));
      expect(h.log.fins).toHaveLength(1);
      expect(f.clientFin).toBe(400);
      expect(h.gw.south.stats.clientFinIgnored).toBe(1);
      void s;
    });

    it('a client ACK beyond what the server sent does not move cliAcked; a segment far behind the window moves nothing', async () => {
      const { h, c } = await established(C_ISN, S_ISN, 300);
      const f = h.flow();
      const OUT = outputFor(300);
      h.send(fromClient(c.seq(300), TCP_ACK, { ack: c.outSeq(OUT + 10_000) }));
      expect(f.cliAcked).toBe(OUT);
      // A retransmission sent before the gateway's last ack reached the client: old, but genuine.
      h.send(fromClient(c.seq(0), TCP_ACK | TCP_PSH, { ack: c.outSeq(OUT), payload: inBytes(0, 100) }));
      expect(h.gw.south.stats.clientOutOfWindow).toBe(0);
      h.send(fromClient(c.seq(300 - 0x2000_0000), TCP_ACK, { ack: c.outSeq(OUT), window: 0 }));
      expect(f.cliWindow).not.toBe(0);
      expect(h.gw.south.stats.clientOutOfWindow).toBe(1);
    });
  });
}

describe('item 5: leaks', () => {
  it('a log open that resolves after its flow was released closes the log connection and binds nothing (1,000 of 1,000)', async () => {
    const h = new Harness();
    const N = 1000;
    for (let i = 0; i < N; i++) {
      const port = 20000 + i;
      const c = new Client({ isn: 1000 + i * 7919, ts: 1000, port });
      const s = new Server({ isn: 9000 + i, ts: 5 });
      // Handshake, a RST at the server's rcv_nxt, the tuple reused: all before the open resolves.
      const syn = h.send(c.syn()).find((x) => hasFlag(x, TCP_SYN))!;
      h.send(s.synAck(syn)).forEach((x) => c.receive(x));
      h.send(fromClient(c.seq(0), TCP_ACK, { ack: c.outSeq(0), port }));
      h.send(fromClient(c.seq(0), TCP_RST, { port }));
      h.send(fromClient(c.isn + 0x1000_0000, TCP_SYN, { port }));
    }
    const opened = h.log.opened.length;
    expect(opened).toBe(N);
    await h.settle();
    const ids = Array.from({ length: N }, (_, i) => i + 1);
    expect(ids.filter((id) => h.gw.table.byLog(id) !== undefined)).toHaveLength(0);
    expect(ids.filter((id) => h.log.closed.includes(id))).toHaveLength(N);
    expect(h.gw.south.stats.logOpenOrphans).toBe(N);
    expect(h.gw.table.size).toBe(N); // the N new half-open flows
  });

  it('a flow released while its rebuild had failed leaves the recovering count then, and its log is closed once', async () => {
    const o = new FakeOracle();
    const h = new Harness({ oracle: o, north: { maskDeadlineMs: 1000 } });
    const c = new Client({ isn: 1000, ts: 1000 });
    const s = new Server({ isn: 5000, ts: 5 });
    await connect(h, c, s);
    h.tun.inject(...c.write(300)).flush();
    await h.run(c, s);
    const f = h.flow();
    const id = f.logId;
    o.emit('crashed');
    expect(h.gw.north.recovering).toBe(1);
    toClient(h.tick(1500)).forEach((x) => c.receive(x)); // the service never came back: FAILED, one RST
    expect(recOf(f)?.phase).toBe('FAILED');
    expect(f.state).toBe('CLOSED');
    // The linger ends before the FAILED rebuild's own 10 s: the sweep releases the flow.
    h.now += 200;
    h.gw.south.sweep();
    expect(h.gw.table.size).toBe(0);
    expect(h.gw.north.recovering).toBe(0);
    expect(h.gw.north.stats.recoveriesForgotten).toBe(1);
    // The client reconnects on the same tuple; the old rebuild's 10 s pass: nothing touches the new flow or closes a log twice.
    const c2 = new Client({ isn: 777_777, ts: 9000 });
    const s2 = new Server({ isn: 123, ts: 5 });
    h.tun.inject(c2.syn()).flush();
    await h.run(c2, s2);
    h.tick(11_000);
    expect(h.log.closed.filter((x) => x === id)).toHaveLength(1);
    const f2 = h.flow();
    expect(f2).not.toBe(f);
    expect(f2.state).toBe('ESTABLISHED');
  });
});

describe('fuzz findings in the south wrapper (issue 11)', () => {
  it('a client segment with both SYN and RST is judged as a RST (its receiver checks RST first): at rcv_nxt it ends the flow', async () => {
    const { h } = await established(1000, 5_000_000, 300);
    const f = h.flow();
    h.send(fromClient(1000 + 1 + 300, TCP_SYN | TCP_RST));
    expect(f.state).toBe('CLOSED');
    expect(h.gw.south.stats.synOnEstablished).toBe(0);
  });

  it('a server segment with both SYN and RST outside what the client accepts changes nothing and is not forwarded as a SYN', async () => {
    const { h } = await established(1000, 5_000_000, 300);
    const f = h.flow();
    const out = h.send(fromServer(5_000_000 + 50_000_000, 1000 + 1 + 300, TCP_SYN | TCP_RST | TCP_ACK));
    expect(toClient(out)).toHaveLength(0);
    expect(f.state).toBe('ESTABLISHED');
  });

  it('a held ACK older than what the client was already acked is dropped, never sent (complete is never lowered)', async () => {
    const { h, c } = await established(1000, 5_000_000, 300);
    const f = h.flow();
    // A held pure-ACK template for 400, while later segments already carried 420 to the client.
    f.held = Buffer.from(fromServer(5_000_000 + 1, 1000 + 1 + 400, TCP_ACK));
    f.heldLen = f.held.length;
    f.heldAck = 400;
    f.complete = 420;
    const before = c.resets;
    h.gw.onStable(f.logId, 430);
    const out = toClient(h.drain());
    expect(out.filter((x) => x.ack !== undefined && ((x.ack - (1000 + 1)) >>> 0) < 420)).toHaveLength(0);
    expect(f.complete).toBe(420);
    expect(f.held).toBeNull();
    expect(c.resets).toBe(before);
  });

  it('a client FIN ahead of a gap is not taken (the server holds it out of order too); in order it is', async () => {
    const { h } = await established(1000, 5_000_000, 300);
    const f = h.flow();
    h.send(fromClient(1000 + 1 + 400, TCP_FIN | TCP_ACK, { ack: 5_000_000 + 1 }));
    expect(f.clientFin).toBe(-1);
    expect(h.log.fins).toHaveLength(0);
    expect(f.state).toBe('ESTABLISHED');
    h.send(fromClient(1000 + 1 + 300, TCP_FIN | TCP_ACK, { ack: 5_000_000 + 1 }));
    expect(f.clientFin).toBe(300);
    expect(f.state).toBe('CLOSING');
  });

  it('a server SYN on a synchronized flow passes only as a retransmitted SYN-ACK; another (an ack past stable) is dropped', async () => {
    const { h } = await established(1000, 5_000_000, 300);
    const f = h.flow();
    // The SYN-ACK again (the server missed the client's ACK): the client answers it.
    expect(toClient(h.send(fromServer(5_000_000, 1000 + 1, TCP_SYN | TCP_ACK)))).toHaveLength(1);
    // A SYN-ACK acking client bytes the log does not hold stably: its ack went out unjudged.
    f.high += 100;
    const out = toClient(h.send(fromServer(5_000_000, 1000 + 1 + 350, TCP_SYN | TCP_ACK)));
    expect(out).toHaveLength(0);
    expect(h.gw.south.stats.serverSynDropped).toBe(1);
    expect(h.gw.wrapperDrops.get(DropReason.SERVER_SYN)).toBe(1);
  });

  it('a stable advance never lowers received (a FIN recorded below it)', async () => {
    const { h } = await established(1000, 5_000_000, 300);
    const f = h.flow();
    f.clientFin = f.received - 10;
    const r = f.received;
    h.gw.onStable(f.logId, f.stable + 5);
    expect(f.received).toBeGreaterThanOrEqual(r);
  });
});
