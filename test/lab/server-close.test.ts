/**
 * A protected server's own close and its own abort are not crashes: with the supervisor
 * saying the process is alive, the gateway holds the FIN/RST only until the verdict and then
 * lets it through (issue 3). No connection is masked, nothing is rebuilt.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import path from 'node:path';
import { REPO_ROOT, execIn, spawnIn, withLab } from '../../src/lab/index.js';
import { gatewayStatus, stopProcess, waitForLine } from '../../src/lab/procs.js';
import { ensureBuilt } from '../support/build.js';

const CLI = path.join(REPO_ROOT, 'bin', 'ftcp.js');
const CLOSER = path.join(REPO_ROOT, 'test', 'lab', 'fixtures', 'closer.mjs');
const ASK = path.join(REPO_ROOT, 'test', 'lab', 'fixtures', 'ask.mjs');
const PORT = 5001;

beforeAll(() => ensureBuilt());

describe("a server's own close and abort pass through while it is alive (lab)", () => {
  it('FIN and RST of a live server reach the client after the verdict; no crash is declared', async () => {
    await withLab({ protect: [PORT], extraGatewayArgs: ['--supervisor', '198.18.2.1:7071', '--heartbeat-ms', '50'] }, async (lab) => {
      const service = `${lab.addresses.server}:${PORT}`;
      const sup = spawnIn(lab.namespaces.server, process.execPath, [CLI, 'supervise', '--gateway', '198.18.2.1:7071', '--service', service, '--heartbeat-ms', '50', '--', process.execPath, CLOSER, lab.addresses.server, String(PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
      try {
        await waitForLine(sup, /program listening/, 15_000);
        const ask = async (word: string) => {
          const t = Date.now();
          const r = await execIn(lab.namespaces.client, process.execPath, [ASK, lab.addresses.server, String(PORT), word], { timeoutMs: 20_000 });
          return { ...(JSON.parse(r.stdout) as { got: string; end: boolean; error: string | null }), ms: Date.now() - t };
        };
        const closed = await ask('close');
        expect(closed).toMatchObject({ got: 'bye\n', end: true, error: null });
        const aborted = await ask('abort');
        expect(aborted.error).toBe('ECONNRESET');
        expect(aborted.got).toBe('');
        const st = await gatewayStatus(lab.name);
        expect(st.masking.held).toBeGreaterThanOrEqual(2); // the FIN and the RST were held for the verdict
        expect(st.masking.releasedAlive).toBeGreaterThanOrEqual(2);
        expect(st.masking.suppressed).toBe(0);
        expect(st.north.crashes).toBe(0);
        expect(st.north.flowsMasked).toBe(0);
        // The hold is bounded by the verdict's settle time (2 heartbeats + 50 ms), not open-ended.
        expect(closed.ms).toBeLessThan(3_000);
      } finally {
        await stopProcess(sup);
      }
    });
  }, 90_000);
});
