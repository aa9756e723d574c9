/**
 * The one walk over a capture file: every record parsed by parsePacket, whatever cut it.
 * `ftcp inspect` (segments.ts), the drill's client summary (summary.ts) and the lab's spy
 * all read captures through here, so they agree on what a record holds.
 *
 * A record cut short by the snap length keeps its real length: the packet is parsed as the
 * captured part (its IPv4 total length set to what was captured, so the headers parse),
 * and `ipTotal` / `wireLen` still tell how long it was on the wire (tcpdump -s 96 still
 * tells how much data each segment carried).
 *
 *   record:  [link hdr][IPv4 hdr][TCP hdr][payload .......]    orig_len
 *                                          |<- captured ->|... incl_len ends here
 *   segment length = IPv4 total length - IHL*4 - data offset*4
 *
 * An IPv4 total length of 0 (a TSO super-packet captured on the sending host, as
 * Wireshark notes) is taken as the record's original length.
 */
import { readPcap } from '../wire/pcap.js';
import { PacketInfo, parsePacket } from '../wire/packet.js';
import { IPV4_MIN_HEADER, IPV4_OFF_TOTAL_LENGTH, ipv4Version, readU16, writeU16 } from '../wire/ipv4.js';

/** The verdict given for a record with no IP header (another link type, ARP, ...). */
export const NO_IP = -1;

/** One record as the walk saw it; reused from record to record. */
export class CaptureRecord {
  tsNs = 0n;
  /** The bytes parsePacket read (the record itself, or a copy of a cut one) and where the IP header starts. */
  buf: Buffer = Buffer.alloc(0);
  off = 0;
  /** The IPv4 total length on the wire (0 in the header: the record's original length); 0 when not IPv4. */
  ipTotal = 0;
  /** The packet's length on the wire: ipTotal, unless the frame itself was shorter. */
  wireLen = 0;
  /** The snap length cut the packet (ipTotal is more than was captured). */
  cut = false;
}

/**
 * Calls `fn` for every record of `pcap`, in file order, with parsePacket's verdict (or
 * NO_IP), the (reused) PacketInfo and the (reused) record. Throws RangeError (from
 * readPcap) when the file is not a classic pcap.
 */
export function walkPackets(pcap: Buffer, fn: (verdict: number, info: PacketInfo, rec: CaptureRecord) => void): void {
  const info = new PacketInfo();
  const scratch = Buffer.alloc(65536);
  const r = new CaptureRecord();
  for (const rec of readPcap(pcap)) {
    r.tsNs = rec.tsNs;
    r.ipTotal = 0;
    r.wireLen = 0;
    r.cut = false;
    if (rec.ipOff < 0) {
      r.buf = rec.data;
      r.off = 0;
      fn(NO_IP, info, r);
      continue;
    }
    const data = rec.data;
    const ipOff = rec.ipOff;
    const caplen = data.length - ipOff;
    const onWire = rec.origLen - ipOff;
    r.buf = data;
    r.off = ipOff;
    let len = caplen;
    if (caplen >= IPV4_MIN_HEADER && ipv4Version(data, ipOff) === 4) {
      const inHeader = readU16(data, ipOff + IPV4_OFF_TOTAL_LENGTH);
      const total = inHeader === 0 ? onWire : inHeader; // 0: a TSO super-packet
      r.ipTotal = total;
      r.wireLen = total < onWire ? total : onWire;
      r.cut = total > caplen && rec.origLen > data.length;
      if (r.cut || total !== inHeader) {
        // Parse the captured part as if it were the whole packet.
        const n = Math.min(caplen, total, 0xffff);
        data.copy(scratch, 0, ipOff, ipOff + n);
        writeU16(scratch, IPV4_OFF_TOTAL_LENGTH, n);
        r.buf = scratch;
        r.off = 0;
        len = n;
      }
    } else {
      r.wireLen = onWire;
    }
    fn(parsePacket(r.buf, r.off, len, info), info, r);
  }
}

/**
 * Calls `fn` for every IP packet of `pcap` with the parse verdict, the (reused) PacketInfo,
 * the time stamp and the packet's length on the wire (the walk above, without the records
 * that hold no IP packet).
 */
export function forEachPacket(pcap: Buffer, fn: (verdict: number, info: PacketInfo, tsNs: bigint, wireLen: number) => void): void {
  walkPackets(pcap, (v, info, rec) => {
    if (v !== NO_IP) fn(v, info, rec.tsNs, rec.wireLen);
  });
}
