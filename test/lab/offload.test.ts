/**
 * The gateway's TUN offloads (virtio-net header, TSO4/TSO6/CSUM on the TUN: the default) on
 * real Linux TCP stacks, protection on, embedded memory log:
 *
 *   <n>-client ── c0 ──▶ <n>-gw (ftcp gateway, TUN with offloads) ──▶ s0 ── <n>-server
 *
 * 200 MB upload and 200 MB download byte-exact; the gateway must really have carried
 * super-packets (offload stats), with no drop and protection in force (bytes logged).
 * Then the same through a gateway started with --no-offload: plain MTU-size packets only.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { labUp, labDown, listLeftovers, randomLabName } from '../../src/lab/index.js';
import type { LabTopology } from '../../src/lab/index.js';
import { startDemoServer, runDemoClient, gatewayStatus, stopProcess } from '../../src/lab/procs.js';
import { keystreamSha256 } from '../../src/demo/keystream.js';

interface Status {
  offload?: { active: boolean; superPackets: number; gsoRejected: number; partialRefreshed: number };
  south: { bytesLogged: number };
  stats: { dropped: number };
}
const status = async (lab: string): Promise<Status> => (await gatewayStatus(lab)) as Status;

const MB = 1_000_000;
const SRV = '198.18.2.2';
const BYTES = 200 * MB;

/** A lab (memory log, 5001-5002 protected) with the upload and download servers, for one describe block. */
function labWithServers(extraGatewayArgs: string[]): { name: string; topo: () => LabTopology } {
  const name = randomLabName('ftcpo');
  let topo: LabTopology | null = null;
  const servers: ChildProcess[] = [];
  beforeAll(async () => {
    topo = await labUp({ name, protect: [5001, 5002], log: 'embedded', extraGatewayArgs });
    servers.push(await startDemoServer(topo.namespaces.server, 'upload', `${SRV}:5001`));
    servers.push(await startDemoServer(topo.namespaces.server, 'download', `${SRV}:5002`));
  });
  afterAll(async () => {
    for (const s of servers) await stopProcess(s);
    await labDown(name);
    expect(await listLeftovers(name)).toEqual([]);
  });
  return { name, topo: () => topo! };
}

describe('gateway with TUN offloads, the default (lab)', () => {
  const { name, topo } = labWithServers([]);

  it('carries a 200 MB upload byte-exact in super-packets, logged', async () => {
    const before = await status(name);
    const r = await runDemoClient(topo().namespaces.client, ['--kind', 'upload', '--connect', `${SRV}:5001`, '--bytes', String(BYTES), '--seed', '7']);
    expect(r.errors).toEqual([]);
    expect(r.allOk).toBe(true);
    expect(r.perConnection[0]!.sentSha256).toBe(keystreamSha256('7', BYTES));
    const after = await status(name);
    expect(after.offload?.active).toBe(true);
    expect(after.offload!.superPackets).toBeGreaterThan(before.offload!.superPackets);
    expect(after.south.bytesLogged).toBeGreaterThanOrEqual(BYTES);
  });

  it('carries a 200 MB download byte-exact in super-packets', async () => {
    const before = (await status(name)).offload!;
    const r = await runDemoClient(topo().namespaces.client, ['--kind', 'download', '--connect', `${SRV}:5002`, '--bytes', String(BYTES), '--seed', '11']);
    expect(r.errors).toEqual([]);
    expect(r.allOk).toBe(true);
    expect(r.bytesReceived).toBe(BYTES);
    expect(r.perConnection[0]!.recvSha256).toBe(keystreamSha256('11', BYTES));
    const after = (await status(name)).offload!;
    expect(after.superPackets - before.superPackets).toBeGreaterThan(100);
    expect(after.gsoRejected).toBe(0);
    const st = await status(name);
    expect(st.stats.dropped).toBe(0);
    expect(st.offload!.partialRefreshed).toBeGreaterThan(0); // protected super-packets had partial checksums
  });
});

describe('gateway --no-offload (lab)', () => {
  const { name, topo } = labWithServers(['--no-offload']);

  it('carries 50 MB each way byte-exact in plain packets, logged', async () => {
    const up = await runDemoClient(topo().namespaces.client, ['--kind', 'upload', '--connect', `${SRV}:5001`, '--bytes', String(50 * MB), '--seed', '5']);
    expect(up.errors).toEqual([]);
    expect(up.perConnection[0]!.sentSha256).toBe(keystreamSha256('5', 50 * MB));
    const down = await runDemoClient(topo().namespaces.client, ['--kind', 'download', '--connect', `${SRV}:5002`, '--bytes', String(50 * MB), '--seed', '6']);
    expect(down.errors).toEqual([]);
    expect(down.perConnection[0]!.recvSha256).toBe(keystreamSha256('6', 50 * MB));
    const st = await status(name);
    expect(st.offload?.active ?? false).toBe(false);
    expect(st.south.bytesLogged).toBeGreaterThanOrEqual(50 * MB);
    expect(st.stats.dropped).toBe(0);
  });
});
