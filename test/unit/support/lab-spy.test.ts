/** The lab spy reads a headers-only capture (-s 128): sequence numbers count the bytes on the wire. */
import { describe, it, expect } from 'vitest';
import { PcapWriter, LINKTYPE_RAW } from '../../../src/wire/pcap.js';
import { emitTcpPacket } from '../../../src/wire/repr.js';
import { ipToU32 } from '../../../src/wire/addr.js';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../../../src/wire/tcp.js';
import { summarise } from '../../support/lab-spy.js';

const C = ipToU32('198.18.1.2');
const S = ipToU32('198.18.2.2');

describe('lab spy', () => {
  it('counts a truncated segment by its length on the wire', () => {
    const w = new PcapWriter(LINKTYPE_RAW, { snaplen: 128 });
    const cli = { src: C, dst: S, srcPort: 40000, dstPort: 5001 };
    const srv = { src: S, dst: C, srcPort: 5001, dstPort: 40000 };
    w.add(1n, emitTcpPacket({ ...cli, seq: 0xfffffff0, ack: 0, flags: TCP_SYN, window: 1000 }));
    w.add(2n, emitTcpPacket({ ...srv, seq: 500, ack: 0xfffffff1, flags: TCP_SYN | TCP_ACK, window: 1000 }));
    w.add(3n, emitTcpPacket({ ...cli, seq: 0xfffffff1, ack: 501, flags: TCP_ACK | TCP_PSH, window: 1000, payload: Buffer.alloc(1400, 7) }));
    w.add(4n, emitTcpPacket({ ...srv, seq: 501, ack: (0xfffffff1 + 1400) >>> 0, flags: TCP_ACK, window: 1000 }));
    const [c] = summarise(w.toBuffer());
    expect(c).toMatchObject({ clientIsn: 0xfffffff0, serverIsn: 500, clientBytes: 1400, clientNext: (0xfffffff1 + 1400) >>> 0, serverNext: 501 });
    expect(c!.ackToClient).toBe(c!.clientNext);
  });
});
