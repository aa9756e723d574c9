/**
 * Issue 10, item 5, on real kernels: an idle protected connection, idle past `--idle-timeout`,
 * is still protected at a crash. A client in <lab>-client opens an echo connection through the
 * gateway (`--idle-timeout 2`), exchanges a line, and stays silent for ~6 s, during which the
 * supervised echo server is killed -9 and restarted; then it sends another line. The
 * connection must carry on: the echo of the second line, no FIN, no reset, no error.
 * (Before the fix the idle flow was released after 2 s, the crash found nothing to mask and
 * the restarted server answered the second line with a RST.)
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { execIn, withLab, listLeftovers } from '../../src/lab/index.js';
import { startSupervisedServer, gatewayStatus, stopProcess, type SupervisedServer } from '../../src/lab/procs.js';
import { ensureBuilt } from '../support/build.js';

const PORT = 5003;
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) await stopProcess(c);
});

/** The client: one line, an echo, silence for `idleMs`, another line, its echo; prints a JSON verdict. */
function clientScript(host: string, idleMs: number): string {
  return `
const net = require('net');
const out = { first: '', second: '', events: [] };
const s = net.connect(${PORT}, '${host}');
let buf = '';
s.setEncoding('latin1');
s.on('data', (d) => {
  buf += d;
  if (!out.first && buf.includes('\\n')) {
    out.first = buf.slice(0, buf.indexOf('\\n'));
    buf = buf.slice(buf.indexOf('\\n') + 1);
    setTimeout(() => s.write('second line after the idle period\\n'), ${idleMs});
  } else if (out.first && buf.includes('\\n')) {
    out.second = buf.slice(0, buf.indexOf('\\n'));
    s.end();
  }
});
s.on('end', () => out.events.push('end'));
s.on('error', (e) => { out.events.push('error ' + e.code); finish(); });
s.on('close', () => finish());
let done = false;
function finish() { if (done) return; done = true; process.stdout.write(JSON.stringify(out)); }
s.write('first line\\n');
setTimeout(() => { out.events.push('timeout'); finish(); process.exit(0); }, ${idleMs} + 20000);
`;
}

describe('an idle protected connection at a crash (lab)', () => {
  it('idle past --idle-timeout, the server killed -9 meanwhile: the connection carries on', async () => {
    ensureBuilt();
    const name = `lv-idle-${process.pid % 100000}`;
    await withLab({ name, protect: [PORT], extraGatewayArgs: ['--idle-timeout', '2'] }, async (lab) => {
      const service = `${lab.addresses.server}:${PORT}`;
      const srv: SupervisedServer = await startSupervisedServer(lab.namespaces.server, 'echo', service, `${lab.addresses.gwServer}:7071`);
      children.push(srv.child);
      const idleMs = 7000;
      const client = execIn(lab.namespaces.client, process.execPath, ['-e', clientScript(lab.addresses.server, idleMs)], { timeoutMs: idleMs + 30_000 });
      // idle for ~3.5 s (past the 2 s timeout and a sweep), then the crash
      await new Promise((r) => setTimeout(r, 3500));
      const before = await gatewayStatus(lab.name);
      await srv.kill9();
      await srv.listening(2);
      const r = await client;
      const out = JSON.parse(r.stdout) as { first: string; second: string; events: string[] };
      expect(out.first).toBe('first line');
      expect(out.second).toBe('second line after the idle period');
      expect(out.events.filter((e) => e !== 'end')).toEqual([]);
      expect(before.connections).toBe(1); // still tracked after 3.5 s of silence
      const st = await gatewayStatus(lab.name);
      expect(st.south.flowsExpired).toBe(0);
      expect(st.north.crashes).toBeGreaterThanOrEqual(1);
      expect(st.north.caughtUp).toBeGreaterThanOrEqual(1);
      expect(st.flowLimits).toMatchObject({ idleTimeoutMs: 2000, maxFlows: 100000 });
      await stopProcess(srv.child);
    });
    expect(await listLeftovers(name)).toEqual([]);
  }, 120_000);
});
