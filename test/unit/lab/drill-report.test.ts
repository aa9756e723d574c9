/** The drill's report must survive `--json` whatever the checks found. */
import { describe, expect, it } from 'vitest';
import { jsonableInvariant } from '../../../src/lab/drill.js';

describe('drill report', () => {
  it('an ack-invariant violation (tNs a bigint) serializes to JSON, the first 10 kept', () => {
    const violations = Array.from({ length: 12 }, (_, i) => ({ connection: `c${i}`, tNs: 1_796_459_186_009_123_456n + BigInt(i), ack: 15552 + i, stableAtThatTime: 15551 }));
    const inv = jsonableInvariant({ checked: 2163, connections: 10, violations, unchecked: 0 });
    const back = JSON.parse(JSON.stringify(inv));
    expect(back.violations).toHaveLength(10);
    expect(back.violations[0]).toEqual({ connection: 'c0', tNs: '1796459186009123456', ack: 15552, stableAtThatTime: 15551 });
    expect(back.checked).toBe(2163);
  });
});
