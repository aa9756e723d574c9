/**
 * The standby-gateway lab (`ftcp lab up --standby-gateway`): a second gateway host <n>-gw2, the
 * client and server networks (and both log links) as shared segments, and keepalived in both
 * gateway namespaces moving the gateway's addresses between them.
 *
 *   <n>-client                 <n>-net (the switches)                  <n>-gw / <n>-gw2
 *    c0 198.18.1.2 ── c-cli ─┐                       ┌─ c-gw  ── gc0 198.18.1.11 | 198.18.1.12
 *                            br-c (client network) ──┤          + VIP 198.18.1.1 on the master
 *                                                    └─ c-gw2 ── gc0 (on <n>-gw2)
 *   <n>-server                                       ┌─ s-gw  ── gs0 198.18.2.11 | 198.18.2.12
 *    s0 198.18.2.2 ── s-srv ─┤ br-s (server network) ┤          + VIP 198.18.2.1 on the master
 *                                                    └─ s-gw2 ── gs0 (on <n>-gw2)
 *   <n>-log  l1 198.18.3.2 ── br-l1 ── gl1 198.18.3.1 (gw) | 198.18.3.3 (gw2)
 *            l2 198.18.4.2 ── br-l2 ── gl2 198.18.4.1 (gw) | 198.18.4.3 (gw2)
 *
 * Why a namespace of bridges: it stands for the switches of a real site, so it survives the
 * death of either gateway host (freezing <n>-gw and taking its links down leaves <n>-gw2's
 * segments intact), and every host keeps its interface names and the addresses it has without
 * the flag: the client and server still route via 198.18.1.1 / 198.18.2.1 (now virtual), the log
 * server still listens on 198.18.3.2 / 198.18.4.2, and a gateway's command line is the same on
 * both hosts (gc0, gs0, the oracle on 198.18.2.1, which ip_nonlocal_bind lets the backup bind
 * before it holds the address). The two log links stay two independent segments.
 *
 * Files, all under the lab's state dir (so `lab down` removing it removes them):
 *   vrrp-gw/, vrrp-gw2/   keepalived.conf, notify.sh, check-gateway.sh, keepalived.pid, vrrp.pid,
 *                         keepalived.log, transitions (one line per notify: "<epoch s> STATE")
 *   gw2/                  the standby gateway's --state-dir (ready file, steering record, log)
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FtcpError } from '../util/errors.js';
import { execCmd, mustExec } from './exec.js';
import { DEFAULT_ADVERT_INT_S, checkScript, keepalivedConfig, notifyScript, type VrrpHost } from './keepalived.js';
import { ADDRESSES, INTERFACES, LAB_CONTROL, PREFIX_LEN, type LabNamespaces } from './topology.js';

export type GatewayHost = 'gw' | 'gw2';

/** One gateway host's own addresses (the virtual ones are ADDRESSES.gwClient / gwServer). */
export interface HostAddresses { client: string; server: string; log1: string; log2: string }

export const HOST_ADDRESSES: Readonly<Record<GatewayHost, HostAddresses>> = Object.freeze({
  gw: { client: '198.18.1.11', server: '198.18.2.11', log1: ADDRESSES.gwLog1, log2: ADDRESSES.gwLog2 },
  gw2: { client: '198.18.1.12', server: '198.18.2.12', log1: '198.18.3.3', log2: '198.18.4.3' },
});

/** The primary's VRRP priority is higher, so it wins the first election; nopreempt does the rest. */
export const PRIORITY: Readonly<Record<GatewayHost, number>> = Object.freeze({ gw: 150, gw2: 100 });

export interface StandbyTopology {
  /** <n>-gw2 and <n>-net. */
  namespaces: { gw2: string; net: string };
  hosts: Record<GatewayHost, HostAddresses>;
  /** The addresses keepalived moves (what clients and servers route through). */
  vips: { client: string; server: string };
  advertInt: number;
  /** Per host: keepalived's directory (config, scripts, pid files, transitions). */
  vrrpDir: Record<GatewayHost, string>;
  keepalivedPid: Record<GatewayHost, number | null>;
  /** The standby gateway's --state-dir, its pid and log; null pid in kernel mode. */
  gateway2StateDir: string;
  gateway2Pid: number | null;
  gateway2Log: string | null;
}

export function standbyNamespaces(name: string): { gw2: string; net: string } {
  return { gw2: `${name}-gw2`, net: `${name}-net` };
}

