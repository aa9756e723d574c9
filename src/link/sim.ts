/**
 * A seeded simulated network for link endpoints (test support, kept in src so the log
 * and supervisor layers can reuse it). Two endpoints, 'a' and 'b', joined by up to two
 * paths; each path and direction has its own loss, duplication, reordering, delay and
 * up/down switch. Time is virtual: `run(ms)` advances the clock, delivering datagrams
 * and calling each endpoint's `tick` every `tickMs`, in a deterministic order fixed by
 * the seed.
 *
 *     a ──path 0 (a→b faults, b→a faults)── b
 *       ──path 1 (a→b faults, b→a faults)──
 */
import { LinkEndpoint, type LinkOptions } from './endpoint.js';
import { mulberry32 } from '../util/rng.js';

export interface PathFault {
  /** Probability a datagram is dropped. */
  loss: number;
  /** Probability a datagram is delivered twice. */
  dup: number;
  /** Probability a datagram gets up to `reorderMs` extra delay (so it is overtaken). */
  reorder: number;
  reorderMs: number;
  /** Base one-way delay and uniform jitter, ms. */
  delayMs: number;
  jitterMs: number;
  /** A path that is down drops everything. */
  up: boolean;
  /**
   * Capacity of the path in this direction, bytes per ms (0: unlimited). Datagrams are
   * serialised one after the other: a burst waits in a queue of `queueBytes`, and what
   * does not fit is dropped (tail drop), as a NIC queue or a socket buffer does.
   */
  rateBytesPerMs: number;
  queueBytes: number;
}

export const CLEAN_PATH: PathFault = {
  loss: 0,
  dup: 0,
  reorder: 0,
  reorderMs: 10,
  delayMs: 1,
  jitterMs: 0,
  up: true,
  rateBytesPerMs: 0,
  queueBytes: 4 << 20,
};

export type SimSide = 'a' | 'b';

export interface SimOptions {
  seed: number;
  paths?: number;
  /** Tick period of both endpoints, ms. Default 1. */
  tickMs?: number;
  /** Fault settings applied to every path and direction. */
  fault?: Partial<PathFault>;
}


interface Ev {
  at: number;
  order: number;
  to: SimSide;
  path: number;
  dg: Buffer;
}

