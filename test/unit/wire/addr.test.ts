import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ipToU32, u32ToIp } from '../../../src/wire/addr.js';

describe('addr', () => {
  it('converts both ways', () => {
    expect(ipToU32('10.9.0.1')).toBe(0x0a090001);
    expect(ipToU32('255.255.255.255')).toBe(0xffffffff);
    expect(ipToU32('0.0.0.0')).toBe(0);
    expect(u32ToIp(0xc0a80101)).toBe('192.168.1.1');
  });

  it('rejects bad input with RangeError', () => {
    for (const s of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.-4', ' 1.2.3.4', '1.2.3.4 ', '0x1.2.3.4', '1..3.4', '1.2.3.1234', 'a.b.c.d']) {
      expect(() => ipToU32(s), s).toThrow(RangeError);
    }
  });

  it('round-trips every u32', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => ipToU32(u32ToIp(n)) === n));
  });
});
