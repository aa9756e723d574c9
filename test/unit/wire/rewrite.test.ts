import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TUN } from './fixtures/captured.js';
import {
  IPV4_FLAG_DF, Ipv4View, PacketInfo, TcpOptions, TcpView, emitTcpPacket, fillIpv4HeaderChecksum, fillTcpChecksum,
  ipv4HeaderChecksumOk, ipv4SetDst, ipv4SetSrc, parsePacket, parseTcpOptions, readU32, seqAdd, tcpChecksumOk,
  tcpFlagsString, tcpSetAck, tcpSetDstPort, tcpSetSeq, tcpSetSrcPort, tcpSetU32, tcpSetWindow, TCP_ACK, TCP_PSH,
} from '../../../src/wire/index.js';
import { arbTcpRepr } from './arbitraries.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u16 = fc.integer({ min: 0, max: 0xffff });

/** The checksums a full recompute gives. */
function recomputed(p: Buffer): [number, number] {
  const q = Buffer.from(p);
  fillIpv4HeaderChecksum(q, 0);
  fillTcpChecksum(q, 0);
  return [q.readUInt16BE(10), q.readUInt16BE(36)];
}

describe('rewrite: in-place field changes keep both checksums exact', () => {
  it('seq, ack, ports, window, addresses on random packets', () => {
    fc.assert(fc.property(arbTcpRepr, u32, u32, u16, u16, u16, u32, u32, (r, seq, ack, sp, dp, win, src, dst) => {
      const p = emitTcpPacket(r);
      tcpSetSeq(p, 20, seq);
      tcpSetAck(p, 20, ack);
      tcpSetSrcPort(p, 20, sp);
      tcpSetDstPort(p, 20, dp);
      tcpSetWindow(p, 20, win);
      ipv4SetSrc(p, 0, src, p.length - 20);
      ipv4SetDst(p, 0, dst, p.length - 20);
      const t = new TcpView(p, 20);
      const ip = new Ipv4View(p, 0);
      expect([t.seq, t.ack, t.srcPort, t.dstPort, t.window, ip.src, ip.dst]).toEqual([seq, ack, sp, dp, win, src, dst]);
      expect([ip.checksum, t.checksum]).toEqual(recomputed(p));
    }));
  });

  it('TSval/TSecr and SACK edges, at even and odd offsets inside the options', () => {
    const leads = [[], [1], [1, 1], [1, 1, 1]]; // NOPs before the option shift its alignment
    fc.assert(fc.property(arbTcpRepr, fc.constantFrom(...leads), u32, u32, u32, (r, lead, a, b, c) => {
      const ts = [8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
      const sack = [5, 10, 0, 0, 0, 3, 0, 0, 0, 4];
      const raw = [...lead, ...ts, ...sack];
      while (raw.length % 4) raw.push(0);
      const p = emitTcpPacket({ ...r, options: Uint8Array.from(raw) });
      const info = new PacketInfo();
      parsePacket(p, 0, p.length, info);
      const o = new TcpOptions();
      expect(parseTcpOptions(p, info.optOff, info.optLen, o)).toBe(true);
      expect((o.tsOff - 20) % 2).toBe(lead.length % 2);
      tcpSetU32(p, 20, o.tsOff + 2, a);
      tcpSetU32(p, 20, o.tsOff + 6, b);
      tcpSetU32(p, 20, o.sackOff + 4, c);
      expect([readU32(p, o.tsOff + 2), readU32(p, o.tsOff + 6), readU32(p, o.sackOff + 4)]).toEqual([a, b, c]);
      expect(tcpChecksumOk(p, 0)).toBe(true);
      expect(p.readUInt16BE(36)).toBe(recomputed(p)[1]);
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
    expect(new TcpView(p, info.l4Off).seq).toBe(seqAdd(info.seq, delta));
  });
});

describe('views: setters and getters', () => {
  it('Ipv4View round-trips every field and leaves neighbours alone', () => {
    const p = emitTcpPacket({ src: 1, dst: 2, srcPort: 3, dstPort: 4, seq: 5, ack: 6, flags: TCP_ACK, window: 7 });
    const ip = new Ipv4View().wrap(p, 0);
    expect([ip.version, ip.ihl, ip.flags, ip.dontFragment, ip.moreFragments, ip.fragmentOffset, ip.ttl]).toEqual(
      [4, 20, IPV4_FLAG_DF, true, false, 0, 64]);
    ip.tos = 0xb8;
    ip.identification = 0xbeef;
    ip.fragmentOffset = 0x1abc;
    ip.flags = 1;
    ip.ttl = 3;
    ip.totalLength = 1234;
    ip.checksum = 0xfeed;
    ip.protocol = 17;
    ip.ihl = 24;
    expect([ip.tos, ip.identification, ip.fragmentOffset, ip.flags, ip.moreFragments, ip.ttl, ip.totalLength,
      ip.checksum, ip.protocol, ip.ihl, ip.version, ip.src, ip.dst]).toEqual(
      [0xb8, 0xbeef, 0x1abc, 1, true, 3, 1234, 0xfeed, 17, 24, 4, 1, 2]);
    ip.version = 6;
    expect([ip.version, ip.ihl]).toEqual([6, 24]);
  });

  it('TcpView round-trips every field; one instance re-points across packets', () => {
    const a = emitTcpPacket({ src: 1, dst: 2, srcPort: 3, dstPort: 4, seq: 5, ack: 6, flags: TCP_ACK, window: 7 });
    const b = emitTcpPacket({ src: 1, dst: 2, srcPort: 9, dstPort: 4, seq: 5, ack: 6, flags: TCP_ACK, window: 7 });
    const t = new TcpView();
    expect(t.wrap(a, 20).srcPort).toBe(3);
    expect(t.wrap(b, 20).srcPort).toBe(9);
    t.seq = 0xffffffff;
    t.ack = 0x80000000;
    t.flags = TCP_PSH | TCP_ACK;
    t.window = 0xffff;
    t.urgent = 0x1234;
    t.dstPort = 443;
    t.srcPort = 0;
    t.dataOffset = 24;
    t.checksum = 0x4321;
    expect([t.seq, t.ack, t.flags, t.window, t.urgent, t.dstPort, t.srcPort, t.dataOffset, t.checksum, t.optionsOff]).toEqual(
      [0xffffffff, 0x80000000, 0x18, 0xffff, 0x1234, 443, 0, 24, 0x4321, 40]);
    expect(tcpFlagsString(t.flags)).toBe('P.');
    expect(tcpFlagsString(0)).toBe('none');
  });
});
