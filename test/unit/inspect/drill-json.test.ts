/**
 * `ftcp drill --json` prints its report even when the stable-ack check found violations
 * (their capture times are bigint nanoseconds).
 */
import { describe, expect, it } from 'vitest';
import { drillJson } from '../../../src/cli/commands/drill.js';
import type { DrillReport } from '../../../src/lab/drill.js';

describe('drill --json', () => {
  it('serialises a report whose stable-ack violations carry bigint times', () => {
    const report = {
      ok: false,
      failures: ['1 acks beyond the stable point reached the client'],
      invariant: { checked: 10, connections: 1, unchecked: 0, violations: [{ connection: '198.18.1.2:40000 5001 7', tNs: 1796461383163000123n, ack: 9, stableAtThatTime: 5 }] },
    } as unknown as DrillReport;
    const back = JSON.parse(drillJson(report));
    expect(back.invariant.violations[0]).toEqual({ connection: '198.18.1.2:40000 5001 7', tNs: '1796461383163000123', ack: 9, stableAtThatTime: 5 });
    expect(back.ok).toBe(false);
  });
});
