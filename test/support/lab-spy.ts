/**
 * What an attacker on the clients' network sees, for the hostile-input lab tests (issue 11):
 * a tcpdump capture on a lab interface, read back while it runs, summarised per connection
 * (4-tuple, both ISNs, the next sequence numbers and last acks seen each way), and the
 * forged packets built from it (`forge`) to send with test/support/inject.mjs (`inject`).
 *
 *   const spy = await startSpy(topo.namespaces.client, 'c0', dir);
 *   ... traffic ...
 *   const [c] = await spy.connections();               // as seen so far
 *   await inject(topo.namespaces.client, [forge({ ...fromClient(c), seq: c.clientNext, flags: TCP_ACK, payload })]);
 *   await spy.stop();
 */
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { startCapture } from '../../src/lab/procs.js';
import { execIn } from '../../src/lab/exec.js';
import { forEachPacket } from '../../src/inspect/capture.js';
import { Verdict } from '../../src/wire/packet.js';
import { emitTcpPacket, type TcpPacketRepr } from '../../src/wire/repr.js';
import { ipToU32, u32ToIp } from '../../src/wire/addr.js';
import { seqAdd, seqGt, type Seq } from '../../src/wire/seq.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';

const INJECT = fileURLToPath(new URL('./inject.mjs', import.meta.url));

/** One connection as the capture shows it (sequence numbers are raw, wrapping at 2^32). */
export interface SpiedConnection {
  client: string;
  clientPort: number;
  server: string;
  serverPort: number;
  clientIsn: Seq;
  /** -1 until the SYN-ACK was seen. */
  serverIsn: number;
  /** The sequence number after the highest client byte (or FIN) seen. */
  clientNext: Seq;
  /** The sequence number after the highest server byte (or FIN) seen. */
  serverNext: Seq;
  /** The highest ack the client sent / received. */
  ackFromClient: Seq;
  ackToClient: Seq;
  /** Client bytes seen so far (counted from the ISN, retransmissions once). */
  clientBytes: number;
  serverBytes: number;
  /** Segments carrying FIN / RST, each way. */
  clientFins: number;
  serverFins: number;
  rsts: number;
}

export interface Spy {
  /** Connections seen so far, in the order their SYN was seen. */
  connections(): Promise<SpiedConnection[]>;
  stop(): Promise<void>;
  readonly file: string;
}

/** Starts tcpdump on `iface` in namespace `ns`, writing into `dir`. */
export async function startSpy(ns: string, iface: string, dir: string, filter = 'tcp'): Promise<Spy> {
  const file = path.join(dir, `spy-${ns}-${iface}.pcap`);
  const cap = await startCapture(ns, iface, file, filter);
  let stopped = false;
  return {
    file,
    async connections() {
      // tcpdump -U writes each packet as it goes; a record cut at the end is skipped by readPcap.
      return summarise(await readFile(file));
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await cap.stop();
    },
  };
}

/** Reads a capture into per-connection summaries; the client is the side that sent the SYN. */
export function summarise(pcap: Buffer): SpiedConnection[] {
  const byKey = new Map<string, SpiedConnection>();
  forEachPacket(pcap, (v, p, _ts, wireLen) => {
    if (v !== Verdict.IPV4_TCP) return;
    // The capture keeps headers only (-s 128): the payload length is the one on the wire.
    const payloadLen = wireLen - (p.payloadOff - p.ipOff);
    const src = u32ToIp(p.src);
    const dst = u32ToIp(p.dst);
    const fwd = `${src}:${p.srcPort}>${dst}:${p.dstPort}`;
    const rev = `${dst}:${p.dstPort}>${src}:${p.srcPort}`;
    if (p.flags & TCP_SYN && !(p.flags & TCP_ACK)) {
      if (!byKey.has(fwd)) {
        byKey.set(fwd, {
          client: src, clientPort: p.srcPort, server: dst, serverPort: p.dstPort, clientIsn: p.seq, serverIsn: -1,
          clientNext: seqAdd(p.seq, 1), serverNext: 0 as Seq, ackFromClient: 0 as Seq, ackToClient: 0 as Seq,
          clientBytes: 0, serverBytes: 0, clientFins: 0, serverFins: 0, rsts: 0,
        });
      }
      return;
    }
    const fromClient = byKey.get(fwd);
    const c = fromClient ?? byKey.get(rev);
    if (c === undefined) return;
    if (p.flags & TCP_RST) c.rsts++;
    if (p.flags & TCP_SYN) {
      c.serverIsn = p.seq;
      c.serverNext = seqAdd(p.seq, 1);
      c.ackToClient = p.ack;
      return;
    }
    const end = seqAdd(p.seq, payloadLen + (p.flags & TCP_FIN ? 1 : 0));
    if (fromClient) {
      if (seqGt(end, c.clientNext)) {
        c.clientBytes += (end - c.clientNext) >>> 0;
        c.clientNext = end;
      }
      if (p.flags & TCP_FIN) c.clientFins++;
      if (p.flags & TCP_ACK && (c.ackFromClient === 0 || seqGt(p.ack, c.ackFromClient))) c.ackFromClient = p.ack;
    } else {
      if (c.serverIsn >= 0 && seqGt(end, c.serverNext)) {
        c.serverBytes += (end - c.serverNext) >>> 0;
        c.serverNext = end;
      }
      if (p.flags & TCP_FIN) c.serverFins++;
      if (p.flags & TCP_ACK && (c.ackToClient === 0 || seqGt(p.ack, c.ackToClient))) c.ackToClient = p.ack;
    }
  });
  return [...byKey.values()];
}

