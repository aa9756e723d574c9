import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  blankFrame,
  decodeFrame,
  encodeFrame,
  F_ACK,
  F_CHUNK_FIRST,
  F_DATA,
  F_REJECT,
  FRAME_OVERHEAD,
  HEADER_LEN,
  MAC_LEN,
  OFF,
  type Frame,
} from '../../../src/link/frame.js';
import { KEY } from './harness.js';
import type { Seq } from '../../../src/wire/seq.js';

function sample(): Frame {
  const f = blankFrame();
  f.flags = F_DATA | F_ACK | F_CHUNK_FIRST;
  f.pathId = 1;
  f.srcBoot = 0xdeadbeef;
  f.dstBoot = 0x01020304;
  f.pkt = 0x1_0000_0005; // crosses 32 bits
  f.seq = 0xfffffffe as Seq;
  f.ack = 7 as Seq;
  f.base = 0xfffffff0 as Seq;
  f.rejLast = 0 as Seq;
  f.rejCount = 0;
  f.rsFrom = 42 as Seq;
  f.rsCount = 3;
  f.rsGen = 0xffff;
  f.payload = Buffer.from('hello link');
  return f;
}

const frameArb = fc.record({
  flags: fc.integer({ min: 0, max: 255 }),
  pathId: fc.integer({ min: 0, max: 255 }),
  srcBoot: fc.integer({ min: 1, max: 0xffffffff }),
  dstBoot: fc.integer({ min: 0, max: 0xffffffff }),
  pkt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  seq: fc.integer({ min: 0, max: 0xffffffff }).map((n) => n as Seq),
  ack: fc.integer({ min: 0, max: 0xffffffff }).map((n) => n as Seq),
  base: fc.integer({ min: 0, max: 0xffffffff }).map((n) => n as Seq),
  rejLast: fc.integer({ min: 0, max: 0xffffffff }).map((n) => n as Seq),
  rejCount: fc.integer({ min: 0, max: 0xffffffff }),
  rsFrom: fc.integer({ min: 0, max: 0xffffffff }).map((n) => n as Seq),
  rsCount: fc.integer({ min: 0, max: 0xffffffff }),
  rsGen: fc.integer({ min: 0, max: 0xffff }),
  payload: fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
});

describe('frame layout', () => {
  it('puts every field at its documented offset, big-endian, MAC over the rest', () => {
    const f = sample();
    const b = encodeFrame(KEY, f);
    expect(b.length).toBe(FRAME_OVERHEAD + f.payload.length);
    expect(b[OFF.version]).toBe(1);
    expect(b[OFF.flags]).toBe(F_DATA | F_ACK | F_CHUNK_FIRST);
    expect(b[OFF.pathId]).toBe(1);
    expect(b[OFF.reserved]).toBe(0);
    expect(b.subarray(OFF.srcBoot, OFF.srcBoot + 4).toString('hex')).toBe('deadbeef');
    expect(b.subarray(OFF.dstBoot, OFF.dstBoot + 4).toString('hex')).toBe('01020304');
    expect(b.subarray(OFF.pktHi, OFF.pktLo + 4).toString('hex')).toBe('0000000100000005');
    expect(b.subarray(OFF.seq, OFF.seq + 4).toString('hex')).toBe('fffffffe');
    expect(b.readUInt32BE(OFF.ack)).toBe(7);
    expect(b.readUInt32BE(OFF.base)).toBe(0xfffffff0);
    expect(b.readUInt32BE(OFF.rsFrom)).toBe(42);
    expect(b.readUInt32BE(OFF.rsCount)).toBe(3);
    expect(b.readUInt16BE(OFF.rsGen)).toBe(0xffff);
    expect(b.readUInt16BE(OFF.payloadLen)).toBe(10);
    expect(b.subarray(HEADER_LEN, HEADER_LEN + 10).toString()).toBe('hello link');
    const want = createHmac('sha256', KEY).update(b.subarray(0, HEADER_LEN + 10)).digest().subarray(0, MAC_LEN);
    expect(b.subarray(HEADER_LEN + 10).equals(want)).toBe(true);
  });

  it('round-trips any frame', () => {
    fc.assert(
      fc.property(frameArb, (f) => {
        const r = decodeFrame(KEY, encodeFrame(KEY, f));
        expect(r.ok).toBe(true);
        if (r.ok) expect({ ...r.frame, payload: Buffer.from(r.frame.payload) }).toEqual(f);
      }),
      { numRuns: 200 },
    );
  });
});

describe('frame drops', () => {
  it('any flipped bit is a MAC failure', () => {
    const b = encodeFrame(KEY, sample());
    fc.assert(
      fc.property(fc.integer({ min: 0, max: b.length * 8 - 1 }), (bit) => {
        const c = Buffer.from(b);
        c[bit >> 3]! ^= 1 << (bit & 7);
        const r = decodeFrame(KEY, c);
        // A flip in the length field changes the framing, which is checked first.
        const inLen = bit >> 3 === OFF.payloadLen || bit >> 3 === OFF.payloadLen + 1;
        expect(r).toEqual({ ok: false, reason: inLen ? 'length' : 'mac' });
      }),
      { numRuns: 300 },
    );
  });

  it('a frame made with another key is forged', () => {
    const other = Buffer.alloc(24, 7);
    expect(decodeFrame(KEY, encodeFrame(other, sample()))).toEqual({ ok: false, reason: 'mac' });
  });

  it('names short, length, version, reserved and zero-boot drops', () => {
    expect(decodeFrame(KEY, Buffer.alloc(FRAME_OVERHEAD - 1))).toEqual({ ok: false, reason: 'short' });
    const b = encodeFrame(KEY, sample());
    expect(decodeFrame(KEY, b.subarray(0, b.length - 1))).toEqual({ ok: false, reason: 'length' });
    const v2 = Buffer.from(b);
    v2[OFF.version] = 2;
    reMac(v2);
    expect(decodeFrame(KEY, v2)).toEqual({ ok: false, reason: 'version' });
    const rs = Buffer.from(b);
    rs[OFF.reserved] = 1;
    reMac(rs);
    expect(decodeFrame(KEY, rs)).toEqual({ ok: false, reason: 'reserved' });
    const z = sample();
    z.srcBoot = 0;
    expect(decodeFrame(KEY, encodeFrame(KEY, z))).toEqual({ ok: false, reason: 'zero-boot' });
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (u) => {
        const r = decodeFrame(KEY, Buffer.from(u));
        expect(r.ok).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it('REJECT fields survive', () => {
    const f = sample();
    f.flags = F_REJECT | F_ACK;
    f.rejLast = 0xffffffff as Seq;
    f.rejCount = 3;
    const r = decodeFrame(KEY, encodeFrame(KEY, f));
    expect(r.ok && r.frame.rejLast === 0xffffffff && r.frame.rejCount === 3).toBe(true);
  });
});

function reMac(b: Buffer): void {
  const len = b.readUInt16BE(OFF.payloadLen);
  createHmac('sha256', KEY).update(b.subarray(0, HEADER_LEN + len)).digest().copy(b, HEADER_LEN + len, 0, MAC_LEN);
}
