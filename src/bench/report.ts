/**
 * The benchmark's results and their three renderings: a plain-text table (stdout), a
 * Markdown table with the machine it ran on (for BENCHMARKS.md), and a JSON document.
 *
 * Every cell is the MEDIAN over the runs, with (min–max). Gateway columns are followed by
 * a comparison with kernel forwarding from the same run: the ratio of medians for
 * throughput, the difference of medians (added latency) for round-trip times.
 */
import { CONFIGS, METRICS, configById, type ConfigId, type LabId, type MetricDef, type MetricGroup, type MetricId } from './configs.js';
import { summarize, type Summary } from './stats.js';

export interface Machine {
  /** ISO 8601, when the run started. */
  date: string;
  /** `uname -r`. */
  kernel: string;
  /** /proc/cpuinfo "model name". */
  cpu: string;
  cores: number;
  node: string;
  /** /proc/loadavg (1, 5, 15 min) before the labs came up and after the last run. */
  loadavgStart: number[];
  loadavgEnd: number[];
}

export interface Settings {
  runs: number;
  /** Bytes per upload/download run. */
  bytes: number;
  /** Bytes of the unrecorded warm-up transfer per configuration and direction (0: none). */
  warmupBytes: number;
  roundTrips: number;
  rrWarmup: number;
  rrSize: number;
  configs: ConfigId[];
  /** The metric groups measured (rows printed). */
  metrics: MetricGroup[];
  /** Parallel connections of the `streams` rows. */
  streams: number;
  /** Measured seconds per iperf3 run (after one unrecorded second). */
  iperfSeconds: number;
  /** Short connections per set-up run, and how many in flight at once. */
  setupConnections: number;
  setupConcurrency: number;
}

/** The metrics of the chosen groups, in table order. */
export function chosenMetrics(s: Settings): MetricDef[] {
  return METRICS.filter((m) => s.metrics.includes(m.group));
}

export interface RunFailure {
  config: ConfigId;
  /** 1-based run number. */
  run: number;
  /** The measurement: upload, download, upload8, iperf3 -R -P 8, setup, rtt, ... */
  test: string;
  message: string;
}

/** The gateway's counters at the end of the benchmark (warm-ups included). */
export interface GatewayCounters {
  packets: number;
  protectedPackets: number;
  unprotectedTcp: number;
  dropped: number;
  acksLowered: number | null;
  acksHeld: number | null;
  /** CPU time of the gateway process (user + system, /proc/<pid>/stat), null when unknown. */
  cpuSeconds?: number | null;
}

export interface BenchResult {
  command: string;
  machine: Machine;
  settings: Settings;
  /** Per configuration and metric, the value of each run in order (null: that run failed). */
  samples: Record<ConfigId, Record<MetricId, Array<number | null>>>;
  failures: RunFailure[];
  /** Per gateway lab; absent for the kernel lab and when the status could not be read. */
  gateway: Partial<Record<LabId, GatewayCounters>>;
  /** Wall time of the whole benchmark, lab setup included. */
  durationS: number;
}

export interface Cell {
  summary: Summary | null;
  /** Gateway columns: median / kernel median (throughput) or median − kernel median (µs); else null. */
  vsKernel: number | null;
}

export type Table = Partial<Record<ConfigId, Record<MetricId, Cell>>>;

export function emptySamples(configs: readonly ConfigId[]): Record<ConfigId, Record<MetricId, Array<number | null>>> {
  const out = {} as Record<ConfigId, Record<MetricId, Array<number | null>>>;
  for (const c of configs) {
    out[c] = {} as Record<MetricId, Array<number | null>>;
    for (const m of METRICS) out[c][m.id] = [];
  }
  return out;
}

export function buildTable(r: BenchResult): Table {
  const table: Table = {};
  const ids = r.settings.configs;
  for (const id of ids) {
    const row = {} as Record<MetricId, Cell>;
    for (const m of METRICS) {
      const summary = summarize((r.samples[id]?.[m.id] ?? []).filter((x): x is number => x !== null));
      row[m.id] = { summary, vsKernel: null };
    }
    table[id] = row;
  }
  const k = table.kernel;
  if (k) {
    for (const id of ids) {
      if (id === 'kernel') continue;
      for (const m of METRICS) {
        const base = k[m.id].summary;
        const cell = table[id]![m.id];
        if (!base || !cell.summary) continue;
        cell.vsKernel = m.compare === 'ratio'
          ? (base.median > 0 ? cell.summary.median / base.median : null)
          : cell.summary.median - base.median;
      }
    }
  }
  return table;
}

