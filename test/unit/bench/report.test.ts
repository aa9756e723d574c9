import { describe, it, expect } from 'vitest';
import {
  buildTable, emptySamples, fmtBytes, formatHuman, formatMarkdown, toJsonDocument, type BenchResult,
} from '../../../src/bench/report.js';
import { CONFIG_IDS, METRICS, type ConfigId } from '../../../src/bench/configs.js';

/** Rows printed for the settings below (metrics demo + rtt): upload, download, p50, p99. */
const SHOWN = 4;

function result(configs: ConfigId[] = [...CONFIG_IDS]): BenchResult {
  const samples = emptySamples(configs);
  const put = (c: ConfigId, up: Array<number | null>, down: Array<number | null>, p50: Array<number | null>, p99: Array<number | null>) => {
    if (!samples[c]) return;
    samples[c] = { ...samples[c], upload: up, download: down, rttP50: p50, rttP99: p99 };
  };
  put('kernel', [4, 3, 5], [6, 6.5, 5.5], [40, 44, 42], [500, 600, 550]);
  put('gw-unprotected', [2, 2.2, 1.8], [3, 3, 3], [80, 90, 85], [700, 650, 600]);
  put('gw-memory', [1, null, 1.5], [2, 2.5, 2.25], [100, 110, 120], [1500, 1400, 1600]);
  put('gw-disk', [null, null, null], [1, 1, 1], [200, 180, 190], [2000, 2100, 1900]);
  return {
    command: 'scripts/bench --runs 3',
    machine: { date: '2026-01-02T03:04:05.000Z', kernel: '6.1.0-test', cpu: 'Test CPU | x', cores: 2, node: '20.0.0', loadavgStart: [0.1, 0.2, 0.3], loadavgEnd: [1, 1, 1] },
    settings: { runs: 3, bytes: 500_000_000, warmupBytes: 0, roundTrips: 20_000, rrWarmup: 1000, rrSize: 32, configs, metrics: ['demo', 'rtt'], streams: 8, iperfSeconds: 3, setupConnections: 2000, setupConcurrency: 8 },
    samples,
    failures: [
      { config: 'gw-memory', run: 2, test: 'upload', message: 'TIMEOUT: run deadline expired' },
      ...[1, 2, 3].map((run) => ({ config: 'gw-disk' as const, run, test: 'upload' as const, message: 'EARLY_EOF' })),
    ],
    gateway: { memory: { packets: 10, protectedPackets: 6, unprotectedTcp: 4, dropped: 0, acksLowered: 0, acksHeld: 0 } },
    durationS: 123.4,
  };
}

describe('buildTable', () => {
  const t = buildTable(result());
  it('takes medians over the successful runs, with min and max', () => {
    expect(t.kernel!.upload.summary).toEqual({ n: 3, median: 4, min: 3, max: 5 });
    expect(t['gw-memory']!.upload.summary).toEqual({ n: 2, median: 1, min: 1, max: 1.5 });
    expect(t['gw-disk']!.upload.summary).toBeNull();
  });
  it('compares gateway columns with kernel forwarding: ratio for throughput, difference for RTT', () => {
    expect(t.kernel!.upload.vsKernel).toBeNull();
    expect(t['gw-unprotected']!.upload.vsKernel).toBeCloseTo(2 / 4);
    expect(t['gw-unprotected']!.download.vsKernel).toBeCloseTo(3 / 6);
    expect(t['gw-memory']!.rttP50.vsKernel).toBeCloseTo(110 - 42);
    expect(t['gw-disk']!.rttP99.vsKernel).toBeCloseTo(2000 - 550);
    expect(t['gw-disk']!.upload.vsKernel).toBeNull();
  });
  it('has no comparison without a kernel column', () => {
    const t2 = buildTable(result(['gw-memory', 'gw-disk']));
    expect(t2.kernel).toBeUndefined();
    for (const m of METRICS) expect(t2['gw-memory']![m.id].vsKernel).toBeNull();
  });
});

