/**
 * Real servers no one on the project wrote (issue 10), protected by the gateway in the
 * namespace lab, killed with kill -9 mid-conversation and restarted by `ftcp supervise`:
 *
 *   memcached -t 1 (one worker thread)  20 connections, each pipelining set/get on its own keys
 *                                       (`ftcp real-client --kind memcached`), every reply byte checked
 *   nginx (one process, no master)      one keep-alive connection: a 64 MiB file, then 500 files of
 *                                       1-20 KiB, each checked by SHA-256 (`--kind http`)
 *
 * The kill hits the real server process (the supervisor's child, checked by name) at a point of
 * progress reported by the client (answers checked, bytes received), not at a time. Then:
 * every connection byte-exact, and a capture at the client's interface shows no RST, no ICMP,
 * no server FIN before the client's, no gap (`ftcp inspect` verdict ok for every connection),
 * no ack beyond the stable point; the gateway has no connection left in recovery.
 *
 * Divergence policies (issue 13): memcached runs under the default, reset, and must count 0
 * divergences (its replies are a function of the requests); nginx under `continue` for its
 * service (`--divergence 198.18.2.2:8080=continue`), since the restarted nginx's Date header
 * differs whenever the restart crossed a second, and nothing else does. What each policy does
 * to such a download: divergence-nginx.test.ts.
 *
 * Each case prints one line of figures (progress at the kill, recovery timeline, gateway
 * counters; on a hang, the stuck connections' phases). FTCP_REAL_KEEP=<dir> keeps the captures,
 * the stability trace, the gateway's and the supervisor's logs.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { once } from 'node:events';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ADDRESSES, REPO_ROOT, labDown, labStateDir, labUp, listLeftovers, randomLabName, spawnIn } from '../../src/lab/index.js';
import { gatewayStatus, startCapture, startSupervisedProgram, stopProcess, type SupervisedServer } from '../../src/lab/procs.js';
import { memcachedArgv, prepareNginx } from '../../src/lab/realservers.js';
import { checkAckInvariant, inspectCapture, type ConnectionReport } from '../../src/inspect/inspect.js';
import { parseStabilityTrace } from '../../src/inspect/ack-invariant.js';
import { summarizeCapture } from '../../src/inspect/summary.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { writeHttpTree, writeManifest, type RealClientReport, type RealProgress } from '../../src/demo/real-clients.js';
import { ensureBuilt } from '../support/build.js';

beforeAll(() => ensureBuilt());

const FTCP = path.join(REPO_ROOT, 'bin', 'ftcp.js');
const ORACLE = `${ADDRESSES.gwServer}:7071`;
const MEMCACHED_PORT = 11211;
const HTTP_PORT = 8080;

interface CrashRun {
  lab: string;
  report: RealClientReport;
  /** The client's progress when the server was killed (null: never killed). */
  killedAt: RealProgress | null;
  killedPid: number;
  killedComm: string;
  connections: ConnectionReport[];
  rstToClient: number;
  icmpToClient: number;
  ackViolations: number;
  acksChecked: number;
  /** Connections whose server FIN reached the client before the client's own FIN. */
  earlyServerFins: number;
  stuck: Array<Record<string, unknown>>;
  /** A status snapshot taken while the client was still running near its deadline (a hang). */
  hangStatus: { recovering: Record<string, number>; north: Record<string, number> } | null;
  north: Record<string, number>;
  /** The FIN/RST verdict hold's counters (held, releasedAlive, suppressed, ...). */
  masking: Record<string, unknown>;
  recovery: Array<Record<string, number | string>>;
  /** The gateway's /status `divergence` (policies, byService, total, resets, continued, ...). */
  divergence: DivergenceStatus;
}

interface DivergenceStatus {
  policies: Record<string, string>;
  byService: Record<string, number>;
  total: number;
  resets: number;
  continued: number;
  shortOutputs: number;
  comparedBytes: number;
  originalBytesSent: number;
  digestsAbandoned: number;
}

