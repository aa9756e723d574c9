/**
 * `scripts/bench adopt-scale`: how long a gateway takes to list and adopt N open connections
 * from a log server, in one process, over the real log link on loopback UDP (no root, no lab):
 *
 *   MemoryLog (N connections, each with a state record) ── LogServer on 127.0.0.1 (UDP)
 *        ◀── log link ──▶ RemoteLog ── Gateway on a fake TUN: adopt() = claim, list, adopt
 *
 * Reported per N: *list* (RemoteLog.fetchActive alone, as a standby's follow does), *adopt*
 * (Gateway.adopt: claim + list + every flow in the table), *re-attached* (until the log server
 * answered every adopted connection's re-registration: the gateway can make their bytes stable).
 * A failure (the list refused, a timeout) is reported as such, with its message.
 *
 *   scripts/bench adopt-scale [--connections 1000,5000,10000] [--json]
 */
import { performance } from 'node:perf_hooks';
import { parseCli } from '../cli/args.js';
import { UsageError } from '../util/errors.js';
import { logger as rootLogger } from '../util/logger.js';
import { ipToU32 } from '../wire/addr.js';
import { FakeTun } from '../tun/fake.js';
import { Gateway } from '../gateway/gateway.js';
import { MemoryLog } from '../log/memory.js';
import type { ConnectionState } from '../log/state.js';
import { LogServer, UdpLogServer } from '../log/remote/server.js';
import { connectUdp, type RemoteLog } from '../log/remote/client.js';

const HELP = `usage: scripts/bench adopt-scale [--connections N,N,...] [--json]

Time to list and to adopt N open connections from a log server (in process, loopback UDP).
  --connections   comma-separated counts (default 1000,5000,10000; each 1..100000)
  --json          one JSON document`;

const SERVER = '10.77.0.2';
const PORT = 5001;
const KEY = Buffer.from('adopt-scale-bench-key-0123456789');

export interface AdoptScaleRow {
  connections: number;
  listMs: number | null;
  adoptMs: number | null;
  reattachedMs: number | null;
  adopted: number;
  error: string | null;
}

/** What a connection bound to its server's first incarnation holds (as a gateway writes it). */
function boundState(i: number): ConnectionState {
  return { update: 1, phase: 'LIVE', crashes: 0, incarnations: [], boundTo: { boot: (0x1000_0000_0000 + i).toString(16).padStart(16, '0'), generation: 1 } };
}

async function fill(store: MemoryLog, n: number): Promise<void> {
  const opt = Uint8Array.from([2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
  for (let i = 0; i < n; i++) {
    const id = await store.open({
      client: { addr: `10.76.${(i >> 8) & 255}.${i & 255}`, port: 10000 + (i % 50000) },
      server: { addr: SERVER, port: PORT },
      clientIsn: (i * 2654435761) >>> 0, serverIsn: (i * 40503 + 7) >>> 0,
      clientSynOptions: opt, serverSynOptions: opt,
    });
    store.append(id, 0, Buffer.alloc(100, i & 255));
    await store.setState(id, boundState(i));
  }
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

export async function measureAdoptScale(n: number): Promise<AdoptScaleRow> {
  // Quiet: the links' state changes and the adoption's warning are not the figure.
  rootLogger.level = 'fatal';
  const logger = rootLogger.child({ mod: 'bench' });
  const store = new MemoryLog();
  await fill(store, n);
  const udp = await UdpLogServer.listen({ server: new LogServer({ store, logger }), key: KEY, listen: [{ address: '127.0.0.1', port: 0 }] });
  const logs: RemoteLog[] = [];
  const remote = (): RemoteLog => {
    const l = connectUdp({ key: KEY, servers: [udp.address(0)], logger });
    logs.push(l);
    return l;
  };
  const row: AdoptScaleRow = { connections: n, listMs: null, adoptMs: null, reattachedMs: null, adopted: 0, error: null };
  try {
    // The list alone (a standby's follow), on a log link of its own.
    const lister = remote();
    let t0 = performance.now();
    const records = await lister.fetchActive({ timeoutMs: 120_000, pageTimeoutMs: 5000 });
    row.listMs = Math.round(performance.now() - t0);
    if (records.length !== n) throw new Error(`listed ${records.length} of ${n}`);
    // A restarted gateway: claim, list, adopt; then every adopted connection re-attached.
    const log = remote();
    const gw = new Gateway({ tun: new FakeTun('bench0'), services: [{ ip: ipToU32(SERVER), port: PORT }], log, logger, south: { maxFlows: Math.max(n, 1000) } });
    t0 = performance.now();
    const stats = await gw.adopt();
    row.adoptMs = Math.round(performance.now() - t0);
    row.adopted = stats.adopted;
    if (await until(() => log.linkStats().client.requests === 0, 120_000)) row.reattachedMs = Math.round(performance.now() - t0);
  } catch (err) {
    row.error = (err as Error).message;
  } finally {
    for (const l of logs) await l.shutdown();
    await udp.close();
  }
  return row;
}

export async function adoptScaleMain(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, { connections: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const counts = (values.connections ?? '1000,5000,10000').split(',').map(Number);
  if (counts.some((c) => !Number.isInteger(c) || c < 1 || c > 100_000)) throw new UsageError('--connections: counts of 1..100000');
  const rows: AdoptScaleRow[] = [];
  for (const n of counts) {
    const r = await measureAdoptScale(n);
    rows.push(r);
    if (!values.json) {
      const ms = (v: number | null): string => (v === null ? '—' : `${v} ms`);
      process.stdout.write(`${n} connections: list ${ms(r.listMs)}, adopt ${ms(r.adoptMs)} (${r.adopted} adopted), re-attached ${ms(r.reattachedMs)}${r.error ? `  FAILED: ${r.error}` : ''}\n`);
    }
  }
  if (values.json) process.stdout.write(`${JSON.stringify({ rows }, null, 2)}\n`);
  return rows.some((r) => r.error !== null) ? 1 : 0;
}
