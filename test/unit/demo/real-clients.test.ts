/**
 * `ftcp real-client`'s checks (src/demo/real-clients.ts) against small in-process stand-ins for
 * memcached and an HTTP file server on loopback: a faithful one passes, and each way a real
 * server or a broken recovery can go wrong (a changed byte, an early FIN, an RST, a hang, a
 * wrong body, a bad status, Connection: close, bytes after the end) fails with its own code and
 * a message saying how far the connection got. The real servers run in test/lab/real-servers.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemcachedScript, runRealClient, writeHttpTree, type HttpFile } from '../../../src/demo/real-clients.js';
import { main } from '../../../src/cli/main.js';

const servers: net.Server[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

interface Faults {
  /** Flip a byte of the n-th reply (0-based, over the connection). */
  corruptReply?: number;
  /** After this many replies: 'fin' closes, 'rst' resets, 'hang' stops answering, 'extra' adds a stray line. */
  after?: number;
  then?: 'fin' | 'rst' | 'hang' | 'extra';
}

/** A memcached stand-in: `set <k> <flags> <exp> <n>` + data, `get <k>`, exactly memcached's replies. */
async function fakeMemcached(f: Faults = {}): Promise<number> {
  const store = new Map<string, { flags: string; data: Buffer }>();
  const srv = net.createServer({ allowHalfOpen: true }, (sock) => {
    let buf = Buffer.alloc(0);
    let replies = 0;
    let stopped = false;
    sock.on('error', () => {});
    sock.on('end', () => sock.end());
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const out: Buffer[] = [];
      for (;;) {
        if (stopped) return;
        const eol = buf.indexOf('\r\n');
        if (eol < 0) break;
        const parts = buf.subarray(0, eol).toString('latin1').split(' ');
        let reply: Buffer;
        if (parts[0] === 'set') {
          const n = Number(parts[4]);
          if (buf.length < eol + 2 + n + 2) break;
          store.set(parts[1]!, { flags: parts[2]!, data: Buffer.from(buf.subarray(eol + 2, eol + 2 + n)) });
          buf = buf.subarray(eol + 2 + n + 2);
          reply = Buffer.from('STORED\r\n');
        } else {
          buf = buf.subarray(eol + 2);
          const v = store.get(parts[1]!);
          reply = v === undefined ? Buffer.from('END\r\n')
            : Buffer.concat([Buffer.from(`VALUE ${parts[1]} ${v.flags} ${v.data.length}\r\n`), v.data, Buffer.from('\r\nEND\r\n')]);
        }
        if (replies === f.corruptReply) {
          reply = Buffer.from(reply);
          reply[reply.length - 3]! ^= 0x20;
        }
        out.push(reply);
        replies++;
        if (replies === f.after) {
          stopped = true;
          sock.write(Buffer.concat(out));
          if (f.then === 'fin') sock.end();
          if (f.then === 'rst') sock.resetAndDestroy();
          if (f.then === 'extra') sock.write('STORED\r\n');
          return;
        }
      }
      if (out.length > 0) sock.write(Buffer.concat(out));
    });
  });
  return listen(srv);
}

async function listen(srv: net.Server): Promise<number> {
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return (srv.address() as net.AddressInfo).port;
}

const mc = (port: number, ops: number, extra: { connections?: number; timeoutMs?: number } = {}) =>
  runRealClient({ kind: 'memcached', host: '127.0.0.1', port, ops, connections: extra.connections ?? 1, timeoutMs: extra.timeoutMs ?? 10_000 });

