/**
 * The gateway's control endpoint (HTTP): GET /status (JSON, the flow list paged), GET /metrics
 * (Prometheus text), and for a gateway run with --standby two commands, POST /takeover and
 * POST /release (standby.ts; keepalived's notify hooks call them through `ftcp gateway
 * takeover|release`): a JSON report, 409 without --standby, 503 when the takeover failed. It
 * shows every connection's addresses and sequence state and makes a gateway active, so it is
 * an operator's tool and is kept off the clients' side (DESIGN.md §7a):
 *
 *   operator ── loopback / a management interface ──────────────▶ control ip:port   answers
 *   client or server ── steered interface (gc0, gs0) ─▶ kernel ─▶ control ip:port   closed at
 *                       (the reply would leave by a steered interface)              accept, counted
 *
 *  * Where: the address the operator gives (`--control ip:port`); a bare port binds
 *    127.0.0.1, which no packet from a wire can reach (a martian destination). A packet to
 *    one of the gateway's own addresses does NOT cross the TUN (the kernel's local table is
 *    looked up before the steering rules: steering.ts), so any other address is reachable
 *    from the steered networks at the IP level (Linux's weak host model). Hence a reverse-path
 *    check at accept (`ClientSideGuard`): a connection whose replies would leave by a steered
 *    interface (main routing table, longest prefix) comes from the clients' or the servers'
 *    side and is closed before any byte is read (`clientSide`). `controlExposure` says when
 *    the chosen address sits on a steered interface, for a startup warning.
 *  * Bounded: headers within headersTimeoutMs of the connection (a half-sent request is closed
 *    then, 408), the whole request within requestTimeoutMs, an idle keep-alive connection
 *    closed after keepAliveTimeoutMs, any silent socket after idleTimeoutMs, at most
 *    maxConnections at once (more are closed at accept), request line + headers at most
 *    maxHeaderBytes (431), no request body (400), GET only but for the commands, POST only (405). Node checks the timeouts
 *    every checkIntervalMs, so a connection is closed at most that late.
 *  * Capped answers: /status carries one page of the flow list, `?offset=&limit=` (limit
 *    1..FLOW_PAGE.max, default FLOW_PAGE.dflt), with `flowsPage: { offset, limit, total, next }`
 *    (next: the offset of the following page, null at the end). Pages are positions in the
 *    flow table's order (oldest first): a connection that ends between two requests shifts
 *    the later ones by one, so a walk may miss or repeat a connection that changed meanwhile.
 *  * Token (optional, `--control-token-file`): every request needs `Authorization: Bearer
 *    <token>`, compared in constant time; 401 otherwise. The file must be private to its
 *    owner (like the supervisors' key file).
 *  * Counted: every refusal by reason (`ControlStats`), in /status (`control`) and /metrics
 *    (`ftcp_control_*_total`).
 *
 * GET /status?gc=1 collects garbage first (only under node --expose-gc), so the snapshot's
 * `memory` shows the live heap (the scale benchmark).
 */
import type http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Gateway } from './gateway.js';
import { FLOW_PAGE } from './flow-page.js';
import { networkInterfaces } from 'node:os';
import { hostAddresses } from './address-watch.js';
import { FtcpError } from '../util/errors.js';
import { readRegularFile } from '../util/fs.js';
import { checkKeyFileMode } from '../link/key.js';
import { ipToU32 } from '../wire/addr.js';
import type { Logger } from '../util/logger.js';
import { HTTP_LIMITS, HttpStats, plainGet, refuse as refuseWith, startHttpEndpoint, type HttpEndpoint, type HttpLimits } from '../util/http-endpoint.js';
import type { ReleaseReport, TakeoverReport } from './standby.js';

/** What the commands reach (standby.ts Standby; null: the gateway runs without --standby). */
export interface StandbyCommands {
  takeover(): Promise<TakeoverReport>;
  release(why?: string): ReleaseReport;
}

/** The endpoint's bounds (ms, counts, bytes): the shared HTTP listener's. */
export type ControlLimits = HttpLimits;
export const CONTROL_LIMITS: Readonly<ControlLimits> = HTTP_LIMITS;

/** The address a bare `--control <port>` binds. */
export const CONTROL_DEFAULT_ADDR = '127.0.0.1';

/** Requests answered and refused, by reason: the listener's (HttpStats) and the control endpoint's own. */
export class ControlStats extends HttpStats {
  /** No or a wrong bearer token (401). */
  unauthorized = 0;
  /** Connections closed at accept: from the clients' or servers' side (ClientSideGuard). */
  clientSide = 0;
  /** Commands (POST /takeover, /release) answered, refused for want of --standby (409), failed (503). */
  commands = 0;
  conflicts = 0;
  commandFailures = 0;
}

