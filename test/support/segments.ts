/**
 * The addresses and segments of every gateway unit test: the lab's client and server
 * (src/lab/topology.ts, so a unit test and a lab run talk about the same hosts), the
 * protected port, one builder of TCP segments between them, and the parsed form the
 * harness hands back.
 *
 *   client 198.18.1.2:40000  ───▶  gateway (fake TUN)  ───▶  server 198.18.2.2:5001
 */
import { ADDRESSES } from '../../src/lab/topology.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { emitTcpPacket, parseTcpPacket, type ParsedTcpPacket, type TcpPacketRepr } from '../../src/wire/repr.js';
import { decodeTcpOptions, type TcpOptionsRepr } from '../../src/wire/tcp-options.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';

export const CLIENT = ipToU32(ADDRESSES.client);
export const SERVER = ipToU32(ADDRESSES.server);
/** The gateway's own address on the servers' network (the source of its ICMP errors toward clients). */
export const GATEWAY_SERVER_SIDE = ipToU32(ADDRESSES.gwServer);
/** The client's usual port and the protected service's port. */
export const CPORT = 40000;
export const SPORT = 5001;
/** The protected service as the oracle and the supervisor name it. */
export const SVC_NAME = `${ADDRESSES.server}:${SPORT}`;

/** What `seg` needs: the direction, the client's port (default CPORT), and any header field. */
export type SegSpec = Partial<TcpPacketRepr> & { fromClient: boolean; port?: number };

/**
 * A TCP segment between the client (port `port`) and the protected service: an ACK with
 * sequence and ack 0 and a window field of 512 unless the spec says otherwise.
 */
export function seg(r: SegSpec): Buffer {
  const { fromClient, port = CPORT, ...fields } = r;
  const ends = fromClient
    ? { src: CLIENT, dst: SERVER, srcPort: port, dstPort: SPORT }
    : { src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: port };
  return emitTcpPacket({ seq: 0, ack: 0, flags: TCP_ACK, window: 512, ...ends, ...fields });
}

/** A parsed segment and its bytes. */
export type Seg = ParsedTcpPacket & { raw: Buffer };

export function parseSeg(raw: Buffer): Seg {
  return { ...parseTcpPacket(raw), raw };
}

export function opts(s: TcpPacketRepr): TcpOptionsRepr {
  return s.options ? decodeTcpOptions(s.options) : {};
}

export function hasFlag(s: TcpPacketRepr, f: number): boolean {
  return (s.flags & f) !== 0;
}

export { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN };
