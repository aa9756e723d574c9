/**
 * Mutations of genuine IPv4/TCP packets, for the gateway fuzz (src/fuzz/engine.ts).
 *
 * Each mutation takes a copy of a genuine packet (never the original) and changes it the way
 * a forger or a broken link would: bit flips; field changes (flags, sequence and
 * acknowledgement numbers near the flow's real numbers and far from them, IHL and data
 * offset, lengths, windows, ports, addresses, fragment bits); IP options and TCP options
 * inserted (well-formed, malformed, with values aimed at the parsers); truncation; payload
 * changes. `fixChecksums` then recomputes both checksums when the packet is still well
 * enough formed to have them, so half of the mutated packets get past checksum verification
 * and reach the flow logic.
 *
 * Every function here is total on any input buffer (the fuzz would report its own crash
 * as the gateway's otherwise).
 */
import { fillIpv4HeaderChecksum, fillTcpChecksum } from '../wire/checksum.js';
import { emitIcmpError } from '../wire/repr.js';
import {
  TCP_ACK, TCP_FIN, TCP_MIN_HEADER, TCP_OFF_ACK, TCP_OFF_DATA_OFFSET, TCP_OFF_DST_PORT, TCP_OFF_FLAGS, TCP_OFF_SEQ,
  TCP_OFF_SRC_PORT, TCP_OFF_URGENT, TCP_OFF_WINDOW, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG, tcpHeaderLen,
} from '../wire/tcp.js';
import {
  IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPV4_MF, IPV4_MIN_HEADER, IPV4_OFF_DST, IPV4_OFF_FLAGS_FRAG, IPV4_OFF_PROTOCOL,
  IPV4_OFF_SRC, IPV4_OFF_TOTAL_LENGTH, IPV4_OFF_VER_IHL, ipv4HeaderLen, ipv4Version,
} from '../wire/ipv4.js';
import { ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_HEADER_LEN } from '../wire/icmp.js';

export type Rng = () => number;

/** A random integer in [0, n). */
export function rint(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rint(rng, xs.length)]!;
}

/** Offsets of the TCP header in a packet whose IHL field is trusted (clamped into the buffer). */
function l4(b: Buffer): number {
  return Math.min(ipv4HeaderLen(b, 0), b.length);
}

function setTotalLength(b: Buffer): void {
  if (b.length >= IPV4_OFF_TOTAL_LENGTH + 2) b.writeUInt16BE(Math.min(b.length, 0xffff), IPV4_OFF_TOTAL_LENGTH);
}

/** A number near `v` (±n), or anywhere in 32 bits. */
function nearOrFar(rng: Rng, v: number): number {
  const r = rng();
  if (r < 0.35) return (v + rint(rng, 9) - 4) >>> 0;
  if (r < 0.6) return (v + rint(rng, 4001) - 2000) >>> 0;
  if (r < 0.75) return (v + (rng() < 0.5 ? 1 : -1) * (65536 << rint(rng, 8))) >>> 0;
  if (r < 0.85) return (v ^ 0x80000000) >>> 0;
  return rint(rng, 0x100000000) >>> 0;
}

/** Inserts `opt` (a multiple of 4 bytes) after the IPv4 header's first 20 bytes. */
function insertIpOptions(b: Buffer, opt: Buffer): Buffer {
  const hl = l4(b);
  const out = Buffer.concat([b.subarray(0, hl), opt, b.subarray(hl)]);
  out[IPV4_OFF_VER_IHL] = (out[IPV4_OFF_VER_IHL]! & 0xf0) | Math.min(15, (hl + opt.length) >> 2);
  setTotalLength(out);
  return out;
}

/** Inserts TCP option bytes `opt` (a multiple of 4) at the end of the TCP header. */
function insertTcpOptions(b: Buffer, opt: Buffer): Buffer {
  const t = l4(b);
  if (t + TCP_OFF_DATA_OFFSET + 1 > b.length) return b;
  const thl = Math.min(tcpHeaderLen(b, t), b.length - t);
  const at = t + thl;
  const out = Buffer.concat([b.subarray(0, at), opt, b.subarray(at)]);
  out[t + TCP_OFF_DATA_OFFSET] = (Math.min(15, (thl + opt.length) >> 2) << 4) | (out[t + TCP_OFF_DATA_OFFSET]! & 0x0f);
  setTotalLength(out);
  return out;
}

function randomBytes(rng: Rng, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) out[i] = rint(rng, 256);
  return out;
}

