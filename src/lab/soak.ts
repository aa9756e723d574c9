/**
 * `ftcp drill --soak N`: N randomized drills, one after the other, each in its own lab.
 *
 *   soak seed ──▶ rng ──▶ drill i: scenario, seed, crash count and points (--crash-at),
 *                          log mode, log fault (remote only), offloads, client sysctls,
 *                          sizes ──▶ argv ──▶ the CLI's own parser ──▶ runDrill
 *
 * Every drill is described by the `ftcp drill ...` command line that runs it, and that
 * command (not the plan) is what runs: a failure's printed command reproduces it. The same
 * soak seed yields the same drills (soakPlan is a pure function of seed and index).
 */
import { crashFractions, rng } from './placement.js';
import { SCENARIOS, LOG_FAULTS, type DrillOptions, type DrillReport, type Scenario } from './drill.js';
import { isRandomKind } from '../demo/random.js';

/** One randomized drill, as options and as the command line that asks for them. */
export interface SoakPlan {
  scenario: Scenario;
  seed: number;
  log: 'embedded' | 'embedded:disk' | 'remote';
  fault?: keyof typeof LOG_FAULTS;
  /** --crash-at (the count is its length), or --crashes for the trigger-placed scenarios. */
  crashAt?: number[];
  crashes?: number;
  offload: boolean;
  clientSysctls: Record<string, string>;
  bytes?: number;
  connections?: number;
  lines?: number;
}

const SYSCTLS: ReadonlyArray<Record<string, string>> = [
  { 'net.ipv4.tcp_sack': '0' },
  { 'net.ipv4.tcp_timestamps': '0' },
  { 'net.ipv4.tcp_window_scaling': '0' },
  { 'net.ipv4.tcp_sack': '0', 'net.ipv4.tcp_timestamps': '0' },
];
const FAULTS = Object.keys(LOG_FAULTS) as Array<keyof typeof LOG_FAULTS>;

/** Drill `index` of the soak with seed `soakSeed` (pure). */
export function soakPlan(soakSeed: number, index: number, scenarios: readonly Scenario[] = Object.keys(SCENARIOS)): SoakPlan {
  if (scenarios.length === 0) throw new RangeError('no scenario to soak');
  const rand = rng(((soakSeed >>> 0) * 1_000_003 + index * 7919 + 1) >>> 0);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const between = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const scenario = pick(scenarios);
  const spec = SCENARIOS[scenario]!;
  const logs = ['embedded', 'embedded:disk', 'remote'] as const;
  const log = pick(logs);
  const fault = log === 'remote' && rand() < 0.6 ? pick(FAULTS) : undefined;
  const plan: SoakPlan = { scenario, seed: between(1, 999_999), log, offload: rand() >= 0.25, clientSysctls: rand() < 0.35 ? { ...pick(SYSCTLS) } : {} };
  if (fault !== undefined) plan.fault = fault;
  // Crash count and points: the double crash needs its second crash in the replay (count
  // 2..3), the idle one is placed by the idle connections (count only).
  if (spec.trigger === 'idle') plan.crashes = 1;
  else {
    // A non-deterministic server's connections all end at the first crash (each reset for its
    // counted divergence): a second crash would have nothing left to hit (the drill fails it).
    const oneOnly = spec.kinds.some(isRandomKind);
    const n = oneOnly ? 1 : scenario === 'double-crash' ? between(2, 3) : scenario === 'crash-storm' ? between(2, 5) : between(1, 3);
    plan.crashAt = crashFractions(n, rand, 0.1, 0.8);
  }
  // Sizes: short drills (a soak counts crashes), larger where a log fault needs time to act,
  // and with room for every crash: each later crash waits for the clients to move again after
  // the restart, so a short client could finish before the last one (a drill that cannot
  // place a crash fails).
  const n = plan.crashAt?.length ?? 1;
  const streams = spec.kinds.some((k) => k === 'upload' || k === 'download');
  if (streams && spec.bytes === undefined) plan.bytes = (fault !== undefined ? between(100, 200) : between(20, 120)) * 1_000_000 + (n - 1) * 25_000_000;
  const lines = spec.kinds.some((k) => k === 'echo' || k === 'kv');
  if (lines && spec.lines === undefined) plan.lines = between(500, 3000) + (n - 1) * 1000;
  if (fault === 'log-restart') {
    // The server crash comes only after the log server is back: twice the transfer, so the
    // clients are still there for it (a kv drill of 3,113 lines had finished by then).
    if (plan.bytes !== undefined) plan.bytes *= 2;
    if (plan.lines !== undefined) plan.lines *= 2;
  }
  if (lines && spec.connections === undefined) plan.connections = between(5, 30);
  return plan;
}

