/**
 * `ftcp inspect` on a real capture (root): a network namespace of our own, tcpdump on its
 * loopback, and short TCP exchanges between node one-liners.
 *
 *   ftcp-<hex> (netns, lo up)
 *     node server 127.0.0.1:5001  <── upload UP bytes, half-close ── node client
 *                                 ── DOWN bytes, close ──────────▶
 *     node server 127.0.0.1:5002  <── 1000 bytes ── client; the server answers with a RST
 *     tcpdump -i lo -w full.pcap  (and -s 96 -w cut.pcap: header-only records)
 *
 * The inspected byte counts must equal what the programs sent and received.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspectCapture, formatInspect, type InspectReport } from '../../src/inspect/inspect.js';

const exec = promisify(execFile);
const NS = `ftcp-${randomBytes(3).toString('hex')}`;
const UP = 300_000;
const DOWN = 123_457;

const SERVER = `
const net = require('net');
const [port, down] = process.argv.slice(1).map(Number);
const srv = net.createServer((s) => {
  let got = 0;
  s.on('data', (d) => { got += d.length; });
  s.on('end', () => s.end(Buffer.alloc(down, 0x62), () => { console.log('got ' + got); srv.close(); }));
});
srv.listen(port, '127.0.0.1', () => console.log('listening'));`;

const CLIENT = `
const net = require('net');
const [port, up] = process.argv.slice(1).map(Number);
const s = net.connect(port, '127.0.0.1', () => s.end(Buffer.alloc(up, 0x61)));
let got = 0;
s.on('data', (d) => { got += d.length; });
s.on('close', () => console.log('got ' + got));`;

const RESET_SERVER = `
const net = require('net');
const srv = net.createServer((s) => { s.once('data', (d) => { console.log('got ' + d.length); s.resetAndDestroy(); srv.close(); }); });
srv.listen(5002, '127.0.0.1', () => console.log('listening'));`;

const RESET_CLIENT = `
const net = require('net');
const s = net.connect(5002, '127.0.0.1', () => s.write(Buffer.alloc(1000, 0x63)));
s.on('error', (e) => console.log(e.code));
s.on('close', () => console.log('closed'));`;

const procs: ChildProcess[] = [];
let dir = '';

/** Starts `cmd` in the namespace; resolves when a line of its output matches `ready`. */
function startIn(args: string[], ready: RegExp, stream: 'stdout' | 'stderr' = 'stdout'): Promise<{ p: ChildProcess; out: () => string }> {
  const p = spawn('ip', ['netns', 'exec', NS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(p);
  let out = '';
  let err = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args[0]} not ready in 10 s: ${out} ${err}`)), 10_000);
    const check = (): void => {
      if (ready.test(stream === 'stdout' ? out : err)) {
        clearTimeout(timer);
        resolve({ p, out: () => out });
      }
    };
    p.stdout!.on('data', check);
    p.stderr!.on('data', check);
    p.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args[0]} exited (${code}) before ready: ${out} ${err}`));
    });
  });
}

function exited(p: ChildProcess, ms = 10_000): Promise<number | null> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`process ${p.pid} still running after ${ms} ms`)), ms);
    p.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

async function runIn(script: string, ...args: string[]): Promise<string> {
  const r = await exec('ip', ['netns', 'exec', NS, process.execPath, '-e', script, '--', ...args], { timeout: 20_000 });
  return r.stdout;
}

let full: InspectReport;
let cut: InspectReport;
let serverGot = 0;
let clientGot = 0;
let resetServerGot = 0;

