/**
 * The gateway's path for a TUN opened with offloads (`ftcp gateway --offload`).
 *
 *   TUN read batch: slots of [virtio-net header | IP packet], TCP super-packets up to 64 KB
 *     │
 *     ├─ NEEDS_CSUM + FIN/RST, not GSO ─▶ checksum finished here (such a segment may be
 *     │                                   copied and held, then emitted with a zeroed header)
 *     ├─ Gateway.route(IP packet) ─▶ south / north wrappers, once per super-packet: one log
 *     │                               append of its whole payload, one ack/seq rewrite
 *     ├─ protected and forwarded ─▶ NEEDS_CSUM: the checksum field set to the pseudo-header
 *     │                              sum again; GSO: hdr_len = IP + TCP header length
 *     ▼
 *   TUN write batch, in place, header and all (the kernel segments and checksums)
 *   TUN write ◀── packets the gateway makes: zeroed header (flags 0, GSO NONE); above the
 *                 MTU (a held super-packet FIN) as GSO TCPV4 with a partial checksum; the
 *                 header written into the headroom in front of the packet (wire/headroom.ts)
 *
 * Partial checksums (NEEDS_CSUM). The field holds P, the folded pseudo-header sum; the
 * kernel later stores ~(P + sum of the TCP header and payload). The wrappers' in-place
 * rewrites use RFC 1624 as for a complete checksum, which on P is wrong both ways:
 *  - a TCP header field (ack, seq, window, ports, options) is summed by the kernel anyway,
 *    so P must NOT change; RFC 1624 moves it by (old − new), which exactly undoes the
 *    change: the kernel would then emit the checksum of the OLD header;
 *  - a pseudo-header field (an address; the TCP length) must move P by (new − old), and
 *    RFC 1624 moves it the opposite way (Linux's inet_proto_csum_replace4 has a separate
 *    CHECKSUM_PARTIAL branch for this reason).
 * P depends on the addresses, the protocol and the length only, so after the wrappers ran
 * it is simply computed again (12 bytes summed; no payload). test/unit/gateway/offload
 * checks the result by finishing the sum as the kernel does and verifying the segment.
 *
 * A kernel that rejects GSO writes (EINVAL; a regression did this): probed at start-up by
 * LinuxTun.openWithOffloads (falls back to a plain device); met at run time, the offloads
 * are switched off on the device (TUNSETOFFLOAD 0: the kernel segments before handing
 * packets over from then on), the rejected super-packets are dropped (counted; their
 * senders retransmit, already segmented) and the rest of the batch is written.
 */
import type { PacketBatch, TunDevice } from '../tun/device.js';
import type { Logger } from '../util/logger.js';
import { IPPROTO_TCP, IPV4_MIN_HEADER, IPV4_OFF_PROTOCOL, ipv4HeaderLen, ipv4Version, writeU16 } from '../wire/ipv4.js';
import { TCP_FIN, TCP_MIN_HEADER, TCP_OFF_CHECKSUM, TCP_OFF_FLAGS, TCP_RST, tcpHeaderLen } from '../wire/tcp.js';
import { Verdict, type DropCounters } from '../wire/packet.js';
import { assertHeadroom } from '../wire/headroom.js';
import {
  VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_HDR_LEN, VNET_OFF_GSO_SIZE, VNET_OFF_CSUM_START,
  VNET_OFF_CSUM_OFFSET, finishPartialChecksum, ipv4PseudoSum, setLe16, setVnetFlags, setVnetHdrLen, vnetCsumOffset,
  vnetCsumStart, vnetFlags, vnetGsoType, vnetHdrLen, zeroVnet,
} from '../wire/vnet.js';

/** What the offload path needs of the gateway. */
export interface VnetHost {
  route(buf: Buffer, off: number, len: number, tcpTrusted?: boolean): boolean;
  readonly lastProtected: boolean;
  readonly drops: DropCounters;
  readonly stats: { batches: number; packets: number; dropped: number; writeShort: number };
}

export class OffloadStats {
  /** GSO frames read (super-packets). */
  superPackets = 0;
  /** Bytes of IP packets read in GSO frames. */
  superBytes = 0;
  /** Frames read with NEEDS_CSUM. */
  partialChecksums = 0;
  /** Frames read with DATA_VALID (the kernel verified the L4 checksum). */
  dataValid = 0;
  /** Partial checksums of FIN/RST segments finished in JS. */
  checksumsFinished = 0;
  /** Partial checksums set back to the pseudo-header sum after the wrappers. */
  partialRefreshed = 0;
  /** GSO frames whose hdr_len was set to the IP + TCP header length (it differed). */
  hdrLenChanged = 0;
  /** Emitted packets above the MTU, sent as GSO. */
  emittedGso = 0;
  /** Emitted packets above the MTU while offloads were off (too big to forward). */
  emittedOversize = 0;
  /** Writes the kernel rejected with EINVAL (GSO refused). */
  gsoRejected = 0;
  /** Super-packets dropped after the fallback (their senders retransmit). */
  gsoDropped = 0;
}

