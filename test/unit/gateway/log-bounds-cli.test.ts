/** `ftcp gateway --log-budget / --log-conn-bound`: sizes, shares of the memory, usage errors naming the flag. */
import { describe, expect, it, vi } from 'vitest';
import { parseSizeOrShareFlag } from '../../../src/cli/args.js';
import { main } from '../../../src/cli/main.js';
import { UsageError } from '../../../src/util/errors.js';

const MiB = 2 ** 20;

describe('gateway log bound flags', () => {
  it('parses sizes and shares of the memory', () => {
    expect(parseSizeOrShareFlag('268435456', '--log-budget', MiB)).toBe(256 * MiB);
    expect(parseSizeOrShareFlag('256M', '--log-budget', MiB)).toBe(256 * MiB);
    expect(parseSizeOrShareFlag('256MiB', '--log-budget', MiB)).toBe(256 * MiB);
    expect(parseSizeOrShareFlag('2GiB', '--log-budget', MiB)).toBe(2 * 2 ** 30);
    expect(parseSizeOrShareFlag('25%', '--log-budget', MiB, 8 * 2 ** 30)).toBe(2 * 2 ** 30);
    expect(parseSizeOrShareFlag('12.5%', '--log-budget', MiB, 8 * 2 ** 30)).toBe(2 ** 30);
  });

  it.each([
    ['lots', /--log-budget: expected a size/],
    ['-5', /--log-budget: expected a size/],
    ['1e308', /--log-budget: expected a size/],
    ['0', /--log-budget: must be at least 1048576/],
    ['100K', /--log-budget: must be at least/],
    ['150%', /--log-budget: a percentage must be in/],
    ['99999999999999999T', /--log-budget: too large/],
  ])('refuses --log-budget %s', (v, re) => {
    expect(() => parseSizeOrShareFlag(v, '--log-budget', MiB, 8 * 2 ** 30)).toThrow(re);
    expect(() => parseSizeOrShareFlag(v, '--log-budget', MiB, 8 * 2 ** 30)).toThrow(UsageError);
  });

  it('a percentage is only for the budget', () => {
    expect(() => parseSizeOrShareFlag('10%', '--log-conn-bound', MiB)).toThrow(/--log-conn-bound: expected a size/);
  });

  it('exits 2 naming the flag, before creating anything', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const base = ['gateway', '--tun', 'ftcpx0', '--protect', '198.18.2.2:5001'];
      expect(await main([...base, '--log-budget', 'lots'])).toBe(2);
      expect(await main([...base, '--log-conn-bound', 'x1'])).toBe(2);
      expect(await main([...base, '--log', 'embedded:disk:/tmp/x', '--log-budget', '1G'])).toBe(2);
      const text = err.mock.calls.map((c) => String(c[0])).join('');
      expect(text).toContain('--log-budget: expected a size');
      expect(text).toContain('--log-conn-bound: expected a size');
      expect(text).toContain('--log-budget and --log-conn-bound bound the memory log');
    } finally {
      err.mockRestore();
    }
  });
});
