// The two gateway faults as drill.ts drives them, through the one GatewayFault interface: each
// puts its report under its own key of the drill report (the --json shape), with its failures.
import { describe, expect, it } from 'vitest';
import { GatewayKiller } from '../../../src/lab/gwkill.js';
import { GatewayFailover } from '../../../src/lab/gwfailover.js';
import type { FaultEnd, GatewayFault } from '../../../src/lab/gwfault.js';
import type { DrillReport } from '../../../src/lab/drill.js';
import type { LabTopology } from '../../../src/lab/topology.js';

// Neither fault touches the lab before kill(): a topology with a standby host is enough here.
const topo = { name: 'ftcpt', standby: { namespaces: { gw2: 'ftcpt-gw2' } } } as unknown as LabTopology;
const end: FaultEnd = { pcap: Buffer.alloc(0), serverPorts: [5001], clientIp: 1, traceText: '', status: {} };
const say = (): void => {};

describe('GatewayFault: gateway-kill and gateway-failover behind one interface', () => {
  it('a fault never applied (the clients finished first) reports under its own key, with its failure', async () => {
    const faults: Array<GatewayFault<Pick<DrillReport, 'gatewayKill' | 'gatewayFailover'>>> = [
      new GatewayKiller(topo, 'gateway-kill', say),
      new GatewayFailover(topo, 'gateway-failover', '/nonexistent', say),
    ];
    const [kill, failover] = await Promise.all(faults.map((f) => f.finish(end)));
    expect(Object.keys(kill!.fields)).toEqual(['gatewayKill']);
    expect(kill!.fields.gatewayKill).toMatchObject({ fault: 'gateway-kill', killedAt: -1 });
    expect(kill!.failures).toEqual(['gateway-kill: the clients had finished before the gateway was killed: use more --bytes / --lines']);
    expect(Object.keys(failover!.fields)).toEqual(['gatewayFailover']);
    expect(failover!.fields.gatewayFailover).toMatchObject({ fault: 'gateway-failover', killedAt: -1 });
    expect(failover!.failures).toEqual(['gateway-failover: the clients had finished before the primary host died: use more --bytes / --lines']);
  });

  it('each is placed around crash 1 by the part of its name after the colon', () => {
    expect(new GatewayKiller(topo, 'gateway-kill:outage', say).place).toBe('outage');
    expect(new GatewayFailover(topo, 'gateway-failover:before', '/nonexistent', say).place).toBe('before');
    expect(new GatewayKiller(topo, 'gateway-kill', say).place).toBe('plain');
  });
});
