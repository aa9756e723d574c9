/**
 * The log server over the link protocol on real kernels (`ftcp lab up --log remote`):
 *
 *   <n>-client ── gateway (<n>-gw) ── <n>-server          gl1/l1, gl2/l2: two log links
 *                    └── udp://198.18.3.2:7500,198.18.4.2:7500 ── ftcp logserver (<n>-log, disk)
 *
 * Uploads (and a download) through a protected port, byte-exact, under each log-link fault
 * of src/lab/faults.ts; the gateway snapshot's `logLink` counters must show the fault
 * happened (retransmissions, a path switch, a server restart and re-registrations).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { labDown, labUp, listLeftovers, randomLabName, type LabTopology } from '../../src/lab/index.js';
import { logLoss, logPathDown, logRestart } from '../../src/lab/faults.js';
import { gatewayStatus, logServerMetrics, runDemoClient, startDemoServer, stopProcess } from '../../src/lab/procs.js';
import { keystreamSha256 } from '../../src/demo/keystream.js';

const SRV = '198.18.2.2';
const MB = 1_000_000;

interface LogLink {
  peer: string;
  path: number;
  link: Record<string, number>;
  client: Record<string, number>;
}

/** Duplicated datagrams the log server's links refused, over every gateway attached (its /metrics). */
function absorbedAtServer(m: Map<string, number>): number {
  let n = 0;
  for (const [k, v] of m) if (/^ftcp_logserver_link_(duplicates|replayed)_total\{/.test(k)) n += v;
  return n;
}

describe('log server over the link protocol (lab, --log remote)', () => {
  const name = randomLabName('ftcpr');
  let topo: LabTopology;
  const servers: ChildProcess[] = [];
  const logLink = async (): Promise<LogLink> => (await gatewayStatus(name)).logLink as LogLink;

  async function upload(bytes: number, seed: string): Promise<void> {
    const r = await runDemoClient(topo.namespaces.client, ['--kind', 'upload', '--connect', `${SRV}:5001`, '--bytes', String(bytes), '--seed', seed], 60_000);
    expect(r.errors).toEqual([]);
    expect(r.allOk).toBe(true);
    expect(r.perConnection[0]!.sentSha256).toBe(keystreamSha256(seed, bytes));
  }

  beforeAll(async () => {
    topo = await labUp({ name, protect: [5001, 5002], log: 'remote' });
    servers.push(await startDemoServer(topo.namespaces.server, 'upload', `${SRV}:5001`));
    servers.push(await startDemoServer(topo.namespaces.server, 'download', `${SRV}:5002`));
  });

  afterAll(async () => {
    for (const s of servers) await stopProcess(s);
    await labDown(name);
    expect(await listLeftovers(name)).toEqual([]);
  });

  it('carries an upload with the log server remote, everything logged', async () => {
    await upload(5 * MB, '1');
    const st = await gatewayStatus(name);
    expect(st.log).toBe('OK');
    expect(st.logLink.peer).toBe('active');
    expect(st.south.bytesLogged).toBeGreaterThanOrEqual(5 * MB);
    expect(st.logLink.client.bytesSent).toBeGreaterThanOrEqual(5 * MB);
  });

  // netem when the kernel has it, else the log server's userspace impairment (faults.ts).
  it('survives loss, reordering and duplication on both log links', async () => {
    const before = await logLink();
    const serverBefore = absorbedAtServer(await logServerMetrics(topo));
    const how = await logLoss(topo, true);
    console.log(`log-link impairment: ${how}`);
    try {
      await upload(8 * MB, '2');
      const d = await runDemoClient(topo.namespaces.client, ['--kind', 'download', '--connect', `${SRV}:5002`, '--bytes', String(2 * MB), '--seed', '3'], 60_000);
      expect(d.allOk).toBe(true);
      expect(d.perConnection[0]!.recvSha256).toBe(keystreamSha256('3', 2 * MB));
    } finally {
      await logLoss(topo, false);
    }
    const after = await logLink();
    const serverAfter = absorbedAtServer(await logServerMetrics(topo));
    expect(after.link.retransmitted! - before.link.retransmitted!).toBeGreaterThan(0);
    // Duplicates are refused at whichever end receives them: the gateway gets the few replies
    // (a few dozen datagrams: 2 % of them may well be none), the log server the thousands of
    // appends. Counted at both ends.
    const atGateway = after.link.duplicates! + after.link.replayed! - before.link.duplicates! - before.link.replayed!;
    console.log(`duplicates refused: ${atGateway} at the gateway, ${serverAfter - serverBefore} at the log server`);
    expect(atGateway + serverAfter - serverBefore).toBeGreaterThan(0);
  });

  it('switches to the other log link when the current one goes down', async () => {
    const before = await logLink();
    const which = (before.path + 1) as 1 | 2;
    await logPathDown(topo, which, true);
    try {
      await upload(8 * MB, '4');
    } finally {
      await logPathDown(topo, which, false);
    }
    const after = await logLink();
    expect(after.link.pathSwitches! - before.link.pathSwitches!).toBeGreaterThan(0);
    expect(after.path).not.toBe(before.path);
  });

  it('rides out a kill -9 of the log server (disk store) mid-upload', async () => {
    const before = await logLink();
    const up = upload(20 * MB, '5');
    await new Promise((r) => setTimeout(r, 400));
    const { oldPid, newPid } = await logRestart(topo);
    expect(newPid).not.toBe(oldPid);
    await up;
    const after = await logLink();
    expect(after.client.serverRestarts! - before.client.serverRestarts!).toBe(1);
    expect(after.client.reRegistrations! - before.client.reRegistrations!).toBeGreaterThan(0);
    expect(after.peer).toBe('active');
    expect((await gatewayStatus(name)).log).toBe('OK');
  });
});
