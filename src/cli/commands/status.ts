/**
 * ftcp status (--control [<ip>:]<port> | --name <lab>) [--token-file F] [--offset N] [--limit N | --all] [--json]
 * Prints a running gateway's state (from its control endpoint); the flow list is paged.
 */
import { parseCli, parseEndpointFlag, parseNumberFlag } from '../args.js';
import { UsageError, FtcpError } from '../../util/errors.js';
import { execFile } from 'node:child_process';
import { FLOW_PAGE } from '../../gateway/flow-page.js';
import { loadControlToken, CONTROL_DEFAULT_ADDR } from '../../gateway/control.js';
import { checkLabName, LAB_CONTROL } from '../../lab/topology.js';
import { formatDrops } from '../../wrappers/contract.js';
import { failuresByCode } from '../../recovery/rebuild.js';

const HELP = `usage: ftcp status (--control [<ip>:]<port> | --name <lab>) [--token-file F]
                   [--offset N] [--limit N | --all] [--json]

  --control [<ip>:]<port>  the gateway's control endpoint (a bare port: 127.0.0.1)
  --name <lab>             the gateway of a namespace lab (its endpoint, ${LAB_CONTROL}, inside <lab>-gw)
  --token-file F           send the bearer token in F (the gateway's --control-token-file)
  --offset N               the flow list from position N (default 0)
  --limit N                at most N flows, 1..${FLOW_PAGE.max} (default 20 printed, ${FLOW_PAGE.dflt} with --json)
  --all                    every flow, page after page
  --json                   the snapshot as JSON (with --all: one snapshot, every flow)

example: ftcp status --name demo          (the gateway of the namespace lab 'demo')
         ftcp status --control 127.0.0.1:7070 --token-file /etc/ftcp/control.token --json --all
         ftcp status --control 7070 --offset 100 --limit 100`;

/** `--control <ip>:<port>` or a bare `<port>` (then on 127.0.0.1, the management side). */
export function parseControlFlag(s: string): { addr: string; port: number } {
  return parseEndpointFlag(s, '--control', CONTROL_DEFAULT_ADDR);
}

/** A page fetch at most this long. */
const FETCH_TIMEOUT_MS = 10_000;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    control: { type: 'string' },
    name: { type: 'string' },
    'token-file': { type: 'string' },
    offset: { type: 'string' },
    limit: { type: 'string' },
    all: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (values.all && values.limit !== undefined) throw new UsageError('--all and --limit exclude each other');
  const offset = parseNumberFlag(values.offset, '--offset', { dflt: 0, min: 0, max: 1e9 });
  const limit = values.all ? FLOW_PAGE.max : parseNumberFlag(values.limit, '--limit', { dflt: values.json ? FLOW_PAGE.dflt : 20, min: 1, max: FLOW_PAGE.max });
  const token = values['token-file'] !== undefined ? loadControlToken(values['token-file'], '--token-file') : null;
  let get: (path: string) => Promise<string>;
  if (values.name !== undefined) {
    let lab: string;
    try {
      lab = checkLabName(values.name);
    } catch {
      throw new UsageError(`--name: bad lab name '${values.name}'`);
    }
    const ctl = values.control !== undefined ? parseControlFlag(values.control) : null;
    const target = ctl ? `${ctl.addr}:${ctl.port}` : LAB_CONTROL;
    get = (path) => inNamespace(`${lab}-gw`, `http://${target}${path}`, token, `the gateway of lab '${lab}' (${target} in ${lab}-gw)`);
  } else if (values.control !== undefined) {
    const { addr, port } = parseControlFlag(values.control);
    get = (path) => direct(`http://${addr}:${port}${path}`, token, `the gateway at ${addr}:${port}`);
  } else {
    throw new UsageError('give --control [<ip>:]<port> or --name <lab>');
  }
  const st = JSON.parse(await get(`/status?offset=${offset}&limit=${limit}`)) as Record<string, any>;
  if (values.all) {
    // Page after page until the last (bounded: the table cannot grow past --max-flows).
    for (let pages = 1; st.flowsPage?.next != null; pages++) {
      if (pages > 100_000) throw new FtcpError('FTCP_STATUS', 'the flow list did not end after 100,000 pages');
      const more = JSON.parse(await get(`/status?offset=${st.flowsPage.next}&limit=${limit}`)) as Record<string, any>;
      st.flows.push(...more.flows);
      st.flowsPage = { ...more.flowsPage, offset };
    }
    st.flowsPage.limit = st.flows.length;
  }
  if (values.json) {
    process.stdout.write(JSON.stringify(st, null, 2) + '\n');
    return 0;
  }
  process.stdout.write(statusText(st) + '\n');
  return 0;
}

