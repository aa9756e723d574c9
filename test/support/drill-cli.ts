/**
 * `ftcp drill` through the CLI as a user runs it, for the lab tests: the JSON report (and no
 * leftover of its lab), and the checks every drill that held must pass.
 */
import path from 'node:path';
import { expect } from 'vitest';
import { execCmd, listLeftovers, REPO_ROOT } from '../../src/lab/index.js';

const FTCP = path.join(REPO_ROOT, 'bin', 'ftcp.js');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function drill(args: string[], timeoutMs = 200_000): Promise<{ code: number; rep: any }> {
  const r = await execCmd(process.execPath, [FTCP, 'drill', ...args, '--json'], { timeoutMs });
  let rep;
  try {
    rep = JSON.parse(r.stdout);
  } catch {
    throw new Error(`drill ${args.join(' ')}: exit ${r.code}, no JSON report; stderr:\n${r.stderr.slice(-3000)}`);
  }
  expect(await listLeftovers(rep.lab)).toEqual([]);
  return { code: r.code, rep };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function expectHeld(code: number, rep: any, crashes: number): void {
  expect(rep.failures).toEqual([]);
  expect(rep.ok).toBe(true);
  expect(code).toBe(0);
  expect(rep.crashes).toHaveLength(crashes);
  for (const c of rep.crashes) {
    expect(c.killedAt).toBeGreaterThan(0);
    expect(c.connections).toBeGreaterThan(0);
    expect(c.failed).toBe(0);
  }
  if (crashes > 0) expect(rep.crashes.at(-1).caughtUpMs).toBeGreaterThanOrEqual(0);
  for (const c of rep.clients) {
    expect(c.failed).toBe(0);
    expect(c.ok).toBe(c.connections);
  }
  expect(rep.client.rstToClient).toBe(0);
  expect(rep.client.icmpToClient).toBe(0);
  expect(Object.keys(rep.verdicts)).toEqual(['ok']);
  expect(rep.invariant.checked).toBeGreaterThan(0);
  expect(rep.invariant.violations).toEqual([]);
}
