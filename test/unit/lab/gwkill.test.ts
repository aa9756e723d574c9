/**
 * The gateway-kill drill's arithmetic and checks, without a lab: when data flowed again
 * after the kill (from a scripted client-side capture), the trace split between the two
 * gateways, the adoption checks, and the command line's refusals.
 */
import { describe, expect, it } from 'vitest';
import { Convo, C, T0 } from '../inspect/inspect-helpers.js';
import { countTraceLines, emptyGatewayKill, formatGatewayKill, judgeGatewayKill, resumeAfterKill } from '../../../src/lab/gwkill.js';
import { parseDrillArgs } from '../../../src/cli/commands/drill.js';
import { UsageError } from '../../../src/util/errors.js';
import { formatDrill, type DrillReport } from '../../../src/lab/drill.js';

const KILL = T0 + 100_000_000n; // 100 ms in
const RESTART = T0 + 200_000_000n; // 200 ms in

/** Several conversations in one capture (one writer), each its own client port. */
function convos(n: number): Convo[] {
  const first = new Convo({ cport: 40000 });
  const rest = Array.from({ length: n - 1 }, (_, i) => Object.assign(new Convo({ cport: 40001 + i }), { w: first.w }));
  return [first, ...rest];
}

describe('resumeAfterKill', () => {
  it('an upload: a duplicate ack after the restart is not data flowing; the first ack of a new byte is', () => {
    const [a] = convos(1);
    a!.handshake(0).data(10, a!.c, 1000).ack(11, a!.s).data(90, a!.c, 1000).ack(95, a!.s);
    a!.data(99, a!.c, 1000); // sent, never acked by the dying gateway
    const old = (a!.c.nxt as number) - 1000;
    a!.ack(101, a!.s, old + 500); // stamped after the kill but before the restart: on its way when the gateway died
    a!.ack(300, a!.s, old + 500); // after the restart, a duplicate of the last ack before
    a!.ack(420, a!.s); // acks the new byte
    const r = resumeAfterKill(a!.pcap(), [5001], C, KILL, RESTART);
    expect(r).toEqual({ openAtKill: 1, resumed: 1, firstResumeMs: 320, allResumedMs: 320, allCaughtUpMs: 320 });
  });

  it('a download: new server bytes count, a retransmission does not; a closed connection was not open', () => {
    const [a, b, closed] = convos(3);
    for (const c of [a!, b!, closed!]) c.handshake(0);
    closed!.data(5, closed!.s, 100).close(20);
    a!.data(10, a!.s, 1460).data(50, a!.s, 1460);
    b!.data(10, b!.s, 1460);
    a!.raw(250, a!.s, { seq: (a!.s.nxt as number) - 1460, len: 1460, flags: 0x18 }); // retransmitted
    b!.data(260, b!.s, 1460);
    a!.data(700, a!.s, 1460);
    const r = resumeAfterKill(a!.pcap(), [5001], C, KILL, RESTART);
    expect(r).toEqual({ openAtKill: 2, resumed: 2, firstResumeMs: 160, allResumedMs: 600, allCaughtUpMs: 600 });
  });

  it('a connection that never moves again: counted open, not resumed, no "every connection" figure; one opened after the restart is not counted', () => {
    const [a, b, late] = convos(3);
    a!.handshake(0).data(10, a!.c, 100).ack(11, a!.s);
    b!.handshake(0).data(10, b!.c, 100).ack(11, b!.s);
    b!.data(300, b!.c, 100).ack(310, b!.s);
    late!.handshake(400).data(410, late!.c, 100).ack(411, late!.s);
    const r = resumeAfterKill(a!.pcap(), [5001], C, KILL, RESTART);
    expect(r).toEqual({ openAtKill: 2, resumed: 1, firstResumeMs: 210, allResumedMs: -1, allCaughtUpMs: -1 });
  });

  it('a crawl: data flows again one segment at a time; caught up only once all the client had sent before is acknowledged', () => {
    const [a] = convos(1);
    a!.handshake(0).data(10, a!.c, 1000).ack(11, a!.s);
    const base = a!.c.nxt as number;
    a!.data(90, a!.c, 1000).data(91, a!.c, 1000).data(92, a!.c, 1000); // in flight at the kill, never acked
    a!.ack(300, a!.s, base + 1000); // one segment, after the restart: flowing again
    a!.ack(1300, a!.s, base + 2000);
    a!.ack(3300, a!.s, base + 3000); // everything the client had sent
    const r = resumeAfterKill(a!.pcap(), [5001], C, KILL, RESTART);
    expect(r).toEqual({ openAtKill: 1, resumed: 1, firstResumeMs: 200, allResumedMs: 200, allCaughtUpMs: 3200 });
  });

  it('only the given server ports', () => {
    const [a] = convos(1);
    a!.handshake(0).data(10, a!.c, 100).ack(11, a!.s).data(300, a!.c, 100).ack(310, a!.s);
    expect(resumeAfterKill(a!.pcap(), [5002], C, KILL, RESTART).openAtKill).toBe(0);
  });
});