/**
 * Brings up a lab protecting `port`, runs `serverArgv` under `ftcp supervise`, runs
 * `ftcp real-client clientArgs` in the client namespace, kill -9s the server once `killWhen`
 * says so, and gathers what the client and the captures saw. Always takes the lab down.
 */
async function crashRun(o: {
  port: number;
  comm: string;
  serverArgv: (work: string) => Promise<string[]>;
  clientArgs: (work: string) => Promise<string[]>;
  clientTimeoutMs: number;
  killWhen: (p: RealProgress) => boolean;
  /** The gateway's --divergence (unset: its default, reset). */
  divergence?: string;
}): Promise<CrashRun> {
  const lab = randomLabName('rsrv');
  const work = await mkdtemp(path.join(tmpdir(), 'ftcp-real-'));
  await chmod(work, 0o755);
  const trace = path.join(work, 'stable.trace');
  const captures: Array<{ stop(): Promise<string> }> = [];
  let server: SupervisedServer | undefined;
  let client: ReturnType<typeof spawnIn> | undefined;
  const service = `${ADDRESSES.server}:${o.port}`;
  try {
    const topo = await labUp({
      name: lab, protect: [o.port], extraGatewayArgs: ['--stability-trace', trace], ...(o.divergence !== undefined ? { divergence: o.divergence } : {}),
    });
    server = await startSupervisedProgram(topo.namespaces.server, o.comm, service, ORACLE, await o.serverArgv(work), 50);
    captures.push(await startCapture(topo.namespaces.client, topo.interfaces.client, path.join(work, 'client.pcap')));
    captures.push(await startCapture(topo.namespaces.server, topo.interfaces.server, path.join(work, 'server.pcap')));

    const pids = await server.programPids();
    expect(pids).toHaveLength(1);
    const serverPid = pids[0]!;
    const args = [FTCP, 'real-client', ...(await o.clientArgs(work)), '--connect', service, '--timeout-ms', String(o.clientTimeoutMs), '--progress-ms', '20', '--json'];
    client = spawnIn(topo.namespaces.client, process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killedAt: RealProgress | null = null;
    let killedPid = 0;
    let killedComm = '';
    let killing: Promise<void> | null = null;
    client.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    client.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (killing !== null) return;
      const lines = stderr.split('\n');
      const last = lines.slice(0, -1).reverse().find((l) => l.startsWith('{"progress"'));
      if (!last) return;
      const p = (JSON.parse(last) as { progress: RealProgress }).progress;
      if (!o.killWhen(p)) return;
      killedAt = p;
      const srv = server!;
      // At once (the pid was looked up before the clients started): a fast download moves
      // megabytes in the time a pgrep takes.
      killedComm = readFileSync(`/proc/${serverPid}/comm`, 'utf8').trim();
      process.kill(serverPid, 'SIGKILL');
      killedPid = serverPid;
      srv.generation++;
      killing = srv.listening(srv.generation, 30_000).then(() => {});
    });
    // A hang: look at the gateway shortly before the client's deadline.
    let hangStatus: CrashRun['hangStatus'] = null;
    const hangTimer = setTimeout(() => {
      void gatewayStatus(lab).then((st) => {
        const recovering: Record<string, number> = {};
        for (const f of st.flows ?? []) if (f.recovering !== null) recovering[f.recovering] = (recovering[f.recovering] ?? 0) + 1;
        hangStatus = { recovering, north: st.north ?? {} };
      }).catch(() => {});
    }, Math.max(1000, o.clientTimeoutMs - 3000));
    const [code] = (await once(client, 'exit')) as [number | null];
    clearTimeout(hangTimer);
    if (killing !== null) await killing;
    let report: RealClientReport;
    try {
      report = JSON.parse(stdout) as RealClientReport;
    } catch {
      throw new Error(`real-client printed no report (exit ${code}): ${stdout.slice(0, 300)} ${stderr.slice(-1000)}`);
    }

    for (const c of captures.splice(0)) await c.stop();
    const st = await gatewayStatus(lab);
    await new Promise((r) => setTimeout(r, 200)); // the trace writer drains
    const pcap = await readFile(path.join(work, 'client.pcap'));
    const traced = parseStabilityTrace(await readFile(trace, 'utf8'));
    const inspected = inspectCapture(pcap, { trace: traced, serverPorts: [o.port] });
    const invariant = checkAckInvariant(pcap, traced, [o.port]);
    const summary = summarizeCapture(pcap, [o.port], ipToU32(ADDRESSES.client));
    if (process.env.FTCP_REAL_KEEP) {
      const keep = path.join(process.env.FTCP_REAL_KEEP, `${o.comm}-${lab}`);
      await mkdir(keep, { recursive: true });
      for (const f of ['client.pcap', 'server.pcap', 'stable.trace']) await copyFile(path.join(work, f), path.join(keep, f));
    }
    const run: CrashRun = {
      lab, report, killedAt, killedPid, killedComm,
      connections: inspected.connections,
      rstToClient: summary.rstToClient,
      icmpToClient: summary.icmpToClient,
      ackViolations: invariant.violations.length,
      acksChecked: invariant.checked,
      earlyServerFins: inspected.connections.filter((c) => c.s2c.finNs !== null && (c.c2s.finNs === null || c.s2c.finNs < c.c2s.finNs)).length,
      stuck: (st.flows ?? []).filter((f: { recovering: string | null }) => f.recovering !== null),
      hangStatus,
      north: st.north ?? {},
      masking: st.masking ?? {},
      recovery: st.recovery ?? [],
      divergence: st.divergence,
    };
    console.log(`${o.comm} (${lab}): ${describeRun(run)}`);
    return run;
  } finally {
    if (client && client.exitCode === null && client.signalCode === null) client.kill('SIGKILL');
    for (const c of captures) await c.stop().catch(() => {});
    if (server) await stopProcess(server.child).catch(() => {});
    if (process.env.FTCP_REAL_KEEP) {
      const keep = path.join(process.env.FTCP_REAL_KEEP, `${o.comm}-${lab}`);
      await mkdir(keep, { recursive: true });
      await copyFile(path.join(labStateDir(lab), 'gateway.log'), path.join(keep, 'gateway.log')).catch(() => {});
      if (server) await writeFile(path.join(keep, 'supervise.log'), server.output()).catch(() => {});
    }
    await labDown(lab);
    await rm(work, { recursive: true, force: true });
    expect(await listLeftovers(lab)).toEqual([]);
  }
}