// ---- number formatting ---------------------------------------------------------------

export function fmtValue(m: MetricDef, x: number): string {
  if (m.unit === 'Gb/s') return x.toFixed(x >= 10 ? 1 : 2);
  if (m.unit === 'conn/s') return String(Math.round(x));
  return x >= 100 ? String(Math.round(x)) : x.toFixed(1);
}

export function fmtCell(m: MetricDef, c: Cell, runs: number): string {
  if (!c.summary) return 'n/a';
  const s = c.summary;
  const partial = s.n < runs ? ` [${s.n}/${runs} runs]` : '';
  return `${fmtValue(m, s.median)} (${fmtValue(m, s.min)}–${fmtValue(m, s.max)})${partial}`;
}

export function fmtVsKernel(m: MetricDef, c: Cell): string {
  if (c.vsKernel === null) return 'n/a';
  if (m.compare === 'ratio') return `×${c.vsKernel.toFixed(2)}`;
  const d = c.vsKernel;
  const mag = Math.abs(d) >= 100 ? String(Math.round(Math.abs(d))) : Math.abs(d).toFixed(1);
  return `${d < 0 ? '−' : '+'}${mag} µs`;
}

interface Column { heading: string; cell: (m: MetricDef, c: Record<MetricId, Cell>) => string; config: ConfigId }

function columns(r: BenchResult): Column[] {
  const cols: Column[] = [];
  const hasKernel = r.settings.configs.includes('kernel');
  for (const id of r.settings.configs) {
    const label = configById(id).label;
    cols.push({ heading: label, config: id, cell: (m, row) => fmtCell(m, row[m.id], r.settings.runs) });
    if (hasKernel && id !== 'kernel') cols.push({ heading: 'vs kernel', config: id, cell: (m, row) => fmtVsKernel(m, row[m.id]) });
  }
  return cols;
}

function grid(r: BenchResult): { head: string[]; rows: string[][] } {
  const table = buildTable(r);
  const cols = columns(r);
  const head = ['metric', ...cols.map((c) => c.heading)];
  const rows = chosenMetrics(r.settings).map((m) => [`${m.label} (${m.unit})`, ...cols.map((c) => c.cell(m, table[c.config]!))]);
  return { head, rows };
}

export function settingsLine(s: Settings): string {
  const parts = [`${s.runs} runs per cell, median (min–max)`];
  if (s.metrics.includes('demo') || s.metrics.includes('streams')) {
    parts.push(`upload/download ${fmtBytes(s.bytes)} per run` +
      (s.metrics.includes('streams') ? ` (split over ${s.streams} connections in the ${s.streams}-stream rows)` : '') +
      (s.warmupBytes > 0 ? ` after an unrecorded ${fmtBytes(s.warmupBytes)} warm-up per direction` : ''));
  }
  if (s.metrics.includes('iperf')) parts.push(`iperf3: ${s.iperfSeconds} s measured after 1 s omitted, receiver's rate`);
  if (s.metrics.includes('setup')) parts.push(`set-up: ${s.setupConnections} short connections, ${s.setupConcurrency} at a time`);
  if (s.metrics.includes('rtt')) parts.push(`RTT: ${s.roundTrips} round trips of ${s.rrSize} B after ${s.rrWarmup} warm-up ones, one outstanding`);
  return parts.join('; ');
}

export function fmtBytes(n: number): string {
  if (n >= 1e9 && n % 1e7 === 0) return `${n / 1e9} GB`;
  if (n >= 1e6 && n % 1e4 === 0) return `${n / 1e6} MB`;
  if (n >= 1e3 && n % 10 === 0) return `${n / 1e3} kB`;
  return `${n} B`;
}

