/**
 * A standby pair on one log server (RemoteLog over the simulated link, the LogServer in
 * process: test/support/remote-log.ts), through the fake TUN: the primary claims the log and
 * carries a connection; the standby follows the server's list, drops the client's segments,
 * takes over (its claim fences the primary at the server), re-attaches the connection by a
 * re-registration and carries it on byte-exact. The log's stability comes from the server,
 * in virtual time stepped in the background while the harness routes segments.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayRig, Client, Server, FakeOracle, inBytes, outBytes, outputFor, connect, type Harness } from '../../support/gateway-harness.js';
import { RemoteWorld, remoteHarness, runUntil } from '../../support/remote-log.js';
import { testLogger } from '../../support/test-logger.js';
import { C_ISN, S_ISN, resend, expectAcksStable } from '../../support/adoption.js';
import { MemoryLog } from '../../../src/log/memory.js';
import { DropReason } from '../../../src/wrappers/contract.js';
import { Standby } from '../../../src/gateway/standby.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});



/** One connection through gateway `h`, 1500 bytes acked (stable at the log server). */
async function carrying(h: Harness): Promise<{ c: Client; s: Server }> {
  const c = new Client({ isn: C_ISN, ts: 1000 });
  const s = new Server({ isn: S_ISN, ts: 500_000 });
  await connect(h, c, s);
  h.tun.inject(...c.write(1500)).flush();
  await runUntil(h, c, s, () => c.maxAck === 1500, 'the gateway acks what is stable');
  return { c, s };
}

/** A primary (log1, h1: claimed epoch 1) carrying a connection, and a standby (log2, h, sb) on the same log server. */
async function pair(w: RemoteWorld) {
  const log1 = w.gateway();
  const h1 = remoteHarness(log1);
  expect(await h1.gw.claim()).toBe(1);
  const { c, s } = await carrying(h1);
  const log2 = w.gateway();
  const h = remoteHarness(log2);
  h.now = h1.now + 500;
  const sb = new Standby(h.gw, log2, { logger: testLogger(), clock: () => h.now });
  return { log1, h1, c, s, log2, h, sb };
}

/** The client sends again what `h` did not ack, then more: all acked once stable, byte-exact at the server. */
async function carriesOnThrough(h: Harness, c: Client, s: Server): Promise<void> {
  h.tun.inject(...resend(c), s.ackNow()).flush();
  await runUntil(h, c, s, () => c.maxAck === c.sent, 'acked once stable');
  h.tun.inject(...c.write(300)).flush();
  await runUntil(h, c, s, () => c.maxAck === c.sent && c.rcvNxt === outputFor(c.sent), 'carried on');
  expect(s.bytes().equals(inBytes(0, c.sent))).toBe(true);
  expect(c.resets).toBe(0);
  expect(c.violations).toEqual([]);
  expectAcksStable(h, c);
}

