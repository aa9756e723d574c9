/**
 * `scripts/bench checksum`: the CPU cost of the gateway's checksum verification per
 * segment (checksumVerdict: IPv4 header + TCP with the pseudo-header), by segment size,
 * on the 32-bit word path (an aligned packet, as the TUN's slots are) and on the byte path
 * (the same packet at an odd address: how every sum was done before). CPU time of this
 * process (process.cpuUsage), not wall time, so that other load on the machine does not
 * count; the median of --runs runs of --iterations verifications each.
 *
 *   scripts/bench checksum [--runs 7] [--iterations 200000] [--json]
 */
import { parseCli, parseNumberFlag } from '../cli/args.js';
import { emitTcpPacket } from '../wire/repr.js';
import { PacketInfo, Verdict, checksumVerdict, parsePacket } from '../wire/packet.js';
import { summarize } from './stats.js';

const HELP = `usage: scripts/bench checksum [--runs N] [--iterations N] [--json]

CPU time per verified segment (IPv4 header and TCP checksums, as the gateway does for
protected traffic), by segment size, aligned (32-bit words) and at an odd address (bytes).
  --runs N         runs per cell, the median is shown (default 7, at most 100)
  --iterations N   verifications per run (default 200000, at most 10000000)
  --json           one JSON document`;

const SIZES = [40, 576, 1500, 9000, 65535];

export interface ChecksumCell { bytes: number; layout: 'aligned' | 'odd'; nsPerSegment: number; runs: number[] }

/** A valid segment of `total` bytes (IPv4 + TCP header + payload) at `at` in a fresh buffer. */
function segmentAt(total: number, at: number): { buf: Buffer; off: number } {
  const payload = Buffer.alloc(total - 40);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + 3) & 0xff;
  const p = emitTcpPacket({ src: 0xc6120102, dst: 0xc6120202, srcPort: 40000, dstPort: 5001, seq: 1, ack: 1, flags: 0x10, window: 512, payload });
  const buf = Buffer.alloc(total + 8);
  p.copy(buf, at);
  return { buf, off: at };
}

export function measureChecksums(runs: number, iterations: number): ChecksumCell[] {
  const info = new PacketInfo();
  const cells: ChecksumCell[] = [];
  const cases = SIZES.flatMap((bytes) => (['aligned', 'odd'] as const).map((layout) => ({ bytes, layout, ...segmentAt(bytes, layout === 'aligned' ? 0 : 1) })));
  // Warm-up: every case once, so the JIT has seen all of them before anything is timed.
  for (const c of cases) {
    if (parsePacket(c.buf, c.off, c.bytes, info) !== Verdict.IPV4_TCP) throw new Error(`bench checksum: a ${c.bytes}-byte segment did not parse`);
    for (let i = 0; i < Math.max(1000, iterations >>> 3); i++) checksumVerdict(c.buf, info, false);
  }
  for (const { bytes, layout, buf, off } of cases) {
    {
      parsePacket(buf, off, bytes, info);
      const per: number[] = [];
      for (let r = 0; r < runs; r++) {
        let ok = 0;
        const t0 = process.cpuUsage();
        for (let i = 0; i < iterations; i++) if (checksumVerdict(buf, info, false) === Verdict.IPV4_TCP) ok++;
        const t = process.cpuUsage(t0);
        if (ok !== iterations) throw new Error('bench checksum: a valid segment failed verification');
        per.push(((t.user + t.system) * 1000) / iterations);
      }
      cells.push({ bytes, layout, nsPerSegment: summarize(per)!.median, runs: per });
    }
  }
  return cells;
}

export async function checksumMain(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    runs: { type: 'string' }, iterations: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const runs = parseNumberFlag(values.runs, '--runs', { dflt: 7, min: 1, max: 100 });
  const iterations = parseNumberFlag(values.iterations, '--iterations', { dflt: 200_000, min: 1000, max: 10_000_000 });
  const cells = measureChecksums(runs, iterations);
  if (values.json) {
    process.stdout.write(JSON.stringify({ node: process.versions.node, runs, iterations, cells }, null, 2) + '\n');
    return 0;
  }
  const lines = ['| segment (bytes) | aligned: 32-bit words (ns) | odd address: bytes (ns) | words vs bytes |', '| ---: | ---: | ---: | ---: |'];
  for (const bytes of SIZES) {
    const a = cells.find((c) => c.bytes === bytes && c.layout === 'aligned')!;
    const o = cells.find((c) => c.bytes === bytes && c.layout === 'odd')!;
    lines.push(`| ${bytes} | ${a.nsPerSegment.toFixed(0)} | ${o.nsPerSegment.toFixed(0)} | ×${(o.nsPerSegment / a.nsPerSegment).toFixed(2)} |`);
  }
  process.stdout.write(`CPU time per verified segment (median of ${runs} runs of ${iterations}), Node ${process.versions.node}\n${lines.join('\n')}\n`);
  return 0;
}
