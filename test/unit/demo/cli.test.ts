/**
 * The CLI end to end: builds dist/ (tsc emits even when files outside src/demo have type
 * errors), spawns `node bin/ftcp.js demo-server`, runs `demo-client --json` against it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it, expect, beforeAll, afterEach } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { keystreamSha256 } from '../../../src/demo/keystream.js';
import { parseIntFlag as parseCount, parseSizeFlag } from '../../../src/cli/args.js';
import { ensureBuilt } from '../../support/build.js';
import { runCli as runCliIn } from '../../support/cli.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = `${ROOT}bin/ftcp.js`;

beforeAll(() => {
  ensureBuilt();
  for (const f of ['cli/main.js', 'cli/commands/demo-server.js', 'cli/commands/demo-client.js', 'demo/client.js']) {
    expect(existsSync(`${ROOT}dist/${f}`), `dist/${f} built`).toBe(true);
  }
}, 120_000);

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function runCli(args: string[], timeoutMs = 15_000) {
  return runCliIn(args, timeoutMs, children);
}

/** Spawns a demo server on an ephemeral port and resolves with its listening line. */
function startServer(kind: string): Promise<{ child: ChildProcess; line: { listening: string; kind: string; pid: number } }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'demo-server', '--kind', kind, '--listen', '127.0.0.1:0', '--json'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, line: JSON.parse(out.slice(0, nl)) });
    });
    child.on('exit', (code) => reject(new Error(`demo-server exited ${code} before listening`)));
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.on('exit', (code) => resolve(code));
  });
}