describe('formatHuman', () => {
  const text = formatHuman(result());
  it('prints one row per metric with the medians, ranges and comparisons', () => {
    const up = text.split('\n').find((l) => l.startsWith('single-stream upload'))!;
    expect(up).toContain('4.00 (3.00–5.00)');
    expect(up).toContain('×0.50');
    expect(up).toContain('1.00 (1.00–1.50) [2/3 runs]');
    expect(up).toContain('n/a');
    const p50 = text.split('\n').find((l) => l.startsWith('request/response RTT p50'))!;
    expect(p50).toContain('42.0 (40.0–44.0)');
    expect(p50).toContain('+68.0 µs');
    expect(text).toContain('run 2 gw-memory upload failed: TIMEOUT');
    expect(text).toContain('10 packets through the TUN');
  });
  it('aligns the columns', () => {
    const lines = text.split('\n');
    const head = lines.findIndex((l) => l.startsWith('metric'));
    const widths = lines.slice(head + 1, head + 2 + SHOWN).map((l) => l.length);
    expect(new Set(widths).size).toBe(1);
  });
});

describe('formatMarkdown', () => {
  const md = formatMarkdown(result());
  const rows = md.split('\n').filter((l) => l.startsWith('|'));
  it('is a table with a header, an alignment row and one row per metric, all of the same width', () => {
    expect(rows).toHaveLength(2 + SHOWN);
    // 1 label + N configs + (N - 1) comparisons with the kernel column = 2N cells
    for (const r of rows) expect(r.replace(/\\\|/g, '').split('|').length - 2).toBe(2 * CONFIG_IDS.length);
  });
  it('names the date, kernel, CPU, cores and the exact command, escaping pipes', () => {
    expect(md).toContain('2026-01-02T03:04:05.000Z');
    expect(md).toContain('Linux 6.1.0-test');
    expect(md).toContain('Test CPU \\| x, 2 cores');
    expect(md).toContain('`scripts/bench --runs 3`');
  });
});

describe('toJsonDocument', () => {
  it('carries the raw samples, the summaries and the comparisons', () => {
    const doc = JSON.parse(JSON.stringify(toJsonDocument(result()))) as any;
    expect(doc.samples['gw-memory'].upload).toEqual([1, null, 1.5]);
    expect(doc.summary.kernel.download).toMatchObject({ unit: 'Gb/s', n: 3, median: 6 });
    expect(doc.summary['gw-unprotected'].upload.ratioToKernel).toBeCloseTo(0.5);
    expect(doc.summary['gw-disk'].rttP50.addedUsVsKernel).toBeCloseTo(148);
    expect(doc.summary['gw-disk'].upload).toMatchObject({ n: 0, median: null });
    expect(doc.failures).toHaveLength(4);
    expect(doc.configurations.map((c: any) => c.id)).toEqual(CONFIG_IDS);
  });
});

describe('fmtBytes', () => {
  it('uses decimal units', () => {
    expect(fmtBytes(500_000_000)).toBe('500 MB');
    expect(fmtBytes(1_500_000_000)).toBe('1.5 GB');
    expect(fmtBytes(32)).toBe('32 B');
    expect(fmtBytes(64_000)).toBe('64 kB');
    expect(fmtBytes(1_234_567)).toBe('1234567 B'); // not a round number: exact
  });
});

describe('metric groups', () => {
  it('prints only the rows of the groups measured, and set-up rates as whole connections per second', () => {
    const r = result(['kernel', 'gw-memory']);
    r.settings.metrics = ['setup', 'streams'];
    r.samples.kernel!.setupRate = [1500.4, 1400, 1600];
    r.samples['gw-memory']!.setupRate = [700, 750.6, 720];
    r.samples.kernel!.download8 = [8, 9, 10];
    r.samples['gw-memory']!.download8 = [4, 4.5, 5];
    const text = formatHuman(r);
    expect(text).not.toContain('single-stream upload');
    expect(text).not.toContain('RTT p50');
    const setup = text.split('\n').find((l) => l.startsWith('connection set-up rate (conn/s)'))!;
    expect(setup).toContain('1500 (1400–1600)');
    expect(setup).toContain('×0.48'); // 720 / 1500.4
    expect(text.split('\n').find((l) => l.startsWith('8-stream download'))).toContain('×0.50');
    expect(text).toContain('set-up: 2000 short connections, 8 at a time');
    expect(text).not.toContain('RTT:');
    const doc = toJsonDocument(r) as { summary: Record<string, Record<string, unknown>> };
    expect(Object.keys(doc.summary.kernel!)).toEqual(['upload8', 'download8', 'setupRate']);
  });
});
