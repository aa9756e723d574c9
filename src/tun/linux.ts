/**
 * The real TUN device (IFF_TUN | IFF_NO_PI), read in batches through the addon.
 *
 * Reads: the addon polls the fd and, when readable, reads up to `batchSize` packets into
 * fixed slots of one Buffer, then makes ONE call into JavaScript per batch. The handler
 * must finish with the batch before returning (the slots are reused).
 *
 * Offloads (`offload: true`): IFF_VNET_HDR, TUNSETVNETHDRSZ 12 (virtio_net_hdr_v1) and
 * TUNSETOFFLOAD TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO6. The kernel then hands over TCP
 * super-packets of up to 64 KB (GSO) with partial checksums (NEEDS_CSUM), each behind a
 * 12-byte header, and takes them back the same way: slots are 64 KB + 12.
 * `openWithOffloads` probes, before anything else uses the device, whether the kernel
 * accepts GSO writes (some kernels rejected them with EINVAL), and falls back to a plain
 * device if not.
 */
import type { BatchHandler, PacketBatch, TunDevice } from './device.js';
import { loadAddon } from './native.js';
import { FtcpError } from '../util/errors.js';
import { VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_HDR_LEN, encodeVnet, ipv4PseudoSum } from '../wire/vnet.js';
import { IPV4_MIN_HEADER, writeU16 } from '../wire/ipv4.js';
import { TCP_ACK, TCP_MIN_HEADER, TCP_OFF_CHECKSUM } from '../wire/tcp.js';
import { emitTcpPacket } from '../wire/repr.js';

/** Slot for a 64 KB super-packet behind its virtio-net header. */
export const OFFLOAD_SLOT_SIZE = 65536 + VNET_HDR_LEN;

export interface LinuxTunOptions {
  /** Bytes per packet slot: the largest packet we may read (MTU for plain TUN). */
  slotSize?: number;
  /** Packets per batch. */
  batchSize?: number;
  /** Batches per wake-up before yielding to the event loop. */
  rounds?: number;
  /** Extra IFF_* flags (IFF_MULTI_QUEUE) for later use. */
  extraFlags?: number;
  /** Virtio-net header + TSO4/TSO6/CSUM offloads (slots default to OFFLOAD_SLOT_SIZE). */
  offload?: boolean;
}

class MutableBatch implements PacketBatch {
  count = 0;
  constructor(readonly buf: Buffer, readonly slotSize: number, readonly lengths: Uint32Array, readonly vnetHdrLen: number) {}
}

/** What `openWithOffloads` found. */
export interface OffloadProbe {
  offload: boolean;
  /** Why offloads are off ('' when on): the errno name or the reason. */
  reason: string;
}

export class LinuxTun implements TunDevice {
  readonly name: string;
  readonly fd: number;
  private reader: object | null = null;
  private closed = false;
  private readonly opts: Required<LinuxTunOptions>;
  readErrors = 0;
  writeFull = 0;
  /** 12 when opened with the virtio-net header, else 0. Stays 12 after disableOffloads(). */
  readonly vnetHdrLen: number;
  /** True while the kernel may hand us GSO / partial-checksum packets. */
  offloads: boolean;

  private constructor(fd: number, name: string, opts: Required<LinuxTunOptions>) {
    this.fd = fd;
    this.name = name;
    this.opts = opts;
    this.vnetHdrLen = opts.offload ? VNET_HDR_LEN : 0;
    this.offloads = opts.offload;
  }

