/**
 * What a gateway leaves in the kernel for the next one (DESIGN.md §7, issue 14 item 2): the
 * persistent TUN device, its steering rules and routes, and a record of them in a small state
 * file (<state dir>/<tun>.json, written atomically). The kernel state outlives the process on
 * purpose: while no gateway runs, the rules still send protected traffic to the TUN, which has
 * no reader and drops it (the clients' TCP retransmits), instead of the main table forwarding
 * it unprotected. A blackhole default route of the last metric in the gateway's table keeps
 * that true even if the device itself goes (its route goes with it).
 *
 * At start-up `decide` compares what the kernel holds with what this gateway asks for:
 *
 *   nothing of ours present                          -> create
 *   ours present (record and/or rules that match
 *   exactly), the same --tun/--steer/--table         -> reuse (complete whatever is missing)
 *   a record for other arguments, a rule for a
 *   steered interface or our table that is not ours,
 *   a foreign route in our table, the device in use,
 *   a record of another network namespace            -> refuse, saying what and how to clear it
 *
 * Everything here is pure (the kernel's `ip -j` output and the record are inputs) except the
 * few file helpers at the end.
 */
import { mkdir, readFile, rename, rm, writeFile, open } from 'node:fs/promises';
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';

/** Where `ftcp gateway` records its kernel state unless --state-dir says otherwise. */
export const DEFAULT_STATE_DIR = '/run/ftcp';
/** Metric of the blackhole default route: the last any route can have, so it never wins over the TUN's. */
export const BLACKHOLE_METRIC = 4294967295;
const RECORD_VERSION = 1;

/** What a gateway asks for (its command line). */
export interface SteeringWant {
  tun: string;
  steer: readonly string[];
  table: number;
  /** Preference of the first rule; one per steered interface, then the ICMP rule. */
  pref: number;
}

/** The state file: what the gateway set up, and what `ftcp gateway down` undoes. */
export interface SteeringRecord extends SteeringWant {
  version: typeof RECORD_VERSION;
  /** The network namespace it lives in (/proc/self/ns/net, e.g. "net:[4026531840]"). */
  netns: string;
  /** net.ipv4.conf.all.rp_filter before the first gateway set it to 0; null: it was 0 already, or unknown. */
  rpFilterAll: string | null;
  createdAt: string;
  /** The latest gateway process that used it, and when it started. */
  pid: number;
  startedAt: string;
  /** How many gateway processes have used this state (1: the one that created it). */
  starts: number;
}

/** One steering rule as the gateway adds it. */
export interface RuleSpec {
  pref: number;
  iif: string;
  /** 'icmp' for the rule that catches the gateway kernel's own ICMP errors. */
  ipproto: 'icmp' | null;
  table: number;
}

/** A rule as `ip -j rule show` prints it (the fields looked at). */
export interface KernelRule {
  priority?: number;
  iif?: string;
  ipproto?: string;
  table?: string;
  [k: string]: unknown;
}

/** A route as `ip -j route show table N` prints it. */
export interface KernelRoute {
  type?: string;
  dst?: string;
  dev?: string;
  metric?: number;
  [k: string]: unknown;
}

/** The device as `ip -d -j link show dev <tun>` says it is, or null when absent. */
export interface KernelLink {
  kind: string | null;
  persist: boolean;
  /** A process has it open (LOWER_UP). */
  carrier: boolean;
  /** Administratively up, and its MTU and queue length (what a start sets; unknown: absent). */
  up?: boolean;
  mtu?: number;
  txqlen?: number;
}

export interface KernelView {
  rules: KernelRule[];
  /** Routes of `want.table`. */
  routes: KernelRoute[];
  link: KernelLink | null;
  /** Every interface's name (the steered ones must be among them; absent: not listed). */
  interfaces?: readonly string[];
  /** Our network namespace (same form as SteeringRecord.netns). */
  netns: string;
}

/** What a start found, for `ftcp status` and the logs. */
export interface FoundState {
  record: boolean;
  device: boolean;
  route: boolean;
  blackhole: boolean;
  rules: number;
  rulesExpected: number;
}