/** Min-heap of events by (at, order). */
class EventHeap {
  private readonly h: Ev[] = [];
  get size(): number {
    return this.h.length;
  }
  peek(): Ev | undefined {
    return this.h[0];
  }
  private less(x: Ev, y: Ev): boolean {
    return x.at < y.at || (x.at === y.at && x.order < y.order);
  }
  push(e: Ev): void {
    const h = this.h;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): Ev | undefined {
    const h = this.h;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

export class SimNetwork {
  now = 0;
  readonly rng: () => number;
  readonly paths: number;
  readonly tickMs: number;
  /** Datagrams handed to the network, per sender (for replay/forgery tests). */
  readonly wire: { from: SimSide; path: number; dg: Buffer }[] = [];
  /** Keep a copy of every datagram in `wire` (off by default). */
  recordWire = false;
  /** A targeted fault: datagrams for which this returns true are dropped. */
  dropIf: ((from: SimSide, path: number, dg: Buffer) => boolean) | null = null;
  private readonly faults: Record<SimSide, PathFault[]>;
  private readonly eps: Partial<Record<SimSide, LinkEndpoint>> = {};
  /** Per sender and path: when the link finishes serialising what it has queued (ms). */
  private readonly busyUntil: Record<SimSide, number[]>;
  /** Datagrams dropped because the path's queue was full (capacity model). */
  queueDrops = 0;
  private readonly q = new EventHeap();
  private order = 0;
  private nextTick = 0;

  constructor(opts: SimOptions) {
    this.rng = mulberry32(opts.seed);
    this.paths = opts.paths ?? 2;
    this.tickMs = opts.tickMs ?? 1;
    const mk = (): PathFault[] =>
      Array.from({ length: this.paths }, () => ({ ...CLEAN_PATH, ...opts.fault }));
    this.faults = { a: mk(), b: mk() };
    this.busyUntil = { a: new Array<number>(this.paths).fill(0), b: new Array<number>(this.paths).fill(0) };
  }

  /** Create endpoint `side`, wired to this network (replaces an earlier one: a restart). */
  addEndpoint(side: SimSide, opts: Omit<LinkOptions, 'transmit' | 'now'>): LinkEndpoint {
    const ep = new LinkEndpoint({
      paths: this.paths,
      name: side,
      ...opts,
      now: this.now,
      transmit: (dg, path) => this.send(side, path, dg),
    });
    this.eps[side] = ep;
    return ep;
  }

  endpoint(side: SimSide): LinkEndpoint {
    const ep = this.eps[side];
    if (ep === undefined) throw new Error(`no endpoint ${side}`);
    return ep;
  }

  /** Change the faults of the datagrams `from` sends on `path` (both directions if from omitted). */
  setFault(path: number, fault: Partial<PathFault>, from?: SimSide): void {
    for (const side of from === undefined ? (['a', 'b'] as const) : [from]) {
      Object.assign(this.faults[side][path]!, fault);
    }
  }

  setPathUp(path: number, up: boolean): void {
    this.setFault(path, { up });
  }

  /** Deliver raw bytes to `to` on `path` after `delayMs` (forged or replayed datagrams). */
  inject(to: SimSide, path: number, dg: Buffer, delayMs = 0): void {
    this.q.push({ at: this.now + delayMs, order: this.order++, to, path, dg });
  }

  private send(from: SimSide, path: number, dg: Buffer): void {
    if (this.recordWire) this.wire.push({ from, path, dg: Buffer.from(dg) });
    const f = this.faults[from][path];
    if (f === undefined || !f.up) return;
    if (this.dropIf !== null && this.dropIf(from, path, dg)) return;
    const to: SimSide = from === 'a' ? 'b' : 'a';
    let queued = 0;
    if (f.rateBytesPerMs > 0) {
      // Capacity: the datagram leaves once the ones before it have been serialised.
      const start = Math.max(this.now, this.busyUntil[from][path]!);
      if ((start - this.now) * f.rateBytesPerMs + dg.length > f.queueBytes) {
        this.queueDrops++;
        return;
      }
      this.busyUntil[from][path] = start + dg.length / f.rateBytesPerMs;
      queued = this.busyUntil[from][path]! - this.now;
    }
    if (this.rng() < f.loss) return;
    const copies = this.rng() < f.dup ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      let d = queued + f.delayMs + this.rng() * f.jitterMs;
      if (this.rng() < f.reorder) d += this.rng() * f.reorderMs;
      this.q.push({ at: this.now + d, order: this.order++, to, path, dg });
    }
  }

  /** Advance virtual time by `ms`. */
  run(ms: number): void {
    this.runUntil(() => false, ms);
  }

  /**
   * Advance until `done()` holds (checked after every event) or `maxMs` passes.
   * Returns whether `done()` held.
   */
  runUntil(done: () => boolean, maxMs: number): boolean {
    const end = this.now + maxMs;
    for (;;) {
      if (done()) return true;
      const ev = this.q.peek();
      const tAt = this.nextTick;
      if (ev !== undefined && ev.at <= tAt && ev.at <= end) {
        this.q.pop();
        this.now = Math.max(this.now, ev.at);
        const f = this.faults[ev.to === 'a' ? 'b' : 'a'][ev.path];
        // A path that went down also loses what was in flight on it.
        if (f === undefined || f.up) this.eps[ev.to]?.receive(ev.dg, ev.path, this.now);
        continue;
      }
      if (tAt > end) {
        this.now = end;
        return done();
      }
      this.now = tAt;
      this.nextTick = tAt + this.tickMs;
      this.eps.a?.tick(this.now);
      this.eps.b?.tick(this.now);
    }
  }
}
