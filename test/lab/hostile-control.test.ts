/**
 * Issue 11, item 7, on real kernels: the control endpoint is off the clients' side.
 *
 *   <n>-client ── gc0 ──▶ <n>-gw kernel (a local destination: the TUN is not crossed)
 *                           ├─ 127.0.0.1:7070: martian from a wire, never reached
 *                           └─ any other address: accepted by the kernel, closed by the endpoint
 *                              at once (the route back leaves by the steered gc0)
 *   <n>-gw: 127.0.0.1:7070 (the lab's management path) ◀── ftcp status --name <n> (ip netns exec)
 *
 * 1. The lab as it is (control on 127.0.0.1:7070 inside <n>-gw): from <n>-client, nothing
 *    answers on the gateway's addresses at port 7070 (198.18.1.1, 198.18.2.1: refused);
 *    `ftcp status --name` works; 500 half-sent requests from the management side are all
 *    closed within the headers timeout (5 s) plus slack, counted.
 * 2. The old lab's binding, the server-side address 198.18.2.1:7070 (what the issue found
 *    answering the client), with a bearer token: a client's and a server's request get no
 *    byte back, the endpoint closes their connections at accept (counted clientSide), the
 *    gateway warned at startup, and the management side (inside <n>-gw) reads the status
 *    with the token (`ftcp status --name --token-file`), 401 without it.
 */
import { describe, it, expect } from 'vitest';
import { execIn, execCmd, withLab, listLeftovers, REPO_ROOT } from '../../src/lab/index.js';
import { gatewayStatus } from '../../src/lab/procs.js';
import { ensureBuilt } from '../support/build.js';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FTCP = `${REPO_ROOT}bin/ftcp.js`;
const PORT = 5004;

/**
 * From inside a namespace: GET /status from each target; 'answered' (any byte came back),
 * 'closed' (connected, closed without a byte), 'refused', 'timeout', or another error code.
 */
function probeScript(targets: string[], timeoutMs: number): string {
  return `
const net = require('net');
const targets = ${JSON.stringify(targets)};
Promise.all(targets.map((t) => new Promise((resolve) => {
  const [host, port] = t.split(':');
  const s = net.connect(Number(port), host, () => s.write('GET /status HTTP/1.1\\r\\nHost: gw\\r\\nConnection: close\\r\\n\\r\\n'));
  let got = 0, done = false;
  const end = (v) => { if (!done) { done = true; clearTimeout(timer); s.destroy(); resolve([t, v]); } };
  const timer = setTimeout(() => end('timeout'), ${timeoutMs});
  s.on('data', (d) => (got += d.length));
  s.on('close', () => end(got > 0 ? 'answered' : 'closed'));
  s.on('error', (e) => end(got > 0 ? 'answered' : e.code === 'ECONNREFUSED' ? 'refused' : e.code === 'ECONNRESET' ? 'closed' : e.code));
}))).then((r) => process.stdout.write(JSON.stringify(Object.fromEntries(r))));
`;
}

/** 500 connections that send a request line and one header and never end it; how long each stayed open. */
function halfSentScript(target: string, n: number): string {
  return `
const net = require('net');
const [host, port] = ${JSON.stringify(target)}.split(':');
const t0 = Date.now();
let closed = 0, maxMs = 0, answered408 = 0;
for (let i = 0; i < ${n}; i++) {
  const s = net.connect(Number(port), host, () => s.write('GET /status HTTP/1.1\\r\\nHost: gw\\r\\n'));
  let got = '';
  s.on('data', (d) => (got += d));
  s.on('error', () => {});
  s.on('close', () => {
    closed++;
    maxMs = Math.max(maxMs, Date.now() - t0);
    if (got.startsWith('HTTP/1.1 408')) answered408++;
    if (closed === ${n}) { process.stdout.write(JSON.stringify({ closed, maxMs, answered408 })); process.exit(0); }
  });
}
setTimeout(() => { process.stdout.write(JSON.stringify({ closed, maxMs: -1, answered408 })); process.exit(0); }, 60000);
`;
}

