/**
 * `ftcp drill --fault gateway-failover[:before|:outage|:rebuild]`: the primary gateway HOST
 * dies mid-transfer in a `--standby-gateway --log remote` lab (issue 14 item 4): every process
 * in <n>-gw frozen with SIGSTOP and its four links down (faults.ts hostFreeze). keepalived on
 * <n>-gw2 misses three advertisements, takes 198.18.1.1 and 198.18.2.1, and its notify hook
 * runs `ftcp gateway takeover`: the standby claims the log's epoch (fencing the frozen primary
 * at the log server), lists and adopts every open connection, and forwards.
 *
 *   clients ─────────────────────────────────────────────────────────────────────▶ t
 *   gateway-failover           freeze ── VRRP ── MASTER hook: takeover ··· server crash(es), if any
 *   gateway-failover:before    crash 1 ··· caught up ··· freeze ── takeover
 *   gateway-failover:outage    freeze ─ crash 1 ── takeover          (the servers die while no gateway is active)
 *   gateway-failover:rebuild   freeze ── takeover ─ crash 1          (its rebuild runs in gw2 on connections just adopted)
 *
 * The places are gateway-kill's (gwfault.ts faultPlace; drill.ts puts both around crash 1 the same way):
 * `kill` is the freeze, `restart` waits for gw2's MASTER hook to have returned.
 *
 * The supervisor's liveness notices go to the oracle on 198.18.2.1:7071, a virtual address:
 * both gateways bind it (ip_nonlocal_bind on both hosts), so the notices reach whichever holds it.
 *
 * Beyond the drill's usual checks (judgeGatewayFailover): every connection open at the death
 * (client-side capture) adopted by gw2 and none passing it unprotected, each moving data
 * again; and the old primary, thawed once the clients are done (its links up: the host is
 * back), is not active (status role `fenced`: the log server told it; or `standby`: its own
 * keepalived released it first, and a released gateway writes nothing, so it may never hear;
 * both drop every protected packet, and only a claim of its own makes either active), sent no
 * TCP segment to the client after the takeover began (a second capture at the client, of
 * frames from the primary's MAC address only), and left the addresses on gw2 (nopreempt).
 * The figure: from the freeze to data flowing again (gwkill.ts resumeAfterKill over the
 * client-side capture, the takeover's start as the boundary: nothing is forwarded before it).
 */
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { walkCapture } from '../inspect/segments.js';
import { UsageError } from '../util/errors.js';
import { execIn } from './exec.js';
import { hostFreeze, hostRejoin, hostThaw } from './faults.js';
import { countTraceLines, emptyGatewayKill, resumeAfterKill, untilRecoveryCaughtUp, type GatewayKillReport } from './gwkill.js';
import { faultPlace, type FaultEnd, type FaultPlace, type GatewayFault } from './gwfault.js';
import { gatewayStatus, gatewayStatusIn, startCapture } from './procs.js';
import { holdsVips, lastTransition, waitTransition, type StandbyTopology } from './standby.js';
import type { LabTopology } from './topology.js';

export const FAILOVER_FAULTS = {
  'gateway-failover': 'the primary gateway host dies mid-transfer (its processes frozen, its links down); keepalived moves the addresses to gw2, whose gateway takes over; the server crashes (if any) after it',
  'gateway-failover:before': 'a server crash first; once every connection caught up (rebuilt, translated), the primary host dies',
  'gateway-failover:outage': 'the primary host dies at the first crash point; the servers killed at once, before the standby took over',
  'gateway-failover:rebuild': 'the primary host dies at the first crash point; the servers killed as soon as the standby took over',
} as const;
export type FailoverFault = keyof typeof FAILOVER_FAULTS;

/** The issue's aim for a failover (issue 14 item 5): printed beside the figure, not a check. */
export const FAILOVER_AIM_MS = 1000;
/** How long the drill waits for gw2's takeover, and for the thawed primary to learn it is fenced. */
const TAKEOVER_TIMEOUT_MS = 15_000;
const FENCED_WAIT_MS = 10_000;

