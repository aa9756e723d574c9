/**
 * Issue 11 item 1, in the lab: while a server FIN is held for the liveness verdict, a second
 * server FIN on the same connection carrying IP options (IHL 15) took the gateway down (the
 * held copy was read with the new packet's header length; the RangeError escaped the TUN
 * reader). Forged here from the server's network with the sequence numbers a capture shows;
 * the gateway must stay up, count no internal error, and keep serving new connections.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { REPO_ROOT, execIn, spawnIn, withLab } from '../../src/lab/index.js';
import { gatewayStatus, stopProcess, waitForLine } from '../../src/lab/procs.js';
import { TCP_ACK, TCP_FIN } from '../../src/wire/tcp.js';
import { ensureBuilt } from '../support/build.js';
import { forge, fromServer, inject, startSpy, type SpiedConnection } from '../support/lab-spy.js';

const CLI = path.join(REPO_ROOT, 'bin', 'ftcp.js');
const CLOSER = path.join(REPO_ROOT, 'test', 'lab', 'fixtures', 'closer.mjs');
const ASK = path.join(REPO_ROOT, 'test', 'lab', 'fixtures', 'ask.mjs');
const PORT = 5001;

beforeAll(() => ensureBuilt());

describe('forged server FINs while one is held for the verdict (lab, issue 11 item 1)', () => {
  it('a second FIN with IP options does not stop the gateway', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ftcp-held-fin-'));
    try {
      await withLab({ protect: [PORT], extraGatewayArgs: ['--supervisor', '198.18.2.1:7071', '--heartbeat-ms', '500'] }, async (lab) => {
        const service = `${lab.addresses.server}:${PORT}`;
        const sup = spawnIn(lab.namespaces.server, process.execPath, [CLI, 'supervise', '--gateway', '198.18.2.1:7071', '--service', service, '--heartbeat-ms', '500', '--', process.execPath, CLOSER, lab.addresses.server, String(PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
        const spy = await startSpy(lab.namespaces.client, 'c0', dir);
        // A victim connection that stays open (the server answers nothing to "hold").
        let victim: ReturnType<typeof spawnIn> | undefined;
        try {
          await waitForLine(sup, /program listening/, 15_000);
          victim = spawnIn(lab.namespaces.client, process.execPath, [ASK, lab.addresses.server, String(PORT), 'hold'], { stdio: ['ignore', 'pipe', 'pipe'] });
          let c: SpiedConnection | undefined;
          for (let i = 0; i < 100 && (c === undefined || c.serverIsn < 0 || c.clientBytes === 0); i++) {
            await new Promise((r) => setTimeout(r, 50));
            c = (await spy.connections()).find((x) => x.serverPort === PORT);
          }
          expect(c, 'the victim connection was seen by the capture').toBeDefined();
          const fin = { ...fromServer(c!), seq: c!.serverNext, ack: c!.clientNext, flags: TCP_FIN | TCP_ACK, window: 502 };
          // The held FIN (plain header), then the same FIN with IHL 15: 40 bytes of option 01 (NOP).
          const r = await inject(lab.namespaces.server, [forge(fin), forge({ ...fin, ipOptions: Buffer.alloc(40, 1) })]);
          expect(r).toMatchObject({ sent: 2, errors: 0 });
          await new Promise((res) => setTimeout(res, 300));
          const st = await gatewayStatus(lab.name);
          expect(st.masking.held, 'the first FIN was held for the verdict').toBeGreaterThanOrEqual(1);
          expect(st.stats.internalErrors).toBe(0);
          // The TUN is still read: a new connection of the protected service works end to end.
          const ask = await execIn(lab.namespaces.client, process.execPath, [ASK, lab.addresses.server, String(PORT), 'close'], { timeoutMs: 20_000 });
          expect(JSON.parse(ask.stdout)).toMatchObject({ got: 'bye\n', end: true, error: null });
          const after = await gatewayStatus(lab.name);
          expect(after.stats.internalErrors).toBe(0);
          expect(after.stats.packets).toBeGreaterThan(st.stats.packets);
        } finally {
          await stopProcess(victim);
          await spy.stop();
          await stopProcess(sup);
        }
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
