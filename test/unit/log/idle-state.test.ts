/**
 * The per-connection state of the embedded memory log stays small for idle connections
 * (issue 5, scale): no slab and no held-segment array until bytes need them, one class for
 * every connection's state, the SYN options copied (from Node's pool) at open.
 */
import { describe, expect, it } from 'vitest';
import { MemoryLog, SlabStore } from '../../../src/log/memory.js';
import { ConnRecord } from '../../../src/log/common.js';
import { Reassembler } from '../../../src/log/reassembler.js';
import { openMeta } from './helpers.js';

describe('idle connection state', () => {
  it('a SlabStore holds no slab until its first byte, and stores never share their slab lists', () => {
    const a = new SlabStore(0);
    const b = new SlabStore(0);
    expect(a.slabCount).toBe(0);
    expect(b.slabCount).toBe(0);
    a.append(Buffer.from('hello'));
    expect(a.slabCount).toBe(1);
    expect(b.slabCount).toBe(0); // the shared empty list was not written to
    b.append(Buffer.from('xy'));
    expect(a.read(0, 5).toString()).toBe('hello');
    expect(b.read(0, 2).toString()).toBe('xy');
    expect(a.discardBelow(5)).toBe(5);
    expect(b.slabCount).toBe(1);
  });

  it('a Reassembler allocates its held-segment list at the first gap only, per instance', () => {
    const sink: Array<[number, string]> = [];
    const r1 = new Reassembler(0, 1 << 20);
    const r2 = new Reassembler(0, 1 << 20);
    r1.push(0, Buffer.from('abc'), (d, o) => sink.push([o, Buffer.from(d).toString()]));
    expect(r1.heldSegments).toBe(0);
    r1.push(10, Buffer.from('later'), () => {});
    expect(r1.heldSegments).toBe(1);
    expect(r2.heldSegments).toBe(0);
    r2.push(5, Buffer.from('zz'), () => {});
    expect(r2.heldSegments).toBe(1);
    expect(r1.heldSegments).toBe(1);
    r1.push(3, Buffer.from('defghij'), (d, o) => sink.push([o, Buffer.from(d).toString()]));
    expect(r1.heldSegments).toBe(0);
    expect(sink).toEqual([[0, 'abc'], [3, 'defghij'], [10, 'later']]);
  });

  it("every memory-log connection's state is a ConnRecord, the SYN options are private copies", async () => {
    const log = new MemoryLog();
    const meta = openMeta();
    const opts = Buffer.from(meta.clientSynOptions);
    const id1 = await log.open(meta);
    const id2 = await log.open(openMeta());
    // Whatever the caller does to its buffers after open, the log's record keeps the bytes.
    (meta.clientSynOptions as Uint8Array).fill(0);
    const rec = log.listActive().find((r) => r.id === id1)!;
    expect(Buffer.from(rec.clientSynOptions).equals(opts)).toBe(true);
    const states = (log as unknown as { conns: Map<number, unknown> }).conns;
    expect(states.get(id1)).toBeInstanceOf(ConnRecord);
    expect(states.get(id2)).toBeInstanceOf(ConnRecord);
    expect(Object.keys(states.get(id1)!)).toEqual(Object.keys(states.get(id2)!));
    log.append(id1, 0, Buffer.from('data'));
    expect((await log.read(id1, 0, 4)).toString()).toBe('data');
    await log.shutdown();
  });
});
