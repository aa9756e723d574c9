/**
 * What the benchmark compares: forwarding configurations (the table's columns) and the
 * metrics measured under each (its rows).
 *
 *   kernel           lab forward=kernel: the gw namespace routes in the kernel, no TUN
 *   tun-fwd          a plain TUN forwarder (./tunfwd.ts: offloads, no policy): the ceiling of any TUN gateway
 *   gw-unprotected   lab forward=gateway (TUN offloads, the default), memory log; a port NOT in --protect
 *   gw-memory        same lab; a protected port, embedded memory log
 *   gw-disk          lab forward=gateway, embedded disk log (LMDB, fsync per commit); protected port
 *   gw-plain-unprot  lab forward=gateway --no-offload (every packet at MTU size), memory log; unprotected port
 *   gw-plain-memory  same lab; a protected port, embedded memory log
 *   gw-memory-trust  as gw-memory, the gateway with --checksums trust (no checksum verified):
 *                    the same-run baseline of the verification's cost; not run by default
 *   gw-plain-trust   as gw-plain-memory with --checksums trust; not run by default
 *
 * gw-unprotected and gw-memory share one lab (one gateway, protect=5001-5004): the
 * unprotected servers listen on 6001-6004 beside the protected ones; likewise the plain pair.
 */
import type { ForwardMode, LabLogMode } from '../lab/index.js';

export type ConfigId = 'kernel' | 'tun-fwd' | 'gw-unprotected' | 'gw-memory' | 'gw-disk' | 'gw-plain-unprot' | 'gw-plain-memory' | 'gw-memory-trust' | 'gw-plain-trust';
export type LabId = 'kernel' | 'tunfwd' | 'memory' | 'disk' | 'plain' | 'trust' | 'plain-trust';
export type ServiceKind = 'upload' | 'download' | 'echo';

export interface BenchConfig {
  id: ConfigId;
  /** Column heading. */
  label: string;
  lab: LabId;
  /** Whether the ports used are in the gateway's --protect list. */
  protected: boolean;
  /** Server port per service. */
  ports: Record<ServiceKind, number>;
  /** The iperf3 server's port (`iperf3 -s`, beside the demo servers). */
  iperfPort: number;
  /** Run only when named in --configs (a baseline for one question, not a column of the default table). */
  onRequest?: boolean;
}

export interface LabSpec {
  id: LabId;
  forward: ForwardMode;
  log: LabLogMode;
  protect: number[];
  /** More `ftcp gateway` arguments (the plain lab: --no-offload). */
  extraGatewayArgs?: string[];
  /** Run this instead of `ftcp` in the gw namespace (the plain TUN forwarder). */
  tunForwarder?: boolean;
}

const PROTECTED_PORTS: Record<ServiceKind, number> = { upload: 5001, download: 5002, echo: 5003 };
const UNPROTECTED_PORTS: Record<ServiceKind, number> = { upload: 6001, download: 6002, echo: 6003 };
const PROTECTED_IPERF = 5004;
const UNPROTECTED_IPERF = 6004;
const PROTECT_LIST = [...Object.values(PROTECTED_PORTS), PROTECTED_IPERF];

export const CONFIGS: readonly BenchConfig[] = [
  { id: 'kernel', label: 'kernel forwarding', lab: 'kernel', protected: false, ports: PROTECTED_PORTS, iperfPort: PROTECTED_IPERF },
  { id: 'tun-fwd', label: 'plain TUN forwarder', lab: 'tunfwd', protected: false, ports: PROTECTED_PORTS, iperfPort: PROTECTED_IPERF },
  { id: 'gw-unprotected', label: 'gateway, unprotected', lab: 'memory', protected: false, ports: UNPROTECTED_PORTS, iperfPort: UNPROTECTED_IPERF },
  { id: 'gw-memory', label: 'gateway, protected, memory log', lab: 'memory', protected: true, ports: PROTECTED_PORTS, iperfPort: PROTECTED_IPERF },
  { id: 'gw-disk', label: 'gateway, protected, disk log', lab: 'disk', protected: true, ports: PROTECTED_PORTS, iperfPort: PROTECTED_IPERF },
  { id: 'gw-plain-unprot', label: 'gateway --no-offload, unprotected', lab: 'plain', protected: false, ports: UNPROTECTED_PORTS, iperfPort: UNPROTECTED_IPERF },
  { id: 'gw-plain-memory', label: 'gateway --no-offload, protected, memory log', lab: 'plain', protected: true, ports: PROTECTED_PORTS, iperfPort: PROTECTED_IPERF },
  { id: 'gw-memory-trust', label: 'gateway --checksums trust, protected, memory log', lab: 'trust', protected: true, ports: PROTECTED_PORTS, iperfPort: PROTECTED_IPERF, onRequest: true },
  { id: 'gw-plain-trust', label: 'gateway --no-offload --checksums trust, protected, memory log', lab: 'plain-trust', protected: true, ports: PROTECTED_PORTS, iperfPort: PROTECTED_IPERF, onRequest: true },
];

export const CONFIG_IDS: readonly ConfigId[] = CONFIGS.map((c) => c.id);

