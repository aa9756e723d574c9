/**
 * `ftcp drill --fault gateway-kill` through the CLI as a user runs it (issue 14 item 4): kill -9
 * of the gateway mid-transfer, restarted 100 ms later with the same command line on the
 * embedded disk log; alone, and with a server crash before its death, in its outage, and
 * right after its restart. Each must hold as every drill does (byte-exact, no RST/FIN/ICMP at
 * the client, the ack invariant over both gateways' trace) and adopt every connection open at
 * the kill (none unprotected), each moving data again.
 *
 * Without adoption from the log (issue 14 item 2) these fail on the adoption checks. With
 * i14-adopt's first commits they fail when an adopted connection crawls after the restart
 * (one segment per retransmission timeout: BENCHMARKS.md, "Gateway restart"), which is what
 * they are for.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../support/build.js';
import { drill, expectHeld } from '../support/drill-cli.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function expectGatewayKillHeld(code: number, rep: any, crashes: number): void {
  expectHeld(code, rep, crashes);
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
    expectGatewayKillHeld(code, rep, 0);
  }, 240_000);

  it.each(['before', 'outage', 'rebuild'])('with a server crash (gateway-kill:%s)', async (when) => {
    const { code, rep } = await drill([...BASE, '--fault', `gateway-kill:${when}`, '--crash-at', '0.3']);
    expectGatewayKillHeld(code, rep, 1);
  }, 240_000);
});
