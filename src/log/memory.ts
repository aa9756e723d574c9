/**
 * The in-memory log: the gateway process itself is the stable storage, so a byte is
 * stable as soon as the gap-free prefix holds it. It protects against a crash of the
 * server, not of the gateway.
 *
 * Bytes live in slabs (4 KiB doubling up to 1 MiB, each byte copied once), never in one
 * growing Buffer, so a 200 MB stream costs ~200 slabs and no quadratic copying. Slabs of
 * 64 KiB made a protected upload at 5 Gb/s allocate ~10,000 ArrayBuffers a second, and V8's
 * garbage collector (marking, ArrayBuffer sweeping) took a quarter of the gateway's CPU;
 * with 1 MiB slabs the same iperf3 upload went from 4.9 to 5.9–6.3 Gb/s (4 MiB: no better).
 */
import { BaseLog, ConnRecord, type LogOptions } from './common.js';
import type { ConnectionMeta, ConnectionState } from './types.js';
import { requestMajorGc } from '../util/gc.js';
import { totalmem } from 'node:os';

const MIN_SLAB = 4 * 1024;
const MAX_SLAB = 1024 * 1024;

interface Slab {
  /** Stream offset of buf[0]. */
  readonly start: number;
  readonly buf: Buffer;
  /** Bytes filled. */
  len: number;
}

/** A stream's bytes from some base offset on, as a list of slabs. */
const NO_SLABS: Slab[] = Object.freeze([]) as unknown as Slab[];

export class SlabStore {
  /** NO_SLABS (shared, frozen) until the first byte: an idle connection allocates nothing here. */
  private slabs: Slab[] = NO_SLABS;
  private head = 0;
  /** Stream offset just past the last byte stored. */
  end: number;
  /** Bytes of the live slabs (allocated, filled or not): the memory this store holds. */
  capacity = 0;

  constructor(start = 0) {
    this.end = start;
  }

  /** Number of live slabs (for tests and stats). */
  get slabCount(): number {
    return this.slabs.length - this.head;
  }

  /** Copies `data` in (it continues the stream at `end`). */
  append(data: Uint8Array): void {
    let src = 0;
    while (src < data.length) {
      let last = this.slabs.length > this.head ? this.slabs[this.slabs.length - 1]! : undefined;
      if (last === undefined || last.len === last.buf.length) {
        if (this.slabs === NO_SLABS) this.slabs = [];
        const size = Math.min(MAX_SLAB, Math.max(MIN_SLAB, last === undefined ? 0 : last.buf.length * 2));
        last = { start: this.end, buf: Buffer.allocUnsafe(size), len: 0 };
        this.slabs.push(last);
        this.capacity += size;
      }
      const n = Math.min(data.length - src, last.buf.length - last.len);
      last.buf.set(data.subarray(src, src + n), last.len);
      last.len += n;
      src += n;
      this.end += n;
    }
  }

  /** Copies out [start, end); the range must be stored. */
  read(start: number, end: number): Buffer {
    const out = Buffer.allocUnsafe(end - start);
    let i = this.find(start);
    let pos = start;
    while (pos < end) {
      const s = this.slabs[i];
      if (s === undefined || s.start > pos) throw new Error(`invariant violated: slab missing at ${pos}`);
      const from = pos - s.start;
      const n = Math.min(s.len - from, end - pos);
      s.buf.copy(out, pos - start, from, from + n);
      pos += n;
      i++;
    }
    return out;
  }

  /** Drops slabs lying entirely below `through`. Returns the stream bytes freed. */
  discardBelow(through: number): number {
    let freed = 0;
    while (this.head < this.slabs.length) {
      const s = this.slabs[this.head]!;
      if (s.start + s.len > through) break;
      freed += s.len;
      this.capacity -= s.buf.length;
      this.slabs[this.head] = undefined as unknown as Slab; // the slab goes now, not at the next compaction
      this.head++;
    }
    if (this.head > 64 && this.head * 2 > this.slabs.length) {
      this.slabs = this.slabs.slice(this.head);
      this.head = 0;
    }
    return freed;
  }

  /** Lets go of every slab (the store is then empty at `end`). Returns the capacity freed. */
  clear(): number {
    const freed = this.capacity;
    this.slabs = NO_SLABS;
    this.head = 0;
    this.capacity = 0;
    return freed;
  }

