/**
 * `scripts/bench log`: the log modes side by side in one run (root: namespace labs).
 *
 *   1. the log alone, in this process (stability.ts): stable-notification latency p50/p99
 *      of one 1448-byte append, and the log's throughput, for embedded memory, embedded
 *      disk, remote memory and remote disk (remote = RemoteLog → loopback UDP, two paths →
 *      LogServer)
 *   2. through the gateway, on the namespace lab: single-stream upload to a protected port
 *      (every client byte goes through the log before the gateway acks it), per log mode,
 *      next to plain kernel forwarding. One lab per column:
 *        kernel           forward=kernel (no gateway, no log)
 *        embedded:memory  --log embedded
 *        embedded:disk    --log embedded:disk (LMDB, fsync per commit)
 *        remote:memory    --log remote, the lab's log server restarted on a memory store
 *        remote:disk      --log remote (ftcp logserver in <n>-log, disk store, both log links)
 *      an unrecorded warm-up upload per column, then `--runs` runs, the column order
 *      rotating from run to run; medians with (min–max).
 *
 * Labs are named ftcpl-<6 hex> and removed on every exit path (errors, SIGINT, SIGTERM).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { parseCli, parseIntFlag } from '../cli/args.js';
import { FtcpError } from '../util/errors.js';
import { OUTPUT_FLAGS, machineLine, outputOf, resultHead, resultTail, runSubcommand } from './program.js';
import { ADDRESSES, labDown, labUp, randomLabName, type LabTopology } from '../lab/index.js';
import { logRestart } from '../lab/faults.js';
import { gatewayStatus, runDemoClient, startDemoServer, stopProcess } from '../lab/procs.js';
import { measure, MODES, type Mode, type Result } from './stability.js';
import { summarize, type Summary } from './stats.js';
import { TRANSFER_FLAGS, transferOptions } from './run.js';

type Column = 'kernel' | Mode;
const COLUMNS: Column[] = ['kernel', ...MODES];
const PORT = 5001;

const USAGE = `usage: scripts/bench log [options]

The log modes side by side in one run: stable-notification latency (p50/p99) and log
throughput per mode (in this process, loopback UDP for the remote modes), and single-stream
upload through the gateway to a protected port per mode next to kernel forwarding (labs).

  --runs N          upload runs per column (default 3)
  --bytes B         bytes per upload (default 300M; suffix k, M, G = 10^3, 10^6, 10^9)
  --warmup-bytes B  unrecorded upload per column first (default 50M; 0: none)
  --samples N       latency samples per mode (default 2000)
  --mb MB           MB appended for the log's own throughput (default 100)
  --markdown        print the Markdown section for BENCHMARKS.md
  --json            print one JSON document`;

interface Options {
  runs: number;
  bytes: number;
  warmupBytes: number;
  samples: number;
  mb: number;
  output: 'human' | 'markdown' | 'json';
}

interface LogModesResult {
  date: string;
  machine: string;
  command: string;
  options: Omit<Options, 'output'>;
  stability: Result[];
  upload: Record<Column, (number | null)[]>;
  failures: string[];
  durationS: number;
}

const progress = (s: string) => process.stderr.write(`bench log: ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseCli(argv, {
    ...TRANSFER_FLAGS,
    samples: { type: 'string', default: '2000' },
    mb: { type: 'string', default: '100' },
    ...OUTPUT_FLAGS,
  });
  if (values.help) return 'help';
  const output = outputOf(values);
  return {
    ...transferOptions(values, { runs: 3, bytes: 300_000_000, minBytes: 1, warmupBytes: 50_000_000 }),
    samples: parseIntFlag(values.samples!, '--samples', 0, 10, 1_000_000),
    mb: parseIntFlag(values.mb!, '--mb', 0, 1, 100_000),
    output,
  };
}

interface Lab {
  column: Column;
  name: string;
  started: boolean;
  topo: LabTopology | null;
  server: ChildProcess | null;
}

async function bringUp(lab: Lab, signal: AbortSignal): Promise<void> {
  const c = lab.column;
  const log = c === 'embedded:memory' ? 'embedded' : c === 'embedded:disk' ? 'embedded:disk' : 'remote';
  progress(`lab ${lab.name} up (${c})`);
  lab.started = true;
  lab.topo = await labUp({ name: lab.name, forward: c === 'kernel' ? 'kernel' : 'gateway', log, protect: [PORT], signal });
  if (c === 'remote:memory') {
    // The lab's log server runs on disk; the memory column runs it on a memory store instead.
    await logRestart(lab.topo, 'memory');
    for (let i = 0; i < 100; i++) {
      const ll = (await gatewayStatus(lab.name)).logLink;
      if (ll?.peer === 'active' && Number(ll?.client?.serverRestarts ?? 0) >= 1) break;
      await sleep(50);
    }
  }
  lab.server = await startDemoServer(lab.topo.namespaces.server, 'upload', `${ADDRESSES.server}:${PORT}`);
}

/** One upload; Gb/s of payload over the client's connect-to-FIN time. */
async function upload(topo: LabTopology, bytes: number, seed: number): Promise<number> {
  const timeoutMs = Math.ceil((bytes * 8) / 20e6) * 1000 + 60_000;
  const r = await runDemoClient(topo.namespaces.client, ['--kind', 'upload', '--connect', `${ADDRESSES.server}:${PORT}`, '--bytes', String(bytes), '--seed', String(seed), '--timeout-ms', String(timeoutMs)], timeoutMs + 15_000);
  if (!r.allOk) throw new FtcpError('FTCP_BENCH_CLIENT', r.errors[0] ? `${r.errors[0].code}: ${r.errors[0].message}` : 'upload failed');
  return (r.bytesSent * 8) / (r.durationMs * 1e6);
}