export interface ControlOptions {
  addr: string;
  port: number;
  /** The bearer token (null: none required). */
  token?: Buffer | null;
  limits?: Partial<ControlLimits>;
  logger?: Logger;
  /** The steered interfaces (--steer): connections whose replies would leave by one are refused. */
  steer?: readonly string[];
  /** Replaces the kernel's routes and addresses (tests). */
  routes?: RouteSource;
  /** The standby's commands (--standby); without them /takeover and /release answer 409. */
  standby?: StandbyCommands | null;
}

export interface ControlEndpoint {
  readonly server: http.Server;
  readonly stats: ControlStats;
  readonly limits: Readonly<ControlLimits>;
  /** Requests need the bearer token. */
  readonly tokenRequired: boolean;
  /** The bound address and port (port 0 asked: the one the kernel chose). */
  address(): { address: string; port: number };
  /** Open connections now. */
  connections(): number;
  close(): Promise<void>;
}

export async function startControl(gw: Gateway, opts: ControlOptions): Promise<ControlEndpoint> {
  const limits: ControlLimits = { ...CONTROL_LIMITS, ...opts.limits };
  const stats = new ControlStats();
  const tokenHash = opts.token ? sha256(opts.token) : null;
  // Bound to loopback, only the gateway itself can connect (127/8 is martian from a wire).
  const guarded = opts.addr.startsWith('127.') && opts.routes === undefined ? [] : opts.steer ?? [];
  const guard = await ClientSideGuard.start(guarded, opts.routes ?? kernelRoutes, opts.logger);
  let http_: HttpEndpoint;
  try {
    http_ = await startHttpEndpoint({
      addr: opts.addr,
      port: opts.port,
      limits,
      stats,
      what: `--control ${opts.addr}:${opts.port}`,
      bindErrorCode: 'FTCP_CONTROL_BIND',
      ...(opts.logger !== undefined ? { logger: opts.logger } : {}),
      handle: (req, res) => answer(gw, req, res, stats, tokenHash, opts.standby ?? null),
      onHandlerError: (err) => gw.internalError('control', err),
      accept: (s) => {
        if (!guard.fromClientSide(s.remoteAddress)) return true;
        stats.clientSide++;
        return false;
      },
    });
  } catch (err) {
    guard.stop();
    throw err;
  }

  const endpoint: ControlEndpoint = {
    server: http_.server,
    stats,
    limits,
    tokenRequired: tokenHash !== null,
    address: http_.address,
    connections: http_.connections,
    close: async () => {
      guard.stop();
      await http_.close();
    },
  };
  gw.control = endpoint;
  return endpoint;
}

function answer(gw: Gateway, req: http.IncomingMessage, res: http.ServerResponse, stats: ControlStats, tokenHash: Buffer | null, standby: StandbyCommands | null): void {
  const refuse = (status: number, body: string, headers: Record<string, string> = {}) => refuseWith(res, status, body, headers);
  if (tokenHash !== null && !authorized(req.headers.authorization, tokenHash)) {
    stats.unauthorized++;
    refuse(401, 'a bearer token is required (ftcp status --token-file F)\n', { 'www-authenticate': 'Bearer realm="ftcp"' });
    return;
  }
  const url = req.url ?? '';
  const command = commandOf(url);
  if (command !== null && req.method !== 'POST') {
    stats.methodNotAllowed++;
    refuse(405, `${command} is a command: POST only\n`, { allow: 'POST' });
    return;
  }
  if (!plainGet(req, res, stats, command !== null ? 'POST' : 'GET')) return;
  if (command !== null) {
    runCommand(gw, command, url, res, stats, standby);
    return;
  }
  const q = parseControlUrl(url);
  if (q.error !== undefined) {
    if (q.status === 404) stats.notFound++;
    else stats.badRequests++;
    refuse(q.status, q.error + '\n');
    return;
  }
  const headers = { 'cache-control': 'no-store' };
  if (q.path === '/metrics') {
    stats.answered++;
    res.writeHead(200, { ...headers, 'content-type': 'text/plain; version=0.0.4' }).end(gw.metrics());
    return;
  }
  // ?gc=1: a full garbage collection first when the gateway runs with --expose-gc (the scale
  // benchmark's heap reading); without the flag it is the plain snapshot.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (q.gc && typeof gc === 'function') gc();
  stats.answered++;
  res.writeHead(200, { ...headers, 'content-type': 'application/json' }).end(JSON.stringify(gw.snapshot({ offset: q.offset, limit: q.limit })));
}

/** The command a request target names ('/takeover', '/release', with or without a query), or null. */
function commandOf(target: string): '/takeover' | '/release' | null {
  const qi = target.indexOf('?');
  const path = qi < 0 ? target : target.slice(0, qi);
  return path === '/takeover' || path === '/release' ? path : null;
}

