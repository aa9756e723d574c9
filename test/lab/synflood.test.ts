/**
 * Issue 11 item 6, on real kernels: 100,000 spoofed SYNs (random sources in 198.18.128.0/17,
 * sent from the client network with test/support/inject.mjs) at a protected service, which
 * answers each with a SYN-ACK (its SYN cookies kick in), while a legitimate protected echo
 * connection keeps exchanging lines and new legitimate connections open and close.
 *
 *   client ns: inject.mjs flood ──▶ gateway (TUN, --max-half-open 10000 default) ──▶ server ns: echo :5003
 *              echo client (long + new ones)                                       (supervised)
 *
 * Asserted: the legitimate traffic never fails; the gateway's flow count stays at most the
 * half-open cap plus the legitimate connections; the log's connection count does not grow with
 * the flood (before the fix every SYN-ACK opened a log connection: 99,679 of 100,000); the
 * gateway's live memory (heap + buffers after a full GC) grows by less than the stated bound,
 * maxHalfOpen × 1.5 KB; and after the flood the long connection is still protected: the echo
 * server is killed -9 and the connection carries on in the restarted one.
 */
import { describe, it, expect, afterEach } from 'vitest';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { REPO_ROOT, execIn, spawnIn, withLab, listLeftovers } from '../../src/lab/index.js';
import { startSupervisedServer, stopProcess, type SupervisedServer } from '../../src/lab/procs.js';
import { gatewaySnapshot } from '../../src/bench/scale.js';
import { ensureBuilt } from '../support/build.js';

const PORT = 5003;
const INJECT = path.join(REPO_ROOT, 'test', 'support', 'inject.mjs');
const FLOOD = 100_000;
const RATE = 4_000; // 25 s of flood
const MAX_HALF_OPEN = 10_000; // the default
const BYTES_PER_HALF_OPEN = 1536; // the stated bound (measured ~960 B: README, bounds)
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) await stopProcess(c);
});

/**
 * The legitimate side, until SIGTERM (or `maxMs`): one long echo connection writing a numbered
 * line every 20 ms and checking each echo, and a new connection every 250 ms that sends one line,
 * checks its echo and closes. Prints a JSON line: lines echoed, new connections ok / failed,
 * errors; `ready` on stderr once the long connection has its first echo.
 */
function legitScript(host: string, maxMs: number): string {
  return `
const net = require('net');
const out = { echoed: 0, newOk: 0, newFailed: 0, errors: [], wrong: 0 };
let stopping = false;
const long = net.connect(${PORT}, '${host}');
long.setEncoding('latin1');
let buf = '', n = 0, expectN = 0, readySaid = false;
long.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    if (line !== 'line ' + expectN) out.wrong++;
    expectN++; out.echoed++;
    if (!readySaid) { readySaid = true; process.stderr.write('ready\\n'); }
  }
});
long.on('error', (e) => out.errors.push('long ' + e.code));
long.on('close', () => { if (!stopping) out.errors.push('long closed'); });
const writer = setInterval(() => long.write('line ' + (n++) + '\\n'), 20);
function opener() {
  const s = net.connect(${PORT}, '${host}');
  s.setEncoding('latin1');
  let got = '';
  const t = setTimeout(() => { out.newFailed++; out.errors.push('new: timeout'); s.destroy(); }, 10000);
  s.on('connect', () => s.write('hello\\n'));
  s.on('data', (d) => { got += d; if (got === 'hello\\n') { clearTimeout(t); out.newOk++; s.end(); } });
  s.on('error', (e) => { clearTimeout(t); out.newFailed++; out.errors.push('new ' + e.code); });
}
const opens = setInterval(opener, 250);
function finish() {
  stopping = true;
  clearInterval(writer); clearInterval(opens);
  setTimeout(() => { process.stdout.write(JSON.stringify(out) + '\\n'); process.exit(0); }, 1500);
}
process.on('SIGTERM', finish);
setTimeout(finish, ${maxMs});
`;
}

