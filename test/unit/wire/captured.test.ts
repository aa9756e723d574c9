// Golden bytes: real packets captured from Linux (fixtures/capture.py). Every field is
// checked against tcpdump's own reading of the same packet (the `line`), then the options
// are re-encoded and the whole packet re-emitted and compared byte for byte.
import { describe, expect, it } from 'vitest';
import { LO, TUN, type CapturedPacket } from './fixtures/captured.js';
import {
  DropCounters, PacketInfo, TcpOptions, Verdict, decodeTcpOptions, emitTcpPacket, IPV4_OFF_DST, IPV4_OFF_PROTOCOL,
  IPV4_OFF_SRC, IPV4_OFF_TOTAL_LENGTH, IPV4_OFF_TTL, IPV4_OFF_FLAGS_FRAG, TCP_OFF_ACK, TCP_OFF_DST_PORT, TCP_OFF_FLAGS,
  TCP_OFF_SEQ, TCP_OFF_SRC_PORT, TCP_OFF_WINDOW, ipv4HeaderLen, ipv4Version, readU16, tcpHeaderLen,
  encodeTcpOptions, foldSum, ipToU32, ipv4HeaderChecksumOk, onesSum, parsePacket, parseTcpOptions,
  parseTcpPacket, readU32, seqAdd, tcpChecksum, tcpChecksumOk, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN,
  TCP_URG, TCP_ECE, TCP_CWR, seqLt, seqDiff, type Seq,
} from '../../../src/wire/index.js';

interface Expected {
  src: number; dst: number; srcPort: number; dstPort: number; flags: number; win: number;
  seqRel?: number; seqEnd?: number; ackRel?: number; len: number;
  mss?: number; wscale?: number; sackOK: boolean; ts?: [number, number]; sack?: Array<[number, number]>;
}

const LINE = /IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): Flags \[([^\]]+)\](?:, seq (\d+)(?::(\d+))?)?(?:, ack (\d+))?, win (\d+)(?:, options \[([^\]]*)\])?, length (\d+)/;
const FLAG_LETTERS: Record<string, number> = {
  S: TCP_SYN, F: TCP_FIN, R: TCP_RST, P: TCP_PSH, U: TCP_URG, E: TCP_ECE, W: TCP_CWR, '.': TCP_ACK,
};

/** Reads tcpdump's text independently of the code under test. */
function readLine(line: string): Expected {
  const m = LINE.exec(line);
  if (!m) throw new Error(`unparsed tcpdump line: ${line}`);
  let flags = 0;
  for (const c of m[5]!) flags |= FLAG_LETTERS[c]!;
  const e: Expected = {
    src: ipToU32(m[1]!), srcPort: Number(m[2]), dst: ipToU32(m[3]!), dstPort: Number(m[4]), flags,
    win: Number(m[9]), len: Number(m[11]), sackOK: false,
  };
  if (m[6] !== undefined) e.seqRel = Number(m[6]);
  if (m[7] !== undefined) e.seqEnd = Number(m[7]);
  if (m[8] !== undefined) e.ackRel = Number(m[8]);
  for (const o of (m[10] ?? '').split(',')) {
    let x: RegExpExecArray | null;
    if ((x = /^mss (\d+)$/.exec(o))) e.mss = Number(x[1]);
    else if ((x = /^wscale (\d+)$/.exec(o))) e.wscale = Number(x[1]);
    else if (o === 'sackOK') e.sackOK = true;
    else if ((x = /^TS val (\d+) ecr (\d+)$/.exec(o))) e.ts = [Number(x[1]), Number(x[2])];
    else if ((x = /^sack \d+ (.*)$/.exec(o))) {
      e.sack = [...x[1]!.matchAll(/\{(\d+):(\d+)\}/g)].map((b) => [Number(b[1]), Number(b[2])]);
    } else if (o !== 'nop' && o !== '') throw new Error(`unknown option text ${o}`);
  }
  return e;
}

/**
 * tcpdump prints seq/ack/SACK relative to the ISNs once it has seen a connection's SYN and
 * SYN-ACK (absolute on SYNs and on flows it has no handshake for); undo that.
 */
