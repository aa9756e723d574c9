/**
 * The demo programs' additions for the drill scenarios of issue 10: the `stall` protocol and
 * server (stops reading while its output is blocked), the client's progress and reading
 * control (zero window on demand), and the idle connections.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DemoClientControl, runDemoClient, type DemoProgress } from '../../../src/demo/client.js';
import { startDemoServer, type DemoServer } from '../../../src/demo/server.js';
import { StallScript, stallAnswer, STALL_MAX_REPLY } from '../../../src/demo/stall.js';

let server: DemoServer | undefined;
afterEach(async () => {
  await server?.close(500);
  server = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('stall protocol', () => {
  it('answers the payload repeated and cut to n characters', () => {
    expect(stallAnswer(Buffer.from('Q 5 ab')).toString()).toBe('R ababa\n');
    expect(stallAnswer(Buffer.from('Q 3 a b c d')).toString()).toBe('R a b\n');
    expect(stallAnswer(Buffer.from('Q 1 xyz\r')).toString()).toBe('R x\n');
    expect(stallAnswer(Buffer.from(`Q ${STALL_MAX_REPLY} z`)).length).toBe(STALL_MAX_REPLY + 3);
  });

  it('refuses malformed requests with ERR', () => {
    for (const bad of ['', 'Q', 'Q 5', 'Q 5 ', 'Q 0 a', `Q ${STALL_MAX_REPLY + 1} a`, 'q 5 a', 'Q -1 a', 'Q 5a b', 'x'.repeat(2000)]) {
      expect(stallAnswer(Buffer.from(bad)).toString(), bad.slice(0, 20)).toBe('ERR bad request\n');
    }
  });

  it('scripts ~100 B requests with replies of 0.5-4.5 KB, the same for a seed', () => {
    const a = new StallScript('9');
    const b = new StallScript('9');
    let req = 0;
    for (let i = 0; i < 200; i++) {
      const x = a.next();
      expect(x.request.equals(b.next().request)).toBe(true);
      expect(x.response.length - 3).toBeGreaterThanOrEqual(512);
      expect(x.response.length - 3).toBeLessThan(512 + 4096);
      req += x.request.length;
    }
    expect(req / 200).toBeGreaterThan(70);
    expect(req / 200).toBeLessThan(160);
    expect(new StallScript('10').next().request.equals(new StallScript('9').next().request)).toBe(false);
  });
});

describe('stall server and client', () => {
  it('every reply arrives and checks, over several connections', async () => {
    server = await startDemoServer('stall', '127.0.0.1', 0);
    const r = await runDemoClient({ kind: 'stall', host: '127.0.0.1', port: server.port, connections: 3, lines: 600, seed: 5, timeoutMs: 20_000 });
    expect(r.errors).toEqual([]);
    expect(r.ok).toBe(3);
    expect(r.bytesReceived).toBeGreaterThan(3 * 600 * 512);
  });

  it('stops reading while its output is blocked: a client that never reads cannot hand over its requests', async () => {
    server = await startDemoServer('stall', '127.0.0.1', 0);
    const one = Buffer.from(`Q 200 ${'x'.repeat(90)}\n`);
    const all = Buffer.alloc(one.length * 200_000); // ~20 MB of requests asking ~40 MB of replies
    for (let i = 0; i < 200_000; i++) one.copy(all, i * one.length);
    const sock = net.connect({ host: '127.0.0.1', port: server.port });
    await new Promise((r) => sock.once('connect', r));
    sock.pause();
    sock.write(all);
    await sleep(500);
    const left = sock.writableLength;
    await sleep(500);
    // Had the server read on, the kernel would have taken every request; it stopped once
    // the kernel's buffers were full, so most of them still wait in the client's own buffer.
    expect(left).toBeGreaterThan(all.length / 4);
    expect(sock.writableLength).toBe(left);
    sock.destroy();
  });

  it('one request, one reply', async () => {
    server = await startDemoServer('stall', '127.0.0.1', 0);
    const r = await runDemoClient({ kind: 'stall', host: '127.0.0.1', port: server.port, connections: 1, lines: 1, seed: 2, timeoutMs: 5_000 });
    expect(r.errors).toEqual([]);
  });
});

describe('client control and progress', () => {
  it('download: progress in bytes; pauseReading stops it (zero window), resumeReading lets it finish', async () => {
    server = await startDemoServer('download', '127.0.0.1', 0);
    const control = new DemoClientControl();
    const bytes = 64 * 1024 * 1024;
    const run = runDemoClient({ kind: 'download', host: '127.0.0.1', port: server.port, bytes, seed: 3, timeoutMs: 30_000, control });
    let p: DemoProgress;
    for (;;) {
      p = control.progress();
      if (p.done > 1_000_000) break;
      await sleep(2);
    }
    control.pauseReading();
    expect(control.progress().paused).toBe(true);
    await sleep(200);
    const a = control.progress().done;
    await sleep(300);
    const b = control.progress();
    expect(b.done).toBe(a);
    expect(b.done).toBeLessThan(bytes);
    expect(b.unit).toBe('bytes');
    expect(b.total).toBe(bytes);
    control.resumeReading();
    const r = await run;
    expect(r.errors).toEqual([]);
    expect(control.progress()).toMatchObject({ done: bytes, total: bytes, finished: 1, failed: 0, paused: false });
  });

  it('echo with idleMs: the even connections go quiet halfway, the odd ones pace; all byte-exact', async () => {
    server = await startDemoServer('echo', '127.0.0.1', 0);
    const control = new DemoClientControl();
    const t0 = Date.now();
    const run = runDemoClient({ kind: 'echo', host: '127.0.0.1', port: server.port, connections: 4, lines: 40, seed: 8, idleMs: 400, timeoutMs: 20_000, control });
    let maxIdle = 0;
    let sawBothIdle = false;
    let activeWhileIdle = false;
    let doneAtIdle = -1;
    for (let i = 0; i < 400 && control.progress().finished < 4; i++) {
      const p = control.progress();
      expect(p.idleConns).toBe(2);
      if (p.idleNow === 2) {
        sawBothIdle = true;
        maxIdle = Math.max(maxIdle, p.idleForMs);
        if (doneAtIdle < 0) doneAtIdle = p.done;
        else if (p.done > doneAtIdle) activeWhileIdle = true;
      }
      await sleep(10);
    }
    const r = await run;
    expect(r.errors).toEqual([]);
    expect(sawBothIdle).toBe(true);
    expect(maxIdle).toBeGreaterThanOrEqual(300);
    expect(activeWhileIdle).toBe(true); // the paced connections carried on
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    expect(control.progress()).toMatchObject({ done: 160, total: 160, idleNow: 0, unit: 'responses' });
  });

  it('idleMs is refused for the stream kinds', async () => {
    await expect(runDemoClient({ kind: 'download', host: '127.0.0.1', port: 9, idleMs: 5 })).rejects.toThrow(/idleMs applies to echo and kv/);
  });
});