describe('ftcp demo-server / demo-client CLI', () => {
  it('serves download and upload; the client --json report checks out; SIGTERM exits 0', async () => {
    for (const kind of ['download', 'upload']) {
      const { child, line } = await startServer(kind);
      expect(line.kind).toBe(kind);
      expect(line.pid).toBe(child.pid);
      expect(line.listening).toMatch(/^127\.0\.0\.1:\d+$/);
      const res = await runCli(['demo-client', '--kind', kind, '--connect', line.listening, '--connections', '2', '--bytes', '3M', '--seed', '20', '--json']);
      expect(res.code, res.stderr).toBe(0);
      const report = JSON.parse(res.stdout);
      expect(report).toMatchObject({ kind, connections: 2, ok: 2, failed: 0, allOk: true, errors: [] });
      expect(typeof report.durationMs).toBe('number');
      expect(typeof report.throughputMbps).toBe('number');
      const digest = kind === 'download' ? 'recvSha256' : 'sentSha256';
      expect(report.perConnection.map((c: Record<string, unknown>) => c[digest])).toEqual([
        keystreamSha256('20', 3 * 2 ** 20),
        keystreamSha256('21', 3 * 2 ** 20),
      ]);
      for (const c of report.perConnection) expect(Object.keys(c).sort()).toEqual(
        ['bytesReceived', 'bytesSent', 'conn', 'maxStallMs', 'ok', 'recvSha256', 'sentSha256'],
      );
      child.kill('SIGTERM');
      expect(await exited(child)).toBe(0);
    }
  });

  it('SIGINT with a connection open closes it and exits 0', async () => {
    const { child, line } = await startServer('echo');
    const [host, port] = line.listening.split(':');
    const net = await import('node:net');
    const sock = net.connect({ host: host!, port: Number(port) });
    await new Promise((r) => sock.once('connect', r));
    const closed = new Promise((r) => sock.once('close', r));
    sock.on('error', () => {});
    sock.on('data', () => {});
    child.kill('SIGINT');
    expect(await exited(child)).toBe(0);
    await closed;
  });

  it('the client exits 1 and reports the failure when the server is not there', async () => {
    const { child, line } = await startServer('kv');
    child.kill('SIGTERM');
    await exited(child);
    const res = await runCli(['demo-client', '--kind', 'kv', '--connect', line.listening, '--json']);
    expect(res.code).toBe(1);
    const report = JSON.parse(res.stdout);
    expect(report).toMatchObject({ ok: 0, failed: 1, allOk: false });
    expect(report.errors[0].code).toBe('ECONNREFUSED');
    expect(report.perConnection[0].error.code).toBe('ECONNREFUSED');
  });

  it('a port in use is an error (exit 1), not a hang', async () => {
    const net = await import('node:net');
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as import('node:net').AddressInfo).port;
    try {
      const res = await runCli(['demo-server', '--kind', 'echo', '--listen', `127.0.0.1:${port}`]);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain('EADDRINUSE');
      expect(res.stdout).toBe('');
    } finally {
      holder.close();
    }
  });

  it('bad input exits 2 (spawned)', async () => {
    const res = await runCli(['demo-client', '--kind', 'nope', '--connect', '127.0.0.1:1']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('--kind');
  });

  it('bad input exits 2 (in-process, each flag)', async () => {
    const bad: string[][] = [
      ['demo-server'],
      ['demo-server', '--kind', 'echo'],
      ['demo-server', '--kind', 'ftp', '--listen', '127.0.0.1:0'],
      ['demo-server', '--kind', 'echo', '--listen', 'localhost:80'],
      ['demo-server', '--kind', 'echo', '--listen', '127.0.0.1:70000'],
      ['demo-server', '--kind', 'echo', '--listen', '127.0.0.1:1', '--bogus'],
      ['demo-client', '--connect', '127.0.0.1:1'],
      ['demo-client', '--kind', 'echo'],
      ['demo-client', '--kind', 'echo', '--connect', '300.0.0.1:1'],
      ['demo-client', '--kind', 'echo', '--connect', '127.0.0.1:1', '--connections', '0'],
      ['demo-client', '--kind', 'echo', '--connect', '127.0.0.1:1', '--connections', 'many'],
      ['demo-client', '--kind', 'upload', '--connect', '127.0.0.1:1', '--bytes', '-5'],
      ['demo-client', '--kind', 'upload', '--connect', '127.0.0.1:1', '--bytes', '10X'],
      ['demo-client', '--kind', 'echo', '--connect', '127.0.0.1:1', '--lines', '1.5'],
      ['demo-client', '--kind', 'echo', '--connect', '127.0.0.1:1', '--seed', 'abc'],
      ['demo-client', '--kind', 'echo', '--connect', '127.0.0.1:1', '--timeout-ms', '0'],
      ['demo-client', '--kind', 'echo', '--connect', '127.0.0.1:1', 'extra-positional'],
    ];
    const write = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      for (const argv of bad) expect(await main(argv), argv.join(' ')).toBe(2);
    } finally {
      process.stderr.write = write;
    }
  });

  it('demo-client --progress-ms --control: progress lines on stderr; pause/resume on stdin stop and resume reading', async () => {
    const { line } = await startServer('download');
    const child = spawn(process.execPath, [BIN, 'demo-client', '--kind', 'download', '--connect', line.listening, '--bytes', '200M', '--json', '--progress-ms', '10', '--control'], {
      cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b));
    const progress: Array<{ done: number; total: number; paused: boolean; unit: string }> = [];
    let buf = '';
    child.stderr!.on('data', (b: Buffer) => {
      buf += b;
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) progress.push(JSON.parse(l).progress);
    });
    const until = async (pred: () => boolean) => {
      for (let i = 0; i < 1000 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(pred()).toBe(true);
    };
    await until(() => progress.some((p) => p.done > 1_000_000));
    child.stdin!.write('pause\n');
    await until(() => progress.at(-1)!.paused);
    await new Promise((r) => setTimeout(r, 400));
    const a = progress.at(-1)!.done;
    await new Promise((r) => setTimeout(r, 300));
    expect(progress.at(-1)!.done).toBe(a);
    expect(a).toBeLessThan(200 * 2 ** 20);
    child.stdin!.write('resume\n');
    expect(await exited(child)).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ kind: 'download', ok: 1, allOk: true });
    expect(progress.at(-1)).toMatchObject({ unit: 'bytes', done: 200 * 2 ** 20, total: 200 * 2 ** 20, paused: false, finished: 1 });
  }, 30_000);

  it('parses sizes and counts', () => {
    const parseSize = (v: string | undefined, flag: string, dflt: number) => parseSizeFlag(v, flag, { dflt, min: 0, max: 2 ** 40 });
    expect(parseSize(undefined, '--bytes', 7)).toBe(7);
    expect(parseSize('0', '--bytes', 7)).toBe(0);
    expect(parseSize('1048576', '--bytes', 7)).toBe(2 ** 20);
    expect(parseSize('64K', '--bytes', 7)).toBe(65536);
    expect(parseSize('3m', '--bytes', 7)).toBe(3 * 2 ** 20);
    expect(parseSize('1G', '--bytes', 7)).toBe(2 ** 30);
    expect(parseSize('2GiB', '--bytes', 7)).toBe(2 ** 31);
    expect(() => parseSize('1.5G', '--bytes', 7)).toThrow(/--bytes/);
    expect(parseCount('12', '--lines', 1, 0, 100)).toBe(12);
    expect(() => parseCount('101', '--lines', 1, 0, 100)).toThrow(/0\.\.100/);
  });
});
