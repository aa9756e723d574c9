/**
 * Step 4 of the log client (client.ts): requests to the log server (open, read, close,
 * register, expiry, list) are kept here until answered, and sent again after a loss, a
 * resynchronisation or `timeoutMs` without an answer. All are idempotent at the server,
 * so whichever copy is answered settles the request; a reply naming no pending request is
 * stale (the caller counts it).
 *
 * Requests leave in the order they were made, as the link window allows (`sendPending`).
 * A request may not be sendable yet (a read of a connection still re-registering: its
 * `build` returns null): it waits without blocking the ones behind it.
 */
import { FtcpError } from '../../util/errors.js';
import type { Reply } from './protocol.js';

/** What the caller gives for one request (made knowing its request id). */
export interface RequestSpec {
  /** The message to send now, or null when it cannot be sent yet (connection re-registering). */
  readonly build: () => Buffer | null;
  readonly settle: (m: { reply?: Reply; data?: Buffer }) => void;
  readonly fail: (err: FtcpError) => void;
  /** Dropped (not resent) when the server restarts: it names a server id of the old incarnation. */
  readonly staleOnRestart: boolean;
}

interface Req extends RequestSpec {
  /** When it was last sent; null: to be sent (again) by the next sendPending. */
  sentAt: number | null;
}

export class Requests {
  private readonly pending = new Map<number, Req>();
  private nextReq = 1;

  constructor(private readonly timeoutMs: number) {}

  get size(): number {
    return this.pending.size;
  }

  has(reqId: number): boolean {
    return this.pending.has(reqId);
  }

  /** Keeps a new request, made by `make` with its id; returns the id. */
  add(make: (reqId: number) => RequestSpec): number {
    const reqId = this.nextReq++;
    const spec = make(reqId);
    this.pending.set(reqId, {
      build: spec.build,
      settle: spec.settle,
      fail: spec.fail,
      staleOnRestart: spec.staleOnRestart,
      sentAt: null,
    });
    return reqId;
  }

  /** Forgets a request (replaced by a newer one, or no longer wanted): it settles never. */
  cancel(reqId: number): void {
    this.pending.delete(reqId);
  }

  /** An answer arrived: settles its request. false: no such request is pending (stale). */
  settle(reqId: number, m: { reply?: Reply; data?: Buffer }): boolean {
    const r = this.pending.get(reqId);
    if (r === undefined) return false;
    this.pending.delete(reqId);
    r.settle(m);
    return true;
  }

  /** Sends the requests not yet sent, in order. false: the window is full. */
  sendPending(link: { send(msg: Buffer): boolean }, now: number): boolean {
    for (const r of this.pending.values()) {
      if (r.sentAt !== null) continue;
      const msg = r.build();
      if (msg === null) continue;
      if (!link.send(msg)) return false;
      r.sentAt = now;
    }
    return true;
  }

  /** After a resynchronisation: every pending request is sent again. */
  resendAll(): void {
    for (const r of this.pending.values()) r.sentAt = null;
  }

  /** Requests unanswered for timeoutMs are sent again. Returns how many. */
  retry(now: number): number {
    let n = 0;
    for (const r of this.pending.values()) {
      if (r.sentAt !== null && now - r.sentAt >= this.timeoutMs) {
        r.sentAt = null;
        n++;
      }
    }
    return n;
  }

  /** The server restarted: the requests naming its old ids fail (each with its own error). */
  failStale(err: () => FtcpError): void {
    for (const [id, r] of this.pending) {
      if (r.staleOnRestart) {
        this.pending.delete(id);
        r.fail(err());
      }
    }
  }

  /** Shutdown: every pending request fails with `err`. */
  failAll(err: FtcpError): void {
    for (const r of [...this.pending.values()]) r.fail(err);
    this.pending.clear();
  }
}

/** The error a refusal names (or FTCP_LOG_PROTOCOL: a reply that is not one where a refusal was expected). */
export function replyError(r: Reply): FtcpError {
  return r.ok ? new FtcpError('FTCP_LOG_PROTOCOL', 'log: unexpected reply') : new FtcpError(r.code, r.message);
}
