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
import { resultTail, runSubcommand } from './program.js';
import { GATEWAY_DRILL_FLAGS, drillsHead, fmtMs, fmtStats, parseGatewayRestartOptions, runGatewayDrills, sampleStats, type GatewayDrillOptions, type GatewayDrillRun, type Stats } from './gwrestart.js';
import { FAILOVER_AIM_MS, type GatewayFailoverReport } from '../lab/gwfailover.js';
import { DEFAULT_ADVERT_INT_S } from '../lab/keepalived.js';

const USAGE = `usage: scripts/bench gateway-failover [options]

the primary gateway host of a standby pair dies mid-transfer (its processes frozen with SIGSTOP,
its links down); keepalived moves the addresses to gw2, which takes over from the log server
(ftcp drill --fault gateway-failover --log remote --crashes 0), --drills times, each in its own
lab: the time from the death to data flowing again, p50 and max, and what it is made of.

${GATEWAY_DRILL_FLAGS}`;

export interface GatewayFailoverResult extends GatewayDrillRun<GatewayFailoverReport> {
  /** From the freeze (ms): gw2 MASTER (its notify hook started), its takeover done, data flowing again (every connection), every connection caught up. */
  masterMs: Stats;
  takeoverMs: Stats;
  allResumedMs: Stats;
  allCaughtUpMs: Stats;
}

async function runGatewayFailover(o: GatewayDrillOptions, command: string, signal: AbortSignal): Promise<GatewayFailoverResult> {
  const run = await runGatewayDrills(o, command, 'gateway-failover', { log: 'remote', fault: 'gateway-failover' }, (r) => r.gatewayFailover, signal);
  return {
    ...run,
    masterMs: sampleStats(run.samples, (k) => k.masterMs),
    takeoverMs: sampleStats(run.samples, (k) => k.takeover?.doneMs),
    allResumedMs: sampleStats(run.samples, (k) => k.allResumedMs),
    allCaughtUpMs: sampleStats(run.samples, (k) => k.allCaughtUpMs),
  };
}

export function formatGatewayFailover(r: GatewayFailoverResult, markdown: boolean): string {
  return [
    ...drillsHead(r, markdown, `log remote (ftcp logserver, disk store), keepalived VRRPv3 advert_int ${DEFAULT_ADVERT_INT_S} s`),
    '| drill | seed | gw2 MASTER | takeover done (claim, list + adopt) | data flowing again (first connection) | (every connection) | every connection caught up | checks |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...r.samples.map((s, i) => {
      const k = s.kill;
      const t = k?.takeover;
      return `| ${i + 1} | ${s.seed} | ${fmtMs(k?.masterMs)} | ${t ? `${fmtMs(t.doneMs)} (${fmtMs(t.claimMs)}, ${fmtMs(t.adoptMs)})` : '-'} | ${fmtMs(k?.firstResumeMs)} | ${fmtMs(k?.allResumedMs)} | ${fmtMs(k?.allCaughtUpMs)} | ${s.ok ? 'held' : `FAILED: ${s.failures[0] ?? ''}`} |`;
    }),
    '',
    `From the primary's death to data flowing again (every connection): ${fmtStats(r.allResumedMs)}; the aim is ≤ ${FAILOVER_AIM_MS} ms.`,
    `From the death to keepalived on gw2 MASTER (VRRP's detection): ${fmtStats(r.masterMs)}; to gw2's takeover done: ${fmtStats(r.takeoverMs)}.`,
    `From the death to every connection caught up: ${fmtStats(r.allCaughtUpMs)}.`,
    ...resultTail(r),
  ].join('\n');
}

export function gatewayFailoverMain(argv: string[]): Promise<number> {
  return runSubcommand({ name: 'gateway-failover', usage: USAGE, parse: parseGatewayRestartOptions, run: runGatewayFailover, format: formatGatewayFailover }, argv);
}
