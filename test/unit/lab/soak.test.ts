/** `ftcp drill --soak`: the randomizer is deterministic for a seed and every printed command parses back to its drill. */
import { describe, expect, it } from 'vitest';
import { parseDrillArgs } from '../../../src/cli/commands/drill.js';
import { SCENARIOS } from '../../../src/lab/drill.js';
import { planArgv, shellCommand, soakPlan, runSoak, type SoakPlan } from '../../../src/lab/soak.js';
import type { DrillOptions, DrillReport } from '../../../src/lab/drill.js';

/** Splits a command printed by shellCommand as a POSIX shell would. */
function shellSplit(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === "'") {
      const j = s.indexOf("'", i + 1);
      cur += s.slice(i + 1, j);
      i = j;
      inWord = true;
    } else if (ch === '\\') {
      cur += s[++i];
      inWord = true;
    } else if (ch === ' ') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

function expectSameDrill(p: SoakPlan, o: ReturnType<typeof parseDrillArgs>['drill']): void {
  expect(o.scenario).toBe(p.scenario);
  expect(o.seed).toBe(p.seed);
  expect(o.log).toBe(p.log);
  expect(o.fault).toBe(p.fault);
  expect(o.crashAt).toEqual(p.crashAt);
  expect(o.crashes).toBe(p.crashes);
  expect(o.offload).toBe(p.offload);
  expect(o.clientSysctls).toEqual(p.clientSysctls);
  expect(o.bytes).toBe(p.bytes);
  expect(o.lines).toBe(p.lines);
  if (p.connections !== undefined) expect(o.connections).toBe(p.connections);
}

describe('soak randomizer', () => {
  it('is a pure function of (soak seed, index)', () => {
    for (let i = 0; i < 50; i++) expect(soakPlan(9, i)).toEqual(soakPlan(9, i));
    const a = Array.from({ length: 20 }, (_, i) => JSON.stringify(soakPlan(1, i)));
    const b = Array.from({ length: 20 }, (_, i) => JSON.stringify(soakPlan(2, i)));
    expect(a).not.toEqual(b);
    expect(new Set(a).size).toBe(20);
  });

  it('every printed command parses back to the same drill options', () => {
    for (let seed = 0; seed < 5; seed++) {
      for (let i = 0; i < 200; i++) {
        const p = soakPlan(seed, i);
        const argv = planArgv(p);
        expectSameDrill(p, parseDrillArgs(argv).drill);
        // ... and through a shell: the printed line, split as sh would.
        const printed = shellCommand(argv);
        expect(printed.startsWith('ftcp drill ')).toBe(true);
        expect(shellSplit(printed).slice(2)).toEqual(argv);
      }
    }
  });

  it('a non-deterministic scenario gets one crash: its connections all end, reset, at the first (soak seed 602 drew two and failed)', () => {
    const plans = Array.from({ length: 600 }, (_, i) => soakPlan(3, i)).filter((p) => p.scenario.startsWith('nondet'));
    expect(plans.length).toBeGreaterThan(10);
    for (const p of plans) expect(p.crashAt).toHaveLength(1);
  });

  it('covers every dimension over a soak', () => {
    const plans = Array.from({ length: 600 }, (_, i) => soakPlan(3, i));
    expect(new Set(plans.map((p) => p.scenario))).toEqual(new Set(Object.keys(SCENARIOS)));
    expect(new Set(plans.map((p) => p.log))).toEqual(new Set(['embedded', 'embedded:disk', 'remote']));
    expect(new Set(plans.map((p) => p.fault).filter(Boolean))).toEqual(new Set(['log-loss', 'log-path-down', 'log-restart']));
    expect(plans.some((p) => !p.offload)).toBe(true);
    expect(plans.some((p) => p.offload)).toBe(true);
    expect(plans.some((p) => Object.keys(p.clientSysctls).length > 0)).toBe(true);
    expect(new Set(plans.map((p) => p.crashAt?.length ?? p.crashes))).toEqual(new Set([1, 2, 3, 4, 5]));
    for (const p of plans) {
      if (p.fault !== undefined) expect(p.log).toBe('remote');
      if (p.scenario === 'double-crash') expect(p.crashAt!.length).toBeGreaterThanOrEqual(2);
      for (const f of p.crashAt ?? []) expect(f > 0.1 && f < 0.8).toBe(true);
    }
  });

  it('keeps to the scenarios asked for', () => {
    for (let i = 0; i < 30; i++) expect(soakPlan(1, i, ['kv']).scenario).toBe('kv');
    expect(() => soakPlan(1, 0, [])).toThrow(RangeError);
  });
});

describe('runSoak', () => {
  const fake = (ok: (o: DrillOptions) => boolean) => async (o: DrillOptions): Promise<DrillReport> => ({
    ok: ok(o), failures: ok(o) ? [] : ['kv: 1 of 5 connections failed (TIMEOUT)'], durationMs: 1000,
    crashes: (o.crashAt ?? [0.5]).map((f, i) => ({ n: i + 1, killedAt: 1, atFraction: f, servers: ['198.18.2.2:5001', '198.18.2.2:5002'] })),
    clients: [{ connections: 5, bytesSent: 1e6, bytesReceived: 2e6 }],
  }) as unknown as DrillReport;

  it('one line per drill, a summary, and the reproducing command of each failure; runs exactly what it prints', async () => {
    const out: string[] = [];
    const ran: string[] = [];
    const s = await runSoak({
      drills: 12, seed: 5, parse: (a) => { ran.push(shellCommand(a)); return parseDrillArgs(a).drill; },
      run: fake((o) => o.scenario !== 'kv' && o.scenario !== 'mixed'), out: (l) => out.push(l),
    });
    const expected = Array.from({ length: 12 }, (_, i) => shellCommand(planArgv(soakPlan(5, i))));
    expect(ran).toEqual(expected);
    expect(s.drills).toBe(12);
    const bad = expected.map((c, i) => ({ c, i })).filter(({ c }) => / --scenario (kv|mixed) /.test(c + ' '));
    expect(s.failures.map((f) => f.command)).toEqual(bad.map((b) => b.c));
    expect(s.passed).toBe(12 - bad.length);
    expect(s.connections).toBe(60);
    expect(s.bytes).toBe(36e6);
    expect(s.serverKills).toBe(2 * s.crashes); // two servers killed at each crash
    const text = out.join('\n');
    for (const b of bad) expect(text).toContain(`  ${b.c}    # drill ${b.i + 1}:`);
    expect(text).toMatch(/soak \(seed 5\): 12 drills/);
    expect(text.trim().endsWith(bad.length === 0 ? 'PASS: every drill held' : 'FAIL')).toBe(true);
  });

  it('a drill that throws is a failure with its command, and the soak goes on', async () => {
    const out: string[] = [];
    let n = 0;
    const s = await runSoak({
      drills: 3, seed: 1, parse: (a) => parseDrillArgs(a).drill,
      run: async (o) => { if (n++ === 1) throw new Error('lab up failed'); return fake(() => true)(o); }, out: (l) => out.push(l),
    });
    expect(s.drills).toBe(3);
    expect(s.failures).toHaveLength(1);
    expect(s.failures[0]!.failures[0]).toMatch(/lab up failed/);
    expect(s.failures[0]!.command).toBe(shellCommand(planArgv(soakPlan(1, 1))));
  });
});
