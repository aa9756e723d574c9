/**
 * `scripts/bench stability`: how long a byte takes to become stable, per log mode, in one
 * run (no root, no lab: the remote modes run a log server in this process on loopback UDP,
 * two paths, so the figures include the link protocol and the kernel's UDP path but not a
 * real network).
 *
 *   latency:    one 1448-byte append every `--gap-ms`, time from append() to the stability
 *               notification covering it (p50/p99/max, µs), `--samples` per mode
 *   throughput: `--mb` MB appended in 1448-byte segments as fast as the store takes them,
 *               time until all of it is stable (MB/s). This is the log alone, not the
 *               gateway; upload throughput through the gateway per mode is `scripts/bench`
 *               proper (its configs).
 *
 * Modes: embedded memory, embedded disk (LMDB, fsync), remote memory, remote disk.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { DiskLog } from '../log/disk.js';
import { MemoryLog } from '../log/memory.js';
import { connectUdp } from '../log/remote/client.js';
import { LogServer, UdpLogServer } from '../log/remote/server.js';
import type { LogStore } from '../log/types.js';
import { UsageError } from '../util/errors.js';
import { percentile } from './stats.js';

export type Mode = 'embedded:memory' | 'embedded:disk' | 'remote:memory' | 'remote:disk';
export const MODES: Mode[] = ['embedded:memory', 'embedded:disk', 'remote:memory', 'remote:disk'];
const SEG = 1448;

interface Rig {
  log: LogStore;
  close(): Promise<void>;
}

async function makeRig(mode: Mode, dir: string): Promise<Rig> {
  const store = (): LogStore => (mode.endsWith('disk') ? new DiskLog(mkdtempSync(join(dir, 'log-'))) : new MemoryLog());
  if (mode.startsWith('embedded')) {
    const log = store();
    return { log, close: () => log.shutdown() };
  }
  const key = randomBytes(32);
  const s = store();
  const udp = await UdpLogServer.listen({ server: new LogServer({ store: s }), key, listen: [{ address: '127.0.0.1', port: 0 }, { address: '127.0.0.1', port: 0 }] });
  const log = connectUdp({ key, servers: [udp.address(0), udp.address(1)], local: [{ address: '127.0.0.1', port: 0 }, { address: '127.0.0.1', port: 0 }] });
  return {
    log,
    close: async () => {
      await log.shutdown();
      await udp.close();
      await s.shutdown();
    },
  };
}

const meta = (port: number) => ({
  client: { addr: '10.9.0.1', port }, server: { addr: '10.9.0.2', port: 80 }, clientIsn: 1, serverIsn: 2,
  clientSynOptions: new Uint8Array(0), serverSynOptions: new Uint8Array(0),
});

async function waitUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

export interface Result {
  mode: Mode;
  samples: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  mbPerS: number;
}

/** One mode: latency over `samples` appends `gapMs` apart, then `mb` MB as fast as it goes. `dir`: scratch for disk stores. */
export async function measure(mode: Mode, dir: string, samples: number, gapMs: number, mb: number): Promise<Result> {
  const rig = await makeRig(mode, dir);
  try {
    const log = rig.log;
    let stable = 0;
    const id = await log.open(meta(40000));
    log.onStable((i, s) => { if (i === id) stable = s; });
    const seg = Buffer.alloc(SEG, 0x5a);
    const lat: number[] = [];
    let off = 0;
    for (let i = 0; i < samples; i++) {
      const t0 = performance.now();
      log.append(id, off, seg);
      off += SEG;
      const target = off;
      await waitUntil(() => stable >= target, 10_000, `${mode}: stable ${target}`);
      lat.push((performance.now() - t0) * 1000);
      if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
    }
    lat.sort((a, b) => a - b);
    // throughput: a second connection, appended as fast as it goes (yielding every 64 segments)
    let stable2 = 0;
    const id2 = await log.open(meta(40001));
    log.onStable((i, s) => { if (i === id2) stable2 = s; });
    const total = Math.floor((mb * 1e6) / SEG) * SEG;
    const t0 = performance.now();
    for (let o = 0, n = 0; o < total; o += SEG, n++) {
      log.append(id2, o, seg);
      if (n % 64 === 63) await new Promise((r) => setImmediate(r));
    }
    await waitUntil(() => stable2 >= total, 120_000, `${mode}: throughput stable`);
    const s = (performance.now() - t0) / 1000;
    return { mode, samples, p50Us: percentile(lat, 50), p99Us: percentile(lat, 99), maxUs: lat[lat.length - 1]!, mbPerS: total / 1e6 / s };
  } finally {
    await rig.close();
  }
}

export async function stabilityMain(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        samples: { type: 'string', default: '2000' },
        'gap-ms': { type: 'string', default: '1' },
        mb: { type: 'string', default: '50' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) {
    process.stdout.write('usage: scripts/bench stability [--samples N] [--gap-ms MS] [--mb MB] [--json]\n');
    return 0;
  }
  const samples = Number(values.samples);
  const gapMs = Number(values['gap-ms']);
  const mb = Number(values.mb);
  if (!Number.isInteger(samples) || samples < 10) throw new UsageError('--samples: an integer >= 10');
  if (!(gapMs >= 0)) throw new UsageError('--gap-ms: >= 0');
  if (!(mb > 0)) throw new UsageError('--mb: > 0');
  const dir = mkdtempSync(join(tmpdir(), 'ftcp-bench-stab-'));
  const results: Result[] = [];
  try {
    for (const m of MODES) results.push(await measure(m, dir, samples, gapMs, mb));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (values.json) {
    process.stdout.write(JSON.stringify({ samples, gapMs, mb, results }, null, 2) + '\n');
  } else {
    const lines = [
      `stable-notification latency (one ${SEG}-byte append, then wait; ${samples} samples, ${gapMs} ms apart) and log throughput (${mb} MB)`,
      '',
      '| mode | p50 µs | p99 µs | max µs | MB/s |',
      '|---|---:|---:|---:|---:|',
      ...results.map((r) => `| ${r.mode} | ${r.p50Us.toFixed(0)} | ${r.p99Us.toFixed(0)} | ${r.maxUs.toFixed(0)} | ${r.mbPerS.toFixed(0)} |`),
      '',
      'remote = RemoteLog → loopback UDP (two paths) → LogServer in the same process.',
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
  return 0;
}