export const LABS: Readonly<Record<LabId, LabSpec>> = {
  kernel: { id: 'kernel', forward: 'kernel', log: 'embedded', protect: [] },
  tunfwd: { id: 'tunfwd', forward: 'gateway', log: 'embedded', protect: [], tunForwarder: true },
  memory: { id: 'memory', forward: 'gateway', log: 'embedded', protect: PROTECT_LIST },
  disk: { id: 'disk', forward: 'gateway', log: 'embedded:disk', protect: PROTECT_LIST },
  plain: { id: 'plain', forward: 'gateway', log: 'embedded', protect: PROTECT_LIST, extraGatewayArgs: ['--no-offload'] },
  trust: { id: 'trust', forward: 'gateway', log: 'embedded', protect: PROTECT_LIST, extraGatewayArgs: ['--checksums', 'trust'] },
  'plain-trust': { id: 'plain-trust', forward: 'gateway', log: 'embedded', protect: PROTECT_LIST, extraGatewayArgs: ['--no-offload', '--checksums', 'trust'] },
};

export function configById(id: ConfigId): BenchConfig {
  return CONFIGS.find((c) => c.id === id)!;
}

/** Parses "kernel,gw-memory" (order of the table kept, duplicates dropped); undefined = all but the on-request ones. */
export function parseConfigList(s: string | undefined): ConfigId[] | null {
  if (s === undefined) return CONFIGS.filter((c) => c.onRequest !== true).map((c) => c.id);
  const want = new Set(s.split(',').map((x) => x.trim()).filter((x) => x.length > 0));
  for (const w of want) if (!(CONFIG_IDS as readonly string[]).includes(w)) return null;
  return CONFIG_IDS.filter((id) => want.has(id));
}

/** Metrics, in table order. Throughput in Gb/s (10^9 bit/s), latency in µs, set-up rate in connections/s. */
export type MetricId =
  | 'upload' | 'download' | 'upload8' | 'download8'
  | 'iperfUp' | 'iperfDown' | 'iperfUp8' | 'iperfDown8'
  | 'setupRate' | 'rttP50' | 'rttP99';

/**
 * Metrics are measured in groups (`--metrics`):
 *   demo     single-stream upload/download with the demo programs (byte-checked by SHA-256)
 *   streams  the same with 8 parallel connections (--streams), bytes split among them
 *   iperf    iperf3, 1 and 8 streams each way (not byte-checked; the load tool the kernel is measured with)
 *   setup    short connections per second (connect, one echoed line, close; ./setup.ts)
 *   rtt      request/response round trips, one outstanding (./rr.ts)
 */
export type MetricGroup = 'demo' | 'streams' | 'iperf' | 'setup' | 'rtt';
export const METRIC_GROUPS: readonly MetricGroup[] = ['demo', 'streams', 'iperf', 'setup', 'rtt'];

export interface MetricDef {
  id: MetricId;
  label: string;
  unit: 'Gb/s' | 'µs' | 'conn/s';
  /** How a gateway column compares with kernel forwarding. */
  compare: 'ratio' | 'added';
  group: MetricGroup;
}

export const METRICS: readonly MetricDef[] = [
  { id: 'upload', label: 'single-stream upload', unit: 'Gb/s', compare: 'ratio', group: 'demo' },
  { id: 'download', label: 'single-stream download', unit: 'Gb/s', compare: 'ratio', group: 'demo' },
  { id: 'upload8', label: '8-stream upload', unit: 'Gb/s', compare: 'ratio', group: 'streams' },
  { id: 'download8', label: '8-stream download', unit: 'Gb/s', compare: 'ratio', group: 'streams' },
  { id: 'iperfUp', label: 'iperf3 upload, 1 stream', unit: 'Gb/s', compare: 'ratio', group: 'iperf' },
  { id: 'iperfDown', label: 'iperf3 download, 1 stream', unit: 'Gb/s', compare: 'ratio', group: 'iperf' },
  { id: 'iperfUp8', label: 'iperf3 upload, 8 streams', unit: 'Gb/s', compare: 'ratio', group: 'iperf' },
  { id: 'iperfDown8', label: 'iperf3 download, 8 streams', unit: 'Gb/s', compare: 'ratio', group: 'iperf' },
  { id: 'setupRate', label: 'connection set-up rate', unit: 'conn/s', compare: 'ratio', group: 'setup' },
  { id: 'rttP50', label: 'request/response RTT p50', unit: 'µs', compare: 'added', group: 'rtt' },
  { id: 'rttP99', label: 'request/response RTT p99', unit: 'µs', compare: 'added', group: 'rtt' },
];

/** Parses "demo,iperf" (table order kept); undefined = all; null = an unknown name. */
export function parseMetricGroups(s: string | undefined): MetricGroup[] | null {
  if (s === undefined) return [...METRIC_GROUPS];
  const want = new Set(s.split(',').map((x) => x.trim()).filter((x) => x.length > 0));
  for (const w of want) if (!(METRIC_GROUPS as readonly string[]).includes(w)) return null;
  return METRIC_GROUPS.filter((g) => want.has(g));
}
