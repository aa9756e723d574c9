/**
 * The gateway fenced by its log (issue 14 item 3; the log server's side is
 * src/log/remote/epochs.ts). Two gateways must never both acknowledge client data: the one
 * whose log server says another gateway claimed a newer epoch stops at once, and for good
 * (until it is restarted, or claims the log again itself: a standby's takeover).
 *
 *   log: STATUS FENCED / a request refused FTCP_LOG_FENCED
 *     └─▶ RemoteLog status listener (detail.fenced) ─▶ Gateway: fenced = {epoch, at}, logged once
 *           ├─ every protected packet, either way: dropped, FENCED (no ack reaches a client,
 *           │  nothing reaches a server: its client retransmits to whichever gateway is live)
 *           ├─ every packet the gateway makes (released acks, keepalives, a replay): dropped, FENCED
 *           └─ the log's FAILED is not a log failure: no passthrough (which would forward
 *              protected traffic unprotected, beside the gateway that holds the epoch)
 *
 * Unprotected traffic passes as before. The log server already sends no STABLE to a fenced
 * gateway, so no ack beyond what was stable under its epoch could leave even before it hears
 * of the fence; the drop makes it stop forwarding anything at all.
 */
import type { LogStore } from '../log/types.js';

export interface FencedState {
  /** The epoch another gateway claimed. */
  readonly epoch: number;
  /** When this gateway learnt it (ms since 1970). */
  readonly at: number;
}

/** How long a start-up or a takeover waits for the log server to grant a claim (ms). */
export const CLAIM_TIMEOUT_MS = 5000;

/**
 * Claims the log for this gateway: the epoch granted, or null when the log has no epochs (the
 * embedded stores: nobody else can write them). Rejects when the log server refuses or does
 * not answer within `timeoutMs` (an older log server does not know the request).
 */
export function claimLog(log: LogStore, timeoutMs = CLAIM_TIMEOUT_MS): Promise<number | null> {
  if (log.claim === undefined) return Promise.resolve(null);
  // The log client cancels its own request at the deadline (RemoteLog.claim): a claim that
  // outlived this wait must not be granted later and fence the gateway that is active.
  return log.claim(timeoutMs);
}
