/**
 * Adoption: a restarted gateway takes over every open connection from the log before it
 * forwards a packet (issue 14 item 2; DESIGN.md §7). The invariant `acked ⇒ stable` makes it
 * safe: whatever the dead gateway received but did not make stable was never acknowledged to
 * the client, which sends it again.
 *
 *   log record (listActive)                 adopted flow
 *   ──────────────────────────────────      ─────────────────────────────────────────────────
 *   client, server                          the tuple; the flow table entry
 *   clientIsn, serverIsn                    the ISNs (the client's view of the server's: a
 *                                           rebuilt connection is translated into it)
 *   clientSynOptions, serverSynOptions      window shifts, SACK, timestamps, first TSvals
 *                                           (flow/syn-options.ts, as the handshake parses them)
 *   id                                      logId (a log server: re-attached by `open` with
 *                                           the same metadata, which answers with the same
 *                                           connection; the id is the local one it gives)
 *   stable                                  stable; received = high = the data part of it;
 *                                           rightEdge = maxRightEdge = it (the client sent
 *                                           that much inside a window); complete = 0 (what
 *                                           the client was told is ≤ stable: the stable-ACK
 *                                           rule holds from the first packet)
 *   finOffset                               clientFin (logged); state CLOSING, else ESTABLISHED
 *   state (phase, crashes, incarnations)    the north record (src/recovery/adopt.ts): the
 *                                           translation, its port alias, the durable record;
 *                                           a rebuild in progress is begun again
 *
 * Learnt from the first segments, checked (src/wrappers/south-judge.ts adoptClient,
 * adoptServer; seed 003: the client's acknowledgement numbers are the truth):
 *
 *   client segment: seq in [stable − W_s, stable + W_s]; its ack → cliAcked (sndMax ≥ it);
 *                   its TSecr → lastTsToClient; its window → the client's window (as always)
 *   server segment: ack in [stable − W_s, stable + W_s] → delivered (and high); seq + len →
 *                   sndMax, within W_c of cliAcked once known; its TSval → lastTsToClient;
 *                   its window → the server's window (as always)
 *
 * Before any of that, the server may have restarted while no gateway ran: an adopted connection
 * passes nothing until the supervisor says which incarnation runs now, and is rebuilt from the
 * log if it is not the one its record binds (src/gateway/adopt-gate.ts).
 *
 * A segment that fails is dropped (ADOPT_UNCHECKED) and counted. Unknown and never learnt:
 * the digest of what the client may have (src/divergence/), so an adopted connection is not
 * verified; the server's FIN if it had sent one (it retransmits it); out-stream offsets
 * count from the server's ISN modulo 2^32 (a connection adopted after more than 4 GiB of
 * output would be rebuilt with wrong offsets).
 *
 * Which stores: the embedded disk log lists what it holds (reopened on the same directory);
 * a log server lists its open connections (`list`) and a re-registration (`open`, same
 * metadata) re-attaches each to this gateway; the memory log dies with its process: nothing to
 * adopt (the CLI says so at start).
 */
import { ipToU32 } from '../wire/addr.js';
import type { Seq } from '../wire/seq.js';
import { ADOPT_CLIENT, ADOPT_SERVER, Flow } from '../flow/flow.js';
import type { FlowTable, Service } from '../flow/table.js';
import { applySynOptions } from '../flow/syn-options.js';
import type { ConnectionRecord, LogStore } from '../log/types.js';
import type { SouthWrapper } from '../wrappers/south.js';
import type { NorthWrapper } from '../recovery/engine.js';
import { adoptNorth } from '../recovery/adopt.js';
import type { Logger } from '../util/logger.js';

export class AdoptionStats {
  /** Where the records came from: 'log' (an embedded store's list), 'log server', 'none' (not run; the memory log). */
  source = 'none';
  /** Connections adopted, and of them: translated (rebuilt before, LIVE), being rebuilt again, closing. */
  adopted = 0;
  translated = 0;
  rebuilding = 0;
  closing = 0;
  /** Adopted connections that are not verified (the digest died with the old process): all of them. */
  unverified = 0;
  /** Records not adopted: not a protected service, already in the table, or over --max-flows. */
  skipped = 0;
  overCap = 0;
}

export interface AdoptDeps {
  readonly table: FlowTable;
  readonly south: SouthWrapper;
  readonly north: NorthWrapper;
  readonly log: LogStore;
  readonly logger: Logger;
  readonly maxFlows: number;
  readonly now: () => number;
}

/** A log server's client (src/log/remote/client.ts RemoteLog): its list of the server's open connections, in pages. */
interface ListingLog {
  fetchActive(opts: { timeoutMs: number; pageTimeoutMs: number }): Promise<ConnectionRecord[]>;
}

function isListing(log: LogStore): log is LogStore & ListingLog {
  return typeof (log as Partial<ListingLog>).fetchActive === 'function';
}

/**
 * How long a start-up (or a standby's takeover) waits for a log server's list of open
 * connections, in ms: each page (256 records at most: a silent server is given up after this
 * long), and the whole list (10,000 connections are 40 pages; a server that keeps answering
 * but never ends is given up after this long).
 */
export const LIST_PAGE_TIMEOUT_MS = 5000;
export const LIST_TIMEOUT_MS = 60_000;

/** The list's bounds by name (`ftcp status` limits, ftcp_limit), when the log is a log server. */
export function listLimits(log: LogStore): Record<string, number> {
  return isListing(log) ? { adoptListTimeoutMs: LIST_TIMEOUT_MS, adoptListPageTimeoutMs: LIST_PAGE_TIMEOUT_MS } : {};
}