describe('a standby pair on a log server', () => {
  it('the standby follows, drops, takes over (fencing the primary at the server) and carries the connection on byte-exact', async () => {
    const w = new RemoteWorld(new MemoryLog());
    cleanups.push(() => w.shutdown());
    const stop = w.background();
    cleanups.push(stop);

    const { log1, c, s, log2, h, sb } = await pair(w);
    await sb.refresh();
    expect(sb.follow).toMatchObject({ followed: 1, failures: 0 });
    const more = c.write(500); // the primary is gone: these reach the standby only
    expect(h.send(...more)).toEqual([]);
    expect(h.gw.wrapperDrops.get(DropReason.STANDBY)).toBe(more.length);

    const r = await sb.takeover();
    expect(r).toMatchObject({ role: 'active', epoch: 2, adopted: 1, already: false });
    await w.until(() => log1.fenced() !== null, 2000, 'the primary fenced');
    expect(log1.fenced()).toMatchObject({ epoch: 2 });

    h.tun.inject(...resend(c), s.ackNow()).flush();
    await runUntil(h, c, s, () => c.maxAck === c.sent, 'the standby acks all once stable');
    h.tun.inject(...c.write(300)).flush();
    await runUntil(h, c, s, () => c.maxAck === c.sent && c.rcvNxt === outputFor(c.sent), 'carried on');
    expect(s.bytes().equals(inBytes(0, c.sent))).toBe(true);
    expect(c.bytes().equals(outBytes(0, outputFor(c.sent)))).toBe(true);
    expect(c.resets).toBe(0);
    expect(c.violations).toEqual([]);
    expectAcksStable(h, c);
  });

  it('a standby started on a claimed log server is not fenced by it (it registers its services only at its takeover)', async () => {
    const w = new RemoteWorld(new MemoryLog());
    cleanups.push(() => w.shutdown());
    const stop = w.background();
    cleanups.push(stop);
    const primary = remoteHarness(w.gateway());
    expect(await primary.gw.claim()).toBe(1);
    const log2 = w.gateway();
    const rig = new GatewayRig({ log: log2, wiring: 'none' });
    const sb = new Standby(rig.gw, log2, { logger: testLogger() });
    rig.gw.start();
    cleanups.push(() => rig.gw.stop());
    await sb.refresh();
    for (let i = 0; i < 100; i++) await w.step(); // 200 ms of the link: a refusal would have come
    expect(log2.fenced()).toBeNull();
    expect(rig.gw.role).toBe('standby');
    expect(w.server.epochs.counters.fencedWrites).toBe(0);
    expect(await sb.takeover()).toMatchObject({ role: 'active', epoch: 2 });
    expect(rig.gw.role).toBe('active');
  });

  it('take over, release, take over again in one process: one local log connection per server id, STABLE reaches the adopted flow, nothing left behind', async () => {
    const store = new MemoryLog();
    const w = new RemoteWorld(store);
    cleanups.push(() => w.shutdown());
    cleanups.push(w.background());
    const { c, s, log2, h, sb } = await pair(w);
    expect(await sb.takeover()).toMatchObject({ role: 'active', adopted: 1 });
    h.tun.inject(...resend(c), s.ackNow()).flush();
    await runUntil(h, c, s, () => c.maxAck === c.sent, 'acked after the first takeover');
    expect(log2.linkStats().client).toMatchObject({ connections: 1, forgotten: 0 });

    // Bytes the released gateway received but the server never made stable: the client sends them again.
    w.sims[1]!.dropIf = () => true;
    h.tun.inject(...c.write(400)).flush();
    await h.run(c, s);
    expect(log2.linkStats().client.pendingBytes).toBeGreaterThan(0);
    expect(sb.release()).toMatchObject({ role: 'standby', left: 1 });
    expect(log2.linkStats().client).toMatchObject({ connections: 0, forgotten: 1, pendingBytes: 0 });
    w.sims[1]!.dropIf = null;
    for (let i = 0; i < 300; i++) await w.step(); // 600 ms of the link: a resync, a retry, a late close would show
    expect(store.listActive()).toHaveLength(1); // still open at the server, for whichever gateway takes over

    expect(await sb.takeover()).toMatchObject({ role: 'active', adopted: 1, already: false });
    expect(log2.linkStats().client).toMatchObject({ connections: 1 });
    log2.handlers.onLost([1], 'resync'); // every connection registers again: the stale one would win the server id back
    await carriesOnThrough(h, c, s); // STABLE reaches the adopted flow: the gateway acks
    expect(log2.linkStats().client).toMatchObject({ connections: 1, forgotten: 1 });
    expect(store.listActive()).toHaveLength(1);
  });

  it('fenced: its connections leave the flow table and the log client (not the log server); its next takeover adopts each once', async () => {
    const store = new MemoryLog();
    const w = new RemoteWorld(store);
    cleanups.push(() => w.shutdown());
    cleanups.push(w.background());
    const log1 = w.gateway();
    const h1 = remoteHarness(log1);
    const sb1 = new Standby(h1.gw, log1, { logger: testLogger(), clock: () => h1.now });
    expect(await sb1.takeover()).toMatchObject({ role: 'active', epoch: 1 });
    const { c, s } = await carrying(h1);
    expect(log1.linkStats().client).toMatchObject({ connections: 1 });

    const h2 = remoteHarness(w.gateway());
    expect(await h2.gw.claim()).toBe(2);
    await w.until(() => h1.gw.fenced !== null, 2000, 'gateway 1 fenced');
    expect(h1.gw.table.size).toBe(0);
    expect(log1.linkStats().client).toMatchObject({ connections: 0, forgotten: 1, pendingBytes: 0 });
    expect(store.listActive()).toHaveLength(1);

    const r = await sb1.takeover(); // keepalived gives the addresses back
    expect(r).toMatchObject({ role: 'active', epoch: 3, adopted: 1, already: false });
    expect(log1.linkStats().client).toMatchObject({ connections: 1 });
    h1.now += 500;
    await carriesOnThrough(h1, c, s);
  });

  it('released right after a takeover, the adopted connections\' re-registrations still on their way: they stay open at the log server', async () => {
    const store = new MemoryLog();
    const w = new RemoteWorld(store);
    cleanups.push(() => w.shutdown());
    const stop = w.background();
    const { log2, h, sb } = await pair(w);
    await stop(); // from here the link moves only when the test steps it
    expect(await w.settle(sb.takeover())).toMatchObject({ adopted: 1 });
    expect(log2.linkStats().client).toMatchObject({ connections: 1, requests: 1 }); // its open, unanswered
    expect(sb.release()).toMatchObject({ left: 1 });
    for (let i = 0; i < 300; i++) await w.step(); // the open's answer, retries: 600 ms of the link
    expect(store.listActive()).toHaveLength(1);
    expect(store.listActive()[0]!.stable).toBe(1500);
    expect(h.gw.south.stats.logOpenOrphans).toBe(1); // its answer found the flow gone, and closed nothing
    expect(log2.linkStats().client).toMatchObject({ connections: 0, forgotten: 1 });

    // The primary (still the holder: a release gives nothing up) or anyone taking over finds it.
    expect(await w.settle(sb.takeover())).toMatchObject({ adopted: 1 });
    await w.until(() => log2.linkStats().client.requests === 0, 2000, 're-registered');
    expect(log2.linkStats().client).toMatchObject({ connections: 1 });
  });
});
