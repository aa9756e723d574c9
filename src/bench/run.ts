/**
 * `scripts/bench [options]` (node dist/bench/main.js, whose entry is ./main.ts): the gateway against plain kernel
 * forwarding, in the same run, on the namespace lab. A benchmark, not a test: it measures
 * and prints; a failed run is reported and left out of the medians.
 *
 *   1. labs up (not timed): one per forwarding kind that the chosen configurations need
 *        kernel  forward=kernel
 *        memory  forward=gateway, log embedded (memory), protect 5001-5003
 *        disk    forward=gateway, log embedded:disk,     protect 5001-5003
 *      demo servers in each lab's server namespace: upload/download/echo on the protected
 *      ports 5001-5003, and (memory lab) on the unprotected ports 6001-6003.
 *   2. warm-up (not recorded): one upload and one download of --warmup-bytes per configuration.
 *   3. runs 1..N; in each run every configuration in turn (the order rotates from run to
 *      run, so slow drifts and a neighbour's load spread over all columns), and for each:
 *        upload    demo-client --kind upload   (client namespace) → Gb/s from its durationMs
 *        download  demo-client --kind download                    → Gb/s
 *        rtt       dist/bench/rr.js against the echo server       → p50, p99 (µs)
 *   4. the gateways' counters (packets through the TUN: proof the traffic went through it).
 *   5. always: servers stopped, labs down (also on SIGINT/SIGTERM and on errors).
 *
 * The timed part of every measurement is inside the client program (from its connect to
 * its last byte); process start-up and lab setup are outside it.
 */
import { readFileSync } from 'node:fs';
import { loadavg, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { parseCli, parseIntFlag } from '../cli/args.js';
import { FtcpError, UsageError } from '../util/errors.js';
import {
  ADDRESSES, REPO_ROOT, execIn, labDown, labUp, netnsPids, randomLabName, spawnIn,
  type LabTopology,
} from '../lab/index.js';
import {
  LABS, METRIC_GROUPS, configById, parseConfigList, parseMetricGroups, type BenchConfig, type LabId, type MetricId, type ServiceKind,
} from './configs.js';
import {
  ALL_CONFIGS, emptySamples, formatHuman, formatMarkdown, toJsonDocument,
  type BenchResult, type GatewayCounters, type Machine, type RunFailure, type Settings,
} from './report.js';
import type { RrReport } from './rr.js';
import type { SetupReport } from './setup.js';

const FTCP = join(REPO_ROOT, 'bin', 'ftcp.js');
const RR = fileURLToPath(new URL('./rr.js', import.meta.url));
const SETUP = fileURLToPath(new URL('./setup.js', import.meta.url));
const TUNFWD = fileURLToPath(new URL('./tunfwd.js', import.meta.url));
const SERVER = ADDRESSES.server;

export const DEFAULTS = {
  runs: 3,
  bytes: 500_000_000,
  warmupBytes: 50_000_000,
  roundTrips: 20_000,
  rrWarmup: 1_000,
  rrSize: 32,
  streams: 8,
  iperfSeconds: 3,
  setupConnections: 2_000,
  setupConcurrency: 8,
} as const;

const USAGE = `usage: scripts/bench [options]

Measures kernel forwarding and the ftcp gateway in the same run (namespace lab, root):
single-stream and 8-stream upload and download throughput (demo programs, SHA-256
checked, and iperf3), connection set-up rate, request/response round-trip p50/p99.
Prints the medians over the runs with (min–max), the ratio to kernel forwarding for
throughput and set-up rate, and the added latency for round trips.

  --runs N               runs per configuration (default ${DEFAULTS.runs})
  --bytes B              bytes per upload/download run (default ${DEFAULTS.bytes}; suffix k, M, G = 10^3, 10^6, 10^9)
  --warmup-bytes B       unrecorded warm-up transfer per configuration and direction (default ${DEFAULTS.warmupBytes}; 0: none)
  --round-trips N        recorded round trips per RTT run (default ${DEFAULTS.roundTrips})
  --rr-warmup N          unrecorded round trips before them (default ${DEFAULTS.rrWarmup})
  --rr-size S            request/response size in bytes, newline included (default ${DEFAULTS.rrSize})
  --configs LIST         subset of ${ALL_CONFIGS} (default: all but the --checksums trust baselines gw-memory-trust, gw-plain-trust)
  --metrics LIST         subset of ${METRIC_GROUPS.join(',')} (default: all)
                           demo: single-stream upload/download with the demo programs (SHA-256 checked)
                           streams: the same over --streams parallel connections
                           iperf: iperf3 with 1 and --streams streams each way
                           setup: short connections per second (connect, one echoed line, close)
                           rtt: request/response round trips, one outstanding
  --streams N            parallel connections of the streams and iperf rows (default ${DEFAULTS.streams})
  --iperf-seconds S      measured seconds per iperf3 run, after 1 unrecorded (default ${DEFAULTS.iperfSeconds})
  --setup-connections N  short connections per set-up run (default ${DEFAULTS.setupConnections})
  --setup-concurrency C  of them in flight at once (default ${DEFAULTS.setupConcurrency})
  --json                 print one JSON document instead of the table
  --markdown             print a Markdown table with date, kernel, CPU and cores (for BENCHMARKS.md)

Progress goes to stderr. The labs are named ftcpb-<6 hex> and are removed on every exit path.`;

interface Options extends Settings {
  output: 'human' | 'json' | 'markdown';
}

const DECIMAL: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9 };