/** Adopts every open connection the log holds into the flow table (before the gateway forwards). */
export async function adoptFromLog(d: AdoptDeps, stats: AdoptionStats): Promise<void> {
  const listed = await listOpen(d, stats);
  if (listed !== null) adoptRecords(d, stats, listed.records, listed.remote);
}

/**
 * The log's open connections (a log server's list, or an embedded store's), or null when it
 * could not be had (logged; `stats.source` says it failed).
 */
export async function listOpen(d: Pick<AdoptDeps, 'log' | 'logger'>, stats: AdoptionStats): Promise<Listed | null> {
  stats.source = isListing(d.log) ? 'log server' : 'log';
  try {
    return await fetchOpen(d.log);
  } catch (err) {
    d.logger.error({ source: stats.source, err: (err as Error).message },
      'could not list the open connections of the log: none adopted, connections open before this start pass UNPROTECTED (counted as unknownFlows)');
    stats.source += ' (failed)';
    return null;
  }
}

export interface Listed {
  records: ConnectionRecord[];
  /** From a log server: each adopted connection is re-attached by `open` (adoptOne). */
  remote: boolean;
}

/**
 * The log's open connections, throwing when they cannot be had (a log server silent for
 * LIST_PAGE_TIMEOUT_MS, or its pages not done within LIST_TIMEOUT_MS). Split from adoptRecords so that a standby (standby.ts) can follow the log
 * and, at its takeover, list while it still drops, then adopt in one synchronous step.
 */
export async function fetchOpen(log: LogStore): Promise<Listed> {
  if (isListing(log)) return { records: await log.fetchActive({ timeoutMs: LIST_TIMEOUT_MS, pageTimeoutMs: LIST_PAGE_TIMEOUT_MS }), remote: true };
  return { records: log.listActive(), remote: false };
}

/** Adopts `records` (listOpen's) into the flow table: synchronous, so no packet is routed halfway. */
export function adoptRecords(d: AdoptDeps, stats: AdoptionStats, records: readonly ConnectionRecord[], remote: boolean): void {
  const rebuilds = new Map<Service, Flow[]>();
  for (const rec of records) {
    const flow = adoptOne(d, stats, rec, remote);
    if (flow === null) continue;
    const svc = d.table.service(flow.serverIp, flow.serverPort)!;
    const kind = adoptNorth(d.table, svc, flow, rec.state, d.north.digests);
    stats.unverified++;
    if (kind === 'translated') stats.translated++;
    if (kind === 'rebuilding') {
      stats.rebuilding++;
      let l = rebuilds.get(svc);
      if (l === undefined) rebuilds.set(svc, (l = []));
      l.push(flow);
    }
    d.logger.debug({ flow: flow.describe(), logId: rec.id, stable: rec.stable, kind, phase: rec.state?.phase ?? null }, 'adopted from the log');
  }
  for (const [svc, flows] of rebuilds) d.north.adoptRebuilds(svc, flows);
  d.logger.warn(
    { source: stats.source, adopted: stats.adopted, translated: stats.translated, rebuilding: stats.rebuilding, closing: stats.closing, skipped: stats.skipped, overCap: stats.overCap },
    `adopted ${stats.adopted} open connection(s) from the ${stats.source}: their numbers are learnt from their first segments; they are not verified against divergence`,
  );
}

/** One record's flow, in the table and bound to its log connection, or null (skipped). */
function adoptOne(d: AdoptDeps, stats: AdoptionStats, rec: ConnectionRecord, remote: boolean): Flow | null {
  let serverIp: number;
  let clientIp: number;
  try {
    serverIp = ipToU32(rec.server.addr);
    clientIp = ipToU32(rec.client.addr);
  } catch {
    stats.skipped++;
    return null;
  }
  const svc = d.table.service(serverIp, rec.server.port);
  if (svc === undefined || d.table.get(svc, clientIp, rec.client.port) !== undefined) {
    stats.skipped++;
    return null;
  }
  if (d.table.size >= d.maxFlows) {
    stats.skipped++;
    stats.overCap++;
    return null;
  }
  const now = d.now();
  const flow = new Flow(clientIp * 65536 + rec.client.port, clientIp, rec.client.port, serverIp, rec.server.port,
    (rec.clientIsn >>> 0) as Seq, Buffer.from(rec.clientSynOptions), now);
  flow.serverIsn = (rec.serverIsn >>> 0) as Seq;
  flow.serverSynOptions = Buffer.from(rec.serverSynOptions);
  applySynOptions(flow, flow.serverSynOptions, 0, flow.serverSynOptions.length);
  const fin = rec.finOffset;
  const data = fin !== null && rec.stable > fin ? fin : rec.stable;
  flow.stable = rec.stable;
  flow.received = flow.high = data;
  flow.rightEdge = flow.maxRightEdge = data;
  if (fin !== null) {
    flow.clientFin = fin;
    flow.clientFinLogged = true;
  }
  flow.state = fin !== null ? 'CLOSING' : 'ESTABLISHED';
  if (fin !== null) stats.closing++;
  flow.adopted = true;
  flow.adopting = ADOPT_CLIENT | ADOPT_SERVER;
  d.table.add(svc, flow);
  if (remote) {
    d.south.attachLog(flow, d.log.open({
      client: rec.client, server: rec.server, clientIsn: rec.clientIsn, serverIsn: rec.serverIsn,
      clientSynOptions: rec.clientSynOptions, serverSynOptions: rec.serverSynOptions,
    }));
  } else {
    d.table.bindLogId(flow, rec.id);
  }
  stats.adopted++;
  return flow;
}
