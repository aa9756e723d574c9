/**
 * `ftcp lab up --standby-gateway`, for real (root, keepalived): the primary gateway host dies
 * (every process in <n>-gw frozen with SIGSTOP, its links down) during a long TCP transfer;
 * keepalived moves 198.18.1.1 and 198.18.2.1 to <n>-gw2 and the transfer goes on: no RST at the
 * client, byte-exact. Then: a host whose gateway is not running cannot become master (the
 * track_script), the notify hook runs the gateway's takeover, and `lab down` leaves nothing.
 * Prints the failover figures.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT, execIn, labDown, labUp, listLeftovers, listNetns, netnsPids, pidAlive, randomLabName, spawnIn, type LabTopology } from '../../src/lab/index.js';
import { holdsVips, lastTransition, type StandbyTopology } from '../../src/lab/index.js';
import { execCmd } from '../../src/lab/exec.js';
import { UsageError } from '../../src/util/errors.js';
import { ensureBuilt } from '../support/build.js';

const labs: string[] = [];
const children: ChildProcess[] = [];

beforeAll(() => ensureBuilt());

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const n of labs.splice(0)) await labDown(n).catch(() => undefined);
});

function newName(): string {
  const n = randomLabName('ftsb');
  labs.push(n);
  return n;
}

async function expectGone(t: LabTopology): Promise<void> {
  expect(await listLeftovers(t.name)).toEqual([]);
  const present = await listNetns();
  for (const ns of [...Object.values(t.namespaces), t.standby!.namespaces.gw2, t.standby!.namespaces.net]) expect(present.has(ns), ns).toBe(false);
  expect(existsSync(t.stateDir)).toBe(false);
  for (const p of [t.standby!.keepalivedPid.gw, t.standby!.keepalivedPid.gw2]) expect(pidAlive(p!), `keepalived ${p}`).toBe(false);
}

/** Collects a child's stdout lines. */
function lines(c: ChildProcess): string[] {
  const out: string[] = [];
  let buf = '';
  c.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) { out.push(buf.slice(0, i)); buf = buf.slice(i + 1); }
  });
  return out;
}

async function until<T>(what: string, ms: number, probe: () => T | null | undefined | Promise<T | null | undefined>, everyMs = 20): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${ms} ms`);
    await sleep(everyMs);
  }
}

const json = (l: string): Record<string, unknown> => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return {}; } };

/**
 * The host dies: every process in <n>-gw stopped and its four links down, in one shell (a few
 * ms): with one `ip` process per step, a loaded machine left the links up for half a second
 * after keepalived froze, long enough for gw2 to take over while gw still forwarded.
 */
async function killHost(t: LabTopology): Promise<number> {
  const pids = await netnsPids(t.namespaces.gw);
  const batch = [t.interfaces.gwClient, t.interfaces.gwServer, t.interfaces.gwLog1, t.interfaces.gwLog2].map((i) => `link set ${i} down`).join('\n');
  const at = Date.now();
  const r = await execCmd('bash', ['-c', `kill -STOP ${pids.join(' ')} && ip -n ${t.namespaces.gw} -batch - <<'EOF'\n${batch}\nEOF`]);
  expect(r.code, r.stderr).toBe(0);
  return at;
}

/** Bytes host `ns` has sent on `dev` (forwarded traffic included). */
async function txBytes(ns: string, dev: string): Promise<number> {
  return Number((await execIn(ns, 'cat', [`/sys/class/net/${dev}/statistics/tx_bytes`])).stdout.trim());
}

// Counts bytes and hashes them; reports each pause of ≥ 50 ms in the arrivals as {gap:[from,to]} (epoch ms).
const SINK = `
const net = require('net'), crypto = require('crypto');
const srv = net.createServer((s) => {
  const h = crypto.createHash('sha256'); let n = 0, last = 0;
  s.on('data', (d) => {
    const now = Date.now();
    if (last && now - last >= 50) console.log(JSON.stringify({ gap: [last, now] }));
    last = now; h.update(d); n += d.length;
  });
  s.on('error', (e) => console.log(JSON.stringify({ error: e.code })));
  s.on('end', () => { console.log(JSON.stringify({ bytes: n, sha: h.digest('hex') })); s.end(); srv.close(); });
});
srv.listen(9100, '198.18.2.2', () => console.log('listening'));
`;
// 32 KiB every 5 ms (about 6.5 MB/s) until a line on stdin; then ends and reports what it sent.
const SOURCE = `
const net = require('net'), crypto = require('crypto');
const h = crypto.createHash('sha256'); let n = 0, stop = false, error = null;
const s = net.connect(9100, '198.18.2.2', () => { console.log('connected'); tick(); });
function tick() {
  if (stop) { s.end(); return; }
  const b = crypto.randomBytes(32768); h.update(b); n += b.length; s.write(b);
  setTimeout(tick, 5);
}
process.stdin.on('data', () => { stop = true; });
s.on('error', (e) => { error = e.code; });
s.on('close', () => { console.log(JSON.stringify({ bytes: n, sha: h.digest('hex'), error })); process.exit(0); });
setTimeout(() => { console.log(JSON.stringify({ error: 'TIMEOUT' })); process.exit(1); }, 90000).unref();
`;

describe('lab up --standby-gateway', () => {
  it('deploy/keepalived/keepalived.conf parses as both hosts read it (keepalived --config-test)', async () => {
    const r = await execCmd('bash', [join(REPO_ROOT, 'deploy', 'keepalived', 'check-config.sh')]);
    expect(r.stdout + r.stderr).toBe('gw-a: ok\ngw-b: ok\n');
    expect(r.code).toBe(0);
  });

  it('refuses a gateway pair on an embedded log (the standby could not adopt from it)', async () => {
    const err = await labUp({ name: newName(), forward: 'gateway', log: 'embedded', standbyGateway: true }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toContain('--log remote');
  });

  it('a master whose takeover fails: up fails naming the hook, and rolls back everything (gw2, <n>-net, both keepalived)', async () => {
    const FAILING = `
