/**
 * Fencing at the log server (src/log/remote/epochs.ts): claims grant epochs above every one
 * before, persisted before the reply (a disk server's restart never grants one again); the
 * writes of a gateway that does not hold the newest epoch are refused and counted, it is told
 * once, and no STABLE ever reaches it; the gateway's client (RemoteLog) reports itself fenced.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryLog } from '../../../src/log/memory.js';
import { DiskLog } from '../../../src/log/disk.js';
import { Epochs, FileEpochs, MAX_PENDING_CLAIMS, MemoryEpochs, EPOCH_FILE, type EpochRecord, type EpochStore } from '../../../src/log/remote/epochs.js';
import { decode, encodeAppend, encodeFin, encodeReply, encodeRequest, encodeStatus, LOG_PROTOCOL_VERSION, metaKey, metaToWire } from '../../../src/log/remote/protocol.js';
import type { LogStatus, LogStore, OpenMeta } from '../../../src/log/types.js';
import type { Request } from '../../../src/log/remote/protocol.js';
import { RemoteWorld, type RawPeer } from '../../support/remote-log.js';
import { openMeta, STATE_MASKED, streamBytes } from './helpers.js';
import { encodeState } from '../../../src/log/state.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function world(store: LogStore, epochs?: EpochStore): RemoteWorld {
  const w = new RemoteWorld(store, epochs);
  cleanups.push(() => w.shutdown());
  return w;
}

function stableAt(store: LogStore, meta: OpenMeta): number {
  return store.listActive().find((r) => metaKey(r) === metaKey(meta))?.stable ?? -1;
}

function tmpDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ftcp-fence-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const V = LOG_PROTOCOL_VERSION;

describe('epochs at the log server', () => {
  it('an old epoch is refused: A claims and writes, B claims, A\'s writes are refused and counted, A is told once, no STABLE reaches it; B\'s are stable', async () => {
    const store = new MemoryLog();
    const w = world(store);
    const a = w.raw();
    const b = w.gateway();
    const meta = openMeta();
    const data = streamBytes(3, 0, 50_000);

    expect(await a.ask({ op: 'claim', protocol: V })).toEqual({ ok: true, epoch: 1 });
    const opened = await a.ask({ op: 'open', meta: metaToWire(meta), protocol: V });
    expect(opened).toMatchObject({ ok: true });
    const rid = (opened as { id: number }).id;
    await a.send(encodeAppend(rid, 0, data.subarray(0, 20_000)));
    await w.until(() => a.stable.some(([id, s]) => id === rid && s === 20_000), 2000, 'A stable');

    const stableB = new Map<number, number>();
    b.onStable((id, s) => stableB.set(id, s));
    expect(await w.settle(b.claim())).toBe(2);
    const fenced = (p: RawPeer) => p.statuses.filter((x) => x.status === 'FENCED');
    await w.until(() => fenced(a).length > 0, 1000, 'A told');
    expect(fenced(a)).toEqual([{ status: 'FENCED', epoch: 2 }]);

    // A, fenced, writes on: every kind of write refused, counted, no second notice.
    const stableMsgs = a.stable.length;
    await a.send(encodeAppend(rid, 20_000, data.subarray(20_000, 30_000)));
    await a.send(encodeFin(rid, 30_000));
    for (const req of [
      { op: 'open', meta: metaToWire(openMeta()), protocol: V },
      { op: 'state', id: rid, state: '00' },
      { op: 'close', id: rid },
      { op: 'register', services: [] as { addr: string; port: number }[] },
      { op: 'expiry', ms: 1 },
    ] satisfies Request[]) {
      expect(await a.ask(req)).toMatchObject({ ok: false, code: 'FTCP_LOG_FENCED', epoch: 2 });
    }
    // Reading fences nothing.
    expect(await a.ask({ op: 'list' })).toMatchObject({ ok: true, records: [expect.objectContaining({ id: rid, stable: 20_000 })] });
    for (let i = 0; i < 100; i++) await w.step();
    expect(stableAt(store, meta)).toBe(20_000);
    expect(a.stable.length).toBe(stableMsgs);
    expect(fenced(a)).toHaveLength(1);
    expect(w.server.epochs.counters).toMatchObject({ fencedWrites: 7, fencedNotices: 1, claimsGranted: 2 });

    // B carries the connection on from the log's stable point.
    const idB = await w.settle(b.open(meta));
    b.append(idB, 20_000, data.subarray(20_000));
    await w.until(() => stableB.get(idB) === data.length, 5000, 'B stable');
    expect((await w.settle(b.read(idB, 0, data.length))).equals(data)).toBe(true);
    // Claiming again as the holder (a retransmitted claim) grants nothing new.
    expect(await w.settle(b.claim())).toBe(2);
    expect(w.server.epochs.counters).toMatchObject({ claimsGranted: 2, claimsRepeated: 1 });
  });

  it('a write accepted before the claim but answered after it is answered FTCP_LOG_FENCED (its answer would be a stability notice)', async () => {
    const store = new MemoryLog();
    const w = world(store);
    const a = w.raw();
    const b = w.gateway();
    expect(await a.ask({ op: 'claim', protocol: V })).toEqual({ ok: true, epoch: 1 });
    const opened = await a.ask({ op: 'open', meta: metaToWire(openMeta()), protocol: V });
    const rid = (opened as { id: number }).id;
    // The store's write of A's state record outlives B's claim.
    const setState = store.setState.bind(store);
    let release: (() => void) | null = null;
    store.setState = (id, st) => new Promise<void>((res, rej) => (release = () => void setState(id, st).then(res, rej)));
    const reqId = 77;
    await a.send(encodeRequest(reqId, { op: 'state', id: rid, state: encodeState(STATE_MASKED).toString('hex') }));
    await w.until(() => release !== null, 1000, 'the state write begun');
    expect(await w.settle(b.claim())).toBe(2);
    release!();
    await w.until(() => a.replies.has(reqId), 1000, 'the state answer');
    expect(a.replies.get(reqId)).toMatchObject({ ok: false, code: 'FTCP_LOG_FENCED', epoch: 2 });
  });

  it('a gateway that never claimed writes freely until the first claim, and is fenced by it', async () => {
    const store = new MemoryLog();
    const w = world(store);
    const old = w.raw();
    const meta = openMeta();
    const opened = await old.ask({ op: 'open', meta: metaToWire(meta), protocol: V });
    expect(opened).toMatchObject({ ok: true });
    const rid = (opened as { id: number }).id;
    await old.send(encodeAppend(rid, 0, Buffer.alloc(1000, 7)));
    await w.until(() => stableAt(store, meta) === 1000, 2000, 'unclaimed write');
    const b = w.gateway();
    expect(await w.settle(b.claim())).toBe(1);
    await old.send(encodeAppend(rid, 1000, Buffer.alloc(1000, 8)));
    await w.until(() => old.statuses.some((x) => x.status === 'FENCED'), 1000, 'told');
    expect(old.statuses.filter((x) => x.status === 'FENCED')).toEqual([{ status: 'FENCED', epoch: 1 }]);
    expect(stableAt(store, meta)).toBe(1000);
  });

  it('RemoteLog: fenced by the notice, it reports FAILED with the epoch once, sends nothing more, refuses opens; its own claim ends it', async () => {
    const store = new MemoryLog();
    const w = world(store);
    const a = w.gateway();
    const b = w.gateway();
    const statuses: { status: LogStatus; fenced?: number }[] = [];
    a.onStatus((status, d) => statuses.push({ status, ...d }));
    const stableA = new Map<number, number>();
    a.onStable((id, s) => stableA.set(id, s));
    expect(await w.settle(a.claim())).toBe(1);
    const meta = openMeta();
    const id = await w.settle(a.open(meta));
    a.append(id, 0, Buffer.alloc(5000, 1));
    await w.until(() => stableA.get(id) === 5000, 2000, 'stable');
    expect(await w.settle(b.claim())).toBe(2);
    await w.until(() => a.fenced() !== null, 1000, 'fenced');
    expect(a.fenced()).toMatchObject({ epoch: 2 });
    expect(a.status()).toBe('FAILED');
    expect(statuses.filter((s) => s.fenced !== undefined)).toEqual([expect.objectContaining({ status: 'FAILED', fenced: 2 })]);
    expect(a.linkStats().client).toMatchObject({ fenced: 1, epoch: 0 });
    const sentBefore = a.linkStats().client.appendMessages;
    const fencedWritesBefore = w.server.epochs.counters.fencedWrites;
    a.append(id, 5000, Buffer.alloc(5000, 2));
    for (let i = 0; i < 300; i++) await w.step();
    // Nothing sent (it would only be refused): the client's own count, and the server refused none.
    expect(a.linkStats().client.appendMessages).toBe(sentBefore);
    expect(w.server.epochs.counters.fencedWrites).toBe(fencedWritesBefore);
    expect(stableA.get(id)).toBe(5000);
    await expect(a.open(openMeta())).rejects.toMatchObject({ code: 'FTCP_LOG_FENCED' });
    // A takes the log back itself (a takeover): epoch 3, the bytes it kept go out again.
    expect(await w.settle(a.claim())).toBe(3);
    expect(a.fenced()).toBeNull();
    await w.until(() => stableA.get(id) === 10_000, 5000, 'stable again');
    expect(stableAt(store, meta)).toBe(10_000);
  });

  it('a claim unanswered within its timeout is cancelled: never resent, so never granted later to a gateway that gave up', async () => {
    const w = world(new MemoryLog());
    const a = w.gateway();
    const sim = w.sims[w.sims.length - 1]!;
    sim.dropIf = () => true; // the log server unreachable
    const claim = a.claim(200);
    const refused = expect(claim).rejects.toMatchObject({ code: 'FTCP_LOG_TIMEOUT' });
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline && w.server.epochs.counters.claims === 0) {
      await w.step();
      await new Promise((r) => setTimeout(r, 5));
      if (await Promise.race([claim.then(() => true, () => true), Promise.resolve(false)])) break;
    }
    await refused;
    sim.dropIf = null; // reachable again: a request still pending would be resent now
    for (let i = 0; i < 500; i++) await w.step();
    expect(w.server.epochs.counters.claims).toBe(0);
    expect(w.server.epochs.counters.claimsGranted).toBe(0);
  });

  it('a request refused FTCP_LOG_FENCED fences the client too (the notice lost)', async () => {
    const w = world(new MemoryLog());
    const a = w.gateway();
    const b = w.gateway();
    expect(await w.settle(b.claim())).toBe(1);
    // A never claimed: its open is refused, and that alone fences it.
    await expect(w.settle(a.open(openMeta()))).rejects.toMatchObject({ code: 'FTCP_LOG_FENCED' });
    expect(a.fenced()).toMatchObject({ epoch: 1 });
  });
});

describe('RemoteLog.forget: a connection left to the log server', () => {
  it('goes from the client alone: nothing more is sent about it, the late answers of its registration and of its open close nothing at the server; opened again, it is one connection', async () => {
    const store = new MemoryLog();
    const w = world(store);
    const a = w.gateway();
    const stable = new Map<number, number>();
    a.onStable((id, s) => stable.set(id, s));
    expect(await w.settle(a.claim())).toBe(1);
    const meta = openMeta();
    const id = await w.settle(a.open(meta));
    a.append(id, 0, streamBytes(7, 0, 3000));
    await w.until(() => stable.get(id) === 3000, 2000, 'stable');
    for (let i = 0; i < 150; i++) await w.step(); // past resyncIntervalMs: the next link event re-registers at once
    a.append(id, 3000, streamBytes(7, 3000, 5000));
    a.handlers.onLost([1], 'resync');
    for (let i = 0; i < 3; i++) await new Promise<void>((r) => queueMicrotask(r)); // the round sends the registration
    expect(a.linkStats().client).toMatchObject({ reRegistrations: 1, requests: 1, pendingBytes: 2000 });
    const pendingOpen = a.open(openMeta()); // local id id + 1, sent, unanswered
    const setState = expect(a.setState(id, STATE_MASKED)).rejects.toMatchObject({ code: 'FTCP_LOG_UNKNOWN' });
    expect(a.linkStats().client).toMatchObject({ connections: 2 });
    const stale = a.counters.staleReplies;
    expect(a.forget(id)).toBe(true);
    expect(a.forget(id)).toBe(false);
    expect(a.forget(id + 1)).toBe(true);
    expect(await pendingOpen).toBe(id + 1); // its id, which names nothing here any more:
    await expect(a.read(id + 1, 0, 1)).rejects.toMatchObject({ code: 'FTCP_LOG_UNKNOWN' });
    a.close(id + 1); // (what the caller of an open whose flow left does: nothing is sent)
    await setState;
    expect(a.linkStats().client).toMatchObject({ connections: 0, pendingBytes: 0, forgotten: 2 });
    for (let i = 0; i < 500; i++) await w.step(); // 1 s: every retry and resync would have gone out and been answered
    // Both still open at the server: the answers to the registration and to the open (both had
    // left) came, and were let be; an answer handled would have closed its connection there.
    expect(store.listActive()).toHaveLength(2);
    expect(a.counters.staleReplies).toBe(stale + 2);
    expect(a.linkStats().client).toMatchObject({ requests: 0, connections: 0 });
    const atServer = stableAt(store, meta);
    expect(atServer).toBe(3000);
    const again = await w.settle(a.open(meta));
    expect(again).not.toBe(id);
    await w.until(() => stable.get(again) === atServer, 2000, 'the stable point of the server, reported to the new id');
    a.append(again, 3000, streamBytes(7, 3000, 6000));
    await w.until(() => stable.get(again) === 6000, 2000, 'stable again');
    expect(stable.get(id)).toBe(3000);
    expect(a.linkStats().client).toMatchObject({ connections: 1 });
    expect((await w.settle(a.read(again, 0, 6000))).equals(streamBytes(7, 0, 6000))).toBe(true);
  });
});

describe('epochs survive a log server restart (disk)', () => {
  it('the epoch and its holder are on disk before the reply: after a restart the holder writes on without a claim, the old one is refused, the next claim is higher', async () => {
    const dir = tmpDir();
    let store = new DiskLog(dir);
    const w = world(store, new FileEpochs(dir));
    const a = w.raw();
    const b = w.gateway();
    expect(await a.ask({ op: 'claim', protocol: V })).toEqual({ ok: true, epoch: 1 });
    expect(await w.settle(b.claim())).toBe(2);
    const stableB = new Map<number, number>();
    b.onStable((id, s) => stableB.set(id, s));
    const meta = openMeta();
    const id = await w.settle(b.open(meta));
    b.append(id, 0, Buffer.alloc(3000, 3));
    await w.until(() => stableB.get(id) === 3000, 5000, 'stable');

    await store.shutdown(); // a crash leaves what a shutdown does: every commit, and the epoch file, fsynced
    store = new DiskLog(dir);
    const epochs = new FileEpochs(dir);
    expect(epochs.load()).toEqual({ epoch: 2, holder: w.bootOf(b) });
    w.restartServer(store, epochs);
    cleanups.push(() => store.shutdown());
    b.append(id, 3000, Buffer.alloc(3000, 4));
    await w.until(() => stableB.get(id) === 6000, 10_000, 'the holder writes on after the restart');
    expect(b.fenced()).toBeNull();
    expect(await a.ask({ op: 'open', meta: metaToWire(openMeta()), protocol: V })).toMatchObject({ ok: false, code: 'FTCP_LOG_FENCED', epoch: 2 });
    const c = w.gateway();
    expect(await w.settle(c.claim())).toBe(3);
    await w.until(() => b.fenced() !== null, 2000, 'B fenced');
  });

  it('a damaged epoch file stops the server from starting (FTCP_LOG_EPOCH), a missing one is epoch 0', () => {
    const dir = tmpDir();
    expect(new FileEpochs(dir).load()).toEqual({ epoch: 0, holder: 0 });
    for (const bad of ['', '{"epoch": "7", "holder": 1}', '{"epoch": 7}', '{"epoch": -1, "holder": 2}', '[]', '{"epoch": 1.5, "holder": 2}']) {
      writeFileSync(join(dir, EPOCH_FILE), bad);
      expect(() => new FileEpochs(dir)).toThrow(expect.objectContaining({ code: 'FTCP_LOG_EPOCH' }));
    }
  });
});

describe('claims under stress and hostile input', () => {
  /** An epoch store whose saves wait until released (or fail). */
  class HeldEpochs implements EpochStore {
    rec: EpochRecord = { epoch: 0, holder: 0 };
    readonly held: { r: EpochRecord; done: (err?: Error) => void }[] = [];
    load(): EpochRecord {
      return this.rec;
    }
    save(r: EpochRecord): Promise<void> {
      return new Promise((resolve, reject) => this.held.push({ r, done: (err) => (err ? reject(err) : ((this.rec = r), resolve())) }));
    }
  }

  it('a claim storm: at most MAX_PENDING_CLAIMS wait (the rest refused FTCP_LOG_BUSY, counted); each is granted only once durable, in order', async () => {
    const st = new HeldEpochs();
    const e = new Epochs(st);
    const granted: number[] = [];
    const results = Array.from({ length: MAX_PENDING_CLAIMS + 3 }, (_, i) =>
      e.claim(100 + i, () => granted.push(e.epoch)).then((v) => v, (err: { code: string }) => err.code));
    await new Promise((r) => setImmediate(r));
    expect(st.held).toHaveLength(1); // one save at a time
    expect(e.epoch).toBe(0); // nothing taken up before it is durable
    expect(e.admits(100)).toBe(true); // epoch 0: anyone
    st.held.shift()!.done();
    await new Promise((r) => setImmediate(r));
    expect(e.epoch).toBe(1);
    expect(e.admits(100)).toBe(true);
    expect(e.admits(101)).toBe(false);
    st.held.shift()!.done(new Error('disk full'));
    for (let i = 0; i < 10 && st.held.length === 0; i++) await new Promise((r) => setImmediate(r));
    while (st.held.length > 0) {
      st.held.shift()!.done();
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    }
    expect(await Promise.all(results)).toEqual([1, 'FTCP_LOG_EPOCH', 2, 3, 'FTCP_LOG_BUSY', 'FTCP_LOG_BUSY', 'FTCP_LOG_BUSY']);
    expect(granted).toEqual([1, 2, 3]);
    expect(e.counters).toMatchObject({ claims: MAX_PENDING_CLAIMS + 3, claimsGranted: 3, claimsFailed: 1, claimsBusy: 3 });
    expect(e.holder).toBe(103);
  });

  it('the holder\'s claim resent while another session\'s is being saved is answered its epoch on arrival (never a new one that fences the other)', async () => {
    const st = new HeldEpochs();
    const e = new Epochs(st);
    const a = e.claim(100, () => {});
    await new Promise((r) => setImmediate(r));
    st.held.shift()!.done();
    expect(await a).toBe(1);
    const b = e.claim(200, () => {}); // the standby's takeover: its save runs
    await new Promise((r) => setImmediate(r));
    expect(st.held).toHaveLength(1);
    let again: number | null = null;
    void e.claim(100, () => {}).then((v) => (again = v)); // the old primary's claim, resent
    await new Promise((r) => setImmediate(r));
    expect(again).toBe(1); // at once: it arrived while 100 held epoch 1
    st.held.shift()!.done();
    expect(await b).toBe(2);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(st.held).toHaveLength(0); // nothing more saved
    expect({ epoch: e.epoch, holder: e.holder }).toEqual({ epoch: 2, holder: 200 });
    expect(e.admits(100)).toBe(false);
    expect(e.counters).toMatchObject({ claims: 3, claimsGranted: 2, claimsRepeated: 1 });
  });

  it('epoch fields of the wrong type: a FENCED status without a valid epoch does not decode; a claim reply without one is a protocol error, counted', async () => {
    expect(decode(encodeStatus({ status: 'FENCED', epoch: 3 }))).toEqual({ t: 0x91, status: { status: 'FENCED', epoch: 3 } });
    for (const epoch of ['3', -1, 0, 1.5, null, 2 ** 60]) {
      expect(decode(encodeStatus({ status: 'FENCED', epoch } as never))).toBeNull();
    }
    expect(decode(encodeStatus({ status: 'FENCED' } as never))).toBeNull();
    // A server (here hand-made) answering a claim with a string epoch.
    const w = world(new MemoryLog(), new MemoryEpochs());
    const a = w.gateway();
    const bogus = encodeReply(1, { ok: true, epoch: '9' as unknown as number });
    a.handlers.onMessage(bogus); // no such request pending: stale, counted
    expect(a.linkStats().client.staleReplies).toBe(1);
    const p = a.claim();
    const reqId = 1; // the client's first request
    a.handlers.onMessage(encodeReply(reqId, { ok: true, epoch: '9' as unknown as number }));
    await expect(p).rejects.toMatchObject({ code: 'FTCP_LOG_PROTOCOL' });
    expect(a.linkStats().client.malformed).toBe(1);
    expect(a.fenced()).toBeNull();
  });
});