/** How the gateway found its TUN and steering: created, or reused after a restart (issue 14). */
function startLine(start: Record<string, any>): string {
  const f = start.reusedState as Record<string, any> | null;
  const found = f ? ` (found: state file ${f.record ? 'yes' : 'no'}, device ${f.device ? 'yes' : 'no'}, route ${f.route ? 'yes' : 'no'}, ` +
    `blackhole ${f.blackhole ? 'yes' : 'no'}, rules ${f.rules} of ${f.rulesExpected})` : '';
  return `start: TUN and steering ${start.action}${found}; restarted: ${start.restarted}; gateway starts on this state: ${start.starts}; state file ${start.stateFile}`;
}

/** The gateway's role; for a --standby gateway what it follows and its last takeover (src/gateway/standby.ts). */
function roleLine(role: string, sb: Record<string, any> | undefined): string {
  if (sb === undefined) return `role: ${role}`;
  const f = sb.follow;
  const follow = role === 'active' ? '' : `; following ${f.followed} open connection(s) of the log (${f.translated} translated, ${f.rebuilding} rebuilding` +
    `${f.overCap > 0 ? `, ${f.overCap} over --max-flows` : ''}), last refresh ${f.lastRefreshAt ?? 'never'}${f.failures > 0 ? `, ${f.failures} failed${f.lastError ? ` (${f.lastError})` : ''}` : ''}`;
  const t = sb.lastTakeover;
  const last = t === null ? '' : `; last takeover ${t.at}: epoch ${t.epoch ?? 'none (NOT fenced)'}, ${t.adopted} adopted in ${t.totalMs} ms (claim ${t.claimMs} ms, adopt ${t.adoptMs} ms)`;
  return `role: ${role} (${sb.phase}; ${sb.takeovers} takeover(s), ${sb.takeoverFailures} failed, ${sb.releases} release(s))${follow}${last}`;
}

/** The connections a (restarted) gateway adopted from the log at start-up (issue 14). */
function adoptionLine(a: Record<string, any>): string {
  return `adoption (from the ${a.source}): ${a.adopted} adopted (${a.translated} translated, ${a.rebuilding} rebuilding, ${a.closing} closing), ` +
    `learnt client ${a.learnt?.client ?? 0} server ${a.learnt?.server ?? 0}, unchecked drops ${a.uncheckedDrops}, unverified ${a.unverified}, skipped ${a.skipped}` +
    (a.incarnation ? `; server incarnation: ${a.incarnation.waiting} waiting, ${a.incarnation.released} released, ${a.incarnation.crashed} restarted meanwhile (rebuilt), ${a.incarnation.unknownBinding} unknown (${a.incarnation.resetUnknown ?? 0} then reset by the server: rebuilt), ${a.incarnation.timedOut} timed out` : '');
}

