/**
 * ftcp status --control <ip:port> [--json] | --name <lab> [--json]
 * Prints a running gateway's state (from its control endpoint).
 */
import { parseCli, parseHostPort } from '../args.js';
import { UsageError, FtcpError } from '../../util/errors.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run_ = promisify(execFile);

const HELP = `usage: ftcp status (--control <ip:port> | --name <lab>) [--json]

example: ftcp status --name demo          (the gateway of the namespace lab 'demo')
         ftcp status --control 198.18.2.1:7070 --json`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    control: { type: 'string' },
    name: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  let body: string;
  if (values.name) {
    if (!/^[a-z][a-z0-9-]{0,14}$/.test(values.name)) throw new UsageError(`--name: bad lab name '${values.name}'`);
    const ctl = values.control ?? '198.18.2.1:7070';
    const script = `fetch('http://${ctl}/status').then(r=>r.text()).then(t=>process.stdout.write(t),e=>{console.error(e.message);process.exit(1)})`;
    try {
      body = (await run_('ip', ['netns', 'exec', `${values.name}-gw`, process.execPath, '-e', script], { timeout: 10_000 })).stdout;
    } catch (err) {
      throw new FtcpError('FTCP_STATUS', `cannot reach the gateway of lab '${values.name}': ${((err as { stderr?: string }).stderr || (err as Error).message).trim()}`);
    }
  } else if (values.control) {
    const { addr, port } = parseHostPort(values.control, '--control');
    try {
      const res = await fetch(`http://${addr}:${port}/status`, { signal: AbortSignal.timeout(5000) });
      body = await res.text();
    } catch (err) {
      throw new FtcpError('FTCP_STATUS', `cannot reach the gateway at ${values.control}: ${(err as Error).message}`);
    }
  } else {
    throw new UsageError('give --control <ip:port> or --name <lab>');
  }
  const st = JSON.parse(body) as Record<string, any>;
  if (values.json) {
    process.stdout.write(JSON.stringify(st, null, 2) + '\n');
    return 0;
  }
  const lines = [
    `tun ${st.tun}  log ${st.log}  up ${(st.uptimeMs / 1000).toFixed(0)} s`,
    `services: ${st.services.join(', ')}`,
    `connections: ${st.connections}${st.flowLimits ? ` of at most ${st.flowLimits.maxFlows} (--max-flows)` : ''}` +
      `; unprotected: ${st.south.flowsOverCap ?? 0} over the cap, ${st.south.flowsLogExpired ?? 0} expired by the log, ${st.south.unknownMidstream ?? 0} segments of unknown connections`,
    `half-open: ${st.halfOpen ?? 0}${st.flowLimits?.maxHalfOpen !== undefined ? ` of at most ${st.flowLimits.maxHalfOpen} (--max-half-open), timeout ${st.flowLimits.halfOpenTimeoutMs} ms` : ''}` +
      `; handshakes completed ${st.south.handshakesCompleted ?? 0}, half-open evicted ${st.south.halfOpenEvicted ?? 0}, expired ${st.south.halfOpenExpired ?? 0}, reset ${st.south.halfOpenReset ?? 0}`,
    `packets: ${st.stats.packets} (protected ${st.stats.protectedPackets}, unprotected tcp ${st.stats.unprotectedTcp}, dropped ${st.stats.dropped})`,
    `south: logged ${st.south.bytesLogged} B, acks lowered ${st.south.acksLowered}, held ${st.south.acksHeld}, released ${st.south.heldReleased}`,
  ];
  if (st.north) {
    const n = st.north;
    lines.push(`recovery: crashes ${n.crashes}, caught up ${n.caughtUp}, failed ${n.rebuildFailed} (of them no progress ${n.progressFailures ?? 0}), recovering now ${st.flows.filter((f: any) => f.recovering).length}`);
  }
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
  if (nt) lines.push(`supervisor notices: ${nt.accepted} accepted, ${nt.replayed} replayed, ${nt.forged} forged; crashes heard first: ${nt.superseded} superseded as replays, ${nt.confirmed} confirmed`);
  for (const f of st.flows.slice(0, 20)) {
    lines.push(`  ${f.flow} ${f.state}${f.unprotected ? ' UNPROTECTED' : ''} received=${f.received} stable=${f.stable} complete=${f.complete} sndMax=${f.sndMax} cliAcked=${f.cliAcked}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
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
