/**
 * `ftcp demo-client --kind K --connect <ip:port> [--connections N] [--bytes B] [--lines L]
 *                   [--seed S] [--timeout-ms T] [--json]`
 *
 * Runs N concurrent checking connections against a demo server (src/demo/client.ts) and
 * reports. Exit status 0 only when every connection passed every check.
 */
import { parseCli, parseDemoKind, parseHostPort, parseIntFlag, parseSizeFlag } from '../args.js';
import { UsageError } from '../../util/errors.js';
import { DEMO_KINDS } from '../../demo/server.js';
import {
  DEFAULT_BYTES,
  DEFAULT_LINES,
  DEFAULT_SEED,
  DEFAULT_TIMEOUT_MS,
  runDemoClient,
  DemoClientControl,
  type DemoClientReport,
} from '../../demo/client.js';
import { createInterface } from 'node:readline';

const USAGE = `usage: ftcp demo-client --kind ${DEMO_KINDS.join('|')} --connect <ip:port> [options]

  --connections N   concurrent connections, 1..100000 (default 1); connection i uses seed S+i
  --bytes B         upload/download bytes per connection, 0..1T (default ${DEFAULT_BYTES}; suffix K, M, G, T = 2^10, 2^20, 2^30, 2^40)
  --lines L         echo/kv/stall/random requests per connection, 0..10^9 (default ${DEFAULT_LINES})
  --seed S          base seed, 0..2^48 (default ${DEFAULT_SEED})
  --half-close      download: shut the sending side right after the request
  --idle-ms M       echo/kv: the even connections go quiet for M ms halfway; the odd ones pace
                    their requests over ~2*M ms (default 0: no idling)
  --timeout-ms T    deadline for the whole run, 1..2147483647 (default ${DEFAULT_TIMEOUT_MS}); unfinished connections fail with TIMEOUT
  --progress-ms P   print a progress line {"progress":{...}} on stderr every P ms (done/total units:
                    bytes for upload/download, responses checked for echo/kv/stall)
  --control         read commands from stdin, one a line: 'pause' (stop reading on every
                    connection: the receive windows close) and 'resume'
  --json            print the report as one JSON document

random, random-var: every connection ends with one outcome (ok, reset, inconsistent,
misframed, hung, error), counted in the report's "outcomes"; the exit status is 0 only
if every connection is ok.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    kind: { type: 'string' },
    connect: { type: 'string' },
    connections: { type: 'string' },
    bytes: { type: 'string' },
    lines: { type: 'string' },
    seed: { type: 'string' },
    'timeout-ms': { type: 'string' },
    'half-close': { type: 'boolean', default: false },
    'idle-ms': { type: 'string' },
    'progress-ms': { type: 'string' },
    control: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  // The numbers first, so a bad one is reported whatever else is missing.
  const connections = parseIntFlag(values.connections, '--connections', 1, 1, 100_000);
  const bytes = parseSizeFlag(values.bytes, '--bytes', { dflt: DEFAULT_BYTES, min: 0, max: 2 ** 40 });
  const lines = parseIntFlag(values.lines, '--lines', DEFAULT_LINES, 0, 1_000_000_000);
  const seed = parseIntFlag(values.seed, '--seed', DEFAULT_SEED, 0, 2 ** 48);
  const timeoutMs = parseIntFlag(values['timeout-ms'], '--timeout-ms', DEFAULT_TIMEOUT_MS, 1, 2 ** 31 - 1);
  const kind = parseDemoKind(values.kind, USAGE);
  if (!values.connect) throw new UsageError(`--connect is required\n${USAGE}`);
  const { addr, port } = parseHostPort(values.connect, '--connect');

  const progressMs = parseIntFlag(values['progress-ms'], '--progress-ms', 0, 1, 60_000);
  const control = progressMs > 0 || values.control ? new DemoClientControl() : undefined;
  const stopIo = control ? wireControl(control, progressMs, values.control) : () => {};
  const report = await runDemoClient({
    kind,
    host: addr,
    port,
    connections,
    bytes,
    lines,
    seed,
    timeoutMs,
    halfClose: values['half-close'],
    idleMs: parseIntFlag(values['idle-ms'], '--idle-ms', 0, 0, 3_600_000),
    ...(control ? { control } : {}),
  }).finally(stopIo);
  if (control && progressMs > 0) process.stderr.write(JSON.stringify({ progress: control.progress() }) + '\n');
  process.stdout.write(values.json ? JSON.stringify(report) + '\n' : summary(report));
  return report.allOk ? 0 : 1;
}

/** Progress lines on stderr every `progressMs`; with `stdin`, pause/resume commands from stdin. Returns the undo. */
function wireControl(control: DemoClientControl, progressMs: number, stdin: boolean): () => void {
  const timer = progressMs > 0 ? setInterval(() => process.stderr.write(JSON.stringify({ progress: control.progress() }) + '\n'), progressMs) : null;
  const rl = stdin ? createInterface({ input: process.stdin }) : null;
  rl?.on('line', (line) => {
    const cmd = line.trim();
    if (cmd === 'pause') control.pauseReading();
    else if (cmd === 'resume') control.resumeReading();
    else if (cmd !== '') process.stderr.write(JSON.stringify({ ignored: cmd.slice(0, 40) }) + '\n');
    process.stderr.write(JSON.stringify({ progress: control.progress() }) + '\n');
  });
  return () => {
    if (timer !== null) clearInterval(timer);
    rl?.close();
    if (stdin) process.stdin.destroy();
  };
}

function summary(r: DemoClientReport): string {
  const lines = [
    `${r.kind}: ${r.ok}/${r.connections} connections ok, ${r.failed} failed; ` +
      `sent ${r.bytesSent} B, received ${r.bytesReceived} B in ${r.durationMs.toFixed(1)} ms (${r.throughputMbps} Mb/s)`,
  ];
  const maxStall = Math.max(0, ...r.perConnection.map((c) => c.maxStallMs));
  lines.push(`longest stall seen by a connection: ${maxStall.toFixed(1)} ms`);
  if (r.outcomes) lines.push(`outcomes: ${Object.entries(r.outcomes).map(([o, n]) => `${n} ${o}`).join(', ')}`);
  for (const e of r.errors.slice(0, 20)) lines.push(`  conn ${e.conn}: ${e.code}: ${e.message}`);
  if (r.errors.length > 20) lines.push(`  ... and ${r.errors.length - 20} more errors`);
  return lines.join('\n') + '\n';
}
