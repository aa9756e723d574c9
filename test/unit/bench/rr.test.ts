/** The ping-pong client against the real demo echo server on loopback, and against broken servers. */
import net from 'node:net';
import { describe, it, expect, afterEach } from 'vitest';
import { requestBytes, runRoundTrips } from '../../../src/bench/rr.js';
import { startDemoServer, type DemoServer } from '../../../src/demo/server.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** A TCP server on 127.0.0.1 whose per-connection behaviour is `onData`. */
async function rawServer(onData: (sock: net.Socket, b: Buffer, state: { n: number }) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((sock) => {
    sockets.add(sock);
    const state = { n: 0 };
    sock.on('data', (b) => onData(sock, b, state));
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => { for (const s of sockets) s.destroy(); srv.close(() => r()); }));
  return (srv.address() as net.AddressInfo).port;
}

describe('requestBytes', () => {
  it('is size bytes: the zero-padded sequence number, then a newline', () => {
    expect(requestBytes(42, 8).toString('latin1')).toBe('0000042\n');
    expect(requestBytes(0, 2).toString('latin1')).toBe('0\n');
    expect(requestBytes(123456, 4).toString('latin1')).toBe('456\n');
    expect(requestBytes(7, 32)).toHaveLength(32);
  });
});

describe('runRoundTrips', () => {
  it('measures the requested number of round trips against the demo echo server', async () => {
    const srv: DemoServer = await startDemoServer('echo', '127.0.0.1', 0);
    closers.push(() => srv.close());
    const r = await runRoundTrips({ host: '127.0.0.1', port: srv.port, roundTrips: 300, warmup: 20, size: 32, timeoutMs: 20_000 });
    expect(r.count).toBe(300);
    expect(r.roundTrips).toBe(300);
    expect(r.size).toBe(32);
    expect(r.minUs).toBeGreaterThan(0);
    expect(r.minUs).toBeLessThanOrEqual(r.p50Us);
    expect(r.p50Us).toBeLessThanOrEqual(r.p90Us);
    expect(r.p90Us).toBeLessThanOrEqual(r.p99Us);
    expect(r.p99Us).toBeLessThanOrEqual(r.maxUs);
    // The recorded round trips happen one after another within the recorded duration.
    expect(r.meanUs * r.count).toBeLessThanOrEqual(r.durationMs * 1000 + 1);
  });

  it('keeps strictly one request outstanding', async () => {
    let maxOutstanding = 0;
    const port = await rawServer((sock, b, st) => {
      st.n += b.length;
      maxOutstanding = Math.max(maxOutstanding, st.n / 16);
      // answer after a short delay, as a slow server would; the client must wait for it
      setTimeout(() => { st.n -= b.length; sock.write(b); }, 3);
    });
    const r = await runRoundTrips({ host: '127.0.0.1', port, roundTrips: 30, warmup: 0, size: 16, timeoutMs: 10_000 });
    expect(r.count).toBe(30);
    expect(maxOutstanding).toBe(1);
    // the 3 ms delay is inside every sample (libuv timers may fire up to ~1 ms early)
    expect(r.minUs).toBeGreaterThanOrEqual(1500);
  });

  it('fails on an echo that differs from the request', async () => {
    const port = await rawServer((sock, b, st) => {
      st.n++;
      const out = Buffer.from(b);
      if (st.n === 5) out[0] = 0x41;
      sock.write(out);
    });
    await expect(runRoundTrips({ host: '127.0.0.1', port, roundTrips: 10, warmup: 0, size: 32 }))
      .rejects.toMatchObject({ code: 'FTCP_RR_MISMATCH' });
  });

  it('fails when more bytes arrive than the request had', async () => {
    const port = await rawServer((sock, b) => sock.write(Buffer.concat([b, b])));
    await expect(runRoundTrips({ host: '127.0.0.1', port, roundTrips: 10, warmup: 0, size: 32 }))
      .rejects.toMatchObject({ code: 'FTCP_RR_PROTOCOL' });
  });

  it('fails when the server closes early, and on its deadline when the server is silent', async () => {
    const closing = await rawServer((sock, b, st) => {
      if (++st.n === 3) sock.end();
      else sock.write(b);
    });
    await expect(runRoundTrips({ host: '127.0.0.1', port: closing, roundTrips: 10, warmup: 0 }))
      .rejects.toMatchObject({ code: 'FTCP_RR_CLOSED' });
    const silent = await rawServer(() => {});
    await expect(runRoundTrips({ host: '127.0.0.1', port: silent, roundTrips: 10, warmup: 0, timeoutMs: 200 }))
      .rejects.toMatchObject({ code: 'FTCP_RR_TIMEOUT' });
  });

  it('rejects bad options', () => {
    expect(() => runRoundTrips({ host: '127.0.0.1', port: 1, size: 1 })).toThrow(RangeError);
    expect(() => runRoundTrips({ host: '127.0.0.1', port: 1, roundTrips: 0 })).toThrow(RangeError);
  });
});
