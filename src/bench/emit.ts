/**
 * `scripts/bench emit`: what the packets the gateway makes allocate (issue 12 item 4), before
 * and after the emit path moved into one scratch buffer with virtio-net-header headroom
 * (src/wire/headroom.ts), side by side in the same process:
 *
 *   replayed segments  the recovery engine's send path (NorthWrapper.sendToServer: window,
 *                      TS option, IPv4+TCP packet) → Gateway.emit → VnetPath.emit → TUN,
 *                      --mb of log bytes in 1448-byte segments, each payload a view of a
 *                      1 MiB log chunk as the replay sender takes it;
 *   released ACKs      the south wrapper's releaseHeldAck (a held ACK template, its ack and
 *                      window set for the new stable offset) → Gateway.emit → VnetPath.emit.
 *
 * AFTER runs the gateway's real code (a Gateway on a TUN with offloads whose write counts
 * bytes and keeps nothing). BEFORE runs the old functions, copied below and labelled: each
 * segment allocated its TS option (12 bytes) and its packet (Buffer.alloc), and
 * VnetPath.emit copied the packet behind a header in its own 64 KB buffer; each released
 * ACK was a Buffer.allocUnsafe and a copy of the template.
 *
 * Per run: the growth of process.memoryUsage().arrayBuffers over the run (no GC forced in
 * between) and the garbage collections that ran (node:perf_hooks 'gc' entries, minor and
 * major), both per 10^5 packets; CPU time per packet. Runs alternate BEFORE/AFTER; the
 * median of --runs is shown.
 *
 *   scripts/bench emit [--runs 5] [--mb 100] [--acks 1000000] [--json]
 */
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parseCli, parseNumberFlag } from '../cli/args.js';
import { Flow } from '../flow/flow.js';
import { Gateway } from '../gateway/gateway.js';
import { northOf } from '../recovery/rebuild.js';
import { MemoryLog } from '../log/memory.js';
import type { PacketBatch, TunDevice } from '../tun/device.js';
import { logger } from '../util/logger.js';
import { fillIpv4HeaderChecksum, fillTcpChecksum } from '../wire/checksum.js';
import { IPPROTO_TCP } from '../wire/ipv4.js';
import { emitTcpPacket } from '../wire/repr.js';
import { seqAdd, type Seq } from '../wire/seq.js';
import { TCP_ACK, TCP_OFF_ACK, TCP_OFF_CHECKSUM, TCP_OFF_WINDOW, TCP_PSH } from '../wire/tcp.js';
import {
  VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_HDR_LEN, VNET_OFF_CSUM_OFFSET, VNET_OFF_CSUM_START, VNET_OFF_GSO_SIZE, ipv4PseudoSum,
  setLe16, setVnetHdrLen, zeroVnet,
} from '../wire/vnet.js';
import { summarize } from './stats.js';

const HELP = `usage: scripts/bench emit [--runs N] [--mb N] [--acks N] [--json]

Allocations of the packets the gateway makes, before and after the emit path's scratch
buffer (issue 12): ArrayBuffer growth and GC counts per 10^5 packets, CPU per packet.
  --runs N   runs per cell, alternating before/after; the median is shown (default 5, at most 50)
  --mb N     MiB replayed per run, in 1448-byte segments (default 100, at most 10000)
  --acks N   released ACKs per run (default 1000000, at most 100000000)
  --json     one JSON document`;

const MSS = 1448;
const CHUNK = 1 << 20;
const CLIENT = 0xc6120102;
const SERVER = 0xc6120202;
const MTU = 1500;

// ---- the device: counts, keeps nothing ----------------------------------------------------

class CountingTun implements TunDevice {
  readonly name = 'bench0';
  readonly vnetHdrLen = VNET_HDR_LEN;
  packets = 0;
  bytes = 0;
  start(_onBatch: (b: PacketBatch) => void): void {}
  write(_buf: Buffer, _off: number, len: number): boolean {
    this.packets++;
    this.bytes += len;
    return true;
  }
  writeBatch(_buf: Buffer, _offsets: Uint32Array, lengths: Uint32Array, count: number): number {
    for (let i = 0; i < count; i++) this.write(_buf, 0, lengths[i]!);
    return count;
  }
  close(): void {}
}

