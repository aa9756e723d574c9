/**
 * The namespace lab, for real (root): up/down through the library and the CLI, a TCP
 * exchange across the gateway namespace checked by SHA-256, rollback of failed ups, and
 * that nothing of a lab survives `down`.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  ADDRESSES, INTERFACES, REPO_ROOT, execIn, labDown, labStatus, labUp, listLeftovers, listNetns, pidAlive,
  randomLabName, spawnIn, withLab, type LabTopology,
} from '../../src/lab/index.js';
import { FtcpError, UsageError } from '../../src/util/errors.js';
import { ensureBuilt } from '../support/build.js';

const CLI = join(REPO_ROOT, 'bin', 'ftcp.js');
const labs: string[] = [];
const children: ChildProcess[] = [];

function newName(): string {
  const n = randomLabName('ftcpt');
  labs.push(n);
  return n;
}

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const n of labs.splice(0)) await labDown(n).catch(() => undefined);
});

function nsNames(name: string): string[] {
  return ['client', 'gw', 'server', 'log'].map((r) => `${name}-${r}`);
}

async function expectGone(name: string, pids: number[] = []): Promise<void> {
  expect(await listLeftovers(name)).toEqual([]);
  const present = await listNetns();
  for (const ns of nsNames(name)) expect(present.has(ns), ns).toBe(false);
  expect(existsSync(`/run/ftcp-lab/${name}`)).toBe(false);
  for (const p of pids) expect(pidAlive(p), `pid ${p}`).toBe(false);
}

function cli(args: string[], timeoutMs = 60_000): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Waits (bounded) for `line` on a child's stdout. */
function waitForLine(c: ChildProcess, line: string, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const t = setTimeout(() => reject(new Error(`no '${line}' within ${ms} ms; stderr: ${err}`)), ms);
    c.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
    c.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.split('\n').includes(line)) { clearTimeout(t); resolve(); }
    });
    c.on('exit', (code) => { clearTimeout(t); reject(new Error(`exited (${code}) before '${line}'; stderr: ${err}`)); });
  });
}

const ECHO_SERVER = `
const net = require('net'), crypto = require('crypto');
const srv = net.createServer((s) => {
  const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', (d) => { h.update(d); n += d.length; });
  s.on('end', () => { console.log(JSON.stringify({ peer: s.remoteAddress, sha: h.digest('hex'), bytes: n })); srv.close(); });
  s.pipe(s);
});
srv.listen(Number(process.argv[1]), process.argv[2], () => console.log('listening'));
`;

const ECHO_CLIENT = `
const net = require('net'), crypto = require('crypto');
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const s = net.connect(Number(process.argv[1]), process.argv[2], () => s.end(Buffer.concat(chunks)));
  const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', (d) => { h.update(d); n += d.length; });
  s.on('end', () => console.log(JSON.stringify({ local: s.localAddress, sha: h.digest('hex'), bytes: n })));
  s.on('error', (e) => { console.error(e.code || e.message); process.exit(1); });
});
`;

async function rxBytes(ns: string, dev: string): Promise<number> {
  const r = await execIn(ns, 'ip', ['-j', '-s', 'link', 'show', 'dev', dev]);
  expect(r.code).toBe(0);
  const j = JSON.parse(r.stdout) as Array<{ stats64: { rx: { bytes: number } } }>;
  return j[0]!.stats64.rx.bytes;
}

