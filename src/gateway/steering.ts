/**
 * Policy routing that steers every forwarded packet through the gateway's TUN device
 * (DESIGN.md §1, §7):
 *
 *   ip rule add iif <each steered interface> lookup <table> pref <pref>
 *   ip rule add iif lo ipproto icmp lookup <table>      (the gateway kernel's own ICMP errors)
 *   ip route add default dev <tun> table <table>
 *   ip route add blackhole default table <table> metric 4294967295
 *
 * Packets the gateway writes back enter with iif <tun>, match no rule of ours and follow
 * the main table.
 *
 * The steering outlives the gateway process (fail closed, issue 14): a crash, a kill -9 or a
 * clean stop leave it, with the persistent TUN, in place. With no reader on the TUN the kernel
 * drops what the rules send there; the blackhole route drops it if the device is gone too, so
 * nothing ever falls through to the main table unprotected. The next gateway `inspect`s the
 * kernel, decides (steering-state.ts) and `apply`s: it completes whatever is missing. Only
 * `removeSteering` (ftcp gateway down) takes it all away. A start that CREATED the steering and
 * then failed undoes what it did, newest first (`rollback`): nothing is left half-configured.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFile, writeFile } from 'node:fs/promises';
import { FtcpError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import {
  BLACKHOLE_METRIC, DEFAULT_STATE_DIR, currentNetns, decide, expectedRules, isBlackhole, isTunRoute, removeRecord, ruleMatches, ruleText, stateFile, writeRecord,
  type KernelLink, type KernelRoute, type KernelRule, type KernelView, type SteeringDecision, type SteeringRecord, type SteeringWant,
} from './steering-state.js';

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

const RP_FILTER_ALL = 'net.ipv4.conf.all.rp_filter';

export interface SteeringOptions extends SteeringWant {
  mtu: number;
  /** Packets the kernel may queue toward the TUN while the gateway is busy (default 4096). */
  txQueueLen?: number;
  /** Where the state file lives (DEFAULT_STATE_DIR). */
  stateDir: string;
}

/**
 * The device `tun` as the kernel shows it, or null when there is none. Carrier is LOWER_UP: a
 * TUN has it while a process holds it open. (Not the NO-CARRIER flag: iproute2 derives it from
 * the operstate, which the kernel's link watch updates up to a second later.)
 */
export async function inspectLink(tun: string): Promise<KernelLink | null> {
  let shown: string;
  try {
    shown = await ip(['-d', '-j', 'link', 'show', 'dev', tun]);
  } catch {
    return null; // no such device
  }
  const l = (JSON.parse(shown) as ShownLink[])[0];
  return l === undefined ? null : linkOf(l);
}

/** One interface as `ip -d -j link show` prints it (the fields read here). */
interface ShownLink {
  ifname?: string;
  flags?: string[];
  mtu?: number;
  txqlen?: number;
  linkinfo?: { info_kind?: string; info_data?: { persist?: boolean } };
}

function linkOf(l: ShownLink): KernelLink {
  const flags = l.flags ?? [];
  return {
    kind: l.linkinfo?.info_kind ?? null, persist: l.linkinfo?.info_data?.persist === true, carrier: flags.includes('LOWER_UP'),
    up: flags.includes('UP'), mtu: l.mtu, txqlen: l.txqlen,
  };
}

/** The kernel's view of a gateway's steering (`ip -N -j`: tables by number). */
export async function inspectKernel(want: SteeringWant): Promise<KernelView> {
  // The three queries at once: each is an `ip` process (20-50 ms on a loaded host), and a
  // restarted gateway waits for them before it forwards (issue 14's restart aim).
  const [rules, routes, links] = await Promise.all([
    ip(['-N', '-j', 'rule', 'show']).then((out) => JSON.parse(out) as KernelRule[]),
    ip(['-N', '-j', 'route', 'show', 'table', String(want.table)]).then(
      (out) => JSON.parse(out || '[]') as KernelRoute[],
      (err: unknown) => {
        // A table nothing was ever added to does not exist yet: no routes.
        if (!/FIB table does not exist/.test((err as Error).message)) throw err;
        return [] as KernelRoute[];
      },
    ),
    // Every interface in one list: the TUN, and the steered ones prepare() checks.
    ip(['-d', '-j', 'link', 'show']).then((out) => JSON.parse(out || '[]') as ShownLink[]),
  ]);
  const tun = links.find((l) => l.ifname === want.tun);
  return { rules, routes, link: tun === undefined ? null : linkOf(tun), interfaces: links.flatMap((l) => (l.ifname === undefined ? [] : [l.ifname])), netns: currentNetns() };
}

