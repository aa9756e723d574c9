/** The virtio-net header view and partial-checksum helpers (src/wire/vnet.ts). */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_HDR_LEN, encodeVnet, finishPartialChecksum,
  ipv4PseudoSum, parseVnet, vnetCsumOffset, vnetCsumStart, vnetFlags, vnetGsoSize, vnetGsoType, vnetHdrLen,
} from '../../../src/wire/vnet.js';
import { emitTcpPacket } from '../../../src/wire/repr.js';
import { tcpChecksum, tcpChecksumOk } from '../../../src/wire/checksum.js';
import { TCP_ACK } from '../../../src/wire/tcp.js';

describe('virtio_net_hdr encode/parse', () => {
  it('golden bytes little endian', () => {
    // A TSO4 super-packet as Linux hands it over: NEEDS_CSUM, hdr_len 52, gso_size 1448,
    // csum_start 20 (the TCP header), csum_offset 16.
    const golden = Buffer.from([0x01, 0x01, 0x34, 0x00, 0xa8, 0x05, 0x14, 0x00, 0x10, 0x00, 0x00, 0x00]);
    expect(parseVnet(golden)).toEqual({ flags: 1, gsoType: 1, hdrLen: 52, gsoSize: 1448, csumStart: 20, csumOffset: 16, numBuffers: 0 });
    expect(encodeVnet({ flags: VNET_F_NEEDS_CSUM, gsoType: VNET_GSO_TCPV4, hdrLen: 52, gsoSize: 1448, csumStart: 20, csumOffset: 16 }))
      .toEqual(golden);
    expect([vnetFlags(golden, 0), vnetGsoType(golden, 0), vnetHdrLen(golden, 0), vnetGsoSize(golden, 0), vnetCsumStart(golden, 0), vnetCsumOffset(golden, 0)])
      .toEqual([1, 1, 52, 1448, 20, 16]);
  });

  it('round trip at an offset', () => {
    fc.assert(fc.property(
      fc.record({
        flags: fc.integer({ min: 0, max: 255 }), gsoType: fc.integer({ min: 0, max: 255 }), hdrLen: fc.integer({ min: 0, max: 0xffff }),
        gsoSize: fc.integer({ min: 0, max: 0xffff }), csumStart: fc.integer({ min: 0, max: 0xffff }),
        csumOffset: fc.integer({ min: 0, max: 0xffff }), numBuffers: fc.integer({ min: 0, max: 0xffff }),
      }),
      fc.integer({ min: 0, max: 20 }),
      (h, off) => {
        const buf = Buffer.alloc(off + VNET_HDR_LEN + 3, 0xaa);
        encodeVnet(h, buf, off);
        expect(parseVnet(buf, off)).toEqual(h);
        expect(buf[off + VNET_HDR_LEN]).toBe(0xaa); // nothing written past the header
      },
    ));
  });

  it('parse rejects a short buffer', () => {
    expect(parseVnet(Buffer.alloc(11))).toBeNull();
    expect(parseVnet(Buffer.alloc(12), 1)).toBeNull();
  });

  it('flag and type constants match linux', () => {
    expect([VNET_F_NEEDS_CSUM, VNET_F_DATA_VALID, VNET_GSO_TCPV4, VNET_GSO_TCPV6]).toEqual([1, 2, 1, 4]);
  });
});

describe('partial checksums', () => {
  const pkt = (payload: Buffer, seq = 1) => emitTcpPacket({
    src: 0xc6120102, dst: 0xc6120202, srcPort: 40000, dstPort: 5001, seq, ack: 7, flags: TCP_ACK, window: 501, payload,
  });

  it('pseudo sum then finish equals the full checksum', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.integer({ min: 0, max: 0xffffffff }), (data, seq) => {
      const p = pkt(Buffer.from(data), seq);
      const full = tcpChecksum(p, 0);
      p.writeUInt16BE(ipv4PseudoSum(p, 0), 36); // as the kernel leaves a NEEDS_CSUM packet
      finishPartialChecksum(p, 0, p.length, 20, 16);
      expect(p.readUInt16BE(36)).toBe(full);
      expect(tcpChecksumOk(p, 0)).toBe(true);
    }));
  });

  it('a partial field is not a valid checksum', () => {
    const p = pkt(Buffer.alloc(100, 7));
    p.writeUInt16BE(ipv4PseudoSum(p, 0), 36);
    expect(tcpChecksumOk(p, 0)).toBe(false);
  });
});