function walk(pkts: CapturedPacket[]): Array<{ buf: Buffer; e: Expected; seq: number; ack: number; sack?: Array<[number, number]> }> {
  const isn = new Map<string, Seq>();
  const key = (a: number, p: number, b: number, q: number): string => `${a}:${p}>${b}:${q}`;
  return pkts.map((p) => {
    const e = readLine(p.line);
    const fwd = key(e.src, e.srcPort, e.dst, e.dstPort);
    const rev = key(e.dst, e.dstPort, e.src, e.srcPort);
    let seq = e.seqRel ?? -1;
    let ack = e.ackRel ?? 0;
    let sack = e.sack;
    if (e.flags & TCP_SYN) {
      isn.set(fwd, seq as Seq);
    } else if (isn.has(fwd) && isn.has(rev)) {
      const mine = isn.get(fwd)!;
      const theirs = isn.get(rev)!;
      if (e.seqRel !== undefined) seq = seqAdd(mine, e.seqRel);
      if (e.ackRel !== undefined) ack = seqAdd(theirs, e.ackRel);
      sack = e.sack?.map(([l, r]) => [seqAdd(theirs, l), seqAdd(theirs, r)]);
    }
    return { buf: Buffer.from(p.ip, 'hex'), e, seq, ack, sack };
  });
}

function checkAgainstTcpdump(pkts: CapturedPacket[]): void {
  const info = new PacketInfo();
  const opts = new TcpOptions();
  for (const { buf, e, seq, ack, sack } of walk(pkts)) {
    expect(parsePacket(buf, 0, buf.length, info), e.flags.toString()).toBe(Verdict.IPV4_TCP);
    expect(ipv4HeaderChecksumOk(buf, 0)).toBe(true);
    expect([info.src, info.dst, info.srcPort, info.dstPort]).toEqual([e.src, e.dst, e.srcPort, e.dstPort]);
    expect(info.flags).toBe(e.flags);
    expect(info.window).toBe(e.win);
    expect(info.payloadLen).toBe(e.len);
    expect(info.totalLen).toBe(buf.length);
    if (seq >= 0) expect(info.seq).toBe(seq);
    if (e.flags & TCP_ACK) expect(info.ack).toBe(ack);
    // The named offsets agree with the parse (and with tcpdump).
    const t = info.l4Off;
    expect([ipv4Version(buf, 0), ipv4HeaderLen(buf, 0), buf[IPV4_OFF_PROTOCOL], readU16(buf, IPV4_OFF_TOTAL_LENGTH),
      readU32(buf, IPV4_OFF_SRC), readU32(buf, IPV4_OFF_DST), buf[IPV4_OFF_TTL], buf[IPV4_OFF_FLAGS_FRAG]! >>> 5]).toEqual(
      [4, 20, 6, buf.length, e.src, e.dst, 64, 0x2]);
    expect([readU16(buf, t + TCP_OFF_SRC_PORT), readU16(buf, t + TCP_OFF_DST_PORT), readU32(buf, t + TCP_OFF_SEQ),
      readU32(buf, t + TCP_OFF_ACK), buf[t + TCP_OFF_FLAGS], readU16(buf, t + TCP_OFF_WINDOW), tcpHeaderLen(buf, t)]).toEqual(
      [info.srcPort, info.dstPort, info.seq, info.ack, info.flags, info.window, info.tcpHdrLen]);
    // Options, value by value.
    expect(parseTcpOptions(buf, info.optOff, info.optLen, opts)).toBe(true);
    expect(opts.mss).toBe(e.mss ?? -1);
    expect(opts.wscale).toBe(e.wscale ?? -1);
    expect(opts.sackPermitted).toBe(e.sackOK);
    expect(opts.unknownCount).toBe(0);
    if (e.ts) {
      expect([opts.tsVal, opts.tsEcr]).toEqual(e.ts);
      expect(buf[opts.tsOff]).toBe(8);
    } else expect(opts.tsOff).toBe(-1);
    if (sack) {
      expect(opts.sackCount).toBe(sack.length);
      for (let i = 0; i < sack.length; i++) {
        expect([readU32(buf, opts.sackOff + 8 * i), readU32(buf, opts.sackOff + 8 * i + 4)]).toEqual(sack[i]);
      }
    } else expect(opts.sackOff).toBe(-1);
    // The options re-encode to Linux's exact layout.
    const optBytes = buf.subarray(info.optOff, info.optOff + info.optLen);
    expect(encodeTcpOptions(decodeTcpOptions(optBytes)).toString('hex')).toBe(optBytes.toString('hex'));
  }
}