/** The addresses and ports of a packet from the client of `c` (spread into forge()). */
export function fromClient(c: SpiedConnection): Pick<TcpPacketRepr, 'src' | 'dst' | 'srcPort' | 'dstPort'> {
  return { src: ipToU32(c.client), dst: ipToU32(c.server), srcPort: c.clientPort, dstPort: c.serverPort };
}

/** The addresses and ports of a packet from the server of `c`. */
export function fromServer(c: SpiedConnection): Pick<TcpPacketRepr, 'src' | 'dst' | 'srcPort' | 'dstPort'> {
  return { src: ipToU32(c.server), dst: ipToU32(c.client), srcPort: c.serverPort, dstPort: c.clientPort };
}

export interface ForgeOptions extends TcpPacketRepr {
  /** XOR the TCP checksum with this (non-zero: a wrong checksum). */
  corruptTcpChecksum?: number;
  /** IP options (a multiple of 4, at most 40 bytes): the header grows, both checksums refilled. */
  ipOptions?: Uint8Array;
}

/** A forged IPv4/TCP packet as hex (for inject()); checksums right unless told otherwise. */
export function forge(o: ForgeOptions): string {
  let pkt = emitTcpPacket(o);
  if (o.ipOptions !== undefined && o.ipOptions.length > 0) {
    const n = o.ipOptions.length;
    if (n % 4 !== 0 || n > 40) throw new RangeError(`IP options: ${n} bytes is not a multiple of 4 up to 40`);
    const b = Buffer.alloc(pkt.length + n);
    pkt.copy(b, 0, 0, 20);
    b.set(o.ipOptions, 20);
    pkt.copy(b, 20 + n, 20);
    b[0] = 0x40 | ((20 + n) >>> 2);
    b.writeUInt16BE(b.length, 2);
    b.writeUInt16BE(0, 10);
    b.writeUInt16BE(ipHeaderChecksum(b, 20 + n), 10);
    pkt = b; // the TCP checksum does not cover the IP header's options: unchanged
  }
  if (o.corruptTcpChecksum) {
    const t = (pkt[0]! & 0x0f) * 4 + 16;
    pkt.writeUInt16BE(pkt.readUInt16BE(t) ^ (o.corruptTcpChecksum & 0xffff), t);
  }
  return pkt.toString('hex');
}

function ipHeaderChecksum(b: Buffer, len: number): number {
  let acc = 0;
  for (let i = 0; i < len; i += 2) acc += b.readUInt16BE(i);
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return ~acc & 0xffff;
}

/** Sends the hex packets from inside `ns` (raw socket, headers as written). */
export async function inject(ns: string, packets: string[]): Promise<{ sent: number; errors: number; ms: number }> {
  const r = await execIn(ns, process.execPath, [INJECT, 'send', ...packets], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`inject in ${ns}: exit ${r.code}: ${r.stderr.slice(0, 500)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { sent: number; errors: number; ms: number };
}

/** N spoofed SYNs from random sources in `srcNet`/16 toward dst (see inject.mjs flood). */
export async function synFlood(ns: string, dst: string, srcNet: string, count: number, rate: number, seed = 1): Promise<{ sent: number; errors: number; ms: number }> {
  const timeoutMs = Math.ceil((count / rate) * 1000) + 60_000;
  const r = await execIn(ns, process.execPath, [INJECT, 'flood', '--dst', dst, '--src-net', srcNet, '--count', String(count), '--rate', String(rate), '--seed', String(seed)], { timeoutMs });
  if (r.code !== 0) throw new Error(`flood in ${ns}: exit ${r.code}: ${r.stderr.slice(0, 500)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { sent: number; errors: number; ms: number };
}