/** The text `ftcp status` prints for a /status snapshot (its flow list as fetched). */
export function statusText(st: Record<string, any>): string {
  const lines = [
    `tun ${st.tun}  log ${st.log}  up ${(st.uptimeMs / 1000).toFixed(0)} s`,
    `services: ${st.services.join(', ')}`,
    ...(st.role !== undefined ? [roleLine(st.role, st.standby)] : []),
    ...(st.fenced ? [`FENCED since ${new Date(st.fenced.at).toISOString()}: another gateway claimed the log (epoch ${st.fenced.epoch}); protected traffic is dropped here (FENCED) until a restart`]
      : typeof st.epoch === 'number' ? [`log epoch ${st.epoch}: this gateway is the log's one writer`] : []),
    ...(st.start ? [startLine(st.start)] : []),
    ...(st.adoption ? [adoptionLine(st.adoption)] : []),
    `connections: ${st.connections}${st.flowLimits ? ` of at most ${st.flowLimits.maxFlows} (--max-flows)` : ''}` +
      `; unprotected: ${st.south.flowsOverCap ?? 0} over the cap, ${st.south.flowsLogExpired ?? 0} expired by the log, ${st.south.unknownFlows ?? 0} unknown connections (no SYN seen, e.g. after a restart; ${st.south.unknownMidstream ?? 0} segments)`,
    `half-open: ${st.halfOpen ?? 0}${st.flowLimits?.maxHalfOpen !== undefined ? ` of at most ${st.flowLimits.maxHalfOpen} (--max-half-open), timeout ${st.flowLimits.halfOpenTimeoutMs} ms` : ''}` +
      `; handshakes completed ${st.south.handshakesCompleted ?? 0}, half-open evicted ${st.south.halfOpenEvicted ?? 0}, expired ${st.south.halfOpenExpired ?? 0}, reset ${st.south.halfOpenReset ?? 0}`,
    `packets: ${st.stats.packets} (protected ${st.stats.protectedPackets}, unprotected tcp ${st.stats.unprotectedTcp}, dropped ${st.stats.dropped})`,
    `south: logged ${st.south.bytesLogged} B, acks lowered ${st.south.acksLowered}, held ${st.south.acksHeld}, released ${st.south.heldReleased}, SACK blocks above stable removed ${st.south.sacksAboveStableRemoved ?? 0}`,
    `drops by reason: ${formatDrops(st.drops)}`,
  ];
  if (st.north) {
    const n = st.north;
    const byCode = Object.entries(failuresByCode(n)).map(([code, k]) => `${code} ${k}`).join(', ');
    lines.push(`recovery: crashes ${n.crashes}, caught up ${n.caughtUp}, failed ${n.rebuildFailed} (${byCode}), recovering now ${st.recovering ?? st.flows.filter((f: any) => f.recovering).length}`);
  }
  const dv = st.divergence;
  if (dv) {
    const pol = Object.entries(dv.policies as Record<string, string>).map(([k, v]) => `${k} ${v}`).join(', ');
    lines.push(
      `divergence: policies ${pol || 'none'}; ${dv.total} diverged (${dv.resets} reset, ${dv.continued} continued, ${dv.shortOutputs} short output), ` +
        `${dv.comparedBytes} B compared, ${dv.differingBlocks ?? 0} block(s) differed, ${dv.originalBytesSent} B of originals sent instead; digests ${size(dv.digestBytes)} + ${size(dv.keptBytes)} kept, ` +
        `${dv.digestsAbandoned} abandoned (unverified)`,
    );
  }
  if (st.checksums) lines.push(`checksums of protected segments: ${st.checksums} (--checksums); dropped: bad IPv4 header ${st.drops?.BAD_IPV4_CHECKSUM ?? 0}, bad TCP ${st.drops?.BAD_TCP_CHECKSUM ?? 0}`);
  if (st.limits) lines.push(`limits: ${Object.entries(st.limits).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  const lm = st.logMemory as { bytes: number; memory: number; budget: number | null; perConnection: number | null; policy: string; unprotected: { connection: number; total: number }; deferred: number } | null | undefined;
  if (lm) {
    lines.push(
      `log memory: ${size(lm.bytes)} held (in ${size(lm.memory)}) of a ${lm.budget === null ? 'unbounded' : size(lm.budget)} budget, ` +
        `per connection at most ${lm.perConnection === null ? 'unbounded' : size(lm.perConnection)}; ` +
        `over a bound: continue UNPROTECTED (so far ${lm.unprotected.connection} over the per-connection bound, ${lm.unprotected.total} over the budget` +
        `${lm.deferred > 0 ? `; ${lm.deferred} reached a bound while being rebuilt` : ''})`,
    );
  }
  if (st.logFailure) lines.push(`log failure policy: ${st.logFailure.policy} (failures ${st.logFailure.failures}, unprotected ${st.logFailure.unprotected})`);
  const nt = st.masking?.notices;
  if (nt) {
    lines.push(
      `supervisor notices: ${nt.accepted} accepted; dropped: ${nt.forged} forged (wrong key), ${nt.malformed ?? 0} malformed, ${nt.replayed} replayed, ` +
        `${nt.badGeneration ?? 0} of an older generation, ${nt.duplicate ?? 0} duplicates, ${nt.unknownService ?? 0} for other services, ` +
        `${nt.socketDrops ?? 0} lost in the socket; crashes heard first: ${nt.superseded} superseded as replays, ${nt.confirmed} confirmed`,
    );
  }
  const ll = st.authDrops?.logLink;
  if (ll) lines.push(`log link datagrams dropped: ${ll.forged} forged (wrong key), ${ll.malformed} malformed, ${ll.replayed} replayed, ${ll.outOfWindow} out of window`);
  const c = st.control;
  if (c) {
    lines.push(
      `control endpoint ${c.listen}${c.token ? ' (token)' : ''}: ${c.answered} answered, ${c.connections} open; refused: ${c.unauthorized} unauthorized, ` +
        `${c.methodNotAllowed} not GET, ${c.notFound} not found, ${c.badRequests} bad, ${c.headersTooLarge} headers too large, ${c.timedOut} timed out, ` +
        `${c.overCapacity} over capacity, ${c.clientSide} from the clients' side`,
    );
  }
  const pg = st.flowsPage as { offset: number; limit: number; total: number; next: number | null } | undefined;
  if (pg) {
    lines.push(
      pg.total === 0 ? 'flows: none' : `flows ${Math.min(pg.offset + 1, pg.total)}-${pg.offset + st.flows.length} of ${pg.total}` +
        (pg.next !== null ? ` (next page: --offset ${pg.next}, or --all)` : ''),
    );
  }
  for (const f of st.flows) {
    lines.push(`  ${f.flow} ${f.state}${f.unprotected ? ' UNPROTECTED' : ''}${f.verified === false && !f.unprotected ? ' unverified' : ''} received=${f.received} stable=${f.stable} complete=${f.complete} sndMax=${f.sndMax} cliAcked=${f.cliAcked}`);
  }
  return lines.join('\n');
}

