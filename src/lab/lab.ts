/**
 * The namespace lab: four network namespaces wired as in ./topology.ts, set up by the same
 * per-role scripts (scripts/lab/role-*.sh) that provision the Vagrant VMs, optionally with
 * the ftcp gateway running inside <n>-gw.
 *
 * labUp:   check nothing of the lab exists -> state dir -> namespaces -> veths (created inside
 *          the namespaces, nothing ever appears in the root namespace) -> role scripts
 *          (gateway first) -> state.json -> [gateway, detached; wait for its ready file].
 *          With `standbyGateway` (./standby.ts): also <n>-gw2 and <n>-net, shared segments
 *          instead of point-to-point veths, the standby's gateway, then keepalived in <n>-gw
 *          (waits until it is MASTER) and in <n>-gw2 (waits until it is BACKUP).
 *          Any failure rolls back everything made so far, and only that.
 * labDown: gateway (SIGTERM, bounded wait, SIGKILL) -> every process still in the lab's
 *          namespaces, frozen ones thawed (SIGCONT) -> namespaces -> state dir (with every
 *          file keepalived and the standby wrote). Idempotent; needs no state.json.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { FtcpError, UsageError } from '../util/errors.js';
import { execCmd, mustExec } from './exec.js';
import { startLogServer } from './logserver.js';
import {
  allowNonlocalBind, buildStandby, hostRoleArgs, startKeepalived, standbyNamespaces, testKeepalivedConfig,
  waitTransition, wireSegments, writeVrrpFiles, type GatewayHost, type StandbyTopology,
} from './standby.js';
import {
  ADDRESSES, INTERFACES, LAB_RUN_DIR, PREFIX_LEN,
  buildTopology, checkForward, checkLabName, checkLogMode, checkProtectPorts, gatewayArgs, labNamespaces, labStateDir,
  type ForwardMode, type LabLogMode, type LabTopology,
} from './topology.js';

/** The repository root (this file is src/lab/lab.ts or dist/lab/lab.js). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPTS = join(REPO_ROOT, 'scripts', 'lab');

export interface LabUpOptions {
  name: string;
  /** Protected server ports (on 198.18.2.2); default none. */
  protect?: number[];
  /** 'gateway' (default): run ftcp in <n>-gw; 'kernel': plain kernel forwarding. */
  forward?: ForwardMode;
  /** The gateway's log: 'embedded' (default, in memory), 'embedded:disk' (<state-dir>/log) or 'remote'
   *  (`ftcp logserver` in <n>-log on both log links, disk store <state-dir>/logserver). */
  log?: string;
  /** The gateway's `--divergence` (reset | continue | off, or per service `<ip:port>=<policy>[,…]`); unset: its default. */
  divergence?: string;
  /** Appended to the gateway's command line. */
  extraGatewayArgs?: string[];
  /** Replaces `[node, <repo>/bin/ftcp.js]` in front of the gateway's arguments (tests use a stand-in). */
  gatewayCommand?: string[];
  /** How long to wait for the gateway's ready file (default 15 s). */
  readyTimeoutMs?: number;
  /** Aborting makes `labUp` stop at its next step and roll back (the CLI wires SIGINT/SIGTERM here). */
  signal?: AbortSignal;
  /** A second gateway host <n>-gw2 and keepalived moving the gateway's addresses (./standby.ts).
   *  With `forward: 'gateway'` it needs `log: 'remote'`: the log is the state the standby adopts. */
  standbyGateway?: boolean;
  /** Appended to both gateways' command lines with `standbyGateway` (default `--standby
   *  --takeover-on-address 198.18.1.1`: each starts fail-closed and warm; the master's gateway takes
   *  over when keepalived puts the virtual address on its host, and its notify hook asks again). */
  standbyGatewayArgs?: string[];
}

export interface LabStatus {
  topology: LabTopology | null;
  /** Keyed by namespace name (`<n>-client`, ...). */
  namespaces: Record<string, boolean>;
  gatewayAlive: boolean;
}

const GATEWAY_TERM_WAIT_MS = 5_000;
/** keepalived's first election (≈ 3.5 advertisement intervals) plus the gateway's takeover. */
const VRRP_UP_TIMEOUT_MS = 15_000;
const PROC_TERM_WAIT_MS = 3_000;
const PROC_KILL_WAIT_MS = 3_000;

