/**
 * `ftcp drill --fault gateway-kill` through the CLI as a user runs it (issue 14 item 4): kill -9
 * of the gateway mid-transfer, restarted 100 ms later with the same command line on the
 * embedded disk log; alone, with a server crash before its death (the connections live and
 * translated when it dies), and right after its restart (the rebuild runs in the restarted
 * gateway on connections it has just adopted). Each must hold as every drill does (byte-exact,
 * no RST/FIN/ICMP at the client, the ack invariant over both gateways' trace), adopt every
 * connection open at the kill (none unprotected), and catch up: every connection acknowledged
 * all its client had sent before the restart, within the client's deadline (an adopted upload
 * that crawled one segment per retransmission timeout did not: src/wrappers/south-catchup.ts).
 * (A server crash during the gateway's outage, :outage, is another part of issue 14.)
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../support/build.js';
import { drill, expectHeld } from '../support/drill-cli.js';

/** Uploads per drill: each is a connection open at the kill. */
const STREAMS = 2;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function expectGatewayKillHeld(code: number, rep: any, crashes: number): void {
  expectHeld(code, rep, crashes);
  // The gateway's death and restart, and what the restarted one did.
  const k = rep.gatewayKill;
  expect(k.error).toBeUndefined();
  expect(k.killedAt).toBeGreaterThan(0);
  expect(k.newPid).toBeGreaterThan(0);
  expect(k.newPid).not.toBe(k.oldPid);
  expect(k.spawnedMs).toBeGreaterThanOrEqual(100); // RestartSec
  expect(k.openAtKill).toBe(STREAMS);
  expect(k.adopted).toBe(k.openAtKill);
  expect(k.unknownFlows).toBe(0);
  expect(k.resumed).toBe(k.openAtKill);
  expect(k.allResumedMs).toBeGreaterThan(0);
  expect(k.allCaughtUpMs).toBeGreaterThanOrEqual(k.allResumedMs);
  // Both processes wrote the one trace the invariant was checked over (uploads: the stable
  // point moves after the restart as well).
  expect(k.traceLines.before).toBeGreaterThan(0);
  expect(k.traceLines.after).toBeGreaterThan(0);
}

const BASE = ['--scenario', 'upload', '--streams', String(STREAMS), '--bytes', '300000000', '--log', 'embedded:disk'];

describe('drill --fault gateway-kill (lab)', () => {
  beforeAll(() => ensureBuilt());

  it('alone: two uploads across a kill -9 of the gateway and its restart', async () => {
    const { code, rep } = await drill([...BASE, '--fault', 'gateway-kill', '--crashes', '0']);
    expectGatewayKillHeld(code, rep, 0);
  }, 240_000);

  it.each(['before', 'rebuild'])('with a server crash (gateway-kill:%s)', async (when) => {
    const { code, rep } = await drill([...BASE, '--fault', `gateway-kill:${when}`, '--crash-at', '0.3']);
    expectGatewayKillHeld(code, rep, 1);
  }, 240_000);
});