describe('real-client --kind memcached', () => {
  it('passes against a faithful server: every operation answered and checked, then a clean close', async () => {
    const port = await fakeMemcached();
    const r = await mc(port, 3000, { connections: 4 });
    expect(r.errors).toEqual([]);
    expect(r.allOk).toBe(true);
    expect(r.ops).toBe(12_000);
    expect(r.of).toBe(12_000);
  });

  it('the script is deterministic, keeps to its own keys, and mixes stores, hits and misses', () => {
    const a = new MemcachedScript('5');
    const b = new MemcachedScript('5');
    const kinds = { set: 0, hit: 0, miss: 0 };
    for (let i = 0; i < 2000; i++) {
      const x = a.next();
      const y = b.next();
      expect(x.request.equals(y.request)).toBe(true);
      expect(x.reply.equals(y.reply)).toBe(true);
      const head = x.request.subarray(0, x.request.indexOf('\r\n')).toString('latin1');
      expect(head.split(' ')[1]).toMatch(/^s5-/);
      if (head.startsWith('set')) kinds.set++;
      else if (x.reply.toString('latin1') === 'END\r\n') kinds.miss++;
      else kinds.hit++;
    }
    expect(kinds.set).toBeGreaterThan(500);
    expect(kinds.hit).toBeGreaterThan(500);
    expect(kinds.miss).toBeGreaterThan(50);
    expect(new MemcachedScript('6').next().request.equals(new MemcachedScript('5').next().request)).toBe(false);
  });

  it('a changed byte in a reply is DATA_MISMATCH naming the operation', async () => {
    const port = await fakeMemcached({ corruptReply: 100 });
    const r = await mc(port, 500);
    expect(r.allOk).toBe(false);
    expect(r.errors[0]!.code).toBe('DATA_MISMATCH');
    expect(r.errors[0]!.message).toMatch(/^operation 101 of 500: byte \d+ of the answer differs/);
  });

  it("the server's FIN before the last answer is EARLY_EOF with how far it got", async () => {
    const port = await fakeMemcached({ after: 200, then: 'fin' });
    const r = await mc(port, 500);
    expect(r.errors).toEqual([{ conn: 0, code: 'EARLY_EOF', message: 'the server closed (FIN) after 200 of 500 answers' }]);
  });

  it('an RST is ECONNRESET', async () => {
    const port = await fakeMemcached({ after: 200, then: 'rst' });
    const r = await mc(port, 500);
    expect(r.errors[0]!.code).toBe('ECONNRESET');
    expect(r.errors[0]!.message).toMatch(/connection reset \(RST\) after 200 of 500 answers/);
  });

  it('a hang is TIMEOUT at the deadline, with the time since the last byte', async () => {
    const port = await fakeMemcached({ after: 200, then: 'hang' });
    const r = await mc(port, 500, { timeoutMs: 1500 });
    expect(r.errors[0]!.code).toBe('TIMEOUT');
    expect(r.errors[0]!.message).toMatch(/\(hang\): 200 of 500 answers checked, waiting for answers; nothing received for \d+ ms/);
  });

  it('bytes after the last expected answer are UNEXPECTED_DATA', async () => {
    const port = await fakeMemcached({ after: 500, then: 'extra' });
    const r = await mc(port, 500);
    expect(r.errors[0]!.code).toBe('UNEXPECTED_DATA');
  });
});

interface HttpFaults {
  status?: string;
  closeHeader?: boolean;
  /** Change one byte of this path's body. */
  corrupt?: string;
}

/** A keep-alive HTTP/1.1 file server stand-in over `files` (served from `root`). */
async function fakeHttp(root: string, f: HttpFaults = {}): Promise<number> {
  const srv = net.createServer({ allowHalfOpen: true }, (sock) => {
    let buf = '';
    let chain = Promise.resolve();
    sock.on('error', () => {});
    sock.on('end', () => { void chain.then(() => sock.end()); });
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const p = buf.slice(4, buf.indexOf(' HTTP/1.1'));
        buf = buf.slice(end + 4);
        chain = chain.then(async () => {
          const body = Buffer.from(await readFile(path.join(root, p)));
          if (p === f.corrupt) body[body.length >> 1]! ^= 1;
          sock.write(`HTTP/1.1 ${f.status ?? '200 OK'}\r\nContent-Length: ${body.length}\r\nDate: Sat, 05 Dec 2026 08:00:00 GMT\r\n${f.closeHeader ? 'Connection: close\r\n' : ''}\r\n`);
          sock.write(body);
        });
      }
    });
  });
  return listen(srv);
}

