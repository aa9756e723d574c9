/**
 * Issue 11 item 2, in the lab, through a crash and a replay: a copy of a client data
 * segment with other bytes and a wrong TCP checksum, injected from the client's network
 * before the genuine one. Without verification the gateway logged the forged bytes first
 * (the server's kernel dropped them), the genuine segment was a duplicate, and after a crash
 * the replay fed the new incarnation the forged bytes: the upload's digest differed.
 *
 *   client ns:  paced-upload.mjs ── A ──▶ [forged B', bad checksum] ── B ──▶ kill -9 ── C, FIN
 *   server ns:  ftcp supervise -- ftcp demo-server --kind upload  (replies sha256 of what it got)
 *
 * The numbers for the forgery come from a capture on the client's interface (lab-spy). The
 * forged frame reaches the gateway's TUN with virtio-net flags 0 (veth on the kernels this
 * ran on: see README "Checksums"), so it is verified and dropped (BAD_TCP_CHECKSUM).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { REPO_ROOT, execIn, spawnIn, withLab } from '../../src/lab/index.js';
import { gatewayStatus, startSupervisedServer, stopProcess, type SupervisedServer } from '../../src/lab/procs.js';
import { TCP_ACK, TCP_PSH } from '../../src/wire/tcp.js';
import { seqAdd, type Seq } from '../../src/wire/seq.js';
import { ensureBuilt } from '../support/build.js';
import { forge, fromClient, inject, startSpy, type SpiedConnection, type Spy } from '../support/lab-spy.js';

const UPLOADER = path.join(REPO_ROOT, 'test', 'lab', 'fixtures', 'paced-upload.mjs');
const PORT = 5001;
const A = 20_000;
const B = 1_000;
const C = 30_000;

beforeAll(() => ensureBuilt());

/** Byte i of the uploader's stream (paced-upload.mjs). */
const pattern = (from: number, n: number) => Buffer.from(Array.from({ length: n }, (_, i) => ((from + i) * 7 + 3) & 255));

/** Polls the capture (bounded) until the connection to PORT satisfies `pred`. */
async function until(spy: Spy, pred: (c: SpiedConnection) => boolean, what: string, ms = 15_000): Promise<SpiedConnection> {
  const deadline = Date.now() + ms;
  for (;;) {
    const c = (await spy.connections()).find((x) => x.serverPort === PORT);
    if (c !== undefined && pred(c)) return c;
    if (Date.now() > deadline) throw new Error(`${what}: not seen within ${ms} ms (last: ${JSON.stringify(c)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The uploader's JSON lines, parsed. */
function lines(child: ChildProcess): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      out.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
  });
  return out;
}

describe('a forged bad-checksum copy of a client segment (lab, issue 11 item 2)', () => {
  it('is dropped before the log: after a crash the new incarnation gets the genuine bytes', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ftcp-csum-'));
    const name = `csum${Math.floor(Math.random() * 10)}`;
    try {
      await withLab({ name, protect: [PORT], extraGatewayArgs: ['--supervisor', '198.18.2.1:7071', '--heartbeat-ms', '100'] }, async (lab) => {
        // No timestamps on the client's segments: the forged copy has the genuine one's exact layout.
        await execIn(lab.namespaces.client, 'sysctl', ['-qw', 'net.ipv4.tcp_timestamps=0']);
        let sup: SupervisedServer | undefined;
        let up: ChildProcess | undefined;
        const spy = await startSpy(lab.namespaces.client, 'c0', dir);
        try {
          sup = await startSupervisedServer(lab.namespaces.server, 'upload', `${lab.addresses.server}:${PORT}`, '198.18.2.1:7071', 100);
          up = spawnIn(lab.namespaces.client, process.execPath, [UPLOADER, lab.addresses.server, String(PORT), `${A},${B},${C}`], { stdio: ['pipe', 'pipe', 'pipe'] });
          const out = lines(up);
          // A sent and acked: the ack reaches the client only once A is stable in the log. The
          // sequence numbers are counted from the ISN (the client has sent A and nothing else).
          const afterA = (c: SpiedConnection) => seqAdd(c.clientIsn, 1 + A);
          const c = await until(spy, (x) => x.serverIsn >= 0 && x.ackToClient === afterA(x), 'chunk A acked');

          // The forged copy of B (not yet sent): same sequence number and length, other bytes, wrong checksum.
          const forged = pattern(A, B).map((b) => b ^ 0x5a);
          const r = await inject(lab.namespaces.client, [
            forge({ ...fromClient(c), seq: afterA(c), ack: seqAdd(c.serverIsn as Seq, 1), flags: TCP_ACK | TCP_PSH, window: 502, payload: forged, corruptTcpChecksum: 0x0101 }),
          ]);
          expect(r).toMatchObject({ sent: 1, errors: 0 });
          await new Promise((res) => setTimeout(res, 300));
          const st1 = await gatewayStatus(lab.name);
          expect(st1.checksums).toBe('verify');

          // The genuine B, acked (stable), then the server is killed before C.
          up.stdin!.write('next\n');
          await until(spy, (x) => x.ackToClient === seqAdd(x.clientIsn, 1 + A + B), 'chunk B acked');
          const crashesBefore = (await gatewayStatus(lab.name)).north.crashes as number;
          await sup.kill9();
          await sup.listening(2, 20_000);
          const deadline = Date.now() + 30_000;
          let st = await gatewayStatus(lab.name);
          while (!(st.north.crashes > crashesBefore && st.north.caughtUp >= 1) && Date.now() < deadline) {
            await new Promise((res) => setTimeout(res, 100));
            st = await gatewayStatus(lab.name);
          }
          expect(st.north.crashes, 'the crash was seen').toBeGreaterThan(crashesBefore);
          expect(st.north.caughtUp, 'the connection was rebuilt and caught up').toBeGreaterThanOrEqual(1);

          up.stdin!.write('next\n');
          const endBy = Date.now() + 60_000;
          while (!out.some((o) => 'digest' in o || 'error' in o) && Date.now() < endBy) await new Promise((res) => setTimeout(res, 50));
          const end = out.find((o) => 'digest' in o || 'error' in o);
          expect(end, 'the upload ended').toBeDefined();
          expect(end!.error).toBeUndefined();
          expect(end!.bytes).toBe(A + B + C);
          // The new incarnation digested every byte it was given: the log's A and B, then C.
          expect(end!.reply).toBe(`${end!.digest as string} ${A + B + C}`);

          const fin = await gatewayStatus(lab.name);
          expect(fin.drops.BAD_TCP_CHECKSUM, 'the forged copy was dropped as a bad checksum').toBeGreaterThan(0);
          expect(fin.stats.internalErrors).toBe(0);
        } finally {
          await stopProcess(up);
          await spy.stop();
          await stopProcess(sup?.child);
        }
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
