/**
 * Test harness for the link layer: numbered, self-checking messages pumped from one
 * endpoint to the other, and the delivery promise checked at the end:
 *   * delivered ids strictly increase (in order, exactly once), contents intact;
 *   * every id the sender did not see reported lost was delivered.
 */
import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import type { LinkEndpoint, LinkOptions, LostReason, PeerEvent } from '../../../src/link/endpoint.js';
import type { SimNetwork, SimSide } from '../../../src/link/sim.js';

export const KEY = Buffer.from('00112233445566778899aabbccddeeff0011223344556677', 'hex');

/** Message i: [u32 i][u32 len][body]; body derived from i so corruption is caught. */
export function makeMessage(i: number, len: number): Buffer {
  const total = Math.max(8, len);
  const b = Buffer.alloc(total);
  b.writeUInt32BE(i, 0);
  b.writeUInt32BE(total, 4);
  let x = (i * 2654435761) >>> 0;
  for (let k = 8; k < total; k++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[k] = x >>> 24;
  }
  return b;
}

export function checkMessage(b: Buffer): number {
  const i = b.readUInt32BE(0);
  const total = b.readUInt32BE(4);
  if (total !== b.length) throw new Error(`message ${i}: length ${b.length} != ${total}`);
  const want = makeMessage(i, total);
  if (!want.equals(b)) throw new Error(`message ${i}: content differs`);
  return i;
}

/** Messages i = 0..total-1 from one endpoint, sizes from sizeOf(i). */
export class Flow {
  next = 0;
  readonly delivered: number[] = [];
  readonly lost = new Map<number, LostReason>();
  readonly events: PeerEvent[] = [];
  from!: LinkEndpoint;
  constructor(
    readonly total: number,
    readonly sizeOf: (i: number) => number = () => 64,
    perPump = Infinity,
  ) {
    this.perPump = perPump;
  }

  /** At most this many messages per pump() (a sending rate, as drive() pumps every slice). */
  perPump: number;

  /** Offer messages until the window refuses one (or perPump is reached). */
  pump(): void {
    let n = 0;
    while (this.next < this.total && n++ < this.perPump) {
      if (!this.from.send(makeMessage(this.next, this.sizeOf(this.next)))) return;
      // Link ids count accepted messages from 1; this flow is the only sender.
      expect(this.from.lastMessageId).toBe(this.next + 1);
      this.next++;
    }
  }

  /** Every message offered has been delivered or reported lost. */
  resolved(): boolean {
    if (this.next < this.total) return false;
    const got = new Set(this.delivered);
    for (let i = 0; i < this.total; i++) if (!got.has(i) && !this.lost.has(i)) return false;
    return true;
  }

  /** The delivery promise (see file header). */
  check(): void {
    for (let k = 1; k < this.delivered.length; k++) {
      if (!(this.delivered[k]! > this.delivered[k - 1]!)) {
        throw new Error(`out of order or duplicate: ${this.delivered[k - 1]} then ${this.delivered[k]}`);
      }
    }
    const got = new Set(this.delivered);
    const missing: number[] = [];
    for (let i = 0; i < this.next; i++) if (!got.has(i) && !this.lost.has(i)) missing.push(i);
    expect(missing, 'promised but neither delivered nor reported lost').toEqual([]);
    for (const i of this.delivered) expect(i).toBeLessThan(this.next);
  }

  digest(): string {
    return createHash('sha256').update(this.delivered.join(',')).digest('hex');
  }
}

export type EpOpts = Omit<LinkOptions, 'transmit' | 'now' | 'key' | 'onMessage' | 'onLost' | 'onWritable' | 'onPeerState'>;

/** Endpoints a and b on `sim`, with flows a→b (ab) and b→a (ba). */
export function pair(
  sim: SimNetwork,
  ab: Flow,
  ba: Flow,
  opts: EpOpts = {},
): { a: LinkEndpoint; b: LinkEndpoint } {
  const make = (side: SimSide, out: Flow, inn: Flow): LinkEndpoint => {
    const ep = sim.addEndpoint(side, {
      key: KEY,
      // MTU-sized frames, so that the messages of these tests (up to a few KB) are chunked.
      chunkSize: 1200,
      ...opts,
      onMessage: (m) => inn.delivered.push(checkMessage(m)),
      onLost: (ids, reason) => {
        for (const id of ids) out.lost.set(id - 1, reason);
      },
      onWritable: () => out.pump(),
      onPeerState: (s) => out.events.push(s),
    });
    out.from = ep;
    return ep;
  };
  return { a: make('a', ab, ba), b: make('b', ba, ab) };
}

/** Run until both flows resolve (pumping every `sliceMs`), at most `maxMs`. */
export function drive(sim: SimNetwork, flows: Flow[], maxMs: number, sliceMs = 5): boolean {
  const end = sim.now + maxMs;
  while (sim.now < end) {
    for (const f of flows) if (f.from.peerState === 'active') f.pump();
    if (flows.every((f) => f.resolved())) return true;
    sim.run(sliceMs);
  }
  return flows.every((f) => f.resolved());
}
