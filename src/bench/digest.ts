/**
 * `scripts/bench digest`: what divergence detection costs (issue 13 item 1, DESIGN.md §7b),
 * in-process, CPU time of this process (process.cpuUsage), the median of --runs:
 *
 *   digest alone      OutDigest.record + ackTo over --mb MiB of output in 1448-byte segments,
 *                     the client acking every second segment: MB/s, µs per block;
 *   through the gateway  the same download as packets through Gateway.route (server segment,
 *                     client ACK every second one; checksums trusted, so the wrappers' work
 *                     is what is measured), policy reset against off, alternating runs in the
 *                     same process: ns per segment and the difference per GB;
 *   memory            digest bytes per GB forwarded (block hashes), and per idle connection:
 *                     --idle digests that forwarded 100,000 bytes each (a partial block left)
 *                     and were acked whole, the heap + external memory they hold after a GC.
 *
 *   scripts/bench digest [--runs 5] [--mb 256] [--idle 10000] [--json]
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parseCli, parseNumberFlag } from '../cli/args.js';
import { DigestBudget, OutDigest, defaultDigestLimits, HASH_BYTES } from '../divergence/digest.js';
import type { DivergencePolicy } from '../divergence/policy.js';
import { Gateway } from '../gateway/gateway.js';
import { MemoryLog } from '../log/memory.js';
import type { PacketBatch, TunDevice } from '../tun/device.js';
import { logger } from '../util/logger.js';
import { emitTcpPacket } from '../wire/repr.js';
import { seqAdd, type Seq } from '../wire/seq.js';
import { TCP_ACK, TCP_OFF_ACK, TCP_OFF_SEQ, TCP_PSH, TCP_SYN } from '../wire/tcp.js';
import { summarize } from './stats.js';

const HELP = `usage: scripts/bench digest [--runs N] [--mb N] [--idle N] [--json]

The cost of divergence detection: the digest's hashing (MB/s, µs per block), a download
through the gateway with the digest on (policy reset) and off in the same run, digest bytes
per GB and memory per idle connection.
  --runs N   runs per cell, alternating on/off; the median is shown (default 5, at most 50)
  --mb N     MiB per run (default 256, at most 10000)
  --idle N   idle connections for the memory figure (default 10000, at most 1000000)
  --json     one JSON document`;

const MSS = 1448;
const CLIENT = 0xc6120102;
const SERVER = 0xc6120202;
const CPORT = 40000;
const SPORT = 5001;
const C_ISN = 0x10000000 as Seq;
const S_ISN = 0xfffff000 as Seq; // the out-stream crosses the 2^32 wrap at once

/** A device that keeps nothing: the gateway's writes are counted. */
class NullTun implements TunDevice {
  readonly name = 'bench0';
  written = 0;
  start(_onBatch: (b: PacketBatch) => void): void {}
  write(): boolean {
    this.written++;
    return true;
  }
  writeBatch(_buf: Buffer, _offsets: Uint32Array, _lengths: Uint32Array, count: number): number {
    this.written += count;
    return count;
  }
  close(): void {}
}

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

// ---- the digest alone ------------------------------------------------------------------

export interface DigestAlone { mbPerS: number; usPerBlock: number; runs: number[] }

function digestRun(bytes: number, payload: Buffer): number {
  const d = new OutDigest(new DigestBudget(defaultDigestLimits));
  const t0 = cpuNs();
  let off = 0;
  let n = 0;
  while (off < bytes) {
    const len = Math.min(MSS, bytes - off);
    d.record(off, payload.subarray(0, len), n % 2 === 0 ? off : off - MSS);
    off += len;
    n++;
  }
  d.ackTo(off);
  const ns = cpuNs() - t0;
  if (d.abandoned !== null || d.hashedEnd !== bytes) throw new Error(`bench digest: the digest did not take the download (${d.abandoned ?? d.hashedEnd})`);
  return ns;
}

// ---- through the gateway -----------------------------------------------------------------

