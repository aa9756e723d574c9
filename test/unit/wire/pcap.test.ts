import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { LO, TUN } from './fixtures/captured.js';
import {
  LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, PacketInfo, PcapWriter, Verdict,
  parsePacket, readPcap,
} from '../../../src/wire/index.js';

const fixture = (name: string): Buffer => readFileSync(new URL(`./fixtures/${name}`, import.meta.url));
/** tcpdump -tt prints seconds.microseconds. */
const lineTsNs = (line: string): bigint => {
  const [s, us] = line.split(' ')[0]!.split('.');
  return BigInt(s!) * 1_000_000_000n + BigInt(us!) * 1000n;
};

describe('pcap: real tcpdump captures', () => {
  it('reads lo.pcap (Ethernet framing on Linux lo)', () => {
    const recs = readPcap(fixture('lo.pcap'));
    expect(recs.length).toBe(LO.length);
    const info = new PacketInfo();
    recs.forEach((r, i) => {
      expect(r.linktype).toBe(LINKTYPE_ETHERNET);
      expect(r.ipOff).toBe(14);
      expect(r.origLen).toBe(r.data.length);
      expect(r.data.subarray(r.ipOff).toString('hex')).toBe(LO[i]!.ip);
      expect(r.tsNs).toBe(lineTsNs(LO[i]!.line));
      expect(parsePacket(r.data, r.ipOff, r.data.length - r.ipOff, info)).toBe(Verdict.IPV4_TCP);
    });
  });

  it('reads tun.pcap (LINKTYPE_RAW)', () => {
    const recs = readPcap(fixture('tun.pcap'));
    expect(recs.map((r) => [r.linktype, r.ipOff])).toEqual(TUN.map(() => [LINKTYPE_RAW, 0]));
    expect(recs.map((r) => r.data.toString('hex'))).toEqual(TUN.map((p) => p.ip));
    expect(recs.map((r) => r.tsNs)).toEqual(TUN.map((p) => lineTsNs(p.line)));
  });
});

describe('pcap: write then read back', () => {
  it('microsecond files round-trip (timestamps truncated to µs)', () => {
    const w = new PcapWriter();
    const pkts = TUN.map((p) => Buffer.from(p.ip, 'hex'));
    pkts.forEach((p, i) => w.add(1_700_000_000_123_456_789n + BigInt(i), p));
    const buf = w.toBuffer();
    expect(buf.readUInt32LE(0)).toBe(0xa1b2c3d4);
    const back = readPcap(buf);
    expect(back.map((r) => r.data.toString('hex'))).toEqual(pkts.map((p) => p.toString('hex')));
    expect(back[0]!.tsNs).toBe(1_700_000_000_123_456_000n);
    expect(back.every((r) => r.linktype === LINKTYPE_RAW && r.ipOff === 0)).toBe(true);
  });

  it('nanosecond files keep nanoseconds; snaplen truncates but keeps origLen', () => {
    const w = new PcapWriter(LINKTYPE_RAW, { nanosecond: true, snaplen: 40 });
    const p = Buffer.from(TUN[5]!.ip, 'hex');
    w.add(5_000_000_007n, p);
    const [r] = readPcap(w.toBuffer());
    expect(r!.tsNs).toBe(5_000_000_007n);
    expect(r!.data.length).toBe(40);
    expect(r!.origLen).toBe(p.length);
  });

  it('reads big-endian files', () => {
    const le = new PcapWriter(LINKTYPE_RAW).toBuffer();
    const p = Buffer.from(TUN[0]!.ip, 'hex');
    const rec = Buffer.alloc(16);
    rec.writeUInt32BE(7, 0);
    rec.writeUInt32BE(8, 4);
    rec.writeUInt32BE(p.length, 8);
    rec.writeUInt32BE(p.length, 12);
    const hdr = Buffer.from(le);
    hdr.writeUInt32BE(0xa1b2c3d4, 0);
    hdr.writeUInt16BE(2, 4);
    hdr.writeUInt16BE(4, 6);
    hdr.writeUInt32BE(262144, 16);
    hdr.writeUInt32BE(LINKTYPE_RAW, 20);
    const [r] = readPcap(Buffer.concat([hdr, rec, p]));
    expect(r!.tsNs).toBe(7_000_008_000n);
    expect(r!.data.equals(p)).toBe(true);
  });

  it('finds the IP header behind SLL, SLL2 and VLAN-tagged Ethernet; -1 for non-IP', () => {
    const ip = Buffer.from(TUN[0]!.ip, 'hex');
    const sll = Buffer.alloc(16);
    sll.writeUInt16BE(0x0800, 14);
    const sll2 = Buffer.alloc(20);
    sll2.writeUInt16BE(0x0800, 0);
    const vlan = Buffer.alloc(18);
    vlan.writeUInt16BE(0x8100, 12);
    vlan.writeUInt16BE(0x0800, 16);
    const arp = Buffer.alloc(42);
    arp.writeUInt16BE(0x0806, 12);
    const cases: Array<[number, Buffer, number]> = [
      [LINKTYPE_LINUX_SLL, Buffer.concat([sll, ip]), 16],
      [LINKTYPE_LINUX_SLL2, Buffer.concat([sll2, ip]), 20],
      [LINKTYPE_ETHERNET, Buffer.concat([vlan, ip]), 18],
      [LINKTYPE_ETHERNET, arp, -1],
      [147, ip, -1],
    ];
    for (const [lt, frame, off] of cases) {
      const w = new PcapWriter(lt);
      w.add(0n, frame);
      expect(readPcap(w.toBuffer())[0]!.ipOff, `linktype ${lt}`).toBe(off);
    }
  });

  it('rejects bad files', () => {
    expect(() => readPcap(Buffer.alloc(10))).toThrow(RangeError);
    expect(() => readPcap(Buffer.alloc(24))).toThrow(/magic/);
    const ng = Buffer.alloc(24);
    ng.writeUInt32LE(0x0a0d0d0a, 0);
    expect(() => readPcap(ng)).toThrow(/pcapng/);
    const w = new PcapWriter();
    w.add(0n, Buffer.alloc(30, 0x45));
    const full = w.toBuffer();
    expect(() => readPcap(full.subarray(0, full.length - 1))).toThrow(/truncated/);
  });
});
