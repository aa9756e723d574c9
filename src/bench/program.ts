/** What the benchmark's small programs (rr.ts, setup.ts, tunfwd.ts) share: running a module as a program. */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { UsageError } from '../util/errors.js';

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