/** A gateway with one established protected connection, and the two packets of the download, rewritten per segment. */
async function gatewayWith(policy: DivergencePolicy): Promise<{ gw: Gateway; data: Buffer; ack: Buffer }> {
  const log = new MemoryLog();
  const gw = new Gateway({
    tun: new NullTun(), services: [{ ip: SERVER, port: SPORT }], log, logger: logger.child({ mod: 'bench' }), checksums: 'trust',
    north: { divergence: { dflt: policy, byService: new Map() } },
  });
  const route = (b: Buffer) => gw.route(b, 0, b.length);
  const ts = { tsVal: 1, tsEcr: 0 };
  route(emitTcpPacket({ src: CLIENT, dst: SERVER, srcPort: CPORT, dstPort: SPORT, seq: C_ISN, ack: 0, flags: TCP_SYN, window: 64240, options: synOptions(), ...ts }));
  route(emitTcpPacket({ src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: CPORT, seq: S_ISN, ack: seqAdd(C_ISN, 1), flags: TCP_SYN | TCP_ACK, window: 65160, options: synOptions(), tsVal: 5, tsEcr: 1 }));
  route(emitTcpPacket({ src: CLIENT, dst: SERVER, srcPort: CPORT, dstPort: SPORT, seq: seqAdd(C_ISN, 1), ack: seqAdd(S_ISN, 1), flags: TCP_ACK, window: 65535, tsVal: 2, tsEcr: 5 }));
  await new Promise<void>((r) => setImmediate(r)); // the log's open answers
  const payload = Buffer.alloc(MSS);
  for (let i = 0; i < MSS; i++) payload[i] = (i * 31 + 7) & 0xff;
  const data = emitTcpPacket({ src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: CPORT, seq: seqAdd(S_ISN, 1), ack: seqAdd(C_ISN, 1), flags: TCP_ACK | TCP_PSH, window: 65160, payload, tsVal: 6, tsEcr: 2 });
  const ack = emitTcpPacket({ src: CLIENT, dst: SERVER, srcPort: CPORT, dstPort: SPORT, seq: seqAdd(C_ISN, 1), ack: seqAdd(S_ISN, 1), flags: TCP_ACK, window: 65535, tsVal: 3, tsEcr: 6 });
  return { gw, data, ack };
}

/** NOP-padded MSS, window scale 7, SACK-permitted, timestamps: the SYN options of a Linux peer. */
function synOptions(): Buffer {
  return Buffer.from([2, 4, 0x05, 0xb4, 1, 3, 3, 7, 1, 1, 4, 2]);
}

async function gatewayRun(policy: DivergencePolicy, bytes: number): Promise<{ ns: number; segments: number; digestBytes: number }> {
  const { gw, data, ack } = await gatewayWith(policy);
  const flow = [...gw.table.flows()][0]?.[1];
  if (flow === undefined || flow.state !== 'ESTABLISHED') throw new Error('bench digest: the connection did not establish');
  const l4 = 20 + 0; // emitTcpPacket: a 20-byte IPv4 header
  const dataCopy = Buffer.from(data);
  let off = 0;
  let n = 0;
  const t0 = cpuNs();
  while (off < bytes) {
    // Each packet as the TUN would hand it: a fresh copy of the template (the gateway rewrites in place).
    dataCopy.set(data);
    dataCopy.writeUInt32BE(seqAdd(S_ISN, 1 + (off % 0x100000000)), l4 + TCP_OFF_SEQ);
    if (!gw.route(dataCopy, 0, dataCopy.length)) throw new Error(`bench digest: segment at ${off} not forwarded`);
    off += MSS;
    n++;
    if (n % 2 === 0) {
      ack.writeUInt32BE(seqAdd(S_ISN, 1 + (off % 0x100000000)), l4 + TCP_OFF_ACK);
      gw.route(ack, 0, ack.length);
    }
  }
  if (n % 2 === 1) {
    ack.writeUInt32BE(seqAdd(S_ISN, 1 + (off % 0x100000000)), l4 + TCP_OFF_ACK);
    gw.route(ack, 0, ack.length);
  }
  const ns = cpuNs() - t0;
  if (flow.sndMax !== off || flow.cliAcked !== off) throw new Error(`bench digest: sndMax ${flow.sndMax}, cliAcked ${flow.cliAcked}, sent ${off}`);
  gw.north.sweepDigests();
  const d = gw.north.divergenceStatus() as { digestBytes: number; digestsAbandoned: number };
  if (policy !== 'off' && d.digestsAbandoned !== 0) throw new Error('bench digest: the digest was abandoned');
  return { ns, segments: n, digestBytes: d.digestBytes };
}

// ---- idle connections --------------------------------------------------------------------

function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function memNow(): { js: number; rss: number } {
  const m = process.memoryUsage();
  return { js: m.heapUsed + m.external, rss: m.rss };
}

/**
 * Per idle connection: what V8 accounts (heap + external) and the growth of the resident set,
 * which also sees what lives outside the V8 heap (a partial block's hash state).
 */
export interface IdleFigures { connections: number; bytesEach: number; bytesPerConnection: number; rssPerConnection: number; blockHashBytes: number }