function describeRun(r: CrashRun): string {
  const verdicts: Record<string, number> = {};
  for (const c of r.connections) verdicts[c.verdict] = (verdicts[c.verdict] ?? 0) + 1;
  const n = r.north;
  const errs: Record<string, number> = {};
  for (const e of r.report.errors) errs[e.code] = (errs[e.code] ?? 0) + 1;
  return [
    `${r.report.ok}/${r.report.connections} connections ok, ${r.report.ops} of ${r.report.of} answers, ${(r.report.bytesReceived / 1e6).toFixed(1)} MB received in ${r.report.durationMs} ms`,
    `errors ${JSON.stringify(errs)}${r.report.errors[0] ? ` (first: ${r.report.errors[0].code} ${r.report.errors[0].message})` : ''}`,
    `killed ${r.killedComm} pid ${r.killedPid} at ${r.killedAt ? `${r.killedAt.ops}/${r.killedAt.of} answers, ${(r.killedAt.bytes / 1e6).toFixed(1)} MB` : 'never'}`,
    `client capture: ${r.rstToClient} RST, ${r.icmpToClient} ICMP, ${r.earlyServerFins} early server FIN, verdicts ${JSON.stringify(verdicts)}, ${r.ackViolations}/${r.acksChecked} acks beyond stable`,
    `gateway: ${r.stuck.length} still recovering${r.stuck.length ? ` ${JSON.stringify(r.stuck.map((f) => f.recovering))}` : ''}; handshakes ${n.handshakes ?? 0}, replay ${((n.replayBytes ?? 0) / 1e6).toFixed(2)} MB (${n.replayRetransmits ?? 0} retransmits), absorbed ${((n.absorbedBytes ?? 0) / 1e6).toFixed(2)} MB, rebuildFailed ${n.rebuildFailed ?? 0}`,
    `FIN/RST hold ${JSON.stringify(r.masking)}`,
    `divergence ${JSON.stringify(r.divergence)}`,
    `recovery ${JSON.stringify(r.recovery.map((t) => ({ conns: t.connections, failed: t.failed, replayDoneMs: Number(t.replayDoneAt) > 0 ? Number(t.replayDoneAt) - Number(t.listeningAt) : -1, caughtUpMs: Number(t.caughtUpAt) > 0 ? Number(t.caughtUpAt) - Number(t.listeningAt) : -1 })))}`,
    ...(r.hangStatus ? [`near the deadline: recovering ${JSON.stringify(r.hangStatus.recovering)}`] : []),
  ].join('\n  ');
}

