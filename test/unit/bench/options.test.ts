import { describe, it, expect } from 'vitest';
import { DEFAULTS, parseBytes, parseOptions } from '../../../src/bench/run.js';
import { parseConfigList } from '../../../src/bench/configs.js';

describe('bench options', () => {
  const ALL_METRICS = ['demo', 'streams', 'iperf', 'setup', 'rtt'];
  const MORE_DEFAULTS = { metrics: ALL_METRICS, streams: 8, iperfSeconds: 3, setupConnections: 2000, setupConcurrency: 8 };
  it('defaults: 3 runs, 500 MB, 20000 round trips of 32 B after 1000, all seven configurations, every metric, a table', () => {
    expect(parseOptions([])).toEqual({
      runs: 3, bytes: 500_000_000, warmupBytes: DEFAULTS.warmupBytes, roundTrips: 20_000, rrWarmup: 1000, rrSize: 32,
      configs: ['kernel', 'tun-fwd', 'gw-unprotected', 'gw-memory', 'gw-disk', 'gw-plain-unprot', 'gw-plain-memory'], output: 'human',
      ...MORE_DEFAULTS,
    });
  });
  it('reads every flag', () => {
    const o = parseOptions(['--runs', '3', '--bytes', '1G', '--warmup-bytes', '0', '--round-trips', '500', '--rr-warmup', '0',
      '--rr-size', '64', '--configs', 'gw-disk,kernel', '--markdown']);
    expect(o).toEqual({ runs: 3, bytes: 1e9, warmupBytes: 0, roundTrips: 500, rrWarmup: 0, rrSize: 64, configs: ['kernel', 'gw-disk'], output: 'markdown', ...MORE_DEFAULTS });
    expect(parseOptions(['--metrics', 'rtt,iperf', '--streams', '4', '--iperf-seconds', '5', '--setup-connections', '100', '--setup-concurrency', '2']))
      .toMatchObject({ metrics: ['iperf', 'rtt'], streams: 4, iperfSeconds: 5, setupConnections: 100, setupConcurrency: 2 });
    expect(parseOptions(['--json'])).toMatchObject({ output: 'json' });
    expect(parseOptions(['--help'])).toBe('help');
  });
  it('the --checksums trust baselines run only when named', () => {
    expect((parseOptions([]) as { configs: string[] }).configs).not.toContain('gw-memory-trust');
    expect(parseOptions(['--configs', 'gw-plain-trust,gw-plain-memory,gw-memory-trust,gw-memory']))
      .toMatchObject({ configs: ['gw-memory', 'gw-plain-memory', 'gw-memory-trust', 'gw-plain-trust'] });
  });
  it('rejects bad values with a usage error', () => {
    for (const argv of [['--runs', '0'], ['--runs', 'x'], ['--bytes', '0'], ['--bytes', '5X'], ['--rr-size', '1'],
      ['--configs', 'kernel,nope'], ['--configs', ''], ['--metrics', 'demo,warp'], ['--metrics', ''], ['--streams', '0'],
      ['--iperf-seconds', '0'], ['--setup-concurrency', '0'], ['--json', '--markdown'], ['--bogus']]) {
      expect(() => parseOptions(argv), argv.join(' ')).toThrow(expect.objectContaining({ code: 'FTCP_USAGE' }));
    }
  });
  it('parses byte counts with decimal suffixes', () => {
    expect(parseBytes('500M', '--bytes', 1, 1)).toBe(500_000_000);
    expect(parseBytes('500MB', '--bytes', 1, 1)).toBe(500_000_000);
    expect(parseBytes('64k', '--bytes', 1, 1)).toBe(64_000);
    expect(parseBytes('123', '--bytes', 1, 1)).toBe(123);
    expect(parseBytes(undefined, '--bytes', 7, 1)).toBe(7);
  });
  it('parseConfigList keeps table order and drops duplicates', () => {
    expect(parseConfigList('gw-memory,kernel,gw-memory')).toEqual(['kernel', 'gw-memory']);
    expect(parseConfigList('x')).toBeNull();
  });
});
