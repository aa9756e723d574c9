/**
 * `ftcp drill --fault gateway-kill` through the CLI as a user runs it (issue 14 item 4): kill -9
 * of the gateway mid-transfer, restarted 100 ms later with the same command line on the
 * embedded disk log; alone, and with a server crash before its death, in its outage, and
 * right after its restart. Each must hold as every drill does (byte-exact, no RST/FIN/ICMP at
 * the client, the ack invariant over both gateways' trace) and adopt every connection open at
 * the kill (none unprotected), each moving data again.
 *
 * Until the restarted gateway adopts connections from the log (issue 14 item 2), these fail
 * on the adoption checks (and whatever an unprotected connection then does): that is what
 * they are for.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { execCmd, listLeftovers, REPO_ROOT } from '../../src/lab/index.js';
import { ensureBuilt } from '../support/build.js';

const FTCP = path.join(REPO_ROOT, 'bin', 'ftcp.js');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function drill(args: string[], timeoutMs = 200_000): Promise<{ code: number; rep: any }> {
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
function expectHeld(code: number, rep: any, crashes: number): void {
  expect(rep.failures).toEqual([]);
  expect(rep.ok).toBe(true);
  expect(code).toBe(0);
  expect(rep.crashes).toHaveLength(crashes);
  for (const c of rep.crashes) {
    expect(c.killedAt).toBeGreaterThan(0);
    expect(c.connections).toBeGreaterThan(0);
    expect(c.failed).toBe(0);
  }
  for (const c of rep.clients) expect(c.ok).toBe(c.connections);
  expect(rep.client.rstToClient).toBe(0);
  expect(rep.client.icmpToClient).toBe(0);
  expect(Object.keys(rep.verdicts)).toEqual(['ok']);
  expect(rep.invariant.checked).toBeGreaterThan(0);
  expect(rep.invariant.violations).toEqual([]);
  // The gateway's death and restart, and what the restarted one did.
  const k = rep.gatewayKill;
  expect(k.killedAt).toBeGreaterThan(0);
  expect(k.newPid).toBeGreaterThan(0);
  expect(k.newPid).not.toBe(k.oldPid);
  expect(k.spawnedMs).toBeGreaterThanOrEqual(100); // RestartSec
  expect(k.openAtKill).toBe(2);
  expect(k.adopted).toBe(k.openAtKill);
  expect(k.unknownFlows).toBe(0);
  expect(k.resumed).toBe(k.openAtKill);
  expect(k.allResumedMs).toBeGreaterThan(0);
  // Both processes wrote the one trace the invariant was checked over (uploads: the stable
  // point moves after the restart as well).
  expect(k.traceLines.before).toBeGreaterThan(0);
  expect(k.traceLines.after).toBeGreaterThan(0);
}

const BASE = ['--scenario', 'upload', '--streams', '2', '--bytes', '300000000', '--log', 'embedded:disk'];

describe('drill --fault gateway-kill (lab)', () => {
  beforeAll(() => ensureBuilt());

  it('alone: two uploads across a kill -9 of the gateway and its restart', async () => {
    const { code, rep } = await drill([...BASE, '--fault', 'gateway-kill', '--crashes', '0']);
    expectHeld(code, rep, 0);
  }, 240_000);

  it.each(['before', 'outage', 'rebuild'])('with a server crash (gateway-kill:%s)', async (when) => {
    const { code, rep } = await drill([...BASE, '--fault', `gateway-kill:${when}`, '--crash-at', '0.3']);
    expectHeld(code, rep, 1);
  }, 240_000);
});