function failureLines(r: BenchResult): string[] {
  return r.failures.map((f) => `run ${f.run} ${f.config} ${f.test} failed: ${f.message}`);
}

function gatewayLines(r: BenchResult): string[] {
  const out: string[] = [];
  for (const [lab, g] of Object.entries(r.gateway) as Array<[LabId, GatewayCounters]>) {
    out.push(`gateway (${lab} lab): ${g.packets} packets through the TUN (protected ${g.protectedPackets}, ` +
      `unprotected TCP ${g.unprotectedTcp}, dropped ${g.dropped})` +
      (g.acksLowered !== null ? `; acks lowered ${g.acksLowered}, held ${g.acksHeld}` : '') +
      (g.cpuSeconds != null && g.packets > 0 ? `; gateway CPU ${g.cpuSeconds.toFixed(1)} s, ${((g.cpuSeconds * 1e6) / g.packets).toFixed(2)} µs per packet` : ''));
  }
  return out;
}

/** The plain-text table for a terminal. */
export function formatHuman(r: BenchResult): string {
  const { head, rows } = grid(r);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  const out = [
    `ftcp bench  ${r.machine.date}  kernel ${r.machine.kernel}  ${r.machine.cpu} (${r.machine.cores} cores)  node ${r.machine.node}`,
    settingsLine(r.settings),
    '',
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    '',
    ...gatewayLines(r),
    `load average before/after: ${r.machine.loadavgStart.join(' ')} / ${r.machine.loadavgEnd.join(' ')}; total ${r.durationS.toFixed(0)} s`,
    ...failureLines(r),
  ];
  return out.join('\n') + '\n';
}

const mdEscape = (s: string) => s.replace(/\|/g, '\\|');

/** A Markdown section ready to paste into BENCHMARKS.md. */
export function formatMarkdown(r: BenchResult): string {
  const { head, rows } = grid(r);
  const m = r.machine;
  const out = [
    `Date: ${m.date}  `,
    `Machine: ${mdEscape(m.cpu)}, ${m.cores} cores, Linux ${m.kernel}, Node ${m.node}  `,
    `Command: \`${r.command}\`  `,
    `Settings: ${settingsLine(r.settings)}.`,
    '',
    `| ${head.map(mdEscape).join(' | ')} |`,
    `|${head.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...rows.map((row) => `| ${row.map(mdEscape).join(' | ')} |`),
    '',
    ...gatewayLines(r).map((l) => `${l}.  `),
    `Load average before/after: ${m.loadavgStart.join(' ')} / ${m.loadavgEnd.join(' ')}; the whole benchmark took ${r.durationS.toFixed(0)} s.`,
    ...(r.failures.length ? ['', 'Failed runs (left out of the medians):', '', ...failureLines(r).map((l) => `* ${mdEscape(l)}`)] : []),
  ];
  return out.join('\n') + '\n';
}

/** The machine-readable document (`--json`): everything measured, plus the table's cells. */
export function toJsonDocument(r: BenchResult): Record<string, unknown> {
  const table = buildTable(r);
  const summary: Record<string, Record<string, unknown>> = {};
  for (const id of r.settings.configs) {
    summary[id] = {};
    for (const m of chosenMetrics(r.settings)) {
      const c = table[id]![m.id];
      summary[id]![m.id] = {
        unit: m.unit,
        ...(c.summary ?? { n: 0, median: null, min: null, max: null }),
        ...(id === 'kernel' ? {} : m.compare === 'ratio' ? { ratioToKernel: c.vsKernel } : { addedUsVsKernel: c.vsKernel }),
      };
    }
  }
  return {
    tool: 'ftcp bench',
    command: r.command,
    machine: r.machine,
    settings: r.settings,
    configurations: r.settings.configs.map((id) => {
      const c = configById(id);
      return { id: c.id, label: c.label, lab: c.lab, protected: c.protected, ports: c.ports };
    }),
    summary,
    samples: r.samples,
    failures: r.failures,
    gateway: r.gateway,
    durationS: r.durationS,
  };
}

/** All configuration ids, in table order (for help texts). */
export const ALL_CONFIGS = CONFIGS.map((c) => c.id).join(',');
