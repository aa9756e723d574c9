/**
 * The log server's list in pages (protocol.ts "Paged list", server.ts list, client.ts
 * fetchActive), over the simulated link (RemoteWorld):
 *  * 5,000 connections listed by a gateway's client: every one once, in many pages, each
 *    reply within its bounds (records and bytes);
 *  * a hostile cursor or page size: refused or clamped, counted; an unpaged list too large
 *    for one message is refused, counted (it used to make the link throw);
 *  * connections that change between pages: a closed one is missing, one opened after the
 *    listing began is missing, none twice;
 *  * a gateway (fake TUN) adopting 5,000 connections from the log server: all in its table,
 *    all re-registered.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryLog } from '../../../src/log/memory.js';
import { encodeReply, LIST_PAGE_RECORDS, recordToWire, type Reply } from '../../../src/log/remote/protocol.js';
import { LogServer } from '../../../src/log/remote/server.js';
import type { ConnectionState } from '../../../src/log/state.js';
import type { OpenMeta } from '../../../src/log/types.js';
import { RemoteWorld, remoteHarness } from '../../support/remote-log.js';
import { ADDRESSES } from '../../../src/lab/topology.js';
import { SPORT } from '../../support/segments.js';
import { STATE_INCARNATION } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const OPTS = Uint8Array.from([2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
/** The largest state record there is: 8 incarnations (a record of ~800 JSON bytes). */
const BIG_STATE: ConnectionState = { update: 9, phase: 'LIVE', crashes: 8, incarnations: Array.from({ length: 8 }, () => STATE_INCARNATION) };
const LIST_OPTS = { timeoutMs: 60_000, pageTimeoutMs: 5000 };

function meta(i: number, server = { addr: '10.9.0.2', port: 80 }): OpenMeta {
  return {
    client: { addr: `10.8.${(i >> 8) & 255}.${i & 255}`, port: 20000 + (i % 40000) },
    server, clientIsn: (i * 2654435761) >>> 0, serverIsn: (i * 40503) >>> 0,
    clientSynOptions: OPTS, serverSynOptions: OPTS,
  };
}

async function filled(n: number, state: ConnectionState | null, server?: { addr: string; port: number }): Promise<MemoryLog> {
  const store = new MemoryLog();
  for (let i = 0; i < n; i++) {
    const id = await store.open(meta(i, server));
    if (state !== null) await store.setState(id, state);
  }
  return store;
}

function world(store: MemoryLog, opts: { listPageBytes?: number } = {}): RemoteWorld {
  const w = new RemoteWorld(store);
  if (opts.listPageBytes !== undefined) w.server = new LogServer({ store, listPageBytes: opts.listPageBytes });
  cleanups.push(() => w.shutdown());
  return w;
}

