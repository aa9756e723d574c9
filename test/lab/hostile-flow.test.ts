/**
 * Issue 11 item 3, on real kernels: one spoofed packet with a live connection's 4-tuple must
 * not remove its protection.
 *
 *   client ns ──c0── gateway (ftcp, TUN) ── server ns (echo under ftcp supervise)
 *      │ ▲
 *      │ └ tcpdump (test/support/lab-spy.ts): the 4-tuple and the sequence numbers
 *      └── inject.mjs: the forged SYN / RST, raw socket, right checksums
 *
 * A client in <lab>-client holds an echo conversation in three phases (files in a temp dir
 * pace it): phase 1, the forged packet, phase 2, the server killed -9, phase 3 sent while it
 * is down. Before the fix a SYN with another ISN replaced the flow (its log closed): phase 2
 * went unlogged and the crash found nothing to mask (the restarted server reset the client);
 * an in-window RST not at the server's rcv_nxt closed the flow likewise. Now the flow is kept,
 * the connection is masked and rebuilt, and the client gets back exactly what it sent.
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import os from 'node:os';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { execIn, withLab, listLeftovers } from '../../src/lab/index.js';
import { startSupervisedServer, gatewayStatus, stopProcess, type SupervisedServer } from '../../src/lab/procs.js';
import { encodeTcpOptions } from '../../src/wire/tcp-options.js';
import { seqAdd } from '../../src/wire/seq.js';
import { TCP_RST, TCP_SYN } from '../../src/wire/tcp.js';
import { ensureBuilt } from '../support/build.js';
import { forge, fromClient, inject, startSpy, type SpiedConnection, type Spy } from '../support/lab-spy.js';

const PORT = 5004;
const children: ChildProcess[] = [];
const spies: Spy[] = [];
afterEach(async () => {
  for (const s of spies.splice(0)) await s.stop();
  for (const c of children.splice(0)) await stopProcess(c);
});

/**
 * The client: three phases of echo lines, each sent once the file go<N> exists (go1 at once),
 * and p<N> written when phase N's echo is all back; its port in `port`. Prints the SHA-256 of
 * what it sent and of what came back, and every error or early end.
 */
function clientScript(host: string, dir: string): string {
  return `
const net = require('net'), fs = require('fs'), crypto = require('crypto');
const dir = ${JSON.stringify(dir)};
const lines = (p, n) => { let s = ''; for (let i = 0; i < n; i++) s += 'phase ' + p + ' line ' + i + ' ' + 'x'.repeat(60 + (i % 37)) + '\\n'; return Buffer.from(s); };
const P = [lines(1, 200), lines(2, 3000), lines(3, 3000)];
const out = { sent: 0, got: 0, phases: 0, sentHash: '', gotHash: '', events: [] };
const sh = crypto.createHash('sha256'), gh = crypto.createHash('sha256');
let phase = 0, want = 0, done = false;
const s = net.connect(${PORT}, ${JSON.stringify(host)}, () => { fs.writeFileSync(dir + '/port', String(s.localPort)); next(); });
function next() {
  const f = dir + '/go' + (phase + 1);
  if (phase > 0 && !fs.existsSync(f)) return void setTimeout(next, 20);
  const b = P[phase++];
  sh.update(b); out.sent += b.length; want += b.length; s.write(b);
}
s.on('data', (d) => {
  gh.update(d); out.got += d.length;
  if (out.got !== want) return;
  fs.writeFileSync(dir + '/p' + phase, '');
  if (phase < P.length) next(); else s.end();
});
s.on('end', () => { if (out.got !== want || phase < P.length) out.events.push('end early (phase ' + phase + ')'); });
s.on('error', (e) => { out.events.push('error ' + e.code); finish(); });
s.on('close', () => finish());
function finish() { if (done) return; done = true; out.phases = phase; if (phase < P.length || out.got !== want) out.events.push('incomplete'); out.sentHash = sh.digest('hex'); out.gotHash = gh.digest('hex'); process.stdout.write(JSON.stringify(out)); process.exit(0); }
setTimeout(() => { out.events.push('timeout'); finish(); }, 90000);
`;
}

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Flows { flows: Array<{ flow: string; state: string; logId: number; stable: number; crashes: number }> }
const flowOf = (st: Flows, port: number) => st.flows.find((f) => f.flow.includes(`:${port}>`));

/**
 * One conversation: phase 1, `attack` (given the spied connection), phase 2, kill -9 of the
 * server generation `gen`, phase 3 while it is down; returns the client's verdict and the
 * status seen right after the attack.
 */
