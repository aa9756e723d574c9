/**
 * The standby's own takeover trigger (src/gateway/address-watch.ts): an address of the list
 * appearing on the host fires once per appearance; a failed takeover re-arms after retryMs.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AddressWatch, hostAddresses } from '../../../src/gateway/address-watch.js';

afterEach(() => {
  vi.useRealTimers();
});

/** A watch over a host whose addresses the test sets; `calls` counts the takeovers asked. */
function rig(result: () => Promise<unknown> = async () => {}) {
  const host = new Set<string>(['10.0.0.2']);
  let calls = 0;
  const w = new AddressWatch(['198.18.1.1'], () => { calls++; return result(); }, { periodMs: 60_000, retryMs: 1000, read: () => host });
  return { host, w, calls: () => calls };
}

describe('AddressWatch', () => {
  it('fires on the absent → present edge only, once per appearance', () => {
    const { host, w, calls } = rig();
    w.look();
    expect(calls()).toBe(0);
    host.add('198.18.1.1');
    w.look();
    w.look();
    expect(calls()).toBe(1); // still present: no second takeover
    host.delete('198.18.1.1');
    w.look();
    host.add('198.18.1.1');
    w.look();
    expect(calls()).toBe(2);
    expect(w.fired).toBe(2);
  });

  it('an address already present at the first look fires (a gateway restarted on the master host)', () => {
    const { host, w, calls } = rig();
    host.add('198.18.1.1');
    w.look();
    expect(calls()).toBe(1);
  });

  it('a failed takeover re-arms after retryMs while the address stays', async () => {
    vi.useFakeTimers();
    const { host, w, calls } = rig(() => Promise.reject(new Error('claim refused')));
    host.add('198.18.1.1');
    w.look();
    await vi.advanceTimersByTimeAsync(0); // the rejection is seen
    w.look();
    expect(calls()).toBe(1); // not before retryMs
    await vi.advanceTimersByTimeAsync(1000);
    w.look();
    expect(calls()).toBe(2);
  });

  it('an interface list that cannot be read decides nothing', () => {
    let calls = 0;
    const w = new AddressWatch(['198.18.1.1'], async () => { calls++; }, { read: () => { throw new Error('EIO'); } });
    w.look();
    expect(calls).toBe(0);
  });

  it('reads this host\'s own addresses (loopback is one)', () => {
    expect(hostAddresses().has('127.0.0.1')).toBe(true);
  });
});
