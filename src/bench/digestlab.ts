/**
 * `scripts/bench digest-lab`: what the divergence digest (issue 13, src/divergence/) costs a
 * real protected download through the gateway, both policies in the same run (root: lab).
 *
 *   one lab, one gateway, two protected download servers (demo-server --kind download):
 *     198.18.2.2:5002  the default policy, reset: every forwarded server byte hashed into the
 *                      digest, the unacknowledged ones kept
 *     198.18.2.2:5012  --divergence 198.18.2.2:5012=off: nothing kept, nothing hashed
 *
 *   1. the digest's size (before anything else, so no other connection's digest counts): a
 *      download of --bytes plus 10 % on 5002 whose client pauses once it has --bytes; the
 *      gateway's /status divergence.digestBytes and keptBytes against the flow's sndMax,
 *      then the client resumes and must finish byte-exact;
 *   2. an unrecorded warm-up download on each port;
 *   3. --runs runs, each a download of --bytes on both ports, alternating which goes first;
 *      the client's Gb/s (connect to last byte) and the gateway process's CPU seconds over
 *      the download (/proc/<pid>/stat; nothing else runs in the lab meanwhile), per GB.
 *
 * Medians with (min–max). The lab is named ftcpd-<6 hex> and removed on every exit path.
 */
import type { ChildProcess } from 'node:child_process';
import { parseCli } from '../cli/args.js';
import { FtcpError } from '../util/errors.js';
import { OUTPUT_FLAGS, machineLine, outputOf, resultHead, resultTail, runSubcommand } from './program.js';
import { ADDRESSES, labDown, labUp, randomLabName, type LabTopology } from '../lab/index.js';
import { gatewayStatus, startDemoServer, startLiveDemoClient, stopProcess } from '../lab/procs.js';
import { summarize, type Summary } from './stats.js';
import { TRANSFER_FLAGS, processCpuSeconds, transfer, transferOptions } from './run.js';

const POLICIES = ['off', 'reset'] as const;
type Policy = (typeof POLICIES)[number];
const PORTS: Record<Policy, number> = { reset: 5002, off: 5012 };
const svc = (p: Policy) => `${ADDRESSES.server}:${PORTS[p]}`;

const USAGE = `usage: scripts/bench digest-lab [options]

A protected download through the gateway with the divergence digest (policy reset, the
default) and without it (--divergence <service>=off), alternating in one lab: median
throughput, gateway CPU per GB, and the digest's size after one download of --bytes.

  --runs N          downloads per policy (default 5)
  --bytes B         bytes per download (default 1G; suffix k, M, G = 10^3, 10^6, 10^9)
  --warmup-bytes B  unrecorded download per policy first (default 100M; 0: none)
  --markdown        print the Markdown section for BENCHMARKS.md
  --json            print one JSON document`;

/** --runs, --bytes, --warmup-bytes and the output. */
type Options = ReturnType<typeof transferOptions> & { output: ReturnType<typeof outputOf> };

interface Sample { gbps: number; cpuSecondsPerGB: number | null }

interface DigestSize {
  /** Server bytes the gateway had sent on the connection (its sndMax) when the figures were read. */
  sent: number;
  digestBytes: number;
  keptBytes: number;
  /** digestBytes per 10^9 bytes sent. */
  perGB: number;
  /** The download then finished byte-exact. */
  finishedOk: boolean;
}

export interface DigestLabResult {
  date: string;
  machine: string;
  command: string;
  options: Omit<Options, 'output'>;
  digest: DigestSize | null;
  samples: Record<Policy, Array<Sample | null>>;
  /** The gateway's /status divergence at the end (counters, policies). */
  divergence: Record<string, unknown> | null;
  failures: string[];
  durationS: number;
}

const progress = (s: string) => process.stderr.write(`bench digest-lab: ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function parseDigestLabOptions(argv: string[]): Options | 'help' {
  const { values } = parseCli(argv, {
    ...TRANSFER_FLAGS,
    ...OUTPUT_FLAGS,
  });
  if (values.help) return 'help';
  const output = outputOf(values);
  return { ...transferOptions(values, { runs: 5, bytes: 1_000_000_000, minBytes: 1_000_000, warmupBytes: 100_000_000 }), output };
}

/**
 * The digest of one connection: a download paused once the client has `bytes`, the gateway's
 * figures read while it is open (nothing else runs), then resumed to its end.
 */
async function digestSize(topo: LabTopology, lab: string, bytes: number): Promise<DigestSize> {
  const total = Math.round(bytes * 1.1);
  const client = startLiveDemoClient(topo.namespaces.client, ['--kind', 'download', '--connect', svc('reset'), '--bytes', String(total), '--seed', '7']);
  const at = await client.until((p) => p.done >= bytes);
  if (at === null) throw new FtcpError('FTCP_BENCH_CLIENT', `the paused download ended before ${bytes} bytes: ${JSON.stringify((await client.report).errors)}`);
  client.command('pause');
  await sleep(500);
  const st = await gatewayStatus(lab);
  const flow = (st.flows ?? []).find((f: { flow: string }) => f.flow.endsWith(`>${svc('reset')}`));
  if (flow === undefined) throw new FtcpError('FTCP_BENCH_STATUS', `no flow to ${svc('reset')} in the gateway's status`);
  const dv = st.divergence as { digestBytes: number; keptBytes: number };
  client.command('resume');
  const rep = await client.report;
  const sent = Number(flow.sndMax);
  return { sent, digestBytes: dv.digestBytes, keptBytes: dv.keptBytes, perGB: (dv.digestBytes * 1e9) / sent, finishedOk: rep.allOk };
}

