/**
 * `ftcp demo-server --kind upload|download|echo|kv|stall|random|random-var --listen <ip:port> [--json]`
 *
 * Serves one demo protocol (src/demo/server.ts; all deterministic but random, random-var).
 * When listening, prints one JSON line on stdout: {"listening":"ip:port","kind":...,
 * "pid":...}. Port 0 picks a free port (the line gives the real one). SIGTERM/SIGINT close
 * the listener and the connections, then the process exits 0.
 */
import { parseCli, parseDemoKind, parseHostPort } from '../args.js';
import { FtcpError, UsageError } from '../../util/errors.js';
import { DEMO_KINDS, startDemoServer } from '../../demo/server.js';

const USAGE = `usage: ftcp demo-server --kind ${DEMO_KINDS.join('|')} --listen <ip:port> [--json]

  upload    client streams bytes then half-closes; reply "<sha256 hex> <bytes>\\n"
  download  request "GET <seed> <bytes>\\n"; reply <bytes> bytes of the seed's AES-CTR stream
  echo      each line "<text>\\n" is answered with itself
  kv        SET <k> <v> | GET <k> | INCR <k> | DEL <k>, one per line (store starts empty)
  stall     "Q <n> <payload>\n" answered "R <payload repeated to n chars>\n", one request at a
            time; stops reading while its output is blocked (like memcached)
  random    NOT deterministic: "<tag> <id>\n" answered with 4 KiB of fresh random bytes
            ending in a SHA-256 that binds them to the request line (src/demo/random.ts)
  random-var  the same, each reply length-prefixed (u32), 64 B..16 KiB chosen at random

  --listen ip:port   address to listen on (port 0: any free port)
  --json             only the JSON line on stdout (nothing on stderr)`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    kind: { type: 'string' },
    listen: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const kind = parseDemoKind(values.kind, USAGE);
  if (!values.listen) throw new UsageError(`--listen is required\n${USAGE}`);
  const { addr, port } = parseListen(values.listen);

  // Handlers first: whoever reads the listening line may signal at once.
  let stop = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  let server;
  try {
    server = await startDemoServer(kind, addr, port);
  } catch (err) {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    const e = err as NodeJS.ErrnoException;
    throw new FtcpError('FTCP_LISTEN', `cannot listen on ${values.listen}: ${e.code ?? e.message}`, { cause: err });
  }
  const where = `${server.host}:${server.port}`;
  process.stdout.write(JSON.stringify({ listening: where, kind, pid: process.pid }) + '\n');
  if (!values.json) process.stderr.write(`ftcp demo-server: ${kind} listening on ${where}; SIGTERM or Ctrl-C to stop\n`);
  await stopped;
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
  await server.close();
  return 0;
}

/** parseHostPort, plus port 0 ("any free port"), which it rejects. */
function parseListen(s: string): { addr: string; port: number } {
  if (/:0+$/.test(s.trim())) return { addr: parseHostPort(s.trim().replace(/:0+$/, ':1'), '--listen').addr, port: 0 };
  return parseHostPort(s, '--listen');
}