export type SteeringDecision =
  | { action: 'create'; found: FoundState }
  | { action: 'reuse'; found: FoundState; record: SteeringRecord | null }
  | { action: 'refuse'; code: string; message: string };

/** The rules a gateway adds for `want`, in order: one per steered interface, then ICMP from lo. */
export function expectedRules(want: SteeringWant): RuleSpec[] {
  const rules: RuleSpec[] = want.steer.map((iif, i) => ({ pref: want.pref + i, iif, ipproto: null, table: want.table }));
  if (want.steer.length > 0) rules.push({ pref: want.pref + want.steer.length, iif: 'lo', ipproto: 'icmp', table: want.table });
  return rules;
}

/** Whether a kernel rule is exactly the rule `r` the gateway adds. */
export function ruleMatches(k: KernelRule, r: RuleSpec): boolean {
  // Exactly: nothing else on the rule (a fwmark, a source, ...) than what the gateway puts there.
  const extra = Object.keys(k).filter((key) => !['priority', 'src', 'iif', 'ipproto', 'table', 'flags'].includes(key));
  return k.priority === r.pref && k.iif === r.iif && ipproto(k) === r.ipproto && k.table === String(r.table) &&
    (k.src === undefined || k.src === 'all') && extra.length === 0;
}

/**
 * `ip -N` prints numbers for names: ipproto 1 as "ipproto-1", route types as their RTN_*
 * values (1 unicast, 6 blackhole). Both spellings are accepted.
 */
function ipproto(k: KernelRule): string | null {
  const p = k.ipproto;
  if (p === undefined) return null;
  return p === 'icmp' || p === 'ipproto-1' || p === '1' ? 'icmp' : p;
}
const routeType = (r: KernelRoute): string => {
  const t = r.type ?? 'unicast';
  return t === '1' ? 'unicast' : t === '6' ? 'blackhole' : t;
};

export function ruleText(r: RuleSpec): string {
  return `pref ${r.pref} iif ${r.iif}${r.ipproto ? ` ipproto ${r.ipproto}` : ''} lookup ${r.table}`;
}

function kernelRuleText(k: KernelRule): string {
  return Object.entries(k).map(([key, v]) => `${key} ${String(v)}`).join(' ');
}

export const isTunRoute = (r: KernelRoute, tun: string): boolean => r.dst === 'default' && r.dev === tun && routeType(r) === 'unicast';
export const isBlackhole = (r: KernelRoute): boolean => routeType(r) === 'blackhole' && r.dst === 'default' && r.metric === BLACKHOLE_METRIC;

const sameWant = (a: SteeringWant, b: SteeringWant): boolean =>
  a.tun === b.tun && a.table === b.table && a.pref === b.pref && a.steer.length === b.steer.length && a.steer.every((s, i) => b.steer[i] === s);

const describeWant = (w: SteeringWant): string => `--tun ${w.tun} --steer ${w.steer.join(',') || '(none)'} --table ${w.table} (rules from pref ${w.pref})`;

