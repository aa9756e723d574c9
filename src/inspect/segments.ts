/**
 * Walks a capture as TCP segments and ICMP errors for `ftcp inspect`.
 *
 * Unlike capture.ts (`forEachPacket`), a record cut short by the snap length keeps its
 * real segment length: the payload length comes from the IPv4 total length, not from the
 * captured bytes (tcpdump -s 96 still tells how much data each segment carried). When the
 * cut falls inside the TCP options, the fixed 20-byte header is still decoded.
 *
 *   record:  [link hdr][IPv4 hdr][TCP hdr][payload .......]    orig_len
 *                                          |<- captured ->|... incl_len ends here
 *   segment length = IPv4 total length - IHL*4 - data offset*4
 *
 * An IPv4 total length of 0 (a TSO super-packet captured on the sending host, as
 * Wireshark notes) is taken as the record's original length.
 */
import { readPcap } from '../wire/pcap.js';
import { PacketInfo, Verdict, parsePacket } from '../wire/packet.js';
import { IPPROTO_TCP, readU16, readU32 } from '../wire/ipv4.js';
import { parseIcmpError, type IcmpErrorInfo } from '../wire/repr.js';

/** One TCP segment; `len` is the payload length on the wire (may exceed `captured`). */
export interface TcpSegment {
  tNs: bigint;
  src: number;
  dst: number;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** Payload bytes the segment carried (from the IPv4 total length). */
  len: number;
  /** Payload bytes present in the capture. */
  captured: number;
}

export interface IcmpErrorEvent {
  tNs: bigint;
  /** Sender of the ICMP message (a router or a host) and its destination. */
  src: number;
  dst: number;
  err: IcmpErrorInfo;
}

/** What the walk saw and could not use, counted rather than thrown (STYLE.md 6). */
export interface WalkStats {
  records: number;
  tcpSegments: number;
  icmpErrors: number;
  /** IPv4 packets that are neither TCP nor ICMP errors (UDP, echo, fragments...). */
  otherIpv4: number;
  /** Records that are not IPv4 (IPv6, ARP, unknown link types). */
  notIpv4: number;
  /** IPv4 records whose headers do not parse, or are cut before the TCP flags. */
  malformed: number;
  /** Records cut by the snap length (their segment lengths still come from the IP header). */
  truncated: number;
  firstNs: bigint | null;
  lastNs: bigint | null;
}

/**
 * Calls `onTcp` / `onIcmp` for each TCP segment / ICMP error of `pcap`, in file order.
 * Throws RangeError (from readPcap) when the file is not a classic pcap.
 */
export function walkCapture(
  pcap: Buffer,
  onTcp: (s: TcpSegment) => void,
  onIcmp: (e: IcmpErrorEvent) => void,
): WalkStats {
  const st: WalkStats = {
    records: 0, tcpSegments: 0, icmpErrors: 0, otherIpv4: 0, notIpv4: 0, malformed: 0, truncated: 0, firstNs: null, lastNs: null,
  };
  const info = new PacketInfo();
  const scratch = Buffer.alloc(65536);
  for (const rec of readPcap(pcap)) {
    st.records++;
    if (st.firstNs === null || rec.tsNs < st.firstNs) st.firstNs = rec.tsNs;
    if (st.lastNs === null || rec.tsNs > st.lastNs) st.lastNs = rec.tsNs;
    if (rec.ipOff < 0) {
      st.notIpv4++;
      continue;
    }
    const data = rec.data;
    const ipOff = rec.ipOff;
    const caplen = data.length - ipOff;
    if (data[ipOff]! >>> 4 !== 4) {
      st.notIpv4++;
      continue;
    }
    if (caplen < 20) {
      st.malformed++;
      continue;
    }
    let total = readU16(data, ipOff + 2);
    if (total === 0) total = rec.origLen - ipOff; // TSO super-packet
    const cut = total > caplen && rec.origLen > data.length;
    let buf = data;
    let off = ipOff;
    let len = caplen;
    if (cut || total !== readU16(data, ipOff + 2)) {
      // Parse the captured part as if it were the whole packet.
      const n = Math.min(caplen, total);
      data.copy(scratch, 0, ipOff, ipOff + n);
      scratch.writeUInt16BE(n, 2);
      buf = scratch;
      off = 0;
      len = n;
    }
    if (cut) st.truncated++;
    const v = parsePacket(buf, off, len, info);
    if (v === Verdict.IPV4_TCP) {
      st.tcpSegments++;
      const payload = cut ? total - info.ipHdrLen - info.tcpHdrLen : info.payloadLen;
      onTcp({
        tNs: rec.tsNs, src: info.src, dst: info.dst, srcPort: info.srcPort, dstPort: info.dstPort,
        seq: info.seq, ack: info.ack, flags: info.flags, window: info.window,
        len: Math.max(0, payload), captured: info.payloadLen,
      });
      continue;
    }
    if (cut && (v === Verdict.BAD_TCP_OFFSET || v === Verdict.BAD_TCP_OPTION || v === Verdict.TCP_TOO_SHORT) && info.proto === IPPROTO_TCP) {
      // Cut inside the TCP header: the fixed fields up to the window (16 bytes) suffice.
      const t = info.l4Off;
      if (info.l4Len >= 16) {
        const thl = (buf[t + 12]! >>> 4) << 2;
        st.tcpSegments++;
        onTcp({
          tNs: rec.tsNs, src: info.src, dst: info.dst, srcPort: readU16(buf, t), dstPort: readU16(buf, t + 2),
          seq: readU32(buf, t + 4), ack: readU32(buf, t + 8), flags: buf[t + 13]!, window: readU16(buf, t + 14),
          len: Math.max(0, total - info.ipHdrLen - thl), captured: 0,
        });
        continue;
      }
      st.malformed++;
      continue;
    }
    if (v === Verdict.IPV4_ICMP) {
      const err = parseIcmpError(buf, info.l4Off, info.l4Len);
      if (err) {
        st.icmpErrors++;
        onIcmp({ tNs: rec.tsNs, src: info.src, dst: info.dst, err });
      } else {
        st.otherIpv4++;
      }
      continue;
    }
    if (v === Verdict.IPV4_OTHER || v === Verdict.IPV4_FRAGMENT) {
      st.otherIpv4++;
      continue;
    }
    if (v === Verdict.IPV6) st.notIpv4++;
    else st.malformed++;
  }
  return st;
}