type UndoStep = { what: string; args: string[] } | { what: string; fn: () => Promise<void> };

export class Steering {
  private readonly undo: UndoStep[] = [];
  private decision: SteeringDecision | null = null;
  /** The kernel's steering as prepare() found it (apply() completes what it lacks). */
  private view: KernelView | null = null;
  readonly file: string;

  constructor(private readonly opts: SteeringOptions, private readonly logger: Logger) {
    this.file = stateFile(opts.stateDir, opts.tun);
  }

  /**
   * Checks the preconditions and decides create / reuse; throws FtcpError on refuse. Call it
   * BEFORE opening the TUN: opening creates the device and takes its carrier up.
   */
  async prepare(record: SteeringRecord | null): Promise<SteeringDecision & { action: 'create' | 'reuse' }> {
    const { steer } = this.opts;
    if ((await sysctl('net.ipv4.ip_forward')) !== '1') {
      throw new FtcpError('FTCP_NO_FORWARDING', 'net.ipv4.ip_forward is 0: this host does not route (sysctl -w net.ipv4.ip_forward=1)');
    }
    const kernel = await inspectKernel(this.opts);
    const absent = steer.find((ifname) => !(kernel.interfaces ?? []).includes(ifname));
    if (absent !== undefined) throw new FtcpError('FTCP_NO_INTERFACE', `--steer: no interface named '${absent}'`);
    const downCommand = `ftcp gateway down --tun ${this.opts.tun}${this.opts.stateDir === DEFAULT_STATE_DIR ? '' : ` --state-dir ${this.opts.stateDir}`}`;
    const d = decide(this.opts, kernel, record, downCommand);
    if (d.action === 'refuse') throw new FtcpError(d.code, d.message);
    this.decision = d;
    this.view = kernel;
    return d;
  }

  /**
   * Configures whatever of the steering is missing (all of it on create), then records it in
   * the state file. On failure: a create is rolled back; a reuse leaves what it found, so
   * protected traffic stays dropped rather than forwarded.
   */
  async apply(pid: number): Promise<SteeringRecord> {
    const d = this.decision;
    if (d === null || d.action === 'refuse') throw new Error('Steering.apply before a successful prepare');
    const { tun, steer, table, mtu } = this.opts;
    const creating = d.action === 'create';
    try {
      // The kernel's default of 500 overflows at line rate while JavaScript runs a batch. A
      // device reused as an earlier gateway left it (up, this MTU and queue) needs no `ip`
      // process, one less before a restarted gateway forwards.
      const txqlen = this.opts.txQueueLen ?? 4096;
      const l = this.view!.link;
      if (creating || l === null || l.up !== true || l.mtu !== mtu || l.txqlen !== txqlen) {
        await ip(['link', 'set', 'dev', tun, 'mtu', String(mtu), 'txqueuelen', String(txqlen), 'up']);
      }
      await setSysctl(`net.ipv4.conf.${tun}.rp_filter`, '0');
      let rpFilterAll = d.action === 'reuse' && d.record !== null ? d.record.rpFilterAll : null;
      const all = await sysctl(RP_FILTER_ALL);
      if (all !== '0') {
        // Reverse-path filtering would drop what the TUN hands back (a client's source on the TUN).
        await setSysctl(RP_FILTER_ALL, '0');
        rpFilterAll = all;
        this.undo.push({ what: 'rp_filter', fn: () => setSysctl(RP_FILTER_ALL, all) });
        this.logger.warn({ previous: all }, `${RP_FILTER_ALL} set to 0 while the gateway's steering exists`);
      }
      // The rules and routes as prepare() saw them, moments ago: bringing the device up adds
      // none, and one that was down had its routes taken with it, so they are added here.
      // (Inspecting again cost a restarted gateway three more `ip` processes before it forwards.)
      const kernel = this.view!;
      if (!kernel.routes.some((r) => isTunRoute(r, tun))) {
        await this.add('route', ['route', 'add', 'default', 'dev', tun, 'table', String(table)]);
      }
      if (!kernel.routes.some(isBlackhole)) {
        // Should the device go, its route goes with it: this one then drops what the rules send here.
        await this.add('blackhole', ['route', 'add', 'blackhole', 'default', 'table', String(table), 'metric', String(BLACKHOLE_METRIC)]);
      }
      if (steer.length > 0) {
        // ICMP the gateway's own kernel generates (host unreachable while the server host is
        // down, …) goes through the TUN too (the last expected rule), so errors about masked
        // connections can be dropped. Local destinations resolve in the local table first
        // (pref 0), so they are not caught. What the gateway writes back has a local source
        // address: accept_local lets it in.
        await setSysctl(`net.ipv4.conf.${tun}.accept_local`, '1');
      }
      for (const r of expectedRules(this.opts)) {
        if (!kernel.rules.some((k) => ruleMatches(k, r))) await this.add('rule', ['rule', 'add', ...ruleArgs(r)]);
      }
      const now = new Date().toISOString();
      const prev = d.action === 'reuse' ? d.record : null;
      const record: SteeringRecord = {
        version: 1, tun, steer: [...steer], table, pref: this.opts.pref, netns: kernel.netns, rpFilterAll,
        createdAt: prev?.createdAt ?? now, pid, startedAt: now, starts: (prev?.starts ?? 0) + 1,
      };
      await writeRecord(this.file, record);
      this.undo.push({ what: 'state file', fn: () => removeRecord(this.file) });
      this.logger.info({ tun, steer, table, action: d.action, found: d.found, stateFile: this.file }, creating
        ? 'policy routing through the TUN is up'
        : 'policy routing through the TUN reused (left by an earlier gateway), missing parts completed');
      return record;
    } catch (err) {
      if (creating) await this.rollback();
      throw err;
    }
  }

