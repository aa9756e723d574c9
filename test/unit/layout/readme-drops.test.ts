/**
 * The README's table of drop reasons (section "ftcp gateway") names every reason the wrappers
 * and the gateway count: an operator reading `drops` in /status or ftcp_drops_total must find
 * each one explained (three reasons were missing from the table before this test).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DropReason } from '../../../src/wrappers/contract.js';

const README = readFileSync(join(import.meta.dirname, '..', '..', '..', 'README.md'), 'utf8');

describe('README drop reasons', () => {
  it('has a table row for every DropReason', () => {
    const rows = new Set([...README.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]));
    const missing = Object.keys(DropReason).filter((k) => !rows.has(k));
    expect(missing).toEqual([]);
  });
});