const fs = require('fs');
const args = process.argv.slice(1);
if (args[1] === 'takeover') { console.log('refused'); process.exit(4); }
if (args[1] === 'release') process.exit(0);
fs.writeFileSync(args[args.indexOf('--ready-file') + 1], JSON.stringify({ pid: process.pid }));
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 1000);
`;
    const name = newName();
    const err = await labUp({ name, forward: 'gateway', log: 'remote', standbyGateway: true, gatewayCommand: [process.execPath, '-e', FAILING] })
      .then(() => null, (e: unknown) => e);
    expect((err as { code?: string }).code).toBe('FTCP_LAB_KEEPALIVED');
    expect((err as Error).message).toMatch(/gw: MASTER hook failed \(rc=4\)/);
    expect(await listLeftovers(name)).toEqual([]);
    const present = await listNetns();
    for (const r of ['client', 'gw', 'server', 'log', 'gw2', 'net']) expect(present.has(`${name}-${r}`)).toBe(false);
  });

  it('the primary host dies mid-transfer: keepalived moves both addresses to gw2, the transfer goes on without a RST', async () => {
    const name = newName();
    const t = await labUp({ name, forward: 'kernel', standbyGateway: true });
    const sb = t.standby as StandbyTopology;
    expect(sb.advertInt).toBeLessThanOrEqual(0.2);
    expect(await holdsVips(t.namespaces.gw, sb)).toBe(true);
    expect(await holdsVips(sb.namespaces.gw2, sb)).toBe(false);
    expect(lastTransition(sb, 'gw2')?.state).toBe('BACKUP');

    const rst = spawnIn(t.namespaces.client, 'tcpdump', ['-i', t.interfaces.client, '-n', '-l', '-p', 'tcp[tcpflags] & tcp-rst != 0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(rst);
    const rsts = lines(rst);
    let rstErr = '';
    rst.stderr!.on('data', (d: Buffer) => { rstErr += d.toString(); });
    await until('tcpdump listening', 10_000, () => rstErr.includes('listening on'));

    const sink = spawnIn(t.namespaces.server, process.execPath, ['-e', SINK], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(sink);
    const sunk = lines(sink);
    await until('sink listening', 10_000, () => sunk.includes('listening'));
    const source = spawnIn(t.namespaces.client, process.execPath, ['-e', SOURCE], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(source);
    const sent = lines(source);
    await until('connection', 10_000, () => sent.includes('connected'));
    await sleep(1000);
    const gw2ToServerBefore = await txBytes(sb.namespaces.gw2, t.interfaces.gwServer);

    // t0: the host's death (the freeze); the figures count from it.
    const t0 = await killHost(t);
    const tVip = await until('VIPs on gw2', 10_000, async () => ((await holdsVips(sb.namespaces.gw2, sb)) ? Date.now() : null), 10);
    // The outage: the longest pause in the arrivals that ended after the freeze (a loaded machine adds short ones).
    const gapsAfter = () => sunk.map(json).map((o) => o.gap as [number, number] | undefined).filter((g): g is [number, number] => g !== undefined && g[1] > t0);
    await until('data flowing again', 15_000, () => gapsAfter().length > 0);
    await sleep(500);
    const gap = gapsAfter().reduce((a, b) => (b[1] - b[0] > a[1] - a[0] ? b : a));
    await sleep(1000);
    source.stdin!.write('stop\n');
    const end = await until('the sink\'s total', 30_000, () => sunk.map(json).find((o) => o.sha !== undefined));
    const src = await until('the source\'s total', 30_000, () => sent.map(json).find((o) => o.sha !== undefined || o.error !== undefined));
    // Control: the capture does see a RST (a connection to a closed port, refused by the server's kernel).
    const refused = await execIn(t.namespaces.client, process.execPath, ['-e', `require('net').connect(9101, '198.18.2.2').on('error', (e) => console.log(e.code))`]);
    expect(refused.stdout.trim()).toBe('ECONNREFUSED');
    await until('the control RST captured', 5_000, () => rsts.some((l) => l.includes('198.18.2.2.9101 >')));
    rst.kill('SIGINT');
    await until('tcpdump exit', 5_000, () => rst.exitCode !== null || rst.signalCode !== null);

    const moved = tVip - t0;
    const flowing = gap[1] - t0;
    console.log(`standby failover (kernel forwarding, advert_int ${sb.advertInt} s): addresses on gw2 after ${moved} ms, ` +
      `data flowing again after ${flowing} ms (pause at the server ${gap[1] - gap[0]} ms), ${end.bytes as number} bytes byte-exact`);
    expect(src.error).toBeNull();
    expect(src.sha).toBe(end.sha);
    expect(src.bytes).toBe(end.bytes);
    expect(rsts.filter((l) => l.trim() !== '' && !l.includes('198.18.2.2.9101 >'))).toEqual([]);
    // The flow stopped before the addresses were seen on gw2, and went on through gw2: what gw2 sent
    // toward the server before was VRRP adverts (≈ 50 bytes per 0.1 s); after, the upload.
    expect(gap[0]).toBeLessThanOrEqual(tVip);
    expect(gw2ToServerBefore).toBeLessThan(100_000);
    expect(await txBytes(sb.namespaces.gw2, t.interfaces.gwServer) - gw2ToServerBefore).toBeGreaterThan(2_000_000);
    expect(lastTransition(sb, 'gw2')).toMatchObject({ state: 'MASTER', rc: 0 });
    expect(await holdsVips(sb.namespaces.gw2, sb)).toBe(true);

    await labDown(name);
    await expectGone(t);
  });

  it('with gateways: a host whose gateway is not running is in FAULT and never takes the addresses; the master\'s hook runs takeover', async () => {
    // A stand-in for `ftcp gateway` (and its `takeover`/`release`, which print and exit 0).
    const STANDIN = `
