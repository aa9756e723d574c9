import { describe, expect, it } from 'vitest';
import { MemoryLog, SlabStore } from '../../../src/log/memory.js';
import { openMeta, StableRecorder, streamBytes } from './helpers.js';
import { logSuite } from './suite.js';

logSuite(
  'MemoryLog',
  async (options) => {
    const log = new MemoryLog(options);
    return { log, cleanup: () => log.shutdown() };
  },
  { propertyRuns: 100 },
);

describe('MemoryLog specifics', () => {
  it('open resolves on the next microtask', async () => {
    const log = new MemoryLog();
    let id = 0;
    const p = log.open(openMeta()).then((v) => (id = v));
    expect(id).toBe(0);
    await Promise.resolve();
    await p;
    expect(id).toBeGreaterThan(0);
    await log.shutdown();
  });

  it('one notification per connection per microtask flush', async () => {
    const log = new MemoryLog();
    const rec = new StableRecorder(log);
    const id = await log.open(openMeta());
    for (let i = 0; i < 50; i++) log.append(id, i * 100, Buffer.alloc(100));
    expect(rec.calls).toHaveLength(0);
    await Promise.resolve();
    expect(rec.calls).toEqual([[id, 5000]]);
    log.append(id, 5000, Buffer.alloc(100));
    log.append(id, 5100, Buffer.alloc(100));
    await Promise.resolve();
    expect(rec.calls).toEqual([
      [id, 5000],
      [id, 5200],
    ]);
    await log.shutdown();
  });

  it('slab store reads across slabs and discards whole slabs', () => {
    const s = new SlabStore(0);
    const data = streamBytes(9, 0, 300_000);
    for (let o = 0; o < data.length; o += 1000) s.append(data.subarray(o, o + 1000));
    expect(s.end).toBe(300_000);
    expect(s.slabCount).toBeLessThan(10); // 4K, 8K, ... 64K slabs, not one per append
    expect(s.read(0, 300_000).equals(data)).toBe(true);
    expect(s.read(4095, 4097).equals(data.subarray(4095, 4097))).toBe(true);
    const freed = s.discardBelow(100_000);
    expect(freed).toBeGreaterThan(0);
    expect(freed).toBeLessThanOrEqual(100_000);
    expect(s.read(100_000, 300_000).equals(data.subarray(100_000))).toBe(true);
  });

  it('throughput sanity print', async () => {
    const log = new MemoryLog();
    const rec = new StableRecorder(log);
    const id = await log.open(openMeta());
    const seg = Buffer.alloc(1448, 1);
    const n = 20_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) log.append(id, i * 1448, seg);
    await rec.until(id, n * 1448);
    const s = (performance.now() - t0) / 1000;
    console.log(`MemoryLog: ${Math.round(n / s)} appends/s, ${((n * 1448) / s / 1e6).toFixed(0)} MB/s (not asserted)`);
    expect(rec.stable(id)).toBe(n * 1448);
    await log.shutdown();
  });
});
