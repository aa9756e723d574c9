/**
 * The south wrapper's configuration and counters: what it reports to the gateway that composes
 * it (SouthEvents), its limits (SouthOptions) and its stats (SouthStats). The wrapper itself is
 * in south.ts (the per-packet entry; see there for how its files layer).
 */
import type { Flow } from '../flow/flow.js';
import type { Service } from '../flow/table.js';
import type { PacketInfo } from '../wire/packet.js';
import type { WrapperVerdict } from './contract.js';

/**
 * What the south wrapper reports to the gateway that composes it, given at construction. South
 * knows no other wrapper: the gateway dispatches each event to the north side (crash masking,
 * the rebuild) and answers each question from it (src/gateway/gateway.ts draws the order).
 */
export interface SouthEvents {
  /**
   * A flow left the table: whatever still runs for it on the north side ends (its recovery:
   * keepalives with stale numbers until the mask deadline, a replay, its place in the
   * `recovering` count, issue 11 item 5; a FIN/RST held for the verdict, which released later
   * would be judged against whatever flow then holds the tuple).
   */
  released(flow: Flow): void;
  /** A handshake completed and the flow was registered with the log (its SYN-ACK came at `flow.halfOpenAt`). */
  established(svc: Service, flow: Flow): void;
  /** The flow's log connection is open (its id bound), before the bytes kept pending meanwhile go to the log. */
  logBound(flow: Flow): void;
  /** Is the service's server down (crashed, not yet rebuilt into)? */
  serviceDown(svc: Service): boolean;
  /**
   * Is the connection being masked or rebuilt? Its new incarnation regenerates output from
   * offset 0, far below what the client acked (Flow.serverSeqOk).
   */
  rebuilding(flow: Flow): boolean;
  /** A server segment the client would accept (its incarnation's ack counts on the north side). */
  serverAccepted(flow: Flow, p: PacketInfo): void;
  /**
   * A server FIN or RST the client would accept, before it moves the flow: true when the
   * verdict stage took it (held for the liveness verdict, or suppressed: the process died).
   */
  finOrRst(svc: Service, flow: Flow, buf: Buffer, p: PacketInfo): boolean;
  /**
   * A segment of a flow the adoption gate watches (`flow.gate` set: an adopted connection whose
   * server may have restarted while no gateway ran, src/gateway/adopt-gate.ts): a drop reason,
   * or -1 to go on. A client segment is asked once the south took it (logged, the flow moved, as
   * any); a server segment before it moves anything, and a server RST only once the client would
   * accept it (RFC 5961: at its rcv_nxt), so that no spoofed or stale RST decides anything.
   */
  gated(flow: Flow, p: PacketInfo, fromClient: boolean): WrapperVerdict | -1;
}

/** No one listening (the south wrapper alone: no crash masking, nothing down, nothing held). */
export const NO_SOUTH_EVENTS: SouthEvents = {
  released: () => {},
  established: () => {},
  logBound: () => {},
  serviceDown: () => false,
  rebuilding: () => false,
  serverAccepted: () => {},
  finOrRst: () => false,
  gated: () => -1,
};

export interface SouthOptions {
  /**
   * An unprotected connection with no packet for this long is released (ms); a half-open one
   * after min(this, `halfOpenTimeoutMs`). An established or closing protected connection is
   * never released for idleness: it is still a connection the user asked to protect (the table
   * is bounded by `maxFlows` instead).
   */
  idleTimeoutMs: number;
  /**
   * A half-open connection (SYN_SEEN, SYN_ACKED) is released this long after its latest
   * handshake segment, the SYN or a SYN-ACK (ms). Default 30 s, against Linux's schedules: the
   * server retransmits its SYN-ACK after 1, 2, 4, 8 and 16 s (tcp_synack_retries 5; a client
   * whose third ACK was lost is answered within an RTT of each), so a live handshake is never
   * silent for 30 s; the client's SYN retries back off to 32 s, but a SYN_SEEN flow released
   * in such a gap is only made again by the next SYN (nothing is logged before the handshake).
   */
  halfOpenTimeoutMs: number;
  /**
   * At most this many half-open connections; a new SYN beyond it evicts the oldest one (as a
   * SYN queue does), counted. A legitimate handshake completes in one RTT, so a flood evicts
   * it only at more than maxHalfOpen SYNs per RTT (10,000 per 10 ms = 1 M SYN/s by default).
   */
  maxHalfOpen: number;
  /**
   * At most this many connections in the flow table (~4 KB each, their log aside). A new
   * connection beyond it is forwarded unprotected: counted (`flowsOverCap`) and logged.
   */
  maxFlows: number;
  /** A CLOSED connection is kept this long for late retransmissions (ms). */
  lingerMs: number;
  /** A retransmitted server FIN this soon after the first was forwarded is dropped (ms; see finRepeated). */
  finEchoMs: number;
  /** Client bytes kept per connection while the log has not opened it yet. */
  maxPendingBytes: number;
}

