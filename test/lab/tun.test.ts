/**
 * The native TUN addon on a real kernel, in a namespace of its own: batch reads (one
 * callback for many packets), the write path into the kernel, the errno name on errors,
 * idempotent close, and the device gone with its namespace.
 */
import { describe, it, expect } from 'vitest';
import path from 'node:path';
import { execCmd, execIn, REPO_ROOT } from '../../src/lab/index.js';
import { randomBytes } from 'node:crypto';
import { LinuxTun } from '../../src/tun/linux.js';

describe('native TUN addon (lab)', () => {
  it('reads packets in batches, writes into the kernel, and names errno on failure', async () => {
    const ns = `ftcpt-tun-${randomBytes(3).toString('hex')}`;
    await execCmd('ip', ['netns', 'add', ns]);
    try {
      const r = await execIn(ns, process.execPath, [path.join(REPO_ROOT, 'test/lab/fixtures/tun-probe.mjs')], { timeoutMs: 30_000 });
      expect(r.stderr).toBe('');
      const out = JSON.parse(r.stdout);
      expect(out.name).toBe('ftcpt0');
      expect(out.secondOpen).toBe('FTCP_TUN_EBUSY');
      expect(out.udpToPeer).toBe(out.sent);
      expect(out.batches).toBeLessThan(out.sent / 4); // batched, not one call per packet
      expect(out.written).toBe(true);
      expect(out.received).toEqual({ len: 21, from: '198.18.9.2' });
    } finally {
      await execCmd('ip', ['netns', 'del', ns]);
    }
    expect((await execCmd('ip', ['netns', 'list'])).stdout).not.toContain(ns);
  });

  it('rejects a bad interface name with a clear error', () => {
    expect(() => LinuxTun.open('x'.repeat(16))).toThrow(/longer than 15/);
  });
});
