/**
 * `scripts/bench scale`: many protected connections on one gateway (root: namespace labs).
 *
 *   idle memory  the gateway (protected echo port, embedded memory log, node --expose-gc)
 *                with N idle protected connections (default 10,000): VmRSS of the gateway
 *                process and its JS heap (control snapshot after a full GC) before the
 *                connections and once they are all established and idle; per connection =
 *                delta / N. A fresh lab per run.
 *   recovery     for each N (default 1, 100, 1,000, 10,000): N connections to the supervised
 *                echo server with `--bytes` (default 64 KiB) sent and echoed on each (so
 *                logged), kill -9 of the server, and the gateway's recovery timeline:
 *                detected and listening again (from the kill), every handshake done, every
 *                replay done, every connection caught up (from listening again). Then the
 *                clients are released: each sends 1 KiB more and must get every byte back
 *                exactly, and close cleanly; a run where any connection failed is a failure,
 *                not a figure. A fresh lab per run.
 *
 * The clients are `scripts/bench hold` (hold.ts) in <n>-client. Medians with (min–max).
 * Labs are named ftcps-<6 hex> and removed on every exit path (errors, SIGINT, SIGTERM).
 */
import { readFileSync } from 'node:fs';
import { makeDirs } from '../util/fs.js';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { parseCli, parseIntFlag } from '../cli/args.js';
import { FtcpError, UsageError } from '../util/errors.js';
import { OUTPUT_FLAGS, machineLine, outputOf, runSubcommand } from './program.js';
import type { RecoveryTimes } from '../lab/drill.js';
import { ADDRESSES, REPO_ROOT, TUN_NAME, execIn, labDown, labUp, randomLabName, spawnIn, type LabTopology } from '../lab/index.js';
import { startSupervisedServer, stopProcess, waitForLine, type SupervisedServer } from '../lab/procs.js';
import { summarize, type Summary } from './stats.js';
import { LINE, type HoldReport, type ReadyInfo } from './hold.js';
import type { RecoveryTimeline } from '../recovery/rebuild.js';

const PORT = 5003;
const ORACLE = `${ADDRESSES.gwServer}:7071`;
const BENCH_MAIN = join(REPO_ROOT, 'dist', 'bench', 'main.js');
const FTCP = join(REPO_ROOT, 'bin', 'ftcp.js');

const USAGE = `usage: scripts/bench scale [options]

Memory per idle protected connection, and recovery of many connections after a kill -9 of
the server (namespace labs, root).

  --idle N            idle connections for the memory reading (default 10000; 0: skip)
  --idle-runs N       memory runs (default 2)
  --recovery LIST     connection counts for the recovery runs (default 1,100,1000,10000; '': skip)
  --runs N            recovery runs per count up to 1,000 (default 3)
  --runs-large N      recovery runs per count above 1,000 (default 1)
  --bytes B           bytes logged per connection before the crash, a multiple of ${LINE} (default 65536)
  --concurrency N     the clients' connections opening/exchanging at once (default 200)
  --no-offload        run the gateway without TUN offloads (default: with them, as ftcp gateway)
  --semi-space MB     run the gateway's node with --max-semi-space-size=MB (V8's young
                      generation; default: node's own, which grows to 16 MB per semi-space)
  --prof DIR          run the gateway under node --prof, one log per lab in DIR
  --markdown          print the Markdown section for BENCHMARKS.md
  --json              print one JSON document`;

export interface ScaleOptions {
  idle: number;
  idleRuns: number;
  recovery: number[];
  runs: number;
  runsLarge: number;
  bytes: number;
  concurrency: number;
  offload: boolean;
  /** --max-semi-space-size for the gateway's node (0: node's default). */
  semiSpace: number;
  /** node --prof logs of the gateway go here ('' = no profile). */
  profDir: string;
  output: 'human' | 'markdown' | 'json';
}