describe('countTraceLines', () => {
  it('splits the one trace at the kill: the dead gateway\'s lines, the restarted one\'s', () => {
    const t = (ns: bigint) => `${ns} 198.18.1.2:40000 5001 1000 5\n`;
    expect(countTraceLines(t(KILL - 1n) + t(KILL - 1n) + t(KILL + 5n) + 'torn', KILL)).toEqual({ before: 2, after: 1 });
  });
});

describe('judgeGatewayKill', () => {
  const held = { ...emptyGatewayKill('gateway-kill'), killedAt: 1, faultAtMs: 300, oldPid: 10, newPid: 11, spawnedMs: 100, readyMs: 400, openAtKill: 3, resumed: 3, firstResumeMs: 410, allResumedMs: 450, adopted: 3, unknownFlows: 0 };

  it('holds when every open connection was adopted, none unprotected, each moved again', () => {
    expect(judgeGatewayKill(held)).toEqual([]);
  });

  it('a gateway without adoption says so, and the unknown connections', () => {
    const f = judgeGatewayKill({ ...held, adopted: null, unknownFlows: 3 });
    expect(f).toHaveLength(2);
    expect(f[0]).toMatch(/reports no adoption.*not built yet.*3 connection\(s\) open at the kill were not adopted/);
    expect(f[1]).toMatch(/3 connection\(s\) passed the restarted gateway unprotected \(south.unknownFlows/);
  });

  it('fewer adopted than open, a connection that never moved, a fault not applied, a restart that failed', () => {
    expect(judgeGatewayKill({ ...held, adopted: 2 })).toEqual(['gateway-kill: the restarted gateway adopted 2 connection(s) of the 3 open at the kill']);
    expect(judgeGatewayKill({ ...held, resumed: 2, allResumedMs: -1 })[0]).toMatch(/1 of the 3 connection\(s\) open at the kill never moved data again/);
    expect(judgeGatewayKill({ ...held, killedAt: -1 })[0]).toMatch(/clients had finished before the gateway was killed/);
    expect(judgeGatewayKill({ ...held, error: 'gateway not ready within 15000 ms' })).toEqual(['gateway-kill: the gateway did not come back: gateway not ready within 15000 ms']);
    expect(judgeGatewayKill({ ...held, openAtKill: 0, resumed: 0, adopted: 0 })[0]).toMatch(/no connection was open at the kill/);
  });

  it('the drill report prints the figure, the adoption and the trace split', () => {
    const lines = formatGatewayKill({ ...held, allCaughtUpMs: 900, traceLines: { before: 120, after: 80 } });
    expect(lines).toContain('    data flowing again after the kill: first connection 410 ms, every connection 450 ms (3 of 3 open at the kill; aim ≤ 500 ms); every connection caught up (all its client had sent before acknowledged) 900 ms');
    expect(lines.at(-1)).toMatch(/3 adopted of 3 open; 0 unknown .*120 lines by the dead gateway, 80 by the restarted one/);
    const r = {
      scenario: 'upload', what: 'w', log: 'embedded:disk', offload: true, seed: 1, lab: 'l', durationMs: 1000, clientSysctls: {},
      ok: true, failures: [], clients: [], crashes: [], longestStallMs: 0,
      invariant: { checked: 1, connections: 1, violations: [], unchecked: 0 },
      client: { connections: 1, rstToClient: 0, icmpToClient: 0 }, verdicts: {},
      gateway: { packets: 10, protectedPackets: 10, bytesLogged: 0, acksLowered: 0, acksHeld: 0, heldReleased: 0, sacksAboveStableRemoved: 0, dropped: 0 },
      north: {}, logLink: null, divergence: { total: 0, resets: 0 }, drops: {}, gatewayKill: held,
    } as unknown as DrillReport;
    expect(formatDrill(r)).toMatch(/gateway fault gateway-kill: gateway 10 killed \(-9\) at 300 ms; restarted 100 ms after the kill as 11, ready after 400 ms/);
  });
});

describe('ftcp drill --fault gateway-kill (command line)', () => {
  const parse = (s: string) => parseDrillArgs(s.split(' '));

  it('needs the disk log: the memory log dies with the gateway; remote is not adopted from yet', () => {
    expect(() => parse('--scenario upload --fault gateway-kill')).toThrow(UsageError);
    expect(() => parse('--scenario upload --fault gateway-kill')).toThrow(/--log embedded:disk .*memory log .*dies with it/);
    expect(() => parse('--scenario upload --fault gateway-kill --log remote')).toThrow(/not yet/);
    expect(parse('--scenario upload --fault gateway-kill --log embedded:disk --crashes 0').drill).toMatchObject({ fault: 'gateway-kill', log: 'embedded:disk', crashes: 0 });
  });

  it('the variants place a server crash: they need one', () => {
    expect(() => parse('--scenario upload --fault gateway-kill:outage --log embedded:disk --crashes 0')).toThrow(/needs --crashes 1 or more/);
    for (const v of ['before', 'outage', 'rebuild']) {
      expect(parse(`--scenario upload --fault gateway-kill:${v} --log embedded:disk`).drill.fault).toBe(`gateway-kill:${v}`);
    }
    expect(() => parse('--scenario upload --fault gateway-kill:later --log embedded:disk')).toThrow(/expected one of .*gateway-kill:rebuild/);
  });
});
