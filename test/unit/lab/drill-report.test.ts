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
      gateway: { packets: 10, protectedPackets: 10, bytesLogged: 0, acksLowered: 0, acksHeld: 3, heldReleased: 3, dropped: 0 },
      north: {}, logLink: null,
      drops: { BAD_TCP_CHECKSUM: 0, ACK_HELD_UNSTABLE: 3, SERVER_WHILE_MASKED: 5, DEAD_SEQ: 0 },
    } as unknown as DrillReport;
    const lines = formatDrill(r).split('\n');
    expect(lines).toContain('  drops by reason: SERVER_WHILE_MASKED 5, ACK_HELD_UNSTABLE 3');
    expect(formatDrill({ ...r, drops: {} }).split('\n')).toContain('  drops by reason: none');
  });
});