describe('ftcp inspect on a real capture (lab)', () => {
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ftcp-inspect-'));
    await exec('ip', ['netns', 'add', NS]);
    await exec('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);
    const tcpdump = (file: string, snap: string) =>
      // -B: a 32 MiB capture buffer. With the default 2 MiB, a tcpdump starved by a loaded machine
      // lost the server's FIN of a 64 KiB-segment loopback exchange (CI's lab run beside the unit suite).
      startIn(['tcpdump', '-i', 'lo', '-n', '--immediate-mode', '-U', '-B', '32768', '-s', snap, '-w', file, 'tcp or icmp'], /listening on/, 'stderr');
    const dumpFull = await tcpdump(path.join(dir, 'full.pcap'), '0');
    const dumpCut = await tcpdump(path.join(dir, 'cut.pcap'), '96');

    const srv = await startIn([process.execPath, '-e', SERVER, '--', '5001', String(DOWN)], /listening/);
    clientGot = Number(/got (\d+)/.exec(await runIn(CLIENT, '5001', String(UP)))![1]);
    await exited(srv.p);
    serverGot = Number(/got (\d+)/.exec(srv.out())![1]);

    const rsrv = await startIn([process.execPath, '-e', RESET_SERVER], /listening/);
    const rc = await runIn(RESET_CLIENT);
    expect(rc).toMatch(/ECONNRESET/);
    await exited(rsrv.p);
    resetServerGot = Number(/got (\d+)/.exec(rsrv.out())![1]);

    // Let the last packets reach the files, then stop tcpdump (it flushes on SIGINT).
    await new Promise((r) => setTimeout(r, 300));
    for (const d of [dumpFull, dumpCut]) {
      d.p.kill('SIGINT');
      await exited(d.p);
    }
    full = inspectCapture(await readFile(path.join(dir, 'full.pcap')));
    cut = inspectCapture(await readFile(path.join(dir, 'cut.pcap')));
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await exec('ip', ['netns', 'del', NS]).catch(() => {});
    if (dir) await rm(dir, { recursive: true, force: true });
    const { stdout } = await exec('ip', ['netns', 'list']);
    expect(stdout).not.toContain(NS);
  });

  it('the programs moved the bytes they meant to', () => {
    expect(serverGot).toBe(UP);
    expect(clientGot).toBe(DOWN);
  });

  it('counts exactly the bytes the programs sent, each way, and says ok for the clean exchange', () => {
    const conns = full.connections.filter((c) => c.server.port === 5001);
    expect(conns).toHaveLength(1);
    const c = conns[0]!;
    expect(c.client.ip).toBe('127.0.0.1');
    expect(c.seen).toMatchObject({ syn: true, synAck: true, finFromClient: true, finFromServer: true, rstFromClient: false, rstFromServer: false });
    expect(c.c2s.bytes).toBe(serverGot);
    expect(c.s2c.bytes).toBe(clientGot);
    expect(c.c2s.gaps).toEqual([]);
    expect(c.s2c.gaps).toEqual([]);
    expect(c.c2s.ackedByPeer).toBe(UP + 1);
    expect(c.verdict).toBe('ok');
  });

  it('sees the RST of the server that reset, after the bytes it received', () => {
    const conns = full.connections.filter((c) => c.server.port === 5002);
    expect(conns).toHaveLength(1);
    const c = conns[0]!;
    expect(c.seen.rstFromServer).toBe(true);
    expect(c.c2s.bytes).toBe(1000);
    expect(resetServerGot).toBe(1000);
    expect(c.verdict).toBe('reset');
    expect(formatInspect(full)).toMatch(/127\.0\.0\.1:\d+ -> 127\.0\.0\.1:5002: RESET RST from the server/);
  });

  it('gives the same counts from a header-only capture (snap length 96)', () => {
    expect(cut.truncated).toBeGreaterThan(0);
    expect(cut.malformed).toBe(0);
    const byPort = (r: InspectReport) =>
      r.connections.map((c) => [c.server.port, c.c2s.bytes, c.s2c.bytes, c.c2s.retransmissions, c.s2c.retransmissions, c.verdict]);
    expect(byPort(cut)).toEqual(byPort(full));
    const c = cut.connections.find((x) => x.server.port === 5001)!;
    expect(c.c2s.truncatedSegments + c.s2c.truncatedSegments).toBeGreaterThan(0);
  });
});
