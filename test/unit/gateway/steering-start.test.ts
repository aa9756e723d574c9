/**
 * The steering's part of a gateway's start (issue 14 item 5: a restart's time before it
 * forwards): Steering.prepare inspects the kernel with every `ip` query at once, and
 * Steering.apply completes what prepare's view lacks without inspecting again. No root: the
 * `ip` processes and the /proc/sys files are fakes that record what was asked, and answer as
 * iproute2 does (the outputs of steering-state.test.ts).
 */
import { describe, it, expect, beforeEach, afterEach, vi } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';

/** The fake `ip`: each call is recorded and answered when the test says (or at once). */
const fake = vi.hoisted(() => ({
  calls: [] as string[][],
  held: [] as Array<() => void>,
  hold: false,
  answer: (_args: string[]): string | Error => '',
  sysctl: new Map<string, string>(),
}));

vi.mock('node:child_process', async () => {
  const { promisify } = await import('node:util');
  const execFile = (() => { throw new Error('the callback form is not used'); }) as unknown as Record<symbol, unknown>;
  execFile[promisify.custom] = (cmd: string, args: string[]) => {
    if (cmd !== 'ip') throw new Error(`unexpected command ${cmd}`);
    fake.calls.push(args);
    return new Promise((resolve, reject) => {
      const go = () => {
        const a = fake.answer(args);
        if (a instanceof Error) reject(Object.assign(a, { stderr: a.message }));
        else resolve({ stdout: a, stderr: '' });
      };
      if (fake.hold) fake.held.push(go);
      else go();
    });
  };
  return { execFile };
});

vi.mock('node:fs/promises', async (orig) => {
  const real = await orig<typeof import('node:fs/promises')>();
  const sys = (p: unknown) => typeof p === 'string' && p.startsWith('/proc/sys/');
  return {
    ...real,
    readFile: (p: string, ...rest: unknown[]) => (sys(p) ? Promise.resolve(fake.sysctl.get(p) ?? '0') : (real.readFile as (...a: unknown[]) => unknown)(p, ...rest)),
    writeFile: (p: string, v: unknown, ...rest: unknown[]) => {
      if (!sys(p)) return (real.writeFile as (...a: unknown[]) => unknown)(p, v, ...rest);
      fake.sysctl.set(p, String(v));
      return Promise.resolve();
    },
  };
});

const { Steering } = await import('../../../src/gateway/steering.js');
const { currentNetns } = await import('../../../src/gateway/steering-state.js');
type SteeringRecord = import('../../../src/gateway/steering-state.js').SteeringRecord;

const RULES_BASE = '[{"priority":0,"src":"all","table":"255"},{"priority":32766,"src":"all","table":"254"},{"priority":32767,"src":"all","table":"253"}]';
const RULES_OURS = '[{"priority":0,"src":"all","table":"255"},{"priority":1000,"src":"all","iif":"gc0","table":"100"},' +
  '{"priority":1001,"src":"all","iif":"gs0","table":"100"},{"priority":1002,"src":"all","iif":"lo","ipproto":"ipproto-1","table":"100"},' +
  '{"priority":32766,"src":"all","table":"254"},{"priority":32767,"src":"all","table":"253"}]';
const ROUTES_OURS = '[{"dst":"default","dev":"ftcp0","scope":"link","flags":["linkdown"]},{"type":"6","dst":"default","metric":4294967295,"flags":[]}]';
/** `ip -d -j link show` (trimmed to the fields read): lo, the steered veths, and a TUN a killed gateway left (up, MTU 1500, queue 4096, no carrier). */
function links(opts: { tun: boolean; mtu?: number; without?: string }): string {
  const l = [
    { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP', 'LOWER_UP'], mtu: 65536, txqlen: 1000 },
    { ifindex: 2, ifname: 'gc0', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], mtu: 1500, txqlen: 1000, linkinfo: { info_kind: 'veth' } },
    { ifindex: 3, ifname: 'gs0', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], mtu: 1500, txqlen: 1000, linkinfo: { info_kind: 'veth' } },
    ...(opts.tun ? [{ ifindex: 9, ifname: 'ftcp0', flags: ['POINTOPOINT', 'MULTICAST', 'NOARP', 'UP'], mtu: opts.mtu ?? 1500, txqlen: 4096, linkinfo: { info_kind: 'tun', info_data: { type: 'tun', pi: false, vnet_hdr: true, multi_queue: false, persist: true } } }] : []),
  ];
  return JSON.stringify(l.filter((x) => x.ifname !== opts.without));
}

