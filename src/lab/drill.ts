/**
 * `ftcp drill`: a scenario run end to end in a fresh namespace lab, with a report.
 *
 *   1. lab up (gateway protecting the demo ports, embedded log, stability trace)
 *   2. demo servers in <n>-server; tcpdump at the client's interface (and the server's)
 *   3. the scenario's clients in <n>-client, all at once; every byte checked by SHA-256
 *   4. the captures checked: no ack beyond the stable point reached the client, no RST,
 *      no FIN from a server that had not finished, no ICMP error
 *   5. lab down, whatever happened
 *
 * Exit status 0 only if every connection survived byte-exact and the checks hold.
 */
import { mkdtemp, mkdir, readFile, rm, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { labUp, labDown, randomLabName } from './lab.js';
import { startDemoServer, runDemoClient, startCapture, gatewayStatus, stopProcess } from './procs.js';
import { ADDRESSES } from './topology.js';
import { checkAckInvariant, parseStabilityTrace, type AckInvariantReport } from '../inspect/ack-invariant.js';
import { summarizeCapture, type CaptureSummary } from '../inspect/summary.js';
import { inspectCapture } from '../inspect/inspect.js';
import { ipToU32 } from '../wire/addr.js';
import type { DemoClientReport } from '../demo/client.js';
import { UsageError } from '../util/errors.js';

export const SCENARIOS = {
  upload: ['upload'],
  download: ['download'],
  echo: ['echo'],
  kv: ['kv'],
  mixed: ['upload', 'download', 'echo', 'kv'],
} as const;
export type Scenario = keyof typeof SCENARIOS;
type Kind = (typeof SCENARIOS)[Scenario][number];

const PORTS: Record<Kind, number> = { upload: 5001, download: 5002, echo: 5003, kv: 5004 };

export interface DrillOptions {
  scenario: Scenario;
  log: 'embedded' | 'embedded:disk';
  /** upload/download bytes per connection. */
  bytes: number;
  /** echo/kv connections (upload/download use one each unless `streams` is set). */
  connections: number;
  streams: number;
  lines: number;
  seed: number;
  /** Keep the captures and the trace in this directory. */
  pcapDir?: string;
  name?: string;
  /** Progress lines (stderr). */
  progress?: (msg: string) => void;
}

export interface DrillReport {
  scenario: Scenario;
  lab: string;
  log: string;
  ok: boolean;
  failures: string[];
  clients: Array<{ kind: Kind; connections: number; ok: number; failed: number; bytesSent: number; bytesReceived: number; throughputMbps: number; maxStallMs: number; errors: DemoClientReport['errors'] }>;
  longestStallMs: number;
  invariant: AckInvariantReport;
  client: CaptureSummary;
  /** `ftcp inspect`'s verdicts on the client-side capture: verdict → connections. */
  verdicts: Record<string, number>;
  gateway: { packets: number; protectedPackets: number; bytesLogged: number; acksLowered: number; acksHeld: number; heldReleased: number; dropped: number };
  durationMs: number;
}

export function checkScenario(s: string): Scenario {
  if (!(s in SCENARIOS)) throw new UsageError(`--scenario: expected one of ${Object.keys(SCENARIOS).join(', ')}; got '${s}'`);
  return s as Scenario;
}

export async function runDrill(opts: DrillOptions): Promise<DrillReport> {
  const say = opts.progress ?? (() => {});
  const kinds = SCENARIOS[opts.scenario] as readonly Kind[];
  const name = opts.name ?? randomLabName('ftcpd');
  const work = await mkdtemp(path.join(tmpdir(), 'ftcp-drill-'));
  const trace = path.join(work, 'stable.trace');
  const servers: ChildProcess[] = [];
  const captures: Array<{ stop(): Promise<string> }> = [];
  const t0 = Date.now();
  say(`lab ${name}: up (log ${opts.log})`);
  const topo = await labUp({ name, protect: kinds.map((k) => PORTS[k]), log: opts.log, extraGatewayArgs: ['--stability-trace', trace] });
  try {
    for (const k of kinds) servers.push(await startDemoServer(topo.namespaces.server, k, `${ADDRESSES.server}:${PORTS[k]}`));
    captures.push(await startCapture(topo.namespaces.client, topo.interfaces.client, path.join(work, 'client.pcap')));
    captures.push(await startCapture(topo.namespaces.server, topo.interfaces.server, path.join(work, 'server.pcap')));
    say(`running ${kinds.join(' + ')}`);
    const reports = await Promise.all(
      kinds.map((k) => {
        const conns = k === 'upload' || k === 'download' ? opts.streams : opts.connections;
        const args = ['--kind', k, '--connect', `${ADDRESSES.server}:${PORTS[k]}`, '--connections', String(conns), '--seed', String(opts.seed)];
        if (k === 'upload' || k === 'download') args.push('--bytes', String(opts.bytes));
        else args.push('--lines', String(opts.lines));
        return runDemoClient(topo.namespaces.client, args).then((r) => ({ kind: k, r }));
      }),
    );
    for (const c of captures) await c.stop();
    captures.length = 0;
    const st = await gatewayStatus(name);
    // Let the gateway's trace writer drain before reading it.
    await new Promise((r) => setTimeout(r, 200));
    const pcap = await readFile(path.join(work, 'client.pcap'));
    const traced = parseStabilityTrace(await readFile(trace, 'utf8'));
    const invariant = checkAckInvariant(pcap, traced, kinds.map((k) => PORTS[k]));
    const inspected = inspectCapture(pcap, { trace: traced, serverPorts: kinds.map((k) => PORTS[k]) });
    const verdicts: Record<string, number> = {};
    for (const c of inspected.connections) verdicts[c.verdict] = (verdicts[c.verdict] ?? 0) + 1;
    const client = summarizeCapture(pcap, kinds.map((k) => PORTS[k]), ipToU32(ADDRESSES.client));

    const failures: string[] = [];
    const clients = reports.map(({ kind, r }) => {
      if (!r.allOk) failures.push(`${kind}: ${r.failed} of ${r.connections} connections failed (${r.errors.slice(0, 3).map((e) => `${e.code} ${e.message}`).join('; ')})`);
      return {
        kind, connections: r.connections, ok: r.ok, failed: r.failed, bytesSent: r.bytesSent, bytesReceived: r.bytesReceived,
        throughputMbps: r.throughputMbps, maxStallMs: Math.max(0, ...r.perConnection.map((c) => c.maxStallMs)), errors: r.errors,
      };
    });
    if (invariant.violations.length > 0) failures.push(`${invariant.violations.length} acks beyond the stable point reached the client`);
    if (invariant.checked === 0) failures.push('no server ack was seen at the client: the capture did not work');
    if (client.rstToClient > 0) failures.push(`${client.rstToClient} RST reached the client`);
    if (client.icmpToClient > 0) failures.push(`${client.icmpToClient} ICMP packets reached the client`);
    for (const c of inspected.connections) {
      if (c.verdict !== 'ok') failures.push(`inspect: ${c.verdict}: ${c.reason}`);
      if (failures.length > 20) break;
    }
    if (opts.pcapDir) {
      await mkdir(opts.pcapDir, { recursive: true });
      for (const f of ['client.pcap', 'server.pcap', 'stable.trace']) await copyFile(path.join(work, f), path.join(opts.pcapDir, f));
    }
    return {
      scenario: opts.scenario, lab: name, log: opts.log, ok: failures.length === 0, failures, clients,
      longestStallMs: Math.max(0, ...clients.map((c) => c.maxStallMs)),
      invariant: { ...invariant, violations: invariant.violations.slice(0, 10) },
      client,
      verdicts,
      gateway: {
        packets: st.stats.packets, protectedPackets: st.stats.protectedPackets, bytesLogged: st.south.bytesLogged,
        acksLowered: st.south.acksLowered, acksHeld: st.south.acksHeld, heldReleased: st.south.heldReleased, dropped: st.stats.dropped,
      },
      durationMs: Date.now() - t0,
    };
  } finally {
    for (const c of captures) await c.stop().catch(() => {});
    for (const s of servers) await stopProcess(s).catch(() => {});
    say(`lab ${name}: down`);
    await labDown(name);
    await rm(work, { recursive: true, force: true });
  }
}

export function formatDrill(r: DrillReport): string {
  const mb = (n: number) => (n / 1e6).toFixed(1);
  const lines = [
    `ftcp drill: scenario ${r.scenario}, log ${r.log}, lab ${r.lab} (${(r.durationMs / 1000).toFixed(1)} s)`,
    '',
    '  kind      conns  ok  failed   sent MB   recv MB   Mb/s    longest stall',
  ];
  for (const c of r.clients) {
    lines.push(`  ${c.kind.padEnd(8)} ${String(c.connections).padStart(5)} ${String(c.ok).padStart(3)} ${String(c.failed).padStart(7)} ${mb(c.bytesSent).padStart(9)} ${mb(c.bytesReceived).padStart(9)} ${c.throughputMbps.toFixed(0).padStart(6)}    ${c.maxStallMs.toFixed(1)} ms`);
  }
  lines.push(
    '',
    `  at the client: ${r.client.connections} connections, ${r.client.rstToClient} RST, ${r.client.icmpToClient} ICMP`,
    `  stable-ack invariant: ${r.invariant.checked} acks checked, ${r.invariant.violations.length} beyond the stable point`,
    `  inspect verdicts (client side): ${Object.entries(r.verdicts).map(([v, n]) => `${n} ${v}`).join(', ') || 'none'}`,
    `  gateway: ${r.gateway.packets} packets (${r.gateway.protectedPackets} protected), ${mb(r.gateway.bytesLogged)} MB logged, acks lowered ${r.gateway.acksLowered}, held ${r.gateway.acksHeld}, released ${r.gateway.heldReleased}, dropped ${r.gateway.dropped}`,
    `  longest stall any client saw: ${r.longestStallMs.toFixed(1)} ms`,
    '',
    r.ok ? 'PASS: every connection byte-exact, invariant held' : `FAIL:\n${r.failures.map((f) => `  - ${f}`).join('\n')}`,
  );
  return lines.join('\n');
}
