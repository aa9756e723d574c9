/**
 * The drill's divergence judgement (src/lab/nondet.ts): a nondet drill passes only when every
 * client is consistent or reset and every reset (and every RST at the client) is a
 * divergence the gateway counted; a deterministic drill only with no divergence at all.
 */
import { describe, expect, it } from 'vitest';
import { divergenceFigures, judgeDeterministic, judgeNondet, type NondetEvidence } from '../../../src/lab/nondet.js';
import type { RandomOutcome } from '../../../src/demo/random.js';

const outcomes = (o: Partial<Record<RandomOutcome, number>>): Record<RandomOutcome, number> =>
  ({ ok: 0, reset: 0, inconsistent: 0, misframed: 0, hung: 0, error: 0, ...o });

/** Two random clients after a crash, every live connection reset and counted: a pass. */
const held: NondetEvidence = {
  clients: [{ kind: 'random', outcomes: outcomes({ ok: 2, reset: 6 }) }, { kind: 'random-var', outcomes: outcomes({ ok: 1, reset: 7 }) }],
  divergence: { total: 13, resets: 13 },
  rstToClient: 13,
  resetConnections: 13,
  crashesWithConnections: 1,
};

describe('judgeNondet', () => {
  it('passes when every client is ok or reset and resets, RSTs and reset connections are all counted', () => {
    expect(judgeNondet(held)).toEqual([]);
    // Fewer resets than counted divergences (a RST lost on the way, a divergence after the client's end) is fine.
    expect(judgeNondet({ ...held, rstToClient: 12, resetConnections: 12, divergence: { total: 20, resets: 14 } })).toEqual([]);
    // The control (--crashes 0): all ok, nothing counted.
    expect(judgeNondet({ ...held, clients: [{ kind: 'random', outcomes: outcomes({ ok: 8 }) }], divergence: { total: 0, resets: 0 }, rstToClient: 0, resetConnections: 0, crashesWithConnections: 0 })).toEqual([]);
  });

  it('fails on any inconsistent, misframed, hung or errored connection, naming the kind and the counts', () => {
    for (const bad of ['inconsistent', 'misframed', 'hung', 'error'] as const) {
      const f = judgeNondet({ ...held, clients: [held.clients[0]!, { kind: 'random-var', outcomes: outcomes({ ok: 1, reset: 6, [bad]: 1 }) }] });
      expect(f).toHaveLength(1);
      expect(f[0]).toMatch(new RegExp(`^random-var: 1 ${bad} connection`));
    }
  });

  it('fails when the clients saw more resets than the gateway counted (an uncounted reset)', () => {
    const f = judgeNondet({ ...held, divergence: { total: 13, resets: 12 } });
    expect(f).toContain('13 connection(s) reset at the client, the gateway counted 12 divergence reset(s)');
  });

  it('fails on RST segments or server-side resets in the capture beyond the counted divergences', () => {
    expect(judgeNondet({ ...held, rstToClient: 14 })).toEqual(['14 RST reached the client, the gateway counted 13 divergence reset(s)']);
    expect(judgeNondet({ ...held, resetConnections: 14 })).toEqual(['14 connection(s) in the capture reset by the server side, the gateway counted 13 divergence reset(s)']);
  });

  it('fails on a vacuous pass: a crash hit live connections and no divergence was counted (today\'s gateway)', () => {
    const silent: NondetEvidence = { ...held, clients: [{ kind: 'random', outcomes: outcomes({ ok: 8 }) }], divergence: { total: 0, resets: 0 }, rstToClient: 0, resetConnections: 0 };
    expect(judgeNondet(silent)).toEqual(['a crash hit live connections of a non-deterministic server and the gateway counted no divergence: nothing was compared']);
  });

  it('what issue 13 saw (spliced clients, no RST, nothing counted) fails on every count', () => {
    const f = judgeNondet({
      clients: [{ kind: 'random', outcomes: outcomes({ ok: 5, inconsistent: 3 }) }, { kind: 'random-var', outcomes: outcomes({ misframed: 6, hung: 2 }) }],
      divergence: { total: 0, resets: 0 }, rstToClient: 0, resetConnections: 0, crashesWithConnections: 1,
    });
    expect(f).toHaveLength(3);
    expect(f[0]).toMatch(/^random: 3 inconsistent/);
    expect(f[1]).toMatch(/^random-var: 6 misframed, 2 hung/);
  });
});

describe('judgeDeterministic and the gateway\'s figures', () => {
  it('a deterministic drill fails on any divergence', () => {
    expect(judgeDeterministic({ total: 0, resets: 0 })).toEqual([]);
    expect(judgeDeterministic({ total: 2, resets: 1 })).toEqual(['the gateway counted 2 divergence(s) (1 reset) on deterministic servers']);
  });

  it('reads status `divergence`; absent (a gateway without detection) or malformed fields are 0', () => {
    expect(divergenceFigures({ divergence: { total: 4, resets: 3, continued: 1 } })).toEqual({ total: 4, resets: 3 });
    expect(divergenceFigures({ stats: {} })).toEqual({ total: 0, resets: 0 });
    expect(divergenceFigures(undefined)).toEqual({ total: 0, resets: 0 });
    expect(divergenceFigures({ divergence: { total: '4', resets: null } })).toEqual({ total: 0, resets: 0 });
  });
});
