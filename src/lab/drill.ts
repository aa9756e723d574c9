/**
 * `ftcp drill`: a crash-and-recovery scenario run end to end in a fresh namespace lab.
 *
 *   1. lab up: the gateway protects the demo ports, embedded log, stability trace, and the
 *      liveness oracle on 198.18.2.1:7071 (heartbeat 50 ms)
 *   2. each demo server runs under `ftcp supervise` in <n>-server; tcpdump at the client's
 *      interface and at the server's
 *   3. the scenario's clients start in <n>-client, all at once; every byte checked by SHA-256;
 *      each reports its progress (bytes moved, responses checked) every 10 ms
 *   4. crashes: kill -9 of the server programs at seeded points of the transfer (placement.ts:
 *      crash k when the leading client has done fraction f_k, f_1 < ... < f_n in 0.15-0.75,
 *      or `crashAt`), so a drill means the same on a fast and a slow machine; a later crash
 *      also waits until every running client has moved on since the restarted program
 *      listened (out of the replay), except double-crash's, which come 10-40 ms after it,
 *      to land in the replay. zero-window stops the clients' reading first (their receive windows close)
 *      and resumes it after the kill; idle crashes once the idle connections have been quiet
 *      past the gateway's --idle-timeout. The supervisor restarts the servers
 *   5. the captures checked: no ack beyond the stable point reached the client, no RST, no
 *      FIN from a server that had not finished, no ICMP error; the gateway's recovery
 *      timeline per crash (detected, listening again, handshakes, replay, caught up); the
 *      gateway counted no divergence (its status `divergence.total`), except in the nondet
 *      scenarios, judged by nondet.ts: every client consistent or reset, every reset (and
 *      every RST at the client) a divergence the gateway counted
 *   6. lab down, whatever happened
 *
 * With `log: 'remote'` the gateway logs to `ftcp logserver` in <n>-log over both log links,
 * and `fault` injects a log-link fault 0.3 s after the clients start or at 5% of the
 * transfer, whichever comes first (src/lab/logfault.ts; the mechanisms in faults.ts):
 *   log-loss       netem loss, reordering and duplication on both log links, to the end
 *   log-path-down  the log link in use taken down, to the end
 *   log-restart    kill -9 of the log server (disk store) and an immediate restart; the
 *                  server crash comes only after the gateway is back with the restarted
 *                  log server, so the rebuild reads the replay from it
 * The report's `logLink` section (the gateway's log-link counters) shows the fault happened;
 * a fault that left no trace there is a failure. `gateway-kill` and its variants kill the
 * gateway itself and restart it (embedded disk log; src/lab/gwkill.ts has their timing and
 * their checks: every open connection adopted, none unprotected, the time to data flowing);
 * `gateway-failover` and its variants the primary of a standby pair (gwfailover.ts). Both are
 * driven through one interface, GatewayFault (gwfault.ts).
 *
 * The scenarios are in scenarios.ts; the report's shape, the crash timeline and the text in
 * drill-report.ts.
 *
 * Exit status 0 only if every connection survived byte-exact, the checks hold, and every
 * crash hit live connections (a crash after the clients finished proves nothing).
 */
import { mkdtemp, readFile, rm, copyFile } from 'node:fs/promises';
import { makeDirs } from '../util/fs.js';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { labUp, labDown, randomLabName } from './lab.js';
import { clientFinished, crashFractions, idleCrashAfterMs, leadingFraction, rateAcrossCrashes, reached, rng } from './placement.js';
import { startSupervisedServer, startLiveDemoClient, startCapture, gatewayStatus, stopProcess, type SupervisedServer } from './procs.js';
import { ADDRESSES } from './topology.js';
import { parseStabilityTrace } from '../inspect/ack-invariant.js';
import { summarizeCapture } from '../inspect/summary.js';
import { inspectCapture } from '../inspect/inspect.js';
import { ipToU32 } from '../wire/addr.js';
import { UsageError } from '../util/errors.js';
import { execIn } from './exec.js';
import { LOG_FAULTS, faultTrace, logLinkReport, runLogFault, type LogFault, type LogLinkReport } from './logfault.js';
import { divergenceFigures, judgeDeterministic, judgeNondet } from './nondet.js';
import { isRandomKind } from '../demo/random.js';
import { failuresByCode } from '../recovery/rebuild.js';
import { GATEWAY_FAULTS, GatewayKiller, checkGatewayFault, isGatewayFault, type GatewayKillFault } from './gwkill.js';
import { FAILOVER_FAULTS, GatewayFailover, checkFailoverFault, isFailoverFault, type FailoverFault } from './gwfailover.js';
import type { GatewayFault } from './gwfault.js';
import { PORTS, SCENARIOS, type Scenario } from './scenarios.js';
import { crashTimeline, jsonableInvariant, type DrillReport, type Kill } from './drill-report.js';