function expectSurvived(r: CrashRun, comm: string, connections: number): void {
  // The crash was real: the server process itself, while the clients were mid-way.
  expect(r.killedComm).toBe(comm);
  expect(r.killedAt).not.toBeNull();
  expect(r.killedAt!.ops).toBeLessThan(r.killedAt!.of);
  expect(r.killedAt!.finished).toBe(0);
  expect(r.recovery.length).toBeGreaterThan(0);
  expect(r.recovery.reduce((a, t) => a + Number(t.connections), 0)).toBe(connections);
  // Every connection byte-exact, to the end.
  expect(r.report.errors).toEqual([]);
  expect(r.report.ok).toBe(connections);
  expect(r.report.ops).toBe(r.report.of);
  // What the client's interface saw.
  expect(r.connections).toHaveLength(connections);
  expect(r.rstToClient).toBe(0);
  expect(r.icmpToClient).toBe(0);
  expect(r.earlyServerFins).toBe(0);
  expect(r.connections.filter((c) => c.verdict !== 'ok').map((c) => `${c.verdict}: ${c.reason}`)).toEqual([]);
  expect(r.acksChecked).toBeGreaterThan(0);
  expect(r.ackViolations).toBe(0);
  expect(r.stuck).toEqual([]);
  expect(r.north.rebuildFailed ?? 0).toBe(0);
}

function expectClean(r: CrashRun, connections: number): void {
  expect(r.killedAt).toBeNull();
  expect(r.report.errors).toEqual([]);
  expect(r.report.ops).toBe(r.report.of);
  expect(r.connections.filter((c) => c.verdict !== 'ok').map((c) => `${c.verdict}: ${c.reason}`)).toEqual([]);
  expect(r.connections).toHaveLength(connections);
  expect(r.rstToClient + r.icmpToClient + r.earlyServerFins + r.ackViolations).toBe(0);
  expect(r.recovery).toEqual([]);
}

/**
 * memcached under the default policy, reset: its replies are a function of the requests, so a
 * rebuilt connection regenerates exactly what the client had (compared, 0 divergences).
 */
function expectNoDivergence(r: CrashRun, service: string, crashed: boolean): void {
  expect(r.divergence.policies).toEqual({ [service]: 'reset' });
  expect(r.divergence.byService).toEqual({ [service]: 0 });
  expect(r.divergence.total).toBe(0);
  expect(r.divergence.resets).toBe(0);
  expect(r.divergence.digestsAbandoned).toBe(0);
  // The comparison ran (a crash): the regenerated replies were compared, not skipped.
  if (crashed) expect(r.divergence.comparedBytes).toBeGreaterThan(0);
}

/**
 * nginx under continue for its service: the restarted nginx's Date header differs when the
 * restart crossed a second, the body is the same file (byte-exact, checked by expectSurvived);
 * at most one divergence per rebuild, let through, never a reset.
 */
