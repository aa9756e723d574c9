/**
 * The gateway-failover drill's checks and report without a lab: where each variant is placed,
 * what makes it fail (adoption by gw2, the old primary not fenced or still talking to the
 * client, a capture that proves nothing), its report lines, the command line's refusals, and
 * the benchmark's table.
 */
import { describe, expect, it } from 'vitest';
import { checkFailoverFault, formatGatewayFailover, judgeGatewayFailover, type GatewayFailoverReport } from '../../../src/lab/gwfailover.js';
import { emptyGatewayKill } from '../../../src/lab/gwkill.js';
import { faultPlace } from '../../../src/lab/gwfault.js';
import { parseDrillArgs } from '../../../src/cli/commands/drill.js';
import { UsageError } from '../../../src/util/errors.js';
import { formatGatewayFailover as formatBench, type GatewayFailoverResult } from '../../../src/bench/gwfailover.js';
import { restartStats } from '../../../src/bench/gwrestart.js';

const held: GatewayFailoverReport = {
  ...emptyGatewayKill('gateway-kill'), fault: 'gateway-failover',
  killedAt: 1, faultAtMs: 900, oldPid: 10, newPid: 11, spawnedMs: 420, readyMs: 1500, masterMs: 420, takeoverStartMs: 420,
  openAtKill: 2, resumed: 2, firstResumeMs: 800, allResumedMs: 850, allCaughtUpMs: 1200, adopted: 2, unknownFlows: 0,
  traceLines: { before: 100, after: 200 },
  takeover: { epoch: 2, claimMs: 11, adoptMs: 5, totalMs: 16, adopted: 2, doneMs: 700 },
  oldPrimary: { role: 'fenced', lastState: 'BACKUP', gw2HoldsAddresses: true, fencedDrops: 24, segmentsAfterTakeover: 0, segmentsBefore: 68 },
};

describe('faultPlace', () => {
  it('the part after the colon places the fault around crash 1; no colon (or an unknown one) is the plain fault', () => {
    expect(faultPlace('gateway-failover')).toBe('plain');
    expect(faultPlace('gateway-kill')).toBe('plain');
    expect(faultPlace('gateway-failover:before')).toBe('before');
    expect(faultPlace('gateway-kill:outage')).toBe('outage');
    expect(faultPlace('gateway-failover:rebuild')).toBe('rebuild');
    expect(faultPlace('gateway-failover:later')).toBe('plain');
  });
});

