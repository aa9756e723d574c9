/**
 * The log client's list (client.ts `fetchActive`): the log server's own list of open
 * connections (all gateways), fetched over the link page after page (protocol.ts "Paged
 * list"), for a restarted gateway that adopts every open connection (src/gateway/adopt.ts).
 * Paged because one link message holds only so many records; bounded in time, per page and
 * in all, because adoption waits on it before the gateway forwards a packet.
 *
 * What a caller sees of connections that change meanwhile: each connection at most once (the
 * cursor is its id, which only grows), in the state of the moment its page was cut; one closed
 * before its page is missing; one opened after the listing began is missing too (adoption then
 * meets it as an unknown flow). A server that does not page answers the first request with
 * every record and no cursor.
 */
import { performance } from 'node:perf_hooks';
import { FtcpError } from '../../util/errors.js';
import type { ConnectionRecord } from '../types.js';
import { LIST_PAGE_RECORDS, recordFromWire, type Reply, type WireRecord } from './protocol.js';
import { replyError } from './requests.js';

/** How long a `list` may take (the caller's bounds: src/gateway/adopt.ts, shown in its limits). */
export interface ListOptions {
  /** The whole list (every page), and each page, in ms. */
  timeoutMs: number;
  pageTimeoutMs: number;
  /** Records asked for per page (the server serves at most LIST_PAGE_RECORDS). */
  pageRecords?: number;
}

/** One page: its records, and the cursor of the next (none: the last page). */
export interface ListPage {
  records: WireRecord[];
  next: number | null | undefined;
}

/** Asks for the page of at most `max` records after the id `after`; rejects after `timeoutMs`. */
export type PageRequest = (after: number, max: number, timeoutMs: number) => Promise<ListPage>;

/** The counters a listing moves (the client's RemoteCounters). */
export interface ListCounters {
  listPages: number;
  badState: number;
}

/** Every page, each within `pageTimeoutMs`, the whole within `timeoutMs` (FTCP_LOG_TIMEOUT otherwise). */
export async function fetchActive(page: PageRequest, counters: ListCounters, opts: ListOptions): Promise<ConnectionRecord[]> {
  const deadline = performance.now() + opts.timeoutMs;
  const out: ConnectionRecord[] = [];
  let after = 0;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) throw new FtcpError('FTCP_LOG_TIMEOUT', `log list: not complete within ${opts.timeoutMs} ms (${out.length} records in ${counters.listPages} pages so far)`);
    const got = await page(after, opts.pageRecords ?? LIST_PAGE_RECORDS, Math.min(opts.pageTimeoutMs, left));
    counters.listPages++;
    for (const w of got.records) {
      const { record, badState } = recordFromWire(w);
      if (badState) counters.badState++;
      out.push(record);
    }
    const next = got.next;
    if (next === undefined || next === null) return out;
    // A cursor that does not advance would page forever: a server bug, never looped on.
    if (!Number.isSafeInteger(next) || next <= after) throw new FtcpError('FTCP_LOG_PROTOCOL', `log list: the server's cursor ${String(next)} does not follow ${after}`);
    after = next;
  }
}

/** A `list` reply as a page, or its refusal thrown. */
export function pageOf(r: Reply): ListPage {
  if (!r.ok || !Array.isArray(r.records)) throw replyError(r);
  return { records: r.records, next: r.next };
}
