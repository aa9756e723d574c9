/**
 * Hostile control-channel traffic leaves a trace an operator sees (issue 11, item 8): supervisor
 * notices with a wrong key, garbage, replays and notices of an older generation, and the
 * datagrams the kernel dropped at the oracle's socket in a flood; forged, garbage and replayed
 * log-link datagrams. All in /status (`authDrops`, `masking.notices`, `logLink`) and /metrics
 * (`ftcp_auth_drops_total{channel,reason}`). A real LivenessOracle on 127.0.0.1 and a RemoteLog
 * on a simulated link, in front of a Gateway on a FakeTun.
 */
import { describe, it, expect, afterEach } from 'vitest';
import dgram from 'node:dgram';
import type { Gateway } from '../../../src/gateway/gateway.js';
import { LivenessOracle } from '../../../src/supervisor/oracle.js';
import { LivenessTracker } from '../../../src/supervisor/liveness.js';
import { encodeNotice, type Notice } from '../../../src/supervisor/messages.js';
import { SimNetwork } from '../../../src/link/sim.js';
import { encodeFrame, blankFrame } from '../../../src/link/frame.js';
import { RemoteLog } from '../../../src/log/remote/client.js';
import { ManualLog } from '../../support/manual-log.js';
import { GatewayRig, SVC_NAME } from '../../support/gateway-harness.js';
import { testLogger } from '../../support/test-logger.js';
import type { LogStore } from '../../../src/log/types.js';
import type { LivenessSource } from '../../../src/recovery/verdict.js';

const KEY = Buffer.from('the-supervisors-key-0123456789ab');
const WRONG = Buffer.from('not-the-key-at-all-0123456789abc');
const SVC = SVC_NAME;
const silent = testLogger();

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function gateway(log: LogStore, oracle: LivenessSource | null): Gateway {
  // Nothing wired: these tests read the gateway's counters, no packet crosses it.
  return new GatewayRig({ log, wiring: 'none', manualClock: false, gateway: { oracle } }).gw;
}

function notice(o: Partial<Notice>, key = KEY): Buffer {
  return encodeNotice({ v: 1, type: 'heartbeat', service: SVC, boot: '0123456789abcdef', seq: 1, generation: 1, sentAt: Date.now(), alive: true, ...o }, key);
}

/** A real oracle on 127.0.0.1 in front of a gateway, and a socket to send it datagrams. */
async function oracleRig(): Promise<{ oracle: LivenessOracle; gw: Gateway; send: (b: Buffer) => Promise<void> }> {
  const oracle = await LivenessOracle.listen('127.0.0.1', 0, KEY, { services: [SVC], log: silent });
  cleanups.push(() => oracle.close());
  const gw = gateway(new ManualLog(), oracle);
  const tx = dgram.createSocket('udp4');
  cleanups.push(() => new Promise<void>((r) => tx.close(() => r())));
  const send = (b: Buffer) => new Promise<void>((r) => tx.send(b, oracle.address().port, '127.0.0.1', () => r()));
  return { oracle, gw, send };
}

/** The value of one sample line of the exposition, or undefined. */
function sample(metrics: string, line: string): number | undefined {
  const l = metrics.split('\n').find((x) => x.startsWith(line + ' '));
  return l === undefined ? undefined : Number(l.slice(line.length + 1));
}