// The scenarios (scenarios.ts) and the report (drill-report.ts), for the callers of runDrill.
export { SCENARIOS, checkScenario, type Scenario } from './scenarios.js';
export { formatDrill, jsonableInvariant, type CrashReport, type DrillReport, type RecoveryTimes } from './drill-report.js';

const ORACLE_PORT = 7071;

export { LOG_FAULTS, type LogFault, type LogLinkReport };
export type DrillLog = 'embedded' | 'embedded:disk' | 'remote';
/** When the log fault starts: FAULT_AT_MS after the clients' start or at FAULT_AT_FRACTION of
 *  the transfer, whichever comes first (before the first crash, at 10% or later). */
const FAULT_AT_MS = 300;
const FAULT_AT_FRACTION = 0.05;
/** log-restart: where the clients wait for the restarted log server (see `held`). */
const LOG_RESTART_HOLD_AT = 0.5;

/** A log-link fault (needs --log remote) or a gateway fault (gwkill.ts). */
export function checkFault(s: string): LogFault | GatewayKillFault | FailoverFault {
  if (!(s in LOG_FAULTS) && !isGatewayFault(s) && !isFailoverFault(s)) throw new UsageError(`--fault: expected one of ${[...Object.keys(LOG_FAULTS), ...Object.keys(GATEWAY_FAULTS), ...Object.keys(FAILOVER_FAULTS)].join(', ')}; got '${s}'`);
  return s as LogFault | GatewayKillFault | FailoverFault;
}

