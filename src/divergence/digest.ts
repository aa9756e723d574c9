/**
 * What a client may have of a protected connection's output: the digest of every server byte
 * the gateway forwarded (DESIGN.md §7b, issue 13 item 1).
 *
 *   out-stream offsets (the client's numbering):
 *
 *     0 ──── B ──── 2B ── … ── k·B ─────── hashedEnd ═══════════ end ··· held (reordered)
 *     │ one 64-bit hash per      │ the partial │ kept: the bytes     │ beyond a gap, copied,
 *     │ full block (`hashes`)    │ block's     │ themselves (the     │ ≤ keptCap (Reassembler)
 *     │                          │ running     │ client may lack     │
 *     │                          │ hash state  │ them: [cliAcked,    │
 *     │                          │             │ sndMax))            │
 *
 *   Bytes move from kept to hashed when the client acknowledges them (ackTo: on the next
 *   forward, at a crash, in the gateway's sweep). An idle connection whose output the client
 *   acked whole holds its block hashes and one hash state: no byte.
 *
 *   `pin` (a comparison runs, compare.ts): kept bytes at or above it are not released when
 *   hashed, the comparator reads the originals there until it retires.
 *
 * The hash: xxHash64 (the xxhash-wasm package: a streaming state whose digest() does not end
 * it). It guards against accident (a non-deterministic server), not an adversary: 64 bits
 * make a missed difference in a block ~5e-20 likely. Measured on this machine per 1448-byte
 * segment: 270-500 ns against SHA-1's 1,040-1,270 ns (node:crypto with SHA-NI), which the
 * first version used (`scripts/bench digest` for the digest as a whole).
 *
 * Bounded: a per-connection cap on kept (and held) bytes and a gateway-wide budget on
 * digest + kept bytes (DigestBudget). Past either, or when the digest cannot be complete (a
 * client acks bytes the gateway never forwarded, reordered bytes beyond the hold cap), the
 * digest is abandoned: its memory freed, `abandoned` says why, the connection is no longer
 * verified (the caller counts and logs it once).
 */
import xxhash, { type XXHash } from 'xxhash-wasm';
import { Reassembler } from '../log/reassembler.js';
import type { Offset } from '../wire/seq.js';

/** The digest's bounds (shown in `ftcp status` limits and ftcp_limit). */
export interface DigestLimits {
  /** Bytes per hashed block, aligned on out-stream offsets. */
  blockBytes: number;
  /** Kept (unacknowledged) plus held (reordered) bytes of one connection at most. */
  keptCapBytes: number;
  /** Digest (block hashes) plus kept bytes over every connection at most. */
  budgetBytes: number;
}

export const defaultDigestLimits: Readonly<DigestLimits> = Object.freeze({
  blockBytes: 16 * 1024,
  keptCapBytes: 8 * 1024 * 1024,
  budgetBytes: 512 * 1024 * 1024,
});

/** Kept bytes live in chunks of this size (released whole once hashed and unpinned). */
export const KEPT_CHUNK = 16 * 1024;

/** Kept chunks the budget keeps for reuse (4 MiB). */
const POOL_CHUNKS = 256;

/** Bytes of digest per block: its 64-bit hash. */
export const HASH_BYTES = 8;

/** The WebAssembly instance, made once when this module loads (it is synchronous from then on). */
const XXH = await xxhash();

/** A streaming hash state: update() as bytes come, digest() at any time without ending it. */
export type HashState = XXHash<bigint>;

/** The 64-bit hash of what a state took so far, as two u32 (hi, lo). */
export function hash64(h: HashState): [number, number] {
  const d = h.digest();
  return [Number(d >> 32n), Number(d & 0xffff_ffffn)];
}

export function newHashState(): HashState {
  return XXH.create64(0n);
}

/** Gateway-wide accounting of every digest's memory, against the budget. */
export class DigestBudget {
  /** Bytes of block hashes over every live digest. */
  digestBytes = 0;
  /** Kept (and held) bytes over every live digest. */
  keptBytes = 0;
  /** Released kept chunks for reuse (at most POOL_CHUNKS): no allocation, no fresh pages, per chunk of output. */
  private readonly pool: Buffer[] = [];
  constructor(readonly limits: Readonly<DigestLimits>) {}

  chunk(): Buffer {
    return this.pool.pop() ?? Buffer.allocUnsafeSlow(KEPT_CHUNK);
  }

  recycle(c: Buffer): void {
    if (this.pool.length < POOL_CHUNKS) this.pool.push(c);
  }

  get used(): number {
    return this.digestBytes + this.keptBytes;
  }
}

