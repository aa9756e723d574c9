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
import { parseCli } from '../cli/args.js';
import { FtcpError, UsageError } from '../util/errors.js';
import {
  ADDRESSES, REPO_ROOT, execIn, labDown, labUp, netnsPids, randomLabName, spawnIn,
  type LabTopology,
} from '../lab/index.js';
import { LABS, configById, parseConfigList, type BenchConfig, type LabId, type ServiceKind } from './configs.js';
import {
  ALL_CONFIGS, emptySamples, formatHuman, formatMarkdown, toJsonDocument,
  type BenchResult, type GatewayCounters, type Machine, type RunFailure, type Settings,
} from './report.js';
import type { RrReport } from './rr.js';

const FTCP = join(REPO_ROOT, 'bin', 'ftcp.js');
const RR = fileURLToPath(new URL('./rr.js', import.meta.url));
const SERVER = ADDRESSES.server;

export const DEFAULTS = {
  runs: 5,
  bytes: 500_000_000,
  warmupBytes: 50_000_000,
  roundTrips: 20_000,
  rrWarmup: 1_000,
  rrSize: 32,
} as const;

const USAGE = `usage: scripts/bench [options]

Measures kernel forwarding and the ftcp gateway in the same run (namespace lab, root):
single-stream upload and download throughput, request/response round-trip p50/p99.
Prints the medians over the runs with (min–max), the ratio to kernel forwarding for
throughput and the added latency for round trips.

  --runs N               runs per configuration (default ${DEFAULTS.runs})
  --bytes B              bytes per upload/download run (default ${DEFAULTS.bytes}; suffix k, M, G = 10^3, 10^6, 10^9)
  --warmup-bytes B       unrecorded warm-up transfer per configuration and direction (default ${DEFAULTS.warmupBytes}; 0: none)
  --round-trips N        recorded round trips per RTT run (default ${DEFAULTS.roundTrips})
  --rr-warmup N          unrecorded round trips before them (default ${DEFAULTS.rrWarmup})
  --rr-size S            request/response size in bytes, newline included (default ${DEFAULTS.rrSize})
  --configs LIST         subset of ${ALL_CONFIGS} (default: all)
  --json                 print one JSON document instead of the table
  --markdown             print a Markdown table with date, kernel, CPU and cores (for BENCHMARKS.md)

Progress goes to stderr. The labs are named ftcpb-<6 hex> and are removed on every exit path.`;

interface Options extends Settings {
  output: 'human' | 'json' | 'markdown';
}

function intArg(s: string | undefined, flag: string, dflt: number, min: number, max: number): number {
  if (s === undefined) return dflt;
  if (!/^\d+$/.test(s)) throw new UsageError(`${flag}: expected an integer, got '${s}'`);
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${flag}: must be in ${min}..${max}, got ${s}`);
  return n;
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

export function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseCli(argv, {
    runs: { type: 'string' },
    bytes: { type: 'string' },
    'warmup-bytes': { type: 'string' },
    'round-trips': { type: 'string' },
    'rr-warmup': { type: 'string' },
    'rr-size': { type: 'string' },
    configs: { type: 'string' },
    json: { type: 'boolean', default: false },
    markdown: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return 'help';
  if (values.json && values.markdown) throw new UsageError('--json and --markdown exclude each other');
  const configs = parseConfigList(values.configs);
  if (!configs || configs.length === 0) throw new UsageError(`--configs: expected a comma-separated subset of ${ALL_CONFIGS}, got '${values.configs}'`);
  return {
    runs: intArg(values.runs, '--runs', DEFAULTS.runs, 1, 1000),
    bytes: parseBytes(values.bytes, '--bytes', DEFAULTS.bytes, 1),
    warmupBytes: parseBytes(values['warmup-bytes'], '--warmup-bytes', DEFAULTS.warmupBytes, 0),
    roundTrips: intArg(values['round-trips'], '--round-trips', DEFAULTS.roundTrips, 1, 10_000_000),
    rrWarmup: intArg(values['rr-warmup'], '--rr-warmup', DEFAULTS.rrWarmup, 0, 10_000_000),
    rrSize: intArg(values['rr-size'], '--rr-size', DEFAULTS.rrSize, 2, 65536),
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

/** Waits (bounded) for the demo server's {"listening":...} line. */
function waitListening(child: ChildProcess, what: string, timeoutMs = 15_000): Promise<void> {
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
      if (buf.includes('"listening"')) done(null);
    };
    const onExit = (code: number | null) => done(new FtcpError('FTCP_BENCH_SERVER', `${what} exited (${code}) before listening: ${buf.slice(-300)}`));
    const timer = setTimeout(() => done(new FtcpError('FTCP_BENCH_SERVER', `${what} not listening within ${timeoutMs} ms`)), timeoutMs);
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });
}

async function startServers(lab: Lab, configs: BenchConfig[]): Promise<void> {
  const ns = lab.topo!.namespaces.server;
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

/** One upload or download; Gb/s of the payload direction. Throws with the reason on failure. */
async function transfer(topo: LabTopology, kind: 'upload' | 'download', port: number, bytes: number, seed: number): Promise<number> {
  const timeoutMs = transferTimeoutMs(bytes);
  const r = await execIn(topo.namespaces.client, process.execPath, [
    FTCP, 'demo-client', '--kind', kind, '--connect', `${SERVER}:${port}`, '--bytes', String(bytes),
    '--seed', String(seed), '--timeout-ms', String(timeoutMs), '--json',
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
      progress(`lab ${lab.name} up (${id}: forward ${spec.forward}${spec.forward === 'gateway' ? `, log ${spec.log}, protect ${spec.protect.join(',')}` : ''}${spec.extraGatewayArgs ? ` ${spec.extraGatewayArgs.join(' ')}` : ''})`);
      lab.topo = await labUp({ name: lab.name, forward: spec.forward, log: spec.log, protect: spec.protect, signal, ...(spec.extraGatewayArgs ? { extraGatewayArgs: spec.extraGatewayArgs } : {}) });
      await startServers(lab, configs.filter((c) => c.lab === id));
    }

    const topoOf = (c: BenchConfig) => labs.get(c.lab)!.topo!;
    if (opts.warmupBytes > 0) {
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
        for (const kind of ['upload', 'download'] as const) {
          check();
          try {
            const gbps = await transfer(topo, kind, c.ports[kind], opts.bytes, 100 + run);
            s[kind].push(gbps);
            progress(`run ${run + 1}/${opts.runs} ${c.id} ${kind}: ${gbps.toFixed(2)} Gb/s`);
          } catch (e) {
            s[kind].push(null);
            note(kind, e);
          }
        }
        check();
        try {
          const rr = await roundTrips(topo, c.ports.echo, opts);
          s.rttP50.push(rr.p50Us);
          s.rttP99.push(rr.p99Us);
          progress(`run ${run + 1}/${opts.runs} ${c.id} rtt: p50 ${rr.p50Us} µs, p99 ${rr.p99Us} µs`);
        } catch (e) {
          s.rttP50.push(null);
          s.rttP99.push(null);
          note('rtt', e);
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