describe('supervisor notices dropped, in /status and /metrics', () => {
  it('5,000 wrong-key notices sent at once: every one is counted, as forged or as lost in the socket', async () => {
    const { oracle, gw, send } = await oracleRig();
    // A burst (no yielding between sends): more than the socket buffer holds, as a flood would.
    await Promise.all(Array.from({ length: 5000 }, (_, i) => send(notice({ seq: i + 1 }, WRONG))));
    // until the oracle has read what the socket holds
    for (let i = 0; i < 200 && oracle.counters.received + oracle.counters.socketDrops < 5000; i++) await new Promise((r) => setTimeout(r, 10));
    const a = gw.authDrops().supervisor!;
    expect(a.forged! + a.socketDrops!).toBe(5000);
    expect(a.forged).toBeGreaterThan(0);
    const m = gw.metrics();
    expect(sample(m, 'ftcp_auth_drops_total{channel="supervisor",reason="forged"}')).toBe(a.forged);
    expect(sample(m, 'ftcp_auth_drops_total{channel="supervisor",reason="socket_drops"}')).toBe(a.socketDrops);
    expect(sample(m, 'ftcp_oracle_socket_drops_total')).toBe(a.socketDrops);
    expect((gw.snapshot().masking as { notices: Record<string, number> }).notices).toMatchObject({ forged: a.forged, accepted: 0 });
  });

  it('garbage, replays and older generations are counted by reason', async () => {
    const { oracle, gw, send } = await oracleRig();
    await send(notice({ seq: 10, generation: 3 })); // genuine
    await send(Buffer.from('GET / HTTP/1.1\r\n\r\n')); // garbage
    await send(notice({ seq: 5, generation: 3 })); // an old seq: replayed
    await send(notice({ seq: 11, generation: 2 })); // a later seq naming an older generation
    for (let i = 0; i < 200 && oracle.counters.received < 4; i++) await new Promise((r) => setTimeout(r, 10));
    expect(gw.authDrops().supervisor).toEqual({ forged: 0, malformed: 1, replayed: 1, badGeneration: 1, socketDrops: 0 });
    expect(oracle.counters.accepted).toBe(1);
    expect(oracle.info(SVC).generation).toBe(3); // the older generation changed nothing
    const m = gw.metrics();
    expect(sample(m, 'ftcp_auth_drops_total{channel="supervisor",reason="bad_generation"}')).toBe(1);
    expect(sample(m, 'ftcp_auth_drops_total{channel="supervisor",reason="malformed"}')).toBe(1);
  });

  it('the tracker drops a later seq of the same run that names an older generation', () => {
    const t = new LivenessTracker(KEY, { now: () => 0, services: [SVC] });
    expect(t.receive(notice({ seq: 1, generation: 4 }))).toBe('accepted');
    expect(t.receive(notice({ seq: 2, generation: 3, type: 'crashed', alive: false }))).toBe('bad-generation');
    expect(t.state(SVC)).not.toBe('CRASHED');
    expect(t.receive(notice({ seq: 3, generation: 4 }))).toBe('accepted');
    expect(t.receive(notice({ seq: 1, generation: 1, boot: 'fedcba9876543210', sentAt: Date.now() + 1 }))).toBe('accepted'); // a new run starts over
    expect(t.counters.badGeneration).toBe(1);
  });
});

describe('log link datagrams dropped, in /status and /metrics', () => {
  it('forged, garbage and replayed datagrams', async () => {
    const sim = new SimNetwork({ seed: 7 });
    const log = new RemoteLog({ manualClock: true });
    log.attach(sim.addEndpoint('a', { key: KEY, log: silent, ...log.handlers }));
    cleanups.push(() => log.shutdown());
    const gw = gateway(log, null);
    const f = { ...blankFrame(), srcBoot: 77, dstBoot: 0, pkt: 1, payload: Buffer.alloc(8) };
    sim.inject('a', 0, encodeFrame(WRONG, f)); // the wrong key
    sim.inject('a', 0, Buffer.from('garbage garbage garbage garbage garbage')); // not a frame
    const genuine = encodeFrame(KEY, f);
    sim.inject('a', 0, genuine);
    sim.inject('a', 0, genuine); // the same datagram again: a replay
    sim.run(10);
    const a = gw.authDrops().logLink!;
    expect(a.forged).toBe(1);
    expect(a.malformed).toBe(1);
    expect(a.replayed).toBe(1);
    const m = gw.metrics();
    expect(sample(m, 'ftcp_auth_drops_total{channel="log_link",reason="forged"}')).toBe(1);
    expect(sample(m, 'ftcp_auth_drops_total{channel="log_link",reason="replayed"}')).toBe(1);
    expect((gw.snapshot().authDrops as Record<string, unknown>).logLink).toEqual(a);
  });

  it('an embedded log has no link: no logLink channel', () => {
    const gw = gateway(new ManualLog(), null);
    expect(gw.authDrops()).toEqual({});
  });
});
