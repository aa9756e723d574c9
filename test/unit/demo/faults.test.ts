/**
 * Failure detection: faulty servers built here (each differs from a correct demo server in
 * one way) must make the client report the connection as failed, with a telling code.
 */
import { createHash } from 'node:crypto';
import type net from 'node:net';
import { describe, it, expect, afterEach } from 'vitest';
import { runDemoClient, type DemoClientOptions, type DemoClientReport } from '../../../src/demo/client.js';
import { CHUNK_BYTES, Keystream } from '../../../src/demo/keystream.js';
import { KvStore } from '../../../src/demo/kv.js';
import { LineSplitter } from '../../../src/demo/lines.js';
import { closedPort, rawServer } from './helpers.js';

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

async function against(onConn: (sock: net.Socket) => void, opts: Omit<DemoClientOptions, 'host' | 'port'>): Promise<DemoClientReport> {
  const srv = await rawServer(onConn);
  close = srv.close;
  return runDemoClient({ host: '127.0.0.1', port: srv.port, timeoutMs: 10_000, ...opts });
}

function expectFailed(r: DemoClientReport, code: string, conns = 1): void {
  expect(r.allOk).toBe(false);
  expect(r.ok).toBe(0);
  expect(r.failed).toBe(conns);
  expect(r.errors.map((e) => e.code)).toEqual(Array(conns).fill(code));
  for (const c of r.perConnection) {
    expect(c.ok).toBe(false);
    expect(c.error?.code).toBe(code);
  }
}

/** A download server that flips byte `corruptAt` (if given) and stops after `stopAt` bytes. */
function download(opts: { corruptAt?: number; stopAt?: number; extra?: number }) {
  return (sock: net.Socket) => {
    const sp = new LineSplitter();
    sock.on('data', (b: Buffer) =>
      sp.push(b, (line) => {
        const [, seed, n] = line.toString().split(' ');
        const total = Math.min(Number(n), opts.stopAt ?? Infinity);
        const data = new Keystream(seed!).next(total);
        if (opts.corruptAt !== undefined) data[opts.corruptAt]! ^= 0x01;
        sock.write(data);
        if (opts.extra) sock.write(Buffer.alloc(opts.extra));
        sock.end();
      }),
    );
  };
}

