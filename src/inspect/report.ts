/**
 * What `ftcp inspect` reports (inspectCapture in inspect.ts fills it): per connection and
 * per direction, in stream offsets; times in ns from the capture's first record.
 */
import type { AckInvariantReport, TraceEntry } from './ack-invariant.js';
import type { Range } from './ranges.js';

export type InspectVerdict = 'ok' | 'reset' | 'gap' | 'icmp' | 'unstable-ack' | 'incomplete';

export interface InspectOptions {
  /** Stability trace from parseStabilityTrace: "<client ip:port> <server port> <client ISN>" → series. */
  trace?: Map<string, TraceEntry[]>;
  /** Server ports: only connections to these are reported; they also orient mid-stream connections. */
  serverPorts?: number[];
}

/** A time span; times are ns from the first record of the capture. */
export interface Span {
  durationNs: number;
  fromNs: number;
  toNs: number;
}

export interface Pause extends Span {
  /** Offset of the data whose arrival ended the pause. */
  atOffset: number;
}

export interface AckStall extends Span {
  /** The capture (this connection's last packet) ended with the data still unacknowledged. */
  unackedAtEnd: boolean;
}

export interface Gap extends Range {
  /** The peer acknowledged past the gap's end: the bytes got through, the capture missed them. */
  ackedByPeer: boolean;
}

export interface DirectionReport {
  packets: number;
  /** This side's ISN, when its SYN was seen. */
  isn: number | null;
  /** Unique sequence space covered by payload. */
  bytes: number;
  /** All payload carried, retransmissions included. */
  payloadBytes: number;
  retransmissions: number;
  retransmittedBytes: number;
  /** Offsets [lowest seen or 0, highest seen) with no payload seen. */
  gaps: Gap[];
  gapBytes: number;
  /** Offset one past the last payload byte seen (or the FIN's offset), or null. */
  highestOffset: number | null;
  /** Highest offset of this direction the peer acknowledged. */
  ackedByPeer: number | null;
  /** Time of the first FIN from this side, and its offset. */
  finNs: number | null;
  finOffset: number | null;
  /** RSTs sent by this side; time of the first. */
  rsts: number;
  rstNs: number | null;
  /** Segments (not RSTs) advertising a zero window. */
  zeroWindows: number;
  longestPause: Pause | null;
  ackStall: AckStall | null;
  /** Segments whose payload was cut by the snap length. */
  truncatedSegments: number;
}

export interface IcmpSeen {
  tNs: number;
  type: number;
  code: number;
  /** Who sent the ICMP message and to whom. */
  from: string;
  to: string;
  /** Which direction's packet the error quotes. */
  quotes: 'c2s' | 's2c';
  quotedSeq: number | null;
  mtu: number | null;
  /** False for the kinds that do not end a connection (frag-needed, redirect, source quench). */
  hard: boolean;
}

export interface AckCheck {
  /** The trace has a series for this connection. */
  traced: boolean;
  /** Server→client acks checked. */
  checked: number;
  violations: Array<{ tNs: number; ack: number; stableAtThatTime: number }>;
}

export interface ConnectionReport {
  id: number;
  /** "<client ip:port> <server ip:port> <client ISN or ->" */
  key: string;
  /** The stability trace's key: "<client ip:port> <server port> <client ISN>", or null without a SYN. */
  traceKey: string | null;
  client: { ip: string; port: number };
  server: { ip: string; port: number };
  clientIsn: number | null;
  serverIsn: number | null;
  /** The capture began after the connection opened (no SYN or SYN-ACK seen). */
  midStream: boolean;
  startNs: number;
  endNs: number;
  packets: number;
  seen: {
    syn: boolean;
    synAck: boolean;
    finFromClient: boolean;
    finFromServer: boolean;
    rstFromClient: boolean;
    rstFromServer: boolean;
  };
  c2s: DirectionReport;
  s2c: DirectionReport;
  icmp: IcmpSeen[];
  /** Present when a trace was given and the connection is checkable. */
  ackInvariant: AckCheck | null;
  verdict: InspectVerdict;
  reason: string;
}

export interface InspectReport {
  /** Time of the first record (ns since the epoch); every other time is relative to it. */
  captureStartNs: bigint;
  durationNs: number;
  records: number;
  tcpSegments: number;
  icmpErrors: number;
  /** ICMP errors quoting no connection of the report. */
  unmatchedIcmpErrors: number;
  otherIpv4: number;
  notIpv4: number;
  malformed: number;
  truncated: number;
  /** TCP connections left out by serverPorts. */
  ignoredConnections: number;
  connections: ConnectionReport[];
  /** The stable-ack check over every connection (times absolute, as in the capture); null without a trace. */
  ackInvariant: AckInvariantReport | null;
}
