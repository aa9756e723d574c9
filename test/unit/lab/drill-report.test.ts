/** The drill's report must survive `--json` whatever the checks found. */
import { describe, expect, it } from 'vitest';
import { formatDrill, jsonableInvariant, type DrillReport } from '../../../src/lab/drill.js';

describe('drill report', () => {
  it('an ack-invariant violation (tNs a bigint) serializes to JSON, the first 10 kept', () => {
    const violations = Array.from({ length: 12 }, (_, i) => ({ connection: `c${i}`, tNs: 1_796_459_186_009_123_456n + BigInt(i), ack: 15552 + i, stableAtThatTime: 15551 }));
    const inv = jsonableInvariant({ checked: 2163, connections: 10, violations, unchecked: 0 });
    const back = JSON.parse(JSON.stringify(inv));
    expect(back.violations).toHaveLength(10);
    expect(back.violations[0]).toEqual({ connection: 'c0', tNs: '1796459186009123456', ack: 15552, stableAtThatTime: 15551 });
    expect(back.checked).toBe(2163);
  });

  it('shows the gateway\'s drops by reason (the non-zero ones)', () => {
    const r = {
      scenario: 'mixed', what: 'w', log: 'memory', offload: true, seed: 1, lab: 'l', durationMs: 1000, clientSysctls: {},
      ok: true, failures: [], clients: [], crashes: [], longestStallMs: 0,
      invariant: { checked: 1, connections: 1, violations: [], unchecked: 0 },
      client: { connections: 1, rstToClient: 0, icmpToClient: 0 }, verdicts: {},
      gateway: { packets: 10, protectedPackets: 10, bytesLogged: 0, acksLowered: 0, acksHeld: 3, heldReleased: 3, sacksAboveStableRemoved: 0, dropped: 0 },
      north: {}, logLink: null, divergence: { total: 0, resets: 0 },
      drops: { BAD_TCP_CHECKSUM: 0, ACK_HELD_UNSTABLE: 3, SERVER_WHILE_MASKED: 5, DEAD_SEQ: 0 },
    } as unknown as DrillReport;
    const lines = formatDrill(r).split('\n');
    expect(lines).toContain('  drops by reason: SERVER_WHILE_MASKED 5, ACK_HELD_UNSTABLE 3');
    expect(formatDrill({ ...r, drops: {} }).split('\n')).toContain('  drops by reason: none');
  });

  it('a nondet drill shows each random client\'s outcomes and the gateway\'s divergence figures', () => {
    const base = {
      scenario: 'nondet', what: 'w', log: 'memory', offload: true, seed: 1, lab: 'l', durationMs: 1000, clientSysctls: {},
      ok: false, failures: ['random: 1 inconsistent connection(s)'], crashes: [], longestStallMs: 0,
      invariant: { checked: 1, connections: 1, violations: [], unchecked: 0 },
      client: { connections: 2, rstToClient: 1, icmpToClient: 0 }, verdicts: {},
      gateway: { packets: 10, protectedPackets: 10, bytesLogged: 0, acksLowered: 0, acksHeld: 0, heldReleased: 0, sacksAboveStableRemoved: 0, dropped: 0 },
      north: {}, logLink: null, drops: {}, divergence: { total: 3, resets: 1 },
      clients: [{
        kind: 'random-var', connections: 2, ok: 0, failed: 2, bytesSent: 0, bytesReceived: 0, throughputMbps: 0, maxStallMs: 0, errors: [],
        outcomes: { ok: 0, reset: 1, inconsistent: 1, misframed: 0, hung: 0, error: 0 },
      }],
    } as unknown as DrillReport;
    const lines = formatDrill(base).split('\n');
    expect(lines).toContain('  random-var 0 ok, 1 reset, 1 inconsistent, 0 misframed, 0 hung, 0 error');
    expect(lines).toContain('  divergence (gateway): 3 detected, 1 connection(s) reset');
    expect(lines).toContain('  - random: 1 inconsistent connection(s)');
  });
});
