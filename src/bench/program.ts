/**
 * What the benchmark's small client programs (rr.ts, setup.ts) and its entry share: integer
 * flags checked with a clear message, and running a module as a program.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { UsageError } from '../util/errors.js';

/** `--flag N`: an integer in min..max, `dflt` when absent. */
export function intFlag(s: string | undefined, flag: string, dflt: number, min: number, max: number): number {
  if (s === undefined) return dflt;
  if (!/^\d+$/.test(s)) throw new UsageError(`${flag}: expected an integer, got '${s}'`);
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${flag}: must be in ${min}..${max}, got ${s}`);
  return n;
}

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