describe('the control endpoint is off the clients\' side (lab)', () => {
  it('the lab: not reachable from the client, ftcp status --name works, 500 half-sent requests closed in time', async () => {
    ensureBuilt();
    const name = `lv-ctl-${process.pid % 100000}`;
    await withLab({ name, protect: [PORT] }, async (lab) => {
      expect(lab.control).toBe('127.0.0.1:7070');
      const probe = await execIn(lab.namespaces.client, process.execPath, ['-e', probeScript([`${lab.addresses.gwServer}:7070`, `${lab.addresses.gwClient}:7070`], 3000)], { timeoutMs: 20_000 });
      const reach = JSON.parse(probe.stdout) as Record<string, string>;
      for (const [t, r] of Object.entries(reach)) expect(['refused', 'timeout'], `${t}: ${r}`).toContain(r);

      const text = await execCmd(process.execPath, [FTCP, 'status', '--name', name], { timeoutMs: 20_000 });
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toMatch(/control endpoint 127\.0\.0\.1:7070: \d+ answered/);

      const before = await gatewayStatus(name);
      const hs = await execIn(lab.namespaces.gw, process.execPath, ['-e', halfSentScript(lab.control, 500)], { timeoutMs: 90_000 });
      const r = JSON.parse(hs.stdout) as { closed: number; maxMs: number; answered408: number };
      expect(r.closed).toBe(500);
      // the headers timeout (5 s), Node's check interval (0.25 s), slack for a loaded machine
      expect(r.maxMs).toBeGreaterThan(0);
      expect(r.maxMs).toBeLessThan(5000 + 3000);
      expect(r.answered408).toBeGreaterThanOrEqual(32); // the ones admitted (the cap is 32) were timed out
      const after = await gatewayStatus(name);
      console.log(`500 half-sent requests: all closed after ${r.maxMs} ms at most; ${r.answered408} answered 408; ` +
        `closed at accept ${after.control.overCapacity - before.control.overCapacity}, timed out ${after.control.timedOut - before.control.timedOut}`);
      const refused = (s: { control: Record<string, number> }) => s.control.timedOut! + s.control.overCapacity!;
      expect(refused(after) - refused(before)).toBe(500);
      expect(after.control.connections).toBeLessThanOrEqual(1); // only the status request itself
    });
    expect(await listLeftovers(name)).toEqual([]);
  }, 180_000);

  it('bound to the server-side address as the old lab did: a client or server gets nothing, the management side reads it', async () => {
    ensureBuilt();
    const name = `lv-ctl2-${process.pid % 10000}`;
    const dir = mkdtempSync(join(tmpdir(), 'ftcp-ctl-'));
    const token = join(dir, 'token');
    writeFileSync(token, 'lab-control-token-0123456789\n', { mode: 0o600 });
    try {
      await oldBinding(name, token);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(await listLeftovers(name)).toEqual([]);
  }, 180_000);
});

/** The gateway bound to 198.18.2.1:7070 with a token: the client and server sides get nothing, the management side reads it. */
async function oldBinding(name: string, token: string): Promise<void> {
  await withLab({ name, protect: [PORT], extraGatewayArgs: ['--control', '198.18.2.1:7070', '--control-token-file', token] }, async (lab) => {
    const probe = await execIn(lab.namespaces.client, process.execPath, ['-e', probeScript([`${lab.addresses.gwServer}:7070`], 3000)], { timeoutMs: 20_000 });
    expect(JSON.parse(probe.stdout)).toEqual({ [`${lab.addresses.gwServer}:7070`]: 'closed' });
    // the servers' side is steered too
    const fromServer = await execIn(lab.namespaces.server, process.execPath, ['-e', probeScript([`${lab.addresses.gwServer}:7070`], 3000)], { timeoutMs: 20_000 });
    expect(JSON.parse(fromServer.stdout)).toEqual({ [`${lab.addresses.gwServer}:7070`]: 'closed' });
    // the management side: inside <n>-gw, with the token (it goes to the fetching child over its stdin)
    const noToken = await execCmd(process.execPath, [FTCP, 'status', '--name', name, '--control', '198.18.2.1:7070'], { timeoutMs: 20_000 });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/answered 401/);
    const st = await execCmd(process.execPath, [FTCP, 'status', '--name', name, '--control', '198.18.2.1:7070', '--token-file', token, '--json'], { timeoutMs: 20_000 });
    expect(st.code, st.stderr).toBe(0);
    const snap = JSON.parse(st.stdout);
    expect(snap.control).toMatchObject({ listen: '198.18.2.1:7070', token: true, clientSide: 2, unauthorized: 1 });
    // the gateway warned at startup: the address is on a steered interface
    const log = await execCmd('cat', [lab.gatewayLog!]);
    expect(log.stdout).toMatch(/control endpoint is on the clients' side: 198\.18\.2\.1 is an address of gs0/);
  });
}
