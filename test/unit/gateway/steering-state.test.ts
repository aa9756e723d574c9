/**
 * The gateway's start-up decision over what an earlier gateway left in the kernel (issue 14
 * item 2): create, reuse, or refuse — a pure function of `ip -N -j` output (as iproute2 6.1
 * prints it, captured in a namespace) and the state file. And the state file itself: atomic
 * write, read back, damage named.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decide, expectedRules, parseRecord, readRecord, removeRecord, stateFile, writeRecord,
  type KernelView, type SteeringRecord, type SteeringWant,
} from '../../../src/gateway/steering-state.js';

const NETNS = 'net:[4026532173]';
const WANT: SteeringWant = { tun: 'ftcp0', steer: ['gc0', 'gs0'], table: 100, pref: 1000 };

// `ip -N -j rule show` and `ip -N -j route show table 100` with a gateway's steering in place.
const RULES_BASE = '[{"priority":0,"src":"all","table":"255"},{"priority":32766,"src":"all","table":"254"},{"priority":32767,"src":"all","table":"253"}]';
const RULES_OURS = '[{"priority":0,"src":"all","table":"255"},{"priority":1000,"src":"all","iif":"gc0","table":"100"},' +
  '{"priority":1001,"src":"all","iif":"gs0","table":"100"},{"priority":1002,"src":"all","iif":"lo","ipproto":"ipproto-1","table":"100"},' +
  '{"priority":32766,"src":"all","table":"254"},{"priority":32767,"src":"all","table":"253"}]';
const ROUTES_OURS = '[{"dst":"default","dev":"ftcp0","scope":"link","flags":["linkdown"]},{"type":"6","dst":"default","metric":4294967295,"flags":[]}]';
const DEAD_TUN = { kind: 'tun', persist: true, carrier: false };

function view(rules: string, routes: string, link: KernelView['link']): KernelView {
  return { rules: JSON.parse(rules), routes: JSON.parse(routes), link, netns: NETNS };
}

function record(over: Partial<SteeringRecord> = {}): SteeringRecord {
  return {
    version: 1, ...WANT, steer: [...WANT.steer], netns: NETNS, rpFilterAll: '2', createdAt: '2026-12-05T10:00:00.000Z',
    pid: 4242, startedAt: '2026-12-05T10:00:00.000Z', starts: 1, ...over,
  };
}

describe('the start-up decision', () => {
  it('creates when nothing of a gateway is there', () => {
    const d = decide(WANT, view(RULES_BASE, '[]', null), null);
    expect(d.action).toBe('create');
  });

  it('reuses what a killed gateway left: its record, its exact rules, the TUN route and the blackhole, the device without a reader', () => {
    const d = decide(WANT, view(RULES_OURS, ROUTES_OURS, DEAD_TUN), record());
    expect(d).toMatchObject({ action: 'reuse', found: { record: true, device: true, route: true, blackhole: true, rules: 3, rulesExpected: 3 } });
  });

  it('reuses the rules of an older gateway whose TUN vanished (no record, no device, no route): the missing parts are to be completed', () => {
    const d = decide(WANT, view(RULES_OURS, '[]', null), null);
    expect(d).toMatchObject({ action: 'reuse', record: null, found: { record: false, device: false, route: false, rules: 3 } });
  });

  it('refuses a record of other arguments (another table), naming both and the way out', () => {
    const d = decide({ ...WANT, table: 200 }, view(RULES_OURS, '[]', DEAD_TUN), record(), 'ftcp gateway down --tun ftcp0 --state-dir /x');
    expect(d.action).toBe('refuse');
    if (d.action !== 'refuse') return;
    expect(d.code).toBe('FTCP_STEERING_OTHER');
    expect(d.message).toContain('--table 100');
    expect(d.message).toContain('--table 200');
    expect(d.message).toContain("'ftcp gateway down --tun ftcp0 --state-dir /x'");
  });

  it('refuses a rule for a steered interface into another table (another gateway)', () => {
    const rules = '[{"priority":500,"src":"all","iif":"gc0","table":"300"}]';
    const d = decide(WANT, view(rules, '[]', null), null);
    expect(d).toMatchObject({ action: 'refuse', code: 'FTCP_STEERING_EXISTS' });
    if (d.action === 'refuse') expect(d.message).toContain('iif gc0 table 300');
  });

  it('refuses a rule that is nearly ours (a fwmark on it), a rule at our preference, a rule into our table', () => {
    for (const rule of [
      '{"priority":1000,"src":"all","iif":"gc0","fwmark":"0x1","table":"100"}',
      '{"priority":1001,"src":"all","iif":"eth9","table":"7"}',
      '{"priority":2000,"src":"10.0.0.0","srclen":8,"table":"100"}',
    ]) {
      expect(decide(WANT, view(`[${rule}]`, '[]', null), null), rule).toMatchObject({ action: 'refuse', code: 'FTCP_STEERING_EXISTS' });
    }
  });

  it('refuses a table holding a route that is not ours (another TUN, a gateway route)', () => {
    for (const route of ['{"dst":"default","dev":"other0","scope":"link"}', '{"dst":"default","gateway":"10.0.0.1","dev":"eth0"}']) {
      expect(decide(WANT, view(RULES_BASE, `[${route}]`, null), null), route).toMatchObject({ action: 'refuse', code: 'FTCP_TABLE_IN_USE' });
    }
  });

  it('refuses a device that a process holds open (a gateway runs), or that is no TUN', () => {
    expect(decide(WANT, view(RULES_OURS, ROUTES_OURS, { kind: 'tun', persist: true, carrier: true }), record()))
      .toMatchObject({ action: 'refuse', code: 'FTCP_TUN_IN_USE' });
    expect(decide(WANT, view(RULES_BASE, '[]', { kind: 'veth', persist: false, carrier: true }), null))
      .toMatchObject({ action: 'refuse', code: 'FTCP_TUN_NOT_TUN' });
  });

  it('refuses a record written in another network namespace (one state dir shared by two namespaces)', () => {
    expect(decide(WANT, view(RULES_BASE, '[]', null), record({ netns: 'net:[4026531840]' })))
      .toMatchObject({ action: 'refuse', code: 'FTCP_STATE_OTHER_NETNS' });
  });

  it('accepts the names iproute2 prints without -N too (icmp, blackhole)', () => {
    const rules = RULES_OURS.replace('ipproto-1', 'icmp');
    const routes = ROUTES_OURS.replace('"type":"6"', '"type":"blackhole"');
    expect(decide(WANT, view(rules, routes, DEAD_TUN), record())).toMatchObject({ action: 'reuse', found: { rules: 3, blackhole: true } });
  });

  it('the rules: one per steered interface from --pref on, then ICMP from lo; none without --steer', () => {
    expect(expectedRules(WANT)).toEqual([
      { pref: 1000, iif: 'gc0', ipproto: null, table: 100 },
      { pref: 1001, iif: 'gs0', ipproto: null, table: 100 },
      { pref: 1002, iif: 'lo', ipproto: 'icmp', table: 100 },
    ]);
    expect(expectedRules({ ...WANT, steer: [] })).toEqual([]);
  });
});

describe('the state file', () => {
  let dir = '';
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'ftcp-steering-')); });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('is written atomically (no temporary left), read back equal, removed idempotently', async () => {
    const file = stateFile(join(dir, 'run'), 'ftcp0');
    expect(await readRecord(file)).toBeNull();
    const r = record();
    await writeRecord(file, r);
    await writeRecord(file, { ...r, starts: 2 });
    expect(await readRecord(file)).toEqual({ ...r, starts: 2 });
    expect(await readdir(join(dir, 'run'))).toEqual(['ftcp0.json']);
    await removeRecord(file);
    await removeRecord(file);
    expect(await readRecord(file)).toBeNull();
  });

  it('a damaged file is an error that names the file and the field, not an empty state', async () => {
    const file = stateFile(dir, 'ftcp0');
    await writeFile(file, '{"version":1,"tun":"ftcp0"');
    await expect(readRecord(file)).rejects.toThrow(/ftcp0\.json: not JSON/);
    expect(() => parseRecord(JSON.stringify({ ...record(), table: 'x' }), 'f')).toThrow(/f: table is not an integer/);
    expect(() => parseRecord(JSON.stringify({ ...record(), version: 2 }), 'f')).toThrow(/version 2/);
    expect(() => parseRecord(JSON.stringify({ ...record(), steer: [1] }), 'f')).toThrow(/steer/);
  });
});
