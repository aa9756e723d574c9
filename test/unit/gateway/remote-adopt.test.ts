/**
 * A gateway on a log server (RemoteLog over the simulated link, the LogServer in process),
 * driven through the fake TUN (test/support/gateway-harness.ts):
 *  * restarted, it claims the log before it adopts (the old gateway's epoch is over), then
 *    adopts an established connection and one rebuilt (translated) before, both carried on
 *    byte-exact;
 *  * fenced (another gateway claimed the log), it drops every protected packet (FENCED) and
 *    sends its client no ack; status and /metrics say so.
 * The log's stability comes from the server over the link, in virtual time stepped in the
 * background (RemoteWorld) while the harness routes segments.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  GatewayRig, Client, Server, FakeOracle, inBytes, outBytes, outputFor, connect,
  CPORT, TCP_SYN,
} from '../../support/gateway-harness.js';
import { RemoteWorld, remoteHarness, runUntil } from '../../support/remote-log.js';
import { MemoryLog } from '../../../src/log/memory.js';
import { DropReason } from '../../../src/wrappers/contract.js';
import { recOf, xlateOf } from '../../../src/recovery/rebuild.js';
import type { Seq } from '../../../src/wire/seq.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});



describe('a gateway on a log server', () => {
  it('restarted: claims the log before adopting, then carries on an established and a translated connection byte-exact; the old gateway is fenced', async () => {
    const w = new RemoteWorld(new MemoryLog());
    cleanups.push(() => w.shutdown());
    const stop = w.background();
    cleanups.push(stop);
    const log1 = w.gateway();
    const o1 = new FakeOracle();
    const h1 = remoteHarness(log1, o1);
    await w.settle(h1.gw.claim());
    expect(h1.gw.epoch).toBe(1);

    // Connection 1 through gateway 1, then the server crashes and it is rebuilt (translated).
    const c1 = new Client({ isn: 0xfffff000 as Seq, ts: 1000 });
    const s1 = new Server({ isn: 0x80000001 as Seq, ts: 500_000 });
    await connect(h1, c1, s1);
    h1.tun.inject(...c1.write(2000)).flush();
    await runUntil(h1, c1, s1, () => c1.maxAck === 2000, 'c1 acked');
    h1.now += 10;
    o1.emit('crashed');
    await runUntil(h1, c1, null, () => recOf(h1.flowOf(CPORT)) !== null, 'masked');
    h1.now += 100;
    o1.emit('listening');
    const syn = h1.drain().find((x) => x.flags === TCP_SYN)!;
    expect(syn).toBeDefined();
    const s1b = new Server({ isn: 0x0c0ffee0 as Seq, ts: 77 });
    h1.tun.inject(...s1b.receive(syn)).flush();
    await runUntil(h1, c1, s1b, () => recOf(h1.flowOf(CPORT)) === null && xlateOf(h1.flowOf(CPORT)) !== null, 'c1 rebuilt');
    h1.tun.inject(...c1.write(500)).flush();
    await runUntil(h1, c1, s1b, () => c1.maxAck === 2500, 'c1 after the rebuild');
    // Connection 2, opened with the new incarnation: established, untranslated.
    const c2 = new Client({ isn: 0x1234 as Seq, ts: 3000, port: CPORT + 1 });
    const s2 = new Server({ isn: 0x5678 as Seq, ts: 9000 });
    await connect(h1, c2, s2);
    h1.tun.inject(...c2.write(1500)).flush();
    await runUntil(h1, c2, s2, () => c2.maxAck === 1500, 'c2 acked');

    // Gateway 2 starts on the same log server (gateway 1 is not dead: it must be fenced).
    const log2 = w.gateway();
    const calls: string[] = [];
    const claim = log2.claim.bind(log2);
    log2.claim = () => (calls.push('claim'), claim());
    const list = log2.fetchActive.bind(log2);
    log2.fetchActive = (o) => (calls.push('list'), list(o));
    const h2 = remoteHarness(log2, new FakeOracle());
    h2.now = h1.now + 500;
    const adopted = await h2.gw.adopt();
    expect(calls).toEqual(['claim', 'list']);
    expect(h2.gw.epoch).toBe(2);
    expect(w.server.epochs.holder).toBe(w.bootOf(log2));
    expect(adopted).toMatchObject({ source: 'log server', adopted: 2, translated: 1, rebuilding: 0 });

    // Gateway 1 hears of it; what its clients send now gets no ack from it.
    await w.until(() => h1.gw.fenced !== null, 2000, 'gateway 1 fenced');
    expect(h1.gw.fenced).toMatchObject({ epoch: 2 });
    h1.drain();
    const before = h1.toClientLog.length;
    const more1 = c1.write(300);
    // Client data both connections, and server segments toward both clients (an ack each).
    expect(h1.send(...more1, c2.write(200)[0]!, s1b.ackNow(), s2.ackNow())).toEqual([]);
    expect(h1.toClientLog.length).toBe(before);
    expect(h1.gw.wrapperDrops.get(DropReason.FENCED)).toBe(more1.length + 3);
    expect(h1.gw.snapshot()).toMatchObject({ epoch: 1, fenced: { epoch: 2 } });
    expect(h1.gw.metrics()).toContain('ftcp_fenced 1');
    expect(h1.gw.metrics()).toContain('ftcp_drops_total{reason="FENCED"}');
    expect(h2.gw.metrics()).toContain('ftcp_fenced 0');

    // Gateway 2 carries both on (the clients retransmit what gateway 1 did not ack).
    c1.sent = c1.maxAck;
    c2.sent = c2.maxAck;
    h2.tun.inject(...c1.write(300), ...c2.write(700)).flush();
    await runUntil(h2, [c1, c2], [s1b, s2], () => c1.maxAck === 2800 && c2.maxAck === 2200, 'both acked through gateway 2');
    h2.tun.inject(s1b.ackNow(), s2.ackNow()).flush();
    h2.tun.inject(...c1.write(1000), ...c2.write(1000)).flush();
    await runUntil(h2, [c1, c2], [s1b, s2], () => c1.maxAck === 3800 && c2.maxAck === 3200, 'more through gateway 2');
    expect(s1b.bytes().equals(inBytes(0, c1.sent))).toBe(true);
    expect(s2.bytes().equals(inBytes(0, c2.sent))).toBe(true);
    expect(c1.bytes().equals(outBytes(0, outputFor(c1.sent)))).toBe(true);
    expect(c2.bytes().equals(outBytes(0, outputFor(c2.sent)))).toBe(true);
    expect(c1.resets + c2.resets).toBe(0);
    expect(c1.violations).toEqual([]);
    expect(c2.violations).toEqual([]);
    expect(h2.gw.wrapperDrops.get(DropReason.ADOPT_UNCHECKED)).toBe(0);
    // What the log server holds is what the clients sent.
    const got1 = await w.settle(log2.read(h2.flowOf(CPORT).logId, 0, c1.sent));
    expect(got1.equals(inBytes(0, c1.sent))).toBe(true);
  });

  it('fenced under --on-log-failure passthrough: nothing passes through (a fence is not a log failure)', async () => {
    const rig = new GatewayRig({ wiring: 'manual', gateway: { onLogFailure: 'passthrough' } });
    const c = new Client({ isn: 77 as Seq, ts: 1 });
    rig.tun.inject(c.syn()).flush();
    await rig.settle();
    expect(rig.gw.table.size).toBe(1);
    rig.gw.onLogStatus('FAILED', { fenced: 3 });
    expect(rig.gw.south.passthrough).toBe(false);
    expect(rig.gw.unprotected.size).toBe(0);
    expect(rig.gw.logFailures).toBe(0);
    rig.tun.drain();
    rig.tun.inject(...c.write(100)).flush();
    expect(rig.tun.drain()).toEqual([]);
    expect(rig.gw.wrapperDrops.get(DropReason.FENCED)).toBe(1);
  });
});
