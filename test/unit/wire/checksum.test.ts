import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { arbTcpRepr, u16, u32 } from './arbitraries.js';
import {
  checksum, csumReplace16, csumReplace32, emitTcpPacket, fillIpv4HeaderChecksum, fillTcpChecksum, foldSum,
  ipv4HeaderChecksumOk, onesSum, tcpChecksum, tcpChecksumOk,
} from '../../../src/wire/index.js';

/** Reference RFC 1071 checksum written independently (16-bit words, big-endian, fold at end). */
function refChecksum(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) + (i + 1 < b.length ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s >>> 16) + (s & 0xffff);
  return ~s & 0xffff;
}

describe('checksum (RFC 1071)', () => {
  it('matches the RFC 1071 section 3 example', () => {
    const b = Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
    expect(foldSum(onesSum(b, 0, b.length))).toBe(0xddf2);
    expect(checksum(b, 0, b.length)).toBe(0x220d);
  });

  it('handles odd lengths (a zero pad byte) and offsets', () => {
    const b = Uint8Array.from([0xaa, 0x12, 0x34, 0x56]);
    expect(checksum(b, 1, 3)).toBe(~(0x1234 + 0x5600) & 0xffff);
  });

  it('agrees with a reference implementation, and pieces add up', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(150), (b, cut) => {
      expect(checksum(b, 0, b.length)).toBe(refChecksum(b));
      const c = Math.min(cut * 2, b.length - (b.length & 1)); // an even split point
      expect(checksum(b, c, b.length - c, onesSum(b, 0, c))).toBe(refChecksum(b));
    }));
  });

  it('the 32-bit word path (64 bytes and more) agrees at every alignment, across buffers', () => {
    // Long data, placed at each offset mod 4 inside larger buffers (the Uint32Array view is
    // per underlying ArrayBuffer: switching buffers must switch the view).
    fc.assert(fc.property(fc.uint8Array({ minLength: 60, maxLength: 3000 }), fc.nat(7), fc.nat(7), (b, lead, pad) => {
      const ab = new ArrayBuffer(b.length + lead + pad + 8);
      const host = new Uint8Array(ab, lead & 4, b.length + (lead & 3) + pad);
      host.set(b, lead & 3);
      expect(checksum(host, lead & 3, b.length)).toBe(refChecksum(b));
      const c = Buffer.from(b); // another (pooled or own) buffer
      expect(checksum(c, 0, c.length)).toBe(refChecksum(b));
      expect(foldSum(onesSum(host, lead & 3, b.length, 0x1234))).toBe(foldSum(onesSum(c, 0, c.length) + 0x1234));
    }), { numRuns: 300 });
    // All ones and all zeros (the folded sums 0xFFFF and 0 stay apart).
    for (const fill of [0x00, 0xff]) {
      const z = new Uint8Array(1500).fill(fill);
      expect(checksum(z, 0, z.length)).toBe(refChecksum(z));
      expect(checksum(z, 2, 1400)).toBe(refChecksum(z.subarray(2, 1402)));
    }
  });

  it('folds large accumulators', () => {
    expect(foldSum(0xffff * 100000)).toBe(0xffff);
    expect(foldSum(0x1_0000_0000 * 3 + 5)).toBe(8);
    expect(foldSum(0)).toBe(0);
  });

  it('IPv4 header and TCP checksums fill and verify', () => {
    fc.assert(fc.property(arbTcpRepr, (r) => {
      const p = emitTcpPacket(r);
      expect(ipv4HeaderChecksumOk(p, 0)).toBe(true);
      expect(tcpChecksumOk(p, 0)).toBe(true);
      expect(p.readUInt16BE(10)).toBe(refChecksumWithZero(p, 0, 20, 10));
      const tcpLen = p.length - 20;
      const pseudo = Buffer.concat([p.subarray(12, 20), Buffer.from([0, 6, tcpLen >> 8, tcpLen & 0xff])]);
      expect(tcpChecksum(p, 0)).toBe(refChecksumWithZero(Buffer.concat([pseudo, p.subarray(20)]), 0, pseudo.length + tcpLen, 12 + 16));
      // Any flipped bit is caught.
      const q = Buffer.from(p);
      q[q.length - 1]! ^= 0x40;
      expect(tcpChecksumOk(q, 0)).toBe(false);
    }));
  });
});

