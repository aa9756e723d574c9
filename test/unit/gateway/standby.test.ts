/**
 * The warm standby and its takeover (src/gateway/standby.ts), through the fake TUN: a primary
 * gateway carries connections on a log; a standby on the same log (a second Harness, as the
 * log server would serve both) drops every protected packet and forwards none until its
 * takeover, then carries each connection on byte-exact, whatever state the primary left it in
 * (established, masked, translated). The takeover is idempotent and fails closed; a release
 * stops protected forwarding at once.
 */
import { describe, it, expect, vi } from 'vitest';
import { Harness, Server, seg, CPORT, SPORT, TCP_SYN } from '../../support/gateway-harness.js';
import { ManualLog } from '../../support/manual-log.js';
import { testLogger } from '../../support/test-logger.js';
import {
  IN0, S2_ISN, S3_ISN, resend, expectAcksStable, opened, crashOn, carriesOn, crashAndRebuild, rebuiltBy,
} from '../../support/adoption.js';
import { DropReason } from '../../../src/wrappers/contract.js';
import { xlateOf } from '../../../src/recovery/rebuild.js';
import { Standby } from '../../../src/gateway/standby.js';

/** A log server's epochs as the i14-fence interface gives them: each claim a higher one; `hold` keeps the next claim unanswered. */
class EpochLog extends ManualLog {
  epoch = 0;
  claims = 0;
  fail: Error | null = null;
  hold = false;
  private held: Array<() => void> = [];
  claim(): Promise<number> {
    this.claims++;
    if (this.fail !== null) return Promise.reject(this.fail);
    if (!this.hold) return Promise.resolve(++this.epoch);
    return new Promise((resolve) => this.held.push(() => resolve(++this.epoch)));
  }
  releaseClaims(): void {
    for (const r of this.held.splice(0)) r();
  }
}

/** The primary, with a connection opened through it on an EpochLog. */
async function primary(): Promise<Awaited<ReturnType<typeof opened>>> {
  return opened(new EpochLog());
}

/** A standby gateway on the primary's log (not active until its takeover). */
function standbyOn(h1: Harness): { h: Harness; sb: Standby; log: EpochLog } {
  const h = new Harness({ log: h1.log });
  h.now = h1.now + 500;
  const sb = new Standby(h.gw, h.log, { logger: testLogger(), clock: () => h.now });
  return { h, sb, log: h1.log as EpochLog };
}

/** A segment of an unprotected service (another port on the server). */
const unprotected = () => seg({ fromClient: true, port: CPORT + 7, dstPort: SPORT + 1, seq: 1, ack: 1 });