function pad4(b: Buffer, fill = 1): Buffer {
  const n = (4 - (b.length % 4)) % 4;
  return n === 0 ? b : Buffer.concat([b, Buffer.alloc(n, fill)]);
}

/** IP options: NOPs, EOL, garbage, record-route/timestamp shaped, lengths that lie. */
function ipOptions(rng: Rng): Buffer {
  const len = 4 * (1 + rint(rng, 10));
  switch (rint(rng, 5)) {
    case 0: return Buffer.alloc(len, 1); // NOP ... (issue 11 item 1's packet)
    case 1: return Buffer.alloc(len, 0); // EOL
    case 2: return randomBytes(rng, len);
    case 3: { // record route with a length past the end
      const b = Buffer.alloc(len, 0);
      b[0] = 7;
      b[1] = rint(rng, 256);
      b[2] = 4;
      return b;
    }
    default: { // timestamp option, pointer anywhere
      const b = Buffer.alloc(len, 0);
      b[0] = 68;
      b[1] = Math.min(len, 4 + 4 * rint(rng, 9));
      b[2] = rint(rng, 256);
      return b;
    }
  }
}

/** TCP options aimed at the option parsers and at the rewriters (SACK, timestamps, window scale). */
function tcpOptions(rng: Rng, seqNear: number, ackNear: number): Buffer {
  switch (rint(rng, 9)) {
    case 0: return pad4(randomBytes(rng, 1 + rint(rng, 40)));
    case 1: { // SACK blocks near the real numbers (or anywhere)
      const n = 1 + rint(rng, 4);
      const b = Buffer.alloc(2 + 8 * n + 2);
      b[0] = 1;
      b[1] = 1;
      b[2] = 5;
      b[3] = rng() < 0.8 ? 2 + 8 * n : rint(rng, 256);
      for (let i = 0; i < n; i++) {
        const l = nearOrFar(rng, rng() < 0.5 ? seqNear : ackNear);
        b.writeUInt32BE(l, 4 + 8 * i);
        b.writeUInt32BE(rng() < 0.7 ? (l + rint(rng, 3000)) >>> 0 : rint(rng, 0x100000000) >>> 0, 8 + 8 * i);
      }
      return pad4(b.subarray(0, Math.min(b.length, 40)));
    }
    case 2: { // timestamps with odd values
      const b = Buffer.alloc(12);
      b[0] = 1;
      b[1] = 1;
      b[2] = 8;
      b[3] = rng() < 0.8 ? 10 : rint(rng, 256);
      b.writeUInt32BE(rint(rng, 0x100000000) >>> 0, 4);
      b.writeUInt32BE(rint(rng, 0x100000000) >>> 0, 8);
      return b;
    }
    case 3: return Buffer.from([3, 3, rint(rng, 256), 1]); // window scale, any shift
    case 4: return Buffer.from([2, 4, rint(rng, 256), rint(rng, 256)]); // MSS
    case 5: return Buffer.from([pick(rng, [2, 3, 4, 5, 8, 30, 34, 254]), pick(rng, [0, 1, 41, 255]), 1, 1]); // lying lengths
    case 6: return Buffer.alloc(4 * (1 + rint(rng, 10)), 1); // NOPs
    case 7: return Buffer.from([0, rint(rng, 256), rint(rng, 256), rint(rng, 256)]); // EOL then garbage
    default: return Buffer.from([4, 2, 1, 1]); // SACK-permitted outside a SYN
  }
}

/** The mutation names (counted by the engine). */
export const MUTATIONS = [
  'bitflip', 'flags', 'seq', 'ack', 'ihl', 'ipOptions', 'dataOffset', 'tcpOptions', 'totalLength',
  'truncate', 'payload', 'ports', 'swapDirection', 'address', 'window', 'fragment', 'protocol', 'urgent',
] as const;
export type Mutation = (typeof MUTATIONS)[number];

/**
 * Applies mutation `m` to a copy of `pkt` (a genuine IPv4/TCP packet with IHL 5 or more).
 * Returns the mutated packet (possibly a new buffer of another length).
 */