export class VnetPath {
  readonly stats = new OffloadStats();
  /** False once the kernel rejected a GSO write and the offloads were turned off. */
  active = true;
  private outOffsets = new Uint32Array(256);
  private outLengths = new Uint32Array(256);

  constructor(
    private readonly gw: VnetHost,
    private readonly tun: TunDevice,
    private readonly logger: Logger,
    readonly mtu: number,
  ) {}

  onBatch(batch: PacketBatch): void {
    const { buf, slotSize, lengths, count } = batch;
    const h = batch.vnetHdrLen ?? VNET_HDR_LEN;
    if (this.outOffsets.length < count) {
      this.outOffsets = new Uint32Array(count);
      this.outLengths = new Uint32Array(count);
    }
    const outOffsets = this.outOffsets;
    const outLengths = this.outLengths;
    const gw = this.gw;
    const st = this.stats;
    gw.stats.batches++;
    gw.stats.packets += count;
    let n = 0;
    for (let i = 0; i < count; i++) {
      const slot = i * slotSize;
      const len = lengths[i]!;
      if (len < h) {
        gw.drops.count(Verdict.TOO_SHORT);
        gw.stats.dropped++;
        continue;
      }
      const ip = slot + h;
      const ipLen = len - h;
      const vflags = vnetFlags(buf, slot);
      const gso = vnetGsoType(buf, slot);
      if (gso !== VNET_GSO_NONE) {
        st.superPackets++;
        st.superBytes += ipLen;
      }
      if (vflags & VNET_F_NEEDS_CSUM) {
        st.partialChecksums++;
        if (gso === VNET_GSO_NONE && finBearing(buf, ip, ipLen) && vnetCsumStart(buf, slot) === ipv4HeaderLen(buf, ip) &&
          vnetCsumOffset(buf, slot) === TCP_OFF_CHECKSUM) {
          // A FIN/RST may be copied and held by the wrappers, then emitted with a zeroed
          // header: its checksum must be complete. Once per connection end.
          finishPartialChecksum(buf, ip, ipLen, vnetCsumStart(buf, slot), vnetCsumOffset(buf, slot));
          setVnetFlags(buf, slot, vflags & ~VNET_F_NEEDS_CSUM);
          st.checksumsFinished++;
        }
      }
      if (vflags & VNET_F_DATA_VALID) st.dataValid++;
      // The TCP checksum is trusted when the kernel vouches for it: NEEDS_CSUM (the sender
      // is this host's kernel, or a local socket whose partial sum the kernel completes on
      // the way out, so the receiver accepts the very bytes logged; every GSO frame) or
      // DATA_VALID (verified, or received from a device that verified it). A packet a veth
      // carried from another namespace is CHECKSUM_NONE (flags 0) on the 6.x kernels the
      // lab ran (README "Checksums", with the evidence): it is verified in full.
      if (!gw.route(buf, ip, ipLen, (vflags & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) !== 0)) continue;
      if (gw.lastProtected) this.fixup(buf, slot, ip);
      outOffsets[n] = slot;
      outLengths[n] = len;
      n++;
    }
    if (n > 0) this.writeOut(buf, n);
  }

  /** After the wrappers rewrote a protected packet in place: partial sum and hdr_len. */
  private fixup(buf: Buffer, slot: number, ip: number): void {
    if (ipv4Version(buf, ip) !== 4 || buf[ip + IPV4_OFF_PROTOCOL] !== IPPROTO_TCP) return;
    const ihl = ipv4HeaderLen(buf, ip);
    if (vnetFlags(buf, slot) & VNET_F_NEEDS_CSUM) {
      // Only the layout Linux produces for TCP (start = L4 header, offset = 16).
      if (vnetCsumStart(buf, slot) === ihl && vnetCsumOffset(buf, slot) === TCP_OFF_CHECKSUM) {
        writeU16(buf, ip + ihl + TCP_OFF_CHECKSUM, ipv4PseudoSum(buf, ip));
        this.stats.partialRefreshed++;
      }
    }
    if (vnetGsoType(buf, slot) !== VNET_GSO_NONE) {
      const hdrLen = ihl + tcpHeaderLen(buf, ip + ihl);
      // The kernel may report its linear length there; what a write needs is the header length.
      if (vnetHdrLen(buf, slot) !== hdrLen) {
        this.stats.hdrLenChanged++;
        setVnetHdrLen(buf, slot, hdrLen);
      }
    }
  }

