/**
 * `ftcp gateway` as an appliance: clear errors for bad input, nothing left half-configured
 * after a failed start; after SIGTERM the TUN and the steering stay (fail closed, issue 14)
 * until `ftcp gateway down` removes them all.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import path from 'node:path';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { execCmd, execIn, spawnIn, REPO_ROOT } from '../../src/lab/index.js';
import { waitForLine } from '../../src/lab/procs.js';

const FTCP = path.join(REPO_ROOT, 'bin', 'ftcp.js');

async function state(ns: string): Promise<{ links: string; rules: string; table: string }> {
  const links = (await execIn(ns, 'ip', ['-o', 'link', 'show'])).stdout;
  const rules = (await execIn(ns, 'ip', ['rule', 'show'])).stdout;
  const table = (await execIn(ns, 'ip', ['route', 'show', 'table', '100'])).stdout;
  return { links, rules, table };
}

describe('ftcp gateway (lab)', () => {
  let ns = '';
  beforeEach(async () => {
    ns = `ftcpt-gw-${randomBytes(3).toString('hex')}`;
    await execCmd('ip', ['netns', 'add', ns]);
    await execIn(ns, 'ip', ['link', 'add', 'a0', 'type', 'veth', 'peer', 'name', 'b0']);
    await execIn(ns, 'ip', ['link', 'set', 'lo', 'up']);
  });
  afterEach(async () => {
    await execCmd('ip', ['netns', 'del', ns]);
  });

  it('rejects bad arguments with exit status 2, naming the flag', async () => {
    for (const [args, re] of [
      [['--tun', 'ftcp0'], /--protect/],
      [['--tun', 'ftcp0', '--protect', '10.0.0.1'], /--protect: expected <ipv4>:<port>/],
      [['--tun', 'ftcp0', '--protect', '1.2.3.4:99999'], /port out of range/],
      [['--tun', 'ftcp0', '--protect', '1.2.3.4:80', '--log', 'nfs:/x'], /--log/],
      [['--tun', 'a-name-much-too-long', '--protect', '1.2.3.4:80'], /--tun/],
      [['--tun', 'ftcp0', '--protect', '1.2.3.4:80', '--table', '254'], /--table/],
      [['--tun', 'ftcp0', '--protect', '1.2.3.4:80', '--bogus'], /bogus/],
      [['--tun', 'ftcp0', '--protect', '1.2.3.4:80', '--offload', '--no-offload'], /--offload and --no-offload/],
    ] as const) {
      const r = await execIn(ns, process.execPath, [FTCP, 'gateway', ...args]);
      expect(r.stderr, args.join(' ')).toMatch(re);
      expect(r.code, args.join(' ')).toBe(2);
    }
    expect((await state(ns)).links).not.toContain('ftcp0');
  });

  it('fails clearly and leaves no TUN, rule or route when a steered interface is missing or forwarding is off', async () => {
    await execIn(ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=0']);
    let r = await execIn(ns, process.execPath, [FTCP, 'gateway', '--tun', 'ftcp0', '--protect', '198.18.2.2:5001', '--steer', 'a0,b0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ip_forward/);
    await execIn(ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    r = await execIn(ns, process.execPath, [FTCP, 'gateway', '--tun', 'ftcp0', '--protect', '198.18.2.2:5001', '--steer', 'a0,nosuch0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no interface named 'nosuch0'/);
    const s = await state(ns);
    expect(s.links).not.toContain('ftcp0');
    expect(s.rules).not.toMatch(/lookup 100/);
    expect(s.table.trim()).toBe('');
  });

  it('sets up the TUN and the steering, keeps them on SIGTERM, and `gateway down` removes all of it', async () => {
    await execIn(ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    const ready = path.join('/tmp', `${ns}.ready`);
    const stateDir = path.join('/tmp', `${ns}.state`);
    const gw = spawnIn(ns, process.execPath, [FTCP, 'gateway', '--tun', 'ftcp0', '--protect', '198.18.2.2:5001', '--steer', 'a0,b0', '--ready-file', ready, '--state-dir', stateDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await waitForLine(gw, /gateway running/, 15_000);
      expect(existsSync(ready)).toBe(true);
      const up = await state(ns);
      expect(up.links).toMatch(/ftcp0:.*UP/);
      expect(up.rules).toMatch(/iif a0 lookup 100/);
      expect(up.rules).toMatch(/iif b0 lookup 100/);
      expect(up.table).toMatch(/default dev ftcp0/);
    } finally {
      gw.kill('SIGTERM');
      const [code] = await once(gw, 'exit');
      expect(code).toBe(0);
    }
    const kept = await state(ns);
    expect(kept.links).toMatch(/ftcp0: <[^>]*\bUP\b/); // still there, admin up,
    expect(kept.links).not.toMatch(/ftcp0:.*LOWER_UP/); // no reader: no carrier
    expect(kept.rules).toMatch(/iif a0 lookup 100/);
    expect(kept.table).toMatch(/default dev ftcp0/);
    expect(kept.table).toMatch(/blackhole default/);
    expect(existsSync(ready)).toBe(false);
    const r = await execIn(ns, process.execPath, [FTCP, 'gateway', 'down', '--tun', 'ftcp0', '--state-dir', stateDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/removed: .*device ftcp0/);
    const again = await execIn(ns, process.execPath, [FTCP, 'gateway', 'down', '--tun', 'ftcp0', '--state-dir', stateDir]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/nothing to remove for ftcp0/);
    const down = await state(ns);
    expect(down.links).not.toContain('ftcp0');
    expect(down.rules).not.toMatch(/lookup 100/);
    expect(down.table.trim()).toBe('');
    expect(existsSync(ready)).toBe(false);
  });
});