describe('captured Linux packets (lo, kernel <-> kernel)', () => {
  it('has the exchange we meant to capture: SYN, SYN-ACK, data, FIN, RST', () => {
    const kinds = LO.map((p) => readLine(p.line).flags);
    for (const f of [TCP_SYN, TCP_SYN | TCP_ACK, TCP_PSH | TCP_ACK, TCP_FIN | TCP_ACK, TCP_RST | TCP_ACK]) {
      expect(kinds).toContain(f);
    }
  });

  it('parses every field as tcpdump reads it, and re-encodes the options byte for byte', () => {
    checkAgainstTcpdump(LO);
  });

  it('SYN: Linux options MSS, SACK-permitted, timestamps, window scale', () => {
    const syn = Buffer.from(LO[0]!.ip, 'hex');
    const info = new PacketInfo();
    parsePacket(syn, 0, syn.length, info);
    const r = decodeTcpOptions(syn.subarray(info.optOff, info.optOff + info.optLen));
    expect(r).toEqual({ mss: 1460, sackPermitted: true, timestamps: { tsVal: 1266954740, tsEcr: 0 }, wscale: 10 });
  });

  it('re-emits every packet byte for byte; lo carries partial (offloaded) TCP checksums', () => {
    for (const p of LO) {
      const buf = Buffer.from(p.ip, 'hex');
      const again = emitTcpPacket(parseTcpPacket(buf));
      // Linux leaves CHECKSUM_PARTIAL packets on lo with only the pseudo-header sum in the
      // field (~tcp_v4_check(len, saddr, daddr, 0)); everything else must match exactly.
      const l4Len = buf.length - 20;
      const pseudo = foldSum(onesSum(buf, 12, 8) + 6 + l4Len);
      expect(buf.readUInt16BE(36)).toBe(pseudo);
      expect(tcpChecksumOk(buf, 0)).toBe(false);
      expect(tcpChecksumOk(again, 0)).toBe(true);
      expect(again.readUInt16BE(36)).toBe(tcpChecksum(buf, 0));
      const a = Buffer.from(again);
      const b = Buffer.from(buf);
      a.writeUInt16BE(0, 36);
      b.writeUInt16BE(0, 36);
      expect(a.toString('hex')).toBe(b.toString('hex'));
    }
  });
});

describe('captured Linux packets (TUN, kernel server <-> scripted client, SACK, wrap)', () => {
  it('parses every field as tcpdump reads it, SACK edges included', () => {
    checkAgainstTcpdump(TUN);
  });

  it('carries SACK blocks in a pure ACK and in a data segment, across the 2^32 wrap', () => {
    const all = walk(TUN);
    const withSack = all.filter((x) => x.sack !== undefined);
    expect(withSack.map((x) => x.e.len > 0)).toEqual([false, true]);
    const [left, right] = withSack[0]!.sack![0]!;
    // The client ISN was 0xfffffff0: the SACKed block [ISN+11, ISN+21) wraps.
    expect(left).toBe(0xfffffffb);
    expect(right).toBe(0x5);
    expect(seqLt(left as Seq, right as Seq)).toBe(true);
    expect(seqDiff(right as Seq, left as Seq)).toBe(10);
  });

  it('re-emits every packet byte for byte, checksums included', () => {
    for (const p of TUN) {
      const buf = Buffer.from(p.ip, 'hex');
      expect(tcpChecksumOk(buf, 0)).toBe(true);
      expect(emitTcpPacket(parseTcpPacket(buf)).toString('hex')).toBe(p.ip);
    }
  });

  it('re-emits into a caller buffer at an offset', () => {
    const p = TUN[5]!;
    const r = parseTcpPacket(Buffer.from(p.ip, 'hex'));
    const big = Buffer.alloc(200, 0xee);
    const out = emitTcpPacket(r, big, 7);
    expect(out.buffer).toBe(big.buffer);
    expect(big.subarray(7, 7 + p.ip.length / 2).toString('hex')).toBe(p.ip);
    expect(big[6]).toBe(0xee);
    expect(big[7 + p.ip.length / 2]).toBe(0xee);
  });

  it('counts every captured packet as IPV4_TCP', () => {
    const c = new DropCounters();
    const info = new PacketInfo();
    for (const p of [...LO, ...TUN]) {
      const b = Buffer.from(p.ip, 'hex');
      c.count(parsePacket(b, 0, b.length, info));
    }
    expect(c.snapshot().IPV4_TCP).toBe(LO.length + TUN.length);
    expect(c.drops).toBe(0);
  });
});
