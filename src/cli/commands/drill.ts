/**
 * ftcp drill [--scenario <s>] [--crashes N | --crash-at F,F..] [--seed S] [--log embedded|embedded:disk|remote]
 *            [--fault log-loss|log-path-down|log-restart|gateway-kill[:before|:outage|:rebuild]
 *                     |gateway-failover[:before|:outage|:rebuild]]
 *            [--bytes N] [--streams N] [--connections N] [--lines N] [--no-offload] [--json] [--pcap <dir>]
 * ftcp drill --soak N [--soak-seed S] [--scenario <s>] [--json]
 */
import { parseCli, parseIntFlag, parseSizeFlag } from '../args.js';
import { FtcpError, UsageError } from '../../util/errors.js';
import { makeDirs } from '../../util/fs.js';
import { runDrill, formatDrill, checkScenario, checkFault, LOG_FAULTS, SCENARIOS, type DrillLog, type DrillOptions, type DrillReport, type Scenario } from '../../lab/drill.js';
import { reportJsonReplacer } from '../../inspect/inspect.js';
import { parseCrashAt } from '../../lab/placement.js';
import { runSoak } from '../../lab/soak.js';
import { GATEWAY_FAULTS, checkGatewayFault, isGatewayFault } from '../../lab/gwkill.js';
import { FAILOVER_FAULTS, checkFailoverFault, isFailoverFault } from '../../lab/gwfailover.js';

const HELP = `usage: ftcp drill [options]        (root: builds a namespace lab, runs, removes it)

Runs demo clients against supervised demo servers through the gateway, kills the servers
with SIGKILL mid-transfer, and checks that every client carried on byte-exact with no RST,
FIN or ICMP, printing the recovery timeline of each crash.

  --scenario <s>      (default mixed)
${Object.entries(SCENARIOS).map(([k, v]) => `                        ${k.padEnd(13)} ${v.what}${v.crashes !== 1 ? ` (${v.crashes} crashes)` : ''}`).join('\n')}
  --crashes <n>       crashes, 0..16 (default: the scenario's; 0 = the normal path only), each at a
                      seeded point of the transfer (bytes moved, responses checked) in 15-75%
  --crash-at <f,..>   crash at these fractions of the transfer instead (e.g. 0.3,0.6)
  --log <l>           embedded | embedded:disk | remote        (default embedded)
                        remote: ftcp logserver in <n>-log (disk store), over both log links
  --fault <f>         a log-link fault 0.3 s in or at 5% of the transfer, whichever is first
                      (needs --log remote):
${Object.entries(LOG_FAULTS).map(([k, v]) => `                        ${k.padEnd(13)} ${v}`).join('\n')}
                      or a kill -9 of the gateway process, restarted with the same command line
                      100 ms later as systemd's Restart=always would (needs --log embedded:disk: the
                      memory log dies with the gateway); the variants place a server crash
                      (--crashes >= 1) before its death, in its outage, or right after its restart:
${Object.entries(GATEWAY_FAULTS).map(([k, v]) => `                        ${k.padEnd(20)} ${v}`).join('\n')}
                      or the primary gateway host's death in a standby pair (the lab gets
                      --standby-gateway; needs --log remote: the standby adopts from the log server):
${Object.entries(FAILOVER_FAULTS).map(([k, v]) => `                        ${k.padEnd(24)} ${v}`).join('\n')}
  --bytes <n>         bytes per upload/download stream, 1..1T   (default 200000000, tiny-rcvbuf 4000000;
                                                                100M, 2G also read)
  --streams <n>       upload/download connections, 1..64       (default 1)
  --connections <n>   echo/kv connections, 1..10000            (default 50; many, stall-reader,
                                                                zero-window and idle set their own)
  --lines <n>         requests per echo/kv/stall connection, 1..10^7 (default 3000; stall-reader 5000, idle 400)
  --seed <s>          seed of the streams and the crash points, 0..2^48 (default 1)
  --client-sysctl <k=v>[,<k=v>]  set in the client's namespace first (e.g. net.ipv4.tcp_sack=0)
  --no-offload        run the gateway without TUN offloads (every packet at MTU size)
  --pcap <dir>        keep the client- and server-side captures, the stability trace and the gateway's log
  --json              print the report as JSON
  --soak <n>          n randomized drills (scenario, seed, crash count and points, log mode,
                      log fault, offloads, client sysctls), one line each and a summary; each
                      failure with the 'ftcp drill ...' command that reproduces it. With
                      --scenario, only that scenario. Exit 0 only if every drill held
  --soak-seed <s>     the soak's seed (default 1): the same seed runs the same drills

example: ftcp drill --scenario double-crash --seed 7 --pcap /tmp/drill
         ftcp drill --scenario upload --log remote --fault log-restart
         ftcp drill --scenario upload --log embedded:disk --fault gateway-kill:before
         ftcp drill --scenario download --crash-at 0.2,0.5,0.7
         ftcp drill --soak 50 --soak-seed 4`;


