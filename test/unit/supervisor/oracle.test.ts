/**
 * LivenessOracle's socket and timers (the logic is in liveness.test.ts): datagrams over real
 * UDP, waitVerdict timing out on a real clock, silence noticed by the ticker, close().
 */
import dgram from 'node:dgram';
import { describe, it, expect, afterEach } from 'vitest';
import { testLogger } from '../../support/test-logger.js';
import { LivenessOracle } from '../../../src/supervisor/oracle.js';
import { encodeNotice, newBootId, type Notice, type NoticeType } from '../../../src/supervisor/messages.js';

const KEY = Buffer.from('oracle-socket-test-key-000000');
const SVC = '127.0.0.1:5001';
const quiet = testLogger();
const oracles: LivenessOracle[] = [];
const socks: dgram.Socket[] = [];
afterEach(async () => {
  await Promise.all(oracles.splice(0).map((o) => o.close()));
  for (const s of socks.splice(0)) s.close();
});

async function setup(opts = {}) {
  const o = await LivenessOracle.listen('127.0.0.1', 0, KEY, { log: quiet, ...opts });
  oracles.push(o);
  const sock = dgram.createSocket('udp4');
  socks.push(sock);
  const boot = newBootId();
  let seq = 0;
  const send = (type: NoticeType, extra: Partial<Notice> = {}, key = KEY) =>
    new Promise<void>((r) =>
      sock.send(encodeNotice({ v: 1, type, service: SVC, boot, seq: ++seq, generation: 1, sentAt: Date.now(), ...extra }, key), o.address().port, '127.0.0.1', () => r()),
    );
  return { o, send };
}

const until = async (fn: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('LivenessOracle', () => {
  it('binds, receives notices, counts forged ones and emits events', async () => {
    const { o, send } = await setup();
    expect(o.address().port).toBeGreaterThan(0);
    const got: string[] = [];
    o.on('listening', (s, i) => got.push(`${s} ${i.state}`));
    await send('listening');
    await send('crashed', {}, Buffer.from('the-wrong-key-for-this-oracle'));
    await until(() => o.counters.received === 2, 2000);
    expect(got).toEqual([`${SVC} LISTENING`]);
    expect(o.counters).toMatchObject({ received: 2, accepted: 1, forged: 1 });
    expect(o.verdict(SVC)).toBe('alive');
  });

  it('waitVerdict: decided by the next heartbeat, else times out on the real clock', async () => {
    const { o, send } = await setup({ heartbeatMs: 1000 });
    await send('listening');
    await until(() => o.state(SVC) === 'LISTENING', 2000);
    const p = o.waitVerdict(SVC, 5000);
    const t0 = Date.now();
    await send('heartbeat', { alive: true, listening: true });
    expect(await p).toBe('alive');
    expect(Date.now() - t0).toBeLessThan(1000);
    const t1 = Date.now();
    expect(await o.waitVerdict(SVC, 80)).toBe('alive'); // fresh, but nothing came: the verdict at the timeout
    expect(Date.now() - t1).toBeGreaterThanOrEqual(75);
    const t2 = Date.now();
    expect(await o.waitVerdict('10.1.1.1:1', 60)).toBe('unknown');
    expect(Date.now() - t2).toBeGreaterThanOrEqual(55);
  });

  it('silence is noticed by the ticker: a silent event without any call', async () => {
    const { o, send } = await setup({ silenceMs: 100 });
    const silent = new Promise<number>((r) => o.on('silent', () => r(Date.now())));
    await send('listening');
    const t0 = Date.now();
    const at = await silent;
    expect(at - t0).toBeGreaterThanOrEqual(95);
    expect(at - t0).toBeLessThan(1000);
    expect(o.verdict(SVC)).toBe('dead');
  });

  it('a recorded crash replayed to a just-started oracle is superseded by the live heartbeat (same and previous generation)', async () => {
    for (const crashedGeneration of [2, 1]) {
      const { o, send } = await setup({ heartbeatMs: 50 });
      const events: string[] = [];
      for (const ev of ['crashed', 'listening', 'restarted', 'silent'] as const) o.on(ev, () => events.push(ev));
      // recorded a minute ago from this very supervisor run (seq 1); the live run is at generation 2
      await send('crashed', { generation: crashedGeneration, signal: 'SIGKILL', sentAt: Date.now() - 60_000 });
      await until(() => o.state(SVC) === 'SUSPECT', 2000);
      await send('heartbeat', { generation: 2, alive: true, listening: true, seq: 500 });
      await until(() => o.state(SVC) === 'LISTENING', 2000);
      for (let i = 0; i < 6; i++) {
        await new Promise((r) => setTimeout(r, 50));
        await send('heartbeat', { generation: 2, alive: true, listening: true, seq: 501 + i });
      }
      expect(o.state(SVC)).toBe('LISTENING');
      expect(events).toEqual(['listening']);
      expect(o.counters).toMatchObject({ superseded: 1, confirmed: 0 });
    }
  });

  it('close() resolves pending waiters and is idempotent', async () => {
    const { o } = await setup();
    const p = o.waitVerdict(SVC, 60_000);
    await o.close();
    await o.close();
    expect(await p).toBe('unknown');
  });

  it('a taken port is a clear FtcpError', async () => {
    const { o } = await setup();
    await expect(LivenessOracle.listen('127.0.0.1', o.address().port, KEY, { log: quiet })).rejects.toThrow(/cannot bind 127\.0\.0\.1:\d+/);
  });
});
