/**
 * The supervisor's pieces: the backoff schedule, /proc/net/tcp parsing and the LISTEN probe,
 * and the Supervisor class in process against a real oracle on loopback (normal exit, give-up
 * after --max-restarts, an unstartable command, SIGKILL after the stop timeout).
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, it, expect, afterEach } from 'vitest';
import { testLogger } from '../../support/test-logger.js';
import { Backoff, parseProcNetTcp, isListening, Supervisor, TCP_LISTEN, dyingAbnormally, type SupervisorOptions } from '../../../src/supervisor/supervisor.js';
import { LivenessOracle, type OracleEventName, type ServiceInfo } from '../../../src/supervisor/oracle.js';

const SERVER = fileURLToPath(new URL('./fixtures/server.mjs', import.meta.url));
const KEY = Buffer.from('supervisor-unit-test-key-0001');
const quiet = testLogger();

describe('Backoff', () => {
  it('100 ms doubling to 5 s', () => {
    const b = new Backoff();
    expect(Array.from({ length: 9 }, () => b.next(10))).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
  });

  it('resets after a run of 30 s or more, not before', () => {
    const b = new Backoff();
    b.next(10);
    b.next(10);
    expect(b.next(29_999)).toBe(400);
    expect(b.next(30_000)).toBe(100);
    expect(b.next(10)).toBe(200);
  });

  it('takes its parameters', () => {
    const b = new Backoff({ initialMs: 10, maxMs: 35, resetAfterMs: 50 });
    expect([b.next(0), b.next(0), b.next(0), b.next(0), b.next(60)]).toEqual([10, 20, 35, 35, 10]);
  });
});

/** A /proc/<pid>/stat line with the given state, flags (field 9) and exit code (field 52). */
function statLine(state: string, flags: number, exitCode: number): string {
  const f = Array.from({ length: 50 }, () => '0');
  f[0] = state; // field 3
  f[6] = String(flags); // field 9
  f[49] = String(exitCode); // field 52
  return `4242 (node server) ${f.join(' ')}\n`;
}

describe('dyingAbnormally (/proc/<pid>/stat)', () => {
  it('a running process is alive; a killed zombie is dead; a zombie that exited 0 is a stop', () => {
    expect(dyingAbnormally(statLine('S', 0x400040, 0))).toBe(false);
    expect(dyingAbnormally(statLine('Z', 0x400044, 9))).toBe(true);
    expect(dyingAbnormally(statLine('Z', 0x400044, 0))).toBe(false);
  });
  it('a process in do_exit() (PF_EXITING) with a non-zero exit code is dead before it is a zombie: its sockets are closing', () => {
    expect(dyingAbnormally(statLine('R', 0x400044, 9))).toBe(true);
    expect(dyingAbnormally(statLine('D', 0x400044, 1 << 8))).toBe(true);
    // exit(0) is a deliberate stop: its FINs are real.
    expect(dyingAbnormally(statLine('R', 0x400044, 0))).toBe(false);
  });
  it('reads a real stat line (a comm with spaces and parentheses)', () => {
    expect(dyingAbnormally('77 (a) b (c)) S 1 77 77 0 -1 4194560 ' + Array(43).fill('0').join(' ') + '\n')).toBe(false);
  });
});

