/** The gateway's --on-log-failure policy: what happens when the log reports FAILED. */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { FakeTun } from '../../../src/tun/fake.js';
import { Gateway, type LogFailurePolicy } from '../../../src/gateway/gateway.js';
import { ManualLog } from '../../support/manual-log.js';
import { ipToU32 } from '../../../src/wire/addr.js';
import type { LogStatus, StatusListener } from '../../../src/log/types.js';

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
  const log = new FailingLog();
  const gw = new Gateway({
    tun: new FakeTun(),
    services: [{ ip: ipToU32('198.18.2.2'), port: 5001 }],
    log,
    logger: pino({ level: 'silent' }),
    ...(policy ? { onLogFailure: policy } : {}),
  });
  gw.start();
  return { gw, log };
}

describe('gateway log-failure policy', () => {
  it('stall_is_the_default_and_counts_failures_only', () => {
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

  it('passthrough_is_reported_in_the_snapshot', () => {
    const { gw, log } = gateway('passthrough');
    log.report('FAILED');
    expect(gw.logFailures).toBe(1);
    expect(gw.snapshot().logFailure).toMatchObject({ policy: 'passthrough', failures: 1 });
    expect(gw.snapshot().logLink).toBeUndefined(); // an embedded-style log has no link
    gw.stop();
  });
});