describe('the log server list in pages', () => {
  it('lists 5,000 connections to a gateway: every one once, in pages of at most 256 records', async () => {
    const w = world(await filled(5000, null));
    const log = w.gateway();
    const records = await w.settle(log.fetchActive(LIST_OPTS), 20_000, 'the list');
    expect(records.length).toBe(5000);
    expect(new Set(records.map((r) => r.id)).size).toBe(5000);
    expect(records.map((r) => r.id)).toEqual([...records.map((r) => r.id)].sort((a, b) => a - b));
    const pages = Math.ceil(5000 / LIST_PAGE_RECORDS);
    expect(log.linkStats().client.listPages).toBe(pages);
    expect(w.server.counters.listPages).toBeGreaterThanOrEqual(pages); // a page asked again after a timeout is served again
    expect(w.server.counters.listTooLarge).toBe(0);
  });

  it('each reply stays within the page bytes: large records (8 incarnations) come in more, smaller pages', async () => {
    const store = await filled(600, BIG_STATE);
    const w = world(store, { listPageBytes: 32 * 1024 });
    const peer = w.raw();
    const ids: number[] = [];
    let total = 0;
    let after = 0;
    for (let i = 0; i < 200; i++) {
      const r = await peer.ask({ op: 'list', after, max: LIST_PAGE_RECORDS });
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      const records = r.records!;
      expect(records.length).toBeGreaterThan(0);
      expect(records.length).toBeLessThan(LIST_PAGE_RECORDS); // the bytes bound came first
      const recordBytes = records.reduce((n, x) => n + Buffer.byteLength(JSON.stringify(x)) + 1, 0);
      expect(recordBytes).toBeLessThanOrEqual(32 * 1024);
      total += recordBytes;
      expect(records.every((x) => x.state !== null && x.id > after)).toBe(true);
      ids.push(...records.map((x) => x.id));
      if (r.next === null) break;
      expect(r.next).toBe(records[records.length - 1]!.id);
      after = r.next!;
    }
    expect(ids).toEqual(store.listActive().map((x) => x.id).sort((a, b) => a - b));
    // More pages than the record bound alone would make (3), as many as the bytes need.
    expect(w.server.counters.listPages).toBeGreaterThanOrEqual(Math.ceil(total / (32 * 1024)));
    expect(w.server.counters.listPages).toBeGreaterThan(Math.ceil(600 / LIST_PAGE_RECORDS) * 3);
  });

  it('a page costs what it returns: no record built but its own (the listing\'s ids come without), each sent as encodeReply would', async () => {
    const store = await filled(1000, BIG_STATE);
    const w = world(store);
    const peer = w.raw();
    let built = 0, listedAll = 0;
    const recordOf = store.recordOf.bind(store);
    store.recordOf = (id) => (built++, recordOf(id));
    const listActive = store.listActive.bind(store);
    store.listActive = () => (listedAll++, listActive());
    const all = listActive().sort((a, b) => a.id - b.id);
    const first = await peer.ask({ op: 'list', after: 0, max: 10 });
    expect(first).toEqual({ ok: true, records: all.slice(0, 10).map(recordToWire), next: all[9]!.id });
    expect({ built, listedAll }).toEqual({ built: 10, listedAll: 0 });
    const last = await peer.ask({ op: 'list', after: all[994]!.id, max: 10 });
    expect(last).toEqual({ ok: true, records: all.slice(995).map(recordToWire), next: null });
    expect({ built, listedAll }).toEqual({ built: 15, listedAll: 0 });
  });

  it('a hostile cursor is refused and a hostile page size clamped, both counted; an unpaged list too large for a message is refused, counted', async () => {
    const w = world(await filled(3000, null));
    const peer = w.raw();
    for (const after of [-1, 1.5, 'x', null, 2 ** 60] as unknown[]) {
      const r = await peer.ask({ op: 'list', after } as never);
      expect(r).toMatchObject({ ok: false, code: 'FTCP_LOG_BAD_REQUEST' });
    }
    expect(w.server.counters.listRefused).toBe(5);
    for (const max of [1e9, 0, -5, 'all', 2.5] as unknown[]) {
      const r = await peer.ask({ op: 'list', after: 0, max } as never);
      expect(r.ok && r.records!.length).toBe(LIST_PAGE_RECORDS);
    }
    expect(w.server.counters.listClamped).toBe(5);
    const small = await peer.ask({ op: 'list', after: 0, max: 3 });
    expect(small.ok && small.records!.length).toBe(3);
    // Past the last id: an empty last page.
    const past = await peer.ask({ op: 'list', after: 1e9 });
    expect(past).toMatchObject({ ok: true, records: [], next: null });
    // The one-message list of before: 3,000 records (~1.3 MB) do not fit a link message (1 MiB).
    const whole: Reply = await peer.ask({ op: 'list' });
    expect(whole).toMatchObject({ ok: false, code: 'FTCP_LOG_TOO_LARGE' });
    expect(w.server.counters.listTooLarge).toBe(1);
    expect(encodeReply(0, whole).length).toBeLessThan(1000);
  });

  it('between pages: a connection closed is missing, one opened after the listing began is missing, none comes twice', async () => {
    const store = await filled(50, null);
    const w = world(store);
    const peer = w.raw();
    const first = await peer.ask({ op: 'list', after: 0, max: 10 });
    expect(first.ok && first.next).toBe(10);
    store.close(15);
    store.close(5); // already listed
    const late = await store.open(meta(9999));
    const seen = first.ok ? first.records!.map((r) => r.id) : [];
    let after = 10;
    for (;;) {
      const r = await peer.ask({ op: 'list', after, max: 10 });
      if (!r.ok) throw new Error(r.message);
      seen.push(...r.records!.map((x) => x.id));
      if (r.next === null || r.next === undefined) break;
      after = r.next;
    }
    expect(seen).not.toContain(15);
    expect(seen).not.toContain(late);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBe(49); // 50 listed from the start, 15 closed before its page
    // A new listing sees the store as it is now.
    const again = await peer.ask({ op: 'list', after: 0 });
    expect(again.ok && again.records!.map((r) => r.id)).toContain(late);
  });
});