export function randomLabName(prefix = 'ftcp'): string {
  return checkLabName(`${prefix}-${randomBytes(3).toString('hex')}`);
}

/** The lab's namespaces; `standby` undefined: every namespace a lab of this name may have (down, leftovers). */
function roleList(name: string, standby?: boolean): string[] {
  const ns = labNamespaces(name);
  const sb = standbyNamespaces(name);
  return [ns.client, ns.gw, ns.server, ns.log, ...(standby === false ? [] : [sb.gw2, sb.net])];
}

/** Names of the network namespaces that exist (`ip netns list`). */
export async function listNetns(): Promise<Set<string>> {
  const out = await mustExec('ip', ['netns', 'list']);
  return new Set(out.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((s) => s.length > 0));
}

/** Pids of the processes in namespace `ns` (empty if it does not exist). */
export async function netnsPids(ns: string): Promise<number[]> {
  const r = await execCmd('ip', ['netns', 'pids', ns]);
  if (r.code !== 0) return [];
  return r.stdout.split('\n').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0 && n !== process.pid);
}

/** Alive = exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function procComm(pid: number): string {
  try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { return '?'; }
}

/** Processes (not us) whose command line mentions `needle`: a lab's gateway names its state dir. */
function pidsMentioning(needle: string): number[] {
  const found: number[] = [];
  let entries: string[] = [];
  try { entries = readdirSync('/proc'); } catch { return found; }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.split('\0').some((a) => a === needle || a.startsWith(`${needle}/`)) && pidAlive(pid)) found.push(pid);
    } catch { /* gone */ }
  }
  return found;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try { process.kill(pid, sig); } catch { /* already gone */ }
}

async function waitGone(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let alive = pids.filter(pidAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(50);
    alive = alive.filter(pidAlive);
  }
  return alive;
}

async function readState(name: string): Promise<LabTopology | null> {
  try {
    const t = JSON.parse(await readFile(join(labStateDir(name), 'state.json'), 'utf8')) as LabTopology;
    return t && typeof t === 'object' && t.name === name ? t : null;
  } catch {
    return null;
  }
}

async function writeState(t: LabTopology): Promise<void> {
  const file = join(t.stateDir, 'state.json');
  await writeFile(`${file}.tmp`, JSON.stringify(t, null, 2) + '\n');
  await rename(`${file}.tmp`, file);
}

function tailOf(file: string, maxBytes = 4096): string {
  try {
    const s = readFileSync(file, 'utf8');
    const t = s.length > maxBytes ? '…' + s.slice(-maxBytes) : s;
    return t.trim() || '(empty)';
  } catch {
    return '(no log)';
  }
}

/**
 * Stops the given gateway pids and every process in `namespaces`, deletes the namespaces and
 * the state dir. Returns what could not be removed (empty = clean).
 */
