/**
 * The keepalived configuration and hooks of a gateway pair (src/lab/keepalived.ts): what the
 * configuration must say for the addresses to move together, once, and only to a ready host;
 * the two shell hooks run for real (sh, no root).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SYNC_GROUP, VRID, checkScript, keepalivedConfig, notifyScript, type KeepalivedConfigInput, type VrrpHost } from '../../../src/lab/keepalived.js';

const A: VrrpHost = { name: 'a-gw', clientIf: 'gc0', serverIf: 'gs0', clientAddr: '198.18.1.11', serverAddr: '198.18.2.11' };
const B: VrrpHost = { name: 'a-gw2', clientIf: 'gc0', serverIf: 'gs0', clientAddr: '198.18.1.12', serverAddr: '198.18.2.12' };
const input = (over: Partial<KeepalivedConfigInput> = {}): KeepalivedConfigInput => ({
  self: A, peer: B, vip: { client: '198.18.1.1', server: '198.18.2.1', prefixLength: 24 },
  priority: 150, advertInt: 0.1, notifyScript: '/s/notify.sh', checkScript: '/s/check-gateway.sh', ...over,
});

/** The body of block `head { ... }` (one level of nesting is enough for these files). */
function block(conf: string, head: string): string {
  const start = conf.indexOf(`${head} {`);
  expect(start, head).toBeGreaterThanOrEqual(0);
  let depth = 0;
  for (let i = conf.indexOf('{', start); i < conf.length; i++) {
    if (conf[i] === '{') depth++;
    if (conf[i] === '}' && --depth === 0) return conf.slice(start, i + 1);
  }
  throw new Error(`unclosed ${head}`);
}

describe('keepalivedConfig', () => {
  it('one sync group holds both instances, tracks the gateway and calls the hook on every transition', () => {
    const g = block(keepalivedConfig(input()), `vrrp_sync_group ${SYNC_GROUP}`);
    expect(block(g, 'group')).toMatch(/client_net\s+server_net/);
    expect(block(g, 'track_script')).toContain('gateway_ready');
    for (const s of ['MASTER', 'BACKUP', 'FAULT']) expect(g).toContain(`notify_${s.toLowerCase()} "/s/notify.sh ${s}"`);
  });

  it('each instance: BACKUP + nopreempt, its own address as unicast source, the peer\'s as peer, its VIP on its interface', () => {
    const conf = keepalivedConfig(input());
    expect(block(conf, 'global_defs')).toContain('vrrp_version 3');
    for (const [name, iface, vrid, src, peer, vip] of [
      ['client_net', 'gc0', VRID.client, A.clientAddr, B.clientAddr, '198.18.1.1/24'],
      ['server_net', 'gs0', VRID.server, A.serverAddr, B.serverAddr, '198.18.2.1/24'],
    ] as const) {
      const i = block(conf, `vrrp_instance ${name}`);
      expect(i).toMatch(/\n {2}state BACKUP\n {2}nopreempt\n/);
      expect(i).toContain(`interface ${iface}\n`);
      expect(i).toContain(`virtual_router_id ${vrid}\n`);
      expect(i).toContain('advert_int 0.1\n');
      expect(i).toContain(`unicast_src_ip ${src}\n`);
      expect(block(i, 'unicast_peer')).toContain(peer);
      expect(block(i, 'virtual_ipaddress')).toContain(`${vip} dev ${iface}`);
    }
  });

  it('the two hosts\' files mirror each other', () => {
    const a = keepalivedConfig(input());
    const b = keepalivedConfig(input({ self: B, peer: A, priority: 100 }));
    expect(block(b, 'vrrp_instance client_net')).toContain(`unicast_src_ip ${B.clientAddr}`);
    expect(block(block(b, 'vrrp_instance client_net'), 'unicast_peer')).toContain(A.clientAddr);
    expect(a.replace(/198\.18\.(\d)\.1[12]/g, 'X').replace(/a-gw2?/g, 'H').replace(/priority \d+/g, 'P'))
      .toBe(b.replace(/198\.18\.(\d)\.1[12]/g, 'X').replace(/a-gw2?/g, 'H').replace(/priority \d+/g, 'P'));
  });

  it('no gateway to track (kernel forwarding): no vrrp_script, no track_script', () => {
    const conf = keepalivedConfig(input({ checkScript: null }));
    expect(conf).not.toContain('vrrp_script');
    expect(conf).not.toContain('track_script');
  });

  it('refuses what VRRP cannot carry', () => {
    expect(() => keepalivedConfig(input({ priority: 255 }))).toThrow(RangeError);
    expect(() => keepalivedConfig(input({ priority: 0 }))).toThrow(RangeError);
    expect(() => keepalivedConfig(input({ advertInt: 0.001 }))).toThrow(RangeError);
    expect(() => keepalivedConfig(input({ advertInt: 41 }))).toThrow(RangeError);
  });
});

