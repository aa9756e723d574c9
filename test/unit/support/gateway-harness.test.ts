/**
 * The harness's wait for the log: `logOpened()` resolves only once the log has answered the
 * gateway's open and the gateway has bound the log id — however late the answer comes (a
 * log that answers only when the test says so), not after some count of turns.
 */
import { describe, it, expect } from 'vitest';
import { GatewayRig, drainMicrotasks, seg, TCP_SYN, TCP_ACK } from '../../support/gateway-harness.js';
import { ManualLog } from '../../support/manual-log.js';
import type { OpenMeta } from '../../../src/log/types.js';

/** A log whose opens are answered by hand. */
class LateLog extends ManualLog {
  readonly answers: Array<() => void> = [];
  override open(meta: OpenMeta): Promise<number> {
    const answered = super.open(meta);
    return new Promise((resolve) => this.answers.push(() => void answered.then(resolve)));
  }
}

function establish(rig: GatewayRig<LateLog>): void {
  rig.tun.inject(seg({ fromClient: true, seq: 1000, flags: TCP_SYN, window: 64240 })).flush();
  rig.tun.inject(seg({ fromClient: false, seq: 9000, ack: 1001, flags: TCP_SYN | TCP_ACK, window: 65160 })).flush();
  rig.tun.inject(seg({ fromClient: true, seq: 1001, ack: 9001 })).flush(); // the log opens here
}

describe('the gateway harness', () => {
  it('waits for a late answer to the log open, and the gateway has bound the log id when the wait ends', async () => {
    const rig = new GatewayRig({ log: new LateLog(), wiring: 'manual' });
    establish(rig);
    const flow = [...rig.gw.table.flows()][0]![1];
    expect(rig.opens.count).toBe(1);
    let waited = false;
    const wait = rig.logOpened().then(() => (waited = true));
    // Every queued reaction runs, and still no answer: the wait is for the log, not for turns.
    await drainMicrotasks();
    await drainMicrotasks();
    expect(waited).toBe(false);
    expect(flow.logId).toBeLessThan(0);
    rig.log.answers.shift()!();
    await wait;
    expect(flow.logId).toBe(1);
  });

  it('resolves at once when the gateway opened nothing', async () => {
    const rig = new GatewayRig({ log: new LateLog(), wiring: 'manual' });
    await rig.logOpened();
    expect(rig.opens.count).toBe(0);
  });
});
