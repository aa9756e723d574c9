/**
 * The on-disk log, on LMDB (npm `lmdb`). It survives a crash of the gateway process or
 * of the machine: "stable" means the LMDB transaction holding the bytes was committed
 * *and fsynced*. The environment is opened with `noSync: false` and
 * `overlappingSync: false`, so a commit returns only after its fsync, and with
 * `separateFlushed: true`, whose `flushed` promise we wait for on every write (with
 * overlapping sync disabled it is the commit itself; were it ever enabled, it would
 * still be the fsync).
 *
 * Layout (one LMDB file `<dir>/ftcp-log.mdb`, ordered-binary array keys, binary values):
 *
 *   ['n']               next connection id (decimal text): ids stay unique across restarts
 *   ['m', id]           connection metadata, FIN offset and gc point (JSON)
 *   ['s', id]           the connection's state record (state.ts: binary, ≤ 216 bytes)
 *   ['d', id, offset]   a chunk of the gap-free prefix starting at `offset`
 *
 * Chunks are contiguous: chunk i spans [key_i, key_{i+1}), the last one ends at the
 * stable point, so the index is rebuilt from the keys alone on restart. Appends are
 * copied into a per-connection slab and cut into chunks (at most `chunkBytes`, 64 KiB)
 * when the slab fills and at the end of every event-loop turn (setImmediate), so that a
 * burst of segments becomes one write and a lone segment waits for no more than a turn.
 * LMDB batches all writes of a turn into one transaction; single writes commit in the
 * order they were issued, so the committed chunks are always a prefix of the issued ones.
 *
 * Write order per operation, so that a crash at any point recovers a consistent state:
 *   open:  ['n'] then ['m', id]; open() resolves when the metadata is committed.
 *   FIN:   ['m', id] with finOffset; the FIN is stable once that commit and every data
 *          byte before it are.
 *   state: ['s', id], the newest record only; setState resolves when that commit is fsynced.
 *          A record that does not decode on restart is counted (badState) and ignored.
 *   gc:    ['m', id] with gcThrough, then removal of chunks lying entirely below it.
 *   close: ['m', id] removed first, then ['s', id] and its chunks; a state record or data
 *          chunks without metadata are orphans of an interrupted close, removed on the next start.
 */
import { existsSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Key, type RootDatabase } from 'lmdb';
import { FtcpError } from '../util/errors.js';
import { makeDirs } from '../util/fs.js';
import { BaseLog, type ConnState, type LogOptions } from './common.js';
import type { ConnectionMeta, ConnectionState, Endpoint } from './types.js';
import { decodeState } from './state.js';

export const DEFAULT_CHUNK_BYTES = 64 * 1024;
const MIN_SLAB = 4 * 1024;
export const DB_FILE = 'ftcp-log.mdb';
const LOCK_FILE = 'ftcp-log.pid';

export interface DiskLogOptions extends LogOptions {
  /** Largest chunk written as one LMDB value; default 64 KiB. */
  chunkBytes?: number;
}

interface DiskConn extends ConnState {
  /** Copy buffer; bytes [slabMark, slabPos) are not yet written. */
  slab: Buffer | null;
  slabPos: number;
  slabMark: number;
  /** Stream offset just past the last chunk issued (committed or not). */
  written: number;
  /** Start offsets of the chunks issued and not removed, from chunkHead on. */
  chunkStarts: number[];
  chunkHead: number;
}

/** The JSON stored under ['m', id]. */
interface MetaRecord {
  v: 1;
  id: number;
  client: Endpoint;
  server: Endpoint;
  clientIsn: number;
  serverIsn: number;
  clientSynOptions: string;
  serverSynOptions: string;
  created: number;
  finOffset: number | null;
  gcThrough: number;
}

const NEXT_KEY: Key = ['n'];
const metaKey = (id: number): Key => ['m', id];
const stateKey = (id: number): Key => ['s', id];
const dataKey = (id: number, offset: number): Key => ['d', id, offset];