function idleMemory(count: number): IdleFigures {
  const each = 100_000;
  const payload = Buffer.alloc(MSS, 0x5a);
  const budget = new DigestBudget({ ...defaultDigestLimits, budgetBytes: Number.MAX_SAFE_INTEGER });
  gc();
  const before = memNow();
  const kept: OutDigest[] = [];
  for (let c = 0; c < count; c++) {
    const d = new OutDigest(budget);
    for (let off = 0; off < each; off += MSS) d.record(off, payload.subarray(0, Math.min(MSS, each - off)), off);
    d.ackTo(each);
    kept.push(d);
  }
  gc();
  const after = memNow();
  if (kept.some((d) => d.keptBytes !== 0 || d.abandoned !== null)) throw new Error('bench digest: an idle digest kept bytes');
  return { connections: count, bytesEach: each, bytesPerConnection: (after.js - before.js) / count, rssPerConnection: (after.rss - before.rss) / count, blockHashBytes: Math.floor(each / defaultDigestLimits.blockBytes) * HASH_BYTES };
}

// ---- the command ---------------------------------------------------------------------------

export async function digestMain(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    runs: { type: 'string', default: '5' }, mb: { type: 'string', default: '256' }, idle: { type: 'string', default: '10000' },
    json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const runs = parseNumberFlag(values.runs, '--runs', { dflt: 5, min: 1, max: 50 });
  const mb = parseNumberFlag(values.mb, '--mb', { dflt: 256, min: 1, max: 10_000 });
  const idle = parseNumberFlag(values.idle, '--idle', { dflt: 10_000, min: 1, max: 1_000_000 });
  const bytes = mb * 2 ** 20;
  const B = defaultDigestLimits.blockBytes;
  const payload = Buffer.alloc(MSS, 0xa5);

  const alone: number[] = [];
  const on: number[] = [];
  const off: number[] = [];
  let segments = 0;
  let digestBytes = 0;
  for (let i = 0; i < runs; i++) {
    alone.push(digestRun(bytes, payload));
    const a = await gatewayRun('off', bytes);
    const b = await gatewayRun('reset', bytes);
    off.push(a.ns / a.segments);
    on.push(b.ns / b.segments);
    segments = b.segments;
    digestBytes = b.digestBytes;
  }
  const aloneNs = summarize(alone)!.median;
  const onNs = summarize(on)!.median;
  const offNs = summarize(off)!.median;
  const perGbS = (nsPerSeg: number) => (nsPerSeg * (2 ** 30 / MSS)) / 1e9;
  const result = {
    mb, runs, blockBytes: B,
    digestAlone: { mbPerS: bytes / 2 ** 20 / (aloneNs / 1e9), usPerBlock: aloneNs / 1e3 / (bytes / B), cpuSPerGb: (aloneNs / 1e9) * (1024 / mb) },
    gateway: {
      segments, nsPerSegmentOff: offNs, nsPerSegmentOn: onNs, overheadPct: (100 * (onNs - offNs)) / offNs,
      cpuSPerGbOff: perGbS(offNs), cpuSPerGbOn: perGbS(onNs), runsOff: off, runsOn: on,
    },
    memory: { digestBytesPerGb: (digestBytes / bytes) * 2 ** 30, idle: idleMemory(idle) },
  };
  if (values.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return 0;
  }
  const g = result.gateway;
  const m = result.memory;
  const f = (x: number, d = 0) => x.toFixed(d);
  process.stdout.write([
    `digest (${B}-byte blocks, xxHash64), ${mb} MiB per run, median of ${runs}:`,
    `  digest alone:        ${f(result.digestAlone.mbPerS)} MB/s, ${f(result.digestAlone.usPerBlock, 1)} µs per block, ${f(result.digestAlone.cpuSPerGb, 2)} CPU s per GiB`,
    `  through the gateway: off ${f(g.nsPerSegmentOff)} ns/segment (${f(g.cpuSPerGbOff, 2)} CPU s per GiB), reset ${f(g.nsPerSegmentOn)} ns/segment (${f(g.cpuSPerGbOn, 2)} CPU s per GiB): +${f(g.overheadPct, 1)}%`,
    `  digest memory:       ${f(m.digestBytesPerGb / 1024)} KiB per GiB forwarded (block hashes)`,
    `  idle connections:    ${m.idle.connections} that forwarded ${m.idle.bytesEach} bytes each, acked: ${f(m.idle.bytesPerConnection)} bytes each in V8 (${m.idle.blockHashBytes} of them block hashes), resident set +${f(m.idle.rssPerConnection)} bytes each`,
  ].join('\n') + '\n');
  return 0;
}