export function buildStandby(name: string, stateDir: string, withGateway: boolean, advertInt = DEFAULT_ADVERT_INT_S): StandbyTopology {
  return {
    namespaces: standbyNamespaces(name),
    hosts: { gw: { ...HOST_ADDRESSES.gw }, gw2: { ...HOST_ADDRESSES.gw2 } },
    vips: { client: ADDRESSES.gwClient, server: ADDRESSES.gwServer },
    advertInt,
    vrrpDir: { gw: join(stateDir, 'vrrp-gw'), gw2: join(stateDir, 'vrrp-gw2') },
    keepalivedPid: { gw: null, gw2: null },
    gateway2StateDir: join(stateDir, 'gw2'),
    gateway2Pid: null,
    gateway2Log: withGateway ? join(stateDir, 'gw2', 'gateway.log') : null,
  };
}

/** Bridge-side port names in <n>-net, per segment: [bridge, [port, peer namespace, peer ifname]...]. */
function segments(ns: LabNamespaces, sb: StandbyTopology): Array<[string, Array<[string, string, string]>]> {
  const { gw2 } = sb.namespaces;
  return [
    ['br-c', [['c-cli', ns.client, INTERFACES.client], ['c-gw', ns.gw, INTERFACES.gwClient], ['c-gw2', gw2, INTERFACES.gwClient]]],
    ['br-s', [['s-srv', ns.server, INTERFACES.server], ['s-gw', ns.gw, INTERFACES.gwServer], ['s-gw2', gw2, INTERFACES.gwServer]]],
    ['br-l1', [['l1-log', ns.log, INTERFACES.log1], ['l1-gw', ns.gw, INTERFACES.gwLog1], ['l1-gw2', gw2, INTERFACES.gwLog1]]],
    ['br-l2', [['l2-log', ns.log, INTERFACES.log2], ['l2-gw', ns.gw, INTERFACES.gwLog2], ['l2-gw2', gw2, INTERFACES.gwLog2]]],
  ];
}

/**
 * Wires the shared segments: the bridges in <n>-net, one veth per host and segment (created in
 * <n>-net, the far end moved into the host's namespace under its usual name). The namespaces
 * exist already; `step` throws when `up` was interrupted.
 */
