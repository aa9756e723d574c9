/**
 * `scripts/bench gateway-restart`: what a crash of the gateway process costs a client (issue
 * 14 item 5): --drills runs of `ftcp drill --scenario <s> --fault gateway-kill --log
 * embedded:disk --crashes 0` (src/lab/gwkill.ts), each in its own lab: kill -9 of the gateway
 * mid-transfer, restarted 100 ms later with the same command line (systemd's RestartSec).
 *
 * The figure: from the kill to data flowing again, every connection (the last of them to move
 * again; one upload stream by default, so one connection, the issue's measurement), p50 and
 * max over the drills, beside the restarted gateway's ready time. A drill that failed its
 * checks (adoption, byte-exact, RST/FIN/ICMP, the ack invariant) still gives its figure when
 * the data flowed again; its failures are printed with it and make the exit status 1.
 */
import { parseCli, parseIntFlag, parseSizeFlag } from '../cli/args.js';
import { OUTPUT_FLAGS, machineLine, outputOf, resultHead, resultTail, runSubcommand } from './program.js';
import { percentile } from './stats.js';
import { runDrill, checkScenario, type DrillLog, type DrillOptions, type DrillReport, type Scenario } from '../lab/drill.js';
import { RESTART_AIM_MS, type GatewayKillReport } from '../lab/gwkill.js';
import { FtcpError } from '../util/errors.js';

/** The flags both gateway benchmarks read (parseGatewayRestartOptions), for their usage texts. */
export const GATEWAY_DRILL_FLAGS = `  --drills N      drills (default 5, at least 5 for a p50 worth printing)
  --scenario S    the drill's scenario (default upload: one protected upload stream)
  --bytes B       bytes per upload/download stream (default 400000000; 100M, 2G also read)
  --seed S        the first drill's seed (default 1; drill i runs seed S+i)
  --markdown      print the Markdown section for BENCHMARKS.md
  --json          print one JSON document`;

const USAGE = `usage: scripts/bench gateway-restart [options]

kill -9 of the gateway mid-transfer, restarted 100 ms later as systemd's Restart=always
would (ftcp drill --fault gateway-kill --log embedded:disk --crashes 0), --drills times, each
in its own lab: the time from the kill to data flowing again, p50 and max.

${GATEWAY_DRILL_FLAGS}`;

export interface GatewayDrillOptions { drills: number; scenario: Scenario; bytes: number; seed: number; output: ReturnType<typeof outputOf> }

export type GatewayRestartSample = GatewayDrillSample<GatewayKillReport>;

export interface GatewayRestartResult extends GatewayDrillRun<GatewayKillReport> {
  /** Over the drills whose every connection moved again (ms from the kill). */
  allResumedMs: Stats;
  /** Over the drills whose every connection caught up (all its client had sent before the restart acknowledged). */
  allCaughtUpMs: Stats;
  readyMs: Stats;
}

/** The options both gateway benchmarks read (gateway-restart, gateway-failover). */
export function parseGatewayRestartOptions(argv: string[]): GatewayDrillOptions | 'help' {
  const { values } = parseCli(argv, {
    drills: { type: 'string', default: '5' },
    scenario: { type: 'string', default: 'upload' },
    bytes: { type: 'string', default: '400000000' },
    seed: { type: 'string', default: '1' },
    ...OUTPUT_FLAGS,
  });
  if (values.help) return 'help';
  return {
    drills: parseIntFlag(values.drills, '--drills', 5, 1, 1000),
    scenario: checkScenario(values.scenario!),
    bytes: parseSizeFlag(values.bytes!, '--bytes', { dflt: 400_000_000, min: 1_000_000, max: 2 ** 40 }),
    seed: parseIntFlag(values.seed, '--seed', 1, 0, 2 ** 48),
    output: outputOf(values),
  };
}

/** p50 (nearest rank) and max of the measured values (-1: not measured, left out). */
export type Stats = { n: number; p50: number; max: number } | null;

export function restartStats(xs: readonly number[]): Stats {
  const s = xs.filter((x) => x >= 0).sort((a, b) => a - b);
  return s.length === 0 ? null : { n: s.length, p50: percentile(s, 50), max: s[s.length - 1]! };
}

/** A drill's sample: its seed, lab, outcome and the gateway fault's report (`R`: restart or failover). */
export interface GatewayDrillSample<R> { seed: number; lab: string; ok: boolean; kill: R | null; failures: string[] }

/** What both gateway benchmarks' results begin with. */
export interface GatewayDrillRun<R> {
  date: string;
  machine: string;
  command: string;
  options: Omit<GatewayDrillOptions, 'output'>;
  samples: Array<GatewayDrillSample<R>>;
  failures: string[];
  durationS: number;
}

/**
 * --drills runs of `ftcp drill` with `fault` on `log`, no server crash, each in its own lab
 * (seed S+i): the loop both gateway benchmarks share. `pick` takes the fault's report out of
 * the drill's. A drill that throws is a sample without a report, and a failure.
 */