  /** Creates (or attaches to) the TUN device `name`. Errors carry the errno name as `code`. */
  static open(name: string, options: LinuxTunOptions = {}): LinuxTun {
    const addon = loadAddon();
    const opts: Required<LinuxTunOptions> = {
      slotSize: options.slotSize ?? (options.offload ? OFFLOAD_SLOT_SIZE : 2048),
      batchSize: options.batchSize ?? 64,
      rounds: options.rounds ?? 4,
      extraFlags: options.extraFlags ?? 0,
      offload: options.offload ?? false,
    };
    if (opts.offload && opts.slotSize < OFFLOAD_SLOT_SIZE) {
      throw new RangeError(`offload slots must hold a 64 KB super-packet and its header (${OFFLOAD_SLOT_SIZE} bytes)`);
    }
    let fd = -1;
    try {
      const [f, actual] = addon.open(name, addon.IFF_NO_PI | opts.extraFlags | (opts.offload ? addon.IFF_VNET_HDR : 0));
      fd = f;
      if (opts.offload) {
        addon.setVnetHdrSize(fd, VNET_HDR_LEN);
        addon.setOffload(fd, addon.TUN_F_CSUM | addon.TUN_F_TSO4 | addon.TUN_F_TSO6);
      }
      return new LinuxTun(fd, actual, opts);
    } catch (err) {
      if (fd >= 0) addon.close(fd);
      const code = (err as { code?: string }).code ?? 'EUNKNOWN';
      throw new FtcpError(`FTCP_TUN_${code}`, `cannot open TUN device '${name}': ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Opens `name` with offloads when the kernel takes them: TUNSETOFFLOAD must succeed and
   * a GSO write must not be rejected (probeGsoWrite). Otherwise the device is closed and
   * opened again plain, before anything (addresses, routes) was attached to it.
   */
  static openWithOffloads(
    name: string, options: Omit<LinuxTunOptions, 'offload' | 'slotSize'> = {}, plainSlotSize = 2048,
  ): { tun: LinuxTun; probe: OffloadProbe } {
    const plain = (): LinuxTun => LinuxTun.open(name, { ...options, slotSize: plainSlotSize, offload: false });
    let tun: LinuxTun;
    try {
      tun = LinuxTun.open(name, { ...options, offload: true });
    } catch (err) {
      const code = err instanceof FtcpError ? err.code : 'EUNKNOWN';
      return { tun: plain(), probe: { offload: false, reason: `offloads refused: ${code}` } };
    }
    const verdict = tun.probeGsoWrite();
    if (verdict === '') return { tun, probe: { offload: true, reason: '' } };
    tun.close();
    return { tun: plain(), probe: { offload: false, reason: `GSO write rejected: ${verdict}` } };
  }

  /**
   * Writes one small TCPv4 GSO frame (two 8-byte pieces, NEEDS_CSUM) from and to
   * 127.0.0.1: the kernel validates the virtio-net header in the write itself, then drops
   * the packet as martian (or with EIO while the device is down). Returns '' when the
   * header was accepted, else the errno name (EINVAL: the kernel rejects GSO writes).
   */
  probeGsoWrite(): string {
    if (this.vnetHdrLen === 0) return 'no virtio-net header';
    const ip = IPV4_MIN_HEADER;
    const tcp = TCP_MIN_HEADER;
    const payload = 16;
    const frame = Buffer.alloc(VNET_HDR_LEN + ip + tcp + payload);
    const p = VNET_HDR_LEN;
    const lo = 0x7f000001;
    // TTL 1: never forwarded anywhere; port 9: discard.
    emitTcpPacket({
      src: lo, dst: lo, srcPort: 9, dstPort: 9, seq: 0, ack: 0, flags: TCP_ACK, window: 0, ttl: 1, payload: Buffer.alloc(payload),
    }, frame, p);
    // NEEDS_CSUM: the field holds the pseudo-header sum, the kernel finishes it.
    writeU16(frame, p + ip + TCP_OFF_CHECKSUM, ipv4PseudoSum(frame, p));
    encodeVnet({
      flags: VNET_F_NEEDS_CSUM, gsoType: VNET_GSO_TCPV4, hdrLen: ip + tcp, gsoSize: payload / 2, csumStart: ip, csumOffset: TCP_OFF_CHECKSUM,
    }, frame, 0);
    try {
      loadAddon().write(this.fd, frame, 0, frame.length);
      return '';
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'EUNKNOWN';
      return code === 'EIO' ? '' : code; // EIO: the device is down, after the header was accepted
    }
  }

  /**
   * Turns the offloads off on the open fd (TUNSETOFFLOAD 0), after the kernel rejected a GSO
   * write: from now on it segments and checksums before handing packets over. Frames keep
   * their (zeroed) virtio-net header: the fd cannot drop IFF_VNET_HDR without a reopen, which
   * would take the device's addresses and routes with it.
   */
  disableOffloads(): void {
    if (!this.offloads) return;
    this.offloads = false;
    loadAddon().setOffload(this.fd, 0);
  }

  /**
   * TUNSETPERSIST: the device (with its addresses, routes and settings) outlives this fd and
   * this process. With no reader the kernel takes its carrier down and drops what is routed to
   * it, so steering through it fails closed while no gateway runs. `persist(false)` makes the
   * device vanish at the last close again.
   */
  persist(on: boolean): void {
    try {
      loadAddon().setPersist(this.fd, on ? 1 : 0);
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'EUNKNOWN';
      throw new FtcpError(`FTCP_TUN_${code}`, `cannot make TUN device '${this.name}' ${on ? '' : 'non-'}persistent: ${(err as Error).message}`, { cause: err });
    }
  }

  start(onBatch: BatchHandler): void {
    if (this.reader || this.closed) throw new Error('TUN reader already started or closed');
    const { slotSize, batchSize, rounds } = this.opts;
    const buf = Buffer.allocUnsafe(slotSize * batchSize);
    const lengths = new Uint32Array(batchSize);
    const batch = new MutableBatch(buf, slotSize, lengths, this.vnetHdrLen);
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