async function teardown(namespaces: string[], gatewayPids: number[], stateDir: string | null): Promise<string[]> {
  const problems: string[] = [];
  const present = await listNetns();
  const mine = namespaces.filter((n) => present.has(n));

  // 1. The gateway: it owns a process group (detached), so signal the group as well.
  const inLab = new Set((await Promise.all(mine.map(netnsPids))).flat());
  const stateMentions = stateDir ? new Set(pidsMentioning(stateDir)) : new Set<number>();
  const gw = [...new Set(gatewayPids)].filter((p) => pidAlive(p) && (inLab.has(p) || stateMentions.has(p)));
  for (const p of [...stateMentions]) if (!gw.includes(p)) gw.push(p);
  // SIGCONT after SIGTERM: a frozen host's processes (the failover drill) take it at once.
  for (const p of gw) { signal(-p, 'SIGTERM'); signal(p, 'SIGTERM'); signal(p, 'SIGCONT'); }
  for (const p of await waitGone(gw, GATEWAY_TERM_WAIT_MS)) { signal(-p, 'SIGKILL'); signal(p, 'SIGKILL'); }

  // 2. Everything else still inside the lab's namespaces (a few rounds: things may respawn).
  for (let round = 0; round < 3; round++) {
    const pids = [...new Set((await Promise.all(mine.map(netnsPids))).flat())];
    if (pids.length === 0) break;
    for (const p of pids) { signal(p, round === 0 ? 'SIGTERM' : 'SIGKILL'); signal(p, 'SIGCONT'); }
    const left = await waitGone(pids, round === 0 ? PROC_TERM_WAIT_MS : PROC_KILL_WAIT_MS);
    if (round === 0) for (const p of left) signal(p, 'SIGKILL');
  }
  for (const p of await waitGone([...gw], PROC_KILL_WAIT_MS)) problems.push(`process ${p} (${procComm(p)}) survived SIGKILL`);
  for (const ns of mine) {
    for (const p of await netnsPids(ns)) problems.push(`process ${p} (${procComm(p)}) still in ${ns}`);
  }

  // 3. Namespaces (their veths go with them), then the state dir.
  for (const ns of mine) {
    const r = await execCmd('ip', ['netns', 'del', ns]);
    if (r.code !== 0 && (await listNetns()).has(ns)) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }
  if (stateDir) {
    try { await rm(stateDir, { recursive: true, force: true }); } catch (e) { problems.push(`rm ${stateDir}: ${(e as Error).message}`); }
  }
  return problems;
}

async function runRole(ns: string, role: string, args: string[], signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw new FtcpError('FTCP_LAB_ABORTED', `up interrupted before the ${role} role`);
  await mustExec('ip', ['netns', 'exec', ns, 'bash', join(SCRIPTS, `role-${role}.sh`), ...args]);
}

const cidr = (a: string) => `${a}/${PREFIX_LEN}`;

