/**
 * The namespace lab's fixed topology (every lab lives in its own four namespaces, so labs
 * with different names never collide; the addresses are the same in every lab):
 *
 *   <n>-client            <n>-gw                                   <n>-server
 *    c0 198.18.1.2/24 ─── gc0 198.18.1.1/24   [TUN ftcp0]   gs0 198.18.2.1/24 ─── s0 198.18.2.2/24
 *                          gl1 198.18.3.1/24   gl2 198.18.4.1/24
 *                            │                   │
 *   <n>-log                l1 198.18.3.2/24    l2 198.18.4.2/24       (two independent log links)
 *
 * 198.18.0.0/15 is the benchmarking range (RFC 2544). Client and server route by default via
 * the gateway; the log namespace reaches the gateway directly on both links.
 * With `--standby-gateway` (./standby.ts) the links become shared segments with a second
 * gateway host <n>-gw2, and 198.18.1.1 / 198.18.2.1 are keepalived's virtual addresses.
 *
 * The gateway's control endpoint is on the management path only: 127.0.0.1:7070 inside <n>-gw
 * (`ftcp status --name <n>` and the drills reach it with `ip netns exec <n>-gw`); clients and
 * servers cannot reach it (a loopback address is martian on their links, and the gateway
 * drops TCP toward it that crosses its TUN).
 */
import { UsageError } from '../util/errors.js';
import type { StandbyTopology } from './standby.js';

export const LAB_NAME_RE = /^[a-z][a-z0-9-]{0,14}$/;
export const LAB_RUN_DIR = '/run/ftcp-lab';
export const PREFIX_LEN = 24;
export const CONTROL_PORT = 7070;
/** The lab gateway's control endpoint, on the loopback of <n>-gw (the management path). */
export const LAB_CONTROL = `127.0.0.1:${CONTROL_PORT}`;
/** The gateway's liveness oracle (supervisor notices) in the lab. */
export const ORACLE_PORT = 7071;
export const TUN_NAME = 'ftcp0';

export type ForwardMode = 'gateway' | 'kernel';
export type LabLogMode = 'embedded' | 'embedded:disk' | 'remote';

/** UDP port of `ftcp logserver` in <n>-log (--log remote), on both log links. */
export const LOG_SERVER_PORT = 7500;
/** The log server's /metrics in the lab, on the loopback of <n>-log. */
export const LAB_LOG_METRICS = '127.0.0.1:7073';

export interface LabNamespaces { client: string; gw: string; server: string; log: string }

/** Interface-level endpoints; `addresses` and `interfaces` share these keys. */
export interface LabEndpoints<T> {
  client: T; gwClient: T; gwServer: T; server: T; gwLog1: T; log1: T; gwLog2: T; log2: T;
}

export interface LabTopology {
  name: string;
  namespaces: LabNamespaces;
  /** Plain IPv4 addresses (all /24, see `prefixLength`). */
  addresses: LabEndpoints<string>;
  interfaces: LabEndpoints<string> & { tun: string };
  prefixLength: number;
  subnets: { client: string; server: string; log1: string; log2: string };
  /** The gateway's control endpoint, "127.0.0.1:7070" inside <n>-gw (LAB_CONTROL). */
  control: string;
  /** Protected server ports (on `addresses.server`). */
  protect: number[];
  forward: ForwardMode;
  /** The gateway's log mode; null with `forward: 'kernel'` (nothing logs). */
  log: LabLogMode | null;
  stateDir: string;
  keyFile: null;
  /** The gateway process (inside `namespaces.gw`), null in kernel mode. */
  gatewayPid: number | null;
  /** The gateway's full argv (program first), null in kernel mode. */
  gatewayCommand: string[] | null;
  /** Where the gateway's stdout/stderr go, null in kernel mode. */
  gatewayLog: string | null;
  createdAt: string;
  /** `--standby-gateway`: <n>-gw2, the shared segments and keepalived (./standby.ts); absent or null without. */
  standby?: StandbyTopology | null;
}

export const ADDRESSES: Readonly<LabEndpoints<string>> = Object.freeze({
  client: '198.18.1.2', gwClient: '198.18.1.1',
  gwServer: '198.18.2.1', server: '198.18.2.2',
  gwLog1: '198.18.3.1', log1: '198.18.3.2',
  gwLog2: '198.18.4.1', log2: '198.18.4.2',
});

export const INTERFACES: Readonly<LabEndpoints<string> & { tun: string }> = Object.freeze({
  client: 'c0', gwClient: 'gc0', gwServer: 'gs0', server: 's0',
  gwLog1: 'gl1', log1: 'l1', gwLog2: 'gl2', log2: 'l2', tun: TUN_NAME,
});

/** Throws UsageError unless `name` is a valid lab name. */
export function checkLabName(name: unknown): string {
  if (typeof name !== 'string' || !LAB_NAME_RE.test(name)) {
    throw new UsageError(
      `invalid lab name ${JSON.stringify(name)}: expected a lowercase letter then up to 14 of [a-z0-9-] ` +
        `(pattern ${LAB_NAME_RE.source})`,
    );
  }
  return name;
}

export function labNamespaces(name: string): LabNamespaces {
  checkLabName(name);
  return { client: `${name}-client`, gw: `${name}-gw`, server: `${name}-server`, log: `${name}-log` };
}

export function labStateDir(name: string): string {
  return `${LAB_RUN_DIR}/${checkLabName(name)}`;
}