export async function wireSegments(ns: LabNamespaces, sb: StandbyTopology, step: () => void): Promise<void> {
  const net = sb.namespaces.net;
  await mustExec('ip', ['-n', net, 'link', 'set', 'lo', 'up']);
  for (const [bridge, ports] of segments(ns, sb)) {
    step();
    // forward_delay 0: a port forwards at once (no STP on a lab switch with no loops).
    await mustExec('ip', ['-n', net, 'link', 'add', bridge, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    await mustExec('ip', ['-n', net, 'link', 'set', bridge, 'up']);
    for (const [port, peerNs, peerIf] of ports) {
      step();
      await mustExec('ip', ['-n', net, 'link', 'add', port, 'type', 'veth', 'peer', 'name', peerIf, 'netns', peerNs]);
      await mustExec('ip', ['-n', net, 'link', 'set', port, 'master', bridge, 'up']);
    }
  }
}

/** The role-gateway.sh arguments for one host: its own addresses on its four links. */
export function hostRoleArgs(a: HostAddresses): string[] {
  const cidr = (x: string) => `${x}/${PREFIX_LEN}`;
  return [
    '--if', `${INTERFACES.gwClient}=${cidr(a.client)}`, '--if', `${INTERFACES.gwServer}=${cidr(a.server)}`,
    '--if', `${INTERFACES.gwLog1}=${cidr(a.log1)}`, '--if', `${INTERFACES.gwLog2}=${cidr(a.log2)}`,
  ];
}

/**
 * A backup binds sockets on the virtual addresses it does not hold yet (the gateway's oracle on
 * 198.18.2.1): net.ipv4.ip_nonlocal_bind, a per-namespace sysctl.
 */
export async function allowNonlocalBind(netns: string): Promise<void> {
  await mustExec('ip', ['netns', 'exec', netns, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind']);
}

function vrrpHost(hostNs: string, a: HostAddresses): VrrpHost {
  return { name: hostNs, clientIf: INTERFACES.gwClient, serverIf: INTERFACES.gwServer, clientAddr: a.client, serverAddr: a.server };
}

/**
 * Writes host `h`'s keepalived directory: keepalived.conf, notify.sh, and (with a gateway)
 * check-gateway.sh tracking `readyFile`. `program` runs `gateway takeover|release` in the notify
 * hook (`[node, <repo>/bin/ftcp.js]`, or the lab's stand-in gateway); null: kernel forwarding
 * (the hook only records the transitions).
 */
export async function writeVrrpFiles(sb: StandbyTopology, h: GatewayHost, hostNs: Record<GatewayHost, string>, program: readonly string[] | null, readyFile: string): Promise<string> {
  const dir = sb.vrrpDir[h];
  const peer: GatewayHost = h === 'gw' ? 'gw2' : 'gw';
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const notify = join(dir, 'notify.sh');
  const check = join(dir, 'check-gateway.sh');
  await writeFile(notify, notifyScript({
    transitions: join(dir, 'transitions'),
    gateway: program === null ? null : { program, control: LAB_CONTROL },
  }), { mode: 0o755 });
  if (program !== null) await writeFile(check, checkScript(readyFile), { mode: 0o755 });
  const conf = join(dir, 'keepalived.conf');
  await writeFile(conf, keepalivedConfig({
    self: vrrpHost(hostNs[h], sb.hosts[h]), peer: vrrpHost(hostNs[peer], sb.hosts[peer]),
    vip: { client: sb.vips.client, server: sb.vips.server, prefixLength: PREFIX_LEN },
    priority: PRIORITY[h], advertInt: sb.advertInt, notifyScript: notify, checkScript: program === null ? null : check,
  }), { mode: 0o644 });
  return conf;
}

/** keepalived's command line for host `h` (run inside the host's namespace): VRRP only, in the foreground, its own pid files. */
export function keepalivedArgs(dir: string): string[] {
  return [
    '--vrrp', '--dont-fork', '--log-console', '--log-detail', '--no-syslog',
    '--use-file', join(dir, 'keepalived.conf'),
    '--pid', join(dir, 'keepalived.pid'), '--vrrp_pid', join(dir, 'vrrp.pid'),
  ];
}

/** `keepalived --config-test` of a written configuration, inside `netns` (it checks the interfaces). */
export async function testKeepalivedConfig(netns: string, conf: string): Promise<void> {
  const r = await execCmd('ip', ['netns', 'exec', netns, 'keepalived', '--config-test', '--use-file', conf]);
  if (r.code !== 0 || r.stderr.trim() !== '') {
    throw new FtcpError('FTCP_LAB_KEEPALIVED', `keepalived rejects ${conf} (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
  }
}

/** Starts keepalived for host `h` in `netns`, detached; returns its pid (the parent process). */
export function startKeepalived(netns: string, dir: string): number {
  const fd = openSync(join(dir, 'keepalived.log'), 'a');
  try {
    const child = spawn('ip', ['netns', 'exec', netns, 'keepalived', ...keepalivedArgs(dir)], { detached: true, stdio: ['ignore', fd, fd] });
    child.on('error', () => { /* reported by the wait for its state below */ });
    child.unref();
    if (child.pid === undefined) throw new FtcpError('FTCP_LAB_KEEPALIVED', `keepalived did not start in ${netns}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** The last state host `h`'s notify hook recorded and when (epoch ms), or null before the first. */
export function lastTransition(sb: StandbyTopology, h: GatewayHost): { state: string; atMs: number; rc: number | null } | null {
  let text = '';
  try { text = readFileSync(join(sb.vrrpDir[h], 'transitions'), 'utf8'); } catch { return null; }
  const lines = text.trim().split('\n').filter((l) => l.length > 0);
  const last = lines[lines.length - 1];
  if (last === undefined) return null;
  const m = /^(\d+(?:\.\d+)?) (\S+)(?: rc=(\d+))?$/.exec(last);
  if (!m) return null;
  return { state: m[2]!, atMs: Math.round(Number(m[1]) * 1000), rc: m[3] === undefined ? null : Number(m[3]) };
}

/**
 * Waits (bounded) until host `h`'s notify hook has finished a transition to `state`
 * (MASTER: keepalived holds the addresses and the gateway's takeover returned).
 */
export async function waitTransition(sb: StandbyTopology, h: GatewayHost, state: string, timeoutMs: number, alive: () => string | null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const t = lastTransition(sb, h);
    if (t && t.state === state && t.rc !== null) {
      if (t.rc !== 0) throw new FtcpError('FTCP_LAB_KEEPALIVED', `${h}: ${state} hook failed (rc=${t.rc}); see ${join(sb.vrrpDir[h], 'transitions.out')}`);
      return;
    }
    const dead = alive();
    if (dead !== null) throw new FtcpError('FTCP_LAB_KEEPALIVED', `${h}: keepalived ${dead}; ${join(sb.vrrpDir[h], 'keepalived.log')}`);
    if (Date.now() >= deadline) {
      throw new FtcpError('FTCP_LAB_KEEPALIVED', `${h}: no ${state} within ${timeoutMs} ms (last: ${t ? t.state : 'none'}); see ${join(sb.vrrpDir[h], 'keepalived.log')}`);
    }
    await sleep(50);
  }
}

/** Does `netns` hold both virtual addresses? */
export async function holdsVips(netns: string, sb: StandbyTopology): Promise<boolean> {
  const r = await execCmd('ip', ['-n', netns, '-o', '-4', 'addr', 'show']);
  if (r.code !== 0) return false;
  const has = (a: string) => r.stdout.includes(` ${a}/`);
  return has(sb.vips.client) && has(sb.vips.server);
}
