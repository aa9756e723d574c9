/**
 * `ftcp logserver` end to end on loopback: a disk log server process, a RemoteLog in this
 * process; bytes become stable, the server is killed (-9) and started again on the same
 * store, and the connection re-registers and completes byte-exact. Plus usage errors.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectUdp } from '../../../src/log/remote/client.js';
import { ensureBuilt } from '../../support/build.js';
import { runCli } from '../../support/cli.js';
import { openMeta, streamBytes, waitFor } from './helpers.js';

const BIN = fileURLToPath(new URL('../../../bin/ftcp.js', import.meta.url));
const procs: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGKILL');
      await once(p, 'exit');
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

beforeAll(() => ensureBuilt(), 120_000);

async function startServer(dir: string, port: number, keyFile: string): Promise<ChildProcess> {
  const ready = join(dir, 'ready');
  rmSync(ready, { force: true });
  const p = spawn(process.execPath, [BIN, 'logserver', '--listen', `127.0.0.1:${port},127.0.0.1:${port + 1}`, '--store', `disk:${join(dir, 'store')}`, '--key-file', keyFile, '--ready-file', ready], { stdio: 'ignore' });
  procs.push(p);
  await waitFor(() => existsSync(ready) && readFileSync(ready, 'utf8').endsWith('\n'), 10_000, 'logserver ready');
  return p;
}

describe('ftcp logserver', () => {
  it('usage errors exit 2', async () => {
    expect((await runCli(['logserver'])).code).toBe(2);
    expect((await runCli(['logserver', '--listen', '127.0.0.1:1', '--store', 'tape'])).code).toBe(2);
    expect((await runCli(['logserver', '--listen', '127.0.0.1:1,127.0.0.1:2,127.0.0.1:3'])).code).toBe(2);
    expect((await runCli(['logserver', '--listen', '127.0.0.1:1', '--max-bytes', 'lots'])).code).toBe(2);
    const m = await runCli(['logserver', '--listen', '127.0.0.1:1', '--metrics', '127.0.0.1:99999']);
    expect(m.code).toBe(2);
    expect(m.stderr).toMatch(/--metrics: port out of range/);
    const h = await runCli(['logserver', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/--max-bytes-per-conn/);
  });

  it('negative and unbounded numbers are usage errors naming the flag', async () => {
    for (const [flag, v] of [['--max-bytes', '-5'], ['--max-bytes-per-conn', '-1M'], ['--low-space-pct', '-5'], ['--low-space-pct', 'Infinity'], ['--max-bytes', '1e308']] as const) {
      // --store tape: were the number accepted, the command would still stop (at --store), not serve.
      const r = await runCli(['logserver', '--listen', '127.0.0.1:1', flag, v, '--store', 'tape'], 10_000);
      expect(r.code, `${flag} ${v}`).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^ftcp logserver: ${flag}: expected .* got '${v}'`, 'm'));
    }
  });

  it('a store directory that cannot be created exits 1 at once', async () => {
    // Node's recursive mkdir spun at 100 % CPU for ever on ENOENT under /proc.
    const t0 = Date.now();
    const r = await runCli(['logserver', '--listen', '127.0.0.1:1', '--store', 'disk:/proc/nope/x'], 10_000);
    expect(r.code).toBe(1);
    expect(Date.now() - t0).toBeLessThan(8_000);
    expect(r.stderr).toMatch(/ftcp logserver: log directory \/proc\/nope\/x cannot be created: ENOENT.*mkdir '\/proc\/nope'/);
    expect(existsSync('/proc/nope')).toBe(false);
    // The gateway's embedded disk log goes through the same store (it fails before the TUN).
    const g = await runCli(['gateway', '--tun', 'ftcpnope0', '--protect', '127.0.0.1:9', '--log', 'embedded:disk:/proc/nope/x'], 10_000);
    expect(g.code).toBe(1);
    expect(g.stderr).toMatch(/ftcp gateway: log directory \/proc\/nope\/x cannot be created/);
    // A file in the way: ENOTDIR, also at once.
    const dir = mkdtempSync(join(tmpdir(), 'ftcp-logsrv-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'file'), 'x');
    const f = await runCli(['logserver', '--listen', '127.0.0.1:1', '--store', `disk:${join(dir, 'file', 'store')}`], 10_000);
    expect(f.code).toBe(1);
    expect(f.stderr).toMatch(/cannot be created: ENOTDIR/);
  });

  it('a failed start leaves no store it created', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ftcp-logsrv-'));
    dirs.push(dir);
    // The address is taken: the store is made, then listening fails.
    const taken = createSocket('udp4');
    taken.bind(0, '127.0.0.1');
    await once(taken, 'listening');
    try {
      const r = await runCli(['logserver', '--listen', `127.0.0.1:${taken.address().port}`, '--store', `disk:${join(dir, 'new', 'store')}`], 10_000);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/EADDRINUSE/);
      expect(existsSync(join(dir, 'new'))).toBe(false);
    } finally {
      taken.close();
    }
  });

  it('a key file others can read is refused like ssh does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ftcp-logsrv-'));
    dirs.push(dir);
    const keyFile = join(dir, 'key');
    writeFileSync(keyFile, 'ab'.repeat(32) + '\n', { mode: 0o600 });
    chmodSync(keyFile, 0o644);
    const r = await runCli(['logserver', '--listen', '127.0.0.1:1', '--key-file', keyFile], 10_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ftcp logserver: key file '${keyFile}' has mode 0644`);
    expect(r.stderr).toContain(`chmod 600 '${keyFile}'`);
    // Not a regular file: refused at once (reading /dev/zero never ends).
    const z = await runCli(['logserver', '--listen', '127.0.0.1:1', '--key-file', '/dev/zero'], 10_000);
    expect(z.code).toBe(1);
    expect(z.stderr).toMatch(/key file '\/dev\/zero': is a character device, not a regular file/);
  });

  it('kill -9 and restart on the same disk store loses nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ftcp-logsrv-'));
    dirs.push(dir);
    const keyFile = join(dir, 'key');
    writeFileSync(keyFile, 'ab'.repeat(32) + '\n', { mode: 0o600 }); // key files must be private (loadKey)
    const port = 20000 + (process.pid % 20000);
    let srv = await startServer(dir, port, keyFile);
    const log = connectUdp({
      key: Buffer.from('ab'.repeat(32), 'hex'),
      servers: [{ address: '127.0.0.1', port }, { address: '127.0.0.1', port: port + 1 }],
      local: [{ address: '127.0.0.1', port: 0 }, { address: '127.0.0.1', port: 0 }],
    });
    try {
      let stable = 0;
      log.onStable((_id, s) => (stable = s));
      const id = await log.open(openMeta());
      const data = streamBytes(77, 0, 3_000_000);
      for (let o = 0; o < 1_000_000; o += 1448) log.append(id, o, data.subarray(o, Math.min(o + 1448, 1_000_000)));
      await waitFor(() => stable >= 1_000_000, 10_000, 'first MB stable');
      srv.kill('SIGKILL');
      await once(srv, 'exit');
      for (let o = 1_000_000; o < data.length; o += 1448) log.append(id, o, data.subarray(o, Math.min(o + 1448, data.length)));
      srv = await startServer(dir, port, keyFile);
      await waitFor(() => stable >= data.length, 20_000, 'all stable after restart');
      expect((await log.read(id, 0, data.length)).equals(data)).toBe(true);
      const c = log.linkStats().client;
      expect(c.serverRestarts).toBe(1);
      expect(c.reRegistrations).toBeGreaterThan(0);
    } finally {
      await log.shutdown();
    }
    srv.kill('SIGTERM');
    await once(srv, 'exit');
    expect(srv.exitCode).toBe(0);
  });
});
