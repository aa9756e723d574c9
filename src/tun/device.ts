/**
 * The packet device the gateway reads from and writes to (after wireguard-go's tun.Device).
 *
 *   kernel ──(policy routing)──▶ TUN ──read batch──▶ gateway pipeline ──write──▶ TUN ──▶ kernel forwards
 *
 * A batch is a view over one receive buffer: packet i starts at `i * slotSize` and is
 * `lengths[i]` bytes long. The batch is only valid during the callback: the slots are
 * reused for the next read, so anything kept must be copied.
 *
 * With offloads (IFF_VNET_HDR) every slot starts with a virtio-net header of `vnetHdrLen`
 * bytes (src/wire/vnet.ts) and the IP packet follows it; `lengths[i]` counts both, exactly
 * as read(2) returned them, so a slot is written back in place header and all. Without
 * offloads `vnetHdrLen` is 0 (or absent) and a slot holds the bare IP packet.
 */
export interface PacketBatch {
  readonly buf: Buffer;
  readonly slotSize: number;
  readonly lengths: Uint32Array;
  readonly count: number;
  /** Bytes of virtio-net header at the start of each slot (0 or absent: none). */
  readonly vnetHdrLen?: number;
}

export type BatchHandler = (batch: PacketBatch) => void;

export interface TunDevice {
  readonly name: string;
  /**
   * Bytes of virtio-net header the device reads and expects in front of every packet
   * (12 with offloads; 0 or absent without). `write` and `writeBatch` take whole frames.
   */
  readonly vnetHdrLen?: number;
  /** Starts delivering batches; one call per batch, never per packet. */
  start(onBatch: BatchHandler): void;
  /** Writes one packet (bytes [off, off+len) of buf). Returns false if the device queue was full. */
  write(buf: Buffer, off: number, len: number): boolean;
  /**
   * Writes `count` packets of one buffer (packet i is [offsets[i], offsets[i]+lengths[i])).
   * Returns how many went; fewer than `count` means the device queue was full.
   */
  writeBatch(buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number): number;
  /**
   * Turns the TSO/CSUM offloads off (the kernel rejected a GSO write); frames keep their
   * virtio-net header. Present on devices opened with offloads.
   */
  disableOffloads?(): void;
  /** Stops reading and closes the file descriptor. Idempotent. */
  close(): void;
}
