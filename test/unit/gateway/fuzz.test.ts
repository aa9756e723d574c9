/**
 * The gateway fuzz (issue 11): at least 10^5 mutated packets per run into a whole gateway on
 * the fake TUN with the memory log, with protected flows in every phase (src/fuzz/engine.ts
 * says how). Two seeds a run: a fixed one, and one chosen per run; both are printed, and
 * every failure names its seed. `FTCP_FUZZ_SEED=S` replays one seed alone (the same run as
 * under the two seeds); `scripts/fuzz --seed S --packets N` runs the same engine at any size.
 *
 * OPEN lists the one cause of breaks tolerated here (KNOWN_CAUSES in the engine says what
 * each is): a break with any other cause, or none, fails the test.
 */
import { describe, expect, it } from 'vitest';
import { KNOWN_CAUSES, REQUIRED_PHASES, runFuzz, type FuzzReport, type KnownCause } from '../../../src/fuzz/engine.js';

const PACKETS = 100_000;
/** Per seed (also when one seed is replayed alone, so that the replay is the same run). */
const PER_SEED = PACKETS / 2;
const FIXED_SEED = 20261205;
const replay = process.env.FTCP_FUZZ_SEED;
const SEEDS: number[] = replay !== undefined ? [Number(replay) >>> 0] : [FIXED_SEED, (Math.random() * 2 ** 32) >>> 0];

/**
 * The causes of breaks tolerated, both forged segments with VALID checksums inside the
 * receiver's window, which a TCP endpoint accepts too (an attacker on the path who sees the
 * numbers can always reset or feed a TCP connection; RFC 5961 narrows, not closes, that):
 *  - forgedResetOrSyn: a forged RST exactly at rcv_nxt; the fuzz's endpoints reset too.
 *  - forgedClientSegment: forged in-window client data taken ahead of the genuine bytes
 *    (the server takes it too). Never an ack past `stable` (the engine excuses no stable-ACK
 *    break on a live flow), but OPEN FINDING: 0-3 plausibility or drain findings per 50,000
 *    mutated packets (seeds 1-4, 9, 11: a closing flow left after the drain, its genuine FIN
 *    not taken; a stable point past a FIN taken after forged bytes beyond it), a bounded
 *    leak (--max-flows) not yet fixed (issue 11 closing note; RELIABILITY.md).
 * Every other known cause (items 3 and 4, and the fuzz's own findings: SYN+RST taken as a
 * SYN, a stale held ACK lowering `complete`, a FIN pulling `received` back, a FIN ahead of a
 * gap, forged handshakes) is fixed and fails the test.
 */
const OPEN: ReadonlySet<KnownCause> = new Set<KnownCause>(['forgedResetOrSyn', 'forgedClientSegment']);

/**
 * Phases every run must have aimed mutations at, at least this many packets each (a translated
 * flow counts closing or not). Translated flows are the rarest while forged SYNs/RSTs still
 * end flows (item 3): 97 to 991 packets in a 60,000-packet run of the seeds tried.
 */
const MIN_PER_PHASE = 20;
function aimedAt(r: FuzzReport, p: string): number {
  return (r.states[p] ?? 0) + (p === 'translated' ? (r.states.closingTranslated ?? 0) : 0);
}
/** Flat memory: growth after a GC, drained, between the warm-up and the end. */
const HEAP_MARGIN = 4 * 2 ** 20;
const ARRAY_BUFFER_MARGIN = 16 * 2 ** 20;

function show(r: FuzzReport): string {
  const f = r.findings.map((x) => `  ${x.check} [${x.cause ?? 'UNEXPLAINED'}] seed ${x.seed} round ${x.round} packet #${x.index}: ${x.detail}\n    packet ${x.packet}`);
  return `seed ${r.seed}: ${JSON.stringify({ breaks: r.breaks, causes: r.causes, unexplained: r.unexplained, exceptions: r.exceptions, internalErrors: r.internalErrors, states: r.states, memory: r.memory })}\n${f.join('\n')}`;
}

describe('gateway fuzz', () => {
  const reports: FuzzReport[] = [];

  it(`${PACKETS.toLocaleString('en-US')} mutated packets, seeds ${SEEDS.join(' and ')} (FTCP_FUZZ_SEED=S to replay one)`, { timeout: 120_000 }, async () => {
    for (const seed of SEEDS) {
      // eslint-disable-next-line no-console
      console.log(`gateway fuzz: seed ${seed} (replay: FTCP_FUZZ_SEED=${seed} npx vitest run --project unit test/unit/gateway/fuzz.test.ts)`);
      const r = await runFuzz({ seed, packets: PER_SEED });
      reports.push(r);
      const why = show(r);
      expect(r.exceptions, why).toBe(0);
      expect(r.internalErrors, why).toBe(0);
      expect(r.unexplained, why).toBe(0);
      for (const cause of Object.keys(r.causes)) expect(OPEN.has(cause as KnownCause), `a cause no longer tolerated: ${cause}\n${why}`).toBe(true);
      for (const p of REQUIRED_PHASES) expect(aimedAt(r, p), `${p}: mutated packets aimed at it\n${why}`).toBeGreaterThanOrEqual(MIN_PER_PHASE);
      expect(r.maxFlows).toBeLessThanOrEqual(1024);
      expect(r.memory!.gc, 'a GC could be forced').toBe(true);
      expect(r.memory!.heap[1] - r.memory!.heap[0], why).toBeLessThan(HEAP_MARGIN);
      expect(r.memory!.arrayBuffers[1] - r.memory!.arrayBuffers[0], why).toBeLessThan(ARRAY_BUFFER_MARGIN);
    }
    const total = reports.reduce((n, r) => n + r.packets, 0);
    expect(total).toBeGreaterThanOrEqual(PER_SEED * SEEDS.length);
    if (replay === undefined) expect(total).toBeGreaterThanOrEqual(PACKETS);
    // eslint-disable-next-line no-console
    console.log(reports.map((r) => `seed ${r.seed}: ${r.packets} mutated (${r.checksumsFixed} checksums fixed), ${r.genuine} genuine, breaks ${JSON.stringify(r.causes)}, ${r.packetsPerSecond} packets/s`).join('\n'));
  });

  it('the checks are not vacuous: genuine traffic alone breaks nothing and ends with nothing left', async () => {
    const r = await runFuzz({ seed: FIXED_SEED, packets: 10_000, mutate: false });
    expect(r.genuine).toBeGreaterThanOrEqual(10_000);
    expect(r.breaks, show(r)).toEqual({});
    expect(r.residual, show(r)).toEqual({ flows: 0, logConnections: 0, phases: {} });
    // The genuine traffic itself goes through crashes and rebuilds.
    const north = r.gateway.north as Record<string, number>;
    expect(north.crashes).toBeGreaterThan(0);
    expect(north.caughtUp).toBeGreaterThan(0);
  });
});