describe('a standby gateway', () => {
  it('drops every protected packet (STANDBY, counted) and forwards none, logs nothing, makes nothing; unprotected traffic passes', async () => {
    const { h: h1, c, s } = await primary();
    const { h, sb } = standbyOn(h1);
    expect(h.gw.role).toBe('standby');
    const appends = h.log.appends.length;
    // The client's retransmission, the server's ACK, a new connection's SYN: all dropped.
    const protectedPkts = [...resend(c), s.ackNow(), seg({ fromClient: true, port: CPORT + 1, flags: TCP_SYN, seq: 9 })];
    expect(h.send(...protectedPkts)).toEqual([]);
    expect(h.gw.wrapperDrops.get(DropReason.STANDBY)).toBe(protectedPkts.length);
    expect(h.gw.table.size).toBe(0);
    expect(h.log.appends.length).toBe(appends);
    expect(h.log.opened.length).toBe(1); // the primary's open only
    expect(h.tick(5000)).toEqual([]);
    // Unprotected traffic passes as it always does.
    expect(h.send(unprotected())).toHaveLength(1);
    expect(h.gw.stats.unprotectedTcp).toBe(1);
    expect(h.gw.wrapperDrops.get(DropReason.STANDBY)).toBe(protectedPkts.length);

    // Warm: it follows the log's open connections.
    await sb.refresh();
    expect(sb.follow).toMatchObject({ followed: 1, translated: 0, rebuilding: 0, refreshes: 1, failures: 0, lastRefreshAt: h.now });
    const st = h.gw.snapshot();
    expect(st).toMatchObject({ role: 'standby', standby: { phase: 'STANDBY', follow: { followed: 1 }, lastTakeover: null } });
    expect(st.drops).toMatchObject({ STANDBY: protectedPkts.length });
    expect(st.limits).toMatchObject({ standbyRefreshMs: 1000 });
    const m = h.gw.metrics();
    expect(m).toContain('ftcp_role{role="standby"} 1');
    expect(m).toContain('ftcp_role{role="active"} 0');
    expect(m).toContain('ftcp_standby_followed 1');
    expect(m).toContain(`ftcp_drops_total{reason="STANDBY"} ${protectedPkts.length}`);
  });

  it('lists again refreshMs after a list ends, never two at once (a slow list does not run back to back)', async () => {
    vi.useFakeTimers();
    try {
      const h = new Harness();
      const lists: Array<(r: never[]) => void> = [];
      Object.assign(h.log, { fetchActive: () => new Promise<never[]>((resolve) => lists.push(resolve)) }); // a log server's list, answered by hand
      const sb = new Standby(h.gw, h.log, { logger: testLogger(), refreshMs: 1000 });
      sb.start();
      expect(lists).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(3500); // the list takes 3.5 s: no second one meanwhile
      expect(lists).toHaveLength(1);
      lists[0]!([]);
      await vi.advanceTimersByTimeAsync(999);
      expect(lists).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1);
      expect(lists).toHaveLength(2);
      expect(sb.follow.refreshes).toBe(1);
      sb.stop();
      lists[1]!([]);
      await vi.advanceTimersByTimeAsync(5000);
      expect(lists).toHaveLength(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('counts a failed follow and keeps its reason, without taking anything over', async () => {
    const { h: h1 } = await primary();
    const { h, sb } = standbyOn(h1);
    h.log.listActive = () => {
      throw new Error('log server silent');
    };
    await sb.refresh();
    expect(sb.follow).toMatchObject({ refreshes: 0, failures: 1, lastError: 'log server silent', lastRefreshAt: null });
    expect(h.gw.role).toBe('standby');
  });
});

describe('--takeover-on-address', () => {
  it('the standby takes over by itself when the address appears on the host (keepalived MASTER), once; the hook\'s takeover then answers the same report', async () => {
    const { h: h1 } = await primary();
    const host = new Set<string>(['198.18.1.12']);
    const h = new Harness({ log: h1.log });
    h.now = h1.now + 500;
    const sb = new Standby(h.gw, h.log, { logger: testLogger(), clock: () => h.now, takeoverOnAddress: ['198.18.1.1'], watch: { periodMs: 60_000, read: () => host } });
    sb.watch!.look();
    expect(h.gw.role).toBe('standby');
    host.add('198.18.1.1'); // keepalived made this host MASTER
    sb.watch!.look();
    await vi.waitFor(() => expect(h.gw.role).toBe('active'));
    expect(sb.takeovers).toBe(1);
    expect(h.gw.table.size).toBe(1); // the primary's connection, adopted
    sb.watch!.look(); // still there: nothing more
    const hook = await sb.takeover(); // the notify hook's, later
    expect(hook.already).toBe(true);
    expect(sb.takeovers).toBe(1);
    expect(h.gw.snapshot()).toMatchObject({ standby: { takeoverOnAddress: { addrs: ['198.18.1.1'], fired: 1 } }, limits: { takeoverAddressWatchMs: 60_000 } });
  });
});

describe('a standby\'s takeover carries every connection on, byte-exact', () => {
  it('established: the client\'s retransmissions dropped while standby pass after the takeover; a server crash after is recovered', async () => {
    const { h: h1, c, s } = await primary();
    const { h, sb, log } = standbyOn(h1);
    expect(h.send(...resend(c))).toEqual([]); // the primary is gone; the standby drops

    const r = await sb.takeover();
    expect(r).toMatchObject({ role: 'active', epoch: 1, adopted: 1, translated: 0, rebuilding: 0, already: false });
    expect(r.totalMs).toBeGreaterThanOrEqual(r.claimMs);
    expect(log.claims).toBe(1);
    expect(h.gw.role).toBe('active');
    expect(h.flow()).toMatchObject({ state: 'ESTABLISHED', stable: IN0, adopted: true, logId: h1.flow().logId });
    expect(h.gw.snapshot()).toMatchObject({ role: 'active', standby: { phase: 'ACTIVE', takeovers: 1, lastTakeover: { adopted: 1, epoch: 1 } } });
    expect(h.gw.metrics()).toContain('ftcp_role{role="active"} 1');

    h.tun.inject(...resend(c), s.ackNow()).flush();
    await h.run(c, s);
    await carriesOn(h, c, s);
    const s2 = await crashAndRebuild(h, h.oracle!, c, S2_ISN);
    await carriesOn(h, c, s2);
    expect(c.violations).toEqual([]);
    expectAcksStable(h, c);
  });

  it('masked when the primary died: the takeover begins its rebuild at once (its SYN leaves), byte-exact', async () => {
    const { h: h1, o: o1, c } = await primary();
    crashOn(h1, o1, c);
    h1.tun.inject(...c.write(400)).flush(); // logged while masked, stable, never seen by a server
    await h1.run(c, null);
    const { h, sb } = standbyOn(h1);
    expect(h.send(...resend(c))).toEqual([]);
    const dropped = h.gw.wrapperDrops.get(DropReason.STANDBY);

    expect(await sb.takeover()).toMatchObject({ adopted: 1, rebuilding: 1 });
    const s2 = new Server({ isn: S2_ISN, ts: 9, wscale: 9 });
    await rebuiltBy(h, c, h.drain(), s2);
    await carriesOn(h, c, s2);
    expect(h.gw.wrapperDrops.get(DropReason.STANDBY)).toBe(dropped); // nothing the takeover made was dropped
    expect(c.violations).toEqual([]);
    expectAcksStable(h, c);
  });

  it('translated (live after a rebuild): translated both ways after the takeover, byte-exact', async () => {
    const { h: h1, o: o1, c } = await primary();
    const s2 = await crashAndRebuild(h1, o1, c, S2_ISN);
    const { h, sb } = standbyOn(h1);
    await sb.refresh();
    expect(sb.follow).toMatchObject({ followed: 1, translated: 1 });
    expect(h.send(...c.write(100))).toEqual([]);

    expect(await sb.takeover()).toMatchObject({ adopted: 1, translated: 1 });
    expect(xlateOf(h.flow())).not.toBeNull();
    h.tun.inject(...resend(c)).flush();
    await h.run(c, s2);
    await carriesOn(h, c, s2);
    expect(c.violations).toEqual([]);
    expectAcksStable(h, c);
  });
});

describe('takeover and release', () => {
  it('a takeover is idempotent: asked twice at once or again once active, one claim, one adoption', async () => {
    const { h: h1 } = await primary();
    const { h, sb, log } = standbyOn(h1);
    const [a, b] = await Promise.all([sb.takeover(), sb.takeover()]);
    expect(b).toBe(a);
    const again = await sb.takeover();
    expect(again).toEqual({ ...a, already: true });
    expect(log.claims).toBe(1);
    expect(h.gw.adoption.adopted).toBe(1);
    expect(h.gw.table.size).toBe(1);
    expect(sb.takeovers).toBe(1);
  });

  it('a failed claim leaves it standby, dropping, with the reason; the next takeover succeeds', async () => {
    const { h: h1, c, s } = await primary();
    const { h, sb, log } = standbyOn(h1);
    log.fail = new Error('epoch refused');
    await expect(sb.takeover()).rejects.toMatchObject({ code: 'FTCP_TAKEOVER', message: expect.stringContaining('claim: epoch refused') });
    expect(h.gw.role).toBe('standby');
    expect(h.gw.table.size).toBe(0);
    expect(h.send(...resend(c))).toEqual([]);
    expect(sb.takeoverFailures).toBe(1);
    log.fail = null;
    expect(await sb.takeover()).toMatchObject({ role: 'active', adopted: 1 });
    h.tun.inject(...resend(c), s.ackNow()).flush();
    await h.run(c, s);
    await carriesOn(h, c, s);
  });

  it('a failed list leaves it standby (it never forwards an unadopted connection)', async () => {
    const { h: h1, c } = await primary();
    const { h, sb } = standbyOn(h1);
    h.log.listActive = () => {
      throw new Error('no list');
    };
    await expect(sb.takeover()).rejects.toMatchObject({ code: 'FTCP_TAKEOVER', message: expect.stringContaining('list: no list') });
    expect(h.gw.role).toBe('standby');
    expect(h.send(...resend(c))).toEqual([]);
    expect(h.gw.south.stats.unknownFlows).toBe(0);
  });

  it('a release stops protected forwarding at once and leaves the connections to the log; a new takeover carries them on', async () => {
    const { h: h1, c, s } = await primary();
    const { h, sb } = standbyOn(h1);
    await sb.takeover();
    h.tun.inject(...resend(c), s.ackNow()).flush();
    await h.run(c, s);
    const id = h.flow().logId;

    expect(sb.release()).toEqual({ role: 'standby', left: 1, already: false });
    expect(h.gw.role).toBe('standby');
    const drops = h.gw.wrapperDrops.get(DropReason.STANDBY);
    const next = [...c.write(200), s.ackNow()];
    expect(h.send(...next)).toEqual([]); // the very next packets
    expect(h.gw.wrapperDrops.get(DropReason.STANDBY)).toBe(drops + next.length);
    expect(h.gw.table.size).toBe(0);
    expect(h.log.closed).not.toContain(id);
    expect(h.tick(10_000)).toEqual([]);
    expect(sb.release()).toMatchObject({ already: true, left: 0 });

    expect(await sb.takeover()).toMatchObject({ role: 'active', epoch: 2, adopted: 1 });
    h.tun.inject(...resend(c), s.ackNow()).flush();
    await h.run(c, s);
    await carriesOn(h, c, s);
    expect(c.violations).toEqual([]);
    expectAcksStable(h, c);
  });

  it('a release during a rebuild sends nothing for it (no RST to the new incarnation): fail closed', async () => {
    const { h: h1, o: o1, c } = await primary();
    crashOn(h1, o1, c);
    const { h, sb } = standbyOn(h1);
    await sb.takeover();
    expect(h.drain().some((x) => x.flags === TCP_SYN)).toBe(true); // the rebuild's SYN
    const dropped = h.gw.wrapperDrops.get(DropReason.STANDBY);
    sb.release();
    expect(h.drain()).toEqual([]);
    expect(h.gw.wrapperDrops.get(DropReason.STANDBY)).toBeGreaterThan(dropped); // the RST a forget would have sent
    expect(h.gw.north.recovering).toBe(0);
  });

  it('MASTER → BACKUP → MASTER fast: the takeover asked after the release is a fresh one, not the doomed first', async () => {
    const { h: h1 } = await primary();
    const { h, sb, log } = standbyOn(h1);
    log.hold = true;
    const first = sb.takeover();
    first.catch(() => {});
    sb.release();
    const second = sb.takeover(); // the second MASTER's hook
    log.hold = false;
    log.releaseClaims();
    await expect(first).rejects.toMatchObject({ message: expect.stringContaining('released meanwhile') });
    await expect(second).resolves.toMatchObject({ role: 'active', adopted: 1 });
    expect(h.gw.role).toBe('active');
  });

  it('a release while the claim is pending cancels the takeover: still standby, nothing adopted', async () => {
    const { h: h1, c } = await primary();
    const { h, sb, log } = standbyOn(h1);
    log.hold = true;
    const p = sb.takeover();
    expect(sb.phase).toBe('TAKING_OVER');
    expect(h.send(...resend(c))).toEqual([]);
    sb.release();
    log.releaseClaims();
    await expect(p).rejects.toMatchObject({ code: 'FTCP_TAKEOVER', message: expect.stringContaining('released meanwhile') });
    expect(h.gw.role).toBe('standby');
    expect(h.gw.table.size).toBe(0);
  });

  it('fenced after its takeover (another gateway claimed the log): drops (FENCED), shows it; a new takeover claims again, re-adopts from the log, byte-exact', async () => {
    const { h: h1, c, s } = await primary();
    const { h, sb } = standbyOn(h1);
    await sb.takeover();
    h.tun.inject(...resend(c), s.ackNow()).flush();
    await h.run(c, s);
    h.gw.fenced = { epoch: 5, at: h.now }; // what the log's notice does (fence.ts)
    expect(h.gw.snapshot()).toMatchObject({ role: 'fenced', standby: { phase: 'ACTIVE' } });
    expect(h.gw.metrics()).toContain('ftcp_role{role="fenced"} 1');
    const pkts = [...c.write(100), s.ackNow()];
    expect(h.send(...pkts)).toEqual([]);
    expect(h.gw.wrapperDrops.get(DropReason.FENCED)).toBe(pkts.length);

    expect(await sb.takeover()).toMatchObject({ role: 'active', epoch: 2, adopted: 1, already: false });
    expect(h.gw.fenced).toBeNull();
    expect(h.gw.table.size).toBe(1);
    h.tun.inject(...resend(c), s.ackNow()).flush();
    await h.run(c, s);
    await carriesOn(h, c, s);
    expect(c.violations).toEqual([]);
    expectAcksStable(h, c);
  });
});