describe('the client paging', () => {
  type ListFn = (peer: unknown, reqId: number, req: unknown) => Buffer;
  const patchList = (w: RemoteWorld, f: (reqId: number, req: { after?: number }) => Buffer): void => {
    (w.server as unknown as { list: ListFn }).list = (_p, reqId, req) => f(reqId, req as { after?: number });
  };

  it('takes a reply without a cursor (a server that does not page) as the whole list', async () => {
    const store = await filled(40, null);
    const w = world(store);
    const asked: unknown[] = [];
    patchList(w, (reqId, req) => (asked.push(req), encodeReply(reqId, { ok: true, records: store.listActive().map(recordToWire) })));
    const log = w.gateway();
    const records = await w.settle(log.fetchActive(LIST_OPTS), 5000, 'the list');
    expect(records.length).toBe(40);
    // One page asked (sent again if slow to come: the request is resent, not a second page).
    expect(asked[0]).toEqual({ op: 'list', after: 0, max: LIST_PAGE_RECORDS });
    expect(asked.every((a) => (a as { after: number }).after === 0)).toBe(true);
    expect(log.linkStats().client.listPages).toBe(1);
  });

  it('gives up on a cursor that does not advance (never pages forever)', async () => {
    const w = world(await filled(3, null));
    patchList(w, (reqId, req) => encodeReply(reqId, { ok: true, records: [], next: req.after ?? 0 }));
    const log = w.gateway();
    await expect(w.settle(log.fetchActive(LIST_OPTS), 5000, 'the list')).rejects.toMatchObject({ code: 'FTCP_LOG_PROTOCOL' });
  });
});

describe('a gateway adopting from a log server at scale', () => {
  it('adopts 5,000 connections (listed in pages) into its table and re-registers every one', async () => {
    const store = await filled(5000, null, { addr: ADDRESSES.server, port: SPORT });
    const w = world(store);
    const stop = w.background();
    cleanups.push(stop);
    const log = w.gateway();
    const h = remoteHarness(log);
    const stats = await h.gw.adopt();
    expect(stats.source).toBe('log server');
    expect(stats.adopted).toBe(5000);
    expect(stats.overCap).toBe(0);
    expect(h.gw.table.size).toBe(5000);
    expect(log.linkStats().client.listPages).toBe(Math.ceil(5000 / LIST_PAGE_RECORDS));
    await w.until(() => log.linkStats().client.requests === 0, 20_000, 'every re-registration answered');
    expect(w.server.counters.reopens).toBe(5000);
    expect(store.listActive().length).toBe(5000); // re-attached, not opened a second time
    expect(h.gw.limits()).toMatchObject({ adoptListTimeoutMs: 60_000, adoptListPageTimeoutMs: 5000 });
    expect(h.gw.metrics()).toContain('ftcp_limit{name="adoptListTimeoutMs"} 60000');
  });
});
