import net from 'node:net';
import { describe, it, expect, afterEach } from 'vitest';
import { KvStore } from '../../../src/demo/kv.js';
import { KvScript } from '../../../src/demo/scripts.js';
import { startDemoServer, type DemoServer } from '../../../src/demo/server.js';
import { converse, readUntil } from './helpers.js';

/** Requests and the answers the brief specifies, written out by hand. */
const SCRIPT: Array<[string, string]> = [
  ['GET a', 'NIL'],
  ['SET a hello world', 'OK'],
  ['GET a', 'VALUE hello world'],
  ['INCR a', 'ERR not an integer'],
  ['GET a', 'VALUE hello world'],
  ['INCR n', 'INT 1'],
  ['INCR n', 'INT 2'],
  ['SET n -5', 'OK'],
  ['INCR n', 'INT -4'],
  ['SET big 9007199254740993', 'OK'],
  ['INCR big', 'INT 9007199254740994'],
  ['SET f 1.5', 'OK'],
  ['INCR f', 'ERR not an integer'],
  ['SET e ', 'OK'],
  ['GET e', 'VALUE '],
  ['INCR e', 'ERR not an integer'],
  ['DEL a', 'INT 1'],
  ['DEL a', 'INT 0'],
  ['GET a', 'NIL'],
  ['INCR a', 'INT 1'],
  ['GET a\r', 'VALUE 1'],
  ['get a', 'ERR unknown command'],
  ['GET', 'ERR unknown command'],
  ['GET a b', 'ERR unknown command'],
  ['SET a', 'ERR unknown command'],
  ['DEL', 'ERR unknown command'],
  ['INCR x y', 'ERR unknown command'],
  ['', 'ERR unknown command'],
  ['PING', 'ERR unknown command'],
  ['GET a', 'VALUE 1'],
];

describe('KvStore (the model)', () => {
  it('answers the hand-written script', () => {
    const kv = new KvStore();
    for (const [req, want] of SCRIPT) expect(kv.execute(req), req).toBe(want);
  });
});

describe('kv server', () => {
  let server: DemoServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('answers the hand-written script over TCP, one response line per request', async () => {
    server = await startDemoServer('kv', '127.0.0.1', 0);
    const out = await converse(server.port, SCRIPT.map(([r]) => r + '\n').join(''));
    expect(out.toString('utf8')).toBe(SCRIPT.map(([, w]) => w + '\n').join(''));
  });

  it('matches the model on generated scripts, sent in odd-sized pieces', async () => {
    server = await startDemoServer('kv', '127.0.0.1', 0);
    for (const conn of [0, 1, 2]) {
      const script = new KvScript(conn, String(100 + conn));
      const model = new KvStore();
      const reqs = Array.from({ length: 500 }, () => script.nextRequest());
      const expected = reqs.map((r) => model.execute(r) + '\n').join('');
      const input = Buffer.from(reqs.map((r) => r + '\n').join(''));
      const sock = net.connect({ host: '127.0.0.1', port: server.port, allowHalfOpen: true });
      await new Promise((r) => sock.once('connect', r));
      const chunks: Buffer[] = [];
      sock.on('data', (b: Buffer) => chunks.push(b));
      const ended = new Promise((r) => sock.once('end', r));
      for (let off = 0, step = 1; off < input.length; off += step, step = (step * 7) % 61 + 1) {
        sock.write(input.subarray(off, off + step));
      }
      sock.end();
      await ended;
      expect(Buffer.concat(chunks).toString('utf8')).toBe(expected);
    }
  });

  it('shares the store between connections', async () => {
    server = await startDemoServer('kv', '127.0.0.1', 0);
    expect((await converse(server.port, 'SET shared 41\n')).toString()).toBe('OK\n');
    expect((await converse(server.port, 'INCR shared\nGET shared\n')).toString()).toBe('INT 42\nVALUE 42\n');
  });

  it('starts empty in each server instance', async () => {
    server = await startDemoServer('kv', '127.0.0.1', 0);
    await converse(server.port, 'SET k v\n');
    await server.close();
    server = await startDemoServer('kv', '127.0.0.1', 0);
    expect((await converse(server.port, 'GET k\n')).toString()).toBe('NIL\n');
  });

  it('answers requests before the client half-closes (line by line)', async () => {
    server = await startDemoServer('kv', '127.0.0.1', 0);
    const sock = net.connect({ host: '127.0.0.1', port: server.port });
    await new Promise((r) => sock.once('connect', r));
    sock.write('SET x 1\n');
    expect(await readUntil(sock, '\n')).toBe('OK\n');
    sock.write('INCR x\n');
    expect(await readUntil(sock, '\n')).toBe('INT 2\n');
    sock.destroy();
  });
});
