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

  it('rejects a bad scenario with exit status 2 before building anything', async () => {
    const r = await execCmd(process.execPath, [FTCP, 'drill', '--scenario', 'nope'], { timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--scenario: expected one of/);
  });
});