// ---- BEFORE: the emit path as it was (baseline only, not used by the gateway) --------------

/** OLD rebuild.ts tsOption: 12 bytes allocated per segment. */
function oldTsOption(tsVal: number, tsEcr: number): Buffer {
  const b = Buffer.alloc(12);
  b[0] = 1;
  b[1] = 1;
  b[2] = 8;
  b[3] = 10;
  b.writeUInt32BE(tsVal >>> 0, 4);
  b.writeUInt32BE(tsEcr >>> 0, 8);
  return b;
}

/** OLD rebuild.ts absorbWindow, window-field arithmetic inline. */
function oldAbsorbWindow(flow: Flow, ackOff: number): number {
  const cws = flow.clientWscale;
  const real = flow.cliWindow * 2 ** cws;
  const max = Math.max(flow.cliMaxWindow, flow.clientSynWindow, real);
  const bytes = Math.max(real, Math.min(max, Math.max(0, flow.cliAcked - ackOff) + real));
  const w = Math.ceil(bytes / 2 ** cws);
  return w > 0xffff ? 0xffff : w;
}

/** OLD offload.ts VnetPath.emit: the packet copied behind a header in its own 64 KB buffer. */
class OldVnetEmit {
  private readonly scratch = Buffer.alloc(65536 + VNET_HDR_LEN);
  constructor(private readonly tun: TunDevice, private readonly mtu: number) {}
  emit(pkt: Buffer, off: number, len: number): boolean {
    const f = this.scratch;
    if (len + VNET_HDR_LEN > f.length) return false;
    zeroVnet(f, 0);
    pkt.copy(f, VNET_HDR_LEN, off, off + len);
    const ip = VNET_HDR_LEN;
    if (len > this.mtu && f[ip]! >>> 4 === 4 && f[ip + 9] === IPPROTO_TCP) {
      const ihl = (f[ip]! & 0x0f) << 2;
      const thl = (f[ip + ihl + 12]! >>> 4) << 2;
      f[0] = VNET_F_NEEDS_CSUM;
      f[1] = VNET_GSO_TCPV4;
      setVnetHdrLen(f, 0, ihl + thl);
      setLe16(f, VNET_OFF_GSO_SIZE, this.mtu - ihl - thl);
      setLe16(f, VNET_OFF_CSUM_START, ihl);
      setLe16(f, VNET_OFF_CSUM_OFFSET, TCP_OFF_CHECKSUM);
      const p = ipv4PseudoSum(f, ip);
      f[ip + ihl + TCP_OFF_CHECKSUM] = p >>> 8;
      f[ip + ihl + TCP_OFF_CHECKSUM + 1] = p & 0xff;
    }
    return this.tun.write(f, 0, len + VNET_HDR_LEN);
  }
}

/** What the old send path read of a Rebuild. */
interface RebuildFields { newIsn: Seq; sidePort: number; newTsRecent: Seq; ackPending: boolean }

/** OLD rebuild.ts sendToServer: a repr literal, a TS option and a packet allocated per segment. */
function oldSendToServer(out: OldVnetEmit, flow: Flow, r: RebuildFields, seq: Seq, flags: number, payload: Uint8Array | null): void {
  r.ackPending = false;
  const ackOff = Math.min(northOf(flow).incSndMax, flow.cliAcked);
  const ack = seqAdd(r.newIsn, 1 + (ackOff % 0x100000000));
  const w = oldAbsorbWindow(flow, ackOff);
  const opt = flow.tsOk ? oldTsOption(flow.cliTsVal, r.newTsRecent) : undefined;
  const pkt = emitTcpPacket({
    src: flow.clientIp, dst: flow.serverIp, srcPort: r.sidePort, dstPort: flow.serverPort,
    seq, ack, flags, window: w, options: opt, payload: payload ?? undefined,
  });
  out.emit(pkt, 0, pkt.length);
}

