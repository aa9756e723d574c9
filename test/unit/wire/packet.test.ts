import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DropCounters, FIRST_DROP, PacketInfo, VERDICT_COUNT, Verdict, emitTcpPacket, encodeTcpOptions, fillIpv4HeaderChecksum,
  isDrop, parsePacket, parseTcpPacket, verdictName, WireError, type TcpPacketRepr,
} from '../../../src/wire/index.js';

const BASE: TcpPacketRepr = {
  src: 0x0a000001, dst: 0x0a000002, srcPort: 40000, dstPort: 80, seq: 0xfffffff0, ack: 0x10,
  flags: 0x18, window: 512, options: encodeTcpOptions({ timestamps: { tsVal: 1, tsEcr: 2 } }),
  payload: Buffer.from('hello'),
};

function pkt(r: Partial<TcpPacketRepr> = {}): Buffer {
  return Buffer.from(emitTcpPacket({ ...BASE, ...r }));
}

function parse(b: Buffer, len = b.length, off = 0): number {
  return parsePacket(b, off, len, new PacketInfo());
}

function ipv4(proto: number, l4: Uint8Array): Buffer {
  const b = Buffer.alloc(20 + l4.length);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b[8] = 64;
  b[9] = proto;
  b.writeUInt32BE(0x01020304, 12);
  b.writeUInt32BE(0x05060708, 16);
  b.set(l4, 20);
  fillIpv4HeaderChecksum(b, 0);
  return b;
}

describe('parsePacket: the good path', () => {
  it('fills PacketInfo for TCP', () => {
    const b = pkt();
    const i = new PacketInfo();
    expect(parsePacket(b, 0, b.length, i)).toBe(Verdict.IPV4_TCP);
    expect(i).toMatchObject({
      ipOff: 0, ipHdrLen: 20, totalLen: 57, proto: 6, src: 0x0a000001, dst: 0x0a000002, l4Off: 20, l4Len: 37,
      srcPort: 40000, dstPort: 80, seq: 0xfffffff0, ack: 0x10, tcpHdrLen: 32, flags: 0x18, window: 512,
      optOff: 40, optLen: 12, payloadOff: 52, payloadLen: 5,
    });
  });

  it('works at an offset, with an IP options header, and ignores link padding past totalLen', () => {
    const inner = pkt();
    // IHL 6: 4 bytes of IP options (NOP NOP NOP EOL) inserted after the 20-byte header.
    const withOpt = Buffer.concat([inner.subarray(0, 20), Buffer.from([1, 1, 1, 0]), inner.subarray(20)]);
    withOpt[0] = 0x46;
    withOpt.writeUInt16BE(withOpt.length, 2);
    fillIpv4HeaderChecksum(withOpt, 0);
    const framed = Buffer.concat([Buffer.alloc(14, 0xaa), withOpt, Buffer.alloc(9, 0)]); // 14-byte link header, padding
    const i = new PacketInfo();
    expect(parsePacket(framed, 14, framed.length - 14, i)).toBe(Verdict.IPV4_TCP);
    expect([i.ipOff, i.ipHdrLen, i.l4Off, i.totalLen, i.payloadOff, i.payloadLen]).toEqual([14, 24, 38, 61, 70, 5]);
  });

  it('classifies ICMP, other protocols and IPv6', () => {
    expect(parse(ipv4(1, new Uint8Array(8)))).toBe(Verdict.IPV4_ICMP);
    expect(parse(ipv4(17, new Uint8Array(8)))).toBe(Verdict.IPV4_OTHER);
    const v6 = Buffer.alloc(40);
    v6[0] = 0x60;
    expect(parse(v6)).toBe(Verdict.IPV6);
  });

  it('clears TCP fields when the next packet is not TCP', () => {
    const i = new PacketInfo();
    const t = pkt();
    parsePacket(t, 0, t.length, i);
    const icmp = ipv4(1, new Uint8Array(8));
    expect(parsePacket(icmp, 0, icmp.length, i)).toBe(Verdict.IPV4_ICMP);
    expect([i.srcPort, i.seq, i.payloadLen, i.flags]).toEqual([0, 0, 0, 0]);
  });
});

