/** The outside check of the stable-ACK invariant, on a capture built by hand. */
import { describe, it, expect } from 'vitest';
import { PcapWriter } from '../../../src/wire/pcap.js';
import { emitTcpPacket } from '../../../src/wire/repr.js';
import { ipToU32 } from '../../../src/wire/addr.js';
import { TCP_ACK, TCP_SYN, TCP_RST } from '../../../src/wire/tcp.js';
import { checkAckInvariant, parseStabilityTrace } from '../../../src/inspect/ack-invariant.js';
import { summarizeCapture } from '../../../src/inspect/summary.js';

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

  it('summarizes what reached the client', () => {
    const s = summarizeCapture(capture([[150n, 0], [160n, 0, TCP_RST | TCP_ACK]]), [5001], C);
    expect(s).toMatchObject({ connections: 1, rstToClient: 1, finToClient: 0, icmpToClient: 0 });
  });
});
