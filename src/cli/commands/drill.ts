/**
 * ftcp drill [--scenario <s>] [--crashes N] [--seed S] [--log embedded|embedded:disk|remote]
 *            [--fault log-loss|log-path-down|log-restart]
 *            [--bytes N] [--streams N] [--connections N] [--lines N] [--no-offload] [--json] [--pcap <dir>]
 */
import { parseCli } from '../args.js';
import { UsageError } from '../../util/errors.js';
import { runDrill, formatDrill, checkScenario, checkLogFault, LOG_FAULTS, SCENARIOS, type DrillLog, type DrillReport } from '../../lab/drill.js';
import { reportJsonReplacer } from '../../inspect/inspect.js';

const HELP = `usage: ftcp drill [options]        (root: builds a namespace lab, runs, removes it)

Runs demo clients against supervised demo servers through the gateway, kills the servers
with SIGKILL mid-transfer, and checks that every client carried on byte-exact with no RST,
FIN or ICMP, printing the recovery timeline of each crash.

  --scenario <s>      (default mixed)
${Object.entries(SCENARIOS).map(([k, v]) => `                        ${k.padEnd(13)} ${v.what}${v.crashes !== 1 ? ` (${v.crashes} crashes)` : ''}`).join('\n')}
  --crashes <n>       crashes (default: the scenario's; 0 = the normal path only)
  --log <l>           embedded | embedded:disk | remote        (default embedded)
                        remote: ftcp logserver in <n>-log (disk store), over both log links
  --fault <f>         a log-link fault ~0.3 s in (needs --log remote):
${Object.entries(LOG_FAULTS).map(([k, v]) => `                        ${k.padEnd(13)} ${v}`).join('\n')}
  --bytes <n>         bytes per upload/download stream         (default 200000000)
  --streams <n>       upload/download connections              (default 1)
  --connections <n>   echo/kv connections                      (default 50)
  --lines <n>         requests per echo/kv connection          (default 3000)
  --seed <s>          seed of the streams and the crash times  (default 1)
  --client-sysctl <k=v>[,<k=v>]  set in the client's namespace first (e.g. net.ipv4.tcp_sack=0)
  --no-offload        run the gateway without TUN offloads (every packet at MTU size)
  --pcap <dir>        keep the client- and server-side captures and the stability trace
  --json              print the report as JSON

example: ftcp drill --scenario double-crash --seed 7 --pcap /tmp/drill
         ftcp drill --scenario upload --log remote --fault log-restart`;

function int(v: string, flag: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag}: expected an integer >= ${min}, got '${v}'`);
  return n;
}

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
  const log = values.log as DrillLog;
  if (log !== 'embedded' && log !== 'embedded:disk' && log !== 'remote') throw new UsageError(`--log: expected embedded, embedded:disk or remote, got '${values.log}'`);
  const fault = values.fault === undefined ? undefined : checkLogFault(values.fault);
  if (fault !== undefined && log !== 'remote') throw new UsageError(`--fault ${fault} needs --log remote`);
  if (process.getuid?.() !== 0) throw new UsageError('ftcp drill builds network namespaces: run it as root');
  const report = await runDrill({
    scenario: checkScenario(values.scenario!),
    log,
    ...(fault !== undefined ? { fault } : {}),
    bytes: int(values.bytes!, '--bytes', 1),
    streams: int(values.streams!, '--streams', 1),
    connections: int(values.connections!, '--connections', 1),
    lines: int(values.lines!, '--lines', 1),
    seed: int(values.seed!, '--seed', 0),
    crashes: values.crashes === undefined ? undefined : int(values.crashes, '--crashes', 0),
    pcapDir: values.pcap,
    clientSysctls: parseSysctls(values['client-sysctl']),
    offload: !values['no-offload'],
    progress: values.json ? undefined : (m) => process.stderr.write(`drill: ${m}\n`),
  });
  process.stdout.write((values.json ? drillJson(report) : formatDrill(report)) + '\n');
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
