import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { open as openLmdb, type Key } from 'lmdb';
import { afterEach, describe, expect, it } from 'vitest';
import { DB_FILE, DiskLog } from '../../../src/log/disk.js';
import type { LogStatus } from '../../../src/log/types.js';
import { FtcpError } from '../../../src/util/errors.js';
import { openMeta, StableRecorder, STATE_LIVE, STATE_MASKED, STATE_REPLAY, streamBytes, turns, waitFor } from './helpers.js';
import { encodeState } from '../../../src/log/state.js';
import { logSuite } from './suite.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), `ftcp-${randomBytes(3).toString('hex')}-`));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

logSuite(
  'DiskLog',
  async (options) => {
    const dir = tempDir();
    const log = new DiskLog(dir, options);
    return { log, cleanup: () => log.shutdown() };
  },
  { propertyRuns: 25 },
);

function send(log: DiskLog, id: number, seed: number, from: number, to: number): void {
  for (let o = from; o < to; o += 1448) log.append(id, o, streamBytes(seed, o, Math.min(o + 1448, to)));
}

describe('DiskLog across restarts', () => {
  it('reopen recovers connections, stable bytes, FIN, gc and fresh ids', async () => {
    const dir = tempDir();
    const log1 = new DiskLog(dir);
    const rec1 = new StableRecorder(log1);
    const ma = openMeta();
    const mb = openMeta({ server: { addr: '10.9.0.5', port: 443 } });
    const a = await log1.open(ma);
    const b = await log1.open(mb);
    const c = await log1.open(openMeta());
    send(log1, a, 11, 0, 500_000);
    send(log1, b, 22, 0, 70_000);
    log1.appendFin(b, 70_000);
    send(log1, c, 33, 0, 1000);
    await rec1.until(a, 500_000);
    await rec1.until(b, 70_001);
    await rec1.until(c, 1000);
    log1.gc(a, 200_000);
    log1.close(c);
    log1.append(a, 600_000, Buffer.alloc(10)); // held beyond a gap: never stable, not recovered
    await log1.shutdown();

    const log2 = new DiskLog(dir);
    const recs = log2.listActive().sort((x, y) => x.id - y.id);
    expect(recs.map((r) => r.id)).toEqual([a, b]);
    const [ra, rb] = recs as [(typeof recs)[0], (typeof recs)[0]];
    expect(ra.stable).toBe(500_000);
    expect(ra.gcThrough).toBe(200_000);
    expect(ra.finOffset).toBeNull();
    expect(ra.client).toEqual(ma.client);
    expect(ra.clientIsn).toBe(ma.clientIsn);
    expect(Buffer.from(ra.clientSynOptions).equals(Buffer.from(ma.clientSynOptions))).toBe(true);
    expect(Buffer.from(rb.serverSynOptions).equals(Buffer.from(mb.serverSynOptions))).toBe(true);
    expect(rb.server).toEqual(mb.server);
    expect(rb.stable).toBe(70_001);
    expect(rb.finOffset).toBe(70_000);
    expect((await log2.read(a, 200_000, 500_000)).equals(streamBytes(11, 200_000, 500_000))).toBe(true);
    await expect(log2.read(a, 0, 10)).rejects.toMatchObject({ code: 'FTCP_LOG_GC' });
    expect((await log2.read(b, 0, 80_000)).equals(streamBytes(22, 0, 70_000))).toBe(true);
    await expect(log2.read(c, 0, 10)).rejects.toMatchObject({ code: 'FTCP_LOG_UNKNOWN' });
    expect(log2.queryEndpoint(mb.client)?.id).toBe(b);
    // ids stay unique: a new connection never reuses a, b or the closed c
    const d = await log2.open(openMeta());
    expect(d).toBeGreaterThan(c);
    // the recovered stream goes on where it stopped
    const rec2 = new StableRecorder(log2);
    send(log2, a, 11, 400_000, 600_000);
    await rec2.until(a, 600_000);
    expect((await log2.read(a, 450_000, 600_000)).equals(streamBytes(11, 450_000, 600_000))).toBe(true);
    await log2.shutdown();

    const log3 = new DiskLog(dir);
    expect(log3.listActive().find((r) => r.id === a)!.stable).toBe(600_000);
    expect(await log3.open(openMeta())).toBeGreaterThan(d);
    await log3.shutdown();
  });

  it('SIGKILL right after a stability notification loses nothing reported', async () => {
    const dir = tempDir();
    const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
    const child = spawn(
      process.execPath,
      [join(root, 'node_modules/vite-node/vite-node.mjs'), join(root, 'test/unit/log/fixtures/disk-child.ts')],
      {
        cwd: root,
        env: { ...process.env, FTCP_LOG_DIR: dir, FTCP_LOG_TARGET: String(2_000_000), FTCP_LOG_FIN: String(30_000) },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), 50_000);
      child.on('exit', (code, signal) => {
        clearTimeout(t);
        resolve({ code, signal });
      });
    });
    expect(exit.signal, `child stderr: ${err.slice(-2000)}`).toBe('SIGKILL');
    const lines = out.trim().split('\n');
    const [, a, b] = lines[0]!.split(' ').map(Number) as [string, number, number];
    const reported = new Map<number, number>();
    for (const l of lines.slice(1)) {
      const [id, s] = l.split(' ').map(Number) as [number, number];
      expect(s).toBeGreaterThan(reported.get(id) ?? 0); // monotonic
      reported.set(id, s);
    }
    expect(reported.get(a)!).toBeGreaterThanOrEqual(2_000_000);

    const log = new DiskLog(dir); // the dead child's lock is stale
    const byId = new Map(log.listActive().map((r) => [r.id, r]));
    for (const [id, s] of reported) {
      const r = byId.get(id);
      expect(r, `connection ${id} recovered`).toBeDefined();
      expect(r!.stable).toBeGreaterThanOrEqual(s);
      const dataEnd = r!.finOffset !== null && s > r!.finOffset ? r!.finOffset : s;
      const got = await log.read(id, 0, dataEnd);
      expect(got.length).toBe(dataEnd);
      expect(got.equals(streamBytes(id * 7919, 0, dataEnd))).toBe(true);
    }
    if (reported.get(b) === 30_001) expect(byId.get(b)!.finOffset).toBe(30_000);
    console.log(
      `SIGKILL test: reported stable a=${reported.get(a)} b=${reported.get(b)}; recovered a=${byId.get(a)!.stable} b=${byId.get(b)?.stable}`,
    );
    await log.shutdown();
  }, 60_000);

  it('close interrupted between metadata and data leaves no orphans', async () => {
    const dir = tempDir();
    const log1 = new DiskLog(dir);
    const rec = new StableRecorder(log1);
    const a = await log1.open(openMeta());
    send(log1, a, 5, 0, 200_000);
    await rec.until(a, 200_000);
    await log1.shutdown();
    // Simulate a crash after close() removed the metadata but before the chunks went.
    const raw = openLmdb<Buffer, Key>({ path: join(dir, DB_FILE), encoding: 'binary' });
    await raw.remove(['m', a]);
    expect([...raw.getKeys({ start: ['d', a], end: ['d', a + 1] })].length).toBeGreaterThan(0);
    await raw.close();
    const log2 = new DiskLog(dir);
    expect(log2.listActive()).toHaveLength(0);
    await log2.shutdown();
    const raw2 = openLmdb<Buffer, Key>({ path: join(dir, DB_FILE), encoding: 'binary' });
    expect([...raw2.getKeys({ start: ['d'], end: ['d', Number.POSITIVE_INFINITY] })]).toHaveLength(0);
    await raw2.close();
  });

  it('reopen recovers each connection\'s stable state record; a damaged one is counted and ignored; closed and orphan records go', async () => {
    const dir = tempDir();
    const log1 = new DiskLog(dir);
    const ma = openMeta();
    const a = await log1.open(ma);
    const b = await log1.open(openMeta());
    const c = await log1.open(openMeta());
    await log1.setState(a, STATE_MASKED);
    await log1.setState(a, STATE_REPLAY); // resolved: committed and fsynced
    await log1.setState(b, STATE_LIVE);
    await log1.setState(c, STATE_MASKED);
    log1.close(c);
    await log1.shutdown();
    // A crash leaves what was committed; damage b's record, and leave an orphan for an id without metadata.
    const raw = openLmdb<Buffer, Key>({ path: join(dir, DB_FILE), encoding: 'binary' });
    expect(raw.getBinary(['s', c])).toBeUndefined(); // close removed it
    await raw.put(['s', b], Buffer.from([1, 9, 0, 0]));
    await raw.put(['s', 999], encodeState(STATE_MASKED));
    await raw.close();
    const log2 = new DiskLog(dir);
    expect(log2.queryEndpoint(ma.client)!.state).toEqual(STATE_REPLAY);
    expect(log2.listActive().find((r) => r.id === b)!.state).toBeNull();
    expect(log2.stats!().badState).toBe(1);
    // The recovered update is the floor: an older write changes nothing, a newer one is written.
    await log2.setState(a, STATE_MASKED);
    expect(log2.queryEndpoint(ma.client)!.state).toEqual(STATE_REPLAY);
    await log2.setState(a, STATE_LIVE);
    await log2.shutdown();
    const log3 = new DiskLog(dir);
    expect(log3.queryEndpoint(ma.client)!.state).toEqual(STATE_LIVE);
    await log3.shutdown();
    const raw2 = openLmdb<Buffer, Key>({ path: join(dir, DB_FILE), encoding: 'binary' });
    expect(raw2.getBinary(['s', 999])).toBeUndefined();
    await raw2.close();
  });

  it('a directory is owned by one store', async () => {
    const dir = tempDir();
    const log1 = new DiskLog(dir);
    expect(() => new DiskLog(dir)).toThrow(FtcpError);
    await log1.shutdown();
    const log2 = new DiskLog(dir);
    await log2.shutdown();
  });
});

