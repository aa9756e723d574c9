/** Entry point of `scripts/bench` (node dist/bench/main.js); everything else is in ./run.ts. */
import { UsageError } from '../util/errors.js';
import { main } from './run.js';

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