/** "500000000", "500M", "500MB", "1G" (decimal multiples, like Gb/s). */
export function parseBytes(s: string | undefined, flag: string, dflt: number, min: number): number {
  if (s === undefined) return dflt;
  const m = /^(\d+)([kKmMgG]?)B?$/.exec(s.trim());
  if (!m) throw new UsageError(`${flag}: expected a byte count such as 500000000, 500M or 1G, got '${s}'`);
  const n = Number(m[1]) * DECIMAL[m[2]!.toUpperCase()]!;
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${flag}: must be an integer >= ${min}, got '${s}'`);
  return n;
}

/** The flags of a `scripts/bench <sub>` that repeats one transfer (spread into its parseCli spec). */
export const TRANSFER_FLAGS = { runs: { type: 'string' }, bytes: { type: 'string' }, 'warmup-bytes': { type: 'string' } } as const;

/** --runs (1..100), --bytes, --warmup-bytes (0: none) with the subcommand's defaults. */
export function transferOptions(
  v: { runs?: string | undefined; bytes?: string | undefined; 'warmup-bytes'?: string | undefined },
  d: { runs: number; bytes: number; minBytes: number; warmupBytes: number },
): { runs: number; bytes: number; warmupBytes: number } {
  return {
    runs: parseIntFlag(v.runs, '--runs', d.runs, 1, 100),
    bytes: parseBytes(v.bytes, '--bytes', d.bytes, d.minBytes),
    warmupBytes: parseBytes(v['warmup-bytes'], '--warmup-bytes', d.warmupBytes, 0),
  };
}

export function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseCli(argv, {
    runs: { type: 'string' },
    bytes: { type: 'string' },
    'warmup-bytes': { type: 'string' },
    'round-trips': { type: 'string' },
    'rr-warmup': { type: 'string' },
    'rr-size': { type: 'string' },
    configs: { type: 'string' },
    metrics: { type: 'string' },
    streams: { type: 'string' },
    'iperf-seconds': { type: 'string' },
    'setup-connections': { type: 'string' },
    'setup-concurrency': { type: 'string' },
    json: { type: 'boolean', default: false },
    markdown: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return 'help';
  if (values.json && values.markdown) throw new UsageError('--json and --markdown exclude each other');
  const configs = parseConfigList(values.configs);
  if (!configs || configs.length === 0) throw new UsageError(`--configs: expected a comma-separated subset of ${ALL_CONFIGS}, got '${values.configs}'`);
  const metrics = parseMetricGroups(values.metrics);
  if (!metrics || metrics.length === 0) throw new UsageError(`--metrics: expected a comma-separated subset of ${METRIC_GROUPS.join(',')}, got '${values.metrics}'`);
  return {
    metrics,
    streams: parseIntFlag(values.streams, '--streams', DEFAULTS.streams, 1, 128),
    iperfSeconds: parseIntFlag(values['iperf-seconds'], '--iperf-seconds', DEFAULTS.iperfSeconds, 1, 600),
    setupConnections: parseIntFlag(values['setup-connections'], '--setup-connections', DEFAULTS.setupConnections, 1, 1_000_000),
    setupConcurrency: parseIntFlag(values['setup-concurrency'], '--setup-concurrency', DEFAULTS.setupConcurrency, 1, 1_000),
    runs: parseIntFlag(values.runs, '--runs', DEFAULTS.runs, 1, 1000),
    bytes: parseBytes(values.bytes, '--bytes', DEFAULTS.bytes, 1),
    warmupBytes: parseBytes(values['warmup-bytes'], '--warmup-bytes', DEFAULTS.warmupBytes, 0),
    roundTrips: parseIntFlag(values['round-trips'], '--round-trips', DEFAULTS.roundTrips, 1, 10_000_000),
    rrWarmup: parseIntFlag(values['rr-warmup'], '--rr-warmup', DEFAULTS.rrWarmup, 0, 10_000_000),
    rrSize: parseIntFlag(values['rr-size'], '--rr-size', DEFAULTS.rrSize, 2, 65536),
    configs,
    output: values.json ? 'json' : values.markdown ? 'markdown' : 'human',
  };
}

// ---- the machine ---------------------------------------------------------------------

function cpuInfo(): { cpu: string; cores: number } {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const model = /^model name\s*:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? 'unknown CPU';
    const cores = text.split('\n').filter((l) => /^processor\s*:/.test(l)).length;
    return { cpu: model, cores };
  } catch {
    return { cpu: 'unknown CPU', cores: 0 };
  }
}

const load = () => loadavg().map((x) => Math.round(x * 100) / 100);

function machineAtStart(): Machine {
  return { date: new Date().toISOString(), kernel: release(), ...cpuInfo(), node: process.versions.node, loadavgStart: load(), loadavgEnd: [] };
}

// ---- the labs ------------------------------------------------------------------------

interface Lab {
  id: LabId;
  name: string;
  topo: LabTopology | null;
  servers: ChildProcess[];
}

const progress = (s: string) => process.stderr.write(`bench: ${s}\n`);

class Aborted extends FtcpError {
  constructor(why: string) {
    super('FTCP_BENCH_ABORTED', `interrupted (${why})`);
  }
}

/** Waits (bounded) for the server's "I listen" line: the demo server's {"listening":...}, iperf3's "Server listening". */
function waitListening(child: ChildProcess, what: string, marker = '"listening"', timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const done = (err: Error | null) => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    };
    const onData = (d: Buffer) => {
      buf += d.toString();
      if (buf.includes(marker)) done(null);
    };
    const onExit = (code: number | null) => done(new FtcpError('FTCP_BENCH_SERVER', `${what} exited (${code}) before listening: ${buf.slice(-300)}`));
    const timer = setTimeout(() => done(new FtcpError('FTCP_BENCH_SERVER', `${what} not listening within ${timeoutMs} ms`)), timeoutMs);
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });
}

async function startServers(lab: Lab, configs: BenchConfig[], iperf: boolean): Promise<void> {
  const ns = lab.topo!.namespaces.server;
  if (iperf) {
    for (const port of new Set(configs.map((c) => c.iperfPort))) {
      const child = spawnIn(ns, 'iperf3', ['-s', '-B', SERVER, '-p', String(port), '--forceflush'], { stdio: ['ignore', 'pipe', 'ignore'] });
      lab.servers.push(child);
      child.on('error', () => { /* reported through waitListening's exit */ });
      await waitListening(child, `iperf3 -s on ${port} in ${ns}`, 'Server listening');
    }
  }
  const wanted = new Map<number, ServiceKind>();
  for (const c of configs) for (const [kind, port] of Object.entries(c.ports) as Array<[ServiceKind, number]>) wanted.set(port, kind);
  for (const [port, kind] of wanted) {
    const child = spawnIn(ns, process.execPath, [FTCP, 'demo-server', '--kind', kind, '--listen', `${SERVER}:${port}`, '--json'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    lab.servers.push(child);
    child.on('error', () => { /* reported through waitListening's exit */ });
    await waitListening(child, `demo-server ${kind} on ${port} in ${ns}`);
  }
}

async function stopServers(lab: Lab): Promise<void> {
  await Promise.all(lab.servers.map((c) => new Promise<void>((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    const t = setTimeout(() => { c.kill('SIGKILL'); }, 3000);
    c.once('exit', () => { clearTimeout(t); resolve(); });
    c.kill('SIGTERM');
  })));
}

/** User + system CPU seconds of a process (/proc/<pid>/stat fields 14 and 15, in USER_HZ = 100 ticks), null if gone. */
export function processCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // after "pid (comm) ": field 3 is f[0]
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return null;
  }
}

async function gatewayCounters(lab: Lab): Promise<GatewayCounters | null> {
  const topo = lab.topo;
  if (!topo || topo.forward !== 'gateway') return null;
  const script = `fetch('http://${topo.control}/status').then(r=>r.text()).then(t=>process.stdout.write(t),e=>{console.error(e.message);process.exit(1)})`;
  const r = await execIn(topo.namespaces.gw, process.execPath, ['-e', script], { timeoutMs: 15_000 });
  if (r.code !== 0) return null;
  try {
    const st = JSON.parse(r.stdout) as { stats?: Record<string, number>; south?: Record<string, number> };
    const n = (x: unknown) => (typeof x === 'number' ? x : 0);
    return {
      packets: n(st.stats?.packets),
      protectedPackets: n(st.stats?.protectedPackets),
      unprotectedTcp: n(st.stats?.unprotectedTcp),
      dropped: n(st.stats?.dropped),
      acksLowered: typeof st.south?.acksLowered === 'number' ? st.south.acksLowered : null,
      acksHeld: typeof st.south?.acksHeld === 'number' ? st.south.acksHeld : null,
      cpuSeconds: topo.gatewayPid ? processCpuSeconds(topo.gatewayPid) : null,
    };
  } catch {
    return null;
  }
}

// ---- one measurement -----------------------------------------------------------------

/** Generous deadline for a transfer: at least 20 Mb/s, plus a minute. */
const transferTimeoutMs = (bytes: number) => Math.ceil((bytes * 8) / 20e6) * 1000 + 60_000;

interface DemoReport {
  allOk: boolean;
  errors: Array<{ code: string; message: string }>;
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
}

/**
 * One upload or download of `bytes` in all over `connections` parallel connections; Gb/s of
 * the payload direction. Throws with the reason on failure.
 */
export async function transfer(topo: LabTopology, kind: 'upload' | 'download', port: number, bytes: number, seed: number, connections = 1): Promise<number> {
  const timeoutMs = transferTimeoutMs(bytes);
  const r = await execIn(topo.namespaces.client, process.execPath, [
    FTCP, 'demo-client', '--kind', kind, '--connect', `${SERVER}:${port}`, '--bytes', String(Math.max(1, Math.floor(bytes / connections))),
    '--connections', String(connections), '--seed', String(seed), '--timeout-ms', String(timeoutMs), '--json',
  ], { timeoutMs: timeoutMs + 15_000 });
  let rep: DemoReport;
  try {
    rep = JSON.parse(r.stdout) as DemoReport;
  } catch {
    throw new FtcpError('FTCP_BENCH_CLIENT', `demo-client printed no report (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
  }
  if (!rep.allOk) {
    const e = rep.errors[0];
    throw new FtcpError('FTCP_BENCH_CLIENT', e ? `${e.code}: ${e.message}` : `demo-client exit ${r.code}`);
  }
  const payload = kind === 'upload' ? rep.bytesSent : rep.bytesReceived;
  return (payload * 8) / (rep.durationMs * 1e6);
}

