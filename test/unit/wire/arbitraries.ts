/** Shared fast-check generators for the wire tests. */
import fc from 'fast-check';
import type { TcpPacketRepr } from '../../../src/wire/index.js';

export const u16 = fc.oneof(fc.constantFrom(0, 0xffff, 1, 0xfffe, 0x8000), fc.integer({ min: 0, max: 0xffff }));
export const u32 = fc.oneof(
  fc.constantFrom(0, 0xffffffff, 0xffff0000, 0x0000ffff, 1),
  fc.integer({ min: 0, max: 0xffffffff }),
);

export const arbTcpRepr: fc.Arbitrary<TcpPacketRepr> = fc.record({
  src: u32, dst: u32, srcPort: u16, dstPort: u16, seq: u32, ack: u32,
  flags: fc.integer({ min: 0, max: 255 }), window: u16,
  options: fc.integer({ min: 0, max: 10 }).chain((n) => fc.uint8Array({ minLength: n * 4, maxLength: n * 4 })),
  payload: fc.uint8Array({ maxLength: 64 }),
  ttl: fc.integer({ min: 0, max: 255 }), id: u16, tos: fc.integer({ min: 0, max: 255 }), urgent: u16,
});

