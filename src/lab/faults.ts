/**
 * Faults on the log link of a lab started with `--log remote` (the drills and the lab
 * tests use them):
 *
 *   <n>-gw  gl1 198.18.3.1 ──── log link 1 ──── l1 198.18.3.2  <n>-log (ftcp logserver)
 *           gl2 198.18.4.1 ──── log link 2 ──── l2 198.18.4.2
 *
 *   logLoss(topo, on)              netem on both ends of both links: loss, reordering, duplication
 *   logPathDown(topo, which, down) link 1 or 2 down (both ends) / up again
 *   logRestart(topo)               kill -9 the log server, start it again on the same disk store
 *
 * and on the gateway itself (any lab with a gateway; `ftcp drill --fault gateway-kill`):
 *
 *   gatewayKill(topo)              kill -9 the gateway process (the TUN and the steering stay)
 *   restartGateway(topo)           (lab.ts) the same command line again, as systemd's Restart=always
 *
 * and on the primary gateway HOST of a `--standby-gateway` lab (`--fault gateway-failover`):
 *
 *   hostFreeze(topo)               every process in <n>-gw stopped (SIGSTOP) and its four links down
 *   hostThaw(topo, pids)           its log links up, those processes continued (the host is back)
 *   hostRejoin(topo)               its client and server links up again
 *
 * Each is undone by calling it again with the opposite argument (logRestart needs no undo);
 * `ftcp lab down` removes everything with the namespaces either way.
 */
import { existsSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FtcpError } from '../util/errors.js';
import { execCmd, mustExec } from './exec.js';
import { startLogServer, type LabLogStore } from './logserver.js';
import { netnsPids, pidAlive } from './lab.js';
import type { LabTopology } from './topology.js';

/** The netem settings of logLoss (each end, each direction). */
export const LOG_NETEM = ['delay', '1ms', 'loss', '3%', 'duplicate', '2%', 'reorder', '20%', '50%'] as const;

function logLinkEnds(topo: LabTopology, which: 1 | 2): [string, string][] {
  const i = topo.interfaces;
  return which === 1
    ? [[topo.namespaces.gw, i.gwLog1], [topo.namespaces.log, i.log1]]
    : [[topo.namespaces.gw, i.gwLog2], [topo.namespaces.log, i.log2]];
}

function requireRemote(topo: LabTopology, what: string): void {
  if (topo.log !== 'remote') throw new FtcpError('FTCP_LAB_FAULT', `${what}: lab '${topo.name}' does not run a log server (--log remote)`);
}

/** The userspace equivalent of LOG_NETEM, for kernels without sch_netem (see logLoss). */
export const LOG_IMPAIRMENT = 'loss=0.03 dup=0.02 reorder=0.2 reorderMs=5';

/**
 * Loss, reordering and duplication on both log links, or back to clean. netem on all four
 * ends when the kernel has it; otherwise (no sch_netem, as on some CI kernels) the log
 * server's userspace impairment (its --impair-file, in both directions on both links).
 * Returns which one was used.
 */
export async function logLoss(topo: LabTopology, on: boolean): Promise<'netem' | 'userspace'> {
  requireRemote(topo, 'logLoss');
  const impairFile = join(topo.stateDir, 'logserver.impair');
  if (!on) {
    const had = existsSync(impairFile);
    await rm(impairFile, { force: true });
    for (const [ns, dev] of [...logLinkEnds(topo, 1), ...logLinkEnds(topo, 2)]) {
      await execCmd('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', dev, 'root']); // absent: fine
    }
    return had ? 'userspace' : 'netem';
  }
  const ends = [...logLinkEnds(topo, 1), ...logLinkEnds(topo, 2)];
  const first = await execCmd('ip', ['netns', 'exec', ends[0]![0], 'tc', 'qdisc', 'replace', 'dev', ends[0]![1], 'root', 'netem', ...LOG_NETEM]);
  if (first.code !== 0 && /unknown|not found|No such file/i.test(first.stderr)) {
    await writeFile(impairFile, LOG_IMPAIRMENT + '\n');
    await sleep(300); // the log server polls the file every 100 ms
    return 'userspace';
  }
  if (first.code !== 0) throw new FtcpError('FTCP_LAB_FAULT', `logLoss: tc netem failed: ${first.stderr.trim()}`);
  for (const [ns, dev] of ends.slice(1)) await mustExec('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'replace', 'dev', dev, 'root', 'netem', ...LOG_NETEM]);
  return 'netem';
}

/** Takes log link `which` down (both ends), or brings it back up. */
export async function logPathDown(topo: LabTopology, which: 1 | 2, down: boolean): Promise<void> {
  requireRemote(topo, 'logPathDown');
  for (const [ns, dev] of logLinkEnds(topo, which)) await mustExec('ip', ['-n', ns, 'link', 'set', dev, down ? 'down' : 'up']);
}

