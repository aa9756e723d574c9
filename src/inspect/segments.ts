/**
 * Walks a capture as TCP segments and ICMP errors for `ftcp inspect`, over the one
 * capture walk (capture.ts): a segment's length is the one on the wire (from the IPv4
 * total length), so a capture cut by the snap length still counts right; when the cut
 * falls inside the TCP options, the fixed 20-byte header is still decoded.
 */
import { Verdict } from '../wire/packet.js';
import { IPPROTO_TCP, readU16, readU32 } from '../wire/ipv4.js';
import type { Seq } from '../wire/seq.js';
import {
  TCP_OFF_ACK, TCP_OFF_DST_PORT, TCP_OFF_FLAGS, TCP_OFF_SEQ, TCP_OFF_SRC_PORT, TCP_OFF_WINDOW, tcpHeaderLen,
} from '../wire/tcp.js';
import { parseIcmpError, type IcmpErrorInfo } from '../wire/repr.js';
import { NO_IP, walkPackets } from './capture.js';

/** One TCP segment; `len` is the payload length on the wire (may exceed `captured`). */
export interface TcpSegment {
  tNs: bigint;
  src: number;
  dst: number;
  srcPort: number;
  dstPort: number;
  seq: Seq;
  ack: Seq;
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
  walkPackets(pcap, (v, info, rec) => {
    st.records++;
    if (st.firstNs === null || rec.tsNs < st.firstNs) st.firstNs = rec.tsNs;
    if (st.lastNs === null || rec.tsNs > st.lastNs) st.lastNs = rec.tsNs;
    if (v === NO_IP || v === Verdict.IPV6) {
      st.notIpv4++;
      return;
    }
    const cut = rec.cut;
    const total = rec.ipTotal;
    const buf = rec.buf;
    if (cut) st.truncated++;
    if (v === Verdict.IPV4_TCP) {
      st.tcpSegments++;
      const payload = cut ? total - info.ipHdrLen - info.tcpHdrLen : info.payloadLen;
      onTcp({
        tNs: rec.tsNs, src: info.src, dst: info.dst, srcPort: info.srcPort, dstPort: info.dstPort,
        seq: info.seq, ack: info.ack, flags: info.flags, window: info.window,
        len: Math.max(0, payload), captured: info.payloadLen,
      });
      return;
    }
    if (cut && (v === Verdict.BAD_TCP_OFFSET || v === Verdict.BAD_TCP_OPTION || v === Verdict.TCP_TOO_SHORT) && info.proto === IPPROTO_TCP) {
      // Cut inside the TCP header: the fixed fields up to the window suffice.
      const t = info.l4Off;
      if (info.l4Len >= TCP_OFF_WINDOW + 2) {
        st.tcpSegments++;
        onTcp({
          tNs: rec.tsNs, src: info.src, dst: info.dst, srcPort: readU16(buf, t + TCP_OFF_SRC_PORT), dstPort: readU16(buf, t + TCP_OFF_DST_PORT),
          seq: readU32(buf, t + TCP_OFF_SEQ) as Seq, ack: readU32(buf, t + TCP_OFF_ACK) as Seq, flags: buf[t + TCP_OFF_FLAGS]!,
          window: readU16(buf, t + TCP_OFF_WINDOW), len: Math.max(0, total - info.ipHdrLen - tcpHeaderLen(buf, t)), captured: 0,
        });
        return;
      }
      st.malformed++;
      return;
    }
    if (v === Verdict.IPV4_ICMP) {
      const err = parseIcmpError(buf, info.l4Off, info.l4Len);
      if (err) {
        st.icmpErrors++;
        onIcmp({ tNs: rec.tsNs, src: info.src, dst: info.dst, err });
      } else {
        st.otherIpv4++;
      }
      return;
    }
    if (v === Verdict.IPV4_OTHER || v === Verdict.IPV4_FRAGMENT) {
      st.otherIpv4++;
      return;
    }
    st.malformed++;
  });
  return st;
}