describe('parsePacket: every drop reason from a crafted packet', () => {
  it('TOO_SHORT: empty and sub-20-byte buffers, and ranges outside the buffer', () => {
    expect(parse(Buffer.alloc(0))).toBe(Verdict.TOO_SHORT);
    const b = pkt();
    expect(parse(b, 19)).toBe(Verdict.TOO_SHORT);
    expect(parse(b, 1)).toBe(Verdict.TOO_SHORT);
    expect(parsePacket(b, 10, b.length, new PacketInfo())).toBe(Verdict.TOO_SHORT); // runs past the buffer
    expect(parsePacket(b, -1, 20, new PacketInfo())).toBe(Verdict.TOO_SHORT);
  });

  it('BAD_VERSION for anything but 4 and 6', () => {
    for (const v of [0, 1, 5, 7, 15]) {
      const b = pkt();
      b[0] = (v << 4) | 5;
      expect(parse(b), `version ${v}`).toBe(Verdict.BAD_VERSION);
    }
  });

  it('BAD_IHL: below 5, and beyond the buffer', () => {
    for (const ihl of [0, 1, 4]) {
      const b = pkt();
      b[0] = 0x40 | ihl;
      expect(parse(b), `ihl ${ihl}`).toBe(Verdict.BAD_IHL);
    }
    const b = pkt();
    b[0] = 0x4f; // 60 bytes of header in a 24-byte buffer
    expect(parse(b, 24)).toBe(Verdict.BAD_IHL);
  });

  it('BAD_TOTAL_LENGTH: beyond the buffer, or shorter than the header', () => {
    const b = pkt();
    b.writeUInt16BE(b.length + 1, 2);
    expect(parse(b)).toBe(Verdict.BAD_TOTAL_LENGTH);
    const c = pkt();
    expect(parse(c, c.length - 1)).toBe(Verdict.BAD_TOTAL_LENGTH); // truncated capture
    const d = pkt();
    d.writeUInt16BE(19, 2);
    expect(parse(d)).toBe(Verdict.BAD_TOTAL_LENGTH);
  });

  it('IPV4_FRAGMENT: first fragment (MF) and later fragments; L4 is not parsed', () => {
    const mf = pkt();
    mf.writeUInt16BE(0x2000, 6);
    mf[20 + 12] = 0x10; // a TCP offset that would be bad: proves TCP is not looked at
    expect(parse(mf)).toBe(Verdict.IPV4_FRAGMENT);
    const later = pkt();
    later.writeUInt16BE(0x4000 | 185, 6);
    const i = new PacketInfo();
    expect(parsePacket(later, 0, later.length, i)).toBe(Verdict.IPV4_FRAGMENT);
    expect([i.src, i.dst, i.proto, i.srcPort]).toEqual([0x0a000001, 0x0a000002, 6, 0]);
    const df = pkt(); // DF alone is not a fragment
    expect(parse(df)).toBe(Verdict.IPV4_TCP);
  });

  it('TCP_TOO_SHORT: fewer than 20 bytes of TCP', () => {
    expect(parse(ipv4(6, new Uint8Array(19)))).toBe(Verdict.TCP_TOO_SHORT);
    expect(parse(ipv4(6, new Uint8Array(0)))).toBe(Verdict.TCP_TOO_SHORT);
  });

  it('BAD_TCP_OFFSET: data offset < 5, or beyond the segment', () => {
    for (const doff of [0, 1, 4]) {
      const b = pkt();
      b[32] = doff << 4;
      expect(parse(b), `doff ${doff}`).toBe(Verdict.BAD_TCP_OFFSET);
    }
    const b = pkt({ payload: new Uint8Array(0) }); // 32-byte header, nothing after it
    b[32] = 9 << 4; // 36 bytes
    expect(parse(b)).toBe(Verdict.BAD_TCP_OFFSET);
  });

  it('BAD_TCP_OPTION: length 0, length 1, running off the end, missing length byte', () => {
    const cases: Array<[string, number[]]> = [
      ['len 0', [2, 0, 0, 0]],
      ['len 1', [8, 1, 0, 0]],
      ['runs off the end', [1, 1, 8, 10]],
      ['no length byte', [1, 1, 1, 2]],
      ['after valid options', [2, 4, 5, 180, 1, 1, 5, 10]],
    ];
    for (const [name, o] of cases) {
      const b = pkt({ options: Uint8Array.from(o) });
      expect(parse(b), name).toBe(Verdict.BAD_TCP_OPTION);
    }
    // Bytes after EOL are padding, not options.
    expect(parse(pkt({ options: Uint8Array.from([0, 0xff, 0, 0]) }))).toBe(Verdict.IPV4_TCP);
    // A known kind with an odd length is structurally fine (Linux ignores it).
    expect(parse(pkt({ options: Uint8Array.from([2, 3, 5, 0]) }))).toBe(Verdict.IPV4_TCP);
  });

  it('ICMP_TOO_SHORT: fewer than 8 bytes of ICMP', () => {
    expect(parse(ipv4(1, new Uint8Array(7)))).toBe(Verdict.ICMP_TOO_SHORT);
  });

  it('names every verdict and splits drops from classes', () => {
    const names = new Set<string>();
    for (let v = 0; v < VERDICT_COUNT; v++) names.add(verdictName(v));
    expect(names.size).toBe(VERDICT_COUNT);
    expect([...names]).toEqual(Object.keys(Verdict));
    expect(verdictName(Verdict.BAD_IHL)).toBe('BAD_IHL');
    expect(verdictName(99)).toBe('UNKNOWN_99');
    expect(isDrop(Verdict.IPV4_TCP) || isDrop(Verdict.IPV6) || isDrop(Verdict.IPV4_FRAGMENT)).toBe(false);
    expect(isDrop(Verdict.TOO_SHORT) && isDrop(Verdict.ICMP_TOO_SHORT)).toBe(true);
    expect(FIRST_DROP).toBe(Verdict.TOO_SHORT);
  });
});

