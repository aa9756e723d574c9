/**
 * RemoteLog + LogServer over the simulated network (src/link/sim.ts, virtual time):
 * loss, reordering, duplication, a path down, server restarts (disk and memory), silence
 * (FAILED), the byte bounds (LOW-SPACE), forged frames. Every test ends by comparing the
 * bytes read back with the bytes appended. Then the state records (setState) through the
 * same link, and the protocol version check.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SimNetwork, type PathFault } from '../../../src/link/sim.js';
import { MemoryLog } from '../../../src/log/memory.js';
import { DiskLog } from '../../../src/log/disk.js';
import { RemoteLog } from '../../../src/log/remote/client.js';
import { LogServer } from '../../../src/log/remote/server.js';
import { decode, encodeReply, encodeRequest, metaKey, metaToWire, T_REPLY, T_REQUEST, type Reply, type Request } from '../../../src/log/remote/protocol.js';
import type { LogOptions } from '../../../src/log/common.js';
import type { ConnectionState, LogStatus, LogStore, OpenMeta } from '../../../src/log/types.js';
import { encodeState } from '../../../src/log/state.js';
import { openMeta, STATE_LIVE, STATE_MASKED, STATE_REPLAY, streamBytes } from './helpers.js';

const KEY = Buffer.from('remote-log-test-key-0123456789ab');

interface Rig {
  sim: SimNetwork;
  client: RemoteLog;
  server: LogServer;
  store: LogStore;
  stable: Map<number, number>;
  violations: string[];
  statuses: { status: LogStatus; expired?: number; reason?: string }[];
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function serverStable(store: LogStore, meta: OpenMeta): number {
  const k = metaKey(meta);
  return store.listActive().find((r) => metaKey(r) === k)?.stable ?? -1;
}

function rig(opts: { seed: number; fault?: Partial<PathFault>; store: LogStore; failAfterMs?: number }): Rig {
  const sim = new SimNetwork({ seed: opts.seed, ...(opts.fault ? { fault: opts.fault } : {}) });
  const client = new RemoteLog({ manualClock: true, failAfterMs: opts.failAfterMs ?? 1500, stallResyncMs: 300, requestTimeoutMs: 300 });
  client.attach(sim.addEndpoint('a', { key: KEY, ...client.handlers }));
  const r: Rig = { sim, client, server: null as unknown as LogServer, store: opts.store, stable: new Map(), violations: [], statuses: [] };
  r.server = attachServer(r, opts.store);
  const metas = new Map<number, OpenMeta>();
  (client as RemoteLog & { metas?: Map<number, OpenMeta> }).metas = metas;
  client.onStable((id, s) => {
    const prev = r.stable.get(id) ?? 0;
    if (s <= prev) r.violations.push(`not monotonic: ${id} ${s} after ${prev}`);
    const m = metas.get(id);
    if (m !== undefined && serverStable(r.store, m) < s) r.violations.push(`stable ${s} beyond the server's ${serverStable(r.store, m)}`);
    r.stable.set(id, s);
  });
  client.onStatus((status, d) => r.statuses.push({ status, ...d }));
  cleanups.push(() => client.shutdown());
  return r;
}

function attachServer(r: Rig, store: LogStore): LogServer {
  r.store = store;
  const server = new LogServer({ store });
  server.attachPeer((h) => r.sim.addEndpoint('b', { key: KEY, ...h }));
  r.server = server;
  return server;
}

async function open(r: Rig, meta: OpenMeta): Promise<number> {
  const p = r.client.open(meta);
  let id = -1;
  void p.then((v) => (id = v));
  await until(r, () => id > 0, 3000, 'open');
  (r.client as RemoteLog & { metas: Map<number, OpenMeta> }).metas.set(id, meta);
  return id;
}

/** Advance virtual time in 2 ms steps, letting promises and disk commits run between. */
async function until(r: Rig, cond: () => boolean, maxMs: number, what: string): Promise<void> {
  const end = r.sim.now + maxMs;
  let realEnd = 0;
  while (!cond()) {
    if (r.sim.now >= end) {
      // Virtual time is up, but real I/O (an LMDB open or commit with its fsync) may still be
      // running on a loaded machine: give it real time, up to 5 s, before failing.
      if (realEnd === 0) realEnd = performance.now() + 5000;
      if (performance.now() > realEnd) throw new Error(`timed out (virtual ${maxMs} ms, then 5 s real) waiting for ${what}`);
      await new Promise((res) => setTimeout(res, 5));
    }
    r.sim.run(2);
    r.client.tick(r.sim.now);
    r.server.tick(r.sim.now);
    await new Promise((res) => setImmediate(res));
  }
}

