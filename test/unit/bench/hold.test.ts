/**
 * The hold client (src/bench/hold.ts) on loopback: against an echo server it passes every
 * connection byte-exact; a server that corrupts one byte, closes early, or talks while the
 * connections are idle fails exactly those connections.
 */
import { describe, it, expect } from 'vitest';
import net from 'node:net';
import { once } from 'node:events';
import { startHold, holdPattern, holdStream, LINE } from '../../../src/bench/hold.js';

type Mode = 'echo' | 'corrupt' | 'close' | 'chatter';

/** A line echo server on 127.0.0.1; `mode` misbehaves on the connection whose first byte count reaches `at`. */
async function server(mode: Mode): Promise<{ port: number; close(): Promise<void> }> {
  let nth = 0;
  const socks = new Set<net.Socket>();
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => s.destroy());
    const me = nth++;
    let seen = 0;
    s.on('data', (b: Buffer) => {
      seen += b.length;
      const out = Buffer.from(b);
      if (mode === 'corrupt' && me === 3 && seen > LINE) out[0] = out[0]! ^ 1;
      if (mode === 'close' && me === 2 && seen > LINE) {
        s.destroy();
        return;
      }
      s.write(out);
      if (mode === 'chatter' && me === 1 && seen >= 2 * LINE) setTimeout(() => s.write('x'), 50);
    });
    s.on('end', () => s.end());
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of socks) s.destroy();
      srv.close();
      await once(srv, 'close');
    },
  };
}

async function run(mode: Mode) {
  const srv = await server(mode);
  try {
    const h = startHold({ host: '127.0.0.1', port: srv.port, connections: 8, bytes: 2 * LINE, finalBytes: LINE, concurrency: 3, openTimeoutMs: 5000, finishTimeoutMs: 5000, holdTimeoutMs: 5000 });
    const ready = await h.ready;
    await new Promise((r) => setTimeout(r, 150)); // idle: a chattering server speaks now
    h.release();
    return { ready, report: await h.report };
  } finally {
    await srv.close();
  }
}

describe('hold client', () => {
  it('streams are windows on one pattern: lines of LINE bytes, distinct per connection', () => {
    const p = holdPattern(1);
    const a = holdStream(p, 0, 0, 3 * LINE);
    const b = holdStream(p, 1, 0, 3 * LINE);
    expect(a.equals(b)).toBe(false);
    for (let i = 0; i < a.length; i++) expect(a[i] === 10).toBe(i % LINE === LINE - 1);
    // Contiguous: [0, 2L) then [2L, 3L) equals [0, 3L), across the pattern's wrap too.
    expect(Buffer.concat([holdStream(p, 0, 0, 2 * LINE), holdStream(p, 0, 2 * LINE, 3 * LINE)]).equals(a)).toBe(true);
    const far = holdStream(p, 7, p.length - LINE, p.length + LINE);
    expect(far.subarray(LINE).equals(holdStream(p, 7, p.length, p.length + LINE))).toBe(true);
  });

  it('an echo server: every connection ready, then byte-exact to the end', async () => {
    const { ready, report } = await run('echo');
    expect(ready.failed).toBe(0);
    expect(report.allOk).toBe(true);
    expect(report.ok).toBe(8);
    expect(report.bytesVerified).toBe(8 * 3 * LINE);
  });

  it('one corrupted byte fails that connection (DATA_MISMATCH), the others pass', async () => {
    const { report } = await run('corrupt');
    expect(report.failed).toBe(1);
    expect(report.errors[0]!.conn).toBe(3);
    expect(report.errorCodes).toEqual({ DATA_MISMATCH: 1 });
  });

  it('a connection closed by the server before its echo is complete fails', async () => {
    const { ready, report } = await run('close');
    expect(ready.failed).toBe(1);
    expect(report.failed).toBe(1);
    expect(report.ok).toBe(7);
  });

  it('data from the server while the connections are idle fails that connection', async () => {
    const { report } = await run('chatter');
    expect(report.errorCodes).toEqual({ UNEXPECTED_DATA: 1 });
    expect(report.errors[0]!.conn).toBe(1);
    expect(report.ok).toBe(7);
    expect(report.finishMs).toBeLessThan(4000); // the failed connection does not hold up the others
  });
});
