/**
 * An in-memory TUN for tests (after wireguard-go's tuntest): `inject()` queues packets as if
 * the kernel had routed them into the device; `written` collects what the gateway wrote
 * back. Batches are delivered synchronously by `flush()`, so tests control time exactly.
 *
 * With `vnetHdrLen: 12` it behaves like a TUN opened with offloads: injected and written
 * frames carry the virtio-net header in front of the packet. `rejectGso` makes writes of a
 * GSO frame fail with EINVAL (as a kernel that rejects them does) until disableOffloads().
 */
import type { BatchHandler, PacketBatch, TunDevice } from './device.js';
import { FtcpError } from '../util/errors.js';
import { VNET_GSO_NONE, vnetGsoType } from '../wire/vnet.js';

export class FakeTun implements TunDevice {
  readonly name: string;
  readonly written: Buffer[] = [];
  private queue: Buffer[] = [];
  private handler: BatchHandler | null = null;
  private readonly slotSize: number;
  private readonly batchSize: number;
  closed = false;
  readonly vnetHdrLen: number;
  rejectGso: boolean;
  offloads: boolean;
  /** Frames refused (EINVAL) by rejectGso. */
  rejected = 0;

  constructor(name = 'fake0', opts: { slotSize?: number; batchSize?: number; vnetHdrLen?: number; rejectGso?: boolean } = {}) {
    this.name = name;
    this.vnetHdrLen = opts.vnetHdrLen ?? 0;
    this.slotSize = opts.slotSize ?? (this.vnetHdrLen > 0 ? 65536 + this.vnetHdrLen : 2048);
    this.batchSize = opts.batchSize ?? 64;
    this.rejectGso = opts.rejectGso ?? false;
    this.offloads = this.vnetHdrLen > 0;
  }

  disableOffloads(): void {
    this.offloads = false;
    this.rejectGso = false;
  }

  private refuses(buf: Buffer, off: number): boolean {
    return this.vnetHdrLen > 0 && this.rejectGso && vnetGsoType(buf, off) !== VNET_GSO_NONE;
  }

  start(onBatch: BatchHandler): void {
    this.handler = onBatch;
  }

  inject(...pkts: Buffer[]): this {
    for (const p of pkts) {
      if (p.length > this.slotSize) throw new RangeError(`packet of ${p.length} bytes exceeds slot ${this.slotSize}`);
      this.queue.push(p);
    }
    return this;
  }

  /** Delivers every queued packet, in batches of up to batchSize, and returns what was written meanwhile. */
  flush(): Buffer[] {
    if (!this.handler) throw new Error('FakeTun: start() was not called');
    const before = this.written.length;
    while (this.queue.length > 0) {
      const take = this.queue.splice(0, this.batchSize);
      const buf = Buffer.alloc(this.slotSize * take.length);
      const lengths = new Uint32Array(take.length);
      take.forEach((p, i) => {
        p.copy(buf, i * this.slotSize);
        lengths[i] = p.length;
      });
      const batch: PacketBatch = { buf, slotSize: this.slotSize, lengths, count: take.length, vnetHdrLen: this.vnetHdrLen };
      this.handler(batch);
      // Poison the slots afterwards: a handler that kept a reference to them sees garbage.
      buf.fill(0xee);
    }
    return this.written.slice(before);
  }

  /** Takes (and clears) everything written so far. */
  drain(): Buffer[] {
    return this.written.splice(0, this.written.length);
  }

  write(buf: Buffer, off: number, len: number): boolean {
    if (this.refuses(buf, off)) {
      this.rejected++;
      throw Object.assign(new FtcpError('EINVAL', 'write: Invalid argument (EINVAL)'), { index: 0 });
    }
    this.written.push(Buffer.from(buf.subarray(off, off + len)));
    return true;
  }

  writeBatch(buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number): number {
    for (let i = 0; i < count; i++) {
      if (this.refuses(buf, offsets[i]!)) {
        this.rejected++;
        throw Object.assign(new FtcpError('EINVAL', `write: Invalid argument (EINVAL) at packet ${i}`), { index: i });
      }
      this.write(buf, offsets[i]!, lengths[i]!);
    }
    return count;
  }

  close(): void {
    this.closed = true;
    this.handler = null;
  }
}