/** Directories locked by this process (a lock file naming our own pid elsewhere is stale). */
const lockedHere = new Set<string>();

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class DiskLog extends BaseLog<DiskConn> {
  readonly dir: string;
  /**
   * The outermost directory this store created (the log directory or an ancestor), null
   * when it existed already: a caller whose setup fails right after may remove it.
   */
  readonly createdDir: string | null;
  private readonly db: RootDatabase<Buffer, Key>;
  private readonly chunkBytes: number;
  private readonly lockPath: string;
  private readonly dirty = new Set<DiskConn>();
  private flushScheduled = false;
  private dbClosed = false;

  constructor(dir: string, options: DiskLogOptions = {}) {
    super(options);
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isInteger(chunkBytes) || chunkBytes < 1) {
      throw new FtcpError('FTCP_BAD_LOG_OPTION', `log chunkBytes must be a positive integer, got ${chunkBytes}`);
    }
    this.chunkBytes = chunkBytes;
    this.dir = dir;
    let created: string[];
    try {
      created = makeDirs(dir);
    } catch (err) {
      throw new FtcpError('FTCP_LOG_DIR', `log directory ${dir} cannot be created: ${errMessage(err)}`, { cause: err });
    }
    this.createdDir = created[0] ?? null;
    this.lockPath = join(dir, LOCK_FILE);
    try {
      this.lock();
    } catch (err) {
      if (this.createdDir !== null) rmSync(this.createdDir, { recursive: true, force: true });
      if (err instanceof FtcpError) throw err;
      throw new FtcpError('FTCP_LOG_DIR', `log directory ${dir} cannot be locked: ${errMessage(err)}`, { cause: err });
    }
    let db: RootDatabase<Buffer, Key> | undefined;
    try {
      db = open<Buffer, Key>({
        path: join(dir, DB_FILE),
        encoding: 'binary',
        noSync: false,
        overlappingSync: false,
        separateFlushed: true,
      });
      this.db = db;
      this.recover();
    } catch (err) {
      this.unlock();
      void db?.close().catch(() => {});
      // Leave nothing behind: what this constructor created holds nothing of anyone's.
      if (this.createdDir !== null) rmSync(this.createdDir, { recursive: true, force: true });
      if (err instanceof FtcpError) throw err;
      throw new FtcpError('FTCP_LOG_DIR', `log store ${join(dir, DB_FILE)} cannot be opened: ${errMessage(err)}`, { cause: err });
    }
  }

  // ---- single-owner lock (two gateways on one directory would reuse ids) -------------

  private lock(): void {
    if (lockedHere.has(this.lockPath)) {
      throw new FtcpError('FTCP_LOG_LOCKED', `log directory ${this.dir} is already open in this process`);
    }
    if (existsSync(this.lockPath)) {
      const pid = Number(readFileSync(this.lockPath, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
        throw new FtcpError('FTCP_LOG_LOCKED', `log directory ${this.dir} is in use by process ${pid}`);
      }
    }
    writeFileSync(this.lockPath, `${process.pid}\n`);
    lockedHere.add(this.lockPath);
  }

  private unlock(): void {
    if (!lockedHere.delete(this.lockPath)) return;
    try {
      unlinkSync(this.lockPath);
    } catch {
      // already gone
    }
  }

  // ---- recovery ----------------------------------------------------------------------

  /** Rebuilds the registry from the store; removes orphan chunks of interrupted closes. */
  private recover(): void {
    const next = this.db.get(NEXT_KEY);
    if (next !== undefined) this.nextId = Math.max(this.nextId, Number(next.toString('utf8')) || 1);
    const metas = new Map<number, MetaRecord>();
    for (const { key, value } of this.db.getRange({ start: ['m'], end: ['m', Number.POSITIVE_INFINITY] })) {
      const rec = JSON.parse(value.toString('utf8')) as MetaRecord;
      const id = (key as [string, number])[1];
      if (rec.v !== 1 || rec.id !== id) {
        throw new FtcpError('FTCP_LOG_CORRUPT', `log store: unreadable metadata for connection ${String(id)}`);
      }
      metas.set(id, rec);
      this.nextId = Math.max(this.nextId, id + 1);
    }
    // Skip-scan the data ids: one key look-up per connection, not per chunk.
    let from: Key = ['d'];
    for (;;) {
      let first: Key | undefined;
      for (const k of this.db.getKeys({ start: from, end: ['d', Number.POSITIVE_INFINITY], limit: 1 })) first = k;
      if (first === undefined) break;
      const id = (first as [string, number, number])[1];
      if (!metas.has(id)) {
        for (const k of [...this.db.getKeys({ start: ['d', id], end: ['d', id + 1] })]) {
          void this.issue(() => this.erase(k));
        }
      }
      from = ['d', id + 1];
    }
    for (const k of [...this.db.getKeys({ start: ['s'], end: ['s', Number.POSITIVE_INFINITY] })]) {
      if (!metas.has((k as [string, number])[1])) void this.issue(() => this.erase(k));
    }
    for (const rec of metas.values()) this.restore(rec);
  }

  private restore(rec: MetaRecord): void {
    const id = rec.id;
    const starts = [...this.db.getKeys({ start: ['d', id], end: ['d', id + 1] })].map(
      (k) => (k as [string, number, number])[2],
    );
    let stableData = rec.gcThrough;
    if (starts.length > 0) {
      const last = starts[starts.length - 1]!;
      const len = this.db.getBinary(dataKey(id, last))?.length ?? 0;
      stableData = Math.max(stableData, last + len);
    }
    const meta: ConnectionMeta = {
      id,
      client: rec.client,
      server: rec.server,
      clientIsn: rec.clientIsn,
      serverIsn: rec.serverIsn,
      clientSynOptions: Uint8Array.from(Buffer.from(rec.clientSynOptions, 'hex')),
      serverSynOptions: Uint8Array.from(Buffer.from(rec.serverSynOptions, 'hex')),
      created: rec.created,
    };
    const c: DiskConn = {
      ...this.newConnState(meta, stableData),
      slab: null,
      slabPos: 0,
      slabMark: 0,
      written: stableData,
      chunkStarts: starts,
      chunkHead: 0,
    };
    c.gcThrough = rec.gcThrough;
    const stored = this.db.getBinary(stateKey(id));
    if (stored !== undefined) {
      c.state = decodeState(stored);
      if (c.state === null) this.logStats.badState++;
      else c.stateUpdate = c.state.update;
    }
    c.storedBytes = starts.length > 0 ? stableData - starts[0]! : 0;
    this.totalBytes += c.storedBytes;
    if (rec.finOffset !== null) {
      c.finOffset = rec.finOffset;
      c.finStable = true;
      c.asm.setLimit(rec.finOffset);
      if (stableData >= rec.finOffset) c.stable = c.notified = rec.finOffset + 1;
    }
    this.conns.set(id, c);
  }

  // ---- writes ------------------------------------------------------------------------

  /** One durable write; resolves once committed and fsynced. Overridable for fault tests. */
  protected write(key: Key, value: Buffer): Promise<unknown> {
    const p = this.db.put(key, value) as Promise<boolean> & { flushed?: Promise<unknown> };
    return p.flushed ?? p;
  }

  protected erase(key: Key): Promise<unknown> {
    const p = this.db.remove(key) as Promise<boolean> & { flushed?: Promise<unknown> };
    return p.flushed ?? p;
  }

  private issue(op: () => Promise<unknown>, onDone?: () => void): Promise<boolean> {
    let p: Promise<unknown>;
    try {
      p = op();
    } catch (err) {
      this.fail(`log write failed: ${errMessage(err)}`);
      return Promise.resolve(false);
    }
    return p.then(
      () => {
        onDone?.();
        return true;
      },
      (err: unknown) => {
        this.fail(`log write failed: ${errMessage(err)}`);
        return false;
      },
    );
  }

  private encodeMeta(c: DiskConn): Buffer {
    const m = c.meta;
    const rec: MetaRecord = {
      v: 1,
      id: m.id,
      client: m.client,
      server: m.server,
      clientIsn: m.clientIsn,
      serverIsn: m.serverIsn,
      clientSynOptions: Buffer.from(m.clientSynOptions).toString('hex'),
      serverSynOptions: Buffer.from(m.serverSynOptions).toString('hex'),
      created: m.created,
      finOffset: c.finOffset,
      gcThrough: c.gcThrough,
    };
    return Buffer.from(JSON.stringify(rec), 'utf8');
  }

  /** Writes the slab's unwritten bytes as one chunk. */
  private cut(c: DiskConn): void {
    if (c.slab === null || c.slabPos === c.slabMark) return;
    const chunk = c.slab.subarray(c.slabMark, c.slabPos);
    c.slabMark = c.slabPos;
    const start = c.written;
    const end = start + chunk.length;
    c.written = end;
    c.chunkStarts.push(start);
    const id = c.meta.id;
    void this.issue(
      () => this.write(dataKey(id, start), chunk),
      () => this.advanceStable(c, end),
    );
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flushDirty());
  }

  private flushDirty(): void {
    this.flushScheduled = false;
    if (this.dbClosed) return;
    for (const c of this.dirty) this.cut(c);
    this.dirty.clear();
  }

  // ---- LogStore, store-specific half -------------------------------------------------

  protected openConn(full: ConnectionMeta): Promise<number> {
    const id = full.id;
    const c: DiskConn = {
      ...this.newConnState(full),
      slab: null,
      slabPos: 0,
      slabMark: 0,
      written: 0,
      chunkStarts: [],
      chunkHead: 0,
    };
    const nextId = this.nextId;
    void this.issue(() => this.write(NEXT_KEY, Buffer.from(String(nextId), 'utf8')));
    return this.issue(() => this.write(metaKey(id), this.encodeMeta(c))).then((ok) => {
      if (!ok || this.failed) throw new FtcpError('FTCP_LOG_FAILED', 'log open: the store has FAILED');
      if (this.isShutdown) throw new FtcpError('FTCP_LOG_SHUTDOWN', 'log open: the store is shut down');
      c.modified = Date.now();
      this.conns.set(id, c);
      return id;
    });
  }

  protected accept(c: DiskConn, data: Uint8Array, _offset: number): void {
    if (this.failed || this.dbClosed) return;
    let src = 0;
    while (src < data.length) {
      if (c.slab === null || c.slabPos === c.slab.length) {
        const prev = c.slab === null ? 0 : c.slab.length;
        c.slab = Buffer.allocUnsafe(Math.min(this.chunkBytes, Math.max(MIN_SLAB, prev * 2)));
        c.slabPos = c.slabMark = 0;
      }
      const n = Math.min(data.length - src, c.slab.length - c.slabPos);
      c.slab.set(data.subarray(src, src + n), c.slabPos);
      c.slabPos += n;
      src += n;
      if (c.slabPos === c.slab.length) this.cut(c);
    }
    if (c.slabPos > c.slabMark) {
      this.dirty.add(c);
      this.scheduleFlush();
    }
  }

  protected persistFin(c: DiskConn): void {
    if (this.failed || this.dbClosed) return;
    void this.issue(
      () => this.write(metaKey(c.meta.id), this.encodeMeta(c)),
      () => {
        c.finStable = true;
        this.advanceStable(c, c.stableData);
      },
    );
  }

  protected writeState(c: DiskConn, state: ConnectionState, bytes: Buffer): void {
    if (this.dbClosed) return;
    void this.issue(
      () => this.write(stateKey(c.meta.id), bytes),
      () => this.stateStable(c, state),
    );
  }

  protected discard(c: DiskConn): number {
    if (this.dbClosed) return 0;
    const id = c.meta.id;
    void this.issue(() => this.write(metaKey(id), this.encodeMeta(c)));
    let freed = 0;
    while (c.chunkHead < c.chunkStarts.length) {
      const start = c.chunkStarts[c.chunkHead]!;
      const end = c.chunkHead + 1 < c.chunkStarts.length ? c.chunkStarts[c.chunkHead + 1]! : c.written;
      if (end > c.gcThrough) break;
      void this.issue(() => this.erase(dataKey(id, start)));
      freed += end - start;
      c.chunkHead++;
    }
    if (c.chunkHead > 64 && c.chunkHead * 2 > c.chunkStarts.length) {
      c.chunkStarts = c.chunkStarts.slice(c.chunkHead);
      c.chunkHead = 0;
    }
    return freed;
  }

  protected drop(c: DiskConn): void {
    this.dirty.delete(c);
    c.slab = null;
    if (this.dbClosed) return;
    const id = c.meta.id;
    void this.issue(() => this.erase(metaKey(id)));
    if (c.stateUpdate > 0) void this.issue(() => this.erase(stateKey(id)));
    for (let i = c.chunkHead; i < c.chunkStarts.length; i++) {
      const start = c.chunkStarts[i]!;
      void this.issue(() => this.erase(dataKey(id, start)));
    }
    c.chunkStarts = [];
    c.chunkHead = 0;
  }

  protected readRange(c: DiskConn, start: number, end: number): Buffer {
    if (this.dbClosed) throw new FtcpError('FTCP_LOG_SHUTDOWN', 'log read: the store is shut down');
    const id = c.meta.id;
    // The last chunk starting at or before `start`.
    let lo = c.chunkHead;
    let hi = c.chunkStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (c.chunkStarts[mid]! <= start) lo = mid;
      else hi = mid - 1;
    }
    const first = c.chunkStarts[lo];
    if (first === undefined || first > start) throw new Error(`invariant violated: log ${id} has no chunk at ${start}`);
    const out = Buffer.allocUnsafe(end - start);
    let pos = start;
    for (const { key, value } of this.db.getRange({ start: dataKey(id, first), end: dataKey(id, end) })) {
      const off = (key as [string, number, number])[2];
      if (off > pos) break;
      const from = pos - off;
      const n = Math.min(value.length - from, end - pos);
      if (n <= 0) continue;
      value.copy(out, pos - start, from, from + n);
      pos += n;
      if (pos >= end) break;
    }
    if (pos !== end) throw new Error(`invariant violated: log ${id} read [${start}, ${end}) stopped at ${pos}`);
    return out;
  }

  protected async release(): Promise<void> {
    this.flushDirty();
    this.dbClosed = true;
    try {
      await this.db.close();
    } finally {
      this.conns.clear();
      this.unlock();
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