export const defaultSouthOptions: SouthOptions = {
  idleTimeoutMs: 2 * 60 * 60 * 1000,
  halfOpenTimeoutMs: 30_000,
  maxHalfOpen: 10_000,
  maxFlows: 100_000,
  lingerMs: 5_000,
  finEchoMs: 1_000,
  maxPendingBytes: 1 << 20,
};

export class SouthStats {
  flowsOpened = 0;
  flowsClosed = 0;
  flowsExpired = 0;
  flowsReset = 0;
  logOpenFailures = 0;
  bytesLogged = 0;
  pendingDropped = 0;
  acksLowered = 0;
  acksHeld = 0;
  heldReleased = 0;
  finsHeld = 0;
  /**
   * A server FIN or RST after both FINs were acknowledged (the client in TIME_WAIT): a
   * retransmission of the FIN the client has already acked (delayed by the stability and
   * verdict holds), or the server's answer to the ACK such a late FIN drew. Not forwarded.
   */
  unknownFlowPackets = 0;
  /** Client segments (not SYN) of a protected service with no flow: a connection passing unprotected. */
  unknownMidstream = 0;
  /** Connections of a protected service first seen mid-stream (no SYN; e.g. after a gateway restart): passing UNPROTECTED, each logged. */
  unknownFlows = 0;
  /** Log lines about unknown connections left out by the rate limit (UNKNOWN_LOG_PER_S). */
  unknownFlowLogsSuppressed = 0;
  /** Unknown connections forgotten at MAX_UNKNOWN_TRACKED (would be counted again). */
  unknownFlowsForgotten = 0;
  /** New connections forwarded unprotected because the flow table held maxFlows. */
  flowsOverCap = 0;
  /** Connections the log expired (lost) while open here: they go on unprotected. */
  flowsLogExpired = 0;
  simultaneousOpen = 0;
  /** Server SYN segments on a synchronized flow other than a retransmitted SYN-ACK: dropped. */
  serverSynDropped = 0;
  /** Server FIN retransmissions of a FIN already forwarded (finRepeated). */
  finRetransmitsDropped = 0;
  /** Server segments after both FINs were acked (the client's side is over), not forwarded. */
  afterCloseDropped = 0;
  // ---- segments validated against the flow (RFC 793 §3.3, RFC 5961; issue 11 items 3-5) ----
  /** SYNs with another ISN on an established or closing flow: forwarded, the flow kept. */
  synOnEstablished = 0;
  /** SYNs with another ISN on a half-open flow: forwarded, remembered as its other SYN. */
  synOnHalfOpen = 0;
  /** Flows over (CLOSED, lingering) replaced by a new connection's SYN (TIME_WAIT reuse). */
  flowsReplaced = 0;
  /** Client RSTs not at the server's rcv_nxt: forwarded, the flow kept. */
  clientRstIgnored = 0;
  /** Server RSTs not at the client's rcv_nxt: dropped, the flow kept, no verdict hold. */
  serverRstIgnored = 0;
  /** Client segments outside the server's window: forwarded, nothing logged or moved. */
  clientOutOfWindow = 0;
  /** Server segments outside the client's window: forwarded (ack ≤ stable), nothing moved. */
  serverOutOfWindow = 0;
  /** Client FINs out of the window or at another offset than the first: not logged. */
  clientFinIgnored = 0;
  /** Server FINs out of the window or where no FIN can be: not held, nothing moved. */
  serverFinIgnored = 0;
  /** Server segments acknowledging bytes the client never sent: dropped. */
  serverAckUnsent = 0;
  /** Log connections opened for a flow released meanwhile: closed at once. */
  logOpenOrphans = 0;
  /**
   * SACK blocks of the server's between the ack it sent and the lower one the client was shown
   * (stable), removed: shown, they would tell the client the server holds bytes the log lacks
   * (south-stable.ts sackAbove).
   */
  sacksAboveStableRemoved = 0;
  /** Handshakes completed (the client acked the server's ISN+1): the connection was registered with the log. */
  handshakesCompleted = 0;
  /** Half-open connections released at the half-open timeout (also counted in flowsExpired). */
  halfOpenExpired = 0;
  /** Half-open connections evicted (the oldest) for a new SYN at --max-half-open or --max-flows. */
  halfOpenEvicted = 0;
  /** Half-open connections ended by a RST answering the handshake (refused, or a SYN-ACK nobody asked for). */
  halfOpenReset = 0;
  /** SYN-ACKs that do not acknowledge the client's ISN+1: forwarded, the flow not moved. */
  synAckMismatch = 0;
  // ---- connections adopted from the log (src/gateway/adopt.ts) ----
  /** Adopted connections whose client side / server side was learnt from a checked first segment. */
  adoptLearntClient = 0;
  adoptLearntServer = 0;
  /** Segments of an adopted connection that failed the checks: dropped (ADOPT_UNCHECKED). */
  adoptUnchecked = 0;
  /** Catching up (south-catchup.ts): stale timestamp echoes rewritten, D-SACK blocks removed, toward the client. */
  adoptStaleEchoes = 0;
  adoptDsacksRemoved = 0;
}
