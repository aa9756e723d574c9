/**
 * Type-level test of the `Seq` and `Offset` brands (src/wire/seq.ts): tsc must reject mixing
 * a sequence number (mod 2^32) with a stream offset (up to 2^53) or with a plain number.
 * Each `@ts-expect-error` line below fails `npx tsc -p tsconfig.test.json` ("unused
 * directive") the day the brands stop rejecting it, so this file guards the brands even
 * though the brands themselves do nothing at run time.
 */
import { describe, expect, it } from 'vitest';
import { seqAdd, seqDiff, seqLt, type Offset, type Seq } from '../../../src/wire/seq.js';
import { Flow } from '../../../src/flow/flow.js';
import type { PacketInfo } from '../../../src/wire/packet.js';
import { tcpSetAck } from '../../../src/wire/rewrite.js';

const isn = 0xfffffff0 as Seq;
const flow = new Flow(1, 0x0a000001, 40000, 0x0a000002, 5001, isn, Buffer.alloc(0), 0);

/** Never called: the lines in it are checked by tsc, not run. */
function mixing(p: PacketInfo, off: Offset, n: number): void {
  // @ts-expect-error a stream offset is not a delta of the mod-2^32 arithmetic
  seqAdd(p.seq, off);
  // @ts-expect-error nor a sum of two sequence numbers
  seqAdd(p.seq, p.ack);
  // @ts-expect-error an offset where a Seq is expected
  seqLt(off, p.seq);
  // @ts-expect-error a plain number where a Seq is expected (cast at a header read instead)
  seqDiff(n, p.ack);
  // @ts-expect-error a bare sum is a number, not a Seq
  const s: Seq = p.seq + off;
  // @ts-expect-error a Seq where an offset is expected
  flow.inSeq(p.seq);
  // @ts-expect-error an offset is not a sequence number
  flow.outOffset(flow.received);
  // @ts-expect-error a Seq stored as an in-stream offset
  flow.received = p.seq;
  // @ts-expect-error the ISN is a Seq
  flow.clientIsn = n;
  // @ts-expect-error the acceptability checks take offsets
  flow.clientRstOk(p.seq);
  // @ts-expect-error a header rewrite takes a Seq (flow.inSeq(off) converts)
  tcpSetAck(Buffer.alloc(40), 0, off);
  void s;
}

describe('Seq / Offset brands', () => {
  it('are type-only: the values are plain numbers and the conversions are unchanged', () => {
    expect(typeof mixing).toBe('function');
    // The allowed paths still typecheck and compute as before.
    const off: Offset = flow.inOffset(seqAdd(isn, 1 + 100));
    expect(off).toBe(100);
    const seq: Seq = flow.inSeq(off);
    expect(seq).toBe(seqAdd(isn, 101));
    expect(seqDiff(seq, isn)).toBe(101);
    expect(typeof seq).toBe('number');
  });
});