  /** Index of the slab holding `offset` (the last slab starting at or before it). */
  private find(offset: number): number {
    let lo = this.head;
    let hi = this.slabs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.slabs[mid]!.start <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

class MemConn extends ConnRecord {
  readonly store = new SlabStore(0);
}

/** The gateway's default log budget: this share of the machine's memory (--log-budget). */
export const DEFAULT_BUDGET_SHARE = 0.25;
/**
 * The default per-connection bound (--log-conn-bound): a quarter of the budget, at most
 * 1 GiB. A quarter, so that one connection cannot take the budget from the others; 1 GiB,
 * because a rebuild replays a connection's log from its first byte, and replaying more
 * takes seconds during which the connection is masked (and the new server must take it all).
 */
export const DEFAULT_CONN_BOUND_CAP = 2 ** 30;

/** The memory the gateway may count on: the machine's, or its cgroup's limit when lower. */
export function usableMemory(): number {
  const total = totalmem();
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  return constrained !== undefined && constrained > 0 && constrained < total ? constrained : total;
}

/** The memory log's default bounds for a machine with `memory` bytes. */
export function defaultMemoryBounds(memory = usableMemory()): { maxBytes: number; maxBytesPerConn: number } {
  const maxBytes = Math.floor(memory * DEFAULT_BUDGET_SHARE);
  return { maxBytes, maxBytesPerConn: Math.min(DEFAULT_CONN_BOUND_CAP, Math.floor(maxBytes / 4)) };
}

/** Freeing this many slab bytes (close, gc) asks V8 for a major GC (see src/util/gc.ts). */
export const GC_AFTER_FREED = 64 * 1024 * 1024;

/**
 * The memory log. `maxBytes` and `maxBytesPerConn` bound the stream bytes it holds; the
 * memory for them (`usage().memory`, its slabs) exceeds them by at most one partly filled
 * slab per connection: < 1 MiB, and < the bytes themselves while a connection holds less
 * than 1 MiB (slabs double from 4 KiB). Out-of-order bytes waiting for a gap (at most
 * `maxHeldBytes`, 4 MiB, per connection) are not counted.
 */
export class MemoryLog extends BaseLog<MemConn> {
  /** Slab bytes held by all connections. */
  private slabBytes = 0;
  /** Slab bytes freed since the last GC request. */
  private freedSinceGc = 0;

  constructor(options: LogOptions = {}) {
    super(options);
  }

  protected openConn(meta: ConnectionMeta): Promise<number> {
    this.conns.set(meta.id, new MemConn(meta, 0, this.maxHeldBytes));
    return Promise.resolve(meta.id);
  }

  protected accept(c: MemConn, data: Uint8Array, offset: number): void {
    const before = c.store.capacity;
    c.store.append(data);
    this.slabBytes += c.store.capacity - before;
    this.advanceStable(c, offset + data.length);
  }

  protected override memoryBytes(): number {
    return this.slabBytes;
  }

  private freed(n: number): void {
    this.slabBytes -= n;
    this.freedSinceGc += n;
    if (this.freedSinceGc >= GC_AFTER_FREED) {
      this.freedSinceGc = 0;
      requestMajorGc();
    }
  }

  protected persistFin(c: MemConn): void {
    c.finStable = true;
    this.advanceStable(c, c.stableData);
  }

  /** Stable at once, like the bytes: and gone with this process, like them. */
  protected writeState(c: MemConn, state: ConnectionState): void {
    this.stateStable(c, state);
  }

  protected discard(c: MemConn): number {
    const before = c.store.capacity;
    const n = c.store.discardBelow(c.gcThrough);
    this.freed(before - c.store.capacity);
    return n;
  }

  protected drop(c: MemConn): void {
    // Dropped here, not left to go with the connection state: something may still refer
    // to the state (a pending read), and the GC request needs the count.
    this.freed(c.store.clear());
  }

  protected readRange(c: MemConn, start: number, end: number): Buffer {
    return c.store.read(start, end);
  }

  protected release(): Promise<void> {
    for (const id of [...this.conns.keys()]) this.close(id);
    return Promise.resolve();
  }
}
