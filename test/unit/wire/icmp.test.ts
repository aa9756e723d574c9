import { describe, expect, it } from 'vitest';
import { TUN } from './fixtures/captured.js';
import {
  ICMP_DEST_UNREACH, ICMP_ECHO, ICMP_FRAG_NEEDED, ICMP_OFF_CODE, ICMP_OFF_NEXT_HOP_MTU, ICMP_OFF_QUOTE, ICMP_OFF_TYPE,
  ICMP_PORT_UNREACH, ICMP_TIME_EXCEEDED, IcmpQuote, icmpIsError, readU16,
  PacketInfo, Verdict, emitIcmpError, emitTcpPacket, icmpChecksumOk, ipToU32, ipv4HeaderChecksumOk,
  parseIcmpError, parseIcmpQuote, parsePacket, parseTcpPacket,
} from '../../../src/wire/index.js';

// The kernel's data segment with SACK blocks, 10.9.0.1:8080 -> 10.9.0.2:40000.
const orig = Buffer.from(TUN[5]!.ip, 'hex');
const origRepr = parseTcpPacket(orig);
const ROUTER = ipToU32('192.0.2.1');

function icmpOf(pkt: Buffer): { info: PacketInfo; v: number } {
  const info = new PacketInfo();
  return { info, v: parsePacket(pkt, 0, pkt.length, info) };
}

describe('ICMP errors quoting a TCP header', () => {
  it('destination unreachable: addresses, ports and seq of the quoted segment', () => {
    const e = emitIcmpError(orig, { src: ROUTER, type: ICMP_DEST_UNREACH, code: ICMP_PORT_UNREACH });
    const { info, v } = icmpOf(e);
    expect(v).toBe(Verdict.IPV4_ICMP);
    expect(ipv4HeaderChecksumOk(e, 0)).toBe(true);
    expect(icmpChecksumOk(e, info.l4Off, info.l4Len)).toBe(true);
    expect([info.src, info.dst]).toEqual([ROUTER, origRepr.src]);
    expect(parseIcmpError(e, info.l4Off, info.l4Len)).toEqual({
      type: 3, code: 3, quotedSrc: ipToU32('10.9.0.1'), quotedDst: ipToU32('10.9.0.2'), quotedProto: 6,
      quotedSrcPort: 8080, quotedDstPort: 40000, quotedSeq: origRepr.seq,
    });
    const i = info.l4Off;
    expect([e[i + ICMP_OFF_TYPE], e[i + ICMP_OFF_CODE], icmpIsError(e[i + ICMP_OFF_TYPE]!), i + ICMP_OFF_QUOTE]).toEqual([3, 3, true, 28]);
  });

  it('time exceeded with the RFC 792 minimum quote (IP header + 8 bytes)', () => {
    const e = emitIcmpError(orig, { src: ROUTER, type: ICMP_TIME_EXCEEDED, code: 0, quoteLen: 28 });
    expect(e.length).toBe(20 + 8 + 28);
    const { info } = icmpOf(e);
    const r = parseIcmpError(e, info.l4Off, info.l4Len);
    expect(r).toMatchObject({ type: 11, code: 0, quotedSrcPort: 8080, quotedDstPort: 40000, quotedSeq: origRepr.seq });
  });

  it('fragmentation needed carries the next-hop MTU', () => {
    const e = emitIcmpError(orig, { src: ROUTER, code: ICMP_FRAG_NEEDED, mtu: 1280 });
    const { info } = icmpOf(e);
    expect(parseIcmpError(e, info.l4Off, info.l4Len)?.mtu).toBe(1280);
    expect(readU16(e, info.l4Off + ICMP_OFF_NEXT_HOP_MTU)).toBe(1280);
  });

  it('a 4-byte L4 quote gives ports but no seq; shorter quotes and non-errors give null', () => {
    const four = emitIcmpError(orig, { src: ROUTER, quoteLen: 24 });
    let { info } = icmpOf(four);
    const r = parseIcmpError(four, info.l4Off, info.l4Len);
    expect(r?.quotedDstPort).toBe(40000);
    expect(r && 'quotedSeq' in r).toBe(false);
    const two = emitIcmpError(orig, { src: ROUTER, quoteLen: 22 });
    ({ info } = icmpOf(two));
    expect(parseIcmpError(two, info.l4Off, info.l4Len)).toBeNull();
    const hdrOnly = emitIcmpError(orig, { src: ROUTER, quoteLen: 12 });
    ({ info } = icmpOf(hdrOnly));
    expect(parseIcmpError(hdrOnly, info.l4Off, info.l4Len)).toBeNull();
    const echo = emitIcmpError(orig, { src: ROUTER, type: ICMP_ECHO, code: 0 });
    ({ info } = icmpOf(echo));
    expect(parseIcmpError(echo, info.l4Off, info.l4Len)).toBeNull();
  });

  it('a garbage quoted version or IHL gives null', () => {
    const e = emitIcmpError(orig, { src: ROUTER });
    const { info } = icmpOf(e);
    const bad = Buffer.from(e);
    bad[info.l4Off + 8] = 0x65;
    expect(parseIcmpError(bad, info.l4Off, info.l4Len)).toBeNull();
    // A quoted IHL of 60 bytes in a 40-byte quote.
    const short = emitIcmpError(orig, { src: ROUTER, quoteLen: 40 });
    const s = icmpOf(short).info;
    short[s.l4Off + 8] = 0x4f;
    expect(parseIcmpError(short, s.l4Off, s.l4Len)).toBeNull();
  });

  it('parseIcmpQuote fills a reusable struct without allocating per packet', () => {
    const q = new IcmpQuote();
    const other = emitTcpPacket({ ...origRepr, srcPort: 1, dstPort: 2, seq: 0xfffffffe });
    const e1 = emitIcmpError(orig, { src: ROUTER });
    const e2 = emitIcmpError(other, { src: ROUTER, type: ICMP_TIME_EXCEEDED, code: 0 });
    for (const [e, port, seq] of [[e1, 40000, origRepr.seq], [e2, 2, 0xfffffffe]] as const) {
      const { info } = icmpOf(e);
      expect(parseIcmpQuote(e, info.l4Off, info.l4Len, q)).toBe(true);
      expect([q.dstPort, q.seq, q.hasSeq, q.ipOff, q.l4Off]).toEqual([port, seq, true, 28, 48]);
    }
  });
});
