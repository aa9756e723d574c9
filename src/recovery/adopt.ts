/**
 * The north side's part of adopting a connection from the log (the gateway's part, and the
 * whole protocol, are in src/gateway/adopt.ts): what a restarted gateway rebuilds of a
 * connection's NorthRecord from its durable record (src/log/state.ts ConnectionState).
 *
 *   record field                    becomes
 *   ─────────────────────────────   ──────────────────────────────────────────────────────────
 *   last incarnation (any phase)    NorthRecord.xlate: Translation(seqDelta, tsDelta, client
 *                                   port, serverSidePort, oldShift, newShift); a moved port is
 *                                   aliased in the flow table again (the incarnation's segments
 *                                   come to serverSidePort)
 *   update, incarnations, phase     NorthRecord.durable: issued = stable = update (read from
 *                                   the log, so stable), the translation in force stable
 *   crashes                         Flow.crashes
 *   boundTo (v2; v1: none)          NorthRecord.durable.boundTo: the server incarnation the
 *                                   connection lives in, checked against the supervisor's
 *                                   first heartbeat before a segment passes (src/gateway/adopt-gate.ts)
 *   (nothing: died with the old     NorthRecord.digest: made abandoned at once, so the
 *    process)                       connection is not verified (`verified: false`) and a later
 *                                   rebuild of it is not compared (src/divergence/)
 *
 * LIVE (or no record): that is all; the translation goes on. MASKED, HANDSHAKE, REPLAY,
 * ABSORB: a rebuild was in progress; the caller masks the connection again and rebuilds it
 * from the log (NorthWrapper.adoptRebuilds), reaping the half-done incarnation's connection
 * on the last incarnation's port as step 1 reaps a dead one.
 */
import type { Flow } from '../flow/flow.js';
import type { FlowTable, Service } from '../flow/table.js';
import type { ConnectionState } from '../log/state.js';
import { OutDigest, type DigestBudget } from '../divergence/digest.js';
import { DurableState } from './durable.js';
import { northOf } from './rebuild.js';
import { Translation } from './translate.js';

/** What adoption found a connection to be. */
export type AdoptedKind = 'established' | 'translated' | 'rebuilding';

/** Rebuilds `flow`'s north record from its log record `state` (null: never crashed). */
export function adoptNorth(table: FlowTable, svc: Service, flow: Flow, state: ConnectionState | null, digests: DigestBudget): AdoptedKind {
  const n = northOf(flow);
  const d = new OutDigest(digests);
  d.abandon('adopted from the log by a restarted gateway: what the client may have died with the old process');
  d.reported = true; // counted by the adoption (adoptedUnverified), not as a digest given up
  n.digest = d;
  if (state === null) return 'established';
  flow.crashes = state.crashes;
  const durable = new DurableState();
  for (const inc of state.incarnations) durable.addIncarnation(inc);
  durable.phase = state.phase;
  durable.issued = durable.stable = state.update;
  durable.xlateUpdate = state.incarnations.length > 0 ? state.update : 0;
  durable.boundTo = state.boundTo ?? null;
  n.durable = durable;
  const last = state.incarnations[state.incarnations.length - 1];
  if (last !== undefined) {
    n.xlate = new Translation(last.seqDelta, last.tsDelta, flow.clientPort, last.serverSidePort, last.oldShift, last.newShift);
    if (n.xlate.movesPort) table.alias(svc, flow, last.serverSidePort);
  }
  if (state.phase !== 'LIVE') return 'rebuilding';
  return last !== undefined ? 'translated' : 'established';
}