  private async add(what: string, args: string[]): Promise<void> {
    await ip(args);
    this.undo.push({ what, args: args.map((a) => (a === 'add' ? 'del' : a)) });
  }

  /** Removes what this process added, newest first (a failed start). Never throws; logs what it could not undo. */
  async rollback(): Promise<void> {
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

function ruleArgs(r: { pref: number; iif: string; ipproto: string | null; table: number }): string[] {
  return ['iif', r.iif, ...(r.ipproto ? ['ipproto', r.ipproto] : []), 'lookup', String(r.table), 'pref', String(r.pref)];
}

/**
 * `ftcp gateway down`: removes the rules, the routes, the device and the state file a record
 * describes, and restores net.ipv4.conf.all.rp_filter. Idempotent: what is already gone is
 * skipped. Refuses while a process has the device open (a running gateway). Returns what it
 * removed, in order.
 */
export async function removeSteering(record: SteeringRecord, file: string, logger: Logger): Promise<string[]> {
  const kernel = await inspectKernel(record);
  if (kernel.link !== null && kernel.link.kind === 'tun' && kernel.link.carrier) {
    throw new FtcpError('FTCP_TUN_IN_USE', `${record.tun} is open (a gateway runs${record.pid > 0 ? `, last started as pid ${record.pid}` : ''}): stop it first`);
  }
  if (record.netns !== kernel.netns) {
    throw new FtcpError('FTCP_STATE_OTHER_NETNS', `${file} describes network namespace ${record.netns}, this is ${kernel.netns}: run this inside that namespace`);
  }
  const removed: string[] = [];
  for (const r of expectedRules(record).reverse()) {
    // Only a rule that is exactly this gateway's is removed.
    if (!kernel.rules.some((k) => ruleMatches(k, r))) continue;
    await ip(['rule', 'del', ...ruleArgs(r)]);
    removed.push(`rule ${ruleText(r)}`);
  }
  if (kernel.routes.some(isBlackhole)) {
    await ip(['route', 'del', 'blackhole', 'default', 'table', String(record.table), 'metric', String(BLACKHOLE_METRIC)]);
    removed.push(`route blackhole default table ${record.table}`);
  }
  if (kernel.routes.some((r) => isTunRoute(r, record.tun))) {
    await ip(['route', 'del', 'default', 'dev', record.tun, 'table', String(record.table)]);
    removed.push(`route default dev ${record.tun} table ${record.table}`);
  }
  if (kernel.link !== null && kernel.link.kind === 'tun') {
    await ip(['link', 'del', 'dev', record.tun]);
    removed.push(`device ${record.tun}`);
  }
  if (record.rpFilterAll !== null && (await sysctl(RP_FILTER_ALL)) === '0') {
    await setSysctl(RP_FILTER_ALL, record.rpFilterAll);
    removed.push(`${RP_FILTER_ALL} restored to ${record.rpFilterAll}`);
  }
  await removeRecord(file);
  removed.push(`state file ${file}`);
  logger.info({ tun: record.tun, removed }, 'gateway steering removed');
  return removed;
}
