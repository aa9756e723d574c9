import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  TCPOPT_MSS, TCPOPT_SACK, TCPOPT_SACK_PERM, TCPOPT_TS, TCPOPT_WSCALE, TcpOptions, decodeTcpOptions,
  encodeTcpOptions, parseTcpOptions, readU32, type TcpOptionsRepr,
} from '../../../src/wire/index.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/ /g, ''), 'hex');
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const KNOWN = new Set([0, 1, TCPOPT_MSS, TCPOPT_WSCALE, TCPOPT_SACK_PERM, TCPOPT_SACK, TCPOPT_TS]);

/** Reprs whose encoding fits in 40 bytes (filtered), in decode's canonical form. */
const arbRepr: fc.Arbitrary<TcpOptionsRepr> = fc.record({
  mss: fc.integer({ min: 0, max: 0xffff }),
  wscale: fc.integer({ min: 0, max: 14 }),
  sackPermitted: fc.constant(true),
  timestamps: fc.record({ tsVal: u32, tsEcr: u32 }),
  sack: fc.array(fc.tuple(u32, u32), { minLength: 1, maxLength: 4 }),
  unknown: fc.array(fc.record({
    kind: fc.integer({ min: 6, max: 253 }).filter((k) => !KNOWN.has(k)),
    data: fc.uint8Array({ maxLength: 6 }),
  }), { minLength: 1, maxLength: 2 }),
}, { requiredKeys: [] }).filter((r) => {
  try {
    encodeTcpOptions(r);
    return true;
  } catch {
    return false;
  }
});

describe('tcp options: golden bytes (Linux layouts)', () => {
  it('SYN: MSS, SACK_PERM+TS, NOP WSCALE', () => {
    const r = { mss: 1460, sackPermitted: true, timestamps: { tsVal: 0x4b8431f4, tsEcr: 0 }, wscale: 10 };
    const b = encodeTcpOptions(r);
    expect(b.toString('hex')).toBe('020405b4' + '0402080a4b8431f400000000' + '0103030a');
    expect(decodeTcpOptions(b)).toEqual(r);
  });

  it('data: NOP NOP TS, NOP NOP SACK', () => {
    const r = { timestamps: { tsVal: 1, tsEcr: 2 }, sack: [[0xfffffffb, 5], [100, 200]] as Array<[number, number]> };
    expect(encodeTcpOptions(r).toString('hex')).toBe(
      '0101080a0000000100000002' + '01010512' + 'fffffffb00000005' + '00000064000000c8');
  });

  it('SACK_PERM without TS: NOP NOP SACK_PERM; nothing: empty', () => {
    expect(encodeTcpOptions({ sackPermitted: true }).toString('hex')).toBe('01010402');
    expect(encodeTcpOptions({}).length).toBe(0);
  });

  it('unknown options are kept byte-exact and padded with EOL', () => {
    const r = { mss: 536, unknown: [{ kind: 30, data: Uint8Array.from([1, 2, 3]) }] };
    const b = encodeTcpOptions(r);
    expect(b.toString('hex')).toBe('02040218' + '1e05010203' + '000000');
    expect(decodeTcpOptions(b)).toEqual(r);
  });

  it('refuses what does not fit or is out of range', () => {
    const ts = { tsVal: 1, tsEcr: 1 };
    expect(() => encodeTcpOptions({ timestamps: ts, sack: [[1, 2], [3, 4], [5, 6], [7, 8]] })).toThrow(RangeError);
    expect(() => encodeTcpOptions({ sack: [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]] })).toThrow(RangeError);
    expect(() => encodeTcpOptions({ mss: 70000 })).toThrow(RangeError);
    expect(() => encodeTcpOptions({ timestamps: { tsVal: -1, tsEcr: 0 } })).toThrow(RangeError);
    expect(() => encodeTcpOptions({ unknown: [{ kind: 1, data: new Uint8Array(0) }] })).toThrow(RangeError);
    expect(encodeTcpOptions({ timestamps: ts, sack: [[1, 2], [3, 4], [5, 6]] }).length).toBe(40);
  });
});

