/**
 * Adoption (src/gateway/adopt.ts): a gateway started on the log a dead gateway left carries
 * every open connection on, whatever state it was in — established (bytes received but not
 * stable when it died), masked, in the rebuild's handshake, in its replay, live after a rebuild
 * with translation — byte-exact, with the client and the server scripted as the harness does
 * (the client retransmits what was not acked; the server's next segments). A server crash right
 * after the adoption is recovered from the log as usual. The first segments of an adopted
 * connection are checked (a forged one is dropped and counted), and no ack beyond the stable
 * point reaches the client at any time (checked on every segment).
 */
import { describe, it, expect } from 'vitest';
import { Server, seg, inBytes, SERVER, CPORT, TCP_ACK, TCP_RST } from '../../support/gateway-harness.js';
import { DropReason } from '../../../src/wrappers/contract.js';
import { recOf, xlateOf } from '../../../src/recovery/rebuild.js';
import {
  IN0, S_ISN, S2_ISN, S3_ISN, resend, expectAcksStable, opened, restart, crashOn, synOn, carriesOn, crashAndRebuild, rebuiltBy,
} from '../../support/adoption.js';

describe('a restarted gateway adopts every open connection from the log', () => {
  it('established, with bytes received but not stable when the old one died: the client resends them, the server is learnt, byte-exact, then a server crash is recovered', async () => {
    const { h: h1, c, s } = await opened();
    // 700 more bytes reach the server through gateway 1, which dies before the log makes them stable.
    h1.autoStable = false;
    h1.tun.inject(...c.write(700)).flush();
    await h1.run(c, s);
    expect(s.rcvNxt).toBe(IN0 + 700);
    expect(c.maxAck).toBe(IN0); // acked ⇒ stable: the client was told no more

    const { h, o } = await restart(h1);
    expect(h.gw.adoption).toMatchObject({ source: 'log', adopted: 1, translated: 0, rebuilding: 0, unverified: 1 });
    const f = h.flow();
    expect(f).toMatchObject({ state: 'ESTABLISHED', stable: IN0, received: IN0, adopting: 3, logId: h1.flow().logId });
    expect(h.gw.snapshot().flows).toMatchObject([{ verified: false }]);

    // The client's retransmission is checked and teaches its numbers; the server's next ACK the server's.
    h.tun.inject(...resend(c), s.ackNow()).flush();
    await h.run(c, s);
    expect(h.gw.south.stats).toMatchObject({ adoptLearntClient: 1, adoptLearntServer: 1, adoptUnchecked: 0, unknownFlows: 0 });
    expect(c.maxAck).toBe(IN0 + 700);
    await carriesOn(h, c, s);
    expect(h.log.bytes(f.logId).equals(inBytes(0, c.sent))).toBe(true);

    const s2 = await crashAndRebuild(h, o, c, S2_ISN);
    expect(recOf(h.flow())).toBeNull();
    await carriesOn(h, c, s2);
    expect(c.violations).toEqual([]);
    expectAcksStable(h, c);
  });

  it('masked when the old one died: masked again and rebuilt from the log at once, byte-exact', async () => {
    const { h: h1, o: o1, c } = await opened();
    crashOn(h1, o1, c);
    expect(h1.log.states.at(-1)!.state.phase).toBe('MASKED');
    h1.tun.inject(...c.write(400)).flush(); // logged while masked, stable, never seen by a server
    await h1.run(c, null);

    const { h } = await restart(h1);
    expect(h.gw.adoption).toMatchObject({ adopted: 1, rebuilding: 1 });
    expect(recOf(h.flow())?.phase).toBe('HANDSHAKE'); // the service is up: the rebuild began
    const s2 = new Server({ isn: S2_ISN, ts: 9, wscale: 9 });
    await rebuiltBy(h, c, h.drain(), s2);
    expect(s2.bytes().equals(inBytes(0, IN0 + 400))).toBe(true);
    await carriesOn(h, c, s2);
    expect(c.violations).toEqual([]);
    expectAcksStable(h, c);
  });

  it('in the rebuild\'s handshake when the old one died (its SYN unanswered): rebuilt by the new one, byte-exact', async () => {
    const { h: h1, o: o1, c } = await opened();
    crashOn(h1, o1, c);
    expect(synOn(h1, o1)).toBeDefined(); // unanswered: gateway 1 dies
    expect(h1.log.states.at(-1)!.state.phase).toBe('HANDSHAKE');

    const { h } = await restart(h1);
    expect(h.gw.adoption).toMatchObject({ adopted: 1, rebuilding: 1 });
    const s2 = new Server({ isn: S2_ISN, ts: 9 });
    await rebuiltBy(h, c, h.drain(), s2);
    await carriesOn(h, c, s2);
    expect(c.violations).toEqual([]);
    expectAcksStable(h, c);
  });

  it('in the replay when the old one died: the half-done incarnation\'s connection is reaped, a new one rebuilt, byte-exact', async () => {
    const { h: h1, o: o1, c } = await opened();
    crashOn(h1, o1, c);
    const half = new Server({ isn: S2_ISN, ts: 9 });
    h1.send(...half.receive(synOn(h1, o1))); // its SYN-ACK: REPLAY; the replay is lost with gateway 1
    await h1.settle();
    const rec = h1.log.states.at(-1)!.state;
    expect(rec.phase).toBe('REPLAY');
    expect(rec.incarnations).toHaveLength(1);

    const { h } = await restart(h1);
    expect(h.gw.adoption).toMatchObject({ adopted: 1, rebuilding: 1 });
    const out = h.drain();
    const rst = out.find((x) => x.dst === SERVER && x.flags & TCP_RST);
    expect(rst?.srcPort).toBe(CPORT); // step 1 reaps the half-done connection on its port
    const s3 = new Server({ isn: S3_ISN, ts: 3 });
    await rebuiltBy(h, c, out, s3);
    expect(xlateOf(h.flow())!.seqDelta).toBe((S_ISN - S3_ISN) >>> 0);
    await carriesOn(h, c, s3);
    expect(c.violations).toEqual([]);
    expectAcksStable(h, c);
  });

  it('live after a rebuild with translation: its segments are translated both ways, byte-exact; a server crash right after is recovered', async () => {
    const { h: h1, o: o1, c } = await opened();
    const s2 = await crashAndRebuild(h1, o1, c, S2_ISN);
    expect(h1.log.states.at(-1)!.state.phase).toBe('LIVE');

    const { h, o } = await restart(h1);
    expect(h.gw.adoption).toMatchObject({ adopted: 1, translated: 1, rebuilding: 0 });
    expect(xlateOf(h.flow())).not.toBeNull();
    await carriesOn(h, c, s2);
    expect(h.gw.south.stats.adoptLearntClient).toBe(1);
    expect(h.gw.wrapperDrops.get(DropReason.ADOPT_UNCHECKED)).toBe(0);

    const s3 = await crashAndRebuild(h, o, c, S3_ISN);
    await carriesOn(h, c, s3);
    expect(c.violations).toEqual([]);
    expectAcksStable(h, c);
    expect(h.log.states.at(-1)!.state.incarnations.map((x) => x.serverIsn)).toEqual([S2_ISN, S3_ISN]);
  });

  it('drops and counts a forged first segment, trusts nothing of it; the genuine ones pass', async () => {
    const { h: h1, c, s } = await opened();
    const { h } = await restart(h1);
    const f = h.flow();
    // A server-side segment acking far beyond anything the client sent.
    expect(h.send(seg({ fromClient: false, seq: s.seq(s.sndNxt), ack: c.seq(IN0 + 50_000_000), flags: TCP_ACK }))).toHaveLength(0);
    expect(f.adopting).toBe(3);
    h.tun.inject(s.ackNow()).flush(); // the genuine server: learnt
    await h.run(c, s);
    expect(f.adopting).toBe(1);
    // A client-side segment acking output the server never sent (beyond any window of it).
    expect(h.send(seg({ fromClient: true, seq: c.seq(IN0), ack: c.outSeq(s.sndNxt + 20_000_000), flags: TCP_ACK }))).toHaveLength(0);
    // One whose seq is nowhere near the stable point.
    expect(h.send(seg({ fromClient: true, seq: c.seq(IN0 + 40_000_000), ack: c.outSeq(s.sndNxt), flags: TCP_ACK }))).toHaveLength(0);
    expect(f.cliAcked).toBe(0);
    expect(f.adopting).toBe(1);
    expect(h.gw.wrapperDrops.get(DropReason.ADOPT_UNCHECKED)).toBe(3);
    expect(h.gw.south.stats.adoptUnchecked).toBe(3);
    expect(h.gw.snapshot().adoption).toMatchObject({ uncheckedDrops: 3, learnt: { client: 0, server: 1 } });
    expect(h.gw.metrics()).toContain('ftcp_drops_total{reason="ADOPT_UNCHECKED"} 3');
    await carriesOn(h, c, s);
    expect(f.adopting).toBe(0);
    expect(f.cliAcked).toBe(c.rcvNxt);
    expectAcksStable(h, c);
  });

  it('a connection the log does not know still passes as before, counted', async () => {
    const { h: h1 } = await opened();
    const { h } = await restart(h1);
    h.send(seg({ fromClient: true, port: CPORT + 1, seq: 5, ack: 7 }));
    expect(h.gw.south.stats.unknownFlows).toBe(1);
    expect(h.gw.table.size).toBe(1);
  });
});