/**
 * OLD south.ts releaseHeldAck, its per-ACK work (the early returns are the same before and
 * after, and the bench never takes them): Buffer.allocUnsafe and a copy of the template.
 */
function oldReleaseHeldAck(out: OldVnetEmit, flow: Flow, stable: number): void {
  const held = flow.held!;
  const ackOff = Math.min(flow.heldAck, stable);
  const ipHdr = (held[0]! & 0x0f) * 4;
  const rightEdge = flow.heldAck + held.readUInt16BE(ipHdr + TCP_OFF_WINDOW) * 2 ** flow.serverWscale;
  const o = Buffer.allocUnsafe(flow.heldLen);
  held.copy(o, 0, 0, flow.heldLen);
  o.writeUInt32BE(flow.inSeq(ackOff), ipHdr + TCP_OFF_ACK);
  let w = Math.ceil((rightEdge - ackOff) / 2 ** flow.serverWscale);
  w = w > 0xffff ? 0xffff : w < 0 ? 0 : w;
  o.writeUInt16BE(w, ipHdr + TCP_OFF_WINDOW);
  fillTcpChecksum(o, 0);
  flow.complete = ackOff;
  out.emit(o, 0, o.length);
}

// ---- AFTER: the gateway's own code, reached through its private methods -------------------

interface Private {
  sendToServer(flow: Flow, r: RebuildFields, seq: Seq, flags: number, payload: Uint8Array | null): void;
  releaseHeldAck(flow: Flow, stable: number): void;
}

// ---- the setting: one rebuilt connection ---------------------------------------------------

function makeFlow(): Flow {
  const flow = new Flow(1, CLIENT, 40000, SERVER, 5001, 0xfffff000 as Seq, Buffer.alloc(0), 0);
  // The fields the send paths read (a connection with timestamps, window scale 7 both ways).
  Object.assign(flow as unknown as Record<string, unknown>, {
    serverIsn: 0x70000000, tsOk: true, cliTsVal: 123456, lastTsToClient: 654321, clientWscale: 7, serverWscale: 7,
    cliWindow: 502, cliMaxWindow: 64240, clientSynWindow: 64240, cliAcked: 5000, incSndMax: 5000, rightEdge: 1 << 20,
  });
  return flow;
}

/** A held pure-ACK template (IPv4 + TCP with NOP NOP TS), as holdTemplate keeps it. */
function holdTemplate(flow: Flow, releases: number): void {
  const t = emitTcpPacket({
    src: SERVER, dst: CLIENT, srcPort: 5001, dstPort: 40000, seq: 0x70001000, ack: 0, flags: TCP_ACK, window: 500,
    tsVal: 1, tsEcr: 2,
  });
  const held = Buffer.allocUnsafe(120);
  t.copy(held, 0);
  fillIpv4HeaderChecksum(held, 0);
  flow.held = held;
  flow.heldLen = t.length;
  flow.heldAck = (releases + 2) * 1000; // past the last release: the template stays held for every one
  flow.complete = 0;
}

// ---- measuring ------------------------------------------------------------------------------

export interface EmitRun { packets: number; bytes: number; arrayBufferGrowth: number; gcMinor: number; gcMajor: number; cpuNs: number }
export interface EmitCell { path: 'replay' | 'ack'; variant: 'before' | 'after' | 'loop' | 'direct'; runs: EmitRun[] }

let gcCounts = { minor: 0, major: 0 };
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
    if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) gcCounts.minor++;
    else gcCounts.major++;
  }
});