describe('client failure detection', () => {
  it('download: one corrupted byte is a DATA_MISMATCH at its offset', async () => {
    const at = CHUNK_BYTES + 4321;
    const r = await against(download({ corruptAt: at }), { kind: 'download', bytes: 2 * CHUNK_BYTES });
    expectFailed(r, 'DATA_MISMATCH');
    expect(r.errors[0]!.message).toContain(`byte ${at} `);
  });

  it('download: a server that closes early is an EARLY_EOF', async () => {
    const r = await against(download({ stopAt: 1000 }), { kind: 'download', bytes: 5000, connections: 2 });
    expectFailed(r, 'EARLY_EOF', 2);
    expect(r.perConnection.map((c) => c.bytesReceived)).toEqual([1000, 1000]);
  });

  it('download: bytes beyond the requested count are a LENGTH_MISMATCH', async () => {
    const r = await against(download({ extra: 1 }), { kind: 'download', bytes: 5000 });
    expectFailed(r, 'LENGTH_MISMATCH');
  });

  it('upload: a wrong digest is a DIGEST_MISMATCH, a wrong count a LENGTH_MISMATCH', async () => {
    const reply = (mutate: (hex: string, n: number) => string) => (sock: net.Socket) => {
      const h = createHash('sha256');
      let n = 0;
      sock.on('data', (b: Buffer) => (h.update(b), (n += b.length)));
      sock.on('end', () => sock.end(mutate(h.digest('hex'), n)));
    };
    const flip = (hex: string) => (hex[0] === '0' ? '1' : '0') + hex.slice(1);
    expectFailed(await against(reply((hex, n) => `${flip(hex)} ${n}\n`), { kind: 'upload', bytes: 100_000 }), 'DIGEST_MISMATCH');
    await close!();
    expectFailed(await against(reply((hex, n) => `${hex} ${n - 1}\n`), { kind: 'upload', bytes: 100_000 }), 'LENGTH_MISMATCH');
    await close!();
    expectFailed(await against(reply((hex, n) => `${hex} ${n}`), { kind: 'upload', bytes: 100_000 }), 'BAD_REPLY');
    await close!();
    // the correct server passes (so the checks above fail for the mutation, not the harness)
    const good = await against(reply((hex, n) => `${hex} ${n}\n`), { kind: 'upload', bytes: 100_000 });
    expect(good.allOk).toBe(true);
  });

  it('upload: a server that closes before the upload ends is detected', async () => {
    const r = await against((sock) => sock.once('data', () => sock.destroy()), { kind: 'upload', bytes: 64 * 1024 * 1024 });
    expect(r.allOk).toBe(false);
    expect(['ECONNRESET', 'EPIPE', 'EARLY_EOF']).toContain(r.errors[0]!.code);
    expect(r.perConnection[0]!.bytesSent).toBeLessThan(64 * 1024 * 1024);
  });

  it('echo: an altered line is a DATA_MISMATCH naming the response', async () => {
    let count = 0;
    const r = await against(
      (sock) => {
        const sp = new LineSplitter();
        sock.on('data', (b: Buffer) =>
          sp.push(b, (line) => {
            count += 1;
            const out = Buffer.concat([line, Buffer.from('\n')]);
            if (count === 37) out[0] = out[0] === 0x41 ? 0x42 : 0x41;
            sock.write(out);
          }),
        );
        sock.on('end', () => sock.end());
      },
      { kind: 'echo', lines: 100 },
    );
    expectFailed(r, 'DATA_MISMATCH');
    expect(r.errors[0]!.message).toContain('response 37:');
  });

  it('echo: a server that closes after some lines is an EARLY_EOF', async () => {
    const r = await against(
      (sock) => {
        const sp = new LineSplitter();
        let count = 0;
        sock.on('data', (b: Buffer) =>
          sp.push(b, (line) => {
            if (++count > 10) return void sock.end();
            sock.write(Buffer.concat([line, Buffer.from('\n')]));
          }),
        );
      },
      { kind: 'echo', lines: 100 },
    );
    expectFailed(r, 'EARLY_EOF');
    expect(r.errors[0]!.message).toContain('after 10 of 100');
  });

  it('kv: a server whose INCR is off by one is caught by the model', async () => {
    const r = await against(
      (sock) => {
        const store = new KvStore();
        const sp = new LineSplitter();
        sock.on('data', (b: Buffer) =>
          sp.push(b, (line) => {
            let resp = store.execute(line.toString());
            if (resp.startsWith('INT ') && line.toString().startsWith('INCR')) resp = `INT ${BigInt(resp.slice(4)) + 1n}`;
            sock.write(resp + '\n');
          }),
        );
        sock.on('end', () => sock.end());
      },
      { kind: 'kv', lines: 500, connections: 2 },
    );
    expectFailed(r, 'DATA_MISMATCH', 2);
    expect(r.errors[0]!.message).toMatch(/got "INT -?\d+", expected "INT -?\d+"/);
  });

  it('the run deadline fails every unfinished connection with TIMEOUT', async () => {
    const t0 = Date.now();
    const r = await against(() => {}, { kind: 'echo', lines: 10, connections: 3, timeoutMs: 300 });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(r.durationMs).toBeGreaterThanOrEqual(290);
    expectFailed(r, 'TIMEOUT', 3);
    for (const c of r.perConnection) expect(c.bytesReceived).toBe(0);
  });

  it('the deadline also ends a connection still receiving data', async () => {
    // a correct but slow download: 1 KiB every 20 ms
    const r = await against(
      (sock) => {
        const ks = new Keystream('1');
        const t = setInterval(() => sock.write(ks.next(1024)), 20);
        sock.on('close', () => clearInterval(t));
      },
      { kind: 'download', bytes: 10 * 1024 * 1024, timeoutMs: 400 },
    );
    expectFailed(r, 'TIMEOUT');
    expect(r.perConnection[0]!.bytesReceived).toBeGreaterThan(0);
    expect(r.perConnection[0]!.maxStallMs).toBeGreaterThan(5);
  });

  it('maxStallMs measures the longest pause between arrivals', async () => {
    // correct echo, but line 5's answer comes 300 ms late
    let count = 0;
    const r = await against(
      (sock) => {
        const sp = new LineSplitter();
        sock.on('data', (b: Buffer) =>
          sp.push(b, (line) => {
            const out = Buffer.concat([line, Buffer.from('\n')]);
            if (++count === 5) setTimeout(() => sock.write(out), 300);
            else sock.write(out);
          }),
        );
        sock.on('end', () => sock.end());
      },
      { kind: 'echo', lines: 4 },
    );
    expect(r.allOk).toBe(true);
    expect(r.perConnection[0]!.maxStallMs).toBeLessThan(250);
    await close!();
    count = 0;
    const slow = await against(
      (sock) => {
        const sp = new LineSplitter();
        const pending: Buffer[] = [];
        sock.on('data', (b: Buffer) =>
          sp.push(b, (line) => {
            const out = Buffer.concat([line, Buffer.from('\n')]);
            if (++count === 5) setTimeout(() => sock.write(Buffer.concat([out, ...pending.splice(0)])), 300);
            else if (count > 5 && count < 5 + 16) pending.push(out);
            else sock.write(out);
          }),
        );
        sock.on('end', () => sock.end());
      },
      { kind: 'echo', lines: 40 },
    );
    expect(slow.errors).toEqual([]);
    expect(slow.perConnection[0]!.maxStallMs).toBeGreaterThanOrEqual(280);
  });

  it('a refused connection is recorded with ECONNREFUSED', async () => {
    const port = await closedPort();
    const r = await runDemoClient({ kind: 'kv', host: '127.0.0.1', port, connections: 2, timeoutMs: 5000 });
    expectFailed(r, 'ECONNREFUSED', 2);
  });
});
