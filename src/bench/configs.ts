/**
 * What the benchmark compares: four forwarding configurations (the table's columns) and
 * the metrics measured under each (its rows).
 *
 *   kernel          lab forward=kernel: the gw namespace routes in the kernel, no TUN
 *   gw-unprotected  lab forward=gateway, memory log; traffic to a port NOT in --protect
 *   gw-memory       same lab; a protected port, embedded memory log
 *   gw-disk         lab forward=gateway, embedded disk log (LMDB, fsync per commit); protected port
 *   gw-off-unprot   lab forward=gateway --offload (virtio-net header, TSO/CSUM), memory log; unprotected port
 *   gw-off-memory   same lab; a protected port, embedded memory log
 *
 * gw-unprotected and gw-memory share one lab (one gateway, protect=5001-5003): the
 * unprotected servers listen on 6001-6003 beside the protected ones.
 */
import type { ForwardMode, LabLogMode } from '../lab/index.js';

export type ConfigId = 'kernel' | 'gw-unprotected' | 'gw-memory' | 'gw-disk' | 'gw-off-unprot' | 'gw-off-memory';
export type LabId = 'kernel' | 'memory' | 'disk' | 'offload';
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
}

export interface LabSpec {
  id: LabId;
  forward: ForwardMode;
  log: LabLogMode;
  protect: number[];
  /** More `ftcp gateway` arguments (the offload lab: --offload). */
  extraGatewayArgs?: string[];
}

const PROTECTED_PORTS: Record<ServiceKind, number> = { upload: 5001, download: 5002, echo: 5003 };
const UNPROTECTED_PORTS: Record<ServiceKind, number> = { upload: 6001, download: 6002, echo: 6003 };
const PROTECT_LIST = Object.values(PROTECTED_PORTS);

export const CONFIGS: readonly BenchConfig[] = [
  { id: 'kernel', label: 'kernel forwarding', lab: 'kernel', protected: false, ports: PROTECTED_PORTS },
  { id: 'gw-unprotected', label: 'gateway, unprotected', lab: 'memory', protected: false, ports: UNPROTECTED_PORTS },
  { id: 'gw-memory', label: 'gateway, protected, memory log', lab: 'memory', protected: true, ports: PROTECTED_PORTS },
  { id: 'gw-disk', label: 'gateway, protected, disk log', lab: 'disk', protected: true, ports: PROTECTED_PORTS },
  { id: 'gw-off-unprot', label: 'gateway --offload, unprotected', lab: 'offload', protected: false, ports: UNPROTECTED_PORTS },
  { id: 'gw-off-memory', label: 'gateway --offload, protected, memory log', lab: 'offload', protected: true, ports: PROTECTED_PORTS },
];

export const CONFIG_IDS: readonly ConfigId[] = CONFIGS.map((c) => c.id);

export const LABS: Readonly<Record<LabId, LabSpec>> = {
  kernel: { id: 'kernel', forward: 'kernel', log: 'embedded', protect: [] },
  memory: { id: 'memory', forward: 'gateway', log: 'embedded', protect: PROTECT_LIST },
  disk: { id: 'disk', forward: 'gateway', log: 'embedded:disk', protect: PROTECT_LIST },
  offload: { id: 'offload', forward: 'gateway', log: 'embedded', protect: PROTECT_LIST, extraGatewayArgs: ['--offload'] },
};

export function configById(id: ConfigId): BenchConfig {
  return CONFIGS.find((c) => c.id === id)!;
}

/** Parses "kernel,gw-memory" (order of the table kept, duplicates dropped); undefined = all. */
export function parseConfigList(s: string | undefined): ConfigId[] | null {
  if (s === undefined) return [...CONFIG_IDS];
  const want = new Set(s.split(',').map((x) => x.trim()).filter((x) => x.length > 0));
  for (const w of want) if (!(CONFIG_IDS as readonly string[]).includes(w)) return null;
  return CONFIG_IDS.filter((id) => want.has(id));
}

/** Metrics, in table order. Throughput in Gb/s (10^9 bit/s), latency in µs. */
export type MetricId = 'upload' | 'download' | 'rttP50' | 'rttP99';

export interface MetricDef {
  id: MetricId;
  label: string;
  unit: 'Gb/s' | 'µs';
  /** How a gateway column compares with kernel forwarding. */
  compare: 'ratio' | 'added';
}

export const METRICS: readonly MetricDef[] = [
  { id: 'upload', label: 'single-stream upload', unit: 'Gb/s', compare: 'ratio' },
  { id: 'download', label: 'single-stream download', unit: 'Gb/s', compare: 'ratio' },
  { id: 'rttP50', label: 'request/response RTT p50', unit: 'µs', compare: 'added' },
  { id: 'rttP99', label: 'request/response RTT p99', unit: 'µs', compare: 'added' },
];
