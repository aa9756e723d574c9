import { createHash } from 'node:crypto';
import net from 'node:net';
import { describe, it, expect, afterEach } from 'vitest';
import { runDemoClient, type DemoClientReport } from '../../../src/demo/client.js';
import { Keystream, keystreamSha256 } from '../../../src/demo/keystream.js';
import { startDemoServer, DETERMINISTIC_KINDS, type DemoKind, type DemoServer } from '../../../src/demo/server.js';
import { converse } from './helpers.js';

let server: DemoServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function roundTrip(kind: DemoKind, opts: { connections?: number; bytes?: number; lines?: number; seed?: number } = {}) {
  server = await startDemoServer(kind, '127.0.0.1', 0);
  const report = await runDemoClient({ kind, host: '127.0.0.1', port: server.port, timeoutMs: 15_000, ...opts });
  return report;
}

function expectAllOk(r: DemoClientReport, n: number): void {
  expect(r.errors).toEqual([]);
  expect(r.connections).toBe(n);
  expect(r.ok).toBe(n);
  expect(r.failed).toBe(0);
  expect(r.allOk).toBe(true);
  expect(r.perConnection.map((c) => c.conn)).toEqual([...Array(n).keys()]);
  for (const c of r.perConnection) {
    expect(c.ok).toBe(true);
    expect(c.error).toBeUndefined();
    expect(c.sentSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(c.recvSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(c.maxStallMs).toBeGreaterThanOrEqual(0);
  }
  expect(r.bytesSent).toBe(r.perConnection.reduce((a, c) => a + c.bytesSent, 0));
  expect(r.bytesReceived).toBe(r.perConnection.reduce((a, c) => a + c.bytesReceived, 0));
  expect(r.durationMs).toBeGreaterThan(0);
  // Rounded to 0.01 Mb/s: a 0-byte download's request line over a slow (loaded) second is 0.00.
  expect(r.throughputMbps).toBeGreaterThanOrEqual(0);
  if (r.bytesSent + r.bytesReceived >= 1_000_000) expect(r.throughputMbps).toBeGreaterThan(0);
}

describe('demo server + client, each kind in-process', () => {
  it('upload: the server digest matches, and equals the digest of the seed stream', async () => {
    const bytes = 3 * 256 * 1024 + 12345;
    const r = await roundTrip('upload', { connections: 3, bytes, seed: 40 });
    expectAllOk(r, 3);
    for (const c of r.perConnection) {
      expect(c.bytesSent).toBe(bytes);
      expect(c.sentSha256).toBe(keystreamSha256(String(40 + c.conn), bytes));
      const reply = `${c.sentSha256} ${bytes}\n`;
      expect(c.bytesReceived).toBe(reply.length);
      expect(c.recvSha256).toBe(createHash('sha256').update(reply).digest('hex'));
    }
    expect(r.kind).toBe('upload');
  });

  it('download: exactly the requested stream arrives on every connection', async () => {
    const bytes = 2 * 1024 * 1024 + 3;
    const r = await roundTrip('download', { connections: 4, bytes, seed: 7 });
    expectAllOk(r, 4);
    for (const c of r.perConnection) {
      expect(c.bytesReceived).toBe(bytes);
      expect(c.recvSha256).toBe(keystreamSha256(String(7 + c.conn), bytes));
      const request = `GET ${7 + c.conn} ${bytes}\n`;
      expect(c.bytesSent).toBe(request.length);
      expect(c.sentSha256).toBe(createHash('sha256').update(request).digest('hex'));
    }
    expect(new Set(r.perConnection.map((c) => c.recvSha256)).size).toBe(4);
  });

  it('download of 0 bytes and upload of 0 bytes', async () => {
    expectAllOk(await roundTrip('download', { bytes: 0 }), 1);
    await server!.close();
    const r = await roundTrip('upload', { bytes: 0 });
    expectAllOk(r, 1);
    expect(r.perConnection[0]!.bytesReceived).toBe(`${createHash('sha256').digest('hex')} 0\n`.length);
  });

  it('echo: every response equals its request; both directions hash alike', async () => {
    const r = await roundTrip('echo', { connections: 3, lines: 3000 });
    expectAllOk(r, 3);
    for (const c of r.perConnection) {
      expect(c.bytesSent).toBeGreaterThan(3000 * 2);
      expect(c.bytesReceived).toBe(c.bytesSent);
      expect(c.recvSha256).toBe(c.sentSha256);
    }
  });

  it('kv: every response matches the model; reruns against the same store still pass', async () => {
    const r = await roundTrip('kv', { connections: 4, lines: 2000, seed: 3 });
    expectAllOk(r, 4);
    const again = await runDemoClient({ kind: 'kv', host: '127.0.0.1', port: server!.port, connections: 4, lines: 2000, seed: 3 });
    expectAllOk(again, 4);
    expect(again.perConnection.map((c) => c.recvSha256)).toEqual(r.perConnection.map((c) => c.recvSha256));
  });

  it('the same seed gives the same bytes on every run (determinism; random.test.ts has the others)', async () => {
    for (const kind of DETERMINISTIC_KINDS) {
      const a = await roundTrip(kind, { connections: 2, bytes: 100_000, lines: 300, seed: 9 });
      await server!.close();
      const b = await roundTrip(kind, { connections: 2, bytes: 100_000, lines: 300, seed: 9 });
      await server!.close();
      const c = await roundTrip(kind, { connections: 2, bytes: 100_000, lines: 300, seed: 10 });
      expectAllOk(a, 2);
      expect(b.perConnection.map((x) => [x.sentSha256, x.recvSha256])).toEqual(a.perConnection.map((x) => [x.sentSha256, x.recvSha256]));
      // seed 10's connection 0 is seed 9's connection 1 (kv keys also name the connection)
      if (kind === 'kv') expect(c.perConnection[0]!.sentSha256).not.toBe(a.perConnection[1]!.sentSha256);
      else expect(c.perConnection[0]!.sentSha256).toBe(a.perConnection[1]!.sentSha256);
      expect(c.perConnection[0]!.sentSha256).not.toBe(a.perConnection[0]!.sentSha256);
      await server!.close();
    }
  });

  it('download honours backpressure: a slow reader still gets every byte', async () => {
    server = await startDemoServer('download', '127.0.0.1', 0);
    const bytes = 8 * 1024 * 1024;
    const sock = net.connect({ host: '127.0.0.1', port: server.port });
    await new Promise((r) => sock.once('connect', r));
    sock.write(`GET slow ${bytes}\n`);
    sock.pause();
    await new Promise((r) => setTimeout(r, 200));
    const h = createHash('sha256');
    let got = 0;
    sock.on('data', (b: Buffer) => {
      h.update(b);
      got += b.length;
    });
    sock.resume();
    await new Promise((r) => sock.once('end', r));
    sock.destroy();
    expect(got).toBe(bytes);
    expect(h.digest('hex')).toBe(keystreamSha256('slow', bytes));
  });

  it('download stops producing while the client does not read (bounded memory)', async () => {
    server = await startDemoServer('download', '127.0.0.1', 0);
    const sock = net.connect({ host: '127.0.0.1', port: server.port });
    await new Promise((r) => sock.once('connect', r));
    sock.pause();
    const before = process.memoryUsage().arrayBuffers;
    sock.write(`GET big ${2 ** 30}\n`);
    await new Promise((r) => setTimeout(r, 500)); // unbounded, the server would queue hundreds of MiB by now
    const grown = process.memoryUsage().arrayBuffers - before;
    sock.destroy();
    expect(grown).toBeLessThan(64 * 1024 * 1024);
  });

  it('download answers a malformed request with an error line', async () => {
    server = await startDemoServer('download', '127.0.0.1', 0);
    expect((await converse(server.port, 'GET x\n')).toString()).toBe('ERR bad request\n');
    expect((await converse(server.port, 'PUT 1 2\n')).toString()).toBe('ERR bad request\n');
    expect((await converse(server.port, 'GET a 99999999999999999\n')).toString()).toBe('ERR bad request\n');
    expect((await converse(server.port, 'GET 1 5')).toString()).toBe('ERR bad request\n'); // FIN before the newline
    expect((await converse(server.port, 'GET 1 5\nextra')).equals(new Keystream('1').next(5))).toBe(true);
  });

  it('echo drops an unterminated last line and closes after the client', async () => {
    server = await startDemoServer('echo', '127.0.0.1', 0);
    expect((await converse(server.port, 'one\ntwo\nthr')).toString()).toBe('one\ntwo\n');
  });

  it('close() ends open connections, including a download in progress', async () => {
    server = await startDemoServer('download', '127.0.0.1', 0);
    const port = server.port;
    const sock = net.connect({ host: '127.0.0.1', port });
    await new Promise((r) => sock.once('connect', r));
    sock.write('GET 1 100000000000\n');
    let got = 0;
    sock.on('data', (b: Buffer) => (got += b.length));
    await new Promise((r) => setTimeout(r, 50));
    const closedAt = Date.now();
    const ended = new Promise((r) => sock.once('close', r));
    await server.close();
    await ended;
    expect(Date.now() - closedAt).toBeLessThan(2500);
    expect(got).toBeGreaterThan(0);
    expect(server.connections).toBe(0);
    await expect(converse(port, 'x')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