/** A full GC between runs (not during one), so every run starts from the same heap. */
function settle(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** GC entries are delivered asynchronously: give the observer a turn before reading them. */
const flushEntries = () => new Promise<void>((resolve) => setTimeout(resolve, 20));

async function measure(tun: CountingTun, body: () => void): Promise<EmitRun> {
  settle();
  await flushEntries();
  gcCounts = { minor: 0, major: 0 };
  const p0 = tun.packets;
  const b0 = tun.bytes;
  const ab0 = process.memoryUsage().arrayBuffers;
  const t0 = process.cpuUsage();
  body();
  const t = process.cpuUsage(t0);
  const ab1 = process.memoryUsage().arrayBuffers;
  await flushEntries();
  const packets = tun.packets - p0;
  return { packets, bytes: tun.bytes - b0, arrayBufferGrowth: ab1 - ab0, gcMinor: gcCounts.minor, gcMajor: gcCounts.major, cpuNs: ((t.user + t.system) * 1000) / packets };
}

export async function measureEmit(runs: number, mb: number, acks: number): Promise<EmitCell[]> {
  const tun = new CountingTun();
  const gw = new Gateway({ tun, services: [{ ip: SERVER, port: 5001 }], log: new MemoryLog(), logger: logger.child({ mod: 'bench' }, { level: 'silent' }), mtu: MTU });
  const north = gw.north as unknown as Private;
  const south = gw.south as unknown as Private;
  const old = new OldVnetEmit(tun, MTU);
  const flow = makeFlow();
  const r: RebuildFields = { newIsn: 0x1234abcd as Seq, sidePort: 40000, newTsRecent: 777 as Seq, ackPending: false };
  const chunk = Buffer.alloc(CHUNK);
  for (let i = 0; i < CHUNK; i++) chunk[i] = (i * 7 + 3) & 0xff;
  const total = mb * CHUNK;

  // The replay sender's loop (rebuild.ts pump): a view of the log chunk per segment.
  const replay = (send: (seq: Seq, payload: Uint8Array) => void) => () => {
    for (let off = 0; off < total; off += MSS) {
      const at = off % CHUNK;
      const end = Math.min(at + MSS, CHUNK, at + total - off);
      send(flow.inSeq(off), chunk.subarray(at, end));
    }
  };
  const replayBefore = replay((seq, p) => oldSendToServer(old, flow, r, seq, TCP_ACK | TCP_PSH, p));
  const replayAfter = replay((seq, p) => north.sendToServer(flow, r, seq, TCP_ACK | TCP_PSH, p));
  // The loop alone, its views included, the packets counted but not built: what the replay
  // sender itself allocates, apart from the emit path.
  const replayLoop = replay((_seq, p) => void tun.write(chunk, 0, p.length));
  // The engine's send method called directly, one payload view for every segment: what the
  // emit path allocates by itself.
  const fixed = chunk.subarray(0, MSS);
  const replayDirect = () => {
    for (let off = 0; off < total; off += MSS) north.sendToServer(flow, r, flow.inSeq(off), TCP_ACK | TCP_PSH, fixed);
  };
  const release = (fn: (stable: number) => void) => () => {
    holdTemplate(flow, acks);
    for (let i = 1; i <= acks; i++) fn(i * 1000);
  };
  const ackBefore = release((s) => oldReleaseHeldAck(old, flow, s));
  const ackAfter = release((s) => south.releaseHeldAck(flow, s));

  observer.observe({ entryTypes: ['gc'] });
  try {
    // Warm-up: every variant on a little traffic, so the JIT has seen them all before anything is measured.
    for (let off = 0; off < 2000 * MSS; off += MSS) {
      oldSendToServer(old, flow, r, flow.inSeq(off), TCP_ACK | TCP_PSH, chunk.subarray(0, MSS));
      north.sendToServer(flow, r, flow.inSeq(off), TCP_ACK | TCP_PSH, chunk.subarray(0, MSS));
    }
    holdTemplate(flow, 4002);
    for (let i = 1; i <= 2000; i++) {
      oldReleaseHeldAck(old, flow, 2 * i * 1000);
      south.releaseHeldAck(flow, (2 * i + 1) * 1000);
    }
    const cells: EmitCell[] = [
      { path: 'replay', variant: 'before', runs: [] }, { path: 'replay', variant: 'after', runs: [] },
      { path: 'ack', variant: 'before', runs: [] }, { path: 'ack', variant: 'after', runs: [] },
      { path: 'replay', variant: 'loop', runs: [] }, { path: 'replay', variant: 'direct', runs: [] },
    ];
    const bodies = [replayBefore, replayAfter, ackBefore, ackAfter, replayLoop, replayDirect];
    for (let run = 0; run < runs; run++) {
      for (let i = 0; i < cells.length; i++) cells[i]!.runs.push(await measure(tun, bodies[i]!));
    }
    return cells;
  } finally {
    observer.disconnect();
    gw.stop();
  }
}

const per1e5 = (x: number, packets: number) => (x * 1e5) / packets;

/** The median of a per-10^5-packets figure over a cell's runs. */
function med(c: EmitCell, f: (r: EmitRun) => number): number {
  return summarize(c.runs.map(f))!.median;
}

export async function emitMain(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    runs: { type: 'string' }, mb: { type: 'string' }, acks: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const runs = parseNumberFlag(values.runs, '--runs', { dflt: 5, min: 1, max: 50 });
  const mb = parseNumberFlag(values.mb, '--mb', { dflt: 100, min: 1, max: 10_000 });
  const acks = parseNumberFlag(values.acks, '--acks', { dflt: 1_000_000, min: 1000, max: 100_000_000 });
  const cells = await measureEmit(runs, mb, acks);
  if (values.json) {
    process.stdout.write(JSON.stringify({ node: process.versions.node, runs, mb, acks, cells }, null, 2) + '\n');
    return 0;
  }
  const lines = [
    '| path | packets per run | ArrayBuffer growth per 10^5 packets, before → after | GCs per 10^5 packets (minor + major), before → after | CPU ns per packet, before → after |',
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  for (const path of ['replay', 'ack'] as const) {
    const b = cells.find((c) => c.path === path && c.variant === 'before')!;
    const a = cells.find((c) => c.path === path && c.variant === 'after')!;
    const n = b.runs[0]!.packets;
    const ab = (c: EmitCell) => med(c, (r) => per1e5(r.arrayBufferGrowth, r.packets));
    const gc = (c: EmitCell) => `${med(c, (r) => per1e5(r.gcMinor, r.packets)).toFixed(1)} + ${med(c, (r) => per1e5(r.gcMajor, r.packets)).toFixed(1)}`;
    const cpu = (c: EmitCell) => med(c, (r) => r.cpuNs);
    lines.push(`| ${path === 'replay' ? `replayed segments (${MSS} B)` : 'released ACKs'} | ${n} | ${(ab(b) / 1024).toFixed(0)} KiB → ${(ab(a) / 1024).toFixed(0)} KiB | ${gc(b)} → ${gc(a)} | ${cpu(b).toFixed(0)} → ${cpu(a).toFixed(0)} (×${(cpu(b) / cpu(a)).toFixed(2)}) |`);
  }
  const loop = cells.find((c) => c.path === 'replay' && c.variant === 'loop')!;
  const direct = cells.find((c) => c.path === 'replay' && c.variant === 'direct')!;
  lines.push('', `The engine's send method called directly with one payload view for all segments: ${med(direct, (r) => per1e5(r.gcMinor, r.packets)).toFixed(1)} minor GCs per 10^5 segments, ${(med(direct, (r) => per1e5(r.arrayBufferGrowth, r.packets)) / 1024).toFixed(0)} KiB of ArrayBuffers.`);
  lines.push(`The replay loop alone (a view of the log chunk per segment, as the replay sender takes it; nothing built): ${med(loop, (r) => per1e5(r.gcMinor, r.packets)).toFixed(1)} minor GCs per 10^5 segments, ${(med(loop, (r) => per1e5(r.arrayBufferGrowth, r.packets)) / 1024).toFixed(0)} KiB of ArrayBuffers.`);
  process.stdout.write(`The gateway's emit path, before/after issue 12 (median of ${runs} runs; ${mb} MiB replayed, ${acks} ACKs released per run), Node ${process.versions.node}\n${lines.join('\n')}\n`);
  return 0;
}