/** Reference checksum of b[off, off+len) with the 16-bit field at csumAt treated as zero. */
function refChecksumWithZero(b: Uint8Array, off: number, len: number, csumAt: number): number {
  const c = Uint8Array.from(b.subarray(off, off + len));
  c[csumAt] = 0;
  c[csumAt + 1] = 0;
  return refChecksum(c);
}

describe('incremental update (RFC 1624) equals a full recompute', () => {
  const fields16 = [
    { at: 20 + 0, name: 'TCP source port' },
    { at: 20 + 2, name: 'TCP destination port' },
    { at: 20 + 14, name: 'TCP window' },
    { at: 20 + 18, name: 'TCP urgent pointer' },
  ];

  it('csumReplace16 on random packets and values, 0x0000/0xFFFF included', () => {
    fc.assert(fc.property(arbTcpRepr, fc.constantFrom(...fields16), u16, (r, f, v) => {
      const p = emitTcpPacket(r);
      const old = p.readUInt16BE(f.at);
      p.writeUInt16BE(v, f.at);
      const inc = csumReplace16(p.readUInt16BE(36), old, v);
      fillTcpChecksum(p, 0);
      expect(inc).toBe(p.readUInt16BE(36));
    }));
  });

  it('csumReplace32 for seq, ack and the addresses (pseudo-header: both checksums)', () => {
    fc.assert(fc.property(arbTcpRepr, fc.constantFrom(24, 28, 12, 16), u32, (r, at, v) => {
      const p = emitTcpPacket(r);
      const old = p.readUInt32BE(at);
      p.writeUInt32BE(v, at);
      const incTcp = csumReplace32(p.readUInt16BE(36), old, v);
      const incIp = csumReplace32(p.readUInt16BE(10), old, v);
      fillTcpChecksum(p, 0);
      expect(incTcp).toBe(p.readUInt16BE(36));
      if (at < 20) {
        fillIpv4HeaderChecksum(p, 0);
        expect(incIp).toBe(p.readUInt16BE(10));
      }
    }));
  });

  it('corner cases: a packet whose checksum is 0x0000, and fields going to and from 0x0000/0xFFFF', () => {
    // Force the TCP checksum to 0x0000 (sum 0xFFFF) by choosing the urgent pointer, then
    // rewrite fields through every 0x0000/0xFFFF transition.
    fc.assert(fc.property(arbTcpRepr, fc.constantFrom(0, 0xffff), fc.constantFrom(0, 0xffff), (r, a, b) => {
      const p = emitTcpPacket({ ...r, urgent: 0 });
      const c = p.readUInt16BE(36);
      // Setting urgent := c adds c to the sum, driving it to 0xFFFF, i.e. checksum 0x0000.
      p.writeUInt16BE(c, 38);
      fillTcpChecksum(p, 0);
      expect(p.readUInt16BE(36)).toBe(0);
      for (const v of [a, b, c ^ 0xffff, 0xffff, 0]) {
        const old = p.readUInt16BE(34);
        p.writeUInt16BE(v, 34);
        const inc = csumReplace16(p.readUInt16BE(36), old, v);
        fillTcpChecksum(p, 0);
        expect(inc).toBe(p.readUInt16BE(36));
        expect(tcpChecksumOk(p, 0)).toBe(true);
      }
    }));
  });

  it('table of RFC 1624 edge values', () => {
    // HC' = ~(~HC + ~m + m'): an unchanged field leaves the checksum exactly as it was.
    expect(csumReplace16(0x0000, 0x0000, 0x0000)).toBe(0x0000);
    expect(csumReplace16(0x1234, 0x5555, 0x5555)).toBe(0x1234); // no change, no drift
    expect(csumReplace32(0xabcd, 0xdeadbeef, 0xdeadbeef)).toBe(0xabcd);
  });
});
