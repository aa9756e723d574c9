/**
 * The demo client's seam between a connection (client.ts: socket, hashing, counting, timing)
 * and one kind's conversation (the drivers in client.ts and random-client.ts), in a file of
 * its own so that neither imports the other for it.
 */
import type { RandomOutcome } from './random.js';

/** What a connection can do to its socket and its verdict; given to the kind's driver. */
export interface ConnApi {
  readonly finished: boolean;
  /** Bytes written that left the process (handed to the kernel). */
  flushed(): number;
  /** Stops/resumes reading for `why`; reading runs only while no reason holds it. */
  setPaused(why: string, on: boolean): void;
  /** The connection is idle on purpose (from now; false: no longer). */
  setIdle(on: boolean): void;
  /** Records send progress (for maxStallMs) where no data arrives. */
  progress(): void;
  write(b: Buffer): boolean;
  /** SHA-256 (hex) of everything written so far. */
  sentSha256(): string;
  end(): void;
  fail(code: string, message: string): void;
  pass(): void;
}

/** One kind's conversation. The Conn does the socket, hashing, counting and timing. */
export interface Driver {
  onConnect(c: ConnApi): void;
  onData(c: ConnApi, b: Buffer): void;
  /** The server's FIN. The driver must pass() or fail(). */
  onEnd(c: ConnApi): void;
  onDrain?(c: ConnApi): void;
  /** The connection is over (passed, failed or timed out): cancel timers. */
  onFinish?(): void;
  /** Progress in the run's unit. */
  units(c: ConnApi): { done: number; total: number };
  /** Goes idle on purpose (echo/kv with idleMs, even connections). */
  readonly goesIdle?: boolean;
  /** random kinds: the connection's outcome, for its report. */
  result?(error: { code: string } | undefined): RandomConnResult;
}

/** A random connection's result, in its DemoConnReport. */
export interface RandomConnResult {
  outcome: RandomOutcome;
  /** Replies verified (before the first bad one, a reset or the deadline). */
  verified: number;
  /** Requests sent. */
  requests: number;
  /** Index of the first bad reply and the stream offset where it began (-1: none). */
  firstBad: number;
  firstBadOffset: number;
}