export function mutate(rng: Rng, m: Mutation, pkt: Buffer): Buffer {
  let b: Buffer = Buffer.from(pkt);
  const t = l4(b);
  const hasTcp = t + TCP_MIN_HEADER <= b.length;
  switch (m) {
    case 'bitflip': {
      const n = 1 + rint(rng, 8);
      for (let i = 0; i < n; i++) {
        const at = rint(rng, b.length);
        b[at] = b[at]! ^ (1 << rint(rng, 8));
      }
      break;
    }
    case 'flags':
      if (!hasTcp) break;
      if (rng() < 0.5) b[t + TCP_OFF_FLAGS] = rint(rng, 256);
      else b[t + TCP_OFF_FLAGS] = b[t + TCP_OFF_FLAGS]! ^ pick(rng, [TCP_SYN, TCP_FIN, TCP_RST, TCP_ACK, TCP_PSH, TCP_URG, TCP_SYN | TCP_FIN, TCP_RST | TCP_FIN]);
      break;
    case 'seq':
      if (hasTcp) b.writeUInt32BE(nearOrFar(rng, b.readUInt32BE(t + TCP_OFF_SEQ)), t + TCP_OFF_SEQ);
      break;
    case 'ack':
      if (hasTcp) {
        b.writeUInt32BE(nearOrFar(rng, b.readUInt32BE(t + TCP_OFF_ACK)), t + TCP_OFF_ACK);
        if (rng() < 0.3) b[t + TCP_OFF_FLAGS] = b[t + TCP_OFF_FLAGS]! | TCP_ACK;
      }
      break;
    case 'ihl':
      b[IPV4_OFF_VER_IHL] = (b[IPV4_OFF_VER_IHL]! & 0xf0) | rint(rng, 16);
      break;
    case 'ipOptions':
      b = insertIpOptions(b, ipOptions(rng));
      break;
    case 'dataOffset':
      if (hasTcp) b[t + TCP_OFF_DATA_OFFSET] = (rint(rng, 16) << 4) | (b[t + TCP_OFF_DATA_OFFSET]! & 0x0f);
      break;
    case 'tcpOptions':
      if (hasTcp) b = insertTcpOptions(b, tcpOptions(rng, b.readUInt32BE(t + TCP_OFF_SEQ), b.readUInt32BE(t + TCP_OFF_ACK)));
      break;
    case 'totalLength': {
      const r = rng();
      if (b.length < IPV4_OFF_TOTAL_LENGTH + 2) break;
      b.writeUInt16BE(r < 0.4 ? Math.max(0, Math.min(0xffff, b.length + rint(rng, 41) - 20)) : r < 0.7 ? rint(rng, 60) : rint(rng, 0x10000), IPV4_OFF_TOTAL_LENGTH);
      break;
    }
    case 'truncate': {
      b = b.subarray(0, rint(rng, b.length));
      if (rng() < 0.5) setTotalLength(b); // a consistent short packet, or one whose length lies
      break;
    }
    case 'payload': {
      const r = rng();
      if (r < 0.4 && b.length > t + TCP_MIN_HEADER) {
        for (let i = t + TCP_MIN_HEADER; i < b.length; i++) if (rng() < 0.2) b[i] = rint(rng, 256);
      } else if (r < 0.8) {
        b = Buffer.concat([b, randomBytes(rng, 1 + rint(rng, rng() < 0.9 ? 100 : 1400))]);
        setTotalLength(b);
      } else {
        b = b.subarray(0, Math.max(Math.min(b.length, t + TCP_MIN_HEADER), b.length - 1 - rint(rng, 200)));
        setTotalLength(b);
      }
      break;
    }
    case 'ports':
      if (hasTcp) {
        const at = t + (rng() < 0.5 ? TCP_OFF_SRC_PORT : TCP_OFF_DST_PORT);
        b.writeUInt16BE(rng() < 0.6 ? (b.readUInt16BE(at) + rint(rng, 5) - 2) & 0xffff : rint(rng, 0x10000), at);
      }
      break;
    case 'swapDirection':
      if (b.length >= IPV4_MIN_HEADER) {
        const s = b.readUInt32BE(IPV4_OFF_SRC);
        b.writeUInt32BE(b.readUInt32BE(IPV4_OFF_DST), IPV4_OFF_SRC);
        b.writeUInt32BE(s, IPV4_OFF_DST);
      }
      if (hasTcp) {
        const sp = b.readUInt16BE(t + TCP_OFF_SRC_PORT);
        b.writeUInt16BE(b.readUInt16BE(t + TCP_OFF_DST_PORT), t + TCP_OFF_SRC_PORT);
        b.writeUInt16BE(sp, t + TCP_OFF_DST_PORT);
      }
      break;
    case 'address':
      if (b.length >= IPV4_MIN_HEADER) {
        const at = rng() < 0.5 ? IPV4_OFF_SRC : IPV4_OFF_DST;
        b.writeUInt32BE(rng() < 0.6 ? (b.readUInt32BE(at) + rint(rng, 5) - 2) >>> 0 : rint(rng, 0x100000000) >>> 0, at);
      }
      break;
    case 'window':
      if (hasTcp) b.writeUInt16BE(pick(rng, [0, 1, 0xffff, rint(rng, 0x10000)]), t + TCP_OFF_WINDOW);
      break;
    case 'fragment':
      // MF, a non-zero offset, both, anything, the reserved bit.
      if (b.length >= IPV4_OFF_FLAGS_FRAG + 2) {
        b.writeUInt16BE(pick(rng, [IPV4_MF, 0x0001, IPV4_MF | rint(rng, 0x2000), rint(rng, 0x10000), 0x8000]), IPV4_OFF_FLAGS_FRAG);
      }
      break;
    case 'protocol':
      if (rng() < 0.5 && b.length > IPV4_OFF_PROTOCOL) b[IPV4_OFF_PROTOCOL] = pick(rng, [IPPROTO_ICMP, IPPROTO_UDP, 0, 255, rint(rng, 256)]);
      else b[IPV4_OFF_VER_IHL] = (rint(rng, 16) << 4) | (b[IPV4_OFF_VER_IHL]! & 0x0f); // the version
      break;
    case 'urgent':
      if (hasTcp) {
        b[t + TCP_OFF_FLAGS] = b[t + TCP_OFF_FLAGS]! | TCP_URG;
        b.writeUInt16BE(rint(rng, 0x10000), t + TCP_OFF_URGENT);
      }
      break;
  }
  return b;
}

