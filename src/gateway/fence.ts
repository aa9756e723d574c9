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
 *           ├─ the log's FAILED is not a log failure: no passthrough (which would forward
 *           │  protected traffic unprotected, beside the gateway that holds the epoch)
 *           └─ every connection leaves the flow table and the log client (leaveAll): they are
 *              the epoch holder's now, and a takeover of this gateway adopts them afresh
 *
 * Unprotected traffic passes as before. The log server already sends no STABLE to a fenced
 * gateway, so no ack beyond what was stable under its epoch could leave even before it hears
 * of the fence; the drop makes it stop forwarding anything at all.
 */
import type { LogStore } from '../log/types.js';
import type { Flow } from '../flow/flow.js';
import type { FlowTable } from '../flow/table.js';

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

/** What leaveAll needs of the gateway: its flow table, and the parts that keep state per connection. */
export interface LeavingParts {
  readonly table: FlowTable;
  readonly masking: { forget(flow: Flow): void };
  readonly north: { forget(flow: Flow): void };
  readonly adoptGate: { forget(flow: Flow): void };
}

/**
 * Every connection leaves this gateway, left to the log for the one that carries it on (a
 * release, standby.ts; a fence, Gateway.fence): out of the flow table, whatever runs for it ended
 * (masking, a rebuild, the adoption's wait; the gateway is not active, so nothing they would send
 * leaves: Gateway.emit), and its log connection forgotten by the log client alone
 * (LogStore.forget: the log server keeps it open). Without the last, a later takeover's
 * adoption would open each again beside the old one: two local connections per server id, the
 * server's STABLE notices going to whichever registered last, the old ones' bytes never freed.
 * Their log connections are never closed here: closing would delete them at the log server.
 * The opens still on their way are forgotten too (LogStore.forgetOpening; e.g. a release right
 * after a takeover, the adopted connections' re-registrations unanswered): answered, each would
 * find its flow gone and close its connection (south's orphan path), at the log server too.
 * Returns how many left.
 */
export function leaveAll(gw: LeavingParts, log: LogStore): number {
  const all = [...gw.table.flows()];
  for (const [svc, f] of all) {
    gw.table.remove(svc, f);
    gw.masking.forget(f);
    gw.north.forget(f);
    gw.adoptGate.forget(f);
    if (f.logId >= 0) log.forget?.(f.logId);
  }
  log.forgetOpening?.();
  return all.length;
}