export async function labUp(opts: LabUpOptions): Promise<LabTopology> {
  const name = checkLabName(opts.name);
  const protect = checkProtectPorts(opts.protect ?? []);
  const forward = checkForward(opts.forward ?? 'gateway');
  const log: LabLogMode = checkLogMode(opts.log ?? 'embedded');
  const standby = opts.standbyGateway === true;
  if (standby && forward === 'gateway' && log !== 'remote') {
    throw new UsageError(`--standby-gateway with a gateway needs --log remote: the standby adopts the connections from the log, which an embedded log keeps inside the primary`);
  }
  const ns = labNamespaces(name);
  const all = roleList(name, standby);
  const stateDir = labStateDir(name);

  const present = await listNetns();
  const clash = all.filter((n) => present.has(n));
  if (clash.length > 0) {
    throw new FtcpError('FTCP_LAB_EXISTS', `lab '${name}' already exists (namespace${clash.length > 1 ? 's' : ''} ${clash.join(', ')}); run 'ftcp lab down --name ${name}' first`);
  }
  await mkdir(LAB_RUN_DIR, { recursive: true });
  try {
    await mkdir(stateDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new FtcpError('FTCP_LAB_EXISTS', `lab '${name}' already has a state dir ${stateDir} (left by a crashed run?); run 'ftcp lab down --name ${name}' first`);
    }
    throw e;
  }

  // From here on, every failure rolls back what this call made (and only that).
  const made: string[] = [];
  let gatewayPid: number | null = null;
  const step = () => {
    if (opts.signal?.aborted) throw new FtcpError('FTCP_LAB_ABORTED', `lab '${name}': up interrupted`);
  };
  try {
    for (const n of all) {
      step();
      await mustExec('ip', ['netns', 'add', n]);
      made.push(n);
    }
    const sb: StandbyTopology | null = standby ? buildStandby(name, stateDir, forward === 'gateway') : null;
    if (sb) {
      await wireSegments(ns, sb, step);
      await runRole(ns.gw, 'gateway', hostRoleArgs(sb.hosts.gw), opts.signal);
      await runRole(sb.namespaces.gw2, 'gateway', hostRoleArgs(sb.hosts.gw2), opts.signal);
      for (const n of [ns.gw, sb.namespaces.gw2]) await allowNonlocalBind(n);
    } else {
      const veth = async (a: string, ifA: string, b: string, ifB: string) => {
        step();
        return mustExec('ip', ['-n', a, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', b]);
      };
      await veth(ns.client, INTERFACES.client, ns.gw, INTERFACES.gwClient);
      await veth(ns.server, INTERFACES.server, ns.gw, INTERFACES.gwServer);
      await veth(ns.log, INTERFACES.log1, ns.gw, INTERFACES.gwLog1);
      await veth(ns.log, INTERFACES.log2, ns.gw, INTERFACES.gwLog2);
      await runRole(ns.gw, 'gateway', [
        '--if', `${INTERFACES.gwClient}=${cidr(ADDRESSES.gwClient)}`,
        '--if', `${INTERFACES.gwServer}=${cidr(ADDRESSES.gwServer)}`,
        '--if', `${INTERFACES.gwLog1}=${cidr(ADDRESSES.gwLog1)}`,
        '--if', `${INTERFACES.gwLog2}=${cidr(ADDRESSES.gwLog2)}`,
      ], opts.signal);
    }
    await runRole(ns.client, 'client', ['--if', `${INTERFACES.client}=${cidr(ADDRESSES.client)}`, '--via', ADDRESSES.gwClient], opts.signal);
    await runRole(ns.server, 'server', ['--if', `${INTERFACES.server}=${cidr(ADDRESSES.server)}`, '--via', ADDRESSES.gwServer], opts.signal);
    await runRole(ns.log, 'log', ['--if', `${INTERFACES.log1}=${cidr(ADDRESSES.log1)}`, '--if', `${INTERFACES.log2}=${cidr(ADDRESSES.log2)}`], opts.signal);

    const topo = buildTopology({ name, protect, forward, log });
    if (sb) topo.standby = sb;
    step();
    await writeState(topo);
    if (forward === 'gateway' && log === 'remote') {
      step();
      await startLogServer(topo); // in <n>-log; stopped by teardown with the namespace's processes
    }
    if (forward === 'gateway') {
      const started = await startGateway(topo, opts, 'gw', (pid) => { gatewayPid = pid; });
      topo.gatewayPid = started.pid;
      topo.gatewayCommand = started.argv;
      await writeState(topo);
    }
    if (sb) {
      if (forward === 'gateway') {
        step();
        sb.gateway2Pid = (await startGateway(topo, opts, 'gw2', () => {})).pid;
        await writeState(topo);
      }
      await startVrrp(topo, sb, opts, step);
    }
    return topo;
  } catch (err) {
    const problems = await teardown(made, gatewayPid === null ? [] : [gatewayPid], stateDir);
    if (problems.length > 0) {
      throw new FtcpError('FTCP_LAB_ROLLBACK', `${(err as Error).message}\nrollback incomplete: ${problems.join('; ')}`, { cause: err });
    }
    throw err;
  }
}

async function startGateway(topo: LabTopology, opts: LabUpOptions, host: GatewayHost, onSpawn: (pid: number) => void): Promise<{ pid: number; argv: string[] }> {
  const prog = opts.gatewayCommand ?? [process.execPath, join(REPO_ROOT, 'bin', 'ftcp.js')];
  const extra = [
    ...(opts.divergence !== undefined ? ['--divergence', opts.divergence] : []), ...(opts.extraGatewayArgs ?? []),
    ...(topo.standby ? opts.standbyGatewayArgs ?? ['--standby', '--takeover-on-address', ADDRESSES.gwClient] : []),
  ];
  const where = gatewayHost(topo, host);
  await mkdir(where.stateDir, { recursive: true });
  const argv = [...prog, ...gatewayArgs(topo.protect, topo.log ?? 'embedded', where.stateDir, extra)];
  return spawnGateway(topo, argv, onSpawn, opts.readyTimeoutMs ?? 15_000, opts.signal, host);
}

/** Where gateway host `host` keeps its state dir, ready file and log; `gw2` only in a standby lab. */
function gatewayHost(topo: LabTopology, host: GatewayHost): { ns: string; stateDir: string; logFile: string | null } {
  if (host === 'gw') return { ns: topo.namespaces.gw, stateDir: topo.stateDir, logFile: topo.gatewayLog };
  const sb = topo.standby;
  if (!sb) throw new FtcpError('FTCP_LAB_GATEWAY', `lab '${topo.name}' has no standby gateway host`);
  return { ns: sb.namespaces.gw2, stateDir: sb.gateway2StateDir, logFile: sb.gateway2Log };
}

/**
 * keepalived in both gateway hosts: files written and checked (`keepalived --config-test`), then
 * the primary's started alone and waited for until its notify hook has run MASTER (with a gateway:
 * the takeover returned), then the standby's, waited for until BACKUP. In this order because both
 * start BACKUP with nopreempt: whichever times out first would otherwise win the first election.
 */
async function startVrrp(topo: LabTopology, sb: StandbyTopology, opts: LabUpOptions, step: () => void): Promise<void> {
  const hostNs: Record<GatewayHost, string> = { gw: topo.namespaces.gw, gw2: sb.namespaces.gw2 };
  // The notify hook runs the gateway's own program (`gateway takeover|release`): the CLI, or a test's stand-in.
  const cli = topo.forward === 'gateway' ? opts.gatewayCommand ?? [process.execPath, join(REPO_ROOT, 'bin', 'ftcp.js')] : null;
  for (const h of ['gw', 'gw2'] as const) {
    step();
    const ready = join(gatewayHost(topo, h).stateDir, 'gateway.ready');
    await testKeepalivedConfig(hostNs[h], await writeVrrpFiles(sb, h, hostNs, cli, ready));
  }
  for (const [h, state] of [['gw', 'MASTER'], ['gw2', 'BACKUP']] as const) {
    step();
    const pid = startKeepalived(hostNs[h], sb.vrrpDir[h]);
    sb.keepalivedPid[h] = pid;
    await writeState(topo);
    await waitTransition(sb, h, state, VRRP_UP_TIMEOUT_MS, () => (pidAlive(pid) ? null : 'exited'));
  }
}

/**
 * Starts the lab's gateway again with the command line of the one before (as systemd's
 * `Restart=always` does after a crash): the dead one's ready file is removed first, the new
 * pid recorded in state.json once it is ready. The caller makes sure the old one is dead.
 */
export async function restartGateway(topo: LabTopology, readyTimeoutMs = 15_000): Promise<number> {
  if (!topo.gatewayCommand) throw new FtcpError('FTCP_LAB_GATEWAY', `lab '${topo.name}' has no gateway command line to restart`);
  await rm(join(topo.stateDir, 'gateway.ready'), { force: true });
  const started = await spawnGateway(topo, topo.gatewayCommand, () => {}, readyTimeoutMs);
  await writeState(topo);
  return started.pid;
}

/** Spawns `argv` in <n>-gw (or <n>-gw2), detached, and waits (bounded) for its ready file. */
async function spawnGateway(topo: LabTopology, argv: string[], onSpawn: (pid: number) => void, timeoutMs: number, signal?: AbortSignal, host: GatewayHost = 'gw'): Promise<{ pid: number; argv: string[] }> {
  const where = gatewayHost(topo, host);
  const logFile = where.logFile;
  if (logFile === null) throw new FtcpError('FTCP_LAB_GATEWAY', `lab '${topo.name}' forwards in the kernel: no gateway to start in ${where.ns}`);
  const readyFile = join(where.stateDir, 'gateway.ready');
  const fd = openSync(logFile, 'a');
  let exited: string | null = null;
  let child;
  try {
    // `ip netns exec` execs in place: child.pid is the gateway's pid. Own process group, so
    // a Ctrl-C on the terminal that ran `ftcp lab up` does not reach it.
    child = spawn('ip', ['netns', 'exec', where.ns, ...argv], { detached: true, stdio: ['ignore', fd, fd], cwd: REPO_ROOT });
  } finally {
    closeSync(fd);
  }
  child.on('error', (e) => { exited = `could not start: ${e.message}`; });
  child.on('exit', (code, sig) => { exited = sig ? `killed by ${sig}` : `exited with status ${code}`; });
  child.unref();
  const pid = child.pid;
  if (pid === undefined) {
    await sleep(10);
    throw new FtcpError('FTCP_LAB_GATEWAY', `gateway did not start (${exited ?? 'no pid'})`);
  }
  onSpawn(pid);
  const record = (p: number) => {
    if (host === 'gw') topo.gatewayPid = p;
    else if (topo.standby) topo.standby.gateway2Pid = p;
  };
  record(pid);
  if (host === 'gw') topo.gatewayCommand = argv;
  await writeState(topo); // so that `down` finds it even if we die while waiting

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(readyFile)) {
      try {
        const ready = JSON.parse(readFileSync(readyFile, 'utf8')) as { pid?: unknown };
        const readyPid: number = typeof ready.pid === 'number' && Number.isInteger(ready.pid) && ready.pid > 0 ? ready.pid : pid;
        if (readyPid !== pid) onSpawn(readyPid);
        record(readyPid);
        if (exited === null || pidAlive(readyPid)) return { pid: readyPid, argv };
      } catch { /* partly written: poll again */ }
    }
    if (signal?.aborted) throw new FtcpError('FTCP_LAB_ABORTED', `lab '${topo.name}': up interrupted while waiting for the gateway`);
    if (exited !== null) {
      throw new FtcpError('FTCP_LAB_GATEWAY', `gateway ${exited} before it was ready; ${logFile} ends with:\n${tailOf(logFile)}`);
    }
    if (Date.now() >= deadline) {
      throw new FtcpError('FTCP_LAB_GATEWAY', `gateway not ready within ${timeoutMs} ms (no ${readyFile}); ${logFile} ends with:\n${tailOf(logFile)}`);
    }
    await sleep(100);
  }
}