async function conversation(
  lab: { name: string; namespaces: { client: string }; addresses: { server: string } },
  srv: SupervisedServer, spy: Spy, gen: number, attack: (c: SpiedConnection) => Promise<void>,
): Promise<{ out: { sent: number; got: number; phases: number; sentHash: string; gotHash: string; events: string[] }; afterAttack: any; before: any; port: number }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ftcp-hostile-flow-'));
  try {
    const client = execIn(lab.namespaces.client, process.execPath, ['-e', clientScript(lab.addresses.server, dir)], { timeoutMs: 120_000 });
    await waitFor('phase 1', () => existsSync(path.join(dir, 'p1')));
    const port = Number(await readFile(path.join(dir, 'port'), 'utf8'));
    let c: SpiedConnection | undefined;
    await waitFor('the capture', async () => {
      c = (await spy.connections()).find((x) => x.clientPort === port && x.serverPort === PORT);
      return c !== undefined && c.serverIsn >= 0 && c.clientBytes > 0 && c.ackToClient === c.clientNext;
    });
    const before = await gatewayStatus(lab.name);
    await attack(c!);
    await new Promise((r) => setTimeout(r, 300));
    const afterAttack = await gatewayStatus(lab.name);
    await writeFile(path.join(dir, 'go2'), '');
    await waitFor('phase 2', () => existsSync(path.join(dir, 'p2')));
    await srv.kill9();
    await writeFile(path.join(dir, 'go3'), ''); // phase 3 goes out while the server is down
    await srv.listening(gen + 1, 30_000);
    const r = await client;
    return { out: JSON.parse(r.stdout), afterAttack, before, port };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

type Verdict = Awaited<ReturnType<typeof conversation>>['out'];

/** The client got back exactly what it sent, through all three phases, with no error or early end. */
function expectWhole(out: Verdict): void {
  expect(out.events).toEqual([]);
  expect(out.phases).toBe(3);
  expect(out.got).toBe(out.sent);
  expect(out.gotHash).toBe(out.sentHash);
}

/** `crashes` crashes so far, each masked and its connection rebuilt, no RST to a client. */
function expectRecovered(st: any, crashes: number): void {
  expect(st.north.crashes).toBe(crashes);
  expect(st.north.flowsMasked).toBeGreaterThanOrEqual(crashes);
  expect(st.north.caughtUp).toBeGreaterThanOrEqual(crashes);
  expect(st.north.rebuildFailed).toBe(0);
  expect(st.north.rstsToClient).toBe(0);
}

describe('one spoofed packet with a live connection\'s 4-tuple (lab, issue 11 item 3)', () => {
  it('a SYN with another ISN, then an in-window RST not at rcv_nxt: the flow is kept, masked at the crash and rebuilt byte-exact', async () => {
    ensureBuilt();
    const name = `lv-hflow-${process.pid % 10000}`;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ftcp-hostile-spy-'));
    try {
      await withLab({ name, protect: [PORT] }, async (lab) => {
        const service = `${lab.addresses.server}:${PORT}`;
        const srv = await startSupervisedServer(lab.namespaces.server, 'echo', service, `${lab.addresses.gwServer}:7071`);
        children.push(srv.child);
        const spy = await startSpy(lab.namespaces.client, 'c0', dir);
        spies.push(spy);

        // 1. The SYN: the real 4-tuple, another ISN, options of its own, a right checksum.
        const syn = await conversation(lab, srv, spy, 1, async (c) => {
          const r = await inject(lab.namespaces.client, [forge({
            ...fromClient(c), seq: seqAdd(c.clientIsn, 0x5a5a5a5a), ack: 0, flags: TCP_SYN, window: 29200,
            options: encodeTcpOptions({ mss: 1400, sackPermitted: true, wscale: 3 }),
          })]);
          expect(r).toMatchObject({ sent: 1, errors: 0 });
        });
        expectWhole(syn.out);
        const f0 = flowOf(syn.before, syn.port)!;
        const f1 = flowOf(syn.afterAttack, syn.port)!;
        expect(f1).toMatchObject({ state: 'ESTABLISHED', logId: f0.logId });
        expect(syn.afterAttack.south.synOnEstablished).toBe(1);
        expectRecovered(await gatewayStatus(lab.name), 1);

        // 2. The RST: inside the server's window, 1,000 bytes past its rcv_nxt, a right checksum.
        const rst = await conversation(lab, srv, spy, 2, async (c) => {
          const r = await inject(lab.namespaces.client, [forge({ ...fromClient(c), seq: seqAdd(c.clientNext, 1000), ack: 0, flags: TCP_RST, window: 0 })]);
          expect(r).toMatchObject({ sent: 1, errors: 0 });
        });
        expectWhole(rst.out);
        const r1 = flowOf(rst.afterAttack, rst.port)!;
        expect(r1.state).toBe('ESTABLISHED');
        expect(rst.afterAttack.south.flowsReset).toBe(rst.before.south.flowsReset);
        expect(rst.afterAttack.south.clientRstIgnored).toBe(1);
        const st = await gatewayStatus(lab.name);
        expectRecovered(st, 2);
        // Nothing genuine was judged unacceptable, through two crashes, replays and absorptions.
        const { clientOutOfWindow, serverOutOfWindow, clientFinIgnored, serverFinIgnored, serverAckUnsent, serverRstIgnored } = st.south;
        expect({ clientOutOfWindow, serverOutOfWindow, clientFinIgnored, serverFinIgnored, serverAckUnsent, serverRstIgnored }).toEqual({
          clientOutOfWindow: 0, serverOutOfWindow: 0, clientFinIgnored: 0, serverFinIgnored: 0, serverAckUnsent: 0, serverRstIgnored: 0,
        });
        await spy.stop();
        await stopProcess(srv.child);
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(await listLeftovers(name)).toEqual([]);
  }, 240_000);
});
