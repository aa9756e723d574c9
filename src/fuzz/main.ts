/**
 * Entry point of `scripts/fuzz` (node dist/fuzz/main.js): the gateway fuzz of the unit suite
 * (test/unit/gateway/fuzz.test.ts), at any size. Prints progress, then the figures:
 * packets, phases covered, exceptions, invariant breaks, memory before/after, packets/s.
 * Exit status 0 when nothing broke, 1 otherwise, 2 on bad arguments.
 */
import { parseCli, parseIntFlag } from '../cli/args.js';
import { UsageError } from '../util/errors.js';
import { runFuzz, KNOWN_CAUSES, REQUIRED_PHASES, type FuzzReport } from './engine.js';

const USAGE = `usage: scripts/fuzz [--packets N] [--seed S] [--json]
  --packets N  mutated packets after the warm-up (default 10000000; 1000..10000000000)
  --seed S     the run's seed (default: a random one, printed; 0..4294967295)
  --json       print the report as JSON at the end`;

function mb(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MB`;
}

export function formatReport(r: FuzzReport): string {
  const lines = [
    `seed ${r.seed}: ${r.packets.toLocaleString('en-US')} mutated packets (${r.checksumsFixed.toLocaleString('en-US')} with checksums fixed, ${r.icmp} ICMP errors, ${r.duplicates} duplicates), ${r.genuine.toLocaleString('en-US')} genuine, ${r.rounds} rounds, ${r.packetsPerSecond.toLocaleString('en-US')} packets/s`,
    `phases aimed at: ${Object.entries(r.states).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `exceptions ${r.exceptions}, internal errors ${r.internalErrors}; flows at most ${r.maxFlows}, log connections at most ${r.maxLogConnections}`,
    `invariant breaks: ${Object.keys(r.breaks).length === 0 ? 'none' : Object.entries(r.breaks).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `  by known cause: ${Object.keys(r.causes).length === 0 ? 'none' : Object.entries(r.causes).map(([k, v]) => `${k} ${v}`).join(', ')}; unexplained: ${r.unexplained}`,
  ];
  for (const [k, v] of Object.entries(KNOWN_CAUSES)) if (r.causes[k]) lines.push(`  ${k}: ${v}`);
  if (r.residual) lines.push(`after the drain: ${r.residual.flows} flows ${JSON.stringify(r.residual.phases)}, ${r.residual.logConnections} log connections`);
  if (r.memory) {
    const m = r.memory;
    const d = (a: number, b: number) => `${b >= a ? '+' : ''}${mb(b - a)}`;
    lines.push(`memory after a GC, drained: heap ${mb(m.heap[0])} after the warm-up → ${mb(m.heap[1])} at the end (${d(m.heap[0], m.heap[1])}); ArrayBuffers ${mb(m.arrayBuffers[0])} → ${mb(m.arrayBuffers[1])} (${d(m.arrayBuffers[0], m.arrayBuffers[1])})${m.gc ? '' : ' (no GC could be forced)'}`);
  }
  const shown = [...r.findings.filter((f) => f.cause === null), ...r.findings.filter((f) => f.cause !== null)];
  for (const f of shown) lines.push(`  ${f.check} [${f.cause ?? 'UNEXPLAINED'}] (seed ${f.seed}, round ${f.round}, packet #${f.index}): ${f.detail}\n    packet ${f.packet}`);
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, { packets: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const packets = parseIntFlag(values.packets, '--packets', 10_000_000, 1000, 10_000_000_000);
  const seed = parseIntFlag(values.seed, '--seed', Math.floor(Math.random() * 2 ** 32), 0, 2 ** 32 - 1);
  process.stdout.write(`fuzz: seed ${seed}, ${packets.toLocaleString('en-US')} mutated packets (replay: scripts/fuzz --seed ${seed} --packets ${packets})\n`);
  const t0 = Date.now();
  const r = await runFuzz({
    packets, seed, progressEvery: 1_000_000,
    onProgress: (p) => process.stdout.write(`  ${((Date.now() - t0) / 1000).toFixed(0)} s: ${p.packets.toLocaleString('en-US')} mutated, ${p.packetsPerSecond.toLocaleString('en-US')} packets/s, breaks ${JSON.stringify(p.breaks)}, heap ${mb(process.memoryUsage().heapUsed)}\n`),
  });
  process.stdout.write(formatReport(r) + '\n');
  if (values.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  const missing = REQUIRED_PHASES.filter((p) => (r.states[p] ?? 0) === 0);
  if (missing.length > 0) process.stdout.write(`phases never aimed at: ${missing.join(', ')}\n`);
  return r.exceptions === 0 && r.internalErrors === 0 && Object.keys(r.breaks).length === 0 && missing.length === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`fuzz: ${err instanceof Error ? err.message : String(err)}\n${err instanceof UsageError ? USAGE + '\n' : ''}`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