function parseSysctls(v: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of (v ?? '').split(',').filter(Boolean)) {
    const m = /^(net\.[a-z0-9_.]+)=([0-9a-z_ -]+)$/i.exec(kv);
    if (!m) throw new UsageError(`--client-sysctl: expected net.<key>=<value>, got '${kv}'`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

/** What the command line asks for: one drill's options, or a soak. */
export interface DrillArgs {
  drill: Omit<DrillOptions, 'progress' | 'name'>;
  json: boolean;
  /** --soak N: N randomized drills (the drill options above are then ignored but for --scenario / --log). */
  soak?: { drills: number; seed: number; scenarios?: Scenario[] };
}

/** Parses `ftcp drill`'s arguments (no side effects: the soak's printed commands are checked against it). */
export function parseDrillArgs(argv: string[]): DrillArgs {
  const { values } = parseCli(argv, {
    scenario: { type: 'string' },
    log: { type: 'string', default: 'embedded' },
    fault: { type: 'string' },
    bytes: { type: 'string' },
    crashes: { type: 'string' },
    'crash-at': { type: 'string' },
    streams: { type: 'string', default: '1' },
    connections: { type: 'string', default: '50' },
    lines: { type: 'string' },
    seed: { type: 'string', default: '1' },
    pcap: { type: 'string' },
    'client-sysctl': { type: 'string' },
    'no-offload': { type: 'boolean', default: false },
    soak: { type: 'string' },
    'soak-seed': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) throw new HelpRequested();
  // Every number first: a bad one is reported whatever else is wrong, and costs no lab.
  const bytes = values.bytes === undefined ? undefined : parseSizeFlag(values.bytes, '--bytes', { dflt: 200_000_000, min: 1, max: 2 ** 40 });
  const streams = parseIntFlag(values.streams, '--streams', 1, 1, 64);
  const connections = parseIntFlag(values.connections, '--connections', 50, 1, 10_000);
  const lines = values.lines === undefined ? undefined : parseIntFlag(values.lines, '--lines', 3000, 1, 10_000_000);
  const seed = parseIntFlag(values.seed, '--seed', 1, 0, 2 ** 48);
  const crashes = values.crashes === undefined ? undefined : parseIntFlag(values.crashes, '--crashes', 0, 0, 16);
  const soakDrills = values.soak === undefined ? undefined : parseIntFlag(values.soak, '--soak', 1, 1, 100_000);
  const soakSeed = parseIntFlag(values['soak-seed'], '--soak-seed', 1, 0, 2 ** 48);
  const log = values.log as DrillLog;
  if (log !== 'embedded' && log !== 'embedded:disk' && log !== 'remote') throw new UsageError(`--log: expected embedded, embedded:disk or remote, got '${values.log}'`);
  const fault = values.fault === undefined ? undefined : checkFault(values.fault);
  const crashAt = values['crash-at'] === undefined ? undefined : parseCrashAt(values['crash-at']);
  if (crashAt !== undefined && crashes !== undefined && crashes !== crashAt.length) {
    throw new UsageError(`--crashes ${crashes} and --crash-at with ${crashAt.length} fraction(s) disagree`);
  }
  const scenario = checkScenario(values.scenario ?? 'mixed');
  if (fault !== undefined && isGatewayFault(fault)) checkGatewayFault(fault, log, crashAt?.length ?? crashes ?? SCENARIOS[scenario]!.crashes);
  else if (fault !== undefined && isFailoverFault(fault)) checkFailoverFault(fault, log, crashAt?.length ?? crashes ?? SCENARIOS[scenario]!.crashes);
  else if (fault !== undefined && log !== 'remote') throw new UsageError(`--fault ${fault} needs --log remote`);
  const drill: DrillArgs['drill'] = {
    scenario,
    log,
    ...(fault !== undefined ? { fault } : {}),
    ...(bytes !== undefined ? { bytes } : {}),
    streams,
    connections,
    ...(lines !== undefined ? { lines } : {}),
    seed,
    ...(crashAt !== undefined ? { crashAt } : crashes !== undefined ? { crashes } : {}),
    ...(values.pcap !== undefined ? { pcapDir: values.pcap } : {}),
    clientSysctls: parseSysctls(values['client-sysctl']),
    offload: !values['no-offload'],
  };
  if (soakDrills === undefined) {
    if (values['soak-seed'] !== undefined) throw new UsageError('--soak-seed needs --soak <n>');
    return { drill, json: values.json! };
  }
  const drills = soakDrills!;
  return {
    drill, json: values.json!,
    soak: { drills, seed: soakSeed, ...(values.scenario !== undefined ? { scenarios: [drill.scenario] } : {}) },
  };
}

class HelpRequested extends Error {}

export async function run(argv: string[]): Promise<number> {
  let args: DrillArgs;
  try {
    args = parseDrillArgs(argv);
  } catch (err) {
    if (!(err instanceof HelpRequested)) throw err;
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (process.getuid?.() !== 0) throw new UsageError('ftcp drill builds network namespaces: run it as root');
  if (args.drill.pcapDir !== undefined) {
    try {
      makeDirs(args.drill.pcapDir); // now, not after the drill: a bad --pcap fails before the lab is built
    } catch (err) {
      throw new FtcpError('FTCP_DRILL_PCAP', `--pcap: cannot create ${args.drill.pcapDir}: ${(err as Error).message}`);
    }
  }
  if (args.soak) {
    const summary = await runSoak({
      ...args.soak,
      parse: (a) => parseDrillArgs(a).drill,
      run: runDrill,
      out: (line) => process.stdout.write(line + '\n'),
      progress: args.json ? undefined : (m) => process.stderr.write(`soak: ${m}\n`),
    });
    if (args.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
    return summary.failures.length === 0 ? 0 : 1;
  }
  const report = await runDrill({
    ...args.drill,
    progress: args.json ? undefined : (m) => process.stderr.write(`drill: ${m}\n`),
  });
  process.stdout.write((args.json ? drillJson(report) : formatDrill(report)) + '\n');
  return report.ok ? 0 : 1;
}

/**
 * The --json report. Its stable-ack violations carry capture times as bigint (ns), which
 * plain JSON.stringify refuses: a drill that found a violation used to end with "Do not
 * know how to serialize a BigInt" instead of its report.
 */
export function drillJson(report: DrillReport): string {
  return JSON.stringify(report, reportJsonReplacer, 2);
}