/** The running log server's pid (from its ready file), or null. */
export function logServerPid(topo: LabTopology): number | null {
  const f = join(topo.stateDir, 'logserver.ready');
  if (!existsSync(f)) return null;
  try {
    const pid = (JSON.parse(readFileSync(f, 'utf8')) as { pid?: unknown }).pid;
    return typeof pid === 'number' && Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * kill -9 the log server (a crash: no flush, no goodbye) and start it again on the same disk
 * store (or, `store: 'memory'`, on a fresh memory store: the benchmark's remote-memory mode).
 */
export async function logRestart(topo: LabTopology, store: LabLogStore = 'disk'): Promise<{ oldPid: number; newPid: number }> {
  requireRemote(topo, 'logRestart');
  const oldPid = logServerPid(topo);
  if (oldPid === null) throw new FtcpError('FTCP_LAB_FAULT', `logRestart: no log server running in lab '${topo.name}'`);
  process.kill(oldPid, 'SIGKILL');
  for (let i = 0; i < 100 && alive(oldPid); i++) await sleep(20);
  if (alive(oldPid)) throw new FtcpError('FTCP_LAB_FAULT', `logRestart: log server ${oldPid} survived SIGKILL`);
  await rm(join(topo.stateDir, 'logserver.ready'), { force: true });
  const newPid = await startLogServer(topo, 15_000, store);
  return { oldPid, newPid };
}

/**
 * kill -9 the lab's gateway (a crash: no flush, no goodbye) and wait (bounded) until it is
 * gone. Returns its pid and the epoch ms of the signal. What it leaves (the TUN device, the
 * steering rules, the disk log, the stability trace) is what the next one must reuse.
 */
export async function gatewayKill(topo: LabTopology): Promise<{ pid: number; killedAt: number }> {
  const pid = topo.gatewayPid;
  if (pid === null || !pidAlive(pid)) throw new FtcpError('FTCP_LAB_FAULT', `gatewayKill: no gateway running in lab '${topo.name}'`);
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 250 && pidAlive(pid); i++) await sleep(2);
  if (pidAlive(pid)) throw new FtcpError('FTCP_LAB_FAULT', `gatewayKill: gateway ${pid} survived SIGKILL`);
  return { pid, killedAt };
}

/** The primary gateway host's four links (client, server, both log links). */
function gatewayHostLinks(topo: LabTopology): string[] {
  const i = topo.interfaces;
  return [i.gwClient, i.gwServer, i.gwLog1, i.gwLog2];
}

/**
 * The primary gateway host dies: every process in <n>-gw (the gateway, keepalived, its hooks)
 * frozen with SIGSTOP and its links down, in ONE shell so the two happen within a few ms (with
 * one `ip` process per link a loaded machine left the links up for half a second after the
 * freeze: i14-standby-lab's test saw gw2 take over while gw still forwarded). Returns the pids
 * frozen and the epoch ms just before the signal. A frozen process keeps its state, as a hung
 * VM does; hostThaw brings it back.
 */
export async function hostFreeze(topo: LabTopology): Promise<{ pids: number[]; frozenAt: number }> {
  const ns = topo.namespaces.gw;
  const pids = await netnsPids(ns);
  if (pids.length === 0) throw new FtcpError('FTCP_LAB_FAULT', `hostFreeze: no process in ${ns}`);
  const batch = gatewayHostLinks(topo).map((i) => `link set ${i} down`).join('\n');
  const frozenAt = Date.now();
  // `;` not `&&`: a short-lived process of the listing (keepalived's track script forks every
  // second) may be gone before the signal, and kill's status must not keep the links up.
  const r = await execCmd('bash', ['-c', `kill -STOP ${pids.join(' ')} 2>/dev/null; ip -n ${ns} -batch - <<'EOF'\n${batch}\nEOF`]);
  if (r.code !== 0) throw new FtcpError('FTCP_LAB_FAULT', `hostFreeze: ${r.stderr.trim()}`);
  return { pids, frozenAt };
}

/**
 * The frozen host comes back in two steps. hostThaw: its log links up, then its processes
 * continued (SIGCONT), its client and server links still down; hostRejoin: those up too. A
 * process continued runs first whatever it was doing when it froze (a SYN or a segment read
 * from the TUN before the freeze, written out after it) before any reply from the log server
 * can tell it that it is fenced; with its client and server links down those stale packets
 * die on the host, as they would on a VM whose network comes back after its CPUs.
 */
export async function hostThaw(topo: LabTopology, pids: readonly number[]): Promise<void> {
  await setHostLinks(topo, [topo.interfaces.gwLog1, topo.interfaces.gwLog2], 'up');
  for (const p of pids) {
    try { process.kill(p, 'SIGCONT'); } catch { /* gone */ }
  }
}

export async function hostRejoin(topo: LabTopology): Promise<void> {
  await setHostLinks(topo, [topo.interfaces.gwClient, topo.interfaces.gwServer], 'up');
}

async function setHostLinks(topo: LabTopology, links: string[], state: 'up' | 'down'): Promise<void> {
  const r = await execCmd('ip', ['-n', topo.namespaces.gw, '-batch', '-'], { input: links.map((i) => `link set ${i} ${state}`).join('\n') });
  if (r.code !== 0) throw new FtcpError('FTCP_LAB_FAULT', `links ${links.join(', ')} ${state} in ${topo.namespaces.gw}: ${r.stderr.trim()}`);
}