/**
 * Recomputes the IPv4 header checksum and the TCP checksum where the packet still has the
 * structure they cover (IHL within the buffer, total length within the buffer, a TCP header
 * for the TCP one). Returns true when the TCP checksum was filled.
 */
export function fixChecksums(b: Buffer): boolean {
  if (b.length < IPV4_MIN_HEADER || ipv4Version(b, 0) !== 4) return false;
  const hl = ipv4HeaderLen(b, 0);
  if (hl < IPV4_MIN_HEADER || hl > b.length) return false;
  fillIpv4HeaderChecksum(b, 0);
  const total = b.readUInt16BE(IPV4_OFF_TOTAL_LENGTH);
  if (b[IPV4_OFF_PROTOCOL] !== IPPROTO_TCP || total > b.length || total < hl + TCP_MIN_HEADER) return false;
  fillTcpChecksum(b, 0);
  return true;
}

/** ICMP types/codes a router or host on either side might send (errors that quote a packet). */
const ICMP_KINDS: ReadonlyArray<[number, number]> = [
  [3, 0], [3, 1], [3, 3], [3, 4], [3, 10], [3, 13], [11, 0], [12, 0], [4, 0], [5, 1],
];

/**
 * An ICMP error quoting `quoted` (a genuine packet of a protected flow), from `from`, sent to
 * either end; sometimes with a short or garbled quote.
 */
export function icmpAbout(rng: Rng, quoted: Buffer, from: number): Buffer {
  const [type, code] = pick(rng, ICMP_KINDS);
  const toSource = rng() < 0.8;
  const dst = quoted.length >= IPV4_MIN_HEADER ? quoted.readUInt32BE(toSource ? IPV4_OFF_SRC : IPV4_OFF_DST) : 0;
  const r = rng();
  // RFC 792's minimum quote (the IP header and 8 bytes), all of it, or a header cut short.
  const quoteLen = r < 0.5 ? IPV4_MIN_HEADER + 8 : r < 0.8 ? quoted.length : IPV4_MIN_HEADER + rint(rng, 8);
  const b = emitIcmpError(quoted.length >= IPV4_MIN_HEADER ? quoted : Buffer.concat([quoted, Buffer.alloc(IPV4_MIN_HEADER - quoted.length)]), {
    src: from, dst, type, code, quoteLen,
    mtu: type === ICMP_DEST_UNREACH && code === ICMP_FRAG_NEEDED ? pick(rng, [0, 68, 576, 1280, 1500, 0xffff]) : undefined,
  });
  if (rng() < 0.25) {
    // A garbled quote (its IHL, ports or protocol), checksum left wrong or fixed.
    const quote = IPV4_MIN_HEADER + ICMP_HEADER_LEN;
    const at = quote + rint(rng, Math.max(1, b.length - quote));
    if (at < b.length) b[at] = rint(rng, 256);
  }
  return b;
}
