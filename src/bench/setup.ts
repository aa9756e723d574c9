/**
 * Connection set-up rate: how many whole short connections per second pass through, each
 * one a full TCP life against the line echo server (`ftcp demo-server --kind echo`):
 *
 *   connect (SYN, SYN-ACK, ACK) ─ write "c<i>\n" ─ its echo, checked ─ end() ─ the server's FIN ─ 'close'
 *
 * `concurrency` connections are in flight at a time (a new one starts as one closes) until
 * `connections` have closed. The rate is connections / wall time; each connection's own
 * time (connect to close) is summarised as nearest-rank percentiles. Through the gateway a
 * protected connection costs a flow, a log registration, its close and its release.
 *
 * Run inside the lab's client namespace:
 *
 *   node dist/bench/setup.js --connect <ip:port> [--connections N] [--concurrency C] [--timeout-ms T] [--json]
 *
 * Any failed connection fails the run (exit 1, message on stderr): a rate is only printed
 * when every connection completed and echoed correctly.
 */
import net from 'node:net';
import { parseCli, parseHostPort, parseIntFlag } from '../cli/args.js';
import { FtcpError, UsageError } from '../util/errors.js';
import { latencySummary, type LatencySummary } from './stats.js';
import { runIfEntry } from './program.js';

export interface SetupOptions {
  host: string;
  port: number;
  /** Connections in all (default 2000). */
  connections?: number;
  /** Connections in flight at once (default 8). */
  concurrency?: number;
  /** Deadline for the whole run (default 120000 ms). */
  timeoutMs?: number;
}

export interface SetupReport extends LatencySummary {
  connections: number;
  concurrency: number;
  durationMs: number;
  /** Connections per second over the whole run. */
  perSecond: number;
}

export const SETUP_DEFAULTS = { connections: 2000, concurrency: 8, timeoutMs: 120_000 } as const;

/** One connection's life; resolves with its duration in µs. */
function oneConnection(host: string, port: number, i: number, live: Set<net.Socket>): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = Buffer.from(`c${i}\n`, 'latin1');
    const sock = net.connect({ host, port, noDelay: true });
    live.add(sock);
    let got = Buffer.alloc(0);
    let echoed = false;
    let failed: Error | null = null;
    const fail = (e: Error) => {
      if (failed) return;
      failed = e;
      sock.destroy();
    };
    sock.on('connect', () => sock.write(req));
    sock.on('data', (b: Buffer) => {
      got = Buffer.concat([got, b]);
      if (got.length < req.length) return;
      if (got.length > req.length || !got.equals(req)) return fail(new FtcpError('FTCP_SETUP_MISMATCH', `connection ${i}: echo ${JSON.stringify(got.toString('latin1'))} != ${JSON.stringify(req.toString('latin1'))}`));
      echoed = true;
      sock.end();
    });
    sock.on('error', (e: NodeJS.ErrnoException) => fail(new FtcpError(`FTCP_SETUP_${e.code ?? 'ERROR'}`, `connection ${i}: ${e.message}`)));
    sock.on('close', () => {
      live.delete(sock);
      if (failed) return reject(failed);
      if (!echoed) return reject(new FtcpError('FTCP_SETUP_CLOSED', `connection ${i} closed before its echo`));
      resolve(Number(process.hrtime.bigint() - t0) / 1000);
    });
  });
}

export function runSetups(opts: SetupOptions): Promise<SetupReport> {
  const total = opts.connections ?? SETUP_DEFAULTS.connections;
  const concurrency = Math.min(total, opts.concurrency ?? SETUP_DEFAULTS.concurrency);
  const timeoutMs = opts.timeoutMs ?? SETUP_DEFAULTS.timeoutMs;
  if (!Number.isSafeInteger(total) || total < 1) throw new RangeError(`connections must be an integer >= 1, got ${total}`);
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be an integer >= 1, got ${concurrency}`);
  const samples = new Float64Array(total);
  const live = new Set<net.Socket>();
  return new Promise<SetupReport>((resolve, reject) => {
    const tStart = process.hrtime.bigint();
    let started = 0;
    let done = 0;
    let settled = false;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (const s of live) s.destroy();
      if (err) return reject(err);
      const durationMs = Number(process.hrtime.bigint() - tStart) / 1e6;
      resolve({ connections: total, concurrency, durationMs: Math.round(durationMs * 1000) / 1000, perSecond: Math.round((total / durationMs) * 1000), ...latencySummary(samples) });
    };
    const timer = setTimeout(() => finish(new FtcpError('FTCP_SETUP_TIMEOUT', `${done} of ${total} connections done when the ${timeoutMs} ms deadline expired`)), timeoutMs);
    const next = () => {
      if (settled || started >= total) return;
      const i = started++;
      oneConnection(opts.host, opts.port, i, live).then((us) => {
        samples[done++] = us;
        if (done === total) finish(null);
        else next();
      }, (e: Error) => finish(e));
    };
    for (let k = 0; k < concurrency; k++) next();
  });
}

const USAGE = `usage: node dist/bench/setup.js --connect <ip:port> [--connections N] [--concurrency C] [--timeout-ms T] [--json]

  short connections to an echo server (connect, one line echoed, close), C at a time;
  prints connections per second and each connection's duration percentiles (µs)
  --connections N  connections in all (default ${SETUP_DEFAULTS.connections})
  --concurrency C  connections in flight at once (default ${SETUP_DEFAULTS.concurrency})
  --timeout-ms T   deadline for the whole run (default ${SETUP_DEFAULTS.timeoutMs})
  --json           print the report as one JSON line (default: a one-line summary)`;

export async function main(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    connect: { type: 'string' },
    connections: { type: 'string' },
    concurrency: { type: 'string' },
    'timeout-ms': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (!values.connect) throw new UsageError(`--connect is required\n${USAGE}`);
  const { addr, port } = parseHostPort(values.connect, '--connect');
  const r = await runSetups({
    host: addr,
    port,
    connections: parseIntFlag(values.connections, '--connections', SETUP_DEFAULTS.connections, 1, 1_000_000),
    concurrency: parseIntFlag(values.concurrency, '--concurrency', SETUP_DEFAULTS.concurrency, 1, 10_000),
    timeoutMs: parseIntFlag(values['timeout-ms'], '--timeout-ms', SETUP_DEFAULTS.timeoutMs, 1, 2 ** 31 - 1),
  });
  process.stdout.write(values.json
    ? JSON.stringify(r) + '\n'
    : `${r.connections} connections, ${r.concurrency} at a time: ${r.perSecond} per second; each p50 ${r.p50Us} µs, p99 ${r.p99Us} µs\n`);
  return 0;
}

runIfEntry(import.meta.url, 'setup', main);
