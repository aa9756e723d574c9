/** Entry point of `scripts/bench` (node dist/bench/main.js); everything else is in ./run.ts. */
import { UsageError } from '../util/errors.js';
import { main } from './run.js';
import { stabilityMain } from './stability.js';
import { logModesMain } from './logmodes.js';

// `scripts/bench stability [...]`: the log's stable-notification latency per mode (stability.ts).
// `scripts/bench log [...]`: the log modes side by side, latency and upload through the gateway (logmodes.ts).
const argv = process.argv.slice(2);
(argv[0] === 'stability' ? stabilityMain(argv.slice(1)) : argv[0] === 'log' ? logModesMain(argv.slice(1)) : main(argv)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
