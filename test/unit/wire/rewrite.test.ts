import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TUN } from './fixtures/captured.js';
import {
  IPV4_DF, IPV4_FLAG_DF, IPV4_FRAG_OFFSET_MASK, IPV4_MF, IPV4_OFF_CHECKSUM, IPV4_OFF_DST, IPV4_OFF_FLAGS_FRAG, IPV4_OFF_SRC, IPV4_OFF_IDENTIFICATION,
  IPV4_OFF_PROTOCOL, IPV4_OFF_TOS, IPV4_OFF_TOTAL_LENGTH, IPV4_OFF_TTL, IPV4_OFF_VER_IHL, PacketInfo, TcpOptions,
  TCP_MIN_HEADER, TCP_OFF_ACK, TCP_OFF_CHECKSUM, TCP_OFF_DATA_OFFSET, TCP_OFF_DST_PORT, TCP_OFF_FLAGS, TCP_OFF_SEQ,
  TCP_OFF_SRC_PORT, TCP_OFF_URGENT, TCP_OFF_WINDOW, emitTcpPacket, fillIpv4HeaderChecksum, fillTcpChecksum,
  ipv4FragmentOffset, ipv4HeaderChecksumOk, ipv4HeaderLen, ipv4IsFragment, ipv4SetDst, ipv4SetSrc, ipv4Version,
  parsePacket, parseTcpOptions, parseTcpPacket, readU16, readU32, seqAdd, seqLe, seqLt, tcpChecksumOk, tcpFlagsString, tcpHeaderLen,
  tcpDropSackBelow, tcpDropSackBetween, tcpSetAck, tcpSetDstPort, tcpSetSeq, tcpSetSrcPort, tcpSetU32, tcpSetWindow, writeU16, writeU32, TCP_ACK, TCP_PSH,
} from '../../../src/wire/index.js';
import { arbTcpRepr } from './arbitraries.js';
import type { Seq } from '../../../src/wire/seq.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u16 = fc.integer({ min: 0, max: 0xffff });

/** The checksums a full recompute gives. */
function recomputed(p: Buffer): [number, number] {
  const q = Buffer.from(p);
  fillIpv4HeaderChecksum(q, 0);
  fillTcpChecksum(q, 0);
  return [q.readUInt16BE(10), q.readUInt16BE(36)];
}

/** A packet of `r` with the option bytes `raw` (padded to 4), parsed. */
function withOptions(r: Parameters<typeof emitTcpPacket>[0], raw: number[]): { p: Buffer; info: PacketInfo; o: TcpOptions } {
  const bytes = [...raw];
  while (bytes.length % 4) bytes.push(0);
  const p = emitTcpPacket({ ...r, options: Uint8Array.from(bytes) });
  const info = new PacketInfo();
  parsePacket(p, 0, p.length, info);
  const o = new TcpOptions();
  expect(parseTcpOptions(p, info.optOff, info.optLen, o)).toBe(true);
  return { p, info, o };
}