/**
 * POST /takeover or /release: the standby's report as JSON (200); 400 for any parameter, 409
 * without --standby, 503 with the reason when the takeover failed (the gateway is still standby).
 */
function runCommand(gw: Gateway, command: '/takeover' | '/release', url: string, res: http.ServerResponse, stats: ControlStats, standby: StandbyCommands | null): void {
  const send = (status: number, body: object) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', connection: 'close' }).end(JSON.stringify(body) + '\n');
  };
  if (url.includes('?')) {
    stats.badRequests++;
    send(400, { error: `${command} takes no parameters` });
    return;
  }
  if (standby === null) {
    stats.conflicts++;
    send(409, { error: `${command}: this gateway runs without --standby, it is active for good (start both gateways of a pair with --standby)`, role: gw.role });
    return;
  }
  if (command === '/release') {
    stats.commands++;
    send(200, standby.release('release asked on the control endpoint'));
    return;
  }
  standby.takeover().then(
    (report) => {
      stats.commands++;
      send(200, report);
    },
    (err: unknown) => {
      stats.commandFailures++;
      send(503, { error: (err as Error).message, role: gw.role });
    },
  );
}

export type ControlRequest =
  | { path: '/status'; offset: number; limit: number; gc: boolean; error?: undefined }
  | { path: '/metrics'; error?: undefined }
  | { error: string; status: 400 | 404 };

/**
 * The request target: `/metrics`, or `/status` with optional `offset` (0..1e9), `limit`
 * (1..FLOW_PAGE.max) and `gc=1`. Anything else is a 400 (a bad or unknown parameter) or a 404.
 */
export function parseControlUrl(target: string): ControlRequest {
  const qi = target.indexOf('?');
  const path = qi < 0 ? target : target.slice(0, qi);
  if (path !== '/status' && path !== '/metrics') return { error: 'try /status or /metrics', status: 404 };
  const params = new URLSearchParams(qi < 0 ? '' : target.slice(qi + 1));
  const allowed = path === '/status' ? ['offset', 'limit', 'gc'] : [];
  const seen = new Set<string>();
  for (const k of params.keys()) {
    if (!allowed.includes(k)) return { error: `${path}: unknown parameter '${k.slice(0, 32)}'${allowed.length ? ` (${allowed.join(', ')})` : ''}`, status: 400 };
    if (seen.has(k)) return { error: `${path}: '${k}' given twice`, status: 400 };
    seen.add(k);
  }
  if (path === '/metrics') return { path };
  const int = (k: string, dflt: number, min: number, max: number): number | string => {
    const v = params.get(k);
    if (v === null) return dflt;
    if (!/^\d{1,10}$/.test(v) || Number(v) < min || Number(v) > max) return `/status: ${k} must be an integer ${min}..${max}`;
    return Number(v);
  };
  const offset = int('offset', 0, 0, 1e9);
  const limit = int('limit', FLOW_PAGE.dflt, 1, FLOW_PAGE.max);
  if (typeof offset === 'string') return { error: offset, status: 400 };
  if (typeof limit === 'string') return { error: limit, status: 400 };
  const gc = params.get('gc');
  if (gc !== null && gc !== '1') return { error: '/status: gc takes 1', status: 400 };
  return { path, offset, limit, gc: gc === '1' };
}

function sha256(b: Buffer | string): Buffer {
  return createHash('sha256').update(b).digest();
}

/** `Authorization: Bearer <token>`; the hashes are compared in constant time (any length). */
function authorized(header: string | undefined, tokenHash: Buffer): boolean {
  const m = header === undefined ? null : /^Bearer ([\x21-\x7e]{1,4096})$/.exec(header);
  return timingSafeEqual(sha256(m === null ? '' : m[1]!), tokenHash) && m !== null;
}

export const MIN_TOKEN_LEN = 16;
const MAX_TOKEN_FILE_BYTES = 4096;

/**
 * Reads a bearer token file: one token of 16 to 4096 printable ASCII characters (no spaces),
 * whitespace around it ignored. The file must be a regular file private to its owner (mode
 * 0600 or stricter, as the supervisors' key file: checkKeyFileMode). Throws FtcpError.
 */
