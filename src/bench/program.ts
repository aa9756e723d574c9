/**
 * What the benchmark's programs share: running a module as a program (rr.ts, setup.ts,
 * tunfwd.ts), and the frame of a `scripts/bench <sub>` benchmark (log, scale).
 */
import { realpathSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { pathToFileURL } from 'node:url';
import { FtcpError, UsageError } from '../util/errors.js';

/** True when the module at `moduleUrl` is the program node was asked to run (not an import). */
export function isEntry(moduleUrl: string): boolean {
  const argv1 = process.argv[1];
  if (!argv1) return false;
  try {
    return moduleUrl === pathToFileURL(realpathSync(argv1)).href;
  } catch {
    return false;
  }
}

/** Runs `main(argv)` as the program `name` when `moduleUrl` is the entry: exit 2 on a usage error, 1 on others. */
export function runIfEntry(moduleUrl: string, name: string, main: (argv: string[]) => Promise<number>): void {
  if (!isEntry(moduleUrl)) return;
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (err: unknown) => {
      process.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = err instanceof UsageError ? 2 : 1;
    },
  );
}

/** The output flags of every `scripts/bench <sub>` (spread into its parseCli spec). */
export const OUTPUT_FLAGS = {
  markdown: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** --json or --markdown (not both): how the results are printed. */
export function outputOf(v: { json?: boolean | undefined; markdown?: boolean | undefined }): 'human' | 'markdown' | 'json' {
  if (v.json && v.markdown) throw new UsageError('--json and --markdown exclude each other');
  return v.json ? 'json' : v.markdown ? 'markdown' : 'human';
}

/** "<CPU>, <n> cores, Linux <release>, Node <version>" (and the load average, if asked): the results' machine line. */
export function machineLine(withLoad = false): string {
  const cpu = cpus();
  const load = withLoad ? `, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}` : '';
  return `${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${cpu.length} cores, Linux ${release()}, Node ${process.versions.node}${load}`;
}

/** The head of a printed result (Markdown: one line each, as BENCHMARKS.md has them) and its closing lines. */
export function resultHead(r: { date: string; machine: string; command: string }, markdown: boolean): string[] {
  return markdown ? [`Date: ${r.date}  `, `Machine: ${r.machine}  `, `Command: \`${r.command}\`  `] : [`${r.date}; ${r.machine}`];
}

export function resultTail(r: { failures: string[]; durationS: number }): string[] {
  return [...(r.failures.length > 0 ? ['', `Failures: ${r.failures.join('; ')}`] : []), `The whole benchmark took ${r.durationS.toFixed(0)} s.`, ''];
}

/** What `runSubcommand` needs of a `scripts/bench <sub>` benchmark. */
export interface Subcommand<O extends { output: 'human' | 'markdown' | 'json' }, R extends { failures: unknown[] }> {
  /** The subcommand's name (`log`, `scale`): in the command line printed with the results. */
  name: string;
  usage: string;
  parse(argv: string[]): O | 'help';
  /** Checks or prepares before the run (e.g. a directory the options name). */
  prepare?(o: O): void;
  run(o: O, command: string, signal: AbortSignal): Promise<R>;
  format(r: R, markdown: boolean): string;
}

/**
 * Runs a `scripts/bench <sub>` benchmark: its usage on --help; root required (namespace
 * labs); SIGINT/SIGTERM abort the run (which takes its labs down); the results as text,
 * Markdown or JSON. Exit status 1 when any run failed.
 */
export async function runSubcommand<O extends { output: 'human' | 'markdown' | 'json' }, R extends { failures: unknown[] }>(
  sub: Subcommand<O, R>, argv: string[],
): Promise<number> {
  const o = sub.parse(argv);
  if (o === 'help') {
    process.stdout.write(sub.usage + '\n');
    return 0;
  }
  if (process.getuid?.() !== 0) throw new FtcpError('FTCP_BENCH_ROOT', `scripts/bench ${sub.name} needs root (network namespaces)`);
  sub.prepare?.(o);
  const ctrl = new AbortController();
  const onSig = (sig: NodeJS.Signals) => {
    process.stderr.write(`bench ${sub.name}: ${sig}: stopping, taking the labs down\n`);
    ctrl.abort(sig);
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  try {
    const command = [process.env.FTCP_BENCH_ARGV0 ?? 'node dist/bench/main.js', sub.name, ...argv].join(' ');
    const r = await sub.run(o, command, ctrl.signal);
    process.stdout.write(o.output === 'json' ? JSON.stringify(r, null, 2) + '\n' : sub.format(r, o.output === 'markdown'));
    return r.failures.length === 0 ? 0 : 1;
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}