async function runLogModes(o: Options, command: string, signal: AbortSignal): Promise<LogModesResult> {
  const t0 = Date.now();
  const result: LogModesResult = {
    date: new Date().toISOString(),
    machine: machineLine(true),
    command,
    options: { runs: o.runs, bytes: o.bytes, warmupBytes: o.warmupBytes, samples: o.samples, mb: o.mb },
    stability: [],
    upload: Object.fromEntries(COLUMNS.map((c) => [c, []])) as unknown as Record<Column, (number | null)[]>,
    failures: [],
    durationS: 0,
  };
  const dir = mkdtempSync(join(tmpdir(), 'ftcp-bench-log-'));
  try {
    for (const m of MODES) {
      if (signal.aborted) throw new FtcpError('FTCP_BENCH_ABORTED', 'interrupted');
      progress(`log alone: ${m}`);
      result.stability.push(await measure(m, dir, o.samples, 1, o.mb));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const labs: Lab[] = COLUMNS.map((column) => ({ column, name: randomLabName('ftcpl'), started: false, topo: null, server: null }));
  try {
    for (const lab of labs) {
      if (signal.aborted) throw new FtcpError('FTCP_BENCH_ABORTED', 'interrupted');
      await bringUp(lab, signal);
    }
    if (o.warmupBytes > 0) {
      for (const lab of labs) {
        await upload(lab.topo!, o.warmupBytes, 1).catch((e: unknown) => progress(`warm-up ${lab.column} failed: ${(e as Error).message}`));
      }
    }
    for (let run = 0; run < o.runs; run++) {
      for (let i = 0; i < labs.length; i++) {
        const lab = labs[(i + run) % labs.length]!;
        if (signal.aborted) throw new FtcpError('FTCP_BENCH_ABORTED', 'interrupted');
        try {
          const g = await upload(lab.topo!, o.bytes, 100 + run);
          result.upload[lab.column].push(g);
          progress(`run ${run + 1}/${o.runs} ${lab.column} upload: ${g.toFixed(2)} Gb/s`);
        } catch (e) {
          result.upload[lab.column].push(null);
          result.failures.push(`run ${run + 1} ${lab.column}: ${(e as Error).message}`);
          progress(`run ${run + 1}/${o.runs} ${lab.column} upload FAILED: ${(e as Error).message}`);
        }
      }
    }
  } finally {
    for (const lab of labs) {
      await stopProcess(lab.server ?? undefined).catch(() => {});
      if (lab.started) {
        await labDown(lab.name).then(() => progress(`lab ${lab.name} down`), (e: unknown) => progress(`lab ${lab.name} down failed: ${(e as Error).message}`));
      }
    }
  }
  result.durationS = (Date.now() - t0) / 1000;
  return result;
}

const cell = (s: Summary | null, digits = 2) => (s === null ? 'failed' : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`);

function table(r: LogModesResult): string[] {
  const up = Object.fromEntries(COLUMNS.map((c) => [c, summarize(r.upload[c].filter((v): v is number => v !== null))])) as Record<Column, Summary | null>;
  const kernel = up.kernel;
  const lines = [
    '| log mode | stable p50 (µs) | stable p99 (µs) | log alone (MB/s) | upload through the gateway (Gb/s) | vs kernel |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    `| kernel forwarding (no gateway, no log) | – | – | – | ${cell(kernel)} | ×1 |`,
  ];
  for (const m of MODES) {
    const s = r.stability.find((x) => x.mode === m);
    const u = up[m];
    const vs = u !== null && kernel !== null ? `×${(u.median / kernel.median).toFixed(2)}` : '–';
    lines.push(`| ${m} | ${s ? s.p50Us.toFixed(0) : '–'} | ${s ? s.p99Us.toFixed(0) : '–'} | ${s ? s.mbPerS.toFixed(0) : '–'} | ${cell(u)} | ${vs} |`);
  }
  return lines;
}

function formatText(r: LogModesResult, markdown: boolean): string {
  const o = r.options;
  return [
    ...resultHead(r, markdown),
    `Settings: latency ${o.samples} appends of 1448 B, 1 ms apart; log alone ${o.mb} MB; upload ${(o.bytes / 1e6).toFixed(0)} MB per run, ${o.runs} runs per column, median (min–max), after an unrecorded ${(o.warmupBytes / 1e6).toFixed(0)} MB upload.`,
    '',
    ...table(r),
    '',
    'Latency and "log alone" are measured in one process (the remote modes over loopback UDP, two paths); the upload column goes through the namespace lab (remote: ftcp logserver in its own namespace, over both log links).',
    ...resultTail(r),
  ].join('\n');
}

export function logModesMain(argv: string[]): Promise<number> {
  return runSubcommand({ name: 'log', usage: USAGE, parse: parseOptions, run: runLogModes, format: formatText }, argv);
}
