/** The gateway's --on-log-failure policy: what happens when the log reports FAILED. */
import { describe, expect, it } from 'vitest';
import { type Gateway, type LogFailurePolicy } from '../../../src/gateway/gateway.js';
import { ManualLog } from '../../support/manual-log.js';
import { GatewayRig, seg as segment } from '../../support/gateway-harness.js';
import type { LogStatus, StatusListener } from '../../../src/log/types.js';
import { parseTcpPacket, type TcpPacketRepr } from '../../../src/wire/repr.js';
import { TCP_ACK, TCP_SYN } from '../../../src/wire/tcp.js';

class FailingLog extends ManualLog {
  statusCb: StatusListener | undefined;
  override onStatus(l: StatusListener): void {
    this.statusCb = l;
  }
  report(s: LogStatus): void {
    this.statusCb?.(s, { reason: 'test' });
  }
}

function gateway(policy?: LogFailurePolicy): { gw: Gateway; log: FailingLog } {
  const { gw, log } = new GatewayRig({ log: new FailingLog(), manualClock: false, gateway: policy ? { onLogFailure: policy } : {} });
  return { gw, log };
}

describe('gateway log-failure policy', () => {
  it('stall is the default and counts failures only', () => {
    const { gw, log } = gateway();
    expect(gw.onLogFailure).toBe('stall');
    log.report('LOW-SPACE');
    expect(gw.logFailures).toBe(0);
    log.report('FAILED');
    log.report('OK');
    log.report('FAILED');
    expect(gw.logFailures).toBe(2);
    expect(gw.unprotected.size).toBe(0);
    expect(gw.snapshot().logFailure).toEqual({ policy: 'stall', failures: 2, unprotected: 0 });
    gw.stop();
  });

  it('passthrough is reported in the snapshot', () => {
    const { gw, log } = gateway('passthrough');
    log.report('FAILED');
    expect(gw.logFailures).toBe(1);
    expect(gw.snapshot().logFailure).toMatchObject({ policy: 'passthrough', failures: 1 });
    expect(gw.snapshot().logLink).toBeUndefined(); // an embedded-style log has no link
    gw.stop();
  });
});

describe('passthrough on the wire', () => {
  /** A segment of the connection from client port `port`; this file's segments advertise a window field of 1000. */
  const seg = (fromClient: boolean, port: number, r: Partial<TcpPacketRepr>) => segment({ fromClient, port, window: 1000, ...r });
  async function open(rig: GatewayRig<FailingLog>, port: number, cIsn: number, sIsn: number) {
    const { tun } = rig;
    tun.inject(seg(true, port, { seq: cIsn, flags: TCP_SYN, window: 64240 })).flush();
    tun.inject(seg(false, port, { seq: sIsn, ack: cIsn + 1, flags: TCP_SYN | TCP_ACK, window: 65160 })).flush();
    tun.inject(seg(true, port, { seq: cIsn + 1, ack: sIsn + 1, flags: TCP_ACK, window: 502 })).flush(); // the log opens here
    await rig.logOpened();
    tun.drain();
  }

  it('releases what was held, then lets acks beyond stable through, and stops logging; new connections are unprotected', async () => {
    const rig = new GatewayRig({ log: new FailingLog(), manualClock: false, gateway: { onLogFailure: 'passthrough' } });
    const { tun, log, gw } = rig;
    await open(rig, 40000, 1000, 9000);
    expect(log.opened).toHaveLength(1);
    // 100 client bytes, not stable: the server's pure ACK of them is held.
    tun.inject(seg(true, 40000, { seq: 1001, ack: 9001, payload: Buffer.alloc(100, 1) })).flush();
    tun.drain();
    tun.inject(seg(false, 40000, { seq: 9001, ack: 1101 })).flush();
    expect(tun.drain()).toHaveLength(0);
    log.report('FAILED');
    const released = tun.drain().map((b) => parseTcpPacket(b));
    expect(released).toHaveLength(1);
    expect(released[0]!.ack).toBe(1101); // the server's own ack, no longer held back
    const appended = log.bytes(1).length;
    expect(appended).toBe(100);
    // From now on: acks beyond stable pass unchanged; client bytes are not logged.
    tun.inject(seg(true, 40000, { seq: 1101, ack: 9001, payload: Buffer.alloc(50, 2) })).flush();
    tun.inject(seg(false, 40000, { seq: 9001, ack: 1151 })).flush();
    const out = tun.drain().map((b) => parseTcpPacket(b));
    expect(out.map((p) => p.ack)).toEqual([9001, 1151]);
    expect(log.bytes(1).length).toBe(appended);
    expect(log.appends.every((a) => a.id === 1 && a.offset + a.data.length <= 100)).toBe(true);
    // A new connection while the log is down is not protected (never opened in the log).
    await open(rig, 40001, 5000, 7000);
    expect(log.opened).toHaveLength(1);
    tun.inject(seg(true, 40001, { seq: 5001, ack: 7001, payload: Buffer.alloc(10, 3) })).flush();
    tun.inject(seg(false, 40001, { seq: 7001, ack: 5011 })).flush();
    expect(tun.drain().map((b) => parseTcpPacket(b).ack)).toEqual([7001, 5011]);
    // The log is back: the next connection is protected again.
    log.report('OK');
    await open(rig, 40002, 3000, 4000);
    expect(log.opened).toHaveLength(2);
    gw.stop();
  });
});