describe('/proc/net/tcp', () => {
  const tcp4 = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 53699 1 0000000084148b49 100 0 0 10 0',
    '   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1604 1 00000000a3aa1b55 100 0 0 10 0',
    '   2: 0202A8C0:C350 0102A8C0:0016 01 00000000:00000000 00:00000000 00000000     0        0 1605 1 00000000a3aa1b55 100 0 0 10 0',
    'garbage line',
  ].join('\n');
  const tcp6 = [
    '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0',
    '   1: 0000000000000000FFFF00000202A8C0:0051 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0',
    '   2: 000080FE00000000FF005452120000FE:0052 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0',
  ].join('\n');

  it('parses IPv4 lines (little-endian host words), ports and states', () => {
    expect(parseProcNetTcp(tcp4, true)).toEqual([
      { localIp: '127.0.0.1', localPort: 8080, state: TCP_LISTEN },
      { localIp: '0.0.0.0', localPort: 2024, state: TCP_LISTEN },
      { localIp: '192.168.2.2', localPort: 50000, state: 1 },
    ]);
    expect(parseProcNetTcp(tcp4, false)[0]!.localIp).toBe('1.0.0.127');
  });

  it('parses IPv6: the wildcard, v4-mapped addresses, others as null', () => {
    expect(parseProcNetTcp(tcp6, true)).toEqual([
      { localIp: '::', localPort: 80, state: TCP_LISTEN },
      { localIp: '192.168.2.2', localPort: 81, state: TCP_LISTEN },
      { localIp: null, localPort: 82, state: TCP_LISTEN },
    ]);
  });

  it('isListening sees a real listener on this namespace, and not a closed port', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    try {
      expect(await isListening('127.0.0.1', port)).toBe(true);
      expect(await isListening('127.0.0.2', port)).toBe(false); // bound to another address
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
    expect(await isListening('127.0.0.1', port)).toBe(false);
  });
});

// ---- the Supervisor in process ------------------------------------------------------------

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

const oracles: LivenessOracle[] = [];
const sups: Supervisor[] = [];
afterEach(async () => {
  // stop() kills any program still running; then the sockets close
  await Promise.all(sups.splice(0).map((s) => s.stop('test cleanup')));
  await Promise.all(oracles.splice(0).map((o) => o.close()));
});

async function rig(args: string[], over: Partial<SupervisorOptions> = {}) {
  const oracle = await LivenessOracle.listen('127.0.0.1', 0, KEY, { heartbeatMs: 50, log: quiet });
  oracles.push(oracle);
  const port = await freePort();
  const service = `127.0.0.1:${port}`;
  const events: Array<[OracleEventName, ServiceInfo]> = [];
  for (const ev of ['alive', 'crashed', 'restarted', 'listening', 'stopping', 'stopped', 'silent'] as const) {
    oracle.on(ev, (_s, info) => events.push([ev, info]));
  }
  const sup = new Supervisor({
    gateway: { addr: '127.0.0.1', port: oracle.address().port },
    service,
    key: KEY,
    command: process.execPath,
    args: [SERVER, String(port), ...args],
    heartbeatMs: 50,
    stdio: 'ignore',
    log: quiet,
    ...over,
  });
  sups.push(sup);
  return { oracle, sup, service, port, events };
}

function waitFor<T>(fn: () => T | undefined | false, ms: number, what: string): Promise<T> {
  const until = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const poll = () => {
      const v = fn();
      if (v) return resolve(v);
      if (Date.now() > until) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(poll, 10);
    };
    poll();
  });
}

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