/** Decides create / reuse / refuse (see the table at the top). */
export function decide(
  want: SteeringWant, k: KernelView, record: SteeringRecord | null, downCommand = `ftcp gateway down --tun ${want.tun}`,
): SteeringDecision {
  const down = `'${downCommand}' removes it`;
  if (record !== null && record.netns !== k.netns) {
    return {
      action: 'refuse', code: 'FTCP_STATE_OTHER_NETNS',
      message: `the state file for ${want.tun} belongs to network namespace ${record.netns}, this is ${k.netns}: give each namespace its own --state-dir`,
    };
  }
  if (record !== null && !sameWant(record, want)) {
    return {
      action: 'refuse', code: 'FTCP_STEERING_OTHER',
      message: `${want.tun} is set up as ${describeWant(record)}, this gateway asks for ${describeWant(want)}; ${down} first`,
    };
  }
  if (k.link !== null && k.link.kind !== 'tun') {
    return { action: 'refuse', code: 'FTCP_TUN_NOT_TUN', message: `an interface named ${want.tun} exists and is not a TUN device (${k.link.kind ?? 'unknown kind'})` };
  }
  if (k.link !== null && k.link.carrier) {
    return { action: 'refuse', code: 'FTCP_TUN_IN_USE', message: `${want.tun} is open in another process (carrier up): another gateway runs on it` };
  }
  const expected = expectedRules(want);
  const prefs = new Set(expected.map((r) => r.pref));
  let rules = 0;
  for (const kr of k.rules) {
    const mine = expected.find((r) => ruleMatches(kr, r));
    if (mine !== undefined) {
      rules++;
      continue;
    }
    const steered = kr.iif !== undefined && want.steer.includes(kr.iif);
    if (steered || kr.table === String(want.table) || (kr.priority !== undefined && prefs.has(kr.priority))) {
      return {
        action: 'refuse', code: 'FTCP_STEERING_EXISTS',
        message: `a policy rule that is not this gateway's is in the way (another gateway, another table?): ${kernelRuleText(kr)}; ` +
          `this gateway adds ${expected.map(ruleText).join('; ')}`,
      };
    }
  }
  let route = false;
  let blackhole = false;
  for (const r of k.routes) {
    if (isTunRoute(r, want.tun)) route = true;
    else if (isBlackhole(r)) blackhole = true;
    else {
      return {
        action: 'refuse', code: 'FTCP_TABLE_IN_USE',
        message: `routing table ${want.table} holds a route that is not this gateway's: ${kernelRuleText(r)}; give another --table`,
      };
    }
  }
  const found: FoundState = { record: record !== null, device: k.link !== null, route, blackhole, rules, rulesExpected: expected.length };
  if (record === null && rules === 0 && !route && !blackhole) return { action: 'create', found };
  return { action: 'reuse', found, record };
}

// ---- the state file ---------------------------------------------------------------------

export function stateFile(dir: string, tun: string): string {
  return join(dir, `${tun}.json`);
}

/** This process's network namespace, as the record names it. */
export function currentNetns(): string {
  return readlinkSync('/proc/self/ns/net');
}

/** Checks a parsed state file; throws naming what is wrong (a damaged file is not silently ignored). */
export function parseRecord(text: string, file: string): SteeringRecord {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not JSON (${(err as Error).message})`);
  }
  const o = v as Record<string, unknown>;
  const bad = (what: string) => new Error(`${file}: ${what}`);
  if (typeof o !== 'object' || o === null) throw bad('not an object');
  if (o.version !== RECORD_VERSION) throw bad(`version ${JSON.stringify(o.version)}, expected ${RECORD_VERSION}`);
  const str = (k: string) => { if (typeof o[k] !== 'string') throw bad(`${k} is not a string`); return o[k] as string; };
  const int = (k: string) => { if (typeof o[k] !== 'number' || !Number.isInteger(o[k])) throw bad(`${k} is not an integer`); return o[k] as number; };
  if (!Array.isArray(o.steer) || !o.steer.every((s) => typeof s === 'string')) throw bad('steer is not a list of names');
  if (o.rpFilterAll !== null && typeof o.rpFilterAll !== 'string') throw bad('rpFilterAll is neither null nor a string');
  return {
    version: RECORD_VERSION, tun: str('tun'), steer: o.steer as string[], table: int('table'), pref: int('pref'), netns: str('netns'),
    rpFilterAll: o.rpFilterAll as string | null, createdAt: str('createdAt'), pid: int('pid'), startedAt: str('startedAt'), starts: int('starts'),
  };
}

/** The record in `file`, or null when there is none. */
export async function readRecord(file: string): Promise<SteeringRecord | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return parseRecord(text, file);
}

/** Writes the record atomically (a temporary file, fsync, rename): a crash leaves the old one or the new one. */
export async function writeRecord(file: string, record: SteeringRecord): Promise<void> {
  await mkdir(join(file, '..'), { recursive: true, mode: 0o755 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(record, null, 2) + '\n', { mode: 0o644 });
  const fh = await open(tmp, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

export async function removeRecord(file: string): Promise<void> {
  await rm(file, { force: true });
}
