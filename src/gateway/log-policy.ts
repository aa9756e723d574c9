/**
 * What the gateway does when its log cannot keep a connection's bytes: the log FAILED (the
 * log server unreachable past its limit: --on-log-failure stall or passthrough), or it refused
 * bytes over a bound (--log-conn-bound, --log-budget: that connection continues unprotected).
 * The log's upcalls reach these through the gateway (Gateway.start, onLogStatus), which
 * passes itself as the LogPolicyHost.
 */
import type { LogStatus, LogStore } from '../log/types.js';
import type { FlowTable } from '../flow/table.js';
import type { SouthWrapper } from '../wrappers/south.js';
import type { NorthWrapper } from '../recovery/engine.js';
import type { Logger } from '../util/logger.js';
import type { LogFailurePolicy } from './view.js';

/** What the policies read and count on the gateway. */
export interface LogPolicyHost {
  readonly table: FlowTable;
  readonly south: SouthWrapper;
  readonly north: NorthWrapper;
  readonly onLogFailure: LogFailurePolicy;
  /** Times the log reported FAILED. */
  logFailures: number;
  /** passthrough: log ids of the flows marked unprotected when the log failed. */
  readonly unprotected: Set<number>;
  /** Connections unprotected by a bound, and reports deferred while a connection is rebuilt. */
  readonly boundStats: { connection: number; total: number; deferred: number };
}

/**
 * The log FAILED (e.g. the log server unreachable past its limit).
 *  stall (default): nothing else. Stability stops advancing, so no client byte is acked
 *    beyond what is stable; clients stall (their TCP retransmits) until the log is back.
 *  passthrough: the flows of this moment are marked unprotected (`unprotected`, by log
 *    id), loudly: what they had held goes out, their packets pass untouched from now on,
 *    and new connections are not protected until the log is back.
 */
export function logFailed(gw: LogPolicyHost, logger: Logger, status: LogStatus): void {
  gw.logFailures++;
  if (gw.onLogFailure === 'stall') {
    logger.error({ status, policy: 'stall', connections: gw.table.size }, 'LOG FAILED: protected connections stall until the log is back');
    return;
  }
  gw.south.passthrough = true;
  for (const [, f] of gw.table.flows()) {
    if (f.logId >= 0) gw.unprotected.add(f.logId);
    if (!gw.north.rebuilding(f)) gw.south.unprotect(f);
  }
  logger.error(
    { status, policy: 'passthrough', unprotected: gw.unprotected.size },
    'LOG FAILED: connections now pass through UNPROTECTED (a server crash will break them)',
  );
}

/**
 * The log refused a connection's bytes: they would take it past the per-connection bound
 * ('connection') or the store past its total budget ('total'). The policy: the connection
 * continues UNPROTECTED, at once and loudly. What was held for stability goes out (no
 * stall), its packets pass from now on, nothing more is logged, and its log connection is
 * closed, which frees its memory now. A server crash will break it, as without ftcp.
 * The refused bytes were forwarded all the same (the log is a copy), so nothing is lost.
 *
 * A connection being rebuilt needs its log until the rebuild is over: the bytes are
 * refused (the client sends them again) and the next report after the rebuild applies
 * the policy.
 */
export function overBound(gw: LogPolicyHost, log: LogStore, logger: Logger, id: number, bound: 'connection' | 'total', held: number): void {
  const flow = gw.table.byLog(id);
  if (flow === undefined || flow.unprotected) {
    log.close(id); // no live flow for it: nothing to protect
    return;
  }
  if (gw.north.rebuilding(flow)) {
    if (!flow.boundDeferred) {
      flow.boundDeferred = true;
      gw.boundStats.deferred++;
      logger.warn({ flow: flow.describe(), bound, held }, 'log memory bound reached while the connection is rebuilt: it is unprotected once the rebuild is over');
    }
    return;
  }
  gw.boundStats[bound]++;
  gw.south.unprotect(flow);
  log.close(id);
  const u = log.usage?.();
  logger.error(
    {
      flow: flow.describe(), bound, heldBytes: held,
      limit: bound === 'connection' ? u?.maxBytesPerConn : u?.maxBytes, logBytes: u?.bytes,
    },
    bound === 'connection'
      ? 'LOG MEMORY: connection reached the per-connection bound (--log-conn-bound): it continues UNPROTECTED (a server crash will break it)'
      : 'LOG MEMORY: the log budget (--log-budget) is used up: this connection continues UNPROTECTED (a server crash will break it)',
  );
}