/** Validates and normalises a protect list: integer ports 1..65535, deduplicated, in order given. */
export function checkProtectPorts(ports: readonly unknown[]): number[] {
  const out: number[] = [];
  for (const p of ports) {
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) {
      throw new UsageError(`--protect: bad port ${JSON.stringify(p)} (expected an integer 1..65535)`);
    }
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/** Parses "7000,7001" (the CLI's --protect value). */
export function parseProtectList(s: string): number[] {
  const parts = s.split(',').map((x) => x.trim());
  if (parts.length === 0 || parts.some((x) => !/^\d{1,5}$/.test(x))) {
    throw new UsageError(`--protect: expected <port>[,<port>...], got '${s}'`);
  }
  return checkProtectPorts(parts.map(Number));
}

export function checkForward(v: unknown): ForwardMode {
  if (v === 'gateway' || v === 'kernel') return v;
  throw new UsageError(`--forward: expected 'gateway' or 'kernel', got ${JSON.stringify(v)}`);
}

export function checkLogMode(v: unknown): LabLogMode {
  if (v === 'embedded' || v === 'embedded:disk' || v === 'remote') return v;
  throw new UsageError(`--log: expected 'embedded', 'embedded:disk' or 'remote', got ${JSON.stringify(v)}`);
}

/** The gateway's --log argument for a lab log mode. */
export function gatewayLogSpec(mode: LabLogMode, stateDir: string): string {
  if (mode === 'remote') return `udp://${ADDRESSES.log1}:${LOG_SERVER_PORT},${ADDRESSES.log2}:${LOG_SERVER_PORT}`;
  return mode === 'embedded' ? 'embedded:memory' : `embedded:disk:${stateDir}/log`;
}

/**
 * `ftcp logserver` in <n>-log for `--log remote` (after the program), exactly:
 *   logserver --listen 198.18.3.2:7500,198.18.4.2:7500 --store disk:<state-dir>/logserver
 *             --ready-file <state-dir>/logserver.ready --impair-file <state-dir>/logserver.impair
 *             --metrics 127.0.0.1:7073
 * (the impair file is the fallback of faults.logLoss on kernels without netem).
 */
export function logServerArgs(stateDir: string): string[] {
  return [
    'logserver',
    '--listen', `${ADDRESSES.log1}:${LOG_SERVER_PORT},${ADDRESSES.log2}:${LOG_SERVER_PORT}`,
    '--store', `disk:${stateDir}/logserver`,
    '--ready-file', `${stateDir}/logserver.ready`,
    '--impair-file', `${stateDir}/logserver.impair`,
    '--metrics', LAB_LOG_METRICS,
  ];
}

/**
 * The gateway's arguments after the program (`ftcp.js`), exactly:
 *   gateway --tun ftcp0 --protect 198.18.2.2:<p1>,... --steer gc0,gs0 --log <spec>
 *           --control 127.0.0.1:7070 --ready-file <state-dir>/gateway.ready --state-dir <state-dir>
 *           --supervisor 198.18.2.1:7071 --heartbeat-ms 50
 * (--state-dir: the gateway's record of its TUN and steering stays with the lab, not in the host's
 * /run/ftcp that every lab's ftcp0 would share; `ftcp gateway down --tun ftcp0 --state-dir <state-dir>`
 * inside <n>-gw removes them, and deleting the namespace removes them too.)
 * With no protected port, `--protect` is left out (the gateway then forwards everything unprotected).
 */
export function gatewayArgs(protect: readonly number[], log: LabLogMode, stateDir: string, extra: readonly string[] = []): string[] {
  const args = ['gateway', '--tun', TUN_NAME];
  if (protect.length > 0) args.push('--protect', protect.map((p) => `${ADDRESSES.server}:${p}`).join(','));
  args.push(
    '--steer', `${INTERFACES.gwClient},${INTERFACES.gwServer}`,
    '--log', gatewayLogSpec(log, stateDir),
    '--control', LAB_CONTROL,
    '--ready-file', `${stateDir}/gateway.ready`,
    '--state-dir', stateDir,
    // The liveness oracle: `ftcp supervise --gateway 198.18.2.1:7071 …` in <n>-server reports to it.
    '--supervisor', `${ADDRESSES.gwServer}:${ORACLE_PORT}`, '--heartbeat-ms', '50',
    ...extra,
  );
  return args;
}

/** The topology record for a lab (without the gateway's run-time fields filled in). */
export function buildTopology(opts: { name: string; protect: number[]; forward: ForwardMode; log: LabLogMode }): LabTopology {
  const stateDir = labStateDir(opts.name);
  return {
    name: opts.name,
    namespaces: labNamespaces(opts.name),
    addresses: { ...ADDRESSES },
    interfaces: { ...INTERFACES },
    prefixLength: PREFIX_LEN,
    subnets: { client: '198.18.1.0/24', server: '198.18.2.0/24', log1: '198.18.3.0/24', log2: '198.18.4.0/24' },
    control: LAB_CONTROL,
    protect: [...opts.protect],
    forward: opts.forward,
    log: opts.forward === 'gateway' ? opts.log : null,
    stateDir,
    keyFile: null,
    gatewayPid: null,
    gatewayCommand: null,
    gatewayLog: opts.forward === 'gateway' ? `${stateDir}/gateway.log` : null,
    createdAt: new Date().toISOString(),
  };
}