/** The kernel a killed gateway left (or none of it), as `ip` prints it. */
function kernel(left: boolean, opts: { mtu?: number; without?: string } = {}) {
  return (args: string[]): string | Error => {
    const a = args.join(' ');
    if (a === '-N -j rule show') return left ? RULES_OURS : RULES_BASE;
    if (a === '-N -j route show table 100') return left ? ROUTES_OURS : new Error('Error: ipv4: FIB table does not exist.');
    if (a === '-d -j link show') return links({ tun: left, ...opts });
    if (a.includes('show')) return new Error(`unexpected query: ip ${a}`);
    return ''; // a change (link set, route add, rule add): done
  };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ftcp-steer-'));
  fake.calls = [];
  fake.held = [];
  fake.hold = false;
  fake.sysctl = new Map([['/proc/sys/net/ipv4/ip_forward', '1'], ['/proc/sys/net/ipv4/conf/all/rp_filter', '0']]);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function steering() {
  return new Steering({ tun: 'ftcp0', steer: ['gc0', 'gs0'], table: 100, pref: 1000, mtu: 1500, stateDir: dir }, pino({ level: 'silent' }));
}

function left(): SteeringRecord {
  return {
    version: 1, tun: 'ftcp0', steer: ['gc0', 'gs0'], table: 100, pref: 1000, netns: currentNetns(), rpFilterAll: null,
    createdAt: '2026-12-05T10:00:00.000Z', pid: 4242, startedAt: '2026-12-05T10:00:00.000Z', starts: 3,
  };
}

describe('Steering at a start', () => {
  it('prepare asks its three queries at once: the rules, the routes, every interface (one wait, not five in a row)', async () => {
    fake.answer = kernel(true);
    fake.hold = true;
    const s = steering();
    const prepared = s.prepare(left());
    // Let prepare run as far as it can without an answer.
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(fake.calls.map((c) => c.join(' ')).sort()).toEqual(['-N -j route show table 100', '-N -j rule show', '-d -j link show']);
    fake.hold = false;
    for (const go of fake.held.splice(0)) go();
    expect(await prepared).toMatchObject({ action: 'reuse', found: { record: true, device: true, route: true, blackhole: true, rules: 3 } });
  });

  it('apply on a reuse of a device left as configured runs no ip process at all: the record written (starts + 1)', async () => {
    fake.answer = kernel(true);
    const s = steering();
    await s.prepare(left());
    const before = fake.calls.length;
    const record = await s.apply(5151);
    expect(fake.calls.slice(before)).toEqual([]);
    expect(record).toMatchObject({ pid: 5151, starts: 4, createdAt: '2026-12-05T10:00:00.000Z' });
    expect(fake.sysctl.get('/proc/sys/net/ipv4/conf/ftcp0/rp_filter')).toBe('0');
  });

  it('apply on a reuse of a device with another MTU sets it (and nothing else)', async () => {
    fake.answer = kernel(true, { mtu: 9000 });
    const s = steering();
    await s.prepare(left());
    const before = fake.calls.length;
    await s.apply(5151);
    expect(fake.calls.slice(before).map((c) => c.join(' '))).toEqual(['link set dev ftcp0 mtu 1500 txqueuelen 4096 up']);
  });

  it('apply on a create completes from prepare\'s view: the TUN route, the blackhole and the three rules', async () => {
    fake.answer = kernel(false);
    const s = steering();
    expect(await s.prepare(null)).toMatchObject({ action: 'create' });
    const before = fake.calls.length;
    const record = await s.apply(5151);
    const applied = fake.calls.slice(before).map((c) => c.join(' '));
    expect(applied.filter((a) => a.includes('show'))).toEqual([]);
    expect(applied[0]).toBe('link set dev ftcp0 mtu 1500 txqueuelen 4096 up');
    expect(applied.filter((a) => a.startsWith('route add'))).toEqual([
      'route add default dev ftcp0 table 100', 'route add blackhole default table 100 metric 4294967295',
    ]);
    expect(applied.filter((a) => a.startsWith('rule add'))).toHaveLength(3);
    expect(record.starts).toBe(1);
  });

  it('prepare names a steered interface that does not exist', async () => {
    fake.answer = kernel(true, { without: 'gs0' });
    await expect(steering().prepare(left())).rejects.toMatchObject({ code: 'FTCP_NO_INTERFACE', message: "--steer: no interface named 'gs0'" });
  });
});