export function loadControlToken(path: string, flag = '--control-token-file'): Buffer {
  let raw: Buffer;
  try {
    raw = readRegularFile(path, 'token file', 'FTCP_TOKEN', MAX_TOKEN_FILE_BYTES, (st) => checkKeyFileMode(path, st, 'token file'));
  } catch (err) {
    if (err instanceof FtcpError) throw err;
    throw new FtcpError('FTCP_TOKEN', `${flag}: cannot read '${path}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const t = raw.toString('latin1').trim();
  if (t.length < MIN_TOKEN_LEN || !/^[\x21-\x7e]+$/.test(t)) {
    throw new FtcpError('FTCP_TOKEN', `${flag}: '${path}' must hold one token of at least ${MIN_TOKEN_LEN} printable characters without spaces (e.g. openssl rand -hex 32)`);
  }
  return Buffer.from(t, 'latin1');
}

/** One IPv4 route of the main table: destination prefix and the interface it leaves by. */
export interface Route {
  /** 'default' or 'a.b.c.d[/n]'. */
  dst: string;
  dev: string;
}

/** The main table's IPv4 routes and this host's (namespace's) IPv4 addresses. */
export type RouteSource = () => Promise<{ routes: Route[]; local: string[] }>;

const execFileP = promisify(execFile);

/** `ip -j -4 route show table main` and the interfaces' addresses. */
async function kernelRoutes(): Promise<{ routes: Route[]; local: string[] }> {
  const { stdout } = await execFileP('ip', ['-j', '-4', 'route', 'show', 'table', 'main'], { timeout: 5000 });
  const routes = (JSON.parse(stdout) as Array<{ dst?: string; dev?: string }>)
    .filter((r): r is Route => typeof r.dst === 'string' && typeof r.dev === 'string')
    .map((r) => ({ dst: r.dst, dev: r.dev }));
  return { routes, local: [...hostAddresses()] };
}

/**
 * The reverse-path check of the control endpoint: a connection comes from the clients' (or
 * the servers') side when the route back to its source leaves by a steered interface (longest
 * prefix of the main table, as the gateway's own replies are routed) and the source is not
 * one of the gateway's own addresses (the operator on the gateway itself). The routes are read
 * at start and every REFRESH_MS; with no steered interface nothing is refused.
 */
export class ClientSideGuard {
  static readonly REFRESH_MS = 5000;
  private table: Array<{ net: number; mask: number; bits: number; dev: string }> = [];
  private local = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  private failedOnce = false;

  private constructor(private readonly steer: ReadonlySet<string>, private readonly source: RouteSource, private readonly logger?: Logger) {}

  static async start(steer: readonly string[], source: RouteSource, logger?: Logger): Promise<ClientSideGuard> {
    const g = new ClientSideGuard(new Set(steer), source, logger);
    if (steer.length === 0) return g;
    await g.refresh();
    g.timer = setInterval(() => void g.refresh(), ClientSideGuard.REFRESH_MS);
    g.timer.unref();
    return g;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  async refresh(): Promise<void> {
    try {
      const { routes, local } = await this.source();
      const table = [];
      for (const r of routes) {
        const m = r.dst === 'default' ? ['', '0.0.0.0', '0'] : /^(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?$/.exec(r.dst);
        if (m === null) continue;
        const bits = Number(m[2] ?? 32);
        const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
        table.push({ net: (ipToU32(m[1]!) & mask) >>> 0, mask, bits, dev: r.dev });
      }
      table.sort((a, b) => b.bits - a.bits); // longest prefix first
      this.table = table;
      this.local = new Set(local.map(ipToU32));
    } catch (err) {
      if (!this.failedOnce) this.logger?.error({ err: (err as Error).message }, 'control endpoint: cannot read the routes (the reverse-path check keeps its last table)');
      this.failedOnce = true;
    }
  }

  /** The interface a reply to `addr` leaves by, or null (no route). */
  egress(addr: number): string | null {
    for (const r of this.table) if (((addr & r.mask) >>> 0) === r.net) return r.dev;
    return null;
  }

  /** True when a connection from `remote` comes from a steered interface's side (see the class). */
  fromClientSide(remote: string | undefined): boolean {
    if (this.steer.size === 0) return false;
    const v4 = remote === undefined ? null : /^(?:::ffff:)?(\d{1,3}(?:\.\d{1,3}){3})$/.exec(remote);
    if (v4 === null) return false; // IPv6: the endpoint binds IPv4 only
    const a = ipToU32(v4[1]!);
    if (this.local.has(a)) return false;
    const dev = this.egress(a);
    return dev !== null && this.steer.has(dev);
  }
}

/**
 * Why the control endpoint at `addr` is on the clients' side, or null: the wildcard (every
 * address, the steered interfaces' too), or an address of an interface whose traffic is
 * steered through the TUN. (The TUN drop keeps steered traffic off it either way; the warning
 * tells the operator the endpoint is not on a management path.)
 */
export function controlExposure(addr: string, steer: readonly string[]): string | null {
  if (addr === '0.0.0.0') return 'it listens on every address, those of the steered interfaces too';
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (steer.includes(name) && (addrs ?? []).some((a) => a.family === 'IPv4' && a.address === addr)) {
      return `${addr} is an address of ${name}, whose traffic (the clients' or the servers') is steered through the TUN`;
    }
  }
  return null;
}