const fs = require('fs');
const args = process.argv.slice(1);
if (args[1] === 'takeover' || args[1] === 'release') { console.log(args[1] + ' ' + args.slice(2).join(' ')); process.exit(0); }
const ready = args[args.indexOf('--ready-file') + 1];
fs.writeFileSync(ready, JSON.stringify({ pid: process.pid }));
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 1000);
`;
    const name = newName();
    const t = await labUp({ name, forward: 'gateway', log: 'remote', standbyGateway: true, gatewayCommand: [process.execPath, '-e', STANDIN] });
    const sb = t.standby as StandbyTopology;
    const out = (h: 'gw' | 'gw2') => { try { return readFileSync(join(sb.vrrpDir[h], 'transitions.out'), 'utf8'); } catch { return ''; } };
    expect(out('gw')).toContain('takeover --control 127.0.0.1:7070');
    expect(lastTransition(sb, 'gw2')).toMatchObject({ state: 'BACKUP', rc: 0 });
    expect(sb.gateway2Pid).toBeGreaterThan(0);
    const gw2Pids = await netnsPids(sb.namespaces.gw2);
    expect(gw2Pids).toContain(sb.gateway2Pid);

    // The standby's gateway dies: its keepalived goes to FAULT (check-gateway.sh, every second).
    process.kill(sb.gateway2Pid!, 'SIGKILL');
    await until('gw2 FAULT', 5_000, () => lastTransition(sb, 'gw2')?.state === 'FAULT');
    // Now the primary host dies too: nobody may take the addresses.
    await killHost(t);
    await sleep(2000);
    expect(await holdsVips(sb.namespaces.gw2, sb)).toBe(false);
    expect(lastTransition(sb, 'gw2')?.state).toBe('FAULT');

    // The standby's gateway is back (ready file, live pid): gw2 becomes master and its hook takes over.
    const again = spawnIn(sb.namespaces.gw2, process.execPath, ['-e', STANDIN, 'gateway', '--ready-file', join(sb.gateway2StateDir, 'gateway.ready')], { stdio: 'ignore', detached: true });
    again.unref();
    const t1 = Date.now();
    await until('gw2 MASTER', 10_000, () => { const s = lastTransition(sb, 'gw2'); return s?.state === 'MASTER' && s.rc !== null; });
    console.log(`standby with a dead gateway: FAULT held the addresses back; master ${Date.now() - t1} ms after its gateway was started again`);
    expect(lastTransition(sb, 'gw2')).toMatchObject({ state: 'MASTER', rc: 0 });
    expect(await holdsVips(sb.namespaces.gw2, sb)).toBe(true);
    expect(out('gw2')).toContain('takeover --control 127.0.0.1:7070');

    await labDown(name);
    await expectGone(t);
  });
});