  private writeOut(buf: Buffer, count: number): void {
    const offs = this.outOffsets;
    const lens = this.outLengths;
    let n = count;
    for (let attempt = 0; attempt < 2 && n > 0; attempt++) {
      try {
        const w = this.tun.writeBatch(buf, offs, lens, n);
        if (w < n) this.gw.stats.writeShort += n - w;
        return;
      } catch (err) {
        const e = err as { code?: string; index?: number };
        if (e.code !== 'EINVAL' || typeof e.index !== 'number' || !this.active) throw err;
        // The kernel refused a GSO frame: offloads off, and the rest of the batch without them.
        this.stats.gsoRejected++;
        this.fallBack(`EINVAL writing a frame (gso type ${buf[offs[e.index]! + 1]})`);
        let k = 0;
        for (let j = e.index; j < n; j++) {
          if (buf[offs[j]! + 1] !== VNET_GSO_NONE) {
            this.stats.gsoDropped++;
            continue;
          }
          offs[k] = offs[j]!;
          lens[k] = lens[j]!;
          k++;
        }
        n = k;
      }
    }
  }

  /** The kernel rejects GSO writes: turn the offloads off for good, loudly. */
  fallBack(why: string): void {
    if (!this.active) return;
    this.active = false;
    this.tun.disableOffloads?.();
    this.logger.error({ why }, 'the kernel rejects GSO writes on the TUN: offloads turned off, plain packets from now on');
  }

  /**
   * A packet the gateway made (or held and releases), at buf[off, off + len) with the
   * headroom of wire/headroom.ts before it: the virtio-net header is written there, in place,
   * and header and packet go to the TUN in one write (no copy, nothing allocated). A zeroed
   * header; or, above the MTU while offloads are on, a GSO TCPV4 header and the checksum field
   * set to the partial sum (the kernel cuts the frame into MTU-sized segments and finishes
   * each checksum). Returns false when the device queue was full.
   */
  emit(buf: Buffer, off: number, len: number): boolean {
    assertHeadroom(buf, off, len);
    const h = off - VNET_HDR_LEN;
    const ip = off;
    zeroVnet(buf, h);
    if (len > this.mtu) {
      if (this.active && buf[ip]! >>> 4 === 4 && buf[ip + 9] === IPPROTO_TCP) {
        const ihl = (buf[ip]! & 0x0f) << 2;
        const thl = (buf[ip + ihl + 12]! >>> 4) << 2;
        buf[h] = VNET_F_NEEDS_CSUM;
        buf[h + 1] = VNET_GSO_TCPV4;
        setVnetHdrLen(buf, h, ihl + thl);
        setLe16(buf, h + VNET_OFF_GSO_SIZE, this.mtu - ihl - thl);
        setLe16(buf, h + VNET_OFF_CSUM_START, ihl);
        setLe16(buf, h + VNET_OFF_CSUM_OFFSET, TCP_OFF_CHECKSUM);
        const p = ipv4PseudoSum(buf, ip);
        buf[ip + ihl + TCP_OFF_CHECKSUM] = p >>> 8;
        buf[ip + ihl + TCP_OFF_CHECKSUM + 1] = p & 0xff;
        this.stats.emittedGso++;
      } else {
        this.stats.emittedOversize++;
      }
    }
    try {
      return this.tun.write(buf, h, len + VNET_HDR_LEN);
    } catch (err) {
      if ((err as { code?: string }).code !== 'EINVAL' || buf[h + 1] === VNET_GSO_NONE) throw err;
      this.stats.gsoRejected++;
      this.fallBack('EINVAL writing an emitted GSO frame');
      return false;
    }
  }

  describe(): Record<string, unknown> {
    return { active: this.active, mtu: this.mtu, ...this.stats };
  }
}

/** An IPv4 TCP segment with FIN or RST (peeked, no parse; false on anything shorter). */
function finBearing(buf: Buffer, ip: number, len: number): boolean {
  if (len < IPV4_MIN_HEADER + TCP_MIN_HEADER || ipv4Version(buf, ip) !== 4 || buf[ip + IPV4_OFF_PROTOCOL] !== IPPROTO_TCP) return false;
  const ihl = ipv4HeaderLen(buf, ip);
  if (ihl + TCP_MIN_HEADER > len) return false;
  return (buf[ip + ihl + TCP_OFF_FLAGS]! & (TCP_FIN | TCP_RST)) !== 0;
}
