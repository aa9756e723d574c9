/**
 * Request/response latency: one TCP connection to a line echo server (`ftcp demo-server
 * --kind echo`), strictly one request outstanding. Each request is `size` bytes ending in
 * '\n' and carrying its sequence number; the next one leaves only when the whole echo of
 * the previous one has arrived and matched it byte for byte.
 *
 *   t0 = hrtime ─ write(req i) ──▶ server ──▶ echo(i) complete ─ t1 = hrtime ─ write(req i+1) ...
 *
 * The first `warmup` round trips are not recorded. The rest are, in microseconds, and
 * summarised as nearest-rank percentiles (./stats.ts).
 *
 * Run as a program inside the lab's client namespace (the bench does
 * `ip netns exec <n>-client node dist/bench/rr.js --connect 198.18.2.2:5003 --json`):
 *
 *   node dist/bench/rr.js --connect <ip:port> [--round-trips N] [--warmup W] [--size S]
 *                         [--timeout-ms T] [--json]
 *
 * prints one JSON document (RrReport) on stdout; exit status 1 with a message on stderr
 * when the run could not complete (timeout, mismatched echo, connection error).
 */
import net from 'node:net';
import { parseCli, parseHostPort, parseIntFlag } from '../cli/args.js';
import { FtcpError, UsageError } from '../util/errors.js';
import { latencySummary, type LatencySummary } from './stats.js';
import { runIfEntry } from './program.js';

export interface RrOptions {
  host: string;
  port: number;
  /** Recorded round trips (default 20000). */
  roundTrips?: number;
  /** Unrecorded round trips first (default 1000). */
  warmup?: number;
  /** Request (= response) size in bytes, '\n' included; 2..65536 (default 32). */
  size?: number;
  /** Deadline for the whole run, connect included (default 120000). */
  timeoutMs?: number;
}

export interface RrReport extends LatencySummary {
  roundTrips: number;
  warmup: number;
  size: number;
  /** Wall time of the recorded part. */
  durationMs: number;
}

export const RR_DEFAULTS = { roundTrips: 20_000, warmup: 1_000, size: 32, timeoutMs: 120_000 } as const;

/** Request i: its sequence number, zero-padded, then '\n' (the echo server answers per line). */
export function requestBytes(i: number, size: number): Buffer {
  const b = Buffer.alloc(size, 0x2e); // '.'
  const digits = String(i);
  b.write(digits.length <= size - 1 ? digits.padStart(size - 1, '0') : digits.slice(-(size - 1)), 0, 'latin1');
  b[size - 1] = 0x0a;
  return b;
}

