/** Walks the IPv4 packets of a capture file, parsed, tolerating header-only (truncated) captures. */
import { readPcap } from '../wire/pcap.js';
import { PacketInfo, parsePacket } from '../wire/packet.js';

/**
 * Calls `fn` for every IP packet of `pcap` with the parse verdict and the (reused)
 * PacketInfo. A record truncated by the capture's snap length gets its IPv4 total
 * length set to what was captured, so the headers still parse (payload lengths are then
 * the captured ones); `origLen`, the fourth argument, is the packet's length on the wire.
 */
export function forEachPacket(pcap: Buffer, fn: (verdict: number, info: PacketInfo, tsNs: bigint, origLen: number) => void): void {
  const info = new PacketInfo();
  const scratch = Buffer.alloc(65536);
  for (const rec of readPcap(pcap)) {
    if (rec.ipOff < 0) continue;
    let buf = rec.data;
    let off = rec.ipOff;
    const len = rec.data.length - rec.ipOff;
    if (rec.origLen > rec.data.length && len >= 20 && len <= 0xffff && rec.data[off]! >> 4 === 4) {
      rec.data.copy(scratch, 0, off, off + len);
      scratch.writeUInt16BE(len, 2);
      buf = scratch;
      off = 0;
    }
    // On the wire: the IPv4 total length, unless the frame was shorter (link padding aside).
    const onWire = rec.origLen - rec.ipOff;
    const total = len >= 4 ? rec.data.readUInt16BE(rec.ipOff + 2) : onWire;
    fn(parsePacket(buf, off, len, info), info, rec.tsNs, total < onWire ? total : onWire);
  }
}