describe('Supervisor', () => {
  it('a program exiting 0 is a deliberate stop: stopped, run() resolves 0, no restart', async () => {
    const { sup, oracle, service, events } = await rig(['0', 'exit0']);
    const code = await sup.run();
    expect(code).toBe(0);
    await waitFor(() => oracle.state(service) === 'STOPPED', 1000, 'STOPPED');
    expect(events.map((e) => e[0])).toEqual(['alive', 'listening', 'stopped']);
    expect(oracle.counters.perType.crashed).toBe(0);
    expect(oracle.counters.perType.restarted).toBe(0);
    expect(oracle.verdict(service)).toBe('alive');
  });

  it('gives up after --max-restarts: crashed each time, generations 1..n+1, run() resolves 1', async () => {
    // the program exits 7 at once, every time
    const { sup, oracle, service } = await rig([], { args: ['-e', 'process.exit(7)'], maxRestarts: 2, backoff: { initialMs: 20 } });
    // (No bound on its duration: three node start-ups take seconds on a loaded machine; a
    // wrong backoff would show as the test's own timeout.)
    expect(await sup.run()).toBe(1);
    await waitFor(() => oracle.counters.perType.crashed === 3, 1000, '3 crashes');
    expect(oracle.counters.perType.restarted).toBe(2);
    expect(oracle.info(service)).toMatchObject({ state: 'CRASHED', verdict: 'dead', generation: 3, exitCode: 7 });
    // each crash was sent 3 times: the copies were deduped
    await waitFor(() => oracle.counters.duplicate >= 6, 1000, 'the repeated copies');
    expect(oracle.counters.duplicate).toBe(6); // 3 crashes × 2 extra copies, nothing else repeated
  });

  it('an unstartable command: crashed (127) and exit 1 without retrying', async () => {
    const { sup, oracle, service, events } = await rig([], { command: '/nonexistent/ftcp-no-such-program', args: [] });
    expect(await sup.run()).toBe(1);
    // The crash is the service's first notice: confirmed at the end of the anchoring window
    // (nothing superseded it), by when the supervisor, gone, is also silent.
    await waitFor(() => oracle.counters.confirmed === 1, 1000, 'the crash confirmed');
    expect(oracle.info(service)).toMatchObject({ verdict: 'dead', exitCode: 127, generation: 1 });
    expect(events.map((e) => e[0])).toContain('crashed');
    expect(oracle.counters.perType.restarted).toBe(0);
  });

  it('stop: a program ignoring SIGTERM is SIGKILLed after the stop timeout; stopping then stopped', async () => {
    const { sup, oracle, service, events } = await rig(['0', 'ignore-term'], { stopTimeoutMs: 300 });
    const done = sup.run();
    await waitFor(() => oracle.state(service) === 'LISTENING', 5000, 'LISTENING');
    const pid = oracle.info(service).pid!;
    expect(gone(pid)).toBe(false);
    const t0 = Date.now();
    await sup.stop('test');
    expect(await done).toBe(0);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(10_000); // killed, not waited for (it ignores SIGTERM for ever)
    expect(gone(pid)).toBe(true);
    await waitFor(() => oracle.state(service) === 'STOPPED', 1000, 'STOPPED');
    expect(events.map((e) => e[0])).toEqual(['alive', 'listening', 'stopping', 'stopped']);
    expect(events.at(-1)![1].signal).toBeUndefined(); // no crash was ever reported
  });

  it('heartbeats carry the generation and whether the program is alive and listening', async () => {
    const { sup, oracle, service } = await rig(['150']);
    void sup.run();
    await waitFor(() => oracle.state(service) === 'ALIVE', 3000, 'ALIVE');
    await waitFor(() => oracle.state(service) === 'LISTENING', 3000, 'LISTENING');
    const before = oracle.counters.perType.heartbeat;
    await waitFor(() => oracle.counters.perType.heartbeat >= before + 3, 2000, 'heartbeats');
    expect(oracle.info(service)).toMatchObject({ state: 'LISTENING', generation: 1 });
    expect(await oracle.waitVerdict(service, 1000)).toBe('alive');
  });
});

describe('Supervisor stop during backoff', () => {
  it('a stop while waiting to restart: no restart, stopping then stopped, exit 0', async () => {
    const { sup, oracle, service, events } = await rig([], { args: ['-e', 'process.exit(3)'], backoff: { initialMs: 10_000 } });
    const done = sup.run();
    await waitFor(() => oracle.state(service) === 'CRASHED', 5000, 'CRASHED');
    const t0 = Date.now();
    await sup.stop('test');
    expect(await done).toBe(0);
    expect(Date.now() - t0).toBeLessThan(8000); // not after the 10 s backoff
    await waitFor(() => oracle.state(service) === 'STOPPED', 1000, 'STOPPED');
    expect(events.map((e) => e[0])).toEqual(['alive', 'crashed', 'stopping', 'stopped']);
    expect(oracle.counters.perType.restarted).toBe(0);
  });
});
