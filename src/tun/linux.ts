/**
 * The real TUN device (IFF_TUN | IFF_NO_PI), read in batches through the addon.
 *
 * Reads: the addon polls the fd and, when readable, reads up to `batchSize` packets into
 * fixed slots of one Buffer, then makes ONE call into JavaScript per batch. The handler
 * must finish with the batch before returning (the slots are reused).
 */
import type { BatchHandler, PacketBatch, TunDevice } from './device.js';
import { loadAddon } from './native.js';
import { FtcpError } from '../util/errors.js';

export interface LinuxTunOptions {
  /** Bytes per packet slot: the largest packet we may read (MTU for plain TUN). */
  slotSize?: number;
  /** Packets per batch. */
  batchSize?: number;
  /** Batches per wake-up before yielding to the event loop. */
  rounds?: number;
  /** Extra IFF_* flags (IFF_VNET_HDR, IFF_MULTI_QUEUE) for later use. */
  extraFlags?: number;
}

class MutableBatch implements PacketBatch {
  count = 0;
  constructor(readonly buf: Buffer, readonly slotSize: number, readonly lengths: Uint32Array) {}
}

export class LinuxTun implements TunDevice {
  readonly name: string;
  readonly fd: number;
  private reader: object | null = null;
  private closed = false;
  private readonly opts: Required<LinuxTunOptions>;
  readErrors = 0;
  writeFull = 0;

  private constructor(fd: number, name: string, opts: Required<LinuxTunOptions>) {
    this.fd = fd;
    this.name = name;
    this.opts = opts;
  }

  /** Creates (or attaches to) the TUN device `name`. Errors carry the errno name as `code`. */
  static open(name: string, options: LinuxTunOptions = {}): LinuxTun {
    const addon = loadAddon();
    const opts: Required<LinuxTunOptions> = {
      slotSize: options.slotSize ?? 2048,
      batchSize: options.batchSize ?? 64,
      rounds: options.rounds ?? 4,
      extraFlags: options.extraFlags ?? 0,
    };
    try {
      const [fd, actual] = addon.open(name, addon.IFF_NO_PI | opts.extraFlags);
      return new LinuxTun(fd, actual, opts);
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'EUNKNOWN';
      throw new FtcpError(`FTCP_TUN_${code}`, `cannot open TUN device '${name}': ${(err as Error).message}`, { cause: err });
    }
  }

  start(onBatch: BatchHandler): void {
    if (this.reader || this.closed) throw new Error('TUN reader already started or closed');
    const { slotSize, batchSize, rounds } = this.opts;
    const buf = Buffer.allocUnsafe(slotSize * batchSize);
    const lengths = new Uint32Array(batchSize);
    const batch = new MutableBatch(buf, slotSize, lengths);
    this.reader = loadAddon().startReader(this.fd, buf, slotSize, lengths, batchSize, rounds, (count, errno) => {
      if (errno !== 0) this.readErrors++;
      if (count === 0) return;
      batch.count = count;
      onBatch(batch);
    });
  }

  write(buf: Buffer, off: number, len: number): boolean {
    const n = loadAddon().write(this.fd, buf, off, len);
    if (n < 0) {
      this.writeFull++;
      return false;
    }
    return true;
  }

  writeBatch(buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number): number {
    if (count === 0) return 0;
    const n = loadAddon().writeBatch(this.fd, buf, offsets, lengths, count);
    if (n < count) this.writeFull += count - n;
    return n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const addon = loadAddon();
    if (this.reader) addon.stopReader(this.reader);
    this.reader = null;
    addon.close(this.fd);
  }
}