describe('judgeGatewayFailover', () => {
  it('holds: every open connection adopted by gw2 and moving again, the old primary fenced and silent', () => {
    expect(judgeGatewayFailover(held)).toEqual([]);
  });

  it('fails when gw2 adopted fewer than were open, or passed some unprotected, or one never moved', () => {
    expect(judgeGatewayFailover({ ...held, adopted: 0, unknownFlows: 2 })).toEqual([
      'gateway-failover: gw2 adopted 0 connection(s) of the 2 open at the primary\'s death',
      'gateway-failover: 2 connection(s) passed gw2 unprotected (south.unknownFlows: not adopted from the log)',
    ]);
    expect(judgeGatewayFailover({ ...held, adopted: null })[0]).toMatch(/gw2 reports no adoption/);
    expect(judgeGatewayFailover({ ...held, resumed: 1 })[0]).toMatch(/1 of the 2 connection\(s\) open at the primary's death never moved data again/);
  });

  it('fails when the old primary, back, is active, took the addresses back, or sent the client anything after the takeover began', () => {
    // Released by its own keepalived before it heard from the log server: standby, as safe as fenced.
    expect(judgeGatewayFailover({ ...held, oldPrimary: { ...held.oldPrimary, role: 'standby' } })).toEqual([]);
    expect(judgeGatewayFailover({ ...held, oldPrimary: { ...held.oldPrimary, role: 'active' } })[0]).toMatch(/neither fenced nor standby \(role active\): two gateways could both acknowledge/);
    expect(judgeGatewayFailover({ ...held, oldPrimary: { ...held.oldPrimary, gw2HoldsAddresses: false, lastState: 'MASTER' } })).toEqual([
      'gateway-failover: once the old primary was back, gw2 no longer held both addresses (the primary\'s keepalived MASTER): it took them back from the gateway that holds the log',
    ]);
    expect(judgeGatewayFailover({ ...held, oldPrimary: { ...held.oldPrimary, role: null, error: 'cannot reach' } })[0]).toMatch(/role unknown; cannot reach/);
    expect(judgeGatewayFailover({ ...held, oldPrimary: { ...held.oldPrimary, segmentsAfterTakeover: 3 } })).toEqual([
      'gateway-failover: the old primary sent 3 TCP segment(s) to the client after gw2\'s takeover began',
    ]);
    // A capture of the primary's frames that saw none at all proves nothing about after.
    expect(judgeGatewayFailover({ ...held, oldPrimary: { ...held.oldPrimary, segmentsBefore: 0 } })[0]).toMatch(/saw none before its death/);
  });

  it('a fault not applied, a takeover that never came, no connection open: each says so alone', () => {
    expect(judgeGatewayFailover({ ...held, killedAt: -1 })).toHaveLength(1);
    expect(judgeGatewayFailover({ ...held, killedAt: -1 })[0]).toMatch(/clients had finished before the primary host died/);
    expect(judgeGatewayFailover({ ...held, error: 'gw2: no MASTER within 15000 ms' })).toEqual(['gateway-failover: gw2 did not take over: gw2: no MASTER within 15000 ms']);
    expect(judgeGatewayFailover({ ...held, openAtKill: 0, resumed: 0, adopted: 0 })[0]).toMatch(/no connection was open at the primary's death/);
  });

  it('the report: the takeover\'s parts, the figure against the aim, the adoption, the old primary', () => {
    const lines = formatGatewayFailover(held);
    expect(lines[1]).toBe('  gateway fault gateway-failover: primary host frozen and cut off at 900 ms (gateway 10); gw2 MASTER after 420 ms, its takeover began after 420 ms, takeover done after 700 ms (claim 11 ms, list + adopt 5 ms, epoch 2), the hook returned after 1500 ms');
    expect(lines[2]).toContain('every connection 850 ms (2 of 2 open at the death; aim ≤ 1000 ms); every connection caught up 1200 ms');
    expect(lines[4]).toBe('    old primary, thawed: role fenced, 24 FENCED drops, 0 TCP segments to the client after the takeover began (68 before its death); its keepalived BACKUP, the addresses still on gw2');
  });
});

describe('ftcp drill --fault gateway-failover (command line)', () => {
  const parse = (s: string) => parseDrillArgs(s.split(' '));

  it('needs the log server: the standby adopts from it; an embedded log dies with the primary', () => {
    for (const log of ['embedded', 'embedded:disk']) {
      expect(() => parse(`--scenario upload --fault gateway-failover --log ${log}`)).toThrow(UsageError);
      expect(() => checkFailoverFault('gateway-failover', log, 0)).toThrow(/needs --log remote: the standby gateway adopts .*dies with it/);
    }
    expect(parse('--scenario upload --fault gateway-failover --log remote --crashes 0').drill).toMatchObject({ fault: 'gateway-failover', log: 'remote', crashes: 0 });
  });

  it('the variants place a server crash: they need one', () => {
    expect(() => parse('--scenario upload --fault gateway-failover:rebuild --log remote --crashes 0')).toThrow(/needs --crashes 1 or more/);
    for (const v of ['before', 'outage', 'rebuild']) {
      expect(parse(`--scenario upload --fault gateway-failover:${v} --log remote`).drill.fault).toBe(`gateway-failover:${v}`);
    }
    expect(() => parse('--scenario upload --fault gateway-failover:later --log remote')).toThrow(/expected one of .*gateway-failover:rebuild/);
  });
});

describe('scripts/bench gateway-failover', () => {
  it('the table: the parts of each failover, its failure beside its figure; p50 and max against the aim', () => {
    const r: GatewayFailoverResult = {
      date: '2026-12-05T00:00:00.000Z', machine: 'test CPU', command: 'scripts/bench gateway-failover', options: { drills: 2, scenario: 'upload', bytes: 4e8, seed: 1 },
      samples: [
        { seed: 1, lab: 'a', ok: true, kill: held, failures: [] },
        { seed: 2, lab: 'b', ok: false, kill: { ...held, allResumedMs: 1300 }, failures: ['gateway-failover: the old primary sent 1 TCP segment(s)'] },
      ],
      masterMs: restartStats([420, 420]), takeoverMs: restartStats([700, 700]), allResumedMs: restartStats([850, 1300]), allCaughtUpMs: restartStats([1200, 1200]),
      failures: ['drill 2 (seed 2): 1 check(s) failed'], durationS: 60,
    };
    const text = formatBench(r, true);
    expect(text).toContain('| 1 | 1 | 420 ms | 700 ms (11 ms, 5 ms) | 800 ms | 850 ms | 1200 ms | held |');
    expect(text).toContain('| 2 | 2 | 420 ms | 700 ms (11 ms, 5 ms) | 800 ms | 1300 ms | 1200 ms | FAILED: gateway-failover: the old primary sent 1 TCP segment(s) |');
    expect(text).toContain('From the primary\'s death to data flowing again (every connection): p50 850 ms, max 1300 ms (2 drills); the aim is ≤ 1000 ms.');
  });
});