describe('parsePacket: fuzz', () => {
  const info = new PacketInfo();
  const verdicts = new Set<number>(Object.values(Verdict));

  it('random bytes: never throws, always a verdict', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), fc.nat(8), (b, off) => {
      const buf = Buffer.from(b);
      const o = Math.min(off, buf.length);
      const v = parsePacket(buf, o, buf.length - o, info);
      return verdicts.has(v as never);
    }), { numRuns: 2000 });
  });

  it('mutated valid packets: never throws; a TCP verdict means the offsets lie inside the packet', () => {
    const base = pkt({ options: encodeTcpOptions({ mss: 1460, sackPermitted: true, timestamps: { tsVal: 5, tsEcr: 6 }, wscale: 7 }) });
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.nat(255)), { maxLength: 6 }), fc.nat(base.length), (muts, cut) => {
      const b = Buffer.from(base);
      for (const [i, v] of muts) b[i] = v;
      const v = parsePacket(b, 0, cut, info);
      expect(verdicts.has(v as never)).toBe(true);
      if (v === Verdict.IPV4_TCP) {
        expect(info.payloadOff + info.payloadLen).toBe(info.ipOff + info.totalLen);
        expect(info.totalLen).toBeLessThanOrEqual(cut);
        expect(info.optOff + info.optLen).toBe(info.payloadOff);
      }
    }), { numRuns: 2000 });
  });
});

describe('DropCounters', () => {
  it('counts per verdict name with a stable shape', () => {
    const c = new DropCounters();
    c.count(Verdict.BAD_IHL);
    c.count(Verdict.BAD_IHL);
    c.count(Verdict.IPV4_TCP);
    c.count(1234);
    const s = c.snapshot();
    expect(s.BAD_IHL).toBe(2);
    expect(s.IPV4_TCP).toBe(1);
    expect(s.TOO_SHORT).toBe(0);
    expect(s.UNKNOWN).toBe(1);
    expect(c.drops).toBe(2);
    expect(Object.keys(s)).toEqual([...Object.keys(Verdict), 'UNKNOWN']);
    c.reset();
    expect(c.snapshot().BAD_IHL).toBe(0);
  });
});

describe('parseTcpPacket on bad input', () => {
  it('throws a WireError carrying the verdict name', () => {
    const b = pkt();
    b[0] = 0x44;
    let err: unknown;
    try {
      parseTcpPacket(b);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WireError);
    expect((err as WireError).code).toBe('FTCP_WIRE_BAD_IHL');
    expect((err as WireError).verdict).toBe(Verdict.BAD_IHL);
    expect((err as Error).message).toContain('BAD_IHL');
    expect(() => parseTcpPacket(ipv4(1, new Uint8Array(8)))).toThrow(/IPV4_ICMP/);
  });
});