/** The digest frozen at a crash: what the comparison checks the new incarnation's output against. */
export interface DigestSnapshot {
  /** What the client had acknowledged (cliAcked at the crash): below it, hashes only. */
  acked0: Offset;
  /** What the gateway had forwarded (sndMax, the digest complete): [acked0, end0) is kept. */
  end0: Offset;
  /** Full blocks below acked0 (their hashes stay in the digest). */
  blocks0: number;
  /** The hash of the partial block [blocks0·B, acked0), or null when acked0 is block-aligned. */
  partial0: [number, number] | null;
}

export class OutDigest {
  readonly blockBytes: number;
  /** Completed blocks' hashes, (hi, lo) pairs; grows by doubling. */
  private hashes = new Uint32Array(8);
  blocks = 0;
  /** Bytes hashed (blocks · B plus the partial block's). */
  hashedEnd: Offset = 0;
  /** The running hash of the partial block [blocks · B, hashedEnd); null when empty. */
  private partial: HashState | null = null;
  /** Kept bytes: chunk i holds [chunkBase + i · KEPT_CHUNK, …). */
  private chunks: Buffer[] = [];
  private chunkBase: Offset = 0;
  /** In-order recording: `end` is the gap-free prefix; reordered bytes are held (bounded). */
  private readonly reasm: Reassembler;
  /** Kept bytes at or above this are not released (a comparison reads them). */
  pin: Offset = Number.POSITIVE_INFINITY;
  /** Why the digest was abandoned (null: it is live). */
  abandoned: string | null = null;
  /** Set once the caller counted and logged the abandonment. */
  reported = false;
  private accDigest = 0;
  private accKept = 0;

  constructor(private readonly budget: DigestBudget) {
    this.blockBytes = budget.limits.blockBytes;
    this.reasm = new Reassembler(0, budget.limits.keptCapBytes);
  }

  get limits(): Readonly<DigestLimits> {
    return this.budget.limits;
  }

  /** End of the gap-free recorded prefix (what the client may have, as far as the gateway forwarded it). */
  get end(): Offset {
    return this.reasm.end;
  }

  /** Bytes held here: kept (not yet released) plus reordered ones waiting for a gap. */
  get keptBytes(): number {
    return this.abandoned !== null ? 0 : this.end - this.keepFrom() + this.reasm.heldBytes;
  }

  /** Bytes of block hashes. */
  get digestBytes(): number {
    return this.abandoned !== null ? 0 : this.blocks * HASH_BYTES;
  }

  /** The hash of block i (i < blocks). */
  hashAt(i: number): [number, number] {
    return [this.hashes[2 * i]!, this.hashes[2 * i + 1]!];
  }

  /**
   * Forwarded bytes at out-stream offset `off` (the client's ack `acked` applied first). Bytes
   * below `end` are retransmissions and ignored; beyond a gap they are held.
   */
  record(off: Offset, data: Uint8Array, acked: Offset): void {
    if (this.abandoned !== null) return;
    // Acks are applied a block at a time (hashing in large pieces: ~1 µs per update call);
    // the sweep and a crash apply the rest.
    if (acked - this.hashedEnd >= this.blockBytes || acked > this.end) this.ackTo(acked);
    if (this.abandoned !== null || off + data.length <= this.end) return;
    const res = this.reasm.push(off, data, (d, at) => this.keep(d, at));
    if (res.dropped > 0) this.abandon(`reordered output beyond the hold cap (${this.budget.limits.keptCapBytes} bytes)`);
    else this.checkBounds();
    this.sync();
  }

  /** The client acknowledged through `acked`: what it has moves from kept into the hashes. */
  ackTo(acked: Offset): void {
    if (this.abandoned !== null || acked <= this.hashedEnd) return;
    if (acked > this.end) {
      this.abandon(`the client acknowledged offset ${acked}, the gateway recorded only ${this.end}`);
      this.sync();
      return;
    }
    const B = this.blockBytes;
    while (this.hashedEnd < acked) {
      const blockEnd = (Math.floor(this.hashedEnd / B) + 1) * B;
      const to = Math.min(acked, blockEnd);
      this.partial ??= newHashState();
      this.readKept(this.hashedEnd, to, (v) => this.partial!.update(v));
      this.hashedEnd = to;
      if (to === blockEnd) {
        const [hi, lo] = hash64(this.partial);
        this.partial = null;
        if (2 * this.blocks + 2 > this.hashes.length) {
          const grown = new Uint32Array(this.hashes.length * 2);
          grown.set(this.hashes);
          this.hashes = grown;
        }
        this.hashes[2 * this.blocks] = hi;
        this.hashes[2 * this.blocks + 1] = lo;
        this.blocks++;
      }
    }
    this.release();
    this.sync();
  }