export function runRoundTrips(opts: RrOptions): Promise<RrReport> {
  const roundTrips = opts.roundTrips ?? RR_DEFAULTS.roundTrips;
  const warmup = opts.warmup ?? RR_DEFAULTS.warmup;
  const size = opts.size ?? RR_DEFAULTS.size;
  const timeoutMs = opts.timeoutMs ?? RR_DEFAULTS.timeoutMs;
  if (!Number.isSafeInteger(roundTrips) || roundTrips < 1) throw new RangeError(`roundTrips must be an integer >= 1, got ${roundTrips}`);
  if (!Number.isSafeInteger(warmup) || warmup < 0) throw new RangeError(`warmup must be an integer >= 0, got ${warmup}`);
  if (!Number.isSafeInteger(size) || size < 2 || size > 65536) throw new RangeError(`size must be an integer in 2..65536, got ${size}`);

  const total = warmup + roundTrips;
  const samples = new Float64Array(roundTrips);
  return new Promise<RrReport>((resolve, reject) => {
    const sock = net.connect({ host: opts.host, port: opts.port, noDelay: true });
    let i = 0; // round trip in flight
    let req = requestBytes(0, size);
    const got = Buffer.alloc(size);
    let gotLen = 0;
    let t0 = 0n;
    let tStart = 0n;
    let settled = false;

    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        sock.destroy();
        reject(err);
        return;
      }
      const durationMs = Number(process.hrtime.bigint() - tStart) / 1e6;
      sock.end();
      resolve({ roundTrips, warmup, size, durationMs: Math.round(durationMs * 1000) / 1000, ...latencySummary(samples) });
    };
    const timer = setTimeout(
      () => finish(new FtcpError('FTCP_RR_TIMEOUT', `${i} of ${total} round trips done when the ${timeoutMs} ms deadline expired`)),
      timeoutMs,
    );

    const send = () => {
      if (i === warmup) tStart = process.hrtime.bigint();
      t0 = process.hrtime.bigint();
      sock.write(req);
    };

    sock.on('connect', send);
    sock.on('data', (b: Buffer) => {
      if (settled) return;
      if (gotLen + b.length > size) {
        finish(new FtcpError('FTCP_RR_PROTOCOL', `round trip ${i}: ${gotLen + b.length} bytes arrived for a ${size}-byte request`));
        return;
      }
      b.copy(got, gotLen);
      gotLen += b.length;
      if (gotLen < size) return;
      const t1 = process.hrtime.bigint();
      if (!got.equals(req)) {
        finish(new FtcpError('FTCP_RR_MISMATCH', `round trip ${i}: echo ${JSON.stringify(got.toString('latin1'))} != request ${JSON.stringify(req.toString('latin1'))}`));
        return;
      }
      if (i >= warmup) samples[i - warmup] = Number(t1 - t0) / 1000;
      gotLen = 0;
      i += 1;
      if (i === total) {
        finish(null);
        return;
      }
      req = requestBytes(i, size);
      send();
    });
    sock.on('error', (e: NodeJS.ErrnoException) => finish(new FtcpError(`FTCP_RR_${e.code ?? 'ERROR'}`, `round trip ${i}: ${e.message}`)));
    sock.on('close', () => finish(new FtcpError('FTCP_RR_CLOSED', `connection closed after ${i} of ${total} round trips`)));
  });
}

const USAGE = `usage: node dist/bench/rr.js --connect <ip:port> [--round-trips N] [--warmup W] [--size S] [--timeout-ms T] [--json]

  one connection to an echo server, one request outstanding; prints latency percentiles (µs)
  --round-trips N  recorded round trips (default ${RR_DEFAULTS.roundTrips})
  --warmup W       unrecorded round trips first (default ${RR_DEFAULTS.warmup})
  --size S         request/response bytes, '\\n' included (default ${RR_DEFAULTS.size})
  --timeout-ms T   deadline for the whole run (default ${RR_DEFAULTS.timeoutMs})
  --json           print the report as one JSON line (default: a one-line summary)`;

export async function main(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    connect: { type: 'string' },
    'round-trips': { type: 'string' },
    warmup: { type: 'string' },
    size: { type: 'string' },
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
  const r = await runRoundTrips({
    host: addr,
    port,
    roundTrips: parseIntFlag(values['round-trips'], '--round-trips', RR_DEFAULTS.roundTrips, 1, 100_000_000),
    warmup: parseIntFlag(values.warmup, '--warmup', RR_DEFAULTS.warmup, 0, 100_000_000),
    size: parseIntFlag(values.size, '--size', RR_DEFAULTS.size, 2, 65536),
    timeoutMs: parseIntFlag(values['timeout-ms'], '--timeout-ms', RR_DEFAULTS.timeoutMs, 1, 2 ** 31 - 1),
  });
  process.stdout.write(values.json
    ? JSON.stringify(r) + '\n'
    : `${r.roundTrips} round trips of ${r.size} B: p50 ${r.p50Us} µs, p99 ${r.p99Us} µs, min ${r.minUs} µs, max ${r.maxUs} µs\n`);
  return 0;
}

runIfEntry(import.meta.url, 'rr', main);
