/**
 * The drill's judgement of divergence (issue 13): pure functions over what the drill
 * collected, so the rules are tested without a lab.
 *
 * nondet scenarios (random servers, src/demo/random.ts): a restarted incarnation never
 * regenerates the same output, so every connection live at a crash must end either
 * byte-consistent (`ok`) or with a clean reset that the gateway counted as a divergence:
 *
 *   fail  any connection inconsistent, misframed, hung or in error (a silent splice, or
 *         worse, reached a client)
 *   fail  more connections reset (client side) than the gateway's `divergence.resets`
 *   fail  more RST segments at the client, or capture connections reset by the server
 *         side, than `divergence.resets` (the gateway sends one RST per reset; any other
 *         RST is a failure, as in every drill)
 *   fail  a crash hit live connections and the gateway counted no divergence at all: the
 *         random servers always diverge, so the check did not run (a vacuous pass)
 *
 * Every other scenario (deterministic servers): `divergence.total` must be 0.
 *
 * The gateway's figures come from its status JSON `divergence` (absent, as on a gateway
 * without divergence detection: 0).
 */
import type { RandomOutcome } from '../demo/random.js';

export interface DivergenceFigures {
  /** Divergences the gateway detected (every policy). */
  total: number;
  /** Of them, connections the gateway reset (policy `reset`). */
  resets: number;
}

/** The gateway's divergence figures from its status JSON; absent fields are 0. */
export function divergenceFigures(status: unknown): DivergenceFigures {
  const d = (status as { divergence?: Record<string, unknown> } | null)?.divergence ?? {};
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  return { total: n(d.total), resets: n(d.resets) };
}

export interface NondetEvidence {
  /** One row per random client (kind and its connections' outcomes). */
  clients: ReadonlyArray<{ kind: string; outcomes: Readonly<Record<RandomOutcome, number>> }>;
  divergence: DivergenceFigures;
  /** RST segments from the server side that reached the client (capture). */
  rstToClient: number;
  /** Connections in the client-side capture reset from the server side. */
  resetConnections: number;
  /** Crashes that hit open connections. */
  crashesWithConnections: number;
}

const BAD: readonly RandomOutcome[] = ['inconsistent', 'misframed', 'hung', 'error'];

/** The failures of a nondet drill (empty: it held). */
export function judgeNondet(e: NondetEvidence): string[] {
  const failures: string[] = [];
  let resets = 0;
  for (const c of e.clients) {
    resets += c.outcomes.reset;
    const bad = BAD.filter((o) => c.outcomes[o] > 0);
    if (bad.length > 0) failures.push(`${c.kind}: ${bad.map((o) => `${c.outcomes[o]} ${o}`).join(', ')} connection(s): a client got what no incarnation sent (${formatOutcomes(c.outcomes)})`);
  }
  const counted = e.divergence.resets;
  if (resets > counted) failures.push(`${resets} connection(s) reset at the client, the gateway counted ${counted} divergence reset(s)`);
  if (e.rstToClient > counted) failures.push(`${e.rstToClient} RST reached the client, the gateway counted ${counted} divergence reset(s)`);
  if (e.resetConnections > counted) failures.push(`${e.resetConnections} connection(s) in the capture reset by the server side, the gateway counted ${counted} divergence reset(s)`);
  if (e.crashesWithConnections > 0 && e.divergence.total === 0) {
    failures.push('a crash hit live connections of a non-deterministic server and the gateway counted no divergence: nothing was compared');
  }
  return failures;
}

/** The failures of a deterministic drill on the divergence side. */
export function judgeDeterministic(d: DivergenceFigures): string[] {
  return d.total === 0 ? [] : [`the gateway counted ${d.total} divergence(s) (${d.resets} reset) on deterministic servers`];
}

/** "5 ok, 3 reset, 0 inconsistent, ..." in RANDOM_OUTCOMES order. */
export function formatOutcomes(o: Readonly<Record<RandomOutcome, number>>): string {
  return Object.entries(o).map(([k, n]) => `${n} ${k}`).join(', ');
}