  /**
   * The snapshot a rebuild compares against (the client's ack `acked` applied first), or null
   * when there is none to take (abandoned). Pins the kept bytes [acked0, end0).
   */
  freeze(acked: Offset): DigestSnapshot | null {
    this.ackTo(acked);
    if (this.abandoned !== null) return null;
    const acked0 = this.hashedEnd;
    this.pin = acked0;
    return {
      acked0,
      end0: this.end,
      blocks0: this.blocks,
      partial0: this.partial !== null ? hash64(this.partial) : null,
    };
  }

  /** The comparison no longer reads kept bytes. */
  unpin(): void {
    this.pin = Number.POSITIVE_INFINITY;
    this.release();
    this.sync();
  }

  /**
   * Calls `fn` with views of the kept bytes [from, to) in order (valid until the next change).
   * The caller keeps within [max(hashedEnd, pin) floor, end): see keepFrom.
   */
  readKept(from: Offset, to: Offset, fn: (v: Uint8Array) => void): void {
    let o = from;
    while (o < to) {
      const i = Math.floor((o - this.chunkBase) / KEPT_CHUNK);
      const c = this.chunks[i];
      if (c === undefined) throw new Error(`digest: kept byte ${o} not held (chunks from ${this.chunkBase}, ${this.chunks.length})`);
      const at = o - this.chunkBase - i * KEPT_CHUNK;
      const n = Math.min(to - o, KEPT_CHUNK - at);
      fn(c.subarray(at, at + n));
      o += n;
    }
  }

  /** Frees everything: the connection is gone (its accounting leaves the budget). */
  dispose(): void {
    this.abandoned ??= 'released';
    this.reported = true;
    this.drop();
  }

  /** Stops recording and frees the memory; `why` says why (the caller reports it once). */
  abandon(why: string): void {
    if (this.abandoned !== null) return;
    this.abandoned = why;
    this.drop();
  }

  private drop(): void {
    for (const c of this.chunks) this.budget.recycle(c);
    this.chunks = [];
    this.partial = null;
    this.hashes = new Uint32Array(0);
    this.reasm.setLimit(0);
    this.sync();
  }

  /** Copies in-order bytes at `at` (= the previous end) into the chunks. */
  private keep(d: Uint8Array, at: Offset): void {
    if (this.chunks.length === 0) this.chunkBase = Math.floor(at / KEPT_CHUNK) * KEPT_CHUNK;
    let o = at;
    let i = 0;
    while (i < d.length) {
      const ci = Math.floor((o - this.chunkBase) / KEPT_CHUNK);
      while (this.chunks.length <= ci) this.chunks.push(this.budget.chunk());
      const c = this.chunks[ci]!;
      const pos = o - this.chunkBase - ci * KEPT_CHUNK;
      const n = Math.min(d.length - i, KEPT_CHUNK - pos);
      c.set(d.subarray(i, i + n), pos);
      i += n;
      o += n;
    }
  }

  /** The lowest kept offset still needed: hashed bytes go, unless pinned. */
  private keepFrom(): Offset {
    return Math.min(this.hashedEnd, this.pin);
  }

  /** Releases the chunks wholly below keepFrom (every chunk when nothing is kept: an idle connection holds no byte). */
  private release(): void {
    const from = this.keepFrom();
    if (from >= this.end) {
      for (const c of this.chunks) this.budget.recycle(c);
      this.chunks = [];
      this.chunkBase = Math.floor(from / KEPT_CHUNK) * KEPT_CHUNK;
      return;
    }
    let n = 0;
    while (n < this.chunks.length && this.chunkBase + (n + 1) * KEPT_CHUNK <= from) n++;
    if (n > 0) {
      for (let i = 0; i < n; i++) this.budget.recycle(this.chunks[i]!);
      this.chunks.splice(0, n);
      this.chunkBase += n * KEPT_CHUNK;
    }
    if (this.chunks.length === 0) this.chunkBase = Math.floor(from / KEPT_CHUNK) * KEPT_CHUNK;
  }

  private checkBounds(): void {
    const lim = this.budget.limits;
    if (this.keptBytes > lim.keptCapBytes) {
      this.abandon(`unacknowledged output above the per-connection cap (${this.keptBytes} > ${lim.keptCapBytes} bytes)`);
      return;
    }
    const grow = this.keptBytes - this.accKept + this.digestBytes - this.accDigest;
    if (grow > 0 && this.budget.used + grow > lim.budgetBytes) {
      this.abandon(`the gateway's digest budget is used up (${this.budget.used} + ${grow} > ${lim.budgetBytes} bytes)`);
    }
  }

  /** Brings the budget up to date with this digest's memory. */
  private sync(): void {
    const d = this.digestBytes;
    const k = this.keptBytes;
    this.budget.digestBytes += d - this.accDigest;
    this.budget.keptBytes += k - this.accKept;
    this.accDigest = d;
    this.accKept = k;
  }
}
