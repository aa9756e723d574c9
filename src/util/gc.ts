/**
 * Asking V8 for a major garbage collection after the gateway let go of a lot of memory.
 *
 * The memory log keeps a connection's bytes in 1 MiB Buffers. When the connection ends (or
 * is unprotected), the Buffers become garbage, but V8 only frees an ArrayBuffer's backing
 * store when a major GC finds it dead, and it starts one only under allocation pressure: an
 * idle gateway kept ~1.6 GB of a released 1.5 GB upload for as long as nothing else
 * allocated (issue 10, item 6). So a store that released many bytes asks for one collection
 * here, at most once a second; the collection runs concurrently (`execution: 'async'`).
 *
 * `gc` is reached without starting node with --expose-gc: the flag is set at run time and
 * the function taken from a fresh context (the main context's global is left alone). If that
 * is unavailable, nothing happens and the memory is freed at V8's next major GC.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type GcFn = (opts?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async' }) => unknown;

let gcFn: GcFn | null | undefined;
let lastAt = 0;
let scheduled = false;
/** Collections asked for (for tests and stats). */
export const gcStats = { requested: 0, run: 0 };

function getGc(): GcFn | null {
  if (gcFn !== undefined) return gcFn;
  try {
    const g = (globalThis as { gc?: GcFn }).gc;
    if (typeof g === 'function') {
      gcFn = g;
    } else {
      v8.setFlagsFromString('--expose-gc');
      const f = vm.runInNewContext('gc') as unknown;
      gcFn = typeof f === 'function' ? (f as GcFn) : null;
    }
  } catch {
    gcFn = null;
  }
  return gcFn;
}

/** Minimum time between two collections asked for here (ms). */
export const GC_MIN_INTERVAL_MS = 1000;

/** Asks for one major GC soon (coalesced; at most one per GC_MIN_INTERVAL_MS). */
export function requestMajorGc(): void {
  gcStats.requested++;
  if (scheduled) return;
  scheduled = true;
  const wait = Math.max(0, lastAt + GC_MIN_INTERVAL_MS - Date.now());
  const t = setTimeout(() => {
    scheduled = false;
    lastAt = Date.now();
    const gc = getGc();
    if (gc === null) return;
    gcStats.run++;
    try {
      const r = gc({ type: 'major', execution: 'async' });
      if (r instanceof Promise) r.catch(() => {});
    } catch {
      // A V8 without the options argument: a plain (synchronous) collection.
      try {
        gc();
      } catch {
        /* no collection: the memory goes at V8's next major GC */
      }
    }
  }, wait);
  t.unref();
}

/**
 * Runs a full major GC now, synchronously (measurements: the fuzz's flat-memory check).
 * Returns false when no `gc` could be reached.
 */
export function collectGarbageNow(): boolean {
  const gc = getGc();
  if (gc === null) return false;
  gc({ type: 'major', execution: 'sync' });
  return true;
}
