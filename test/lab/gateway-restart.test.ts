/**
 * The gateway fails closed and restarts in place (issue 14 item 2, before adoption exists):
 * a protected upload runs through the lab's gateway; kill -9 of the gateway; while it is dead
 * the kernel forwards no packet of the protected connection (a capture on the server's side
 * of the link); `ftcp gateway` started again with the same arguments reuses the TUN and the
 * steering, and counts the upload as an unknown connection (it passes unprotected, never
 * silently); SIGTERM keeps the state; `ftcp gateway down` leaves no device, rule or route.
 * The upload cannot survive yet (no adoption): what is asserted is what is true now.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execIn, labDown, labUp, listLeftovers, pidAlive, randomLabName, REPO_ROOT, ADDRESSES } from '../../src/lab/index.js';
import { gatewayStatus, startCapture, startDemoServer, startLiveDemoClient, stopProcess } from '../../src/lab/procs.js';
import { ensureBuilt } from '../support/build.js';

beforeAll(() => ensureBuilt());

const PORT = 7000;
const FTCP = join(REPO_ROOT, 'bin', 'ftcp.js');

async function waitFor<T>(what: string, fn: () => Promise<T | null> | T | null, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Time (epoch ms) and TCP payload length of each captured client→server segment of the protected port. */
async function segments(ns: string, pcap: string): Promise<{ t: number; len: number }[]> {
  const r = await execIn(ns, 'tcpdump', ['-r', pcap, '-n', '-tt', `tcp and dst port ${PORT}`]);
  return r.stdout.split('\n').filter(Boolean).map((l) => ({
    t: Number(l.split(' ')[0]) * 1000,
    len: Number(/length (\d+)/.exec(l)?.[1] ?? 0),
  }));
}

async function kernelState(ns: string): Promise<{ link: string; rules: string; table: string }> {
  return {
    link: (await execIn(ns, 'ip', ['-o', 'link', 'show'])).stdout.split('\n').find((l) => l.includes('ftcp0')) ?? '',
    rules: (await execIn(ns, 'ip', ['rule', 'show'])).stdout,
    table: (await execIn(ns, 'ip', ['route', 'show', 'table', '100'])).stdout,
  };
}

describe('gateway restart in place (lab)', () => {
  it('kill -9: nothing forwarded while dead; the restart reuses the state and counts the upload as unknown; down removes it all', async () => {
    const name = randomLabName('ftcprs');
    const topo = await labUp({ name, protect: [PORT] });
    const gwNs = topo.namespaces.gw;
    const pcap = join(topo.stateDir, 'server.pcap');
    let server;
    try {
      server = await startDemoServer(topo.namespaces.server, 'upload', `${ADDRESSES.server}:${PORT}`);
      const cap = await startCapture(topo.namespaces.server, topo.interfaces.server, pcap, `tcp and dst port ${PORT}`);
      const client = startLiveDemoClient(topo.namespaces.client, ['--kind', 'upload', '--connect', `${ADDRESSES.server}:${PORT}`, '--bytes', '4G', '--timeout-ms', '60000']);
      // The client's count is of bytes written to its socket; up to tcp_wmem's 4 MiB of them may
      // still sit in its send buffer, so past 8.5 MB at least 4 MB went through the gateway.
      expect(await client.until((p) => p.done > 8_500_000)).not.toBeNull();

      // 1. kill -9: the TUN, its route, the blackhole and the rules stay; the TUN has no carrier.
      const oldPid = topo.gatewayPid!;
      process.kill(oldPid, 'SIGKILL');
      await waitFor('the gateway to die', () => (pidAlive(oldPid) ? null : true));
      const killedAt = Date.now();
      const dead = await kernelState(gwNs);
      expect(dead.link).toMatch(/ftcp0: <[^>]*\bUP\b/);
      expect(dead.link).not.toMatch(/LOWER_UP/);
      expect(dead.rules).toMatch(/iif gc0 lookup 100/);
      expect(dead.table).toMatch(/default dev ftcp0/);
      expect(dead.table).toMatch(/blackhole default/);

      // 2. Dead for 2 s: the client retransmits, the kernel must forward none of it.
      await sleep(2000);
      const restartAt = Date.now();
      const readyFile = join(topo.stateDir, 'gateway.ready');
      rmSync(readyFile, { force: true }); // the dead one's
      const logFd = openSync(join(topo.stateDir, 'gateway-restarted.log'), 'a');
      try {
        spawn('ip', ['netns', 'exec', gwNs, ...topo.gatewayCommand!], { detached: true, stdio: ['ignore', logFd, logFd], cwd: REPO_ROOT }).unref();
      } finally {
        closeSync(logFd);
      }
      const newPid = await waitFor('the restarted gateway', () => {
        if (!existsSync(readyFile)) return null;
        try { return (JSON.parse(readFileSync(readyFile, 'utf8')) as { pid: number }).pid; } catch { return null; }
      });
      expect(newPid).not.toBe(oldPid);

      // 3. It reused what the dead one left, and sees the upload as an unknown connection.
      const st = await waitFor('the upload counted as unknown', async () => {
        const s = await gatewayStatus(name);
        return s.south.unknownFlows >= 1 ? s : null;
      });
      await sleep(300);
      await cap.stop();

      const segs = await segments(topo.namespaces.server, pcap);
      const times = segs.map((s) => s.t);
      const beforeBytes = segs.filter((s) => s.t < killedAt).reduce((n, s) => n + s.len, 0);
      // A segment already queued on the veth when the gateway died may land a few ms later.
      const whileDead = times.filter((t) => t > killedAt + 100 && t < restartAt);
      const after = times.filter((t) => t >= restartAt);
      // The upload ran through the gateway: at least 4 MB of payload reached the server before the kill.
      expect(beforeBytes).toBeGreaterThanOrEqual(4_000_000);
      expect(whileDead).toEqual([]); // fail closed
      expect(after.length).toBeGreaterThan(0); // the client's retransmissions pass the new gateway
      expect(st.start).toMatchObject({ action: 'reused', restarted: true, starts: 2 });
      expect(st.start.reusedState).toMatchObject({ record: true, device: true, route: true, blackhole: true, rules: 3, rulesExpected: 3 });
      expect(st.connections).toBe(0); // nothing adopted (yet): unprotected, counted

      // 4. SIGTERM keeps the state; `ftcp gateway down` removes it, and says so.
      process.kill(newPid, 'SIGTERM');
      await waitFor('the restarted gateway to stop', () => (pidAlive(newPid) ? null : true));
      const kept = await kernelState(gwNs);
      expect(kept.link).toMatch(/ftcp0/);
      expect(kept.rules).toMatch(/iif gs0 lookup 100/);
      const down = await execIn(gwNs, process.execPath, [FTCP, 'gateway', 'down', '--tun', 'ftcp0', '--state-dir', topo.stateDir]);
      expect(down.code, down.stderr).toBe(0);
      const gone = await kernelState(gwNs);
      expect(gone.link).toBe('');
      expect(gone.rules).not.toMatch(/lookup 100/);
      expect(gone.table.trim()).toBe('');
      expect(existsSync(join(topo.stateDir, 'ftcp0.json'))).toBe(false);
    } finally {
      await stopProcess(server);
      await labDown(name);
    }
    expect(await listLeftovers(name)).toEqual([]);
  }, 120_000);
});
