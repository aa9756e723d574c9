/**
 * `ftcp drill --fault gateway-failover` through the CLI as a user runs it (issue 14 item 4): in
 * a `--standby-gateway --log remote` lab the primary gateway host dies mid-transfer (every
 * process in <n>-gw frozen, its links down), keepalived moves the addresses to <n>-gw2 and its
 * gateway takes over from the log server; alone, and with a server crash before the death (gw2
 * adopts rebuilt, translated connections), during the outage (gw2 finds the crash from the
 * log's record of each connection's server incarnation) or right after the takeover (its rebuild
 * runs in gw2 on connections it has just adopted). Each must hold as every drill does (byte-exact, no
 * RST/FIN/ICMP at the client, the ack invariant over both gateways' trace), gw2 must adopt
 * every connection open at the death (none unprotected), each moving data again, and the old
 * primary, back at the end, must not be active (fenced, or released by its own keepalived),
 * leave the addresses on gw2 and send the client nothing.
 * `drill` (test/support/drill-cli.ts) checks that the lab left nothing behind.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { execCmd, REPO_ROOT } from '../../src/lab/index.js';
import { ensureBuilt } from '../support/build.js';
import { drill, expectHeld } from '../support/drill-cli.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function expectFailoverHeld(code: number, rep: any, crashes: number): void {
  expectHeld(code, rep, crashes);
  const f = rep.gatewayFailover;
  expect(rep.gatewayKill).toBeNull();
  // The primary died, keepalived made gw2 MASTER, its takeover claimed a newer epoch and adopted.
  expect(f.killedAt).toBeGreaterThan(0);
  expect(f.masterMs).toBeGreaterThan(0);
  expect(f.takeover.epoch).toBeGreaterThan(1);
  // The takeover began no later than the MASTER hook (gw2 watches for the address itself) and ended after it began.
  expect(f.takeoverStartMs).toBeGreaterThan(0);
  expect(f.takeoverStartMs).toBeLessThanOrEqual(f.masterMs);
  expect(f.takeover.doneMs).toBeGreaterThanOrEqual(f.takeoverStartMs);
  expect(f.newPid).toBeGreaterThan(0);
  expect(f.newPid).not.toBe(f.oldPid);
  expect(f.openAtKill).toBe(2);
  expect(f.adopted).toBe(f.openAtKill);
  expect(f.unknownFlows).toBe(0);
  expect(f.resumed).toBe(f.openAtKill);
  expect(f.allResumedMs).toBeGreaterThan(f.takeoverStartMs);
  // Both gateways wrote the one trace the invariant was checked over.
  expect(f.traceLines.before).toBeGreaterThan(0);
  expect(f.traceLines.after).toBeGreaterThan(0);
  // The old primary, back: fenced by the log server (or released by its own keepalived first:
  // standby), the addresses left on gw2, and it sent the client nothing after the takeover
  // began, where the same capture saw its segments before its death.
  expect(['fenced', 'standby']).toContain(f.oldPrimary.role);
  expect(f.oldPrimary.gw2HoldsAddresses).toBe(true);
  expect(f.oldPrimary.segmentsBefore).toBeGreaterThan(0);
  expect(f.oldPrimary.segmentsAfterTakeover).toBe(0);
}

const BASE = ['--scenario', 'upload', '--streams', '2', '--bytes', '300000000', '--log', 'remote'];

describe('drill --fault gateway-failover (lab)', () => {
  beforeAll(() => ensureBuilt());

  it('is refused without the log server (the standby adopts from it)', async () => {
    const r = await execCmd(process.execPath, [path.join(REPO_ROOT, 'bin', 'ftcp.js'), 'drill', '--scenario', 'upload', '--log', 'embedded:disk', '--fault', 'gateway-failover']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('needs --log remote');
  });

  it('alone: two uploads across the primary host\'s death and gw2\'s takeover', async () => {
    const { code, rep } = await drill([...BASE, '--fault', 'gateway-failover', '--crashes', '0'], 300_000);
    expectFailoverHeld(code, rep, 0);
    console.log(`gateway-failover: gw2 MASTER ${rep.gatewayFailover.masterMs} ms, takeover done ${rep.gatewayFailover.takeover.doneMs} ms, data flowing again ${rep.gatewayFailover.allResumedMs} ms after the death`);
  }, 320_000);

  // :outage: the servers die after the freeze, before the takeover; gw2 never heard their first
  // incarnation, but each connection's log record names it (the adoption gate, src/gateway/
  // adopt-gate.ts): the first heartbeat after the takeover names another, so both are rebuilt.
  it.each(['before', 'outage', 'rebuild'])('with a server crash (gateway-failover:%s)', async (when) => {
    const { code, rep } = await drill([...BASE, '--fault', `gateway-failover:${when}`, '--crash-at', '0.3'], 300_000);
    expectFailoverHeld(code, rep, 1);
    if (when === 'outage') {
      expect(rep.north.crashes).toBe(1);
      expect(rep.north.caughtUp).toBe(2);
      expect(rep.north.rebuildFailed).toBe(0);
    }
  }, 320_000);
});