/** The `ftcp drill` arguments that ask for `p`. */
export function planArgv(p: SoakPlan): string[] {
  const a = ['--scenario', p.scenario, '--seed', String(p.seed), '--log', p.log];
  if (p.fault !== undefined) a.push('--fault', p.fault);
  if (p.crashAt !== undefined) a.push('--crash-at', p.crashAt.join(','));
  if (p.crashes !== undefined) a.push('--crashes', String(p.crashes));
  if (p.bytes !== undefined) a.push('--bytes', String(p.bytes));
  if (p.connections !== undefined) a.push('--connections', String(p.connections));
  if (p.lines !== undefined) a.push('--lines', String(p.lines));
  if (!p.offload) a.push('--no-offload');
  const sc = Object.entries(p.clientSysctls);
  if (sc.length > 0) a.push('--client-sysctl', sc.map(([k, v]) => `${k}=${v}`).join(','));
  return a;
}

/** A shell command line (arguments with spaces or quotes single-quoted). */
export function shellCommand(argv: readonly string[]): string {
  return ['ftcp', 'drill', ...argv].map((x) => (/^[A-Za-z0-9_.,:=\/+-]+$/.test(x) ? x : `'${x.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export interface SoakSummary {
  soakSeed: number;
  drills: number;
  passed: number;
  /** Crash events (each kills every server of the scenario at once)… */
  crashes: number;
  /** …and the server processes they killed (kill -9), the soak's count of server crashes. */
  serverKills: number;
  connections: number;
  bytes: number;
  durationMs: number;
  failures: Array<{ index: number; command: string; failures: string[] }>;
}

export interface SoakOptions {
  drills: number;
  seed: number;
  scenarios?: Scenario[];
  /** The CLI's parser: the printed command is what runs. */
  parse(argv: string[]): Omit<DrillOptions, 'progress' | 'name'>;
  run(o: DrillOptions): Promise<DrillReport>;
  /** One line per drill and the summary. */
  out(line: string): void;
  progress?: (msg: string) => void;
}

export async function runSoak(o: SoakOptions): Promise<SoakSummary> {
  const t0 = Date.now();
  const sum: SoakSummary = { soakSeed: o.seed, drills: 0, passed: 0, crashes: 0, serverKills: 0, connections: 0, bytes: 0, durationMs: 0, failures: [] };
  const width = String(o.drills).length;
  for (let i = 0; i < o.drills; i++) {
    const argv = planArgv(soakPlan(o.seed, i, o.scenarios));
    const command = shellCommand(argv);
    o.progress?.(`drill ${i + 1}/${o.drills}: ${command}`);
    let line: string;
    try {
      const r = await o.run({ ...o.parse(argv), ...(o.progress ? { progress: (m: string) => o.progress!(`  ${m}`) } : {}) });
      const placed = r.crashes.filter((c) => c.killedAt > 0);
      const crashes = placed.length;
      const kills = placed.reduce((a, c) => a + c.servers.length, 0);
      const conns = r.clients.reduce((a, c) => a + c.connections, 0);
      const bytes = r.clients.reduce((a, c) => a + c.bytesSent + c.bytesReceived, 0);
      sum.drills++;
      sum.crashes += crashes;
      sum.serverKills += kills;
      sum.connections += conns;
      sum.bytes += bytes;
      if (r.ok) sum.passed++;
      else sum.failures.push({ index: i, command, failures: r.failures.slice(0, 5) });
      line = `${String(i + 1).padStart(width)} ${r.ok ? 'PASS' : 'FAIL'} ${(r.durationMs / 1000).toFixed(1).padStart(5)} s  ${crashes} crash(es) (${kills} servers killed) at ${r.crashes.map((c) => (c.killedAt > 0 ? `${(c.atFraction * 100).toFixed(0)}%` : '-')).join(',') || '-'}, ${conns} conns, ${(bytes / 1e6).toFixed(1)} MB  ${command}`
        + (r.ok ? '' : `\n${' '.repeat(width + 1)}  ${r.failures.slice(0, 3).join('\n' + ' '.repeat(width + 3))}`);
    } catch (err) {
      sum.drills++;
      const msg = (err as Error).message.split('\n')[0]!.slice(0, 300);
      sum.failures.push({ index: i, command, failures: [`error: ${msg}`] });
      line = `${String(i + 1).padStart(width)} FAIL (error: ${msg})  ${command}`;
    }
    o.out(line);
  }
  sum.durationMs = Date.now() - t0;
  o.out(formatSoakSummary(sum));
  return sum;
}

export function formatSoakSummary(s: SoakSummary): string {
  const lines = [
    '',
    `soak (seed ${s.soakSeed}): ${s.drills} drills, ${s.passed} held, ${s.failures.length} failed; ${s.serverKills} server crashes (kill -9) in ${s.crashes} crash events, ${s.connections} connections, ${(s.bytes / 1e9).toFixed(2)} GB moved, ${(s.durationMs / 60_000).toFixed(1)} min`,
  ];
  if (s.failures.length > 0) {
    lines.push('to reproduce each failure:');
    for (const f of s.failures) lines.push(`  ${f.command}    # drill ${f.index + 1}: ${f.failures[0] ?? ''}`);
  }
  lines.push(s.failures.length === 0 ? 'PASS: every drill held' : 'FAIL');
  return lines.join('\n');
}
