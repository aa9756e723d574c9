/**
 * Policy routing that steers every forwarded packet through the gateway's TUN device
 * (DESIGN.md §1):
 *
 *   ip rule add iif <each steered interface> lookup <table> pref <pref>
 *   ip rule add iif lo ipproto icmp lookup <table>      (the gateway kernel's own ICMP errors)
 *   ip route add default dev <tun> table <table>
 *
 * Packets the gateway writes back enter with iif <tun>, match no rule of ours and follow
 * the main table. Everything added is recorded and removed again, in reverse order, by
 * `teardown()`, also after a partial failure: nothing is left half-configured.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFile, writeFile } from 'node:fs/promises';
import { FtcpError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

const run = promisify(execFile);

export async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args, { timeout: 10_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new FtcpError('FTCP_IP_COMMAND', `ip ${args.join(' ')}: ${(e.stderr || e.message).trim()}`, { cause: err });
  }
}

async function sysctl(key: string): Promise<string> {
  return (await readFile(`/proc/sys/${key.replaceAll('.', '/')}`, 'utf8')).trim();
}

async function setSysctl(key: string, value: string): Promise<void> {
  await writeFile(`/proc/sys/${key.replaceAll('.', '/')}`, value);
}

export interface SteeringOptions {
  tun: string;
  steer: readonly string[];
  table: number;
  /** First rule preference; one per steered interface. */
  pref: number;
  mtu: number;
  /** Packets the kernel may queue toward the TUN while the gateway is busy (default 4096). */
  txQueueLen?: number;
}

export class Steering {
  private readonly undo: Array<{ what: string; args: string[] } | { what: string; fn: () => Promise<void> }> = [];

  constructor(private readonly opts: SteeringOptions, private readonly logger: Logger) {}

  /** Checks preconditions, then configures; on any failure undoes what it did and throws. */
  async setup(): Promise<void> {
    const { tun, steer, table, pref, mtu } = this.opts;
    if ((await sysctl('net.ipv4.ip_forward')) !== '1') {
      throw new FtcpError('FTCP_NO_FORWARDING', 'net.ipv4.ip_forward is 0: this host does not route (sysctl -w net.ipv4.ip_forward=1)');
    }
    for (const ifname of steer) {
      try {
        await ip(['link', 'show', 'dev', ifname]);
      } catch {
        throw new FtcpError('FTCP_NO_INTERFACE', `--steer: no interface named '${ifname}'`);
      }
    }
    const rules = await ip(['rule', 'show']);
    for (const ifname of steer) {
      if (new RegExp(`iif ${ifname}( |$)`, 'm').test(rules)) {
        throw new FtcpError('FTCP_STEERING_EXISTS', `a policy rule for iif ${ifname} already exists (another gateway?): ${rules.split('\n').find((l) => l.includes(`iif ${ifname}`))}`);
      }
    }
    try {
      // The kernel's default of 500 overflows at line rate while JavaScript runs a batch.
      await ip(['link', 'set', 'dev', tun, 'mtu', String(mtu), 'txqueuelen', String(this.opts.txQueueLen ?? 4096), 'up']);
      const all = await sysctl('net.ipv4.conf.all.rp_filter');
      await setSysctl(`net.ipv4.conf.${tun}.rp_filter`, '0');
      if (all !== '0') {
        // Reverse-path filtering would drop what the TUN hands back (a client's source on the TUN).
        await setSysctl('net.ipv4.conf.all.rp_filter', '0');
        this.undo.push({ what: 'rp_filter', fn: () => setSysctl('net.ipv4.conf.all.rp_filter', all) });
        this.logger.warn({ previous: all }, 'net.ipv4.conf.all.rp_filter set to 0 while the gateway runs');
      }
      await ip(['route', 'add', 'default', 'dev', tun, 'table', String(table)]);
      this.undo.push({ what: 'route', args: ['route', 'del', 'default', 'dev', tun, 'table', String(table)] });
      let p = pref;
      for (const ifname of steer) {
        const args = ['rule', 'add', 'iif', ifname, 'lookup', String(table), 'pref', String(p)];
        await ip(args);
        this.undo.push({ what: 'rule', args: ['rule', 'del', 'iif', ifname, 'lookup', String(table), 'pref', String(p)] });
        p++;
      }
      if (steer.length > 0) {
        // ICMP the gateway's own kernel generates (host unreachable while the server host is
        // down, …) goes through the TUN too, so errors about masked connections can be dropped.
        // Local destinations resolve in the local table first (pref 0), so they are not caught.
        // What the gateway writes back has a local source address: accept_local lets it in.
        await setSysctl(`net.ipv4.conf.${tun}.accept_local`, '1');
        const args = ['rule', 'add', 'iif', 'lo', 'ipproto', 'icmp', 'lookup', String(table), 'pref', String(p)];
        await ip(args);
        this.undo.push({ what: 'rule', args: ['rule', 'del', 'iif', 'lo', 'ipproto', 'icmp', 'lookup', String(table), 'pref', String(p)] });
      }
      this.logger.info({ tun, steer, table }, 'policy routing through the TUN is up');
    } catch (err) {
      await this.teardown();
      throw err;
    }
  }

  /** Removes everything `setup` added, newest first. Never throws; logs what it could not undo. */
  async teardown(): Promise<void> {
    while (this.undo.length > 0) {
      const step = this.undo.pop()!;
      try {
        if ('fn' in step) await step.fn();
        else await ip(step.args);
      } catch (err) {
        this.logger.warn({ step: step.what, err: (err as Error).message }, 'could not undo a steering step');
      }
    }
  }
}