function expectContinued(r: CrashRun, service: string): void {
  expect(r.divergence.policies).toEqual({ [service]: 'continue' });
  expect(r.divergence.resets).toBe(0);
  expect(r.divergence.total).toBe(r.divergence.continued);
  expect(r.divergence.byService[service]).toBe(r.divergence.total);
  expect(r.divergence.total).toBeLessThanOrEqual(r.recovery.length);
  expect(r.divergence.digestsAbandoned).toBe(0);
  expect(r.divergence.comparedBytes).toBeGreaterThan(0);
}

const MEMCACHED_SERVICE = `${ADDRESSES.server}:${MEMCACHED_PORT}`;
const HTTP_SERVICE = `${ADDRESSES.server}:${HTTP_PORT}`;

const memcachedRun = (connections: number, ops: number, crash = true) => crashRun({
  port: MEMCACHED_PORT,
  comm: 'memcached',
  serverArgv: async () => memcachedArgv(ADDRESSES.server, MEMCACHED_PORT),
  clientArgs: async () => ['--kind', 'memcached', '--connections', String(connections), '--ops', String(ops), '--seed', '7'],
  clientTimeoutMs: 60_000,
  // A quarter of the way.
  killWhen: (p) => crash && p.ops >= p.of / 4,
});

async function nginxRun(killWhen: (p: RealProgress, bigBytes: number) => boolean): Promise<CrashRun> {
  const bigBytes = 64 * 2 ** 20;
  return crashRun({
    port: HTTP_PORT,
    comm: 'nginx',
    serverArgv: (work) => prepareNginx(path.join(work, 'nginx'), ADDRESSES.server, HTTP_PORT, path.join(work, 'www')),
    clientArgs: async (work) => {
      const files = await writeHttpTree(path.join(work, 'www'), { seed: 11, bigBytes, smallFiles: 500 });
      await writeManifest(path.join(work, 'manifest.json'), files);
      return ['--kind', 'http', '--manifest', path.join(work, 'manifest.json'), '--connections', '1'];
    },
    clientTimeoutMs: 60_000,
    killWhen: (p) => killWhen(p, bigBytes),
    // What the README recommends for a static HTTP server: its only difference is the Date header.
    divergence: `${HTTP_SERVICE}=continue`,
  });
}

describe('real third-party servers, kill -9 mid-conversation (lab)', () => {
  it('control: memcached, the same 20 x 5,000 operations through the gateway without a crash', async () => {
    const r = await memcachedRun(20, 5000, false);
    expectClean(r, 20);
    expectNoDivergence(r, MEMCACHED_SERVICE, false);
  }, 200_000);

  it('memcached -t 1: 20 connections x 5,000 pipelined set/get on their own keys, killed a quarter of the way', async () => {
    const r = await memcachedRun(20, 5000);
    expectSurvived(r, 'memcached', 20);
    expectNoDivergence(r, MEMCACHED_SERVICE, true);
  }, 200_000);

  it('memcached -t 1: 20 connections x 800 operations, killed a quarter of the way', async () => {
    const r = await memcachedRun(20, 800);
    expectSurvived(r, 'memcached', 20);
    expectNoDivergence(r, MEMCACHED_SERVICE, true);
  }, 200_000);

  it('nginx (single process): a 64 MiB download and 500 small files over one keep-alive connection, killed a quarter into the download', async () => {
    const r = await nginxRun((p, big) => p.bytes >= big / 4);
    expectSurvived(r, 'nginx', 1);
    expectContinued(r, HTTP_SERVICE);
  }, 200_000);

  it('nginx (single process): the same, killed half-way through the small files (the replay re-sends the big file)', async () => {
    const r = await nginxRun((p) => p.ops >= 1 + 250);
    expectSurvived(r, 'nginx', 1);
    expectContinued(r, HTTP_SERVICE);
  }, 200_000);
});