/** Advances exactly `ms` of virtual time (no real-time grace). */
async function drive(r: Rig, ms: number): Promise<void> {
  const end = r.sim.now + ms;
  while (r.sim.now < end) {
    r.sim.run(2);
    r.client.tick(r.sim.now);
    r.server.tick(r.sim.now);
    await new Promise((res) => setImmediate(res));
  }
}

/** Appends `data` in shuffled, overlapping segments, `perStep` segments per 2 ms of virtual time. */
async function feed(r: Rig, id: number, data: Buffer, seed: number, perStep = 8): Promise<void> {
  const segs: [number, number][] = [];
  for (let o = 0; o < data.length; o += 1448) segs.push([o, Math.min(data.length, o + 1448)]);
  let x = seed;
  const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < segs.length; i++) {
    if (rnd() < 0.2 && i + 1 < segs.length) [segs[i], segs[i + 1]] = [segs[i + 1]!, segs[i]!];
  }
  for (let i = 0; i < segs.length; i++) {
    const [s, e] = segs[i]!;
    r.client.append(id, s, data.subarray(s, e));
    if (rnd() < 0.1) r.client.append(id, s, data.subarray(s, e)); // a TCP retransmission
    if (i % perStep === perStep - 1) await drive(r, 2);
  }
}

describe('RemoteLog over a lossy simulated network', () => {
  it('every byte becomes stable exactly under loss, reordering and duplication', async () => {
    const r = rig({ seed: 7, fault: { loss: 0.05, dup: 0.05, reorder: 0.1, reorderMs: 5 }, store: new MemoryLog() });
    const ids: number[] = [];
    const datas: Buffer[] = [];
    for (let k = 0; k < 3; k++) {
      ids.push(await open(r, openMeta()));
      datas.push(streamBytes(100 + k, 0, 200_000 + k * 7_001));
    }
    for (let k = 0; k < 3; k++) await feed(r, ids[k]!, datas[k]!, k + 1);
    r.client.appendFin(ids[2]!, datas[2]!.length);
    await until(r, () => ids.every((id, k) => (r.stable.get(id) ?? 0) >= datas[k]!.length + (k === 2 ? 1 : 0)), 60_000, 'all stable');
    expect(r.stable.get(ids[0]!)).toBe(datas[0]!.length);
    expect(r.stable.get(ids[2]!)).toBe(datas[2]!.length + 1);
    expect(r.violations).toEqual([]);
    for (let k = 0; k < 3; k++) {
      let got: Buffer | null = null;
      void r.client.read(ids[k]!, 0, 1e12).then((b) => (got = b));
      await until(r, () => got !== null, 20_000, 'read');
      expect(got!.equals(datas[k]!)).toBe(true);
    }
    const ls = r.client.linkStats();
    expect(ls.link.retransmitted).toBeGreaterThan(0);
    expect(ls.link.duplicates! + ls.link.replayed!).toBeGreaterThan(0);
    expect(r.client.status()).toBe('OK');
  });

  it('a burst of link losses costs a bounded number of re-registration rounds (issue 10 item 1)', async () => {
    // The drill's log-loss collapse: every loss the link reported re-registered every
    // connection, each re-registration restarted the previous one (still unanswered) and
    // held back the connection's appends, which made more traffic and more losses.
    const r = rig({ seed: 8, store: new MemoryLog() });
    const ids: number[] = [];
    const datas: Buffer[] = [];
    for (let k = 0; k < 20; k++) {
      ids.push(await open(r, openMeta()));
      datas.push(streamBytes(200 + k, 0, 30_000));
    }
    const before = r.client.linkStats().client;
    // 200 ms of link loss reports, one every 2 ms, while the connections keep appending.
    for (let step = 0; step < 100; step++) {
      r.client.handlers.onLost([step + 1], 'resync');
      for (let k = 0; k < ids.length; k++) {
        const d = datas[k]!;
        const o = Math.min(d.length, step * 300);
        r.client.append(ids[k]!, o, d.subarray(o, Math.min(d.length, o + 300)));
      }
      await drive(r, 2);
    }
    await until(r, () => ids.every((id, k) => (r.stable.get(id) ?? 0) >= datas[k]!.length), 10_000, 'all stable');
    const ls = r.client.linkStats().client;
    // One round at once, then at most one per resyncIntervalMs (250 ms): 2 for 200 ms.
    expect(ls.resyncs! - before.resyncs!).toBeLessThanOrEqual(2);
    expect(ls.reRegistrations! - before.reRegistrations!).toBeLessThanOrEqual(2 * ids.length);
    expect(ls.resyncsCoalesced).toBeGreaterThan(90);
    expect(r.violations).toEqual([]);
    for (let k = 0; k < ids.length; k++) expect(r.stable.get(ids[k]!)).toBe(datas[k]!.length);
  });

  it('path down switches paths and loses nothing', async () => {
    const r = rig({ seed: 11, store: new MemoryLog() });
    const id = await open(r, openMeta());
    const data = streamBytes(5, 0, 150_000);
    await feed(r, id, data.subarray(0, 50_000), 3);
    r.sim.setPathUp(r.client.linkStats().path, false);
    await feed(r, id, data, 4);
    await until(r, () => (r.stable.get(id) ?? 0) >= data.length, 30_000, 'stable after path switch');
    expect(r.client.linkStats().link.pathSwitches).toBeGreaterThan(0);
    expect(r.violations).toEqual([]);
    expect(r.statuses.filter((s) => s.status === 'FAILED')).toEqual([]);
  });

  it('FAILED after silence, then OK and resent when found again', async () => {
    const r = rig({ seed: 3, store: new MemoryLog(), failAfterMs: 1000 });
    const id = await open(r, openMeta());
    const data = streamBytes(9, 0, 60_000);
    r.client.append(id, 0, data.subarray(0, 20_000));
    await until(r, () => (r.stable.get(id) ?? 0) >= 20_000, 5000, 'first stable');
    r.sim.setPathUp(0, false);
    r.sim.setPathUp(1, false);
    r.client.append(id, 20_000, data.subarray(20_000));
    await until(r, () => r.client.status() === 'FAILED', 5000, 'FAILED');
    expect(r.stable.get(id)).toBe(20_000); // nothing unstable is ever reported while silent
    expect(r.statuses.map((s) => s.status)).toEqual(['FAILED']);
    r.sim.setPathUp(0, true);
    r.sim.setPathUp(1, true);
    await until(r, () => (r.stable.get(id) ?? 0) >= data.length, 10_000, 'stable after reconnect');
    expect(r.client.status()).toBe('OK');
    expect(r.statuses.map((s) => s.status)).toEqual(['FAILED', 'OK']);
    expect(r.client.linkStats().client.reconnects).toBeGreaterThan(0);
    expect(r.client.linkStats().client.failures).toBe(1);
  });

  it('forged and replayed frames are counted and change nothing', async () => {
    const r = rig({ seed: 5, store: new MemoryLog() });
    r.sim.recordWire = true;
    const id = await open(r, openMeta());
    r.client.append(id, 0, Buffer.alloc(1000, 1));
    await until(r, () => (r.stable.get(id) ?? 0) >= 1000, 5000, 'stable');
    // A forged STABLE: a server datagram with its payload rewritten (MAC no longer matches).
    const fromServer = r.sim.wire.filter((w) => w.from === 'b' && w.dg.length > 80);
    expect(fromServer.length).toBeGreaterThan(0);
    const forged = Buffer.from(fromServer[fromServer.length - 1]!.dg);
    forged[60] = forged[60]! ^ 0xff;
    r.sim.inject('a', 0, forged);
    for (const w of fromServer) r.sim.inject('a', 0, w.dg); // replays
    await drive(r, 50);
    const c = r.client.linkStats().link;
    expect(c.forged).toBeGreaterThanOrEqual(1);
    expect(c.replayed).toBeGreaterThanOrEqual(fromServer.length);
    expect(r.stable.get(id)).toBe(1000);
    expect(r.violations).toEqual([]);
  });

  it('per-connection bound and LOW-SPACE before the total bound', async () => {
    const opts: LogOptions = { maxBytes: 100_000, maxBytesPerConn: 60_000, lowSpaceFraction: 0.8 };
    const store = new MemoryLog(opts);
    const r = rig({ seed: 13, store });
    const a = await open(r, openMeta());
    const b = await open(r, openMeta());
    const data = streamBytes(1, 0, 90_000);
    await feed(r, a, data, 1);
    await drive(r, 1000);
    // a is held at its bound: never stable beyond 60 000, the refusals counted at the server
    expect(r.stable.get(a)).toBeLessThanOrEqual(60_000);
    expect(r.stable.get(a)).toBeGreaterThan(40_000);
    expect(store.stats().appendsOverConnBound).toBeGreaterThan(0);
    expect(r.client.status()).toBe('OK');
    await feed(r, b, data.subarray(0, 30_000), 2);
    // total 80 000+ of 100 000: LOW-SPACE reaches the gateway while appends still fit
    await until(r, () => r.client.status() === 'LOW-SPACE', 5000, 'LOW-SPACE');
    await until(r, () => (r.stable.get(b) ?? 0) >= 30_000, 5000, 'b stable');
    expect(store.stats().appendsOverCapacity).toBe(0);
    expect(r.stable.get(b)).toBe(30_000);
    // gc frees room: a proceeds to the end
    r.client.gc(a, r.stable.get(a)!);
    await until(r, () => (r.stable.get(a) ?? 0) >= data.length, 10_000, 'a stable after gc');
    r.client.gc(a, data.length);
    r.client.gc(b, 30_000);
    await until(r, () => r.client.status() === 'OK', 5000, 'OK after gc');
    expect(r.violations).toEqual([]);
  });
});

