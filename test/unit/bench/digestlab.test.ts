import { describe, it, expect } from 'vitest';
import { formatDigestLab, parseDigestLabOptions, type DigestLabResult } from '../../../src/bench/digestlab.js';
import { UsageError } from '../../../src/util/errors.js';

describe('scripts/bench digest-lab', () => {
  it('options: 5 runs of 1 GB after 100 MB, a table; every flag read; bad values refused', () => {
    expect(parseDigestLabOptions([])).toEqual({ runs: 5, bytes: 1e9, warmupBytes: 1e8, output: 'human' });
    expect(parseDigestLabOptions(['--runs', '7', '--bytes', '200M', '--warmup-bytes', '0', '--markdown'])).toEqual({ runs: 7, bytes: 2e8, warmupBytes: 0, output: 'markdown' });
    expect(parseDigestLabOptions(['--json'])).toMatchObject({ output: 'json' });
    expect(parseDigestLabOptions(['-h'])).toBe('help');
    for (const argv of [['--runs', '0'], ['--runs', '101'], ['--bytes', '1k'], ['--json', '--markdown'], ['--warmup-bytes', 'x']]) {
      expect(() => parseDigestLabOptions(argv), argv.join(' ')).toThrow(UsageError);
    }
  });

  it('the table: medians of the successful runs, reset over off, the digest per GB', () => {
    const r: DigestLabResult = {
      date: '2026-12-05T00:00:00.000Z', machine: 'test CPU', command: 'scripts/bench digest-lab', options: { runs: 3, bytes: 1e9, warmupBytes: 0 },
      digest: { sent: 2e9, digestBytes: 976_562, keptBytes: 4096, perGB: 488_281, finishedOk: true },
      samples: {
        off: [{ gbps: 1.0, cpuSecondsPerGB: 1.0 }, null, { gbps: 2.0, cpuSecondsPerGB: 2.0 }],
        reset: [{ gbps: 0.5, cpuSecondsPerGB: 3.0 }, { gbps: 0.8, cpuSecondsPerGB: 4.0 }, { gbps: 0.9, cpuSecondsPerGB: null }],
      },
      divergence: null, failures: ['run 2 off: boom'], durationS: 12,
    };
    const text = formatDigestLab(r, true);
    // off: median of 1.0 and 2.0 is the lower middle (1.0); reset: 0.8; CPU: off 1.0, reset 3.0 (a null CPU left out).
    expect(text).toContain('| single-stream download (Gb/s) | 1.00 (1.00–2.00) | 0.80 (0.50–0.90) | ×0.800 |');
    expect(text).toContain('| gateway CPU per GB downloaded (s) | 1.00 (1.00–2.00) | 3.00 (3.00–4.00) | ×3.000 |');
    expect(text).toContain('976562 B of block hashes = 488281 B per GB, plus 4096 B kept');
    expect(text).toContain('byte-exact');
    expect(text).toContain('Failures: run 2 off: boom');
    expect(text).toContain('Command: `scripts/bench digest-lab`');
  });
});