export interface IdleRun {
  connections: number;
  rssBefore: number;
  rssAfter: number;
  heapBefore: number;
  heapAfter: number;
  /** Buffers' backing stores (process.memoryUsage().arrayBuffers). */
  buffersBefore: number;
  buffersAfter: number;
  rssPerConn: number;
  heapPerConn: number;
  openMs: number;
}

export interface RecoveryRun extends RecoveryTimes {
  /** The lab the run used (gone by the time the run returns). */
  lab: string;
  connections: number;
  /** Gateway RSS with the connections open and logged (before the crash), bytes. */
  rss: number;
  /** Packets the kernel dropped at the gateway's TUN during the run (queue to the gateway full, and the other way). */
  tunDrops: { toGateway: number; fromGateway: number };
  /** The gateway's rebuild counters after the run (north wrapper stats). */
  north: Record<string, number>;
}

export interface ScaleResult {
  date: string;
  machine: string;
  loadBefore: number[];
  loadAfter: number[];
  command: string;
  options: Omit<ScaleOptions, 'output'>;
  idle: IdleRun[];
  recovery: RecoveryRun[];
  failures: string[];
  durationS: number;
}

const progress = (s: string) => process.stderr.write(`bench scale: ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function parseScaleOptions(argv: string[]): ScaleOptions | 'help' {
  const { values } = parseCli(argv, {
    idle: { type: 'string', default: '10000' },
    'idle-runs': { type: 'string', default: '2' },
    recovery: { type: 'string', default: '1,100,1000,10000' },
    runs: { type: 'string', default: '3' },
    'runs-large': { type: 'string', default: '1' },
    bytes: { type: 'string', default: '65536' },
    concurrency: { type: 'string', default: '200' },
    'no-offload': { type: 'boolean', default: false },
    'semi-space': { type: 'string', default: '0' },
    prof: { type: 'string', default: '' },
    ...OUTPUT_FLAGS,
  });
  if (values.help) return 'help';
  const output = outputOf(values);
  const bytes = parseIntFlag(values.bytes!, '--bytes', 0, 0, 16 << 20);
  if (bytes % LINE !== 0) throw new UsageError(`--bytes: a multiple of ${LINE}, got ${bytes}`);
  const recovery = values.recovery!.trim() === '' ? [] : values.recovery!.split(',').map((s) => parseIntFlag(s.trim(), '--recovery', 0, 1, 20_000));
  return {
    idle: parseIntFlag(values.idle!, '--idle', 0, 0, 20_000),
    idleRuns: parseIntFlag(values['idle-runs']!, '--idle-runs', 0, 1, 20),
    recovery,
    runs: parseIntFlag(values.runs!, '--runs', 0, 1, 20),
    runsLarge: parseIntFlag(values['runs-large']!, '--runs-large', 0, 1, 20),
    bytes,
    concurrency: parseIntFlag(values.concurrency!, '--concurrency', 0, 1, 5000),
    offload: !values['no-offload'],
    semiSpace: parseIntFlag(values['semi-space']!, '--semi-space', 0, 0, 1024),
    profDir: values.prof!,
    output,
  };
}

/** VmRSS of `pid`, bytes. */
export function vmRss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new FtcpError('FTCP_BENCH_RSS', `no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

interface GatewaySnapshot {
  connections: number;
  memory?: { rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number };
  recovery?: Array<RecoveryTimeline & { ended?: number }>;
  north?: Record<string, number>;
}

/** The gateway's control snapshot (gc: a full GC first, the gateway runs with --expose-gc). */
export async function gatewaySnapshot(topo: LabTopology, gc = false): Promise<GatewaySnapshot> {
  const url = `http://${topo.control}/status${gc ? '?gc=1' : ''}`;
  const script = `fetch(${JSON.stringify(url)}).then(r=>r.text()).then(t=>process.stdout.write(t),e=>{console.error(e.message);process.exit(1)})`;
  const r = await execIn(topo.namespaces.gw, process.execPath, ['-e', script], { timeoutMs: 20_000 });
  if (r.code !== 0) throw new FtcpError('FTCP_BENCH_STATUS', `gateway status: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as GatewaySnapshot;
}

/** The TUN's drop counters in <n>-gw: tx = toward the gateway process (its queue full), rx = written by it. */
export async function tunDrops(topo: LabTopology): Promise<{ toGateway: number; fromGateway: number }> {
  const r = await execIn(topo.namespaces.gw, 'ip', ['-s', '-j', 'link', 'show', 'dev', TUN_NAME]);
  const j = JSON.parse(r.stdout) as Array<{ stats64?: { rx?: { dropped?: number }; tx?: { dropped?: number } } }>;
  return { toGateway: j[0]?.stats64?.tx?.dropped ?? -1, fromGateway: j[0]?.stats64?.rx?.dropped ?? -1 };
}

/** The hold client (`scripts/bench hold`) running in a namespace. */
export interface HoldClient {
  readonly child: ChildProcess;
  ready: ReadyInfo;
  /** Sends SIGUSR1 and waits (bounded) for the report. */
  finish(timeoutMs: number): Promise<HoldReport>;
  stop(): Promise<void>;
}

export async function startHoldClient(ns: string, args: string[], readyTimeoutMs: number): Promise<HoldClient> {
  const child = spawnIn(ns, process.execPath, [BENCH_MAIN, 'hold', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-4000); });
  const stop = () => stopProcess(child, 2_000);
  let ready: ReadyInfo;
  try {
    ready = JSON.parse(await waitForLine(child, /"event":"ready"/, readyTimeoutMs)) as ReadyInfo;
  } catch (e) {
    await stop();
    throw new FtcpError('FTCP_BENCH_HOLD', `hold client: ${(e as Error).message} ${err}`);
  }
  return {
    child,
    ready,
    async finish(timeoutMs) {
      const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, 'exit').then(() => {});
      child.kill('SIGUSR1');
      let timer: NodeJS.Timeout | undefined;
      const ok = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => { timer = setTimeout(() => r(false), timeoutMs); })]);
      clearTimeout(timer);
      if (!ok) {
        await stop();
        throw new FtcpError('FTCP_BENCH_HOLD', `hold client: no report within ${timeoutMs} ms`);
      }
      const line = out.split('\n').find((l) => l.includes('"event":"report"'));
      if (line === undefined) throw new FtcpError('FTCP_BENCH_HOLD', `hold client printed no report (exit ${child.exitCode}): ${err}`);
      return JSON.parse(line) as HoldReport;
    },
    stop,
  };
}

export interface ScaleLab {
  name: string;
  topo: LabTopology;
  server: SupervisedServer;
  gatewayPid: number;
}

/**
 * A lab with the supervised echo server on 198.18.2.2:5003 (protected), the gateway run with
 * --expose-gc; `fn` runs, then everything is taken down whatever happened.
 */
export interface LabOptions { offload: boolean; signal?: AbortSignal; profDir?: string; semiSpace?: number }

export async function withScaleLab<T>(o: LabOptions, fn: (lab: ScaleLab) => Promise<T>): Promise<T> {
  const name = randomLabName('ftcps');
  let server: SupervisedServer | null = null;
  let up = false;
  try {
    progress(`lab ${name} up`);
    up = true;
    const topo = await labUp({
      name, protect: [PORT], log: 'embedded', extraGatewayArgs: o.offload ? [] : ['--no-offload'],
      gatewayCommand: [process.execPath, '--expose-gc', ...(o.semiSpace ? [`--max-semi-space-size=${o.semiSpace}`] : []), ...(o.profDir ? ['--prof', `--logfile=${join(o.profDir, `gateway-${name}.log`)}`, '--no-logfile-per-isolate'] : []), FTCP], ...(o.signal ? { signal: o.signal } : {}),
    });
    // Room for bursts of SYNs and accepts at the server (inside the lab's namespace only).
    for (const [k, v] of [['net.core.somaxconn', '4096'], ['net.ipv4.tcp_max_syn_backlog', '8192']] as const) {
      await execIn(topo.namespaces.server, 'sysctl', ['-q', '-w', `${k}=${v}`]);
    }
    server = await startSupervisedServer(topo.namespaces.server, 'echo', `${ADDRESSES.server}:${PORT}`, ORACLE, 50);
    return await fn({ name, topo, server, gatewayPid: topo.gatewayPid! });
  } finally {
    if (server !== null) await stopProcess(server.child).catch(() => {});
    if (up) await labDown(name).then(() => progress(`lab ${name} down`), (e: unknown) => progress(`lab ${name} down failed: ${(e as Error).message}`));
  }
}

const holdArgs = (n: number, bytes: number, concurrency: number) => [
  '--connect', `${ADDRESSES.server}:${PORT}`, '--connections', String(n), '--bytes', String(bytes), '--final-bytes', String(LINE),
  '--concurrency', String(concurrency), '--open-timeout-ms', String(60_000 + n * 20), '--finish-timeout-ms', String(60_000 + n * 10),
];

/** One idle-memory run: a fresh lab, N idle connections. */
export async function idleRun(n: number, o: LabOptions & { concurrency: number }): Promise<IdleRun> {
  return withScaleLab(o, async ({ topo, gatewayPid }) => {
    await sleep(1000);
    const before = await gatewaySnapshot(topo, true);
    const rssBefore = vmRss(gatewayPid);
    const client = await startHoldClient(topo.namespaces.client, holdArgs(n, 0, o.concurrency), 90_000 + n * 20);
    const onAbort = () => { void client.stop(); };
    o.signal?.addEventListener('abort', onAbort);
    try {
      if (client.ready.failed > 0) throw new FtcpError('FTCP_BENCH_IDLE', `${client.ready.failed} of ${n} connections failed to open`);
      await sleep(2000);
      const after = await gatewaySnapshot(topo, true);
      const rssAfter = vmRss(gatewayPid);
      if (after.connections < n) throw new FtcpError('FTCP_BENCH_IDLE', `the gateway has ${after.connections} connections, expected ${n}`);
      const rep = await client.finish(90_000 + n * 10);
      if (!rep.allOk) throw new FtcpError('FTCP_BENCH_IDLE', `${rep.failed} of ${n} connections failed: ${JSON.stringify(rep.errorCodes)} ${rep.errors[0]?.message ?? ''}`);
      const mb = before.memory!;
      const ma = after.memory!;
      return {
        connections: n, rssBefore, rssAfter, heapBefore: mb.heapUsed, heapAfter: ma.heapUsed,
        buffersBefore: mb.arrayBuffers, buffersAfter: ma.arrayBuffers,
        rssPerConn: (rssAfter - rssBefore) / n, heapPerConn: (ma.heapUsed - mb.heapUsed) / n, openMs: client.ready.readyMs,
      };
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
      await client.stop();
    }
  });
}

/** One recovery run: a fresh lab, N connections with `bytes` logged each, kill -9, timeline, release. */
export async function recoveryRun(n: number, o: LabOptions & { bytes: number; concurrency: number }): Promise<RecoveryRun> {
  return withScaleLab(o, async ({ name, topo, server, gatewayPid }) => {
    const client = await startHoldClient(topo.namespaces.client, holdArgs(n, o.bytes, o.concurrency), 90_000 + n * 20);
    const onAbort = () => { void client.stop(); };
    o.signal?.addEventListener('abort', onAbort);
    try {
      if (client.ready.failed > 0) throw new FtcpError('FTCP_BENCH_RECOVERY', `${client.ready.failed} of ${n} connections failed before the crash`);
      const rss = vmRss(gatewayPid);
      const killedAt = await server.kill9();
      await server.listening(server.generation, 30_000);
      const deadline = Date.now() + 30_000 + n * 20;
      let tl: (RecoveryTimeline & { ended?: number }) | undefined;
      let snap: GatewaySnapshot;
      for (;;) {
        snap = await gatewaySnapshot(topo);
        tl = (snap.recovery ?? []).find((t) => t.detectedAt >= killedAt - 5);
        if (tl !== undefined && tl.caughtUpAt > 0) break;
        if (o.signal?.aborted) throw new FtcpError('FTCP_BENCH_ABORTED', 'interrupted');
        if (Date.now() > deadline) throw new FtcpError('FTCP_BENCH_RECOVERY', `not every connection caught up within ${30_000 + n * 20} ms: ${JSON.stringify(tl ?? null)}`);
        await sleep(100);
      }
      const rep = await client.finish(90_000 + n * 10);
      if (!rep.allOk) throw new FtcpError('FTCP_BENCH_RECOVERY', `${rep.failed} of ${n} connections failed after the crash: ${JSON.stringify(rep.errorCodes)} ${rep.errors[0]?.message ?? ''}`);
      if (tl.connections !== n || tl.caughtUp !== n || tl.failed > 0) {
        throw new FtcpError('FTCP_BENCH_RECOVERY', `timeline: ${tl.connections} connections, ${tl.caughtUp} caught up, ${tl.failed} failed (expected ${n})`);
      }
      return {
        lab: name, connections: n, detectedMs: tl.detectedAt - killedAt, listeningMs: tl.listeningAt - killedAt,
        handshakesMs: tl.handshakesDoneAt - tl.listeningAt, replayMs: tl.replayDoneAt - tl.listeningAt, caughtUpMs: tl.caughtUpAt - tl.listeningAt,
        rss, north: snap.north ?? {}, tunDrops: await tunDrops(topo),
      };
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
      await client.stop();
    }
  });
}

async function runScale(o: ScaleOptions, command: string, signal: AbortSignal): Promise<ScaleResult> {
  const t0 = Date.now();
  const r: ScaleResult = {
    date: new Date().toISOString(),
    machine: machineLine(),
    loadBefore: loadavg(), loadAfter: [], command,
    options: {
      idle: o.idle, idleRuns: o.idleRuns, recovery: o.recovery, runs: o.runs, runsLarge: o.runsLarge, bytes: o.bytes,
      concurrency: o.concurrency, offload: o.offload, semiSpace: o.semiSpace, profDir: o.profDir,
    },
    idle: [], recovery: [], failures: [], durationS: 0,
  };
  const check = () => { if (signal.aborted) throw new FtcpError('FTCP_BENCH_ABORTED', 'interrupted'); };
  const common = { concurrency: o.concurrency, offload: o.offload, signal, semiSpace: o.semiSpace, ...(o.profDir ? { profDir: o.profDir } : {}) };
  if (o.idle > 0) {
    for (let run = 1; run <= o.idleRuns; run++) {
      check();
      try {
        const x = await idleRun(o.idle, common);
        r.idle.push(x);
        progress(`idle ${run}/${o.idleRuns}: ${o.idle} connections, RSS +${((x.rssAfter - x.rssBefore) / 1e6).toFixed(1)} MB = ${x.rssPerConn.toFixed(0)} B each, heap ${x.heapPerConn.toFixed(0)} B each`);
      } catch (e) {
        r.failures.push(`idle run ${run}: ${(e as Error).message}`);
        progress(`idle ${run}/${o.idleRuns} FAILED: ${(e as Error).message}`);
      }
    }
  }
  for (const n of o.recovery) {
    const runs = n > 1000 ? o.runsLarge : o.runs;
    for (let run = 1; run <= runs; run++) {
      check();
      try {
        const x = await recoveryRun(n, { ...common, bytes: o.bytes });
        r.recovery.push(x);
        progress(`recovery ${n} ${run}/${runs}: listening +${x.listeningMs} ms, handshakes ${x.handshakesMs} ms, replay ${x.replayMs} ms, caught up ${x.caughtUpMs} ms`);
      } catch (e) {
        r.failures.push(`recovery ${n} run ${run}: ${(e as Error).message}`);
        progress(`recovery ${n} ${run}/${runs} FAILED: ${(e as Error).message}`);
      }
    }
  }
  r.loadAfter = loadavg();
  r.durationS = (Date.now() - t0) / 1000;
  return r;
}

const cell = (s: Summary | null, digits = 0) => (s === null ? 'failed' : s.n === 1 ? s.median.toFixed(digits) : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`);
const sum = (xs: number[]) => summarize(xs);

export function scaleTables(r: ScaleResult): string[] {
  const lines: string[] = [];
  if (r.options.idle > 0) {
    const mb = (v: number) => v / 1e6;
    lines.push(
      `| idle protected connections | gateway RSS before (MB) | after (MB) | RSS per connection (B) | JS heap per connection (B) | runs |`,
      '| ---: | ---: | ---: | ---: | ---: | ---: |',
      `| ${r.options.idle} | ${cell(sum(r.idle.map((x) => mb(x.rssBefore))), 1)} | ${cell(sum(r.idle.map((x) => mb(x.rssAfter))), 1)} | ${cell(sum(r.idle.map((x) => x.rssPerConn)))} | ${cell(sum(r.idle.map((x) => x.heapPerConn)))} | ${r.idle.length} |`,
      '',
    );
  }
  if (r.options.recovery.length > 0) {
    lines.push(
      `| connections (${(r.options.bytes / 1024).toFixed(0)} KiB logged each) | detected (ms after kill) | listening again (ms after kill) | handshakes done (ms after listening) | replay done | every client caught up | gateway RSS before the crash (MB) | runs |`,
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const n of r.options.recovery) {
      const xs = r.recovery.filter((x) => x.connections === n);
      const s = (f: (x: RecoveryRun) => number) => cell(sum(xs.map(f)));
      lines.push(`| ${n} | ${s((x) => x.detectedMs)} | ${s((x) => x.listeningMs)} | ${s((x) => x.handshakesMs)} | ${s((x) => x.replayMs)} | **${s((x) => x.caughtUpMs)}** | ${cell(sum(xs.map((x) => x.rss / 1e6)))} | ${xs.length} |`);
    }
    lines.push('');
  }
  return lines;
}

function formatText(r: ScaleResult, markdown: boolean): string {
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  const head = markdown
    ? [`Date: ${r.date}  `, `Machine: ${r.machine}  `, `Load average: ${load(r.loadBefore)} before, ${load(r.loadAfter)} after  `, `Command: \`${r.command}\`  `]
    : [`${r.date}; ${r.machine}; load ${load(r.loadBefore)} before, ${load(r.loadAfter)} after`, `command: ${r.command}`];
  return [
    ...head,
    `Settings: gateway with the embedded memory log${r.options.offload ? ', TUN offloads' : ', --no-offload'}${r.options.semiSpace ? `, node --max-semi-space-size=${r.options.semiSpace}` : ''}; a fresh lab per run; clients open ${r.options.concurrency} connections at a time; median (min–max).`,
    '',
    ...scaleTables(r),
    ...(r.failures.length > 0 ? [`Failures: ${r.failures.join('; ')}`, ''] : []),
    `The whole benchmark took ${r.durationS.toFixed(0)} s.`,
    '',
  ].join('\n');
}

export function scaleMain(argv: string[]): Promise<number> {
  return runSubcommand({
    name: 'scale', usage: USAGE, parse: parseScaleOptions, run: runScale, format: formatText,
    prepare: (o) => { if (o.profDir) makeDirs(o.profDir); },
  }, argv);
}