export async function runGatewayDrills<R>(
  o: GatewayDrillOptions, command: string, what: string, drill: { log: DrillLog; fault: NonNullable<DrillOptions['fault']> },
  pick: (r: DrillReport) => R | null | undefined, signal: AbortSignal,
): Promise<GatewayDrillRun<R>> {
  const t0 = Date.now();
  const samples: Array<GatewayDrillSample<R>> = [];
  const failures: string[] = [];
  for (let i = 0; i < o.drills && !signal.aborted; i++) {
    const seed = o.seed + i;
    let r: DrillReport;
    try {
      r = await runDrill({
        scenario: o.scenario, log: drill.log, fault: drill.fault, crashes: 0, bytes: o.bytes, streams: 1, seed,
        progress: (m) => process.stderr.write(`${what} ${i + 1}/${o.drills}: ${m}\n`),
      });
    } catch (err) {
      const msg = (err as Error).message.split('\n')[0]!;
      samples.push({ seed, lab: '', ok: false, kill: null, failures: [msg] });
      failures.push(`drill ${i + 1} (seed ${seed}): ${msg}`);
      continue;
    }
    samples.push({ seed, lab: r.lab, ok: r.ok, kill: pick(r) ?? null, failures: r.failures });
    if (!r.ok) failures.push(`drill ${i + 1} (seed ${seed}): ${r.failures.length} check(s) failed, first: ${r.failures[0]}`);
  }
  if (signal.aborted) throw new FtcpError('FTCP_BENCH_ABORTED', `stopped after ${samples.length} drill(s)`);
  return {
    date: new Date().toISOString(), machine: machineLine(true), command, options: { drills: o.drills, scenario: o.scenario, bytes: o.bytes, seed: o.seed },
    samples, failures, durationS: (Date.now() - t0) / 1000,
  };
}

/** restartStats of one figure over the samples (a sample without a report, or the figure, left out). */
export function sampleStats<R>(samples: ReadonlyArray<GatewayDrillSample<R>>, figure: (k: R) => number | undefined): Stats {
  return restartStats(samples.map((s) => (s.kill === null ? -1 : figure(s.kill) ?? -1)));
}

/** "420 ms", or "-" when not measured (negative or absent). */
export const fmtMs = (n: number | undefined): string => (n === undefined || n < 0 ? '-' : `${n.toFixed(0)} ms`);
/** The head of both benchmarks' reports: the result's head and the settings line (`how`: the log and the fault's own settings). */
export function drillsHead<R>(r: GatewayDrillRun<R>, markdown: boolean, how: string): string[] {
  const o = r.options;
  return [
    ...resultHead(r, markdown),
    `Settings: ${o.drills} drills of scenario ${o.scenario}, ${(o.bytes / 1e6).toFixed(0)} MB per stream, seeds ${o.seed}..${o.seed + o.drills - 1}, ${how}.`,
    '',
  ];
}

/** "p50 …, max … (n drills)". */
export const fmtStats = (s: Stats): string => (s === null ? 'none measured' : `p50 ${fmtMs(s.p50)}, max ${fmtMs(s.max)} (${s.n} drills)`);

async function runGatewayRestart(o: GatewayDrillOptions, command: string, signal: AbortSignal): Promise<GatewayRestartResult> {
  const run = await runGatewayDrills(o, command, 'gateway-restart', { log: 'embedded:disk', fault: 'gateway-kill' }, (r) => r.gatewayKill, signal);
  return {
    ...run,
    allResumedMs: sampleStats(run.samples, (k) => k.allResumedMs),
    allCaughtUpMs: sampleStats(run.samples, (k) => k.allCaughtUpMs),
    readyMs: sampleStats(run.samples, (k) => k.readyMs),
  };
}

export function formatGatewayRestart(r: GatewayRestartResult, markdown: boolean): string {
  const ms = fmtMs;
  const fig = fmtStats;
  return [
    ...drillsHead(r, markdown, 'log embedded:disk, RestartSec 100 ms'),
    '| drill | seed | restarted gateway ready | data flowing again (first connection) | (every connection) | every connection caught up | checks |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...r.samples.map((s, i) => `| ${i + 1} | ${s.seed} | ${ms(s.kill?.readyMs)} | ${ms(s.kill?.firstResumeMs)} | ${ms(s.kill?.allResumedMs)} | ${ms(s.kill?.allCaughtUpMs)} | ${s.ok ? 'held' : `FAILED: ${s.failures[0] ?? ''}`} |`),
    '',
    `From the kill to data flowing again (every connection): ${fig(r.allResumedMs)}; the aim is ≤ ${RESTART_AIM_MS} ms.`,
    `From the kill to every connection caught up (all its client had sent before the restart acknowledged): ${fig(r.allCaughtUpMs)}.`,
    `From the kill to the restarted gateway ready: ${fig(r.readyMs)}.`,
    ...resultTail(r),
  ].join('\n');
}

export function gatewayRestartMain(argv: string[]): Promise<number> {
  return runSubcommand({ name: 'gateway-restart', usage: USAGE, parse: parseGatewayRestartOptions, run: runGatewayRestart, format: formatGatewayRestart }, argv);
}
