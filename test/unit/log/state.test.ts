/**
 * The connection-state record (src/log/state.ts): golden bytes, round trips (fixed and
 * property), the size bound, and a total decode — every way a record can be malformed gives
 * null, random bytes never throw — while encode refuses a record that breaks the rules.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  decodeState, encodeState, MAX_INCARNATIONS, STATE_MAX_BYTES, STATE_PHASES, stateFromHex,
  type ConnectionState, type IncarnationState,
} from '../../../src/log/state.js';
import { FtcpError } from '../../../src/util/errors.js';

const INC: IncarnationState = {
  serverIsn: 0x0badf00d, seqDelta: 0x84521ff3, tsDelta: 0x0007a122,
  server: { addr: '198.18.2.2', port: 5001 }, serverSidePort: 40000, oldShift: 7, newShift: 9,
};
const REPLAY: ConnectionState = { update: 3, phase: 'REPLAY', crashes: 1, incarnations: [INC] };

const BOUND = { boot: '0123456789abcdef', generation: 7 } as const;

const GOLDEN = Buffer.from(
  '01' + '02' + '01' + '00' + '00000003' + '00000001' +
  '0badf00d' + '84521ff3' + '0007a122' + 'c6120202' + '1389' + '9c40' + '07' + '09' + '0000',
  'hex',
);

describe('connection-state record', () => {
  it('encodes to the documented layout (golden bytes) and decodes back', () => {
    const b = encodeState(REPLAY);
    expect(b.toString('hex')).toBe(GOLDEN.toString('hex'));
    expect(decodeState(GOLDEN)).toEqual(REPLAY);
    expect(stateFromHex(GOLDEN.toString('hex'))).toEqual(REPLAY);
    // A view into a larger buffer decodes the same (byteOffset respected).
    const big = Buffer.concat([Buffer.from([9, 9, 9]), GOLDEN, Buffer.from([9])]);
    expect(decodeState(big.subarray(3, 3 + GOLDEN.length))).toEqual(REPLAY);
  });

  it('a masked connection before any rebuild has no incarnation; the largest record is STATE_MAX_BYTES', () => {
    const masked: ConnectionState = { update: 1, phase: 'MASKED', crashes: 1, incarnations: [] };
    expect(encodeState(masked)).toHaveLength(12);
    expect(decodeState(encodeState(masked))).toEqual(masked);
    const full: ConnectionState = { update: 0xffffffff, phase: 'LIVE', crashes: 0xffffffff, incarnations: Array(MAX_INCARNATIONS).fill(INC), boundTo: BOUND };
    expect(encodeState(full)).toHaveLength(STATE_MAX_BYTES);
    expect(decodeState(encodeState(full))).toEqual(full);
  });

  it('version 2 binds the server incarnation (golden bytes); a version-1 record still loads, bound to nothing', () => {
    const bound: ConnectionState = { ...REPLAY, boundTo: BOUND };
    const v2 = Buffer.from(
      '02' + '02' + '01' + '01' + '00000003' + '00000001' + '0123456789abcdef' + '00000007' + GOLDEN.subarray(12).toString('hex'),
      'hex',
    );
    expect(encodeState(bound).toString('hex')).toBe(v2.toString('hex'));
    expect(decodeState(v2)).toEqual(bound);
    expect(decodeState(GOLDEN)?.boundTo).toBeUndefined(); // v1: the incarnation is unknown
    expect(encodeState({ ...REPLAY, boundTo: null }).equals(GOLDEN)).toBe(true); // no binding: written as v1
    // A connection never rebuilt: only its binding (crashes 0, LIVE, no incarnation), v2 only.
    const original: ConnectionState = { update: 1, phase: 'LIVE', crashes: 0, incarnations: [], boundTo: BOUND };
    expect(encodeState(original)).toHaveLength(24);
    expect(decodeState(encodeState(original))).toEqual(original);
    expect(() => encodeState({ ...original, boundTo: null })).toThrow(FtcpError);
    expect(() => encodeState({ ...original, phase: 'MASKED' })).toThrow(FtcpError);
    expect(() => encodeState({ ...REPLAY, boundTo: { boot: 'xyz', generation: 1 } })).toThrow(FtcpError);
    expect(() => encodeState({ ...REPLAY, boundTo: { boot: BOUND.boot, generation: -1 } })).toThrow(FtcpError);
    // Malformed v2 bytes: the flag byte, a length of the other version.
    expect(decodeState(Buffer.concat([Buffer.from([2]), v2.subarray(1, 3), Buffer.from([0]), v2.subarray(4)]))).toBeNull();
    expect(decodeState(Buffer.concat([Buffer.from([1]), v2.subarray(1)]))).toBeNull();
    expect(decodeState(v2.subarray(0, v2.length - 12))).toBeNull();
  });

  it('property: any valid record round-trips', () => {
    const inc = fc.record({
      serverIsn: fc.nat({ max: 0xffffffff }), seqDelta: fc.nat({ max: 0xffffffff }), tsDelta: fc.nat({ max: 0xffffffff }),
      server: fc.record({ addr: fc.ipV4(), port: fc.integer({ min: 1, max: 0xffff }) }),
      serverSidePort: fc.integer({ min: 1, max: 0xffff }), oldShift: fc.integer({ min: 0, max: 14 }), newShift: fc.integer({ min: 0, max: 14 }),
    });
    const rec = fc.record({
      update: fc.integer({ min: 1, max: 0xffffffff }),
      phase: fc.constantFrom(...STATE_PHASES),
      extra: fc.nat({ max: 1000 }),
      incarnations: fc.array(inc, { minLength: 1, maxLength: MAX_INCARNATIONS }),
      boundTo: fc.option(fc.record({ boot: fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b).toString('hex')), generation: fc.nat({ max: 0xffffffff }) }), { nil: undefined }),
    }).map(({ extra, boundTo, ...r }) => ({ ...r, crashes: r.incarnations.length + extra, ...(boundTo !== undefined ? { boundTo } : {}) }));
    fc.assert(fc.property(rec, (s) => {
      expect(decodeState(encodeState(s))).toEqual(s);
    }), { numRuns: 300 });
  });

  it('decode is total: each malformation gives null', () => {
    const bad = (edit: (b: Buffer) => Buffer | Uint8Array) => decodeState(edit(Buffer.from(GOLDEN)));
    expect(bad((b) => b.subarray(0, 11))).toBeNull(); // shorter than the header
    expect(bad((b) => b.subarray(0, b.length - 1))).toBeNull(); // count says one incarnation, bytes say less
    expect(bad((b) => Buffer.concat([b, Buffer.alloc(24)]))).toBeNull(); // trailing bytes
    expect(bad((b) => ((b[0] = 2), b))).toBeNull(); // another version
    expect(bad((b) => ((b[1] = 5), b))).toBeNull(); // no such phase
    expect(bad((b) => ((b[2] = 0), b.subarray(0, 12)))).toBeNull(); // REPLAY without its translation
    expect(bad((b) => ((b[2] = MAX_INCARNATIONS + 1), b))).toBeNull(); // too many
    expect(bad((b) => ((b[3] = 1), b))).toBeNull(); // reserved byte
    expect(bad((b) => (b.writeUInt32BE(0, 4), b))).toBeNull(); // update 0
    expect(bad((b) => (b.writeUInt32BE(0, 8), b))).toBeNull(); // fewer crashes than incarnations
    expect(bad((b) => (b.writeUInt16BE(0, 12 + 18), b))).toBeNull(); // port 0 toward the incarnation
    expect(bad((b) => (b.writeUInt16BE(0, 12 + 16), b))).toBeNull(); // server port 0
    expect(bad((b) => ((b[12 + 20] = 15), b))).toBeNull(); // window shift beyond 14 (RFC 7323)
    expect(bad((b) => (b.writeUInt16BE(1, 12 + 22), b))).toBeNull(); // reserved word
    expect(bad(() => Buffer.alloc(STATE_MAX_BYTES + 24))).toBeNull(); // over the bound
    expect(decodeState('not bytes' as unknown as Uint8Array)).toBeNull();
    expect(stateFromHex('zz')).toBeNull();
    expect(stateFromHex(GOLDEN.toString('hex') + '0')).toBeNull();
    expect(stateFromHex(42)).toBeNull();
    expect(stateFromHex('00'.repeat(STATE_MAX_BYTES + 1))).toBeNull();
  });

  it('property: random bytes never throw', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
      const s = decodeState(b);
      if (s !== null) expect(encodeState(s).equals(Buffer.from(b))).toBe(true); // accepted only if canonical
    }), { numRuns: 2000 });
    // Random bodies behind a valid header hit the field checks rather than the length checks.
    fc.assert(fc.property(fc.uint8Array({ minLength: 24, maxLength: 24 }), fc.integer({ min: 0, max: 4 }), (body, phase) => {
      const b = Buffer.concat([Buffer.from([1, phase, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1]), body]);
      const s = decodeState(b);
      if (s !== null) expect(encodeState(s).equals(b)).toBe(true);
    }), { numRuns: 2000 });
  });

  it('encode refuses a record that breaks the rules (FTCP_LOG_BAD_STATE)', () => {
    const refuses = (s: unknown) => {
      expect(() => encodeState(s as ConnectionState)).toThrow(FtcpError);
      expect(() => encodeState(s as ConnectionState)).toThrow(expect.objectContaining({ code: 'FTCP_LOG_BAD_STATE' }) as Error);
    };
    refuses({ ...REPLAY, update: 0 });
    refuses({ ...REPLAY, update: 2 ** 32 });
    refuses({ ...REPLAY, phase: 'FAILED' });
    refuses({ ...REPLAY, crashes: 0 });
    refuses({ ...REPLAY, incarnations: [] });
    refuses({ ...REPLAY, crashes: 9, incarnations: Array(MAX_INCARNATIONS + 1).fill(INC) });
    refuses({ ...REPLAY, incarnations: [{ ...INC, newShift: 15 }] });
    refuses({ ...REPLAY, incarnations: [{ ...INC, seqDelta: -1 }] });
    refuses({ ...REPLAY, incarnations: [{ ...INC, serverSidePort: 0 }] });
    refuses({ ...REPLAY, incarnations: [{ ...INC, server: { addr: 'fe80::1', port: 1 } }] });
    refuses({ ...REPLAY, incarnations: 'none' });
  });
});
