/**
 * ftcp inspect <file.pcap> [--json] [--trace <file>] [--ports p,q] [--allow-incomplete]
 * Per TCP connection of a capture: bytes each way, retransmissions, resets, gaps, ICMP
 * errors, pauses, and a verdict. Exit 0 when every verdict is ok (or incomplete, with
 * --allow-incomplete), 1 otherwise or when the file cannot be read, 2 on usage errors.
 */
import { parseCli } from '../args.js';
import { FtcpError, UsageError } from '../../util/errors.js';
import { readRegularFile } from '../../util/fs.js';
import { parseStabilityTrace, type TraceEntry } from '../../inspect/ack-invariant.js';
import { formatInspect, inspectCapture, reportJsonReplacer } from '../../inspect/inspect.js';

const HELP = `usage: ftcp inspect <file.pcap> [--json] [--trace <file>] [--ports p,q] [--allow-incomplete]

  --json              the full report as JSON instead of the table
  --trace <file>      the gateway's stability trace (ftcp gateway --stability-trace): check
                      every server->client ack against the stable point at its time
  --ports p,q         only connections to these server ports (also tells client from server
                      for connections already open when the capture began)
  --allow-incomplete  a connection with no close seen does not fail the exit status

exit status: 0 every verdict ok, 1 a connection with reset/gap/icmp/unstable-ack/incomplete
             or an unreadable file, 2 usage

example: ftcp inspect client.pcap --ports 5001,5002
         ftcp inspect client.pcap --trace stability.trace --ports 5001 --json`;

function parsePorts(s: string): number[] {
  const out: number[] = [];
  for (const p of s.split(',')) {
    const t = p.trim();
    if (!/^\d{1,5}$/.test(t) || Number(t) < 1 || Number(t) > 65535) throw new UsageError(`--ports: bad port '${p}' in '${s}'`);
    out.push(Number(t));
  }
  return out;
}

/** The largest capture or trace read (a Buffer's practical limit; larger: split it with editcap). */
const MAX_INPUT_BYTES = 2 ** 31 - 1;

/**
 * Reads a capture or a trace: a regular file only. A device such as /dev/zero, a pipe or
 * a socket is refused at once (reading one might never end).
 */
async function readInput(path: string, what: string): Promise<Buffer> {
  try {
    return readRegularFile(path, what, 'FTCP_INSPECT_READ', MAX_INPUT_BYTES);
  } catch (err) {
    if (err instanceof FtcpError) throw err;
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a directory' : e.code === 'EACCES' ? 'permission denied' : e.message;
    throw new FtcpError('FTCP_INSPECT_READ', `cannot read ${what} '${path}': ${why}`);
  }
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(
    argv,
    {
      json: { type: 'boolean', default: false },
      trace: { type: 'string' },
      ports: { type: 'string' },
      'allow-incomplete': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? 'give one capture file (ftcp inspect <file.pcap>)' : `one capture file only, got ${positionals.length}`);
  }
  const serverPorts = values.ports !== undefined ? parsePorts(values.ports) : undefined;
  const file = positionals[0]!;
  const pcap = await readInput(file, 'capture');
  let trace: Map<string, TraceEntry[]> | undefined;
  if (values.trace !== undefined) {
    const text = (await readInput(values.trace, 'stability trace')).toString('utf8');
    try {
      trace = parseStabilityTrace(text);
    } catch (err) {
      throw new FtcpError('FTCP_INSPECT_TRACE', `'${values.trace}' is not a stability trace: ${(err as Error).message}`);
    }
  }
  let report;
  try {
    report = inspectCapture(pcap, { trace, serverPorts });
  } catch (err) {
    if (err instanceof RangeError) throw new FtcpError('FTCP_INSPECT_PCAP', `'${file}' is not a readable pcap file: ${err.message}`);
    throw err;
  }
  process.stdout.write(values.json ? JSON.stringify(report, reportJsonReplacer, 2) + '\n' : formatInspect(report));
  const bad = report.connections.filter((c) => c.verdict !== 'ok' && !(c.verdict === 'incomplete' && values['allow-incomplete']));
  return bad.length === 0 ? 0 : 1;
}