/** Echoes `data` client -> server -> client across the lab; returns both sides' reports. */
async function echoAcross(t: LabTopology, data: Buffer, port: number) {
  const server = spawnIn(t.namespaces.server, process.execPath, ['-e', ECHO_SERVER, String(port), ADDRESSES.server], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(server);
  let serverOut = '';
  server.stdout!.on('data', (d: Buffer) => { serverOut += d.toString(); });
  await waitForLine(server, 'listening');
  const c = await execIn(t.namespaces.client, process.execPath, ['-e', ECHO_CLIENT, String(port), ADDRESSES.server], { input: data, timeoutMs: 60_000 });
  expect(c.code, c.stderr).toBe(0);
  await new Promise<void>((resolve) => (server.exitCode !== null ? resolve() : server.on('exit', () => resolve())));
  const srv = JSON.parse(serverOut.split('\n').find((l) => l.startsWith('{'))!) as { peer: string; sha: string; bytes: number };
  const cli = JSON.parse(c.stdout.trim()) as { local: string; sha: string; bytes: number };
  return { srv, cli, serverPid: server.pid! };
}

describe('lab up/down (library)', () => {
  it('kernel forwarding carries a 4 MB TCP exchange client->server->client through <n>-gw, and down leaves nothing', async () => {
    const name = newName();
    const t = await labUp({ name, forward: 'kernel' });
    expect(t.namespaces).toEqual({ client: `${name}-client`, gw: `${name}-gw`, server: `${name}-server`, log: `${name}-log` });
    expect(t.forward).toBe('kernel');
    expect(t.gatewayPid).toBeNull();
    const present = await listNetns();
    for (const ns of nsNames(name)) expect(present.has(ns)).toBe(true);
    // Nothing of the lab in the root namespace.
    const rootLinks = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
    for (const dev of ['c0', 'gc0', 'gs0', 's0', 'gl1', 'gl2', 'l1', 'l2']) expect(rootLinks).not.toMatch(new RegExp(`^\\d+: ${dev}[@:]`, 'm'));

    // The gateway's sysctls as the role script set them.
    const sys = await execIn(t.namespaces.gw, 'cat', [
      '/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv4/conf/all/rp_filter', '/proc/sys/net/ipv4/conf/gc0/rp_filter',
      '/proc/sys/net/ipv4/conf/default/rp_filter', '/proc/sys/net/ipv4/conf/gs0/send_redirects', '/proc/sys/net/ipv4/conf/all/send_redirects',
    ]);
    expect(sys.stdout.split('\n').filter(Boolean)).toEqual(['1', '0', '0', '0', '0', '0']);
    const route = await execIn(t.namespaces.client, 'ip', ['route', 'show', 'default']);
    expect(route.stdout).toContain(`default via ${ADDRESSES.gwClient} dev ${INTERFACES.client}`);

    const before = await rxBytes(t.namespaces.gw, INTERFACES.gwClient);
    const data = randomBytes(4 * 1024 * 1024);
    const sha = createHash('sha256').update(data).digest('hex');
    const { srv, cli: cl, serverPid } = await echoAcross(t, data, 7001);
    expect(srv).toEqual({ peer: ADDRESSES.client, sha, bytes: data.length });
    expect(cl).toEqual({ local: ADDRESSES.client, sha, bytes: data.length });
    // The bytes really crossed the gateway namespace.
    expect((await rxBytes(t.namespaces.gw, INTERFACES.gwClient)) - before).toBeGreaterThan(data.length);

    // The log namespace reaches the gateway on both links.
    for (const [addr, port] of [[ADDRESSES.gwLog1, 7101], [ADDRESSES.gwLog2, 7102]] as const) {
      const l = spawnIn(t.namespaces.gw, process.execPath, ['-e', ECHO_SERVER, String(port), addr], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(l);
      await waitForLine(l, 'listening');
      const r = await execIn(t.namespaces.log, process.execPath, ['-e', ECHO_CLIENT, String(port), addr], { input: 'ping' });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).bytes).toBe(4);
    }

    // Long-lived processes left in every namespace: down must end them.
    const sleepers = nsNames(name).map((ns) => spawnIn(ns, 'sleep', ['600'], { stdio: 'ignore' }));
    children.push(...sleepers);
    await new Promise((r) => setTimeout(r, 100));
    const sleeperPids = sleepers.map((s) => s.pid!);
    for (const p of sleeperPids) expect(pidAlive(p)).toBe(true);
    expect((await listLeftovers(name)).filter((l) => l.startsWith('process')).length).toBeGreaterThanOrEqual(4);

    await labDown(name);
    await expectGone(name, [serverPid, ...sleeperPids]);
    await labDown(name); // idempotent
    await expectGone(name);
  });

  it('role scripts are idempotent and reject bad arguments', async () => {
    const name = newName();
    await withLab({ name, forward: 'kernel' }, async (t) => {
      const script = join(REPO_ROOT, 'scripts', 'lab', 'role-client.sh');
      const again = await execIn(t.namespaces.client, 'bash', [script, '--if', `c0=${ADDRESSES.client}/24`, '--via', ADDRESSES.gwClient]);
      expect(again.code, again.stderr).toBe(0);
      const addrs = await execIn(t.namespaces.client, 'ip', ['-4', '-o', 'addr', 'show', 'dev', 'c0']);
      expect(addrs.stdout.trim().split('\n')).toHaveLength(1);
      const bad = await execIn(t.namespaces.client, 'bash', [script, '--if', 'c0']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('bad --if');
      const noIf = await execIn(t.namespaces.client, 'bash', [script, '--if', `nosuch0=${ADDRESSES.client}/24`]);
      expect(noIf.code).toBe(2);
      const gw = await execIn(t.namespaces.gw, 'bash', [join(REPO_ROOT, 'scripts', 'lab', 'role-gateway.sh'), '--bogus']);
      expect(gw.code).toBe(2);
    });
    await expectGone(name);
  });

  it('up with a name already in use fails clearly and leaves the first lab working', async () => {
    const name = newName();
    const t = await labUp({ name, forward: 'kernel' });
    const err = await labUp({ name, forward: 'kernel' }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(FtcpError);
    expect((err as FtcpError).code).toBe('FTCP_LAB_EXISTS');
    expect((err as Error).message).toContain(`lab '${name}' already exists`);
    const st = await labStatus(name);
    expect(Object.values(st.namespaces)).toEqual([true, true, true, true]);
    expect(st.topology?.name).toBe(name);
    const data = randomBytes(64 * 1024);
    const { cli: cl } = await echoAcross(t, data, 7002);
    expect(cl.sha).toBe(createHash('sha256').update(data).digest('hex'));
    await labDown(name);
    await expectGone(name);
  });

  it('a half-existing lab (one namespace left over) blocks up without touching it', async () => {
    const name = newName();
    expect(spawnSync('ip', ['netns', 'add', `${name}-log`]).status).toBe(0);
    await expect(labUp({ name, forward: 'kernel' })).rejects.toThrow(`namespace ${name}-log`);
    const present = await listNetns();
    expect(present.has(`${name}-log`)).toBe(true);
    expect(present.has(`${name}-client`)).toBe(false);
    await labDown(name);
    await expectGone(name);
  });

  it('down works without state.json', async () => {
    const name = newName();
    const t = await labUp({ name, forward: 'kernel' });
    rmSync(join(t.stateDir, 'state.json'));
    const s = spawnIn(t.namespaces.server, 'sleep', ['600'], { stdio: 'ignore' });
    children.push(s);
    await new Promise((r) => setTimeout(r, 100));
    expect((await labStatus(name)).topology).toBeNull();
    await labDown(name);
    await expectGone(name, [s.pid!]);
  });

  it('invalid options are UsageErrors and create nothing', async () => {
    for (const bad of ['Bad', '1abc', 'a_b', '', 'a'.repeat(16), 'x/y', '-x']) {
      await expect(labUp({ name: bad, forward: 'kernel' })).rejects.toBeInstanceOf(UsageError);
    }
    const name = newName();
    await expect(labUp({ name, protect: [70000] })).rejects.toBeInstanceOf(UsageError);
    await expect(labUp({ name, forward: 'bridge' as 'kernel' })).rejects.toBeInstanceOf(UsageError);
    await expect(labUp({ name, log: 'tape' as 'remote' })).rejects.toBeInstanceOf(UsageError);
    await expectGone(name);
    expect(randomLabName()).toMatch(/^ftcp-[0-9a-f]{6}$/);
  });
});

describe('lab gateway mode', () => {
  // A stand-in for `ftcp gateway`: records its argv, writes the ready file, runs until SIGTERM.
  const FAKE_GATEWAY = `
const fs = require('fs');
const args = process.argv.slice(1);
const ready = args[args.indexOf('--ready-file') + 1];
fs.writeFileSync(require('path').dirname(ready) + '/argv.json', JSON.stringify(args));
fs.writeFileSync(ready, JSON.stringify({ pid: process.pid, tun: 'ftcp0' }));
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 1000);
`;
  // Never gets ready and ignores SIGTERM: only SIGKILL ends it.
  const STUCK_GATEWAY = `process.on('SIGTERM', () => {}); console.log('starting'); setInterval(() => {}, 1000);`;

  it('runs the gateway with the documented command line and waits for its ready file; down stops it', async () => {
    const name = newName();
    const t = await labUp({ name, protect: [7000, 7001], log: 'embedded:disk', gatewayCommand: [process.execPath, '-e', FAKE_GATEWAY] });
    const sd = `/run/ftcp-lab/${name}`;
    expect(t.stateDir).toBe(sd);
    expect(t.gatewayPid).toBeGreaterThan(0);
    expect(pidAlive(t.gatewayPid!)).toBe(true);
    const argv = JSON.parse(readFileSync(join(sd, 'argv.json'), 'utf8')) as string[];
    expect(argv).toEqual([
      'gateway', '--tun', 'ftcp0', '--protect', '198.18.2.2:7000,198.18.2.2:7001', '--steer', 'gc0,gs0',
      '--log', `embedded:disk:${sd}/log`, '--control', '127.0.0.1:7070', '--ready-file', `${sd}/gateway.ready`, '--state-dir', sd,
      '--supervisor', '198.18.2.1:7071', '--heartbeat-ms', '50',
    ]);
    // It runs inside <n>-gw.
    const inGw = spawnSync('ip', ['netns', 'pids', t.namespaces.gw], { encoding: 'utf8' }).stdout.split('\n').map(Number);
    expect(inGw).toContain(t.gatewayPid);
    const st = await labStatus(name);
    expect(st.gatewayAlive).toBe(true);
    expect(st.topology).toEqual(t);
    expect(t).toMatchObject({ forward: 'gateway', log: 'embedded:disk', protect: [7000, 7001], control: '127.0.0.1:7070', keyFile: null });
    const pid = t.gatewayPid!;
    await labDown(name);
    await expectGone(name, [pid]);
  });

  it('a gateway that exits at once: up fails with the tail of gateway.log and leaves nothing', async () => {
    const name = newName();
    // Whatever `ftcp gateway` is today (placeholder or real), an unknown option makes it exit.
    const err = await labUp({ name, protect: [7000], extraGatewayArgs: ['--no-such-option-ftcp-lab-test'] }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(FtcpError);
    expect((err as FtcpError).code).toBe('FTCP_LAB_GATEWAY');
    expect((err as Error).message).toMatch(/gateway exited with status [1-9]\d* before it was ready/);
    expect((err as Error).message).toContain('gateway.log ends with:\nftcp');
    await expectGone(name);
  });

  it('a gateway that never gets ready and ignores SIGTERM: up times out, kills it and leaves nothing', async () => {
    const name = newName();
    const t0 = Date.now();
    const err = await labUp({ name, protect: [7000], readyTimeoutMs: 1500, gatewayCommand: [process.execPath, '-e', STUCK_GATEWAY] }).then(() => null, (e: unknown) => e);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    expect((err as Error).message).toMatch(/gateway not ready within 1500 ms/);
    expect((err as Error).message).toContain('starting');
    await expectGone(name);
  });
});

describe('lab gateway mode (interruptions and the real gateway)', () => {
  it('aborting up while it waits for the gateway rolls everything back', async () => {
    const name = newName();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 700);
    const stuck = `process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1000);`;
    const err = await labUp({ name, protect: [7000], signal: ac.signal, readyTimeoutMs: 60_000, gatewayCommand: [process.execPath, '-e', stuck] })
      .then(() => null, (e: unknown) => e);
    expect((err as FtcpError).code).toBe('FTCP_LAB_ABORTED');
    await expectGone(name);
  });

  it('an already aborted signal creates nothing', async () => {
    const name = newName();
    const ac = new AbortController();
    ac.abort();
    await expect(labUp({ name, forward: 'kernel', signal: ac.signal })).rejects.toThrow('interrupted');
    await expectGone(name);
  });

  it('with `ftcp gateway` itself: TCP to a protected port crosses it, status sees it, down stops it', async () => {
    const name = newName();
    const t = await labUp({ name, protect: [7003] });
    expect(t.gatewayPid).toBeGreaterThan(0);
    expect(t.gatewayCommand).toEqual([process.execPath, CLI, 'gateway', '--tun', 'ftcp0', '--protect', '198.18.2.2:7003', '--steer', 'gc0,gs0',
      '--log', 'embedded:memory', '--control', '127.0.0.1:7070', '--ready-file', `${t.stateDir}/gateway.ready`, '--state-dir', t.stateDir,
      '--supervisor', '198.18.2.1:7071', '--heartbeat-ms', '50']);
    expect((await labStatus(name)).gatewayAlive).toBe(true);
    const data = randomBytes(1024 * 1024);
    const sha = createHash('sha256').update(data).digest('hex');
    const { srv, cli: cl } = await echoAcross(t, data, 7003);
    expect(srv).toEqual({ peer: ADDRESSES.client, sha, bytes: data.length });
    expect(cl).toEqual({ local: ADDRESSES.client, sha, bytes: data.length });
    const pid = t.gatewayPid!;
    await labDown(name);
    await expectGone(name, [pid]);
  });
});

describe('ftcp lab (CLI)', () => {
  beforeAll(() => {
    ensureBuilt();
    expect(existsSync(join(REPO_ROOT, 'dist', 'cli', 'commands', 'lab.js'))).toBe(true);
  });

  it('up --json prints the topology; status --json sees it; down removes everything', async () => {
    const name = newName();
    const up = cli(['lab', 'up', '--name', name, '--forward', 'kernel', '--json', '--protect', '7000,7001']);
    expect(up.code, up.stderr).toBe(0);
    const t = JSON.parse(up.stdout) as LabTopology;
    expect(t).toMatchObject({
      name, forward: 'kernel', protect: [7000, 7001], control: '127.0.0.1:7070', keyFile: null, gatewayPid: null,
      stateDir: `/run/ftcp-lab/${name}`,
      namespaces: { client: `${name}-client`, gw: `${name}-gw`, server: `${name}-server`, log: `${name}-log` },
      addresses: {
        client: '198.18.1.2', gwClient: '198.18.1.1', gwServer: '198.18.2.1', server: '198.18.2.2',
        gwLog1: '198.18.3.1', log1: '198.18.3.2', gwLog2: '198.18.4.1', log2: '198.18.4.2',
      },
      interfaces: { client: 'c0', gwClient: 'gc0', gwServer: 'gs0', server: 's0', gwLog1: 'gl1', log1: 'l1', gwLog2: 'gl2', log2: 'l2' },
    });

    const st = cli(['lab', 'status', '--name', name, '--json']);
    expect(st.code, st.stderr).toBe(0);
    const s = JSON.parse(st.stdout) as { up: boolean; namespaces: Record<string, boolean>; gatewayAlive: boolean; topology: LabTopology };
    expect(s.up).toBe(true);
    expect(s.namespaces).toEqual(Object.fromEntries(nsNames(name).map((n) => [n, true])));
    expect(s.topology).toEqual(t);

    const again = cli(['lab', 'up', '--name', name, '--forward', 'kernel']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists');
    expect(Object.values((await labStatus(name)).namespaces)).toEqual([true, true, true, true]);

    const down = cli(['lab', 'down', '--name', name]);
    expect(down.code, down.stderr).toBe(0);
    await expectGone(name);
    expect(cli(['lab', 'down', '--name', name]).code).toBe(0);

    const gone = cli(['lab', 'status', '--name', name, '--json']);
    expect(gone.code).toBe(1);
    const g = JSON.parse(gone.stdout) as { up: boolean; namespaces: Record<string, boolean>; topology: null };
    expect(g.up).toBe(false);
    expect(Object.values(g.namespaces)).toEqual([false, false, false, false]);
    expect(g.topology).toBeNull();
  });

  it('gateway mode through the CLI: comes up with status alive and down removes it, or fails with exit 1 and leaves nothing', async () => {
    const name = newName();
    // The real `ftcp gateway` started by the CLI with the documented command line. While it is the
    // placeholder (or broken), this checks the rollback path through the CLI; once it works, it
    // checks that status sees it alive and down removes it.
    const r = cli(['lab', 'up', '--name', name, '--protect', '7000', '--json']);
    if (r.code === 0) {
      // The real gateway came up: then status must see it alive, and down must remove it.
      const t = JSON.parse(r.stdout) as LabTopology;
      expect((await labStatus(name)).gatewayAlive).toBe(true);
      expect(cli(['lab', 'down', '--name', name]).code).toBe(0);
      await expectGone(name, [t.gatewayPid!]);
    } else {
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('gateway');
      expect(r.stderr).toContain('gateway.log ends with');
      await expectGone(name);
    }
  });

  it('bad names and options exit 2 and create nothing', async () => {
    const cases: string[][] = [
      ['lab', 'up', '--name', 'Bad'], ['lab', 'up', '--name', '9lives'], ['lab', 'up', '--name', 'a'.repeat(16)],
      ['lab', 'up', '--name', 'a_b'], ['lab', 'up', '--name', ''], ['lab', 'up'], ['lab', 'down', '--name', 'UPPER'],
      ['lab', 'status', '--name', 'no.dots'], ['lab', 'up', '--name', 'okname', '--forward', 'bridge'],
      ['lab', 'up', '--name', 'okname', '--protect', '0'], ['lab', 'up', '--name', 'okname', '--protect', '7000,x'],
      ['lab', 'up', '--name', 'okname', '--log', 'tape'], ['lab', 'up', '--name', 'okname', '--bogus'],
      ['lab', 'sideways', '--name', 'okname'], ['lab'],
    ];
    for (const args of cases) {
      const r = cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.length, args.join(' ')).toBeGreaterThan(0);
    }
    const present = await listNetns();
    expect([...present].filter((n) => /^(Bad|9lives|a_b|okname|UPPER)/.test(n))).toEqual([]);
    expect(existsSync('/run/ftcp-lab/okname')).toBe(false);
  });
});