async function tree(): Promise<{ root: string; files: HttpFile[] }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ftcp-real-unit-'));
  dirs.push(dir);
  const root = path.join(dir, 'www');
  return { root, files: await writeHttpTree(root, { seed: 3, bigBytes: 3 << 20, smallFiles: 40 }) };
}

const http = (port: number, files: HttpFile[], window = 1) =>
  runRealClient({ kind: 'http', host: '127.0.0.1', port, files, window, timeoutMs: 10_000 });

describe('real-client --kind http', () => {
  it('writes a deterministic tree whose manifest matches the files', async () => {
    const { root, files } = await tree();
    expect(files).toHaveLength(41);
    expect(files[0]).toMatchObject({ path: '/big.bin', size: 3 << 20 });
    for (const f of files.slice(1)) expect(f.size).toBeGreaterThanOrEqual(1024), expect(f.size).toBeLessThanOrEqual(20 * 1024);
    for (const f of [files[0]!, files[7]!]) {
      expect(createHash('sha256').update(await readFile(path.join(root, f.path))).digest('hex')).toBe(f.sha256);
    }
    const again = await writeHttpTree(path.join(root, '..', 'again'), { seed: 3, bigBytes: 3 << 20, smallFiles: 40 });
    expect(again).toEqual(files);
  });

  it('fetches every file over one keep-alive connection, one at a time and pipelined', async () => {
    const { root, files } = await tree();
    const port = await fakeHttp(root);
    for (const w of [1, 8]) {
      const r = await http(port, files, w);
      expect(r.errors).toEqual([]);
      expect(r.ops).toBe(41);
      expect(r.bytesReceived).toBeGreaterThan(files.reduce((a, f) => a + f.size, 0));
    }
  });

  it('a changed body byte is DIGEST_MISMATCH naming the file', async () => {
    const { root, files } = await tree();
    const port = await fakeHttp(root, { corrupt: files[5]!.path });
    const r = await http(port, files);
    expect(r.errors[0]!.code).toBe('DIGEST_MISMATCH');
    expect(r.errors[0]!.message).toContain(`${files[5]!.path} (answer 6)`);
  });

  it('a status other than 200 and a Connection: close fail the connection', async () => {
    const { root, files } = await tree();
    const r1 = await http(await fakeHttp(root, { status: '404 Not Found' }), files);
    expect(r1.errors[0]!.code).toBe('HTTP_STATUS');
    const r2 = await http(await fakeHttp(root, { closeHeader: true }), files);
    expect(r2.errors[0]!.code).toBe('BAD_REPLY');
    expect(r2.errors[0]!.message).toMatch(/Connection: close/);
  });
});

describe('ftcp real-client usage errors (exit 2, naming the flag)', () => {
  const run = async (args: string[]) => {
    let err = '';
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => { err += s; return true; }) as typeof process.stderr.write;
    try {
      return { code: await main(['real-client', ...args]), err };
    } finally {
      process.stderr.write = orig;
    }
  };
  it.each([
    [['--kind', 'redis', '--connect', '127.0.0.1:1'], /--kind: expected one of memcached, http/],
    [['--kind', 'http', '--connect', '127.0.0.1:1'], /--manifest is required/],
    [['--kind', 'memcached', '--connect', '127.0.0.1:1', '--ops=-1'], /--ops: expected an integer/],
    [['--kind', 'memcached', '--connect', '127.0.0.1:1', '--window', '0'], /--window: expected an integer in 1..65536/],
    [['--kind', 'memcached', '--connect', 'nope'], /--connect: expected <ipv4>:<port>/],
    [['--kind', 'memcached', '--write-files', '/tmp/x'], /--write-files: only with --kind http/],
    [['--kind', 'http', '--connect', '127.0.0.1:1', '--manifest', '/nonexistent/m.json'], /--manifest: cannot read/],
  ])('%j', async (args, re) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(re);
  });
});