describe('tcp options: decode', () => {
  it('throws on malformed structure', () => {
    expect(() => decodeTcpOptions(hex('0200'))).toThrow(/length 0/);
    expect(() => decodeTcpOptions(hex('0801'))).toThrow(/length 1/);
    expect(() => decodeTcpOptions(hex('080a0000'))).toThrow(/past the end/);
    expect(() => decodeTcpOptions(hex('0101 02'))).toThrow(/no length/);
  });

  it('keeps known kinds with non-standard lengths as unknown (Linux ignores them)', () => {
    const r = decodeTcpOptions(hex('020305 01 0804aabb 0000'));
    expect(r).toEqual({
      unknown: [{ kind: 2, data: Uint8Array.from([5]) }, { kind: 8, data: Uint8Array.from([0xaa, 0xbb]) }],
    });
    expect(encodeTcpOptions(r).toString('hex')).toBe('020305' + '0804aabb' + '00');
  });

  it('stops at EOL', () => {
    expect(decodeTcpOptions(hex('01 00 0204ffff'))).toEqual({});
  });
});

describe('tcp options: parseTcpOptions (reusable, absolute offsets)', () => {
  it('reads values and offsets inside a larger buffer', () => {
    const opts = encodeTcpOptions({ mss: 1400, sackPermitted: true, timestamps: { tsVal: 7, tsEcr: 8 }, wscale: 3 });
    const buf = Buffer.concat([Buffer.alloc(33, 0xee), opts]);
    const o = new TcpOptions();
    expect(parseTcpOptions(buf, 33, opts.length, o)).toBe(true);
    expect([o.mss, o.mssOff, o.wscale, o.sackPermitted, o.tsOff, o.tsVal, o.tsEcr, o.sackOff]).toEqual(
      [1400, 33, 3, true, 39, 7, 8, -1]);
    expect(buf[o.wscaleOff]).toBe(TCPOPT_WSCALE);
    // Reused for the next segment: fields from the SYN do not leak.
    const data = encodeTcpOptions({ timestamps: { tsVal: 9, tsEcr: 10 }, sack: [[11, 12], [13, 14]] });
    const b2 = Buffer.concat([Buffer.alloc(1), data]);
    expect(parseTcpOptions(b2, 1, data.length, o)).toBe(true);
    expect([o.mss, o.wscale, o.sackPermitted, o.tsVal, o.sackCount]).toEqual([-1, -1, false, 9, 2]);
    expect([readU32(b2, o.sackOff), readU32(b2, o.sackOff + 12)]).toEqual([11, 14]);
  });

  it('returns false on malformed structure, counts odd-length known kinds as unknown', () => {
    const o = new TcpOptions();
    expect(parseTcpOptions(hex('0200'), 0, 2, o)).toBe(false);
    expect(parseTcpOptions(hex('0101080a00'), 0, 5, o)).toBe(false);
    expect(parseTcpOptions(hex('02030500'), 0, 4, o)).toBe(true);
    expect([o.mss, o.unknownCount]).toEqual([-1, 1]);
    expect(parseTcpOptions(hex('050a' + '00'.repeat(8)), 0, 10, o)).toBe(true); // SACK of 8 bytes of edges
    expect(o.sackCount).toBe(1);
    expect(parseTcpOptions(hex('0506000000000000'), 0, 6, o)).toBe(true); // SACK with a half block
    expect([o.sackCount, o.unknownCount]).toEqual([0, 1]);
  });
});

describe('tcp options: round trips (fast-check)', () => {
  it('decode(encode(r)) deep-equals r', () => {
    fc.assert(fc.property(arbRepr, (r) => {
      expect(decodeTcpOptions(encodeTcpOptions(r))).toEqual(r);
    }), { numRuns: 500 });
  });

  it('encodings are multiples of 4, at most 40, well-formed, and parseTcpOptions agrees with decode', () => {
    const o = new TcpOptions();
    fc.assert(fc.property(arbRepr, (r) => {
      const b = encodeTcpOptions(r);
      expect(b.length % 4).toBe(0);
      expect(b.length).toBeLessThanOrEqual(40);
      expect(parseTcpOptions(b, 0, b.length, o)).toBe(true);
      expect(o.mss).toBe(r.mss ?? -1);
      expect(o.wscale).toBe(r.wscale ?? -1);
      expect(o.sackPermitted).toBe(r.sackPermitted === true);
      expect(o.tsOff >= 0 ? { tsVal: o.tsVal, tsEcr: o.tsEcr } : undefined).toEqual(r.timestamps);
      expect(o.sackCount).toBe(r.sack?.length ?? 0);
      expect(o.unknownCount).toBe(r.unknown?.length ?? 0);
    }), { numRuns: 500 });
  });

  it('decode never throws anything but RangeError on random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), (b) => {
      try {
        decodeTcpOptions(b);
      } catch (e) {
        expect(e).toBeInstanceOf(RangeError);
      }
    }));
  });
});
