/**
 * Numeric flags of every command: one parser (src/cli/args.ts) with bounds, so a negative,
 * non-finite, exponent, hex or too-large value is a UsageError (exit 2) that names the
 * flag, never Node's own message ("argument is ambiguous") nor a silent acceptance of
 * `--idle-timeout 1e308`. In-process through main(): every case ends before the command
 * does anything (each argv also carries a later usage error, so even an accepted number
 * would stop there, not open a TUN, a lab or a socket).
 */
import { describe, it, expect, vi } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { parseCli, parseIntFlag, parseNumberFlag, parseSizeFlag, formatSize } from '../../../src/cli/args.js';
import { UsageError } from '../../../src/util/errors.js';

async function cli(argv: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
  try {
    return { code: await main(argv), err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Values no numeric flag accepts. */
const ALWAYS_BAD = ['-5', '-1', '1e308', 'Infinity', '-Infinity', 'NaN', '0x10', ' 5', '5 ', '', '1_000'];

/** [command argv before the flag, the later usage error that stops it otherwise, flag, too large]. */
const FLAGS: Array<[string[], string[], string, string]> = [
  [['gateway', '--tun', 't0', '--protect', '127.0.0.1:9'], ['--on-log-failure', 'bogus'], '--table', '2147483648'],
  [['gateway', '--tun', 't0', '--protect', '127.0.0.1:9'], ['--on-log-failure', 'bogus'], '--idle-timeout', '2592001'],
  [['gateway', '--tun', 't0', '--protect', '127.0.0.1:9'], ['--on-log-failure', 'bogus'], '--mtu', '9001'],
  [['gateway', '--tun', 't0', '--protect', '127.0.0.1:9'], ['--on-log-failure', 'bogus'], '--max-flows', '100000001'],
  [['gateway', '--tun', 't0', '--protect', '127.0.0.1:9'], ['--on-log-failure', 'bogus'], '--max-half-open', '1000001'],
  [['gateway', '--tun', 't0', '--protect', '127.0.0.1:9'], ['--on-log-failure', 'bogus'], '--half-open-timeout', '180.5'],
  [['gateway', '--tun', 't0', '--protect', '127.0.0.1:9'], ['--on-log-failure', 'bogus'], '--heartbeat-ms', '10001'],
  // No program after '--': a usage error after the numbers.
  [['supervise', '--gateway', '127.0.0.1:9', '--service', '127.0.0.1:9'], [], '--heartbeat-ms', '10001'],
  [['supervise', '--gateway', '127.0.0.1:9', '--service', '127.0.0.1:9'], [], '--stop-timeout-ms', '3600001'],
  [['supervise', '--gateway', '127.0.0.1:9', '--service', '127.0.0.1:9'], [], '--max-restarts', '1000000001'],
  [['supervise', '--gateway', '127.0.0.1:9', '--service', '127.0.0.1:9'], [], '--listen-timeout-ms', '3600001'],
  [['logserver', '--listen', '127.0.0.1:1'], ['--store', 'tape'], '--max-bytes', '65T'],
  [['logserver', '--listen', '127.0.0.1:1'], ['--store', 'tape'], '--max-bytes-per-conn', '65T'],
  [['logserver', '--listen', '127.0.0.1:1'], ['--store', 'tape'], '--low-space-pct', '101'],
  // --fault without --log remote: a usage error before any lab.
  [['drill'], ['--fault', 'log-loss'], '--bytes', '2T'],
  [['drill'], ['--fault', 'log-loss'], '--streams', '65'],
  [['drill'], ['--fault', 'log-loss'], '--connections', '10001'],
  [['drill'], ['--fault', 'log-loss'], '--lines', '10000001'],
  [['drill'], ['--fault', 'log-loss'], '--seed', '281474976710657'],
  [['drill'], ['--fault', 'log-loss'], '--crashes', '1001'],
  [['demo-client', '--kind', 'echo'], [], '--connections', '100001'],
  [['demo-client', '--kind', 'echo'], [], '--bytes', '1025G'],
  [['demo-client', '--kind', 'echo'], [], '--lines', '1000000001'],
  [['demo-client', '--kind', 'echo'], [], '--seed', '281474976710657'],
  [['demo-client', '--kind', 'echo'], [], '--timeout-ms', '2147483648'],
];

describe('numeric flags of every command', () => {
  for (const [base, stopper, flag, tooLarge] of FLAGS) {
    it(`${base[0]} ${flag}: negative, non-finite, malformed and too large are usage errors naming it`, async () => {
      for (const v of [...ALWAYS_BAD, tooLarge]) {
        // Both spellings: '--flag -5' (parseArgs alone would call -5 an option) and '--flag=-5'.
        for (const argv of [[...base, flag, v, ...stopper], [...base, `${flag}=${v}`, ...stopper]]) {
          const r = await cli(argv);
          expect(r.code, argv.join(' ')).toBe(2);
          expect(r.err, argv.join(' ')).toMatch(new RegExp(`^ftcp ${base[0]}: ${escape(flag)}: expected (an integer|a number|a byte count) in \\S+\\.\\.\\S+.* got '${escape(v)}'\\n$`));
        }
      }
    });
  }

  it('the bound is said in --help (gateway --idle-timeout: 30 days)', async () => {
    let out = '';
    const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
    try {
      expect(await main(['gateway', '--help'])).toBe(0);
    } finally {
      o.mockRestore();
    }
    expect(out).toMatch(/--idle-timeout <s> .*at most 2592000 \(30 days\)/);
  });

  it('a negative number for a non-numeric flag reaches its own check (inspect --ports, lab up --protect)', async () => {
    const p = await cli(['inspect', '/nonexistent.pcap', '--ports', '-5']);
    expect(p.code).toBe(2);
    expect(p.err).toMatch(/^ftcp inspect: --ports: bad port '-5'/);
    const l = await cli(['lab', 'up', '--name', 'x', '--protect', '-5']);
    expect(l.code).toBe(2);
    expect(l.err).toMatch(/^ftcp lab: --protect: expected <port>/);
  });
});

describe('the shared parsers', () => {
  it('parseNumberFlag: plain decimals within bounds, the default when absent', () => {
    expect(parseNumberFlag(undefined, '--x', { dflt: 7, min: 1, max: 10 })).toBe(7);
    expect(parseNumberFlag('10', '--x', { dflt: 7, min: 1, max: 10 })).toBe(10);
    expect(parseNumberFlag('0.5', '--x', { dflt: 7, min: 0.001, max: 10, integer: false })).toBe(0.5);
    expect(() => parseNumberFlag('0.5', '--x', { dflt: 7, min: 0, max: 10 })).toThrowError(UsageError);
    expect(() => parseNumberFlag('11', '--x', { dflt: 7, min: 1, max: 10, unit: 's' })).toThrowError("--x: expected an integer in 1..10 s, got '11'");
    expect(() => parseNumberFlag('99999999999999999999', '--x', { dflt: 7, min: 0, max: Number.MAX_SAFE_INTEGER })).toThrowError(/--x/);
    expect(parseIntFlag('0', '--y', 3, 0, 5)).toBe(0);
  });

  it('parseSizeFlag: binary suffixes, bounds shown with suffixes', () => {
    const o = { dflt: 1, min: 0, max: 2 ** 40 };
    expect(parseSizeFlag('64K', '--b', o)).toBe(65536);
    expect(parseSizeFlag('3m', '--b', o)).toBe(3 * 2 ** 20);
    expect(parseSizeFlag('2GiB', '--b', o)).toBe(2 ** 31);
    expect(parseSizeFlag('1T', '--b', o)).toBe(2 ** 40);
    expect(() => parseSizeFlag('1.5G', '--b', o)).toThrowError(/--b/);
    expect(() => parseSizeFlag('-1K', '--b', o)).toThrowError("--b: expected a byte count in 0..1T (e.g. 1048576, 64K, 100M, 1G), got '-1K'");
    expect(formatSize(2 ** 46)).toBe('64T');
    expect(formatSize(1000)).toBe('1000');
  });

  it('parseCli hands a negative number to the flag, leaves options and what follows -- alone', () => {
    const opts = { n: { type: 'string' }, v: { type: 'boolean' }, s: { type: 'string', short: 's' } } as const;
    expect(parseCli(['--n', '-5', '-s', '-0.5'], opts).values).toEqual({ n: '-5', s: '-0.5' });
    // '-v' is an option, not a number: still an error ('--n' wants a value).
    expect(() => parseCli(['--n', '-v'], opts)).toThrowError(UsageError);
    expect(parseCli(['--v', '--', '--n', '-5'], opts, true).positionals).toEqual(['--n', '-5']);
  });
});