export interface DrillOptions {
  scenario: Scenario;
  log: DrillLog;
  /** A log-link fault (needs log 'remote'), a kill of the gateway (log 'embedded:disk'), or the
   *  primary gateway host's death in a standby pair (log 'remote', gwfailover.ts). */
  fault?: LogFault | GatewayKillFault | FailoverFault;
  /** upload/download bytes per connection (default: the scenario's, else 200 MB). */
  bytes?: number;
  /** echo/kv/stall connections (upload/download use `streams` each). */
  connections?: number;
  streams: number;
  /** Requests per echo/kv/stall connection (default: the scenario's, else 3000). */
  lines?: number;
  seed: number;
  /** Crashes (default: the scenario's; 0 = the normal path only). */
  crashes?: number;
  /** The fractions of the transfer to crash at (their count is the number of crashes;
   *  default: seeded, see placement.ts). */
  crashAt?: number[];
  /** Keep the captures and the trace in this directory. */
  pcapDir?: string;
  /** sysctls set in the client's namespace before the clients start (e.g. net.ipv4.tcp_sack=0). */
  clientSysctls?: Record<string, string>;
  /** TUN offloads (virtio-net header, TSO/CSUM super-packets; default true; false: `--no-offload`). */
  offload?: boolean;
  name?: string;
  /** Progress lines (stderr). */
  progress?: (msg: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Bytes waiting unread in the client's sockets toward `port` (ss's Recv-Q), or -1. */
async function clientRecvQ(ns: string, ports: number[]): Promise<number> {
  const r = await execIn(ns, 'ss', ['-tnH', 'state', 'established']);
  if (r.code !== 0) return -1;
  let q = 0;
  for (const line of r.stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const peerPort = Number(f[3]!.slice(f[3]!.lastIndexOf(':') + 1));
    if (ports.includes(peerPort)) q += Number(f[0]) || 0;
  }
  return q;
}

/** Polls until the clients' receive queues stop growing (their windows are closed); bounded. */
async function waitWindowsClosed(ns: string, ports: number[], maxMs = 3000): Promise<number> {
  let last = -1;
  let same = 0;
  for (const t0 = Date.now(); Date.now() - t0 < maxMs; ) {
    const q = await clientRecvQ(ns, ports);
    if (q > 0 && q === last) {
      if (++same >= 2) return q;
    } else same = 0;
    last = q;
    await sleep(50);
  }
  return last;
}

export async function runDrill(opts: DrillOptions): Promise<DrillReport> {
  const say = opts.progress ?? (() => {});
  const spec = SCENARIOS[opts.scenario]!;
  const kinds = spec.kinds;
  const crashes = opts.crashAt?.length ?? opts.crashes ?? spec.crashes;
  if (opts.crashAt !== undefined && opts.crashes !== undefined && opts.crashes !== opts.crashAt.length) {
    throw new UsageError(`--crashes ${opts.crashes} and --crash-at with ${opts.crashAt.length} fraction(s) disagree`);
  }
  const connections = spec.connections ?? opts.connections ?? 50;
  const bytes = opts.bytes ?? spec.bytes ?? 200_000_000;
  const lines = opts.lines ?? spec.lines ?? 3000;
  const rand = rng(opts.seed);
  const targets = opts.crashAt ?? crashFractions(crashes, rand);
  const name = opts.name ?? randomLabName('ftcpd');
  const work = await mkdtemp(path.join(tmpdir(), 'ftcp-drill-'));
  const trace = path.join(work, 'stable.trace');
  const servers: SupervisedServer[] = [];
  const captures: Array<{ stop(): Promise<string> }> = [];
  const t0 = Date.now();
  const oracle = `${ADDRESSES.gwServer}:${ORACLE_PORT}`;
  const fault = opts.fault ?? null;
  const sysctls = { ...(spec.clientSysctls ?? {}), ...(opts.clientSysctls ?? {}) };
  const clientTimeoutMs = spec.timeoutMs ?? 240_000;
  const gwFault = fault !== null && (isGatewayFault(fault) || isFailoverFault(fault)) ? fault : null;
  const logFault = gwFault === null ? (fault as LogFault | null) : null;
  const failover = gwFault !== null && isFailoverFault(gwFault) ? gwFault : null;
  if (failover !== null) checkFailoverFault(failover, opts.log, crashes);
  else if (gwFault !== null) checkGatewayFault(gwFault as GatewayKillFault, opts.log, crashes);
  else if (fault !== null && opts.log !== 'remote') throw new UsageError(`--fault ${fault} needs --log remote`);
  say(`lab ${name}: up (log ${opts.log}${fault ? `, fault ${fault}` : ''}${opts.offload === false ? ', --no-offload' : ''}); scenario ${opts.scenario}: ${spec.what}; ${crashes} crash(es) at ${targets.map((f) => f.toFixed(3)).join(', ') || '-'} of the transfer, seed ${opts.seed}`);
  const topo = await labUp({
    name, protect: kinds.map((k) => PORTS[k]), log: opts.log, standbyGateway: failover !== null,
    extraGatewayArgs: [
      '--stability-trace', trace, '--supervisor', oracle, '--heartbeat-ms', '50',
      ...(opts.offload === false ? ['--no-offload'] : []),
      ...(spec.idleTimeoutS !== undefined ? ['--idle-timeout', String(spec.idleTimeoutS)] : []),
    ],
  });
  try {
    for (const [k, v] of Object.entries(sysctls)) {
      const r = await execIn(topo.namespaces.client, 'sysctl', ['-w', `${k}=${v}`]);
      if (r.code !== 0) throw new UsageError(`--client-sysctl ${k}=${v}: ${r.stderr.trim()}`);
    }
    if (spec.clientWindow !== undefined) {
      const route = (await execIn(topo.namespaces.client, 'ip', ['route', 'show', 'default'])).stdout.trim().split('\n')[0] ?? '';
      if (!route.startsWith('default')) throw new Error(`the client namespace has no default route to clamp: '${route}'`);
      const r = await execIn(topo.namespaces.client, 'ip', ['route', 'change', ...route.split(/\s+/), 'window', String(spec.clientWindow)]);
      if (r.code !== 0) throw new Error(`ip route change ... window ${spec.clientWindow}: ${r.stderr.trim()}`);
    }
    for (const k of kinds) servers.push(await startSupervisedServer(topo.namespaces.server, k, `${ADDRESSES.server}:${PORTS[k]}`, oracle, 50));
    captures.push(await startCapture(topo.namespaces.client, topo.interfaces.client, path.join(work, 'client.pcap')));
    captures.push(await startCapture(topo.namespaces.server, topo.interfaces.server, path.join(work, 'server.pcap')));
    // The gateway fault: the plain one at the log fault's moment, the others around crash 1 (below).
    const gw: GatewayFault<Pick<DrillReport, 'gatewayKill' | 'gatewayFailover'>> | null = gwFault === null ? null
      : failover !== null ? new GatewayFailover(topo, failover, work, say) : new GatewayKiller(topo, gwFault as GatewayKillFault, say);
    await gw?.arm();
    say(`running ${kinds.join(' + ')}`);
    let clientsDone = false;
    const live = kinds.map((k) => {
      const conns = k === 'upload' || k === 'download' ? opts.streams : connections;
      const args = ['--kind', k, '--connect', `${ADDRESSES.server}:${PORTS[k]}`, '--connections', String(conns), '--seed', String(opts.seed), '--timeout-ms', String(clientTimeoutMs)];
      if (k === 'upload' || k === 'download') args.push('--bytes', String(bytes));
      else args.push('--lines', String(lines));
      if (k === 'download' && spec.halfClose) args.push('--half-close');
      if ((k === 'echo' || k === 'kv') && spec.idleMs) args.push('--idle-ms', String(spec.idleMs));
      return { kind: k, c: startLiveDemoClient(topo.namespaces.client, args, clientTimeoutMs + 60_000) };
    });
    const running = Promise.all(live.map(({ kind, c }) => c.report.then((r) => ({ kind, r })))).finally(() => { clientsDone = true; });
    running.catch(() => {});
    const progressNow = () => live.map(({ c }) => c.latest());
    /** Resolves once every client still running has progressed from where it is now (or all are over). */
    const movedOn = async (): Promise<void> => {
      const base = live.map(({ c }) => c.latest()?.done ?? 0);
      await Promise.race([
        Promise.all(live.map(({ c }, i) => c.until((p) => clientFinished(p) || p.done > base[i]!))),
        running.then(() => {}, () => {}),
      ]);
    };
    /** Resolves when the leading client has done `f` of its work, or all are finished (false). */
    const reach = async (f: number): Promise<boolean> => {
      const hits = live.map(({ c }) => c.until((p) => reached(p, f)));
      const hit = Promise.race(hits.map((h) => h.then((p) => (p === null ? new Promise<never>(() => {}) : true))));
      const over = running.then(() => false, () => false);
      return Promise.race([hit, over]);
    };

    // The log fault, ~0.3 s in (log-restart: the first crash waits for it).
    const clientsAt = Date.now();
    // ... or sooner, at FAULT_AT_FRACTION of the transfer, so that it precedes the first crash.
    const faultDue = () => Promise.race([sleep(FAULT_AT_MS), reach(FAULT_AT_FRACTION)]);
    const faultRun = logFault === null ? null : runLogFault(topo, logFault, clientsAt, faultDue(), () => clientsDone, say);
    // log-restart: the restart can outlast a fast transfer (soak seed 601: a 390 MB download at
    // 891 Mb/s; seed 604: tiny-rcvbuf), and the server crash must come after it. The clients
    // stop reading at LOG_RESTART_HOLD_AT of the transfer until the gateway is back with the
    // restarted log server (uploads stall by themselves: nothing is stable, nothing acked).
    const held = logFault !== 'log-restart' ? null : (async (): Promise<void> => {
      let back = false;
      const isBack = () => { back = true; };
      void faultRun!.ready.then(isBack, isBack); // a failed fault ends the hold as well
      if (!(await reach(LOG_RESTART_HOLD_AT)) || back) return;
      for (const { c } of live) c.command('pause');
      say(`log fault: the clients hold at ${LOG_RESTART_HOLD_AT * 100}% of the transfer until the log server is back`);
      try {
        await faultRun!.ready;
      } finally {
        for (const { c } of live) c.command('resume');
      }
      say('log fault: the clients read again');
    })();
    held?.catch(() => {});
    // Not before every client moved data: a client process slow to start (a loaded machine) had
    // no connection open at a kill 334 ms in, and the drill proved nothing.
    const moving = () => Promise.race([
      Promise.all(live.map(({ c }) => c.until((p) => clientFinished(p) || p.done > 0))),
      running.then(() => {}, () => {}),
    ]);
    const gwPlain = gw?.place !== 'plain' ? null
      : Promise.all([faultDue(), moving()]).then(() => (clientsDone ? undefined : gw.killAndRestart(clientsAt)));
    gwPlain?.catch(() => {});
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    let statusBeforeKill: any = null;
    // The crashes, while the clients run, each at its point of the transfer.
    const kills: Kill[] = [];
    const crashing = (async () => {
      for (let n = 1; n <= crashes; n++) {
        const target = targets[n - 1]!;
        let recvQ: number | undefined;
        let paused = false;
        if (n === 1 && fault === 'log-restart') {
          // The crash must need the restarted log server: only once the gateway is back with it.
          await faultRun!.ready;
          await held; // and the clients read again
        }
        if (n === 1 && gwPlain !== null) await gwPlain; // the crash hits the restarted gateway
        if (n > 1 && spec.duringReplay) {
          await sleep(10 + rand() * 30);
        } else if (n === 1 && spec.trigger === 'idle') {
          const quiet = idleCrashAfterMs(spec.idleTimeoutS ?? 1);
          await Promise.race([
            Promise.all(live.map(({ c }) => c.until((p) => p.idleConns > 0 && p.idleNow === p.idleConns && p.idleForMs >= quiet))),
            running.catch(() => {}),
          ]);
        } else {
          // Not in the previous recovery's replay (that is double-crash's case): only once
          // every client still running has moved on since the restarted program listened
          // (a time gap would let a fast transfer end first).
          if (kills.length > 0) await movedOn();
          if (!(await reach(target))) {
            kills.push({ n, at: -1, listenedAt: -1, target, atFraction: leadingFraction(progressNow()) });
            break;
          }
          if (spec.trigger === 'zero-window') {
            for (const { c } of live) c.command('pause');
            paused = true;
            recvQ = await waitWindowsClosed(topo.namespaces.client, kinds.map((k) => PORTS[k]));
            say(`crash ${n}: the clients stopped reading; ${recvQ} bytes wait in their receive queues`);
          }
        }
        if (clientsDone) {
          kills.push({ n, at: -1, listenedAt: -1, target, atFraction: leadingFraction(progressNow()) });
          break;
        }
        if (n === 1 && gw?.place === 'rebuild') await gw.killAndRestart(clientsAt);
        if (n === 1 && gw?.place === 'outage') await gw.kill(clientsAt);
        const atFraction = leadingFraction(progressNow());
        const at = Date.now();
        for (const s of servers) await s.kill9();
        if (n === 1 && gw?.place === 'outage') await gw.restart();
        say(`crash ${n}: kill -9 of ${kinds.join(', ')} server(s) at ${(atFraction * 100).toFixed(1)}% of the transfer (target ${(target * 100).toFixed(1)}%)`);
        let listenedAt = -1;
        if (paused) {
          // Reading again somewhere in the recovery: before, during or after the restart.
          void sleep(100 + rand() * 600).then(() => {
            for (const { c } of live) c.command('resume');
            say(`crash ${n}: the clients read again`);
          });
        }
        for (const s of servers) listenedAt = Math.max(listenedAt, await s.listening(s.generation, 30_000));
        kills.push({ n, at, listenedAt, target, atFraction, ...(recvQ !== undefined ? { clientRecvQ: recvQ } : {}) });
        if (n === 1 && gw?.place === 'before') {
          statusBeforeKill = await gw.untilCaughtUp(at, servers.length);
          if (!clientsDone) await gw.killAndRestart(clientsAt); // else reported as not applied
        }
      }
    })();
    const [reports] = await Promise.all([running, crashing]);

    const faultInfo = faultRun === null ? null : await faultRun.done;
    if (gwPlain !== null) await gwPlain;
    await gw?.afterClients(); // gateway-failover: the old primary back, before its status and lab down
    for (const c of captures) await c.stop();
    captures.length = 0;
    // The gateway's status; a gateway that does not answer is a failure of the drill, not an
    // exception that would hide the clients' report.
    let statusError: string | null = null;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    let st: any;
    for (let attempt = 1; attempt <= 2 && st === undefined; attempt++) {
      try {
        st = await (gw !== null ? gw.status() : gatewayStatus(name)); // the active gateway's
      } catch (err) {
        statusError = (err as Error).message.split('\n')[0]!.slice(0, 300);
      }
    }
    if (st === undefined) st = { stats: {}, south: {}, north: {}, recovery: [], flows: [] };
    if (faultRun !== null) await faultRun.undo();
    // Let the gateway's trace writer drain before reading it.
    await sleep(200);
    const pcap = await readFile(path.join(work, 'client.pcap'));
    const traceText = await readFile(trace, 'utf8');
    // Both gateways' advances are in the one trace (the restarted one appends): read as one.
    const traced = parseStabilityTrace(traceText);
    const ports = kinds.map((k) => PORTS[k]);
    // One pass over the capture: the connections' verdicts and the stable-ack check.
    const inspected = inspectCapture(pcap, { trace: traced, serverPorts: ports });
    const invariant = inspected.ackInvariant!;
    const verdicts: Record<string, number> = {};
    for (const c of inspected.connections) verdicts[c.verdict] = (verdicts[c.verdict] ?? 0) + 1;
    const client = summarizeCapture(pcap, ports, ipToU32(ADDRESSES.client));

    const failures: string[] = [];
    if (statusError !== null && Object.keys(st.stats).length === 0) failures.push(`the gateway did not answer \`ftcp status\` (twice, 15 s each): ${statusError}`);
    const nondet = kinds.some(isRandomKind);
    const divergence = divergenceFigures(st);
    const clients = reports.map(({ kind, r }) => {
      // A random client's resets are judged with the gateway's divergence count (below).
      if (!r.allOk && !isRandomKind(kind)) failures.push(`${kind}: ${r.failed} of ${r.connections} connections failed (${r.errors.slice(0, 3).map((e) => `${e.code} ${e.message}`).join('; ')})`);
      return {
        kind, connections: r.connections, ok: r.ok, failed: r.failed, bytesSent: r.bytesSent, bytesReceived: r.bytesReceived,
        throughputMbps: r.throughputMbps, maxStallMs: Math.max(0, ...r.perConnection.map((c) => c.maxStallMs)), errors: r.errors,
        ...(r.outcomes ? { outcomes: r.outcomes } : {}),
      };
    });
    // The dead gateway's recovery timelines (gateway-kill:before) died with it: merged here.
    const timelines = [...(statusBeforeKill?.recovery ?? []), ...(st.recovery ?? [])];
    const crashReports = crashTimeline(kills, timelines, kinds.map((k) => `${ADDRESSES.server}:${PORTS[k]}`), nondet);
    // nondet: a rebuild that failed for a divergence (code DIVERGED, one RST each way) is the
    // expected ending of a connection whose server regenerated other bytes; any other failure is not.
    const north = (st.north ?? {}) as Record<string, number>;
    const divergedFailures = nondet ? (north.failedDiverged ?? 0) : 0;
    if (nondet && (north.rebuildFailed ?? 0) > divergedFailures) {
      failures.push(`${(north.rebuildFailed ?? 0) - divergedFailures} rebuild(s) failed for another reason than a divergence: ${JSON.stringify(failuresByCode(north))}`);
    }
    let rate: DrillReport['rate'];
    if (spec.minRateRatio !== undefined) {
      const done = kills.filter((k) => k.at > 0);
      const samples = live[0]!.c.samples;
      const total = live[0]!.c.latest()?.total ?? 0;
      const end = samples.find((x) => x.done >= total)?.at ?? samples.at(-1)?.at ?? 0;
      rate = done.length === 0 ? null : rateAcrossCrashes(samples, done[0]!.at, done.at(-1)!.listenedAt, end);
      if (rate && rate.ratio < spec.minRateRatio) {
        failures.push(`throughput collapsed after the crash: ${(rate.after / 1e3).toFixed(1)} KB/s after the restarted server listened vs ${(rate.before / 1e3).toFixed(1)} KB/s before the crash (x${rate.ratio.toFixed(3)}, the floor is x${spec.minRateRatio})`);
      }
    }
    // (A connection reset for a divergence stays FAILED for 10 s before it is forgotten.)
    const stuck = (st.flows ?? []).filter((f: { recovering: string | null }) => f.recovering !== null && !(nondet && f.recovering === 'FAILED'));
    if (stuck.length > 0) failures.push(`${stuck.length} connection(s) still being recovered at the end: ${JSON.stringify(stuck.slice(0, 3))}`);
    for (const c of crashReports) {
      if (c.note) failures.push(`crash ${c.n}: ${c.note}`);
      if (c.failed > 0 && !nondet) failures.push(`crash ${c.n}: ${c.failed} connection(s) could not be rebuilt`);
    }
    if (invariant.violations.length > 0) failures.push(`${invariant.violations.length} acks beyond the stable point reached the client`);
    if (invariant.checked === 0) failures.push('no server ack was seen at the client: the capture did not work');
    // nondet: a RST from the server side is allowed for a divergence the gateway counted
    // (judgeNondet holds the counts to it); anything else as in every drill.
    const divergenceReset = (c: (typeof inspected.connections)[number]) => nondet && c.verdict === 'reset' && c.seen.rstFromServer;
    if (nondet) {
      failures.push(...judgeNondet({
        clients: clients.flatMap((c) => (c.outcomes ? [{ kind: c.kind, outcomes: c.outcomes }] : [])), divergence,
        rstToClient: client.rstToClient, resetConnections: inspected.connections.filter(divergenceReset).length,
        crashesWithConnections: crashReports.filter((c) => c.connections > 0).length,
      }));
    } else {
      failures.push(...judgeDeterministic(divergence));
      if (client.rstToClient > 0) failures.push(`${client.rstToClient} RST reached the client`);
    }
    if (client.icmpToClient > 0) failures.push(`${client.icmpToClient} ICMP packets reached the client`);
    for (const c of inspected.connections) {
      if (c.verdict !== 'ok' && !divergenceReset(c)) failures.push(`inspect: ${c.verdict}: ${c.reason}`);
      if (failures.length > 20) break;
    }
    const gwEnd = gw === null ? null : await gw.finish({ pcap, serverPorts: ports, clientIp: ipToU32(ADDRESSES.client), traceText, status: st });
    if (gwEnd !== null) failures.push(...gwEnd.failures);
    const logLink = opts.log === 'remote' ? logLinkReport(logFault, faultInfo, st.logLink) : null;
    if (logLink !== null && logFault !== null) {
      const trace = faultTrace(logLink);
      if (logLink.faultAtMs < 0) failures.push(`log fault ${fault}: the clients had finished before it: use more --bytes / --lines`);
      else if (trace !== null) failures.push(`log fault ${fault}: ${trace}`);
    }
    if (opts.pcapDir) {
      makeDirs(opts.pcapDir); // not mkdir's recursive mode: it spins for ever under /proc (src/util/fs.ts)
      for (const f of ['client.pcap', 'server.pcap', 'stable.trace']) await copyFile(path.join(work, f), path.join(opts.pcapDir, f));
      // The gateway's own log (both processes, with a gateway fault): it goes with the lab.
      if (topo.gatewayLog !== null) await copyFile(topo.gatewayLog, path.join(opts.pcapDir, 'gateway.log')).catch(() => {});
      if (topo.standby?.gateway2Log) await copyFile(topo.standby.gateway2Log, path.join(opts.pcapDir, 'gateway2.log')).catch(() => {});
    }
    return {
      scenario: opts.scenario, what: spec.what, lab: name, log: opts.log, seed: opts.seed, clientSysctls: sysctls, offload: opts.offload !== false, ok: failures.length === 0, failures, clients, divergence,
      crashes: crashReports,
      ...(rate !== undefined ? { rate } : {}),
      longestStallMs: Math.max(0, ...clients.map((c) => c.maxStallMs)),
      invariant: jsonableInvariant(invariant),
      client,
      verdicts,
      gateway: {
        packets: st.stats.packets ?? 0, protectedPackets: st.stats.protectedPackets ?? 0, bytesLogged: st.south.bytesLogged ?? 0,
        acksLowered: st.south.acksLowered ?? 0, acksHeld: st.south.acksHeld ?? 0, heldReleased: st.south.heldReleased ?? 0, sacksAboveStableRemoved: st.south.sacksAboveStableRemoved ?? 0, dropped: st.stats.dropped ?? 0,
      },
      north: st.north ?? {},
      drops: st.drops ?? {},
      logLink,
      gatewayKill: null,
      gatewayFailover: null,
      ...gwEnd?.fields,
      durationMs: Date.now() - t0,
    };
  } finally {
    for (const c of captures) await c.stop().catch(() => {});
    for (const s of servers) await stopProcess(s.child).catch(() => {});
    say(`lab ${name}: down`);
    await labDown(name);
    await rm(work, { recursive: true, force: true });
  }
}
