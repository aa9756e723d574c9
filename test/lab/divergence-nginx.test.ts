/**
 * nginx's Date header across a restart, under each divergence policy (issue 13): one download
 * of a 64 MiB file through the gateway, whose client stops reading after 1 MiB of body (its
 * receive window closes, nginx blocks mid-file). 1.2 s after the client received the response
 * header, nginx is stopped (SIGSTOP), the client reads everything that had been sent and waits
 * for more, and nginx is killed -9. The restarted nginx, fed the replayed GET, writes a Date
 * in a later second: its output differs from what the client has in those bytes (block 0 of
 * the digest), and in nothing else (the same file, same Last-Modified and ETag).
 *
 *   policy reset     the rebuild fails DIVERGED: the client gets one RST (ECONNRESET), and every
 *                    byte it got before is a prefix of the right response (no spliced byte)
 *   policy continue  the download completes byte-exact (SHA-256 of the body), with the ORIGINAL
 *                    Date (a second before the kill), no RST; the divergence counted as continued
 *
 * The time between the header and the kill is measured from the client's own report of the
 * header (its receive time), not guessed. The client has read all it was sent before the kill
 * (its bytes = the gateway's sndMax = cliAcked) and waits in a read: an RST then reaches an
 * empty receive queue, and the read fails with ECONNRESET. (Behind queued data Linux hands the
 * data over, then EOF, not the error: the RST itself is checked in the capture either way.)
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildProcess } from 'node:child_process';
import { ADDRESSES, REPO_ROOT, labDown, labUp, listLeftovers, randomLabName, spawnIn } from '../../src/lab/index.js';
import { gatewayStatus, startCapture, startSupervisedProgram, stopProcess, type SupervisedServer } from '../../src/lab/procs.js';
import { prepareNginx } from '../../src/lab/realservers.js';
import { summarizeCapture } from '../../src/inspect/summary.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { writeHttpTree } from '../../src/demo/real-clients.js';
import { ensureBuilt } from '../support/build.js';

beforeAll(() => ensureBuilt());

const CLIENT = path.join(REPO_ROOT, 'test', 'lab', 'fixtures', 'paused-get.mjs');
const ORACLE = `${ADDRESSES.gwServer}:7071`;
const PORT = 8080;
const SERVICE = `${ADDRESSES.server}:${PORT}`;
const BIG = 64 * 2 ** 20;
const PAUSE_AFTER = 2 ** 20;
/** Header received → nginx stopped, then killed: more than a second, so the restarted nginx's Date is another second's. */
const KILL_AFTER_HEADER_MS = 1200;

interface Header { status: number; date: string | null; contentLength: number; headerBytes: number; at: number }
interface ClientReport {
  header: Header | null;
  body: number;
  firstMismatch: number | null;
  extra: number;
  complete: boolean;
  sha256: string | null;
  error: string | null;
}

interface Run {
  report: ClientReport;
  sha256: string;
  pausedAt: number;
  killedAt: number;
  killedComm: string;
  /** Header and body bytes the client had read at the kill (= what the gateway had sent). */
  readAtKill: number;
  /** ms from the SIGSTOP to the client having read everything sent. */
  drainedMs: number;
  /** ms from the kill: the restarted nginx listening, the client's report. */
  listeningMs: number;
  endedMs: number;
  rstToClient: number;
  finToClient: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  divergence: any;
  north: Record<string, number>;
}

/** The client's JSON lines, as they come: resolves the first that has `key`. */
function lines(child: ChildProcess): ((key: string, timeoutMs: number) => Promise<Record<string, unknown>>) & { readCount(): number } {
  const seen: Array<Record<string, unknown>> = [];
  let read = 0;
  const waiters: Array<{ key: string; resolve: (o: Record<string, unknown>) => void }> = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const o = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
      buf = buf.slice(nl + 1);
      if (typeof o.read === 'number') {
        read = o.read;
        continue; // progress lines are not kept
      }
      seen.push(o);
      for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i]!.key in o) waiters.splice(i, 1)[0]!.resolve(o);
    }
  });
  const next = (key: string, timeoutMs: number): Promise<Record<string, unknown>> => {
    const have = seen.find((o) => key in o);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`paused-get: no "${key}" line within ${timeoutMs} ms (got ${JSON.stringify(seen)})`)), timeoutMs);
      waiters.push({ key, resolve: (o) => { clearTimeout(t); resolve(o); } });
    });
  };
  return Object.assign(next, { readCount: () => read });
}

