/**
 * Where the packets the gateway makes are built: behind headroom for the device's header.
 *
 * After wireguard-go's `tun.Device.Write(bufs [][]byte, offset int)`: each packet starts at
 * bufs[i][offset:], and the device writes its own header into the bytes just before it (the
 * virtio-net header on Linux with offloads, the 4-byte packet information on the BSDs) and
 * writes header and packet from there; an offset too small for the header is an error
 * (io.ErrShortBuffer), never a silent copy. The gateway's emit callback has the same contract:
 *
 *   emit(buf, off, len)
 *
 *   buf:  ... │ EMIT_HEADROOM bytes, writable │ the IP packet, len bytes │ ...
 *             ▲ off − EMIT_HEADROOM           ▲ off                     ▲ off + len
 *
 *   offloads on (gateway/offload.ts VnetPath.emit): the virtio-net header is written into the
 *     headroom and [off − EMIT_HEADROOM, off + len) goes to the TUN in one write, no copy; a
 *     packet above the MTU becomes a GSO frame, its checksum field set to the partial sum;
 *   plain TUN (tun/*): buf[off, off + len) is written, the headroom unused.
 *
 * The bytes are the emitter's until emit returns (the write is synchronous: TunDevice.write),
 * and may be changed meanwhile; nothing keeps them afterwards.
 *
 * Packets the gateway builds (the recovery engine's handshake, replayed segments, ACKs and
 * RSTs; the south wrapper's released ACKs) are written into `emitScratch` at EMIT_HEADROOM,
 * then emitted: one buffer for the process, as a packet is built and written before the next
 * is begun. Packets kept for later (a held FIN, the copies held for the liveness verdict) keep
 * their own buffers, allocated once when held, and are copied into the scratch when released
 * (emitCopy): the release allocates nothing.
 */
import { VNET_HDR_LEN } from './vnet.js';

/** Writable bytes every emitted packet has in front of it: room for the virtio-net header. */
export const EMIT_HEADROOM = VNET_HDR_LEN;

/** The largest IPv4 packet (the total length field's 16 bits). */
export const EMIT_MAX_PACKET = 0xffff;

/** The gateway's emit callback: the packet at buf[off, off + len), EMIT_HEADROOM writable bytes before off. */
export type Emit = (buf: Buffer, off: number, len: number) => void;

/** The one buffer packets the gateway makes are built in, at EMIT_HEADROOM. */
export const emitScratch: Buffer = Buffer.alloc(EMIT_HEADROOM + EMIT_MAX_PACKET);

/** Emits a kept packet (buf[off, off + len), no headroom needed) by copying it once into the scratch. */
export function emitCopy(emit: Emit, buf: Buffer, off: number, len: number): void {
  if (len > EMIT_MAX_PACKET) throw new RangeError(`emitCopy: packet of ${len} bytes > ${EMIT_MAX_PACKET}`);
  buf.copy(emitScratch, EMIT_HEADROOM, off, off + len);
  emit(emitScratch, EMIT_HEADROOM, len);
}

/** An emitted packet without its headroom: a broken caller, never a packet from the wire. */
export function assertHeadroom(buf: Buffer, off: number, len: number): void {
  if (off < EMIT_HEADROOM || off + len > buf.length) {
    throw new RangeError(`emit: packet at [${off}, ${off + len}) of a ${buf.length}-byte buffer: ${EMIT_HEADROOM} bytes of headroom needed before it`);
  }
}