describe('a SYN flood at a protected service (lab, issue 11 item 6)', () => {
  it('100,000 spoofed SYNs: bounded half-open flows, nothing in the log, bounded memory; legitimate connections work and stay protected', async () => {
    ensureBuilt();
    const name = `ho-flood-${process.pid % 1000}`;
    await withLab({ name, protect: [PORT], log: 'embedded', gatewayCommand: [process.execPath, '--expose-gc', path.join(REPO_ROOT, 'bin', 'ftcp.js')] }, async (lab) => {
      const service = `${lab.addresses.server}:${PORT}`;
      const srv: SupervisedServer = await startSupervisedServer(lab.namespaces.server, 'echo', service, `${lab.addresses.gwServer}:7071`);
      children.push(srv.child);
      const legit = spawnIn(lab.namespaces.client, process.execPath, ['-e', legitScript(lab.addresses.server, 110_000)], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(legit);
      let legitOut = '';
      legit.stdout!.on('data', (d: Buffer) => { legitOut += d.toString(); });
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('the legitimate client never got an echo')), 15_000);
        legit.stderr!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) { clearTimeout(t); resolve(); } });
      });
      await new Promise((r) => setTimeout(r, 1000));
      const before = await gatewaySnapshot(lab, true) as any;

      const f = await execIn(lab.namespaces.client, process.execPath, [
        INJECT, 'flood', '--dst', service, '--src-net', '198.18.128.0', '--count', String(FLOOD), '--rate', String(RATE), '--seed', '6',
      ], { timeoutMs: 120_000 });
      expect(f.code, f.stderr).toBe(0);
      const flood = JSON.parse(f.stdout.trim().split('\n').pop()!) as { sent: number; errors: number; ms: number };
      expect(flood.sent).toBe(FLOOD);
      await new Promise((r) => setTimeout(r, 500));
      const after = await gatewaySnapshot(lab, true) as any;

      // The long connection is still protected: a crash of the server is masked and rebuilt.
      await srv.kill9();
      await srv.listening(2);
      await new Promise((r) => setTimeout(r, 2000));
      legit.kill('SIGTERM');
      await new Promise((r) => legit.once('exit', r));
      const out = JSON.parse(legitOut.trim()) as { echoed: number; newOk: number; newFailed: number; errors: string[]; wrong: number };
      const end = await gatewaySnapshot(lab, true) as any;

      const grew = (s: any) => s.memory.heapUsed + s.memory.arrayBuffers;
      const figures = {
        flood, seenSyns: after.south.flowsOpened - before.south.flowsOpened,
        halfOpen: after.halfOpen, connections: after.connections, evicted: after.south.halfOpenEvicted, expired: after.south.halfOpenExpired,
        logConnections: [before.logMemory.connections, after.logMemory.connections],
        memoryRise: grew(after) - grew(before), rssRise: after.memory.rss - before.memory.rss, bound: MAX_HALF_OPEN * BYTES_PER_HALF_OPEN,
        legit: out, caughtUp: end.north.caughtUp,
      };
      process.stderr.write(`synflood figures: ${JSON.stringify(figures)}\n`);

      // the gateway saw the flood; the log holds the legitimate connections only (the short
      // ones close and leave it); the flow table at most the cap of the flood
      expect(figures.seenSyns).toBeGreaterThan(FLOOD / 2);
      expect(after.logMemory.connections).toBeLessThanOrEqual(before.logMemory.connections + 50);
      const legitConns = out.newOk + out.newFailed + 1;
      expect(after.connections).toBeLessThanOrEqual(MAX_HALF_OPEN + legitConns);
      // memory: below the stated bound
      expect(figures.memoryRise).toBeLessThan(figures.bound);
      expect(after.limits).toMatchObject({ maxHalfOpen: MAX_HALF_OPEN, halfOpenTimeoutMs: 30_000 });
      expect(after.halfOpen).toBeLessThanOrEqual(MAX_HALF_OPEN);
      expect(after.south.halfOpenEvicted + after.south.halfOpenExpired).toBeGreaterThan(0);
      // the legitimate side never failed, through the flood and the crash
      expect(out.errors).toEqual([]);
      expect(out.wrong).toBe(0);
      expect(out.newFailed).toBe(0);
      expect(out.newOk).toBeGreaterThan(50);
      expect(out.echoed).toBeGreaterThan(1000);
      expect(end.north.caughtUp).toBeGreaterThanOrEqual(1);
      expect(end.stats.internalErrors).toBe(0);
      await stopProcess(srv.child);
    });
    expect(await listLeftovers(name)).toEqual([]);
  }, 180_000);
});