describe('rewrite: in-place field changes keep both checksums exact', () => {
  it('seq, ack, ports, window, addresses on random packets', () => {
    fc.assert(fc.property(arbTcpRepr, u32, u32, u16, u16, u16, u32, u32, (r, seq, ack, sp, dp, win, src, dst) => {
      const p = emitTcpPacket(r);
      tcpSetSeq(p, 20, seq as Seq);
      tcpSetAck(p, 20, ack as Seq);
      tcpSetSrcPort(p, 20, sp);
      tcpSetDstPort(p, 20, dp);
      tcpSetWindow(p, 20, win);
      ipv4SetSrc(p, 0, src, p.length - 20);
      ipv4SetDst(p, 0, dst, p.length - 20);
      // Read at the named offsets (the options may be malformed: parsePacket would refuse them).
      const t = 20;
      expect([readU32(p, t + TCP_OFF_SEQ), readU32(p, t + TCP_OFF_ACK), readU16(p, t + TCP_OFF_SRC_PORT), readU16(p, t + TCP_OFF_DST_PORT),
        readU16(p, t + TCP_OFF_WINDOW), readU32(p, IPV4_OFF_SRC), readU32(p, IPV4_OFF_DST)]).toEqual([seq, ack, sp, dp, win, src, dst]);
      expect([readU16(p, IPV4_OFF_CHECKSUM), readU16(p, t + TCP_OFF_CHECKSUM)]).toEqual(recomputed(p));
    }));
  });

  it('TSval/TSecr and SACK edges, at even and odd offsets inside the options', () => {
    const leads = [[], [1], [1, 1], [1, 1, 1]]; // NOPs before the option shift its alignment
    fc.assert(fc.property(arbTcpRepr, fc.constantFrom(...leads), u32, u32, u32, (r, lead, a, b, c) => {
      const ts = [8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
      const sack = [5, 10, 0, 0, 0, 3, 0, 0, 0, 4];
      const { p, o } = withOptions(r, [...lead, ...ts, ...sack]);
      expect((o.tsOff - 20) % 2).toBe(lead.length % 2);
      tcpSetU32(p, 20, o.tsOff + 2, a);
      tcpSetU32(p, 20, o.tsOff + 6, b);
      tcpSetU32(p, 20, o.sackOff + 4, c);
      expect([readU32(p, o.tsOff + 2), readU32(p, o.tsOff + 6), readU32(p, o.sackOff + 4)]).toEqual([a, b, c]);
      expect(tcpChecksumOk(p, 0)).toBe(true);
      expect(p.readUInt16BE(36)).toBe(recomputed(p)[1]);
    }));
  });

  it('dropping the SACK blocks at or below an ack (D-SACKs): the others kept in order, NOPs after, exact checksum, across the wrap', () => {
    const leads = [[], [1], [1, 1], [1, 1, 1]];
    const block = fc.tuple(u32, fc.integer({ min: 1, max: 70_000 }));
    fc.assert(fc.property(arbTcpRepr, fc.constantFrom(...leads), fc.array(block, { minLength: 1, maxLength: 3 }), u32, (r, lead, blocks, ack) => {
      const sack = [5, 2 + 8 * blocks.length];
      for (const [l, n] of blocks) {
        const b = Buffer.alloc(8);
        b.writeUInt32BE(l, 0);
        b.writeUInt32BE((l + n) >>> 0, 4);
        sack.push(...b);
      }
      const { p, info, o } = withOptions(r, [...lead, ...sack]);
      const below = blocks.filter(([l, n]) => seqLe(((l + n) >>> 0) as Seq, ack as Seq));
      const kept = blocks.filter((b) => !below.includes(b));
      expect(tcpDropSackBelow(p, 20, info.optOff, info.optLen, o.sackOff, o.sackCount, ack as Seq)).toBe(below.length);
      expect([readU16(p, IPV4_OFF_CHECKSUM), readU16(p, 20 + TCP_OFF_CHECKSUM)]).toEqual(recomputed(p));
      expect(parseTcpOptions(p, info.optOff, info.optLen, o)).toBe(true);
      const got: number[][] = [];
      for (let i = 0; i < o.sackCount; i++) got.push([readU32(p, o.sackOff + 8 * i), readU32(p, o.sackOff + 8 * i + 4)]);
      expect(got).toEqual(kept.map(([l, n]) => [l, (l + n) >>> 0]));
    }));
  });

  it('dropping the SACK blocks ending in (shown, ack] (an ack lowered to shown): the others kept in order, exact checksum, across the wrap', () => {
    const leads = [[], [1], [1, 1], [1, 1, 1]];
    const block = fc.tuple(fc.integer({ min: -3000, max: 3000 }), fc.integer({ min: 1, max: 1500 }));
    // Blocks and both acks near a base anywhere on the circle, so that they straddle the wrap.
    fc.assert(fc.property(arbTcpRepr, fc.constantFrom(...leads), fc.array(block, { minLength: 1, maxLength: 3 }), u32,
      fc.integer({ min: -2000, max: 0 }), fc.integer({ min: 0, max: 2000 }), (r, lead, blocks, base, lo, hi) => {
        const edges = blocks.map(([l, n]) => [(base + l) >>> 0, (base + l + n) >>> 0] as [number, number]);
        const sack = [5, 2 + 8 * edges.length];
        for (const [l, rr] of edges) {
          const b = Buffer.alloc(8);
          b.writeUInt32BE(l, 0);
          b.writeUInt32BE(rr, 4);
          sack.push(...b);
        }
        const { p, info, o } = withOptions(r, [...lead, ...sack]);
        const shown = ((base + lo) >>> 0) as Seq;
        const ack = ((base + hi) >>> 0) as Seq;
        const gone = edges.filter(([, rr]) => seqLt(shown, rr as Seq) && seqLe(rr as Seq, ack));
        expect(tcpDropSackBetween(p, 20, info.optOff, info.optLen, o.sackOff, o.sackCount, shown, ack)).toBe(gone.length);
        expect([readU16(p, IPV4_OFF_CHECKSUM), readU16(p, 20 + TCP_OFF_CHECKSUM)]).toEqual(recomputed(p));
        expect(parseTcpOptions(p, info.optOff, info.optLen, o)).toBe(true);
        const got: number[][] = [];
        for (let i = 0; i < o.sackCount; i++) got.push([readU32(p, o.sackOff + 8 * i), readU32(p, o.sackOff + 8 * i + 4)]);
        expect(got).toEqual(edges.filter((e) => !gone.includes(e)));
      }));
  });

  it('translating a real captured segment across the wrap (what a recovery does)', () => {
    const p = Buffer.from(TUN[5]!.ip, 'hex'); // server data with SACK {ISN+11, ISN+21}
    const info = new PacketInfo();
    parsePacket(p, 0, p.length, info);
    const delta = 0x80000010;
    tcpSetSeq(p, info.l4Off, seqAdd(info.seq, delta));
    const o = new TcpOptions();
    parseTcpOptions(p, info.optOff, info.optLen, o);
    tcpSetU32(p, info.l4Off, o.tsOff + 2, seqAdd(o.tsVal, 1000));
    expect(tcpChecksumOk(p, 0)).toBe(true);
    expect(ipv4HeaderChecksumOk(p, 0)).toBe(true);
    expect(readU32(p, info.l4Off + TCP_OFF_SEQ)).toBe(seqAdd(info.seq, delta));
  });
});

describe('offset tables: the named offsets and accessors address the right bits', () => {
  it('IPv4: every field round-trips through its offset and leaves neighbours alone', () => {
    const p = emitTcpPacket({ src: 1, dst: 2, srcPort: 3, dstPort: 4, seq: 5, ack: 6, flags: TCP_ACK, window: 7 });
    const flags = (): number => p[IPV4_OFF_FLAGS_FRAG]! >>> 5;
    expect([ipv4Version(p, 0), ipv4HeaderLen(p, 0), flags(), (readU16(p, IPV4_OFF_FLAGS_FRAG) & IPV4_DF) !== 0,
      (readU16(p, IPV4_OFF_FLAGS_FRAG) & IPV4_MF) !== 0, ipv4FragmentOffset(p, 0), p[IPV4_OFF_TTL]]).toEqual(
      [4, 20, IPV4_FLAG_DF, true, false, 0, 64]);
    expect(ipv4IsFragment(p, 0)).toBe(false);
    p[IPV4_OFF_TOS] = 0xb8;
    writeU16(p, IPV4_OFF_IDENTIFICATION, 0xbeef);
    writeU16(p, IPV4_OFF_FLAGS_FRAG, (1 << 13) | (0x1abc & IPV4_FRAG_OFFSET_MASK)); // flags 1 (MF), offset 0x1abc
    p[IPV4_OFF_TTL] = 3;
    writeU16(p, IPV4_OFF_TOTAL_LENGTH, 1234);
    writeU16(p, IPV4_OFF_CHECKSUM, 0xfeed);
    p[IPV4_OFF_PROTOCOL] = 17;
    p[IPV4_OFF_VER_IHL] = (p[IPV4_OFF_VER_IHL]! & 0xf0) | (24 >>> 2);
    expect([p[IPV4_OFF_TOS], readU16(p, IPV4_OFF_IDENTIFICATION), ipv4FragmentOffset(p, 0), flags(),
      (readU16(p, IPV4_OFF_FLAGS_FRAG) & IPV4_MF) !== 0, p[IPV4_OFF_TTL], readU16(p, IPV4_OFF_TOTAL_LENGTH),
      readU16(p, IPV4_OFF_CHECKSUM), p[IPV4_OFF_PROTOCOL], ipv4HeaderLen(p, 0), ipv4Version(p, 0), readU32(p, IPV4_OFF_SRC), readU32(p, IPV4_OFF_DST)]).toEqual(
      [0xb8, 0xbeef, 0x1abc, 1, true, 3, 1234, 0xfeed, 17, 24, 4, 1, 2]);
    expect(ipv4IsFragment(p, 0)).toBe(true);
    p[IPV4_OFF_VER_IHL] = (6 << 4) | (p[IPV4_OFF_VER_IHL]! & 0x0f);
    expect([ipv4Version(p, 0), ipv4HeaderLen(p, 0)]).toEqual([6, 24]);
  });

  it('TCP: every field round-trips through its offset, at any header offset', () => {
    const a = emitTcpPacket({ src: 1, dst: 2, srcPort: 3, dstPort: 4, seq: 5, ack: 6, flags: TCP_ACK, window: 7 });
    const b = emitTcpPacket({ src: 1, dst: 2, srcPort: 9, dstPort: 4, seq: 5, ack: 6, flags: TCP_ACK, window: 7 });
    expect(readU16(a, 20 + TCP_OFF_SRC_PORT)).toBe(3);
    expect(readU16(b, 20 + TCP_OFF_SRC_PORT)).toBe(9);
    const t = 20;
    writeU32(b, t + TCP_OFF_SEQ, 0xffffffff);
    writeU32(b, t + TCP_OFF_ACK, 0x80000000);
    b[t + TCP_OFF_FLAGS] = TCP_PSH | TCP_ACK;
    writeU16(b, t + TCP_OFF_WINDOW, 0xffff);
    writeU16(b, t + TCP_OFF_URGENT, 0x1234);
    writeU16(b, t + TCP_OFF_DST_PORT, 443);
    writeU16(b, t + TCP_OFF_SRC_PORT, 0);
    b[t + TCP_OFF_DATA_OFFSET] = ((24 >>> 2) << 4) | (b[t + TCP_OFF_DATA_OFFSET]! & 0x0f);
    writeU16(b, t + TCP_OFF_CHECKSUM, 0x4321);
    expect([readU32(b, t + TCP_OFF_SEQ), readU32(b, t + TCP_OFF_ACK), b[t + TCP_OFF_FLAGS], readU16(b, t + TCP_OFF_WINDOW),
      readU16(b, t + TCP_OFF_URGENT), readU16(b, t + TCP_OFF_DST_PORT), readU16(b, t + TCP_OFF_SRC_PORT), tcpHeaderLen(b, t),
      readU16(b, t + TCP_OFF_CHECKSUM), t + TCP_MIN_HEADER]).toEqual(
      [0xffffffff, 0x80000000, 0x18, 0xffff, 0x1234, 443, 0, 24, 0x4321, 40]);
    expect(tcpFlagsString(b[t + TCP_OFF_FLAGS]!)).toBe('P.');
    expect(tcpFlagsString(0)).toBe('none');
  });

  it('the offsets the repr writes are the ones the slow-path parser reads back', () => {
    const p = emitTcpPacket({ src: 1, dst: 2, srcPort: 3, dstPort: 4, seq: 5, ack: 6, flags: TCP_ACK, window: 7, tos: 0x10, id: 0x4242, urgent: 9, ttl: 33 });
    expect([p[IPV4_OFF_TOS], readU16(p, IPV4_OFF_IDENTIFICATION), p[IPV4_OFF_TTL], readU16(p, 20 + TCP_OFF_URGENT)]).toEqual([0x10, 0x4242, 33, 9]);
    expect(parseTcpPacket(p)).toMatchObject({ tos: 0x10, id: 0x4242, ttl: 33, urgent: 9 });
  });
});