describe('RemoteLog across log server restarts', () => {
  it('disk server restart loses nothing reported stable and connections re-register', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ftcp-remote-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    let store = new DiskLog(dir);
    const r = rig({ seed: 21, fault: { loss: 0.02 }, store });
    const m1 = openMeta();
    const m2 = openMeta();
    const a = await open(r, m1);
    const b = await open(r, m2);
    const da = streamBytes(31, 0, 120_000);
    const db = streamBytes(32, 0, 80_000);
    await feed(r, a, da.subarray(0, 70_000), 1);
    await feed(r, b, db, 2);
    r.client.appendFin(b, db.length);
    await until(r, () => (r.stable.get(a) ?? 0) >= 70_000 && (r.stable.get(b) ?? 0) >= 80_001, 20_000, 'stable before restart');
    // More bytes in flight, then the server dies (no shutdown: a crash) and comes back.
    await feed(r, a, da.subarray(0, 100_000), 3);
    const before = r.stable.get(a)!;
    await store.shutdown(); // release the lock; the on-disk state is what a crash leaves (every commit fsynced)
    store = new DiskLog(dir);
    expect(serverStable(store, m1)).toBeGreaterThanOrEqual(before); // nothing reported stable was lost
    const oldIds = store.listActive().map((x) => x.id).sort();
    attachServer(r, store);
    await feed(r, a, da, 4);
    await until(r, () => (r.stable.get(a) ?? 0) >= da.length, 30_000, 'stable after restart');
    const ls = r.client.linkStats().client;
    expect(ls.serverRestarts).toBe(1);
    expect(ls.reRegistrations).toBeGreaterThanOrEqual(2);
    // The same connections, recovered from disk (ids kept), not new ones.
    expect(store.listActive().map((x) => x.id).sort()).toEqual(oldIds);
    expect(r.violations).toEqual([]);
    for (const [id, d] of [[a, da], [b, db]] as const) {
      let got: Buffer | null = null;
      void r.client.read(id, 0, 1e12).then((x) => (got = x));
      await until(r, () => got !== null, 20_000, 'read');
      expect(got!.equals(d)).toBe(true);
    }
    expect(r.stable.get(b)).toBe(db.length + 1);
    await store.shutdown();
  });

  it('memory server restart is reported as lost stable bytes never silently', async () => {
    const r = rig({ seed: 23, store: new MemoryLog() });
    const a = await open(r, openMeta());
    r.client.append(a, 0, Buffer.alloc(5000, 7));
    await until(r, () => (r.stable.get(a) ?? 0) >= 5000, 5000, 'stable');
    const fresh = await open(r, openMeta()); // nothing stable yet: survives a restart
    attachServer(r, new MemoryLog());
    await until(r, () => r.statuses.some((s) => s.expired === a), 10_000, 'lost-stable report');
    expect(r.statuses.find((s) => s.expired === a)!.reason).toMatch(/lost stable/);
    expect(r.client.listActive().map((x) => x.id)).toEqual([fresh]);
    r.client.append(fresh, 0, Buffer.alloc(100, 1));
    await until(r, () => (r.stable.get(fresh) ?? 0) >= 100, 5000, 'fresh stable on the new server');
    expect(r.client.linkStats().client.lostStable).toBe(1);
  });
});

