/**
 * What a client saw, from a capture at its interface: per server port, the connections,
 * and the RSTs, FINs and ICMP errors that reached the client. (`ftcp inspect` grows from here.)
 */
import { Verdict } from '../wire/packet.js';
import { forEachPacket } from './capture.js';
import { TCP_FIN, TCP_RST, TCP_SYN, TCP_ACK } from '../wire/tcp.js';

export interface CaptureSummary {
  packets: number;
  /** Client SYNs to the given ports (connections opened). */
  connections: number;
  /** RST segments from the server side reaching the client. */
  rstToClient: number;
  /** FIN segments from the server side reaching the client. */
  finToClient: number;
  /** ICMP packets toward the client (any type). */
  icmpToClient: number;
}

export function summarizeCapture(pcap: Buffer, serverPorts: readonly number[], clientIp: number): CaptureSummary {
  const ports = new Set(serverPorts);
  const s: CaptureSummary = { packets: 0, connections: 0, rstToClient: 0, finToClient: 0, icmpToClient: 0 };
  forEachPacket(pcap, (v, info) => {
    s.packets++;
    if (v === Verdict.IPV4_ICMP && info.dst === clientIp) s.icmpToClient++;
    if (v !== Verdict.IPV4_TCP) return;
    if (ports.has(info.dstPort) && info.flags & TCP_SYN && !(info.flags & TCP_ACK)) s.connections++;
    if (ports.has(info.srcPort) && info.dst === clientIp) {
      if (info.flags & TCP_RST) s.rstToClient++;
      if (info.flags & TCP_FIN) s.finToClient++;
    }
  });
  return s;
}