describe('deploy/keepalived/keepalived.conf', () => {
  // One file for both VMs (@gw-a / @gw-b lines); as each host reads it, it must say what the lab's
  // generator says for that host, so the shipped example is the configuration the lab tests.
  const file = readFileSync(fileURLToPath(new URL('../../../deploy/keepalived/keepalived.conf', import.meta.url)), 'utf8');
  const meaningful = (text: string, id: string) => text.split('\n').map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .flatMap((l) => { const m = /^@(\S+)\s+(.*)$/.exec(l); return m ? (m[1] === id ? [m[2]!] : []) : [l]; });
  const host = (id: string, last: string): VrrpHost => ({ name: id, clientIf: 'eth1', serverIf: 'eth2', clientAddr: `198.18.1.${last}`, serverAddr: `198.18.2.${last}` });

  for (const [id, self, peer, priority] of [['gw-a', '11', '12', 150], ['gw-b', '12', '11', 100]] as const) {
    it(`read as ${id}, it is the lab's configuration for that host`, () => {
      const lab = keepalivedConfig({
        self: host(id, self), peer: host(id === 'gw-a' ? 'gw-b' : 'gw-a', peer),
        vip: { client: '198.18.1.1', server: '198.18.2.1', prefixLength: 24 }, priority, advertInt: 0.1,
        notifyScript: '/usr/local/lib/ftcp/notify.sh', checkScript: '/usr/local/lib/ftcp/check-gateway.sh',
      });
      expect(meaningful(file, id)).toEqual(meaningful(lab, id));
    });
  }
});

describe('the hooks, run by sh', () => {
  /** Runs `fn` with a fresh temporary directory, removed afterwards. */
  const inTmp = (fn: (d: string) => void) => {
    const d = mkdtempSync(join(tmpdir(), 'ftcp-ka-'));
    try { fn(d); } finally { rmSync(d, { recursive: true, force: true }); }
  };

  it('notify.sh records each transition and tells the gateway: MASTER → takeover, BACKUP/FAULT → release', () => inTmp((d) => {
    const script = join(d, 'notify.sh');
    const program = [process.execPath, '-e', `console.log(process.argv.slice(1).join(' ')); process.exit(process.argv[2] === 'release' ? 3 : 0)`];
    writeFileSync(script, notifyScript({ transitions: join(d, 'transitions'), gateway: { program, control: '127.0.0.1:7070' } }), { mode: 0o755 });
    for (const s of ['MASTER', 'FAULT']) expect(spawnSync('sh', [script, s]).status).toBe(0);
    const t = readFileSync(join(d, 'transitions'), 'utf8').trim().split('\n').map((l) => l.replace(/^\d+\.\d+ /, ''));
    expect(t).toEqual(['MASTER', 'MASTER rc=0', 'FAULT', 'FAULT rc=3']);
    expect(readFileSync(join(d, 'transitions.out'), 'utf8')).toBe('gateway takeover --control 127.0.0.1:7070\ngateway release --control 127.0.0.1:7070\n');
  }));

  it('notify.sh without a gateway only records', () => inTmp((d) => {
    const script = join(d, 'notify.sh');
    writeFileSync(script, notifyScript({ transitions: join(d, 'transitions'), gateway: null }), { mode: 0o755 });
    expect(spawnSync('sh', [script, 'BACKUP']).status).toBe(0);
    expect(readFileSync(join(d, 'transitions'), 'utf8')).toMatch(/^\d+\.\d+ BACKUP\n\d+\.\d+ BACKUP rc=0\n$/);
  }));

  it('check-gateway.sh passes only for a ready file naming a live process', () => inTmp((d) => {
    const ready = join(d, 'gateway.ready');
    const script = join(d, 'check.sh');
    writeFileSync(script, checkScript(ready), { mode: 0o755 });
    const check = () => spawnSync('sh', [script]).status;
    expect(check()).not.toBe(0); // no ready file
    writeFileSync(ready, JSON.stringify({ pid: process.pid, tun: 'ftcp0', control: '127.0.0.1:7070' }) + '\n');
    expect(check()).toBe(0);
    const gone = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).stdout.trim();
    writeFileSync(ready, JSON.stringify({ pid: Number(gone) }) + '\n');
    expect(check()).not.toBe(0); // a stale pid
    writeFileSync(ready, '{"pid":');
    expect(check()).not.toBe(0); // half written
  }));
});