export function isFailoverFault(s: string): s is FailoverFault {
  return s in FAILOVER_FAULTS;
}

/**
 * A failover needs the pair: a log both hosts reach (the log server) is what gw2 adopts from;
 * an embedded log lives and dies inside the primary.
 */
export function checkFailoverFault(fault: FailoverFault, log: string, crashes: number): void {
  if (log !== 'remote') {
    throw new UsageError(`--fault ${fault} needs --log remote: the standby gateway adopts the open connections from the log server both gateway hosts reach; an embedded log (${log}) lives inside the primary and dies with it`);
  }
  if (fault !== 'gateway-failover' && crashes < 1) throw new UsageError(`--fault ${fault} places the primary's death around a server crash: it needs --crashes 1 or more`);
}

/** The failover as the drill reports it: gateway-kill's report (killedAt is the freeze) and what only a failover has. */
export interface GatewayFailoverReport extends Omit<GatewayKillReport, 'fault'> {
  fault: FailoverFault;
  /** From the freeze: gw2's MASTER hook started (VRRP noticed the death; spawnedMs holds the same),
   *  and returned (the takeover done; readyMs holds the same). */
  masterMs: number;
  /** From the freeze: gw2's takeover began (the earlier of its MASTER hook and its own takeover's
   *  start, --takeover-on-address); -1: unknown. Data may flow from gw2 from then on. */
  takeoverStartMs: number;
  /** gw2's takeover report (status standby.lastTakeover): its claim, its list + adopt, in ms; doneMs: when
   *  it completed, from the freeze (readyMs adds the notify hook's own exit, a node process, after it). */
  takeover: { epoch: number | null; claimMs: number; adoptMs: number; totalMs: number; adopted: number; doneMs: number } | null;
  /** The old primary, thawed after the clients finished. */
  oldPrimary: {
    /** Its role (status `role`): 'fenced' (it heard from the log server that gw2 claimed the log) or
     *  'standby' (its own keepalived, back in FAULT or BACKUP, released it first: it has nothing
     *  left to write, so it may never hear); never 'active'. null: it did not answer. */
    role: string | null;
    /** Its keepalived's last notify (null: none since lab up), and whether gw2 still holds both addresses (nopreempt). */
    lastState: string | null;
    gw2HoldsAddresses: boolean;
    fencedDrops: number;
    /** TCP segments from the primary's MAC address that reached the client after gw2's takeover began. */
    segmentsAfterTakeover: number;
    /** ... and before the freeze (proves the capture saw the primary's frames). */
    segmentsBefore: number;
    error?: string;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The first MASTER line of host gw2's notify transitions (epoch ms), or -1. */
function firstMasterAt(sb: StandbyTopology): number {
  let text = '';
  try { text = readFileSync(path.join(sb.vrrpDir.gw2, 'transitions'), 'utf8'); } catch { return -1; }
  const m = /^(\d+(?:\.\d+)?) MASTER$/m.exec(text);
  return m ? Math.round(Number(m[1]) * 1000) : -1;
}

/** The MAC address of `dev` in `ns`. */
async function macOf(ns: string, dev: string): Promise<string> {
  const r = await execIn(ns, 'cat', [`/sys/class/net/${dev}/address`]);
  const mac = r.stdout.trim();
  if (r.code !== 0 || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) throw new Error(`no MAC address for ${dev} in ${ns}: ${r.stderr.trim()}`);
  return mac;
}

/**
 * The fault in the halves drill.ts places around crash 1 (as GatewayKiller's): kill() freezes
 * the primary host, restart() waits for gw2's takeover; arm() before the clients start,
 * afterClients() once they are done (thaws the primary, waits until it knows it is fenced).
 */
export class GatewayFailover implements GatewayFault<{ gatewayFailover: GatewayFailoverReport }> {
  readonly report: GatewayFailoverReport;
  private frozen: number[] = [];
  private primaryCapture: { stop(): Promise<string> } | null = null;
  private readonly sb: StandbyTopology;
  private readonly macPcap: string;

  constructor(private readonly topo: LabTopology, fault: FailoverFault, work: string, private readonly say: (m: string) => void) {
    if (!topo.standby) throw new UsageError(`--fault ${fault}: lab '${topo.name}' has no standby gateway host`);
    this.sb = topo.standby;
    this.macPcap = path.join(work, 'client-from-primary.pcap');
    this.report = {
      ...emptyGatewayKill('gateway-kill'), fault, masterMs: -1, takeoverStartMs: -1, takeover: null,
      oldPrimary: { role: null, lastState: null, gw2HoldsAddresses: false, fencedDrops: 0, segmentsAfterTakeover: 0, segmentsBefore: 0 },
    };
  }

  get fault(): FailoverFault {
    return this.report.fault;
  }

  get place(): FaultPlace {
    return faultPlace(this.report.fault);
  }

  /** Before the clients start: a capture at the client of the TCP frames the primary sends. */
  async arm(): Promise<void> {
    const mac = await macOf(this.topo.namespaces.gw, this.topo.interfaces.gwClient);
    this.primaryCapture = await startCapture(this.topo.namespaces.client, this.topo.interfaces.client, this.macPcap, `tcp and ether src ${mac}`);
  }

  async kill(clientsAt: number): Promise<void> {
    const { pids, frozenAt } = await hostFreeze(this.topo);
    this.frozen = pids;
    Object.assign(this.report, { oldPid: this.topo.gatewayPid ?? 0, killedAt: frozenAt, faultAtMs: frozenAt - clientsAt });
    this.say(`gateway fault: primary host ${this.topo.namespaces.gw} frozen (${pids.length} processes) and cut off ${frozenAt - clientsAt} ms after the clients started`);
  }

  /** Waits (bounded) until gw2's MASTER hook has returned: keepalived holds the addresses, the takeover is done. */
  async restart(): Promise<void> {
    const r = this.report;
    try {
      await waitTransition(this.sb, 'gw2', 'MASTER', TAKEOVER_TIMEOUT_MS, () => null);
      const doneAt = Date.now();
      const masterAt = firstMasterAt(this.sb);
      r.masterMs = masterAt < 0 ? -1 : masterAt - r.killedAt;
      r.spawnedMs = r.masterMs;
      r.readyMs = doneAt - r.killedAt;
      r.newPid = this.sb.gateway2Pid ?? 0;
      this.say(`gateway fault: gw2 MASTER ${r.masterMs} ms after the freeze, its takeover done by ${r.readyMs} ms`);
    } catch (err) {
      r.error = (err as Error).message.split('\n')[0]!.slice(0, 300);
      this.say(`gateway fault: no takeover: ${r.error}`);
    }
  }

  async killAndRestart(clientsAt: number): Promise<void> {
    await this.kill(clientsAt);
    await this.restart();
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  untilCaughtUp(crashAt: number, services: number): Promise<any> {
    return untilRecoveryCaughtUp(this.topo, crashAt, services, this.say);
  }

  /** The active gateway's status: gw2's once the primary died. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  status(): Promise<any> {
    return this.report.killedAt < 0 ? gatewayStatus(this.topo.name) : gatewayStatusIn(this.sb.namespaces.gw2);
  }

  /**
   * Once the clients are done: the primary host comes back (links up, processes continued;
   * before `lab down`, which must not meet a frozen host either), and must learn from the log
   * server that it is fenced (bounded wait); then the capture of its frames ends.
   */
  async afterClients(): Promise<void> {
    const o = this.report.oldPrimary;
    try {
      if (this.frozen.length === 0) return;
      await hostThaw(this.topo, this.frozen);
      this.say('gateway fault: the old primary host is back (thawed, its log links up; its client and server links follow once it is fenced)');
      for (const t0 = Date.now(); Date.now() - t0 < FENCED_WAIT_MS; await sleep(200)) {
        try {
          const st = await gatewayStatus(this.topo.name);
          o.role = typeof st.role === 'string' ? st.role : null;
          delete o.error;
          if (o.role === 'fenced' || o.role === 'standby') break;
        } catch (err) {
          o.error = (err as Error).message.split('\n')[0]!.slice(0, 300);
        }
      }
      await hostRejoin(this.topo);
      await sleep(1000); // whatever it would send toward the client once its links are up; VRRP adverts both ways
      const st = await gatewayStatus(this.topo.name).catch(() => null);
      if (st !== null) {
        o.role = typeof st.role === 'string' ? st.role : null;
        o.fencedDrops = Number(st.drops?.FENCED ?? 0);
      }
      o.lastState = lastTransition(this.sb, 'gw')?.state ?? null;
      o.gw2HoldsAddresses = await holdsVips(this.sb.namespaces.gw2, this.sb);
    } finally {
      await this.primaryCapture?.stop();
      this.primaryCapture = null;
    }
  }

  async finish(end: FaultEnd): Promise<{ fields: { gatewayFailover: GatewayFailoverReport }; failures: string[] }> {
    const r = await this.fill(end);
    return { fields: { gatewayFailover: r }, failures: judgeGatewayFailover(r) };
  }

  /** Fills in what only the end of the drill knows: the captures, the trace, gw2's status. */
  private async fill({ pcap, serverPorts, clientIp, traceText, status }: FaultEnd): Promise<GatewayFailoverReport> {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const st = status as any;
    const r = this.report;
    if (r.killedAt < 0) return r;
    const killNs = BigInt(r.killedAt) * 1_000_000n;
    const t = st?.standby?.lastTakeover;
    if (t && typeof t === 'object') {
      const doneMs = typeof t.at === 'string' ? Date.parse(t.at) - r.killedAt : -1;
      r.takeover = { epoch: t.epoch ?? null, claimMs: t.claimMs, adoptMs: t.adoptMs, totalMs: t.totalMs, adopted: t.adopted, doneMs };
    }
    // gw2 may forward from its takeover's start on. That is the MASTER hook's time only when the
    // hook takes over; with --takeover-on-address the gateway sees the address keepalived put
    // on its host and takes over itself, often before the hook (a process of its own) has
    // written its timestamp. The earlier of the two.
    const startedMs = r.takeover !== null && r.takeover.doneMs >= 0 ? r.takeover.doneMs - r.takeover.totalMs : Infinity;
    r.takeoverStartMs = Math.min(startedMs, r.masterMs < 0 ? Infinity : r.masterMs);
    if (!Number.isFinite(r.takeoverStartMs)) r.takeoverStartMs = -1;
    const takeoverNs = BigInt(r.killedAt + Math.max(0, Math.round(r.takeoverStartMs))) * 1_000_000n;
    Object.assign(r, resumeAfterKill(pcap, serverPorts, clientIp, killNs, takeoverNs));
    r.traceLines = countTraceLines(traceText, killNs);
    const adopted = st?.adoption?.adopted;
    r.adopted = typeof adopted === 'number' ? adopted : null;
    r.unknownFlows = Number(st?.south?.unknownFlows ?? 0);
    walkCapture(await readFile(this.macPcap), (s) => {
      if (s.dst !== clientIp) return;
      if (s.tNs < killNs) r.oldPrimary.segmentsBefore++;
      else if (s.tNs >= takeoverNs) r.oldPrimary.segmentsAfterTakeover++;
    }, () => {});
    return r;
  }
}

/** The failover's failures (empty: it held). */
export function judgeGatewayFailover(r: GatewayFailoverReport): string[] {
  const f = r.fault;
  if (r.killedAt < 0) return [`${f}: the clients had finished before the primary host died: use more --bytes / --lines`];
  if (r.error !== undefined) return [`${f}: gw2 did not take over: ${r.error}`];
  const out: string[] = [];
  if (r.openAtKill === 0) out.push(`${f}: no connection was open at the primary's death (client-side capture): the fault proved nothing`);
  if (r.adopted === null) out.push(`${f}: gw2 reports no adoption (its status has no adoption.adopted)`);
  else if (r.adopted < r.openAtKill) out.push(`${f}: gw2 adopted ${r.adopted} connection(s) of the ${r.openAtKill} open at the primary's death`);
  if (r.unknownFlows > 0) out.push(`${f}: ${r.unknownFlows} connection(s) passed gw2 unprotected (south.unknownFlows: not adopted from the log)`);
  if (r.resumed < r.openAtKill) out.push(`${f}: ${r.openAtKill - r.resumed} of the ${r.openAtKill} connection(s) open at the primary's death never moved data again`);
  const o = r.oldPrimary;
  if (o.role !== 'fenced' && o.role !== 'standby') out.push(`${f}: the old primary, back, is neither fenced nor standby (role ${o.role ?? 'unknown'}${o.error ? `; ${o.error}` : ''}): two gateways could both acknowledge client data`);
  if (!o.gw2HoldsAddresses) out.push(`${f}: once the old primary was back, gw2 no longer held both addresses (the primary's keepalived ${o.lastState ?? 'unknown'}): it took them back from the gateway that holds the log`);
  if (o.segmentsAfterTakeover > 0) out.push(`${f}: the old primary sent ${o.segmentsAfterTakeover} TCP segment(s) to the client after gw2's takeover began`);
  if (o.segmentsBefore === 0) out.push(`${f}: the capture of the primary's frames saw none before its death: the no-segment-after check proved nothing`);
  return out;
}

export function formatGatewayFailover(r: GatewayFailoverReport): string[] {
  const ms = (n: number) => (n < 0 ? '-' : `${n.toFixed(0)} ms`);
  if (r.killedAt < 0) return ['', `  gateway fault ${r.fault}: not applied (the clients had finished)`];
  const t = r.takeover;
  const o = r.oldPrimary;
  return [
    '',
    `  gateway fault ${r.fault}: primary host frozen and cut off at ${r.faultAtMs} ms (gateway ${r.oldPid}); gw2 MASTER after ${ms(r.masterMs)}, its takeover began after ${ms(r.takeoverStartMs)}`
      + (t ? `, takeover done after ${ms(t.doneMs)} (claim ${ms(t.claimMs)}, list + adopt ${ms(t.adoptMs)}, epoch ${t.epoch ?? '-'})` : '')
      + `, the hook returned after ${ms(r.readyMs)}${r.error ? ` (FAILED: ${r.error})` : ''}`,
    `    data flowing again after the death: first connection ${ms(r.firstResumeMs)}, every connection ${ms(r.allResumedMs)} (${r.resumed} of ${r.openAtKill} open at the death; aim ≤ ${FAILOVER_AIM_MS} ms); every connection caught up ${ms(r.allCaughtUpMs)}`,
    `    adoption by gw2: ${r.adopted === null ? 'not reported' : `${r.adopted} adopted`} of ${r.openAtKill} open; ${r.unknownFlows} unknown (unprotected) connection(s); stability trace: ${r.traceLines.before} lines before the death, ${r.traceLines.after} after`,
    `    old primary, thawed: role ${o.role ?? '-'}, ${o.fencedDrops} FENCED drops, ${o.segmentsAfterTakeover} TCP segments to the client after the takeover began (${o.segmentsBefore} before its death); its keepalived ${o.lastState ?? '-'}, the addresses ${o.gw2HoldsAddresses ? 'still on gw2' : 'NOT on gw2'}`,
  ];
}
