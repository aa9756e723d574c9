/**
 * The recovery engine's timers and bounds (the main ones are shown by `ftcp status` and
 * /metrics through NorthWrapper.limits()).
 */
import { DEFAULT_DIVERGENCE, type DivergenceConfig } from '../divergence/policy.js';
import { defaultDigestLimits } from '../divergence/digest.js';

export interface NorthOptions {
  /** ACK(stable) to a masked client at least this often (ms). */
  keepaliveMs: number;
  /**
   * Keepalive ACKs per second over every masked connection at most: with many connections
   * the period grows past keepaliveMs (10,000 masked connections at 200 ms would be 50,000
   * packets a second, the gateway's whole budget while it rebuilds them).
   */
  keepaliveRate: number;
  /** First SYN retransmission timeout (ms); doubles to 1 s. */
  synRtoMs: number;
  /** First replay retransmission timeout (ms); doubles to 2 s. */
  replayRtoMs: number;
  /** SYN attempts on the dead incarnation's port before moving to a fresh port. */
  portAttempts: number;
  /** Fresh client ports toward a new incarnation (documented: clients must not use them). */
  portRange: [number, number];
  /** From the start of a rebuild (listening again) to the handshake: past it, FAILED (ms). */
  rebuildDeadlineMs: number;
  /** A connection masked this long without the service listening again is ended (ms). */
  maskDeadlineMs: number;
  /**
   * Replay and absorption: no progress this long (the new incarnation acknowledges no replayed
   * byte and sends no output) while nothing on the client's side explains it (its window is
   * open) ends the connection (ms). A client that stops reading holds the server legitimately,
   * as it would without a crash, and does not count against it.
   */
  progressDeadlineMs: number;
  /** First zero-window probe toward the new incarnation (ms); doubles to 2 s. */
  probeMs: number;
  /**
   * Rebuilds in the handshake phase at once (bounded parallelism). Keep it well below the
   * server's listen backlog (Node's default is 511): in a trial with 1,024 at once for 1,000
   * connections the server's SYN queue overflowed (761 SYN cookies sent) and 255 connections
   * stayed in SYN-RECV at the server, their replays stalled. 128 never did.
   */
  maxParallel: number;
  /** Replay bytes read from the log at once. */
  readChunk: number;
  /**
   * Replay bytes sent and not yet acknowledged, over every connection at once. The rebuild
   * of many connections is bounded by the gateway's own packet rate: past it, the server's
   * answers overflow the TUN's queue toward the gateway, and every loss costs a
   * retransmission timeout. A connection with no room waits until acks free some.
   */
  replayInFlight: number;
  /** Without a liveness oracle: retry the handshake until the server answers (no 'listening'). */
  probeWithoutOracle: boolean;
  /** What a rebuilt connection whose output differs gets, per service (src/divergence/policy.ts). */
  divergence: DivergenceConfig;
  /**
   * A new incarnation whose regenerated output stays short of what the client may have had
   * (end0) with no progress this long, the client's window open, diverged ('short output').
   */
  divergenceDeadlineMs: number;
  /** The digest's block (bytes, aligned on out-stream offsets; one 64-bit hash each). */
  digestBlockBytes: number;
  /** Unacknowledged (kept) plus reordered bytes one connection's digest or comparison holds at most. */
  digestKeptCapBytes: number;
  /** Digest plus kept bytes over every connection at most; a digest past it is abandoned (unverified). */
  digestBudgetBytes: number;
}

export const defaultNorthOptions: NorthOptions = {
  keepaliveMs: 200,
  keepaliveRate: 5000,
  synRtoMs: 100,
  replayRtoMs: 200,
  portAttempts: 3,
  portRange: [61000, 65535],
  rebuildDeadlineMs: 30_000,
  maskDeadlineMs: 120_000,
  progressDeadlineMs: 60_000,
  probeMs: 200,
  maxParallel: 128,
  readChunk: 256 * 1024,
  replayInFlight: 1 << 20,
  probeWithoutOracle: false,
  divergence: DEFAULT_DIVERGENCE,
  divergenceDeadlineMs: 10_000,
  digestBlockBytes: defaultDigestLimits.blockBytes,
  digestKeptCapBytes: defaultDigestLimits.keptCapBytes,
  digestBudgetBytes: defaultDigestLimits.budgetBytes,
};
