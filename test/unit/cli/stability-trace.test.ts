/**
 * `ftcp gateway --stability-trace`: each advance is in the file when trace() returns, before
 * the ack that relies on it can leave, so a gateway killed with -9 loses none (issue 14: the
 * gateway-kill drill found acks "beyond the stable point" whose lines the dead gateway had
 * queued and never written); a restarted gateway appends to the same trace.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stabilityTracer } from '../../../src/cli/commands/gateway.js';
import { ipToU32 } from '../../../src/wire/addr.js';
import type { Flow } from '../../../src/flow/flow.js';

const flow = (stable: number) => ({ clientIp: ipToU32('198.18.1.2'), clientPort: 40000, serverPort: 5001, clientIsn: 1000, stable }) as unknown as Flow;

describe('stability trace', () => {
  it('every line is in the file when trace() returns (no event-loop turn needed); a second tracer appends', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ftcp-trace-'));
    try {
      const file = join(dir, 'stable.trace');
      const t1 = stabilityTracer(file);
      for (let i = 1; i <= 500; i++) t1.trace(flow(i * 100));
      const now = readFileSync(file, 'utf8').split('\n').filter(Boolean);
      expect(now).toHaveLength(500);
      expect(now[499]).toMatch(/^\d+ 198\.18\.1\.2:40000 5001 1000 50000$/);
      // The dead gateway never closes its tracer; the restarted one opens the same file.
      const t2 = stabilityTracer(file);
      t2.trace(flow(50_100));
      await t2.close();
      await t1.close();
      const all = readFileSync(file, 'utf8').split('\n').filter(Boolean);
      expect(all).toHaveLength(501);
      expect(all[500]).toMatch(/ 50100$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
