/** `--divergence` parsing (src/divergence/policy.ts): the default, per service, and bad input. */
import { describe, it, expect, vi } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { parseDivergence, policyOf } from '../../../src/divergence/policy.js';
import { UsageError } from '../../../src/util/errors.js';

const SVCS = ['198.18.2.2:5001', '198.18.2.3:80'];

describe('parseDivergence', () => {
  it('a bare policy sets the default; ip:port=policy one service', () => {
    expect(parseDivergence('reset', SVCS).dflt).toBe('reset');
    const c = parseDivergence('continue, 198.18.2.2:5001=off', SVCS);
    expect(c.dflt).toBe('continue');
    expect(policyOf(c, '198.18.2.2:5001')).toBe('off');
    expect(policyOf(c, '198.18.2.3:80')).toBe('continue');
    const d = parseDivergence('198.18.2.3:80=continue', SVCS);
    expect(d.dflt).toBe('reset');
    expect(policyOf(d, '198.18.2.3:80')).toBe('continue');
  });

  it.each([
    ['', /empty/],
    ['reset,', /empty/],
    ['sometimes', /expected reset \| continue \| off/],
    ['198.18.2.2:5001=maybe', /after '198.18.2.2:5001='/],
    ['198.18.2.9:5001=reset', /not a protected service/],
    ['198.18.2.2:5001=reset,198.18.2.2:5001=off', /given twice/],
    ['reset,continue', /default policy is given twice/],
    ['300.1.1.1:80=reset', /expected <ipv4>:<port>=<policy>/],
    ['198.18.2.2:0=reset', /expected <ipv4>:<port>=<policy>/],
    ['host:80=reset', /expected <ipv4>:<port>=<policy>/],
  ])('refuses %j', (spec, msg) => {
    expect(() => parseDivergence(spec, SVCS)).toThrow(UsageError);
    expect(() => parseDivergence(spec, SVCS)).toThrow(msg);
  });
});

describe('ftcp gateway --divergence', () => {
  it('exits 2 naming the flag, before creating anything', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const base = ['gateway', '--tun', 'ftcpx0', '--protect', '198.18.2.2:5001'];
      expect(await main([...base, '--divergence', '198.18.2.9:80=reset'])).toBe(2);
      expect(await main([...base, '--divergence', 'sometimes'])).toBe(2);
      expect(await main([...base, '--divergence-deadline', '0'])).toBe(2);
      const said = err.mock.calls.map((c) => String(c[0])).join('');
      expect(said).toMatch(/--divergence: 198.18.2.9:80 is not a protected service/);
      expect(said).toMatch(/--divergence: expected reset \| continue \| off/);
      expect(said).toMatch(/--divergence-deadline/);
    } finally {
      err.mockRestore();
    }
  });
});
