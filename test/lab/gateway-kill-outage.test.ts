/**
 * `ftcp drill --fault gateway-kill:outage` through the CLI (issue 14 items 2 and 4): the gateway
 * is killed with -9 at the crash point, the server is killed (and restarted by `ftcp
 * supervise`) while no gateway runs, then the gateway restarts on its disk log. The restarted
 * gateway cannot have heard the crash; it holds every adopted connection until the
 * supervisor's first heartbeat, finds another server incarnation than the one the log record
 * binds, and rebuilds the connections from the log (src/gateway/adopt-gate.ts). Without that,
 * the clients' retransmissions reached the new server process and its RST reached a client.
 *
 * The usual checks hold (byte-exact, no RST/FIN/ICMP at the client, the ack invariant over both
 * gateways' trace), every connection open at the kill is adopted and moves data again, and the
 * one server crash is recovered by a rebuild in the restarted gateway (its north side counts it),
 * with no rebuild failed.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../support/build.js';
import { drill, expectHeld } from '../support/drill-cli.js';

const ARGS = ['--scenario', 'upload', '--streams', '2', '--bytes', '300000000', '--log', 'embedded:disk', '--fault', 'gateway-kill:outage', '--crash-at', '0.3'];

describe('drill --fault gateway-kill:outage (lab)', () => {
  beforeAll(() => ensureBuilt());

  it('a server crash while the gateway is dead: the restarted gateway rebuilds the adopted connections from the log', async () => {
    const { code, rep } = await drill(ARGS);
    expectHeld(code, rep, 1);
    const k = rep.gatewayKill;
    expect(k.killedAt).toBeGreaterThan(0);
    expect(k.newPid).toBeGreaterThan(0);
    expect(k.newPid).not.toBe(k.oldPid);
    // The server died after the gateway and before its restart (the outage).
    expect(rep.crashes[0].killedAt).toBeGreaterThanOrEqual(k.killedAt);
    expect(rep.crashes[0].killedAt).toBeLessThan(k.killedAt + k.spawnedMs);
    expect(k.openAtKill).toBe(2);
    expect(k.adopted).toBe(k.openAtKill);
    expect(k.unknownFlows).toBe(0);
    expect(k.resumed).toBe(k.openAtKill);
    // The restarted gateway found the crash and rebuilt both connections (its north side's counters).
    expect(rep.north.crashes).toBe(1);
    expect(rep.north.handshakes).toBeGreaterThanOrEqual(2);
    expect(rep.north.caughtUp).toBe(2);
    expect(rep.north.rebuildFailed).toBe(0);
    expect(typeof rep.drops.ADOPT_INCARNATION_UNKNOWN).toBe('number'); // what waited for the first heartbeat: counted
  }, 240_000);
});
