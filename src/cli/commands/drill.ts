/**
 * ftcp drill [--scenario <s>] [--crashes N] [--seed S] [--log embedded|embedded:disk|remote]
 *            [--fault log-loss|log-path-down|log-restart]
 *            [--bytes N] [--streams N] [--connections N] [--lines N] [--no-offload] [--json] [--pcap <dir>]
 */
import { parseCli, parseIntFlag, parseSizeFlag } from '../args.js';
import { FtcpError, UsageError } from '../../util/errors.js';
import { makeDirs } from '../../util/fs.js';
import { runDrill, formatDrill, checkScenario, checkLogFault, LOG_FAULTS, SCENARIOS, type DrillLog } from '../../lab/drill.js';

const HELP = `usage: ftcp drill [options]        (root: builds a namespace lab, runs, removes it)

Runs demo clients against supervised demo servers through the gateway, kills the servers
with SIGKILL mid-transfer, and checks that every client carried on byte-exact with no RST,
FIN or ICMP, printing the recovery timeline of each crash.

  --scenario <s>      (default mixed)
${Object.entries(SCENARIOS).map(([k, v]) => `                        ${k.padEnd(13)} ${v.what}${v.crashes !== 1 ? ` (${v.crashes} crashes)` : ''}`).join('\n')}
  --crashes <n>       crashes, 0..1000 (default: the scenario's; 0 = the normal path only)
  --log <l>           embedded | embedded:disk | remote        (default embedded)
                        remote: ftcp logserver in <n>-log (disk store), over both log links
  --fault <f>         a log-link fault ~0.3 s in (needs --log remote):
${Object.entries(LOG_FAULTS).map(([k, v]) => `                        ${k.padEnd(13)} ${v}`).join('\n')}
  --bytes <n>         bytes per upload/download stream, 1..1T   (default 200000000; 100M, 2G also read)
  --streams <n>       upload/download connections, 1..64       (default 1)
  --connections <n>   echo/kv connections, 1..10000            (default 50)
  --lines <n>         requests per echo/kv connection, 1..10^7 (default 3000)
  --seed <s>          seed of the streams and the crash times, 0..2^48 (default 1)
  --client-sysctl <k=v>[,<k=v>]  set in the client's namespace first (e.g. net.ipv4.tcp_sack=0)
  --no-offload        run the gateway without TUN offloads (every packet at MTU size)
  --pcap <dir>        keep the client- and server-side captures and the stability trace
  --json              print the report as JSON

example: ftcp drill --scenario double-crash --seed 7 --pcap /tmp/drill
         ftcp drill --scenario upload --log remote --fault log-restart`;


function parseSysctls(v: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of (v ?? '').split(',').filter(Boolean)) {
    const m = /^(net\.[a-z0-9_.]+)=([0-9a-z_ -]+)$/i.exec(kv);
    if (!m) throw new UsageError(`--client-sysctl: expected net.<key>=<value>, got '${kv}'`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    scenario: { type: 'string', default: 'mixed' },
    log: { type: 'string', default: 'embedded' },
    fault: { type: 'string' },
    bytes: { type: 'string', default: '200000000' },
    crashes: { type: 'string' },
    streams: { type: 'string', default: '1' },
    connections: { type: 'string', default: '50' },
    lines: { type: 'string', default: '3000' },
    seed: { type: 'string', default: '1' },
    pcap: { type: 'string' },
    'client-sysctl': { type: 'string' },
    'no-offload': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  // Every number first: a bad one must not cost a lab.
  const bytes = parseSizeFlag(values.bytes, '--bytes', { dflt: 200_000_000, min: 1, max: 2 ** 40 });
  const streams = parseIntFlag(values.streams, '--streams', 1, 1, 64);
  const connections = parseIntFlag(values.connections, '--connections', 50, 1, 10_000);
  const lines = parseIntFlag(values.lines, '--lines', 3000, 1, 10_000_000);
  const seed = parseIntFlag(values.seed, '--seed', 1, 0, 2 ** 48);
  const crashes = values.crashes === undefined ? undefined : parseIntFlag(values.crashes, '--crashes', 0, 0, 1000);
  const log = values.log as DrillLog;
  if (log !== 'embedded' && log !== 'embedded:disk' && log !== 'remote') throw new UsageError(`--log: expected embedded, embedded:disk or remote, got '${values.log}'`);
  const fault = values.fault === undefined ? undefined : checkLogFault(values.fault);
  if (fault !== undefined && log !== 'remote') throw new UsageError(`--fault ${fault} needs --log remote`);
  if (process.getuid?.() !== 0) throw new UsageError('ftcp drill builds network namespaces: run it as root');
  if (values.pcap !== undefined) {
    try {
      makeDirs(values.pcap); // now, not after the drill: a bad --pcap fails before the lab is built
    } catch (err) {
      throw new FtcpError('FTCP_DRILL_PCAP', `--pcap: cannot create ${values.pcap}: ${(err as Error).message}`);
    }
  }
  const report = await runDrill({
    scenario: checkScenario(values.scenario!),
    log,
    ...(fault !== undefined ? { fault } : {}),
    bytes,
    streams,
    connections,
    lines,
    seed,
    crashes,
    pcapDir: values.pcap,
    clientSysctls: parseSysctls(values['client-sysctl']),
    offload: !values['no-offload'],
    progress: values.json ? undefined : (m) => process.stderr.write(`drill: ${m}\n`),
  });
  process.stdout.write((values.json ? JSON.stringify(report, null, 2) : formatDrill(report)) + '\n');
  return report.ok ? 0 : 1;
}
