/** Step 6: each translation, in place, with the checksum kept right (property tests). */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Translation, translateToClient, translateToServer } from '../../../src/recovery/translate.js';
import { emitTcpPacket, parseTcpPacket } from '../../../src/wire/repr.js';
import { encodeTcpOptions, decodeTcpOptions } from '../../../src/wire/tcp-options.js';
import { PacketInfo, parsePacket, Verdict } from '../../../src/wire/packet.js';
import { tcpChecksumOk, ipv4HeaderChecksumOk } from '../../../src/wire/checksum.js';
import { TCP_ACK, TCP_PSH } from '../../../src/wire/tcp.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });

function parsed(b: Buffer): PacketInfo {
  const p = new PacketInfo();
  expect(parsePacket(b, 0, b.length, p)).toBe(Verdict.IPV4_TCP);
  return p;
}

describe('translateToClient (server → client)', () => {
  it('shifts seq and TSval, restores the client port, rescales the window; ack and SACK untouched', () => {
    fc.assert(
      fc.property(u32, u32, u32, u32, u32, u32, fc.integer({ min: 0, max: 14 }), fc.integer({ min: 0, max: 14 }), (seq, ack, tsv, tse, seqDelta, tsDelta, oldS, newS) => {
        const options = encodeTcpOptions({ timestamps: { tsVal: tsv, tsEcr: tse }, sack: [[ack, (ack + 100) >>> 0]] });
        const b = emitTcpPacket({ src: 1, dst: 2, srcPort: 5001, dstPort: 61000, seq, ack, flags: TCP_ACK | TCP_PSH, window: 1000, options, payload: Buffer.from('regenerated') });
        const t = new Translation(seqDelta, tsDelta, 40000, 61000, oldS, newS);
        translateToClient(t, b, parsed(b));
        expect(tcpChecksumOk(b, 0)).toBe(true);
        expect(ipv4HeaderChecksumOk(b, 0)).toBe(true);
        const r = parseTcpPacket(b);
        expect(r.seq).toBe((seq + seqDelta) >>> 0);
        expect(r.ack).toBe(ack);
        expect(r.dstPort).toBe(40000);
        expect(r.window).toBe(Math.min(0xffff, Math.ceil((1000 * 2 ** newS) / 2 ** oldS)));
        const o = decodeTcpOptions(r.options!);
        expect(o.timestamps).toEqual({ tsVal: (tsv + tsDelta) >>> 0, tsEcr: tse });
        expect(o.sack).toEqual([[ack, (ack + 100) >>> 0]]);
        expect(Buffer.from(r.payload!).toString()).toBe('regenerated');
      }),
      { numRuns: 300 },
    );
  });

  it('changes nothing for the identity translation', () => {
    const b = emitTcpPacket({ src: 1, dst: 2, srcPort: 5001, dstPort: 40000, seq: 5, ack: 6, flags: TCP_ACK, window: 7 });
    const before = Buffer.from(b);
    translateToClient(new Translation(0, 0, 40000, 40000, 7, 7), b, parsed(b));
    expect(b.equals(before)).toBe(true);
  });
});

describe('translateToServer (client → server)', () => {
  it('shifts ack, SACK blocks and TSecr back, moves the source port; seq and TSval untouched', () => {
    fc.assert(
      fc.property(u32, u32, u32, u32, u32, u32, fc.integer({ min: 0, max: 4 }), (seq, ack, tsv, tse, seqDelta, tsDelta, nblocks) => {
        const sack: Array<[number, number]> = [];
        for (let i = 0; i < Math.min(nblocks, 3); i++) sack.push([(ack + 1000 * (i + 1)) >>> 0, (ack + 1000 * (i + 1) + 500) >>> 0]);
        const options = encodeTcpOptions({ timestamps: { tsVal: tsv, tsEcr: tse }, ...(sack.length ? { sack } : {}) });
        const b = emitTcpPacket({ src: 2, dst: 1, srcPort: 40000, dstPort: 5001, seq, ack, flags: TCP_ACK, window: 500, options });
        const t = new Translation(seqDelta, tsDelta, 40000, 61000, 7, 7);
        translateToServer(t, b, parsed(b));
        expect(tcpChecksumOk(b, 0)).toBe(true);
        const r = parseTcpPacket(b);
        expect(r.seq).toBe(seq);
        expect(r.ack).toBe((ack - seqDelta) >>> 0);
        expect(r.srcPort).toBe(61000);
        const o = decodeTcpOptions(r.options!);
        expect(o.timestamps).toEqual({ tsVal: tsv, tsEcr: (tse - tsDelta) >>> 0 });
        expect(o.sack ?? []).toEqual(sack.map(([l, rr]) => [(l - seqDelta) >>> 0, (rr - seqDelta) >>> 0]));
      }),
      { numRuns: 300 },
    );
  });

  it('is undone by the opposite translation of the same numbers (client ack ↔ server seq)', () => {
    // The server sends seq S_new; the client sees S_new + d and acks it; the server must get S_new back.
    const d = 0x9000_0000;
    const t = new Translation(d, 0, 40000, 40000, 7, 7);
    const s = emitTcpPacket({ src: 1, dst: 2, srcPort: 5001, dstPort: 40000, seq: 0xfffffff0, ack: 1, flags: TCP_ACK, window: 9, payload: Buffer.alloc(32) });
    translateToClient(t, s, parsed(s));
    const seenByClient = parseTcpPacket(s).seq;
    const c = emitTcpPacket({ src: 2, dst: 1, srcPort: 40000, dstPort: 5001, seq: 1, ack: (seenByClient + 32) >>> 0, flags: TCP_ACK, window: 9 });
    translateToServer(t, c, parsed(c));
    expect(parseTcpPacket(c).ack).toBe((0xfffffff0 + 32) >>> 0);
  });
});
