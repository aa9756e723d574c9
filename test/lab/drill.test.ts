/** `ftcp drill` through the CLI, as the README's quick start runs it. */
import { describe, it, expect } from 'vitest';
import path from 'node:path';
import { execCmd, listLeftovers, REPO_ROOT } from '../../src/lab/index.js';

const FTCP = path.join(REPO_ROOT, 'bin', 'ftcp.js');

describe('ftcp drill (lab)', () => {
  it('runs the mixed scenario with a crash on the disk log, reports every connection byte-exact, and leaves nothing behind', async () => {
    const r = await execCmd(process.execPath, [FTCP, 'drill', '--scenario', 'mixed', '--log', 'embedded:disk', '--bytes', '150000000', '--connections', '20', '--lines', '3000', '--json'], { timeoutMs: 180_000 });
    expect(r.stderr).not.toMatch(/error/i);
    const rep = JSON.parse(r.stdout);
    expect(rep.failures).toEqual([]);
    expect(rep.ok).toBe(true);
    expect(r.code).toBe(0);
    expect(rep.clients.map((c: { kind: string; ok: number }) => [c.kind, c.ok])).toEqual([['upload', 1], ['download', 1], ['echo', 20], ['kv', 20]]);
    expect(rep.invariant.checked).toBeGreaterThan(1000);
    expect(rep.client.connections).toBe(42);
    expect(rep.verdicts).toEqual({ ok: 42 });
    expect(rep.gateway.bytesLogged).toBeGreaterThanOrEqual(150_000_000);
    // The crash really happened and hit live connections, and the timeline is complete.
    expect(rep.crashes).toHaveLength(1);
    expect(rep.crashes[0].connections).toBeGreaterThan(0);
    expect(rep.crashes[0].caughtUpMs).toBeGreaterThanOrEqual(0);
    expect(rep.north.handshakes).toBe(rep.crashes[0].connections);
    expect(await listLeftovers(rep.lab)).toEqual([]);
  });

  it('places the crash by progress: the default 200 MB download (3 Gb/s on an idle machine) is crashed mid-way, not after it ended', async () => {
    const r = await execCmd(process.execPath, [FTCP, 'drill', '--scenario', 'download', '--crash-at', '0.3,0.6', '--json'], { timeoutMs: 180_000 });
    const rep = JSON.parse(r.stdout);
    expect(rep.failures).toEqual([]);
    expect(r.code).toBe(0);
    expect(rep.crashes.map((c: { target: number }) => c.target)).toEqual([0.3, 0.6]);
    for (const c of rep.crashes) {
      expect(c.killedAt).toBeGreaterThan(0);
      expect(c.connections).toBe(1);
      // Killed at (or just past) its point of the transfer.
      expect(c.atFraction).toBeGreaterThanOrEqual(c.target);
      expect(c.atFraction).toBeLessThan(c.target + 0.2);
    }
    expect(await listLeftovers(rep.lab)).toEqual([]);
  }, 200_000);

  it('rejects a bad scenario with exit status 2 before building anything', async () => {
    const r = await execCmd(process.execPath, [FTCP, 'drill', '--scenario', 'nope'], { timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--scenario: expected one of/);
    for (const [args, msg] of [
      [['--crash-at', '0.5,0.4'], /--crash-at: the fractions must increase/],
      [['--crash-at', '1.5'], /--crash-at/],
      [['--crashes', '2', '--crash-at', '0.5'], /disagree/],
      [['--soak', '0'], /--soak: expected an integer in 1\.\.100000/],
      [['--soak-seed', '3'], /--soak-seed needs --soak/],
    ] as const) {
      const b = await execCmd(process.execPath, [FTCP, 'drill', ...args], { timeoutMs: 30_000 });
      expect(b.code, args.join(' ')).toBe(2);
      expect(b.stderr).toMatch(msg);
    }
  });
});
