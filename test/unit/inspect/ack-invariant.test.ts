/** The outside check of the stable-ACK invariant, on a capture built by hand. */
import { describe, it, expect } from 'vitest';
import { PcapWriter } from '../../../src/wire/pcap.js';
import { emitTcpPacket } from '../../../src/wire/repr.js';
import { ipToU32 } from '../../../src/wire/addr.js';
import { TCP_ACK, TCP_PSH, TCP_SYN, TCP_RST } from '../../../src/wire/tcp.js';
import { seqAdd } from '../../../src/wire/seq.js';
import { parseStabilityTrace } from '../../../src/inspect/ack-invariant.js';
import { checkAckInvariant } from '../../../src/inspect/inspect.js';
import { summarizeCapture } from '../../../src/inspect/summary.js';
import { Convo, T0, ms } from './inspect-helpers.js';

const C = ipToU32('198.18.1.2');
const S = ipToU32('198.18.2.2');
const ISN = 0xfffffff0; // offsets cross the 2^32 wrap

function capture(acks: Array<[bigint, number, number?]>): Buffer {
  const w = new PcapWriter(101, { nanosecond: true });
  w.add(100n, emitTcpPacket({ src: C, dst: S, srcPort: 40000, dstPort: 5001, seq: ISN, ack: 0, flags: TCP_SYN, window: 100 }));
  for (const [t, off, flags] of acks) {
    w.add(t, emitTcpPacket({ src: S, dst: C, srcPort: 5001, dstPort: 40000, seq: 7, ack: (ISN + 1 + off) >>> 0, flags: flags ?? TCP_ACK, window: 100 }));
  }
  return w.toBuffer();
}

const trace = parseStabilityTrace(
  [`1000 198.18.1.2:40000 5001 ${ISN} 400`, `2000 198.18.1.2:40000 5001 ${ISN} 900`, `1500 198.18.1.2:40000 5001 1234 5000`].join('\n'),
);

describe('checkAckInvariant', () => {
  it('accepts acks at or below the stable point at their time', () => {
    const r = checkAckInvariant(capture([[150n, 0], [1000n, 400], [2500n, 900]]), trace, [5001]);
    expect(r).toMatchObject({ checked: 3, connections: 1, violations: [], unchecked: 0 });
  });

  it('flags an ack beyond the stable point at its time, and ignores another connection on the same port pair', () => {
    // At t=1800 only 400 is stable (the entry with ISN 1234 belongs to another connection).
    const r = checkAckInvariant(capture([[999n, 1], [1800n, 401]]), trace, [5001]);
    expect(r.violations.map((v) => [v.tNs, v.ack, v.stableAtThatTime])).toEqual([[999n, 1, 0], [1800n, 401, 400]]);
  });

  it("holds a server RST's ack to the rule too", () => {
    const r = checkAckInvariant(capture([[150n, 0], [1000n, 500, TCP_RST | TCP_ACK]]), trace, [5001]);
    expect(r.violations.map((v) => [v.tNs, v.ack, v.stableAtThatTime])).toEqual([[1000n, 500, 400]]);
  });

  it('summarizes what reached the client', () => {
    const s = summarizeCapture(capture([[150n, 0], [160n, 0, TCP_RST | TCP_ACK]]), [5001], C);
    expect(s).toMatchObject({ connections: 1, rstToClient: 1, finToClient: 0, icmpToClient: 0 });
  });
});

describe('checkAckInvariant: streams past 2^31 and 2^32 bytes', () => {
  // A client stream sampled every 2^30 bytes (the capture sees a byte now and then: the
  // offsets unwrap in steps shorter than 2^31), and the server's acks around the stable
  // point. The old analyser took the ack's plain signed distance from ISN+1, which turns
  // negative past 2^31 and wraps past 2^32: it passed both violations below.
  const at = (m: number): string => String(ms(m));
  function stream(cisn: number, upTo: number, acks: Array<[number, number]>): Buffer {
    const k = new Convo({ cisn });
    k.handshake(0);
    const base = k.c.nxt;
    let t = 10;
    for (let off = 0; off <= upTo; off += 2 ** 30) k.raw(t++, k.c, { seq: seqAdd(base, off), len: 1, flags: TCP_ACK | TCP_PSH });
    k.raw(t++, k.c, { seq: seqAdd(base, upTo), len: 1, flags: TCP_ACK | TCP_PSH });
    for (const [m, off] of acks) k.ack(m, k.s, seqAdd(base, off));
    return k.pcap();
  }

  it('crossing 2^31: an ack beyond the stable point is caught, the ones below pass', () => {
    const cisn = 1000;
    const stable = 2 ** 31 + 100;
    const trace = parseStabilityTrace(`${at(50)} 198.18.1.2:40000 5001 ${cisn} ${stable}`);
    const pcap = stream(cisn, 2 ** 31 + 2 ** 29, [[60, 2 ** 31 - 50], [61, stable], [70, 2 ** 31 + 500]]);
    const r = checkAckInvariant(pcap, trace, [5001]);
    expect(r.violations.map((v) => [v.tNs - T0, v.ack, v.stableAtThatTime])).toEqual([[70_000_000n, 2 ** 31 + 500, stable]]);
    expect(r).toMatchObject({ checked: 4, connections: 1, unchecked: 0 }); // the SYN-ACK and the three acks
  });

  it('wrapping 2^32 (an ISN near the top): an ack beyond the stable point is caught, the ones below pass', () => {
    const cisn = 0xfffffff0;
    const stable = 2 ** 32 + 1000;
    const trace = parseStabilityTrace(`${at(50)} 198.18.1.2:40000 5001 ${cisn} ${stable}`);
    const pcap = stream(cisn, 2 ** 32 + 2 ** 20, [[60, 2 ** 32 + 500], [61, stable], [70, 2 ** 32 + 5000]]);
    const r = checkAckInvariant(pcap, trace, [5001]);
    expect(r.violations.map((v) => [v.tNs - T0, v.ack, v.stableAtThatTime])).toEqual([[70_000_000n, 2 ** 32 + 5000, stable]]);
    expect(r).toMatchObject({ checked: 4, connections: 1, unchecked: 0 });
  });
});