async function runDigestLab(o: Options, command: string, signal: AbortSignal): Promise<DigestLabResult> {
  const t0 = Date.now();
  const result: DigestLabResult = {
    date: new Date().toISOString(),
    machine: machineLine(true),
    command,
    options: { runs: o.runs, bytes: o.bytes, warmupBytes: o.warmupBytes },
    digest: null,
    samples: { off: [], reset: [] },
    divergence: null,
    failures: [],
    durationS: 0,
  };
  const check = () => {
    if (signal.aborted) throw new FtcpError('FTCP_BENCH_ABORTED', 'interrupted');
  };
  const name = randomLabName('ftcpd');
  const servers: ChildProcess[] = [];
  let up = false;
  try {
    progress(`lab ${name} up (protect ${PORTS.reset} reset, ${PORTS.off} off)`);
    up = true;
    const topo = await labUp({ name, protect: [PORTS.reset, PORTS.off], divergence: `${svc('off')}=off`, signal });
    for (const p of POLICIES) servers.push(await startDemoServer(topo.namespaces.server, 'download', svc(p)));
    const gwPid = topo.gatewayPid!;

    check();
    try {
      result.digest = await digestSize(topo, name, o.bytes);
      progress(`digest: ${result.digest.digestBytes} B after ${result.digest.sent} B sent (${result.digest.perGB.toFixed(0)} B per GB), kept ${result.digest.keptBytes} B`);
    } catch (e) {
      result.failures.push(`digest size: ${(e as Error).message}`);
      progress(`digest size FAILED: ${(e as Error).message}`);
    }
    if (o.warmupBytes > 0) {
      for (const p of POLICIES) {
        check();
        await transfer(topo, 'download', PORTS[p], o.warmupBytes, 1).catch((e: unknown) => progress(`warm-up ${p} failed: ${(e as Error).message}`));
      }
    }
    for (let run = 0; run < o.runs; run++) {
      const order = run % 2 === 0 ? POLICIES : [...POLICIES].reverse();
      for (const p of order) {
        check();
        try {
          const c0 = processCpuSeconds(gwPid);
          const gbps = await transfer(topo, 'download', PORTS[p], o.bytes, 100 + run);
          const c1 = processCpuSeconds(gwPid);
          const s: Sample = { gbps, cpuSecondsPerGB: c0 !== null && c1 !== null ? ((c1 - c0) * 1e9) / o.bytes : null };
          result.samples[p].push(s);
          progress(`run ${run + 1}/${o.runs} ${p}: ${gbps.toFixed(2)} Gb/s, gateway ${s.cpuSecondsPerGB?.toFixed(2) ?? '?'} CPU s per GB`);
        } catch (e) {
          check();
          result.samples[p].push(null);
          result.failures.push(`run ${run + 1} ${p}: ${(e as Error).message}`);
          progress(`run ${run + 1}/${o.runs} ${p} FAILED: ${(e as Error).message}`);
        }
      }
    }
    result.divergence = (await gatewayStatus(name)).divergence ?? null;
  } finally {
    for (const s of servers) await stopProcess(s).catch(() => {});
    if (up) await labDown(name).then(() => progress(`lab ${name} down`), (e: unknown) => progress(`lab ${name} down failed: ${(e as Error).message}`));
  }
  result.durationS = (Date.now() - t0) / 1000;
  return result;
}

const cell = (s: Summary | null, digits = 2) => (s === null ? 'failed' : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`);
const ratio = (a: Summary | null, b: Summary | null) => (a !== null && b !== null ? `×${(a.median / b.median).toFixed(3)}` : '–');

export function formatDigestLab(r: DigestLabResult, markdown: boolean): string {
  const o = r.options;
  const ok = (p: Policy) => r.samples[p].filter((s): s is Sample => s !== null);
  const gb = Object.fromEntries(POLICIES.map((p) => [p, summarize(ok(p).map((s) => s.gbps))])) as Record<Policy, Summary | null>;
  const cpu = Object.fromEntries(POLICIES.map((p) => [p, summarize(ok(p).flatMap((s) => (s.cpuSecondsPerGB === null ? [] : [s.cpuSecondsPerGB])))])) as Record<Policy, Summary | null>;
  const d = r.digest;
  return [
    ...resultHead(r, markdown),
    `Settings: ${o.runs} downloads of ${(o.bytes / 1e6).toFixed(0)} MB per policy, alternating (off first in odd runs), after an unrecorded ${(o.warmupBytes / 1e6).toFixed(0)} MB each; median (min–max).`,
    '',
    '| protected download, one gateway | `--divergence off` | reset (default: digest kept) | reset / off |',
    '| --- | ---: | ---: | ---: |',
    `| single-stream download (Gb/s) | ${cell(gb.off)} | ${cell(gb.reset)} | ${ratio(gb.reset, gb.off)} |`,
    `| gateway CPU per GB downloaded (s) | ${cell(cpu.off)} | ${cell(cpu.reset)} | ${ratio(cpu.reset, cpu.off)} |`,
    '',
    d === null
      ? 'Digest size: not measured (failed).'
      : `Digest of one connection after ${(d.sent / 1e9).toFixed(3)} GB sent (client paused, connection open): ${d.digestBytes} B of block hashes = ${d.perGB.toFixed(0)} B per GB, plus ${d.keptBytes} B kept (sent, not yet acknowledged); the download then finished ${d.finishedOk ? 'byte-exact' : 'WITH ERRORS'}.`,
    ...resultTail(r),
  ].join('\n');
}

export function digestLabMain(argv: string[]): Promise<number> {
  return runSubcommand({ name: 'digest-lab', usage: USAGE, parse: parseDigestLabOptions, run: runDigestLab, format: formatDigestLab }, argv);
}
