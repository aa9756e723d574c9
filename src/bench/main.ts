/** Entry point of `scripts/bench` (node dist/bench/main.js); everything else is in ./run.ts. */
import { UsageError } from '../util/errors.js';
import { main } from './run.js';
import { stabilityMain } from './stability.js';
import { logModesMain } from './logmodes.js';
import { holdMain } from './hold.js';
import { scaleMain } from './scale.js';
import { checksumMain } from './checksum.js';
import { emitMain } from './emit.js';
import { digestMain } from './digest.js';
import { digestLabMain } from './digestlab.js';
import { gatewayRestartMain } from './gwrestart.js';
import { gatewayFailoverMain } from './gwfailover.js';
import { adoptScaleMain } from './adoptscale.js';

// `scripts/bench stability [...]`: the log's stable-notification latency per mode (stability.ts).
// `scripts/bench log [...]`: the log modes side by side, latency and upload through the gateway (logmodes.ts).
// `scripts/bench scale [...]`: idle memory per connection and recovery of 1..10,000 connections (scale.ts);
// `scripts/bench hold [...]`: its many-connection client (hold.ts).
// `scripts/bench checksum [...]`: CPU time of the gateway's checksum verification per segment (checksum.ts).
// `scripts/bench emit [...]`: allocations and GCs of the packets the gateway makes, before/after its emit scratch (emit.ts).
// `scripts/bench digest [...]`: the cost of divergence detection, hashing, per segment through the gateway, memory (digest.ts).
// `scripts/bench digest-lab [...]`: a real protected download in the lab with and without the digest, one gateway (digestlab.ts).
// `scripts/bench gateway-restart [...]`: kill -9 of the gateway, restarted: time to data flowing again, p50/max over drills (gwrestart.ts).
// `scripts/bench gateway-failover [...]`: the primary gateway host dies, the standby takes over: the same figure (gwfailover.ts).
// `scripts/bench adopt-scale [...]`: time to list and adopt 1,000..10,000 connections from a log server, in process (adoptscale.ts).
const argv = process.argv.slice(2);
const SUBCOMMANDS: Record<string, (a: string[]) => Promise<number>> = { stability: stabilityMain, log: logModesMain, scale: scaleMain, hold: holdMain, checksum: checksumMain, emit: emitMain, digest: digestMain, 'digest-lab': digestLabMain, 'gateway-restart': gatewayRestartMain, 'gateway-failover': gatewayFailoverMain, 'adopt-scale': adoptScaleMain };
(SUBCOMMANDS[argv[0] ?? ''] ? SUBCOMMANDS[argv[0]!]!(argv.slice(1)) : main(argv)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
