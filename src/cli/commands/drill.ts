/**
 * ftcp drill [--scenario upload|download|echo|kv|mixed] [--log embedded|embedded:disk]
 *            [--bytes N] [--streams N] [--connections N] [--lines N] [--seed S] [--json] [--pcap <dir>]
 */
import { parseCli } from '../args.js';
import { UsageError } from '../../util/errors.js';
import { runDrill, formatDrill, checkScenario, SCENARIOS } from '../../lab/drill.js';

const HELP = `usage: ftcp drill [options]        (root: builds a namespace lab, runs, removes it)

  --scenario <s>      ${Object.keys(SCENARIOS).join(' | ')}  (default mixed)
  --log <l>           embedded | embedded:disk                 (default embedded)
  --bytes <n>         bytes per upload/download stream         (default 50000000)
  --streams <n>       upload/download connections              (default 1)
  --connections <n>   echo/kv connections                      (default 50)
  --lines <n>         requests per echo/kv connection          (default 500)
  --seed <s>          seed of every generated stream           (default 1)
  --pcap <dir>        keep the client- and server-side captures and the stability trace
  --json              print the report as JSON

example: ftcp drill --scenario mixed --log embedded:disk --pcap /tmp/drill`;

function int(v: string, flag: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag}: expected an integer >= ${min}, got '${v}'`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    scenario: { type: 'string', default: 'mixed' },
    log: { type: 'string', default: 'embedded' },
    bytes: { type: 'string', default: '50000000' },
    streams: { type: 'string', default: '1' },
    connections: { type: 'string', default: '50' },
    lines: { type: 'string', default: '500' },
    seed: { type: 'string', default: '1' },
    pcap: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (values.log !== 'embedded' && values.log !== 'embedded:disk') throw new UsageError(`--log: expected embedded or embedded:disk, got '${values.log}'`);
  if (process.getuid?.() !== 0) throw new UsageError('ftcp drill builds network namespaces: run it as root');
  const report = await runDrill({
    scenario: checkScenario(values.scenario!),
    log: values.log,
    bytes: int(values.bytes!, '--bytes', 1),
    streams: int(values.streams!, '--streams', 1),
    connections: int(values.connections!, '--connections', 1),
    lines: int(values.lines!, '--lines', 1),
    seed: int(values.seed!, '--seed', 0),
    pcapDir: values.pcap,
    progress: values.json ? undefined : (m) => process.stderr.write(`drill: ${m}\n`),
  });
  process.stdout.write((values.json ? JSON.stringify(report, null, 2) : formatDrill(report)) + '\n');
  return report.ok ? 0 : 1;
}