describe('DiskLog write failure', () => {
  class FaultyDiskLog extends DiskLog {
    broken = false;
    protected override write(key: Key, value: Buffer): Promise<unknown> {
      if (this.broken) return Promise.reject(new Error('EIO: injected'));
      return super.write(key, value);
    }
  }

  it('a write error makes the store failed and stops stability', async () => {
    const log = new FaultyDiskLog(tempDir());
    const rec = new StableRecorder(log);
    const events: [LogStatus, string | undefined][] = [];
    log.onStatus((s, d) => events.push([s, d?.reason]));
    const id = await log.open(openMeta());
    log.append(id, 0, Buffer.alloc(1000, 1));
    await rec.until(id, 1000);
    log.broken = true;
    log.append(id, 1000, Buffer.alloc(1000, 1));
    await waitFor(() => log.status() === 'FAILED');
    log.broken = false; // even if the disk recovers, FAILED is for good
    log.append(id, 2000, Buffer.alloc(1000, 1));
    await turns(10);
    expect(rec.stable(id)).toBe(1000);
    expect(events).toHaveLength(1);
    expect(events[0]![0]).toBe('FAILED');
    expect(events[0]![1]).toMatch(/EIO: injected/);
    expect(log.stats!().writeErrors).toBeGreaterThan(0);
    await expect(log.open(openMeta())).rejects.toMatchObject({ code: 'FTCP_LOG_FAILED' });
    await log.shutdown();
  });

  it('setState resolves only once its write returned from the commit (and its fsync), not before', async () => {
    class GatedDiskLog extends DiskLog {
      gate: (() => void) | null = null;
      protected override write(key: Key, value: Buffer): Promise<unknown> {
        const done = super.write(key, value);
        if ((key as unknown[])[0] !== 's') return done;
        return new Promise<void>((open) => (this.gate = open)).then(() => done);
      }
    }
    const log = new GatedDiskLog(tempDir());
    const id = await log.open(openMeta());
    let settled = false;
    const p = log.setState(id, STATE_MASKED).then(() => (settled = true));
    await turns(10);
    expect(settled).toBe(false);
    expect(log.listActive()[0]!.state).toBeNull(); // the record lists the last STABLE state
    log.gate!();
    await p;
    expect(log.listActive()[0]!.state).toEqual(STATE_MASKED);
    await log.shutdown();
  });

  it('a state write that fails rejects (FTCP_LOG_FAILED) and is never reported stable', async () => {
    const log = new FaultyDiskLog(tempDir());
    const id = await log.open(openMeta());
    await log.setState(id, STATE_MASKED);
    log.broken = true;
    await expect(log.setState(id, STATE_REPLAY)).rejects.toMatchObject({ code: 'FTCP_LOG_FAILED' });
    expect(log.status()).toBe('FAILED');
    expect(log.listActive()[0]!.state).toEqual(STATE_MASKED);
    log.broken = false;
    await expect(log.setState(id, STATE_LIVE)).rejects.toMatchObject({ code: 'FTCP_LOG_FAILED' }); // FAILED for good
    await log.shutdown();
  });
});

describe('DiskLog throughput', () => {
  it('throughput sanity print', async () => {
    const log = new DiskLog(tempDir());
    const rec = new StableRecorder(log);
    const id = await log.open(openMeta());
    const seg = Buffer.alloc(1448, 1);
    const n = 20_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i += 100) {
      for (let k = i; k < i + 100; k++) log.append(id, k * 1448, seg);
      await new Promise((r) => setImmediate(r));
    }
    await rec.until(id, n * 1448, 20_000);
    const s = (performance.now() - t0) / 1000;
    console.log(`DiskLog: ${Math.round(n / s)} appends/s, ${((n * 1448) / s / 1e6).toFixed(0)} MB/s fsynced (not asserted)`);
    expect(rec.stable(id)).toBe(n * 1448);
    await log.shutdown();
  });
});