async function pausedDownload(policy: 'reset' | 'continue'): Promise<Run> {
  const lab = randomLabName('dvng');
  const work = await mkdtemp(path.join(tmpdir(), 'ftcp-dvng-'));
  await chmod(work, 0o755);
  let server: SupervisedServer | undefined;
  let client: ChildProcess | undefined;
  let capture: { stop(): Promise<string> } | undefined;
  try {
    const [big] = await writeHttpTree(path.join(work, 'www'), { seed: 13, bigBytes: BIG, smallFiles: 0 });
    const topo = await labUp({ name: lab, protect: [PORT], divergence: `${SERVICE}=${policy}` });
    const argv = await prepareNginx(path.join(work, 'nginx'), ADDRESSES.server, PORT, path.join(work, 'www'));
    server = await startSupervisedProgram(topo.namespaces.server, 'nginx', SERVICE, ORACLE, argv, 50);
    capture = await startCapture(topo.namespaces.client, topo.interfaces.client, path.join(work, 'client.pcap'));
    const [pid] = await server.programPids();

    client = spawnIn(topo.namespaces.client, process.execPath, [CLIENT, ADDRESSES.server, String(PORT), big!.path, path.join(work, 'www', big!.path), String(PAUSE_AFTER)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let clientErr = '';
    client.stderr!.on('data', (d: Buffer) => { clientErr = (clientErr + d.toString()).slice(-2000); });
    const next = lines(client);
    const header = (await next('header', 15_000)).header as Header;
    const pausedAt = (await next('paused', 15_000)).paused as number;

    // KILL_AFTER_HEADER_MS after the client had the header (the same clock): nginx stops sending,
    // the client reads all it was sent (bounded wait: its count = the gateway's sndMax = cliAcked).
    await sleep(Math.max(0, header.at + KILL_AFTER_HEADER_MS - Date.now()));
    process.kill(pid!, 'SIGSTOP');
    const stoppedAt = Date.now();
    client.stdin!.write('resume\n');
    let readAtKill = -1;
    for (let last = -2; Date.now() - stoppedAt < 20_000; await sleep(100)) {
      const flow = ((await gatewayStatus(lab)).flows ?? []).find((f: { flow: string }) => f.flow.endsWith(`>${SERVICE}`));
      const read = next.readCount();
      if (flow !== undefined && flow.sndMax === flow.cliAcked && flow.sndMax === read && read === last) {
        readAtKill = read;
        break;
      }
      last = read;
    }
    expect(readAtKill, 'the client read everything nginx had sent').toBeGreaterThan(pausedAt);
    const drainedMs = Date.now() - stoppedAt;
    const killedComm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    process.kill(pid!, 'SIGKILL');
    const killedAt = Date.now();
    server.generation++;
    const listeningMs = (await server.listening(server.generation, 30_000)) - killedAt;
    const report = (await next('report', 40_000).catch(async (e: Error) => {
      // A hang: what the gateway thinks of the connection, in the message.
      const now = await gatewayStatus(lab).catch(() => null);
      throw new Error(`${e.message}\nclient stderr: ${clientErr} exit ${client!.exitCode}\ngateway: flows ${JSON.stringify(now?.flows)} divergence ${JSON.stringify(now?.divergence)} north ${JSON.stringify(now?.north)}`);
    })).report as ClientReport;
    const endedMs = Date.now() - killedAt;
    await capture.stop();
    const st = await gatewayStatus(lab);
    const pcap = await readFile(path.join(work, 'client.pcap'));
    const run: Run = {
      report, sha256: big!.sha256, pausedAt, killedAt, killedComm, readAtKill, drainedMs, listeningMs, endedMs,
      ...(({ rstToClient, finToClient }) => ({ rstToClient, finToClient }))(summarizeCapture(pcap, [PORT], ipToU32(ADDRESSES.client))),
      divergence: st.divergence, north: st.north ?? {},
    };
    console.log([
      `nginx under ${policy} (${lab}): header at ${header.at}, Date "${header.date}", paused after ${pausedAt} body bytes; nginx stopped, client read ${readAtKill} bytes in ${drainedMs} ms; killed ${killedComm} ${killedAt - header.at} ms after the header`,
      `from the kill: listening ${listeningMs} ms, client done ${endedMs} ms`,
      `client: ${report.body} of ${report.header?.contentLength} body bytes, complete ${report.complete}, error ${report.error}, first mismatch ${report.firstMismatch}, extra ${report.extra}`,
      `capture: ${run.rstToClient} RST, ${run.finToClient} FIN to the client; gateway: rebuildFailed ${run.north.rebuildFailed ?? 0} (DIVERGED ${run.north.failedDiverged ?? 0})`,
      `divergence ${JSON.stringify(st.divergence)}`,
    ].join('\n  '));
    return run;
  } finally {
    if (client && client.exitCode === null && client.signalCode === null) {
      client.kill('SIGKILL');
      await once(client, 'exit').catch(() => {});
    }
    await capture?.stop().catch(() => {});
    if (server) await stopProcess(server.child).catch(() => {});
    await labDown(lab);
    await rm(work, { recursive: true, force: true });
    expect(await listLeftovers(lab)).toEqual([]);
  }
}

/** What both policies share: a real kill of nginx, well after the header, one divergence counted for the service. */
function expectDivergedOnce(r: Run, policy: string): void {
  expect(r.killedComm).toBe('nginx');
  const h = r.report.header!;
  expect(h.status).toBe(200);
  expect(h.contentLength).toBe(BIG);
  expect(r.killedAt - h.at).toBeGreaterThanOrEqual(KILL_AFTER_HEADER_MS);
  // The client was mid-file at the kill (paused), and nothing it received is wrong.
  expect(r.pausedAt).toBeLessThan(BIG);
  expect(r.report.firstMismatch).toBeNull();
  expect(r.report.extra).toBe(0);
  expect(r.divergence.policies).toEqual({ [SERVICE]: policy });
  expect(r.divergence.byService).toEqual({ [SERVICE]: 1 });
  expect(r.divergence.total).toBe(1);
  expect(r.divergence.shortOutputs).toBe(0);
  expect(r.divergence.digestsAbandoned).toBe(0);
  // Found in the header's block: the first block of the output, hashed (the client had acknowledged it).
  expect(r.divergence.last).toMatchObject({ service: SERVICE, policy, block: 0 });
}

describe('nginx restarted in another second: the Date header under each divergence policy (lab)', () => {
  it('reset: the client gets one RST and, before it, only bytes of the right response', async () => {
    const r = await pausedDownload('reset');
    expectDivergedOnce(r, 'reset');
    expect(r.report.error).toBe('ECONNRESET');
    expect(r.report.complete).toBe(false);
    // Nothing after the kill reached the client: it ends with what the dead nginx had sent.
    expect(r.report.header!.headerBytes + r.report.body).toBe(r.readAtKill);
    expect(r.finToClient).toBe(0);
    expect(r.divergence.resets).toBe(1);
    expect(r.divergence.continued).toBe(0);
    expect(r.north.failedDiverged).toBe(1);
    expect(r.rstToClient).toBe(1);
  }, 120_000);

  it('continue: the download completes byte-exact with the original Date header, no RST', async () => {
    const r = await pausedDownload('continue');
    expectDivergedOnce(r, 'continue');
    expect(r.report.error).toBeNull();
    expect(r.report.complete).toBe(true);
    expect(r.report.sha256).toBe(r.sha256);
    // The original Date: its whole second lies before the kill (the restarted nginx's cannot).
    const date = Date.parse(r.report.header!.date!);
    expect(Number.isFinite(date)).toBe(true);
    expect(date + 1000).toBeLessThanOrEqual(r.killedAt);
    expect(r.divergence.continued).toBe(1);
    expect(r.divergence.resets).toBe(0);
    // Compared on past the Date to the end of what the client may have had: only the header's
    // block differed, the rest of the file is verified equal.
    expect(r.divergence.differingBlocks).toBe(1);
    expect(r.divergence.comparedBytes).toBeGreaterThanOrEqual(r.readAtKill); // end0: all the client read
    expect(r.north.rebuildFailed ?? 0).toBe(0);
    expect(r.rstToClient).toBe(0);
  }, 120_000);
});