describe('RemoteLog state records (issue 14 item 1)', () => {
  const stateAt = (store: LogStore, meta: OpenMeta) => store.listActive().find((x) => metaKey(x) === metaKey(meta))?.state ?? null;

  it('setState resolves only once the server\'s store holds the record; a memory server restart gets the newest again', async () => {
    const r = rig({ seed: 31, fault: { loss: 0.05, reorder: 0.1, reorderMs: 5 }, store: new MemoryLog() });
    const meta = openMeta();
    const a = await open(r, meta);
    const seen: (ConnectionState | null)[] = [];
    let done = 0;
    for (const s of [STATE_MASKED, STATE_REPLAY]) {
      void r.client.setState(a, s).then(() => {
        seen.push(stateAt(r.store, meta)); // what the server's store holds when the promise resolves
        done++;
      });
    }
    await until(r, () => done === 2, 5000, 'states stable');
    expect(seen.every((x) => x !== null && x.update >= 1)).toBe(true);
    expect(seen[1]).toEqual(STATE_REPLAY);
    expect(r.client.listActive()[0]!.state).toEqual(STATE_REPLAY);
    expect(r.server.counters.states).toBeGreaterThanOrEqual(1);
    // The server restarts with an empty memory store: the connection (nothing stable lost)
    // re-registers, the server holds no record, the client sends the newest again.
    const fresh = new MemoryLog();
    attachServer(r, fresh);
    await until(r, () => stateAt(fresh, meta) !== null, 10_000, 'state sent again');
    expect(stateAt(fresh, meta)).toEqual(STATE_REPLAY);
    let live = false;
    void r.client.setState(a, STATE_LIVE).then(() => (live = true));
    await until(r, () => live, 5000, 'live stable');
    expect(stateAt(fresh, meta)).toEqual(STATE_LIVE);
    // The server's list carries the record to any gateway that asks (a standby, a restart).
    let listed: ConnectionState | null | undefined;
    void r.client.fetchActive({ timeoutMs: 60_000, pageTimeoutMs: 5000 }).then((l) => (listed = l.find((x) => metaKey(x) === metaKey(meta))?.state));
    await until(r, () => listed !== undefined, 5000, 'list');
    expect(listed).toEqual(STATE_LIVE);
    expect(r.client.linkStats().client.badState).toBe(0);
  });

  /** A raw peer on side `side` of a fresh network: sends requests, collects what comes back. */
  function rawPeer(sim: SimNetwork, side: 'a' | 'b', onMsg: (m: Buffer, send: (b: Buffer) => void) => void) {
    let ep: ReturnType<SimNetwork['addEndpoint']> | null = null;
    ep = sim.addEndpoint(side, {
      key: KEY, onMessage: (m) => onMsg(m, (b) => ep!.send(b)), onLost: () => {}, onPeerState: () => {}, onWritable: () => {},
    });
    return ep;
  }

  it('a log server refuses an open of another protocol version and a malformed state record, counted', async () => {
    const sim = new SimNetwork({ seed: 5 });
    const server = new LogServer({ store: new MemoryLog() });
    server.attachPeer((h) => sim.addEndpoint('b', { key: KEY, ...h }));
    const replies = new Map<number, Reply>();
    const gw = rawPeer(sim, 'a', (m) => {
      const d = decode(m);
      if (d !== null && d.t === T_REPLY) replies.set(d.reqId, d.reply);
    });
    const ask = async (reqId: number, req: Request): Promise<Reply> => {
      for (let i = 0; i < 500 && !gw.send(encodeRequest(reqId, req)); i++) sim.run(2); // until the link is up
      for (let i = 0; i < 500 && !replies.has(reqId); i++) {
        sim.run(2);
        await new Promise((res) => setImmediate(res));
      }
      return replies.get(reqId)!;
    };
    const meta = metaToWire(openMeta());
    expect(await ask(1, { op: 'open', meta })).toMatchObject({ ok: false, code: 'FTCP_LOG_VERSION' });
    expect(await ask(2, { op: 'open', meta, protocol: 1 })).toMatchObject({ ok: false, code: 'FTCP_LOG_VERSION', message: expect.stringMatching(/protocol 1, this log server 3/) as string });
    // A version 2 gateway (before the epochs) and its claim (a version 3 op with the wrong version).
    expect(await ask(21, { op: 'open', meta, protocol: 2 })).toMatchObject({ ok: false, code: 'FTCP_LOG_VERSION', message: expect.stringMatching(/protocol 2, this log server 3/) as string });
    expect(await ask(22, { op: 'claim', protocol: 2 })).toMatchObject({ ok: false, code: 'FTCP_LOG_VERSION' });
    expect(await ask(23, { op: 'claim', protocol: '3' } as unknown as Request)).toMatchObject({ ok: false, code: 'FTCP_LOG_VERSION' });
    expect(server.counters.versionRefused).toBe(5);
    expect(server.epochs.counters.badClaims).toBe(2);
    expect(server.epochs.epoch).toBe(0);
    const opened = await ask(3, { op: 'open', meta, protocol: 3 });
    expect(opened).toMatchObject({ ok: true, protocol: 3, stateUpdate: 0 });
    const id = (opened as { id: number }).id;
    expect(await ask(4, { op: 'state', id, state: 'zz' })).toMatchObject({ ok: false, code: 'FTCP_LOG_BAD_STATE' });
    expect(await ask(5, { op: 'state', id, state: encodeState(STATE_MASKED).toString('hex') + '00' })).toMatchObject({ ok: false, code: 'FTCP_LOG_BAD_STATE' });
    expect(server.counters.badState).toBe(2);
    expect(await ask(6, { op: 'state', id: id + 7, state: encodeState(STATE_MASKED).toString('hex') })).toMatchObject({ ok: false, code: 'FTCP_LOG_UNKNOWN' });
    expect(await ask(7, { op: 'state', id, state: encodeState(STATE_MASKED).toString('hex') })).toEqual({ ok: true, update: 1 });
    expect(await ask(8, { op: 'open', meta, protocol: 3 })).toMatchObject({ ok: true, id, stateUpdate: 1 });
  });

  it('a gateway whose log server answers without a protocol version (an older one) reports FAILED with FTCP_LOG_VERSION', async () => {
    const sim = new SimNetwork({ seed: 6 });
    const client = new RemoteLog({ manualClock: true, requestTimeoutMs: 300 });
    client.attach(sim.addEndpoint('a', { key: KEY, ...client.handlers }));
    cleanups.push(() => client.shutdown());
    const statuses: { status: LogStatus; reason?: string }[] = [];
    client.onStatus((status, d) => statuses.push({ status, ...d }));
    rawPeer(sim, 'b', (m, send) => {
      const d = decode(m);
      if (d !== null && d.t === T_REQUEST && d.req.op === 'open') send(encodeReply(d.reqId, { ok: true, id: 1, stable: 0, finOffset: null, gcThrough: 0 }));
      else if (d !== null && d.t === T_REQUEST) send(encodeReply(d.reqId, { ok: true }));
    });
    let err: unknown = null;
    void client.open(openMeta()).catch((e: unknown) => (err = e));
    for (let i = 0; i < 500 && err === null; i++) {
      sim.run(2);
      client.tick(sim.now);
      await new Promise((res) => setImmediate(res));
    }
    expect(err).toMatchObject({ code: 'FTCP_LOG_VERSION', message: expect.stringMatching(/log protocol 1, this gateway 3/) as string });
    expect(client.status()).toBe('FAILED');
    expect(statuses.some((s) => s.status === 'FAILED' && /protocol/.test(s.reason ?? ''))).toBe(true);
    await expect(client.open(openMeta())).rejects.toMatchObject({ code: 'FTCP_LOG_VERSION' });
  });
});