export async function labDown(name: string): Promise<void> {
  checkLabName(name);
  const topo = await readState(name);
  const gwPids: number[] = [];
  if (topo?.gatewayPid) gwPids.push(topo.gatewayPid);
  try {
    const ready = JSON.parse(readFileSync(join(labStateDir(name), 'gateway.ready'), 'utf8')) as { pid?: unknown };
    if (typeof ready.pid === 'number') gwPids.push(ready.pid);
  } catch { /* none */ }
  const problems = await teardown(roleList(name), gwPids, labStateDir(name));
  if (problems.length > 0) throw new FtcpError('FTCP_LAB_DOWN', `lab '${name}' not fully removed: ${problems.join('; ')}`);
}

export async function labStatus(name: string): Promise<LabStatus> {
  checkLabName(name);
  const topology = await readState(name);
  const present = await listNetns();
  const namespaces: Record<string, boolean> = {};
  const sbNs = standbyNamespaces(name);
  const standby = Boolean(topology?.standby) || present.has(sbNs.gw2) || present.has(sbNs.net);
  for (const n of roleList(name, standby)) namespaces[n] = present.has(n);
  let gatewayAlive = false;
  const pid = topology?.gatewayPid;
  if (pid && pidAlive(pid) && namespaces[labNamespaces(name).gw]) {
    gatewayAlive = (await netnsPids(labNamespaces(name).gw)).includes(pid);
  }
  return { topology, namespaces, gatewayAlive };
}

/** Brings a lab up (a random name unless given), runs `fn`, and always takes the lab down. */
export async function withLab<T>(opts: Omit<LabUpOptions, 'name'> & { name?: string }, fn: (t: LabTopology) => Promise<T>): Promise<T> {
  const name = opts.name ?? randomLabName();
  const t = await labUp({ ...opts, name });
  try {
    return await fn(t);
  } finally {
    await labDown(name);
  }
}

/** What of lab `name` is still present: namespaces, processes in them or naming its state dir, the state dir. */
export async function listLeftovers(name: string): Promise<string[]> {
  checkLabName(name);
  const out: string[] = [];
  const present = await listNetns();
  const seen = new Set<number>();
  for (const ns of roleList(name)) {
    if (!present.has(ns)) continue;
    out.push(`netns ${ns}`);
    for (const p of await netnsPids(ns)) {
      seen.add(p);
      out.push(`process ${p} (${procComm(p)}) in ${ns}`);
    }
  }
  const stateDir = labStateDir(name);
  for (const p of pidsMentioning(stateDir)) if (!seen.has(p)) out.push(`process ${p} (${procComm(p)}) using ${stateDir}`);
  if (existsSync(stateDir)) out.push(`state dir ${stateDir}`);
  return out;
}