/** 1536 -> "1.5 KiB" (binary multiples). */
function size(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** An HTTP answer other than 200 as an error that says what to do. */
function refused(status: number, body: string, where: string): FtcpError {
  const hint = status === 401 ? ' (it requires a token: --token-file F)' : '';
  return new FtcpError('FTCP_STATUS', `${where} answered ${status}${hint}: ${body.trim().slice(0, 200)}`);
}

/** GET (or POST: the gateway's commands, `ftcp gateway takeover`) `url` of a control endpoint; the body of its 200 answer. */
export async function direct(url: string, token: Buffer | null, where: string, method: 'GET' | 'POST' = 'GET'): Promise<string> {
  let res: Response;
  let body: string;
  try {
    res = await fetch(url, { method, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), headers: token ? { authorization: `Bearer ${token.toString('latin1')}` } : {} });
    body = await res.text();
  } catch (err) {
    throw new FtcpError('FTCP_STATUS', `cannot reach ${where}: ${(err as Error).message}`);
  }
  if (res.status !== 200) throw refused(res.status, body, where);
  return body;
}

/**
 * GET `url` from inside network namespace `ns` (where a lab's control endpoint listens on its
 * loopback): a child node in the namespace fetches it; the token goes over its stdin, never
 * its command line. It prints the status line's code, a newline, the body.
 */
function inNamespace(ns: string, url: string, token: Buffer | null, where: string): Promise<string> {
  const script =
    "let t='';process.stdin.on('data',d=>t+=d).on('end',()=>fetch(process.argv[1],{signal:AbortSignal.timeout(" + FETCH_TIMEOUT_MS + '),' +
    "headers:t?{authorization:'Bearer '+t}:{}}).then(async r=>process.stdout.write(r.status+'\\n'+await r.text()),e=>{console.error(e.message);process.exit(1)}))";
  return new Promise((resolve, reject) => {
    const child = execFile('ip', ['netns', 'exec', ns, process.execPath, '-e', script, url], { timeout: FETCH_TIMEOUT_MS + 5000, maxBuffer: 256 * 2 ** 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new FtcpError('FTCP_STATUS', `cannot reach ${where}: ${(stderr || err.message).trim()}`));
        return;
      }
      const nl = stdout.indexOf('\n');
      const status = Number(stdout.slice(0, nl));
      const body = stdout.slice(nl + 1);
      if (status !== 200) reject(refused(status, body, where));
      else resolve(body);
    });
    child.stdin?.end(token ?? '');
  });
}
