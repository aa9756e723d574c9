/**
 * The packet device the gateway reads from and writes to (after wireguard-go's tun.Device).
 *
 *   kernel ──(policy routing)──▶ TUN ──read batch──▶ gateway pipeline ──write──▶ TUN ──▶ kernel forwards
 *
 * A batch is a view over one receive buffer: packet i starts at `i * slotSize` and is
 * `lengths[i]` bytes long. The batch is only valid during the callback: the slots are
 * reused for the next read, so anything kept must be copied.
 */
export interface PacketBatch {
  readonly buf: Buffer;
  readonly slotSize: number;
  readonly lengths: Uint32Array;
  readonly count: number;
}

export type BatchHandler = (batch: PacketBatch) => void;

export interface TunDevice {
  readonly name: string;
  /** Starts delivering batches; one call per batch, never per packet. */
  start(onBatch: BatchHandler): void;
  /** Writes one packet (bytes [off, off+len) of buf). Returns false if the device queue was full. */
  write(buf: Buffer, off: number, len: number): boolean;
  /**
   * Writes `count` packets of one buffer (packet i is [offsets[i], offsets[i]+lengths[i])).
   * Returns how many went; fewer than `count` means the device queue was full.
   */
  writeBatch(buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number): number;
  /** Stops reading and closes the file descriptor. Idempotent. */
  close(): void;
}
