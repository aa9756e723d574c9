/**
 * The gateway's emit path (wire/headroom.ts): packets built in place behind headroom, the
 * timestamp option written in place by writeTcpPacket, kept packets copied once at release.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { arbTcpRepr, u32 } from './arbitraries.js';
import { EMIT_HEADROOM, EMIT_MAX_PACKET, assertHeadroom, emitCopy, emitScratch } from '../../../src/wire/headroom.js';
import { emitTcpPacket, parseTcpPacket, tcpPacketLength, writeTcpPacket } from '../../../src/wire/repr.js';
import { tcpChecksumOk, ipv4HeaderChecksumOk } from '../../../src/wire/checksum.js';
import { VNET_HDR_LEN } from '../../../src/wire/vnet.js';
import { encodeTcpOptions } from '../../../src/wire/tcp-options.js';

/** NOP NOP TS(val, ecr), from the options encoder: what rebuild.ts's tsOption allocated per segment. */
const tsBytes = (tsVal: number, tsEcr: number) => encodeTcpOptions({ timestamps: { tsVal, tsEcr } });

describe('writeTcpPacket: the allocation-free emitTcpPacket', () => {
  it('writes the very bytes emitTcpPacket makes, at any offset, returning the length; nothing outside', () => {
    fc.assert(fc.property(arbTcpRepr, fc.integer({ min: 0, max: 40 }), (r, off) => {
      const ref = emitTcpPacket(r);
      const buf = Buffer.alloc(off + ref.length + 16, 0xa5);
      const len = writeTcpPacket(r, buf, off);
      return len === ref.length && len === tcpPacketLength(r) && buf.subarray(off, off + len).equals(ref) &&
        buf.subarray(0, off).every((x) => x === 0xa5) && buf.subarray(off + len).every((x) => x === 0xa5);
    }));
  });

  it('writes the TS option in place: the same packet as the 12 option bytes handed over', () => {
    const r0 = fc.record({ r: arbTcpRepr, val: u32, ecr: u32 }).filter(({ r }) => (r.options?.length ?? 0) <= 28);
    fc.assert(fc.property(r0, ({ r, val, ecr }) => {
      const inPlace = emitTcpPacket({ ...r, tsVal: val, tsEcr: ecr });
      const given = emitTcpPacket({ ...r, options: Buffer.concat([tsBytes(val, ecr), r.options ?? Buffer.alloc(0)]) });
      return inPlace.equals(given) && tcpChecksumOk(inPlace, 0) && ipv4HeaderChecksumOk(inPlace, 0);
    }));
    const p = parseTcpPacket(emitTcpPacket({ src: 1, dst: 2, srcPort: 3, dstPort: 4, seq: 5, ack: 6, flags: 0x10, window: 7, tsVal: 0xfffffffe, tsEcr: 9 }));
    expect(Buffer.from(p.options!).equals(tsBytes(0xfffffffe, 9))).toBe(true);
  });

  it('counts the TS option against the 40 bytes of options', () => {
    const r = { src: 1, dst: 2, srcPort: 3, dstPort: 4, seq: 5, ack: 6, flags: 0x10, window: 7, tsVal: 1, tsEcr: 2 };
    expect(() => emitTcpPacket({ ...r, options: new Uint8Array(28) })).not.toThrow();
    expect(() => emitTcpPacket({ ...r, options: new Uint8Array(32) })).toThrow(RangeError);
    expect(() => emitTcpPacket({ ...r, tsVal: 2 ** 32 })).toThrow(RangeError);
  });
});

describe('headroom: the emit contract', () => {
  it('leaves room for a virtio-net header before every packet and fits the largest IPv4 packet', () => {
    expect(EMIT_HEADROOM).toBeGreaterThanOrEqual(VNET_HDR_LEN);
    expect(emitScratch.length).toBe(EMIT_HEADROOM + EMIT_MAX_PACKET);
  });

  it('refuses a packet without headroom, or past its buffer', () => {
    const b = Buffer.alloc(100);
    expect(() => assertHeadroom(b, EMIT_HEADROOM, 88)).not.toThrow();
    expect(() => assertHeadroom(b, EMIT_HEADROOM - 1, 40)).toThrow(/headroom/);
    expect(() => assertHeadroom(b, EMIT_HEADROOM, 89)).toThrow(/headroom/);
  });

  it('emitCopy hands a kept packet over from the scratch, behind the headroom, the kept copy untouched', () => {
    const kept = emitTcpPacket({ src: 1, dst: 2, srcPort: 3, dstPort: 4, seq: 5, ack: 6, flags: 0x11, window: 7, payload: Buffer.from('fin') });
    const before = Buffer.from(kept);
    const seen: Array<{ buf: Buffer; off: number; bytes: Buffer }> = [];
    emitCopy((buf, off, len) => {
      assertHeadroom(buf, off, len);
      seen.push({ buf, off, bytes: Buffer.from(buf.subarray(off, off + len)) });
      buf.fill(0, off - EMIT_HEADROOM, off + len); // the emitter may write the header (and the packet) in place
    }, kept, 0, kept.length);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.buf).toBe(emitScratch);
    expect(seen[0]!.off).toBe(EMIT_HEADROOM);
    expect(seen[0]!.bytes.equals(before)).toBe(true);
    expect(kept.equals(before)).toBe(true);
  });
});
