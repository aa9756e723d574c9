/**
 * `scripts/bench gateway-failover`: what the death of the primary gateway HOST costs a client
 * (issue 14 item 5): --drills runs of `ftcp drill --scenario <s> --fault gateway-failover --log
 * remote --crashes 0` (src/lab/gwfailover.ts), each in its own `--standby-gateway` lab: the
 * primary's processes frozen and its links down mid-transfer; keepalived moves the addresses to
 * gw2, whose notify hook runs the takeover (claim, list, adopt).
 *
 * The figure: from the freeze to data flowing again, every connection, p50 and max over the
 * drills, with what it is made of: keepalived on gw2 becoming MASTER (VRRP: three missed
 * advertisements and the skew), the takeover done (the hook's process, the claim, the list and
 * the adoption), then the client's next retransmission. The loop and the options are
 * gateway-restart's (gwrestart.ts); a drill that failed its checks still gives its figure when
 * the data flowed again, its failures printed with it (exit status 1).
 */
import { machineLine, resultHead, resultTail, runSubcommand } from './program.js';
import { parseGatewayRestartOptions, restartStats, runGatewayDrills, type GatewayDrillOptions, type GatewayDrillSample } from './gwrestart.js';
import { FAILOVER_AIM_MS, type GatewayFailoverReport } from '../lab/gwfailover.js';
import { DEFAULT_ADVERT_INT_S } from '../lab/keepalived.js';

const USAGE = `usage: scripts/bench gateway-failover [options]

the primary gateway host of a standby pair dies mid-transfer (its processes frozen with SIGSTOP,
its links down); keepalived moves the addresses to gw2, which takes over from the log server
(ftcp drill --fault gateway-failover --log remote --crashes 0), --drills times, each in its own
lab: the time from the death to data flowing again, p50 and max, and what it is made of.

  --drills N      drills (default 5, at least 5 for a p50 worth printing)
  --scenario S    the drill's scenario (default upload: one protected upload stream)
  --bytes B       bytes per upload/download stream (default 400000000; 100M, 2G also read)
  --seed S        the first drill's seed (default 1; drill i runs seed S+i)
  --markdown      print the Markdown section for BENCHMARKS.md
  --json          print one JSON document`;

type Stat = ReturnType<typeof restartStats>;

export interface GatewayFailoverResult {
  date: string;
  machine: string;
  command: string;
  options: Omit<GatewayDrillOptions, 'output'>;
  samples: Array<GatewayDrillSample<GatewayFailoverReport>>;
  /** From the freeze (ms): gw2 MASTER (its notify hook started), its takeover done, data flowing again (every connection), every connection caught up. */
  masterMs: Stat;
  takeoverMs: Stat;
  allResumedMs: Stat;
  allCaughtUpMs: Stat;
  failures: string[];
  durationS: number;
}

async function runGatewayFailover(o: GatewayDrillOptions, command: string, signal: AbortSignal): Promise<GatewayFailoverResult> {
  const t0 = Date.now();
  const { samples, failures } = await runGatewayDrills(o, 'gateway-failover', { log: 'remote', fault: 'gateway-failover' }, (r) => r.gatewayFailover, signal);
  return {
    date: new Date().toISOString(), machine: machineLine(true), command, options: { drills: o.drills, scenario: o.scenario, bytes: o.bytes, seed: o.seed },
    samples,
    masterMs: restartStats(samples.map((s) => s.kill?.masterMs ?? -1)),
    takeoverMs: restartStats(samples.map((s) => s.kill?.takeover?.doneMs ?? -1)),
    allResumedMs: restartStats(samples.map((s) => s.kill?.allResumedMs ?? -1)),
    allCaughtUpMs: restartStats(samples.map((s) => s.kill?.allCaughtUpMs ?? -1)),
    failures, durationS: (Date.now() - t0) / 1000,
  };
}

export function formatGatewayFailover(r: GatewayFailoverResult, markdown: boolean): string {
  const ms = (n: number | undefined) => (n === undefined || n < 0 ? '-' : `${n.toFixed(0)} ms`);
  const o = r.options;
  const fig = (s: Stat) => (s === null ? 'none measured' : `p50 ${ms(s.p50)}, max ${ms(s.max)} (${s.n} drills)`);
  return [
    ...resultHead(r, markdown),
    `Settings: ${o.drills} drills of scenario ${o.scenario}, ${(o.bytes / 1e6).toFixed(0)} MB per stream, seeds ${o.seed}..${o.seed + o.drills - 1}, log remote (ftcp logserver, disk store), keepalived VRRPv3 advert_int ${DEFAULT_ADVERT_INT_S} s.`,
    '',
    '| drill | seed | gw2 MASTER | takeover done (claim, list + adopt) | data flowing again (first connection) | (every connection) | every connection caught up | checks |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...r.samples.map((s, i) => {
      const k = s.kill;
      const t = k?.takeover;
      return `| ${i + 1} | ${s.seed} | ${ms(k?.masterMs)} | ${t ? `${ms(t.doneMs)} (${ms(t.claimMs)}, ${ms(t.adoptMs)})` : '-'} | ${ms(k?.firstResumeMs)} | ${ms(k?.allResumedMs)} | ${ms(k?.allCaughtUpMs)} | ${s.ok ? 'held' : `FAILED: ${s.failures[0] ?? ''}`} |`;
    }),
    '',
    `From the primary's death to data flowing again (every connection): ${fig(r.allResumedMs)}; the aim is ≤ ${FAILOVER_AIM_MS} ms.`,
    `From the death to keepalived on gw2 MASTER (VRRP's detection): ${fig(r.masterMs)}; to gw2's takeover done: ${fig(r.takeoverMs)}.`,
    `From the death to every connection caught up: ${fig(r.allCaughtUpMs)}.`,
    ...resultTail(r),
  ].join('\n');
}

export function gatewayFailoverMain(argv: string[]): Promise<number> {
  return runSubcommand({ name: 'gateway-failover', usage: USAGE, parse: parseGatewayRestartOptions, run: runGatewayFailover, format: formatGatewayFailover }, argv);
}