/** One iperf3 run (`-R`: the server sends); Gb/s as the receiver counted it. */
async function iperf(topo: LabTopology, port: number, seconds: number, streams: number, reverse: boolean): Promise<number> {
  const args = ['-c', SERVER, '-p', String(port), '-t', String(seconds), '-O', '1', '-P', String(streams), '-J', ...(reverse ? ['-R'] : [])];
  let r = await execIn(topo.namespaces.client, 'iperf3', args, { timeoutMs: (seconds + 30) * 1000 });
  // iperf3's server takes a moment to be ready for the next test after one ends, and refuses
  // the control connection meanwhile ("unable to connect", "busy"): try again, twice at most.
  for (let retry = 0; retry < 2 && r.code !== 0 && /unable to connect|busy/i.test(r.stdout + r.stderr); retry++) {
    await new Promise((res) => setTimeout(res, 1000));
    r = await execIn(topo.namespaces.client, 'iperf3', args, { timeoutMs: (seconds + 30) * 1000 });
  }
  let doc: { error?: string; end?: { sum_received?: { bits_per_second?: number } } };
  try {
    doc = JSON.parse(r.stdout) as typeof doc;
  } catch {
    throw new FtcpError('FTCP_BENCH_IPERF', `iperf3 printed no report (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
  }
  const bps = doc.end?.sum_received?.bits_per_second;
  if (r.code !== 0 || doc.error !== undefined || typeof bps !== 'number') throw new FtcpError('FTCP_BENCH_IPERF', `iperf3 ${args.join(' ')}: ${doc.error ?? `exit ${r.code}`}`);
  return bps / 1e9;
}

/** One set-up run (./setup.ts in the client namespace). */
async function setups(topo: LabTopology, port: number, s: Settings): Promise<SetupReport> {
  const timeoutMs = 300_000;
  const r = await execIn(topo.namespaces.client, process.execPath, [
    SETUP, '--connect', `${SERVER}:${port}`, '--connections', String(s.setupConnections), '--concurrency', String(s.setupConcurrency),
    '--timeout-ms', String(timeoutMs), '--json',
  ], { timeoutMs: timeoutMs + 15_000 });
  if (r.code !== 0) throw new FtcpError('FTCP_BENCH_SETUP', (r.stderr || r.stdout).trim().slice(0, 300) || `setup exit ${r.code}`);
  try {
    return JSON.parse(r.stdout) as SetupReport;
  } catch {
    throw new FtcpError('FTCP_BENCH_SETUP', `setup printed no report: ${r.stdout.slice(0, 300)}`);
  }
}

async function roundTrips(topo: LabTopology, port: number, s: Settings): Promise<RrReport> {
  const timeoutMs = 300_000;
  const r = await execIn(topo.namespaces.client, process.execPath, [
    RR, '--connect', `${SERVER}:${port}`, '--round-trips', String(s.roundTrips), '--warmup', String(s.rrWarmup),
    '--size', String(s.rrSize), '--timeout-ms', String(timeoutMs), '--json',
  ], { timeoutMs: timeoutMs + 15_000 });
  if (r.code !== 0) throw new FtcpError('FTCP_BENCH_RR', (r.stderr || r.stdout).trim().slice(0, 300) || `rr exit ${r.code}`);
  try {
    return JSON.parse(r.stdout) as RrReport;
  } catch {
    throw new FtcpError('FTCP_BENCH_RR', `rr printed no report: ${r.stdout.slice(0, 300)}`);
  }
}

// ---- the benchmark -------------------------------------------------------------------

export async function runBench(opts: Options, command: string, signal: AbortSignal): Promise<BenchResult> {
  const t0 = Date.now();
  const machine = machineAtStart();
  const configs = opts.configs.map(configById);
  const labIds = [...new Set(configs.map((c) => c.lab))];
  const labs = new Map<LabId, Lab>();
  const samples = emptySamples(opts.configs);
  const failures: RunFailure[] = [];
  const gateway: BenchResult['gateway'] = {};
  const check = () => {
    if (signal.aborted) throw new Aborted(String(signal.reason ?? 'signal'));
  };

  try {
    for (const id of labIds) {
      check();
      const spec = LABS[id];
      const lab: Lab = { id, name: randomLabName('ftcpb'), topo: null, servers: [] };
      labs.set(id, lab);
      ownLabs.add(lab.name);
      progress(`lab ${lab.name} up (${id}: forward ${spec.forward}${spec.forward === 'gateway' ? `, log ${spec.log}, protect ${spec.protect.join(',')}` : ''}${spec.extraGatewayArgs ? ` ${spec.extraGatewayArgs.join(' ')}` : ''}${spec.tunForwarder ? ', plain TUN forwarder' : ''})`);
      lab.topo = await labUp({
        name: lab.name, forward: spec.forward, log: spec.log, protect: spec.protect, signal,
        ...(spec.extraGatewayArgs ? { extraGatewayArgs: spec.extraGatewayArgs } : {}),
        ...(spec.tunForwarder ? { gatewayCommand: [process.execPath, TUNFWD] } : {}),
      });
      await startServers(lab, configs.filter((c) => c.lab === id), opts.metrics.includes('iperf'));
    }

    const topoOf = (c: BenchConfig) => labs.get(c.lab)!.topo!;
    if (opts.warmupBytes > 0 && (opts.metrics.includes('demo') || opts.metrics.includes('streams'))) {
      for (const c of configs) {
        for (const kind of ['upload', 'download'] as const) {
          check();
          try {
            await transfer(topoOf(c), kind, c.ports[kind], opts.warmupBytes, 1);
          } catch (e) {
            progress(`warm-up ${c.id} ${kind} failed: ${(e as Error).message}`);
          }
        }
      }
    }

    for (let run = 0; run < opts.runs; run++) {
      const order = configs.map((_, i) => configs[(i + run) % configs.length]!);
      for (const c of order) {
        const topo = topoOf(c);
        const s = samples[c.id];
        const note = (test: RunFailure['test'], e: unknown) => {
          check(); // an interruption kills the clients: not a failure of the run
          const message = (e as Error).message;
          failures.push({ config: c.id, run: run + 1, test, message });
          progress(`run ${run + 1}/${opts.runs} ${c.id} ${test} FAILED: ${message}`);
        };
        /** One measurement: its value(s) go to `ids`, null on failure (left out of the medians). */
        const measure = async (test: string, ids: MetricId[], fn: () => Promise<number[]>, show: (v: number[]) => string) => {
          check();
          try {
            const v = await fn();
            ids.forEach((id, i) => s[id].push(v[i]!));
            progress(`run ${run + 1}/${opts.runs} ${c.id} ${test}: ${show(v)}`);
          } catch (e) {
            for (const id of ids) s[id].push(null);
            note(test, e);
          }
        };
        const gb = (v: number[]) => `${v[0]!.toFixed(2)} Gb/s`;
        const n = opts.streams;
        if (opts.metrics.includes('demo')) {
          await measure('upload', ['upload'], async () => [await transfer(topo, 'upload', c.ports.upload, opts.bytes, 100 + run)], gb);
          await measure('download', ['download'], async () => [await transfer(topo, 'download', c.ports.download, opts.bytes, 100 + run)], gb);
        }
        if (opts.metrics.includes('streams')) {
          await measure(`upload x${n}`, ['upload8'], async () => [await transfer(topo, 'upload', c.ports.upload, opts.bytes, 200 + run, n)], gb);
          await measure(`download x${n}`, ['download8'], async () => [await transfer(topo, 'download', c.ports.download, opts.bytes, 200 + run, n)], gb);
        }
        if (opts.metrics.includes('iperf')) {
          await measure('iperf3', ['iperfUp'], async () => [await iperf(topo, c.iperfPort, opts.iperfSeconds, 1, false)], gb);
          await measure('iperf3 -R', ['iperfDown'], async () => [await iperf(topo, c.iperfPort, opts.iperfSeconds, 1, true)], gb);
          await measure(`iperf3 -P ${n}`, ['iperfUp8'], async () => [await iperf(topo, c.iperfPort, opts.iperfSeconds, n, false)], gb);
          await measure(`iperf3 -R -P ${n}`, ['iperfDown8'], async () => [await iperf(topo, c.iperfPort, opts.iperfSeconds, n, true)], gb);
        }
        if (opts.metrics.includes('setup')) {
          await measure('setup', ['setupRate'], async () => [(await setups(topo, c.ports.echo, opts)).perSecond], (v) => `${v[0]} connections/s`);
        }
        if (opts.metrics.includes('rtt')) {
          await measure('rtt', ['rttP50', 'rttP99'], async () => {
            const rr = await roundTrips(topo, c.ports.echo, opts);
            return [rr.p50Us, rr.p99Us];
          }, (v) => `p50 ${v[0]} µs, p99 ${v[1]} µs`);
        }
      }
    }

    for (const lab of labs.values()) {
      const g = await gatewayCounters(lab);
      if (g) gateway[lab.id] = g;
    }
  } finally {
    const problems: string[] = [];
    for (const lab of labs.values()) {
      await stopServers(lab).catch(() => {});
      try {
        await labDown(lab.name);
        progress(`lab ${lab.name} down`);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    if (problems.length > 0) progress(`cleanup problems: ${problems.join('; ')}`);
  }

  machine.loadavgEnd = load();
  const { output: _output, ...settings } = opts;
  return { command, machine, settings, samples, failures, gateway, durationS: (Date.now() - t0) / 1000 };
}

/** Names of the labs this process brought up (the signal handler only touches those). */
const ownLabs = new Set<string>();

/** On SIGINT/SIGTERM: abort, and kill the clients in our labs' client namespaces so the run returns now. */
function onSignals(ctrl: AbortController): () => void {
  const handler = (sig: NodeJS.Signals) => {
    if (ctrl.signal.aborted) return;
    progress(`${sig}: stopping, taking the labs down`);
    ctrl.abort(sig);
    void (async () => {
      for (const name of ownLabs) {
        for (const pid of await netnsPids(`${name}-client`)) {
          try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
        }
      }
    })();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

export async function main(argv: string[]): Promise<number> {
  const opts = parseOptions(argv);
  if (opts === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (process.getuid?.() !== 0) throw new FtcpError('FTCP_BENCH_ROOT', 'the benchmark needs root (network namespaces)');
  const command = [process.env.FTCP_BENCH_ARGV0 ?? 'node dist/bench/main.js', ...argv].join(' ');
  const ctrl = new AbortController();
  const off = onSignals(ctrl);
  try {
    const result = await runBench(opts, command, ctrl.signal);
    const out = opts.output === 'json' ? JSON.stringify(toJsonDocument(result), null, 2) + '\n'
      : opts.output === 'markdown' ? formatMarkdown(result)
      : formatHuman(result);
    process.stdout.write(out);
    return 0;
  } finally {
    off();
  }
}
