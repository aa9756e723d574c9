/**
 * ftcp gateway --tun <name> --protect <ip:port>[,…] [--steer <if>[,<if>]] [--table N]
 *              [--log embedded[:memory|:disk:<dir>]] [--control [<ip>:]<port> [--control-token-file F]] [--ready-file F]
 *              [--idle-timeout <s>] [--max-flows <n>] [--max-half-open <n>] [--half-open-timeout <s>]
 *              [--log-key-file F] [--on-log-failure stall|passthrough]
 *              [--log-budget <size|N%>] [--log-conn-bound <size>]
 *              [--supervisor <ip:port> [--key-file F] [--heartbeat-ms N]]
 *              [--assume-crash-on none|rst] [--no-offload] [--checksums verify|trust]
 *              [--state-dir D] [--remove-on-exit] [--standby [--standby-refresh <s>] [--takeover-on-address <ip>,…]]
 * ftcp gateway down --tun <name> [--state-dir D]                      (gateway-down.ts)
 * ftcp gateway takeover|release --control [<ip>:]<port>               (gateway-role.ts)
 *
 * Creates and configures its persistent TUN device and (with --steer) the policy routing that
 * sends every forwarded packet through it, or reuses them when an earlier gateway with the same
 * --tun/--steer/--table left them (steering.ts). They stay when the process stops or dies, so
 * protected traffic is dropped, not forwarded unprotected, until a gateway runs again; only
 * `ftcp gateway down` (or --remove-on-exit) removes them.
 *
 * --standby (issue 14 item 3, src/gateway/standby.ts): the same start, but not active: protected
 * traffic is dropped until `ftcp gateway takeover`; it follows the log server meanwhile. Only a
 * log that another host shares (a log server) makes sense for it.
 */
import { writeFile, rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { parseCli, parseHostPort, parseNumberFlag, parseSizeOrShareFlag } from '../args.js';
import { UsageError, FtcpError } from '../../util/errors.js';
import { parseDivergence } from '../../divergence/policy.js';
import { logger } from '../../util/logger.js';
import { ipToU32 } from '../../wire/addr.js';
import type { LinuxTun } from '../../tun/linux.js';
import type { Gateway } from '../../gateway/gateway.js';
import { Steering, removeSteering } from '../../gateway/steering.js';
import { DEFAULT_STATE_DIR, readRecord, type SteeringRecord } from '../../gateway/steering-state.js';
import { requireTun } from './gateway-down.js';
import { startControl, loadControlToken, controlExposure, CONTROL_DEFAULT_ADDR, CONTROL_LIMITS } from '../../gateway/control.js';
import { parseControlFlag } from './status.js';
import type { CreateLogOptions } from '../../log/index.js';
import { realtimeNs } from '../../tun/native.js';
import { u32ToIp } from '../../wire/addr.js';
import { serviceName } from '../../flow/table.js';
import type { Flow } from '../../flow/flow.js';
import { closeSync, openSync, writeSync } from 'node:fs';
import type { LivenessOracle } from '../../supervisor/oracle.js';
import { loadKey, DEV_KEY } from '../../link/key.js';
import { Standby, STANDBY_REFRESH_MS } from '../../gateway/standby.js';

/**
 * The modules a start needs only once the kernel's steering has been inspected: the log's
 * stores (LMDB, the link), the gateway's pipeline, the TUN, the liveness oracle, ~100 ms of
 * compiling on a loaded host. Imported while Steering.prepare waits for its `ip` processes,
 * so that a restarted gateway (issue 14 item 5: kill -9 to data flowing again) pays the
 * larger of the two, not their sum.
 */
async function loadStartModules() {
  const [log, memory, tun, gateway, oracle] = await Promise.all([
    import('../../log/index.js'), import('../../log/memory.js'), import('../../tun/linux.js'),
    import('../../gateway/gateway.js'), import('../../supervisor/oracle.js'),
  ]);
  return {
    createLog: log.createLog, defaultMemoryBounds: memory.defaultMemoryBounds, usableMemory: memory.usableMemory,
    LinuxTun: tun.LinuxTun, Gateway: gateway.Gateway, LivenessOracle: oracle.LivenessOracle,
  };
}

/**
 * Writes one line per stable-point advance, stamped with CLOCK_REALTIME (the capture clock).
 * Synchronously: the line is in the file before the ack that relies on it leaves, so a
 * gateway killed with -9 loses none (a write stream lost every line still queued behind the
 * disk log's writes, 180 ms of them in a gateway-kill drill, and the ack check then found
 * acks "beyond the stable point"). Appends, so a restarted gateway continues the same trace.
 */
export function stabilityTracer(file: string): { trace: (flow: Flow) => void; close: () => Promise<void> } {
  let fd: number | null = openSync(file, 'a');
  return {
    trace: (f) => {
      if (fd !== null) writeSync(fd, `${realtimeNs()} ${u32ToIp(f.clientIp)}:${f.clientPort} ${f.serverPort} ${f.clientIsn} ${f.stable}\n`);
    },
    close: async () => {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}

/** --idle-timeout's bound: an idle connection is kept at most 30 days. */
export const MAX_IDLE_TIMEOUT_S = 30 * 24 * 3600;
/** --half-open-timeout's bound: Linux gives up on a SYN after ~127 s, on a SYN-ACK after ~63 s. */
export const MAX_HALF_OPEN_TIMEOUT_S = 180;

const HELP = `usage: ftcp gateway --tun <name> --protect <ip:port>[,<ip:port>…] [options]
       ftcp gateway down --tun <name> [--state-dir <dir>]   (remove what a gateway left; --help)
       ftcp gateway takeover|release --control [<ip>:]<port> (a --standby gateway's role; --help)

  --tun <name>            TUN device to create or reuse (e.g. ftcp0); persistent: it outlives the process
  --state-dir <dir>       where the gateway records the kernel state it set up, <dir>/<tun>.json
                          (default ${DEFAULT_STATE_DIR}; one per network namespace)
  --remove-on-exit        on SIGINT/SIGTERM remove the device and the steering (as 'ftcp gateway down').
                          Default: keep them, so protected traffic is dropped, not forwarded unprotected,
                          until the next gateway (systemctl restart, a crash) starts and reuses them
  --standby               start as the standby of a pair (keepalived): protected traffic is dropped
                          (STANDBY, counted; TCP retransmits), never forwarded, until
                          'ftcp gateway takeover' claims the log's epoch and adopts every open connection;
                          'ftcp gateway release' goes back. Meanwhile it follows the log's open connections.
                          Needs a log server (--log udp://…: the memory log dies with its process, the disk
                          log is local to one host) and --control (the commands come through it)
  --standby-refresh <s>   how often a standby lists the log's open connections, ${STANDBY_REFRESH_MS.min / 1000}..${STANDBY_REFRESH_MS.max / 1000} (default ${STANDBY_REFRESH_MS.dflt / 1000})
  --takeover-on-address <ip>,…  a standby takes over by itself as soon as one of these addresses
                          is on this host (keepalived's virtual addresses on MASTER), without waiting
                          for the notify hook's 'ftcp gateway takeover' (which then answers the same report)
  --protect <ip:port>,…   protected services (server address and port)
  --steer <if>,…          route every packet arriving on these interfaces through the TUN
  --table <n>             routing table for the steering rules, 1..2147483647 but not 253-255 (default 100)
  --log <spec>            embedded | embedded:memory | embedded:disk:<dir> | udp://<ip>:<port>[,<ip>:<port>]
                          (default embedded:memory; udp:// = an ftcp logserver, one address per log network)
  --log-key-file <path>   shared key of the log link (raw or hex, >= 16 bytes); default: the PUBLIC dev key
  --on-log-failure <p>    stall | passthrough: what to do when the log FAILS (default stall: nothing
                          unstable is ever acked, clients wait; passthrough: forward unprotected, loudly)
  --log-budget <size|N%>  memory log: total bytes it may hold (default 25% of the memory, or of the cgroup's
                          limit); e.g. 4GiB, 512M, 10%
  --log-conn-bound <size> memory log: bytes one connection may hold (default a quarter of the budget, at most
                          1GiB). A connection that would go past either continues UNPROTECTED: its held acks
                          go out, nothing more is logged, its log memory is freed; logged loudly, counted
                          (ftcp status, ftcp_unprotected_total); a server crash then breaks it
  --control [<ip>:]<port> HTTP status/metrics endpoint (GET /status, /metrics) for the operator; a bare port
                          binds ${CONTROL_DEFAULT_ADDR}. Keep it on a management path: a connection whose replies would
                          leave by a --steer interface (the clients' or servers' side) is closed at accept, counted
                          (clientSide), and an address of a steered interface or 0.0.0.0 is warned about at start.
                          Bounded: headers in ${CONTROL_LIMITS.headersTimeoutMs / 1000} s, a request in ${CONTROL_LIMITS.requestTimeoutMs / 1000} s, ${CONTROL_LIMITS.maxConnections} connections,
                          ${CONTROL_LIMITS.maxHeaderBytes} B of headers, GET only; /status pages its flow list (?offset=&limit=)
  --control-token-file F  require 'Authorization: Bearer <token>' (the file's one token, >= 16 characters;
                          mode 0600 or stricter); ftcp status --token-file F sends it
  --ready-file <path>     written (JSON) once the gateway forwards; removed at exit
  --idle-timeout <s>      idle timeout, at most 2592000 (30 days) (default 7200): releases unprotected
                          connections idle this long; established protected connections are never
                          released for idleness (bounded by --max-flows)
  --max-flows <n>         at most n connections tracked (default 100000, ~4 KB each besides their
                          log); new ones beyond it pass UNPROTECTED, counted (flowsOverCap), logged
  --max-half-open <n>     at most n half-open connections (handshake not complete; nothing logged for
                          them), 1..1000000 (default 10000, ~1 KB each): a new SYN beyond it evicts the
                          oldest, counted (halfOpenEvicted), as a SYN queue does
  --half-open-timeout <s> a half-open connection is released this long after its latest SYN or SYN-ACK,
                          0.1..180 (default 30: longer than Linux's SYN-ACK retransmission gaps, 1-16 s)
  --mtu <n>               TUN MTU, 576..9000 (default 1500)
  --no-offload            open the TUN without offloads: every packet at MTU size. By default the TUN
                          has the virtio-net header and TSO4/TSO6/CSUM offloads, so 64 KB super-packets
                          pass unsplit (falling back to plain packets, logged, when the kernel rejects
                          GSO writes). --offload says the default explicitly.
  --checksums <p>         verify | trust (default verify): a protected segment (either direction) whose
                          IPv4 header or TCP checksum is wrong is dropped before it changes a connection
                          or reaches the log, counted (BAD_IPV4_CHECKSUM, BAD_TCP_CHECKSUM); the TCP sum
                          of a frame the kernel vouches for (offload flags) is not redone. trust: no
                          check (a measuring baseline; a forged segment can then poison the log)
  --stability-trace <f>   append a line per stable-point advance: <realtime ns> <client ip:port>
                          <server port> <client ISN> <stable offset> (for offline invariant checks)
  --divergence <p>        what a rebuilt connection whose regenerated output differs from what the client
                          may have gets: reset (default: one RST each way, counted) | continue (counted,
                          logged, carries on) | off (nothing kept or compared); per service with
                          <ip:port>=<p>[,…] (a bare <p> sets the default). The client is always sent the
                          original bytes it may lack. Cost: a 64-bit hash per 16 KiB forwarded, plus the
                          bytes the client has not acknowledged yet
  --divergence-deadline <s> a new incarnation whose output stops short of what the client may have had
                          this long (client's window open) diverged too, 0.1..600 (default 10)
  --supervisor <ip:port>  listen here for \`ftcp supervise\` notices (the liveness oracle): a server
                          FIN/RST is held until the verdict; a crash masks and rebuilds connections
  --key-file <path>       the supervisors' shared key (default: the PUBLIC development key, lab only)
  --heartbeat-ms <n>      the supervisors' heartbeat interval, 10..10000 (default 100): a held FIN/RST of a live
                          server passes at the first heartbeat 25 ms or more after it
  --assume-crash-on <p>   without a supervisor's verdict: 'rst' = a server RST means a crash
                          (rebuild retried until the server answers); 'none' (default)

example: ftcp gateway --tun ftcp0 --protect 198.18.2.2:5001 --steer gc0,gs0 --log embedded:disk:/var/lib/ftcp \\
           --supervisor 198.18.2.1:7071 --key-file /etc/ftcp/key`;

export async function run(argv: string[]): Promise<number> {
  if (argv[0] === 'down') return (await import('./gateway-down.js')).run(argv.slice(1));
  if (argv[0] === 'takeover' || argv[0] === 'release') return (await import('./gateway-role.js')).run(argv[0], argv.slice(1));
  const { values } = parseCli(argv, {
    tun: { type: 'string' },
    protect: { type: 'string' },
    steer: { type: 'string' },
    table: { type: 'string', default: '100' },
    log: { type: 'string', default: 'embedded:memory' },
    control: { type: 'string' },
    'control-token-file': { type: 'string' },
    'ready-file': { type: 'string' },
    'idle-timeout': { type: 'string', default: '7200' },
    'max-flows': { type: 'string' },
    'max-half-open': { type: 'string' },
    'half-open-timeout': { type: 'string' },
    mtu: { type: 'string', default: '1500' },
    'stability-trace': { type: 'string' },
    supervisor: { type: 'string' },
    'key-file': { type: 'string' },
    'heartbeat-ms': { type: 'string', default: '100' },
    'assume-crash-on': { type: 'string', default: 'none' },
    'log-key-file': { type: 'string' },
    'on-log-failure': { type: 'string', default: 'stall' },
    'log-budget': { type: 'string' },
    'log-conn-bound': { type: 'string' },
    offload: { type: 'boolean', default: false },
    'no-offload': { type: 'boolean', default: false },
    checksums: { type: 'string', default: 'verify' },
    divergence: { type: 'string', default: 'reset' },
    'divergence-deadline': { type: 'string', default: '10' },
    'state-dir': { type: 'string', default: DEFAULT_STATE_DIR },
    'remove-on-exit': { type: 'boolean', default: false },
    standby: { type: 'boolean', default: false },
    'standby-refresh': { type: 'string' },
    'takeover-on-address': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  // Started before anything waits (see loadStartModules); awaited once the steering is being inspected.
  const modules = loadStartModules();
  modules.catch(() => {}); // a usage error below returns first; the rejection is seen where it is awaited
  const tunName = requireTun(values.tun);
  if (!values.protect) throw new UsageError('--protect <ip:port>[,…] is required');
  const services = values.protect.split(',').map((s) => {
    const hp = parseHostPort(s, '--protect');
    return { ip: ipToU32(hp.addr), port: hp.port };
  });
  const table = parseNumberFlag(values.table, '--table', { dflt: 100, min: 1, max: 0x7fffffff });
  if (table === 253 || table === 254 || table === 255) {
    throw new UsageError(`--table: ${table} is a kernel table (default, main, local): give a free routing table number`);
  }
  const idle = parseNumberFlag(values['idle-timeout'], '--idle-timeout', { dflt: 7200, min: 0.001, max: MAX_IDLE_TIMEOUT_S, integer: false, unit: 's (30 days)' });
  const maxFlows = parseNumberFlag(values['max-flows'], '--max-flows', { dflt: 100_000, min: 1, max: 100_000_000 });
  const maxHalfOpen = parseNumberFlag(values['max-half-open'], '--max-half-open', { dflt: 10_000, min: 1, max: 1_000_000 });
  const halfOpenTimeout = parseNumberFlag(values['half-open-timeout'], '--half-open-timeout', { dflt: 30, min: 0.1, max: MAX_HALF_OPEN_TIMEOUT_S, integer: false, unit: 's' });
  const mtu = parseNumberFlag(values.mtu, '--mtu', { dflt: 1500, min: 576, max: 9000 });
  const control = values.control !== undefined ? parseControlFlag(values.control) : null;
  if (values['control-token-file'] !== undefined && control === null) throw new UsageError('--control-token-file needs --control');
  const controlToken = values['control-token-file'] !== undefined ? loadControlToken(values['control-token-file']) : null;
  const steer = values.steer ? values.steer.split(',').filter(Boolean) : [];
  if (control !== null && services.some((s) => s.port === control.port && (s.ip === ipToU32(control.addr) || control.addr === '0.0.0.0'))) {
    throw new UsageError(`--control ${control.addr}:${control.port} is a protected service (--protect)`);
  }
  const supervisor = values.supervisor ? parseHostPort(values.supervisor, '--supervisor') : null;
  const heartbeatMs = parseNumberFlag(values['heartbeat-ms'], '--heartbeat-ms', { dflt: 100, min: 10, max: 10_000 });
  const crashPolicy = values['assume-crash-on'];
  if (crashPolicy !== 'none' && crashPolicy !== 'rst') throw new UsageError(`--assume-crash-on: expected 'none' or 'rst', got '${crashPolicy}'`);
  if (values['key-file'] && !supervisor) throw new UsageError('--key-file needs --supervisor');
  const key = values['key-file'] ? loadKey(values['key-file']) : DEV_KEY;
  if (supervisor && !values['key-file']) logger.warn('no --key-file: supervisor notices use the PUBLIC development key (lab use only)');

  const onLogFailure = values['on-log-failure'];
  if (onLogFailure !== 'stall' && onLogFailure !== 'passthrough') {
    throw new UsageError(`--on-log-failure: expected 'stall' or 'passthrough', got '${onLogFailure}'`);
  }
  const checksums = values.checksums;
  if (checksums !== 'verify' && checksums !== 'trust') throw new UsageError(`--checksums: expected 'verify' or 'trust', got '${checksums}'`);
  const divergence = parseDivergence(values.divergence!, services.map(serviceName));
  const divergenceDeadline = parseNumberFlag(values['divergence-deadline'], '--divergence-deadline', { dflt: 10, min: 0.1, max: 600, integer: false, unit: 's' });
  if (values.offload && values['no-offload']) throw new UsageError('--offload and --no-offload exclude each other');
  const standby = values.standby ? standbyOptions(values.log!.trim(), control !== null, values['standby-refresh']) : null;
  if (!values.standby && values['standby-refresh'] !== undefined) throw new UsageError('--standby-refresh needs --standby');
  if (!values.standby && values['takeover-on-address'] !== undefined) throw new UsageError('--takeover-on-address needs --standby');
  const takeoverOnAddress = values['takeover-on-address'] === undefined ? [] : parseAddressList(values['takeover-on-address'], '--takeover-on-address');
  const logOptions: CreateLogOptions = values['log-key-file'] ? { keyFile: values['log-key-file'] } : {};
  const logSpec = values.log!.trim();
  const memoryLog = logSpec === 'embedded' || logSpec === 'embedded:memory';
  if (!memoryLog && (values['log-budget'] !== undefined || values['log-conn-bound'] !== undefined)) {
    throw new UsageError(`--log-budget and --log-conn-bound bound the memory log (--log embedded[:memory]), not '${logSpec}'`);
  }
  // Decide before opening the TUN: the open creates the device and takes its carrier up. The
  // kernel is inspected (`ip` processes) while the modules load.
  const steering = new Steering({ tun: tunName, steer, table, pref: 1000, mtu, stateDir: values['state-dir']! }, logger);
  const prepared = readRecord(steering.file).then((r) => steering.prepare(r));
  prepared.catch(() => {}); // awaited below, after the log is created (a failed prepare shuts it down)
  const { createLog, defaultMemoryBounds, usableMemory, LinuxTun, Gateway, LivenessOracle } = await modules;
  const loadedAt = performance.now();
  if (memoryLog) {
    // The memory log is bounded: a budget and a per-connection bound (see --help).
    const dflt = defaultMemoryBounds();
    const budget = values['log-budget'] === undefined ? dflt.maxBytes : parseSizeOrShareFlag(values['log-budget'], '--log-budget', 2 ** 20, usableMemory());
    const perConn = values['log-conn-bound'] === undefined
      ? Math.min(dflt.maxBytesPerConn, Math.max(2 ** 20, Math.floor(budget / 4)))
      : parseSizeOrShareFlag(values['log-conn-bound'], '--log-conn-bound', 2 ** 20);
    logOptions.maxBytes = budget;
    logOptions.maxBytesPerConn = perConn;
    logger.info({ budget, perConnection: perConn, policy: 'unprotect' }, 'memory log bounds');
  }
  let log;
  try {
    log = createLog(values.log!, logOptions);
  } catch (err) {
    if (err instanceof FtcpError && err.code === 'FTCP_BAD_LOG_SPEC') throw new UsageError(err.message);
    throw err;
  }
  const decision = await prepared.catch(async (err: unknown) => {
    await log.shutdown().catch(() => {});
    throw err;
  });
  let tun: LinuxTun;
  if (!values['no-offload']) {
    const opened = LinuxTun.openWithOffloads(tunName, {}, mtu + 64);
    tun = opened.tun;
    if (opened.probe.offload) logger.info({ tun: tun.name }, 'TUN offloads on (virtio-net header, TSO4/TSO6/CSUM)');
    else logger.error({ tun: tun.name, reason: opened.probe.reason }, 'TUN offloads unavailable: plain packets');
  } else {
    tun = LinuxTun.open(tunName, { slotSize: mtu + 64 });
  }
  let record: SteeringRecord | null = null;
  let gw: Gateway | null = null;
  let oracle: LivenessOracle | null = null;
  let sb: Standby | null = null;
  const tracer = values['stability-trace'] ? stabilityTracer(values['stability-trace']) : null;
  let stopping = false;
  let applied: Promise<SteeringRecord> | null = null;
  let adoptedAt = 0;
  let steeredAt = 0;
  const closeAll = async () => {
    sb?.stop();
    gw?.stop();
    await oracle?.close();
    tun.close();
    await log.shutdown().catch(() => {});
    await tracer?.close();
    if (values['ready-file']) await rm(values['ready-file'], { force: true });
  };
  try {
    tun.persist(true);
    // The steering's completion (an `ip` process at least) runs while the oracle listens and
    // the pipeline is built, and is awaited before the adoption: adopting a connection the
    // log holds mid-rebuild SENDS (the handshake into the new server), and without the rules
    // the server's SYN-ACK would leave by the main table, past the gateway, to the client.
    applied = steering.apply(process.pid);
    applied.catch(() => {}); // awaited below
    if (supervisor) {
      oracle = await LivenessOracle.listen(supervisor.addr, supervisor.port, key, {
        heartbeatMs, services: services.map(serviceName), log: logger.child({ mod: 'oracle' }),
        // Silence (a host crash) is judged after 1 s at least: a loaded host delays heartbeats
        // by hundreds of ms, and a false 'dead' would rebuild connections of a live server.
        silenceMs: Math.max(1000, 10 * heartbeatMs),
      });
    }
    gw = new Gateway({
      tun, services, log, logger, south: { idleTimeoutMs: idle * 1000, maxFlows, maxHalfOpen, halfOpenTimeoutMs: Math.round(halfOpenTimeout * 1000) },
      // The verdict needs a fresh heartbeat; silence means dead first.
      oracle, crashPolicy, holdMs: 10 * heartbeatMs + 200, minGapMs: Math.min(25, heartbeatMs / 2), onLogFailure, mtu, checksums,
      north: { divergence, divergenceDeadlineMs: Math.round(divergenceDeadline * 1000) },
    });
    if (tracer) gw.south.onStableAdvance = tracer.trace;
    record = await applied;
    steeredAt = performance.now();
    // Adoption (issue 14): every open connection the log holds, before the first packet is
    // forwarded; a standby adopts at its takeover (standby.ts) and forwards none before.
    if (standby !== null) {
      sb = new Standby(gw, log, { refreshMs: standby.refreshMs, takeoverOnAddress, logger: logger.child({ mod: 'standby' }) });
    } else if (logSpec === 'embedded' || logSpec === 'embedded:memory') {
      logger.warn('memory log: nothing survives a gateway process, nothing to adopt: connections open before this start pass UNPROTECTED (counted as unknownFlows)');
    } else {
      await gw.adopt(); // (it traces each adopted connection's stable point: Gateway.adopt)
    }
    adoptedAt = performance.now();
    gw.startState = {
      action: decision.action === 'create' ? 'created' : 'reused', restarted: decision.action === 'reuse',
      reusedState: decision.action === 'reuse' ? decision.found : null, starts: record.starts, stateFile: steering.file,
    };
    gw.start();
    sb?.start();
    if (control) {
      const exposed = controlExposure(control.addr, steer);
      if (exposed !== null) {
        logger.warn({ control: `${control.addr}:${control.port}`, steer }, `the control endpoint is on the clients' side: ${exposed}. ` +
          'connections whose replies would leave by a steered interface are refused, but give it a management address (e.g. --control 127.0.0.1:7070)');
      }
      await startControl(gw, { addr: control.addr, port: control.port, token: controlToken, steer, standby: sb, logger: logger.child({ mod: 'control' }) });
    }
    if (values['ready-file']) {
      await writeFile(values['ready-file'], JSON.stringify({ pid: process.pid, tun: tun.name, control: control ? `${control.addr}:${control.port}` : null, role: gw.role }) + '\n');
    }
  } catch (err) {
    // A failed start that created the steering takes it away again; one that found it leaves
    // it (with the device), so the traffic it protects stays dropped, not forwarded. (A
    // steering still being completed is waited for: the rollback undoes what it did.)
    await applied?.catch(() => {});
    if (decision.action === 'create') {
      try { tun.persist(false); } catch (e) { logger.warn({ err: (e as Error).message }, 'could not make the TUN non-persistent'); }
    }
    await closeAll();
    if (decision.action === 'create') await steering.rollback();
    throw err;
  }
  // Where a start's time went, in ms since the process began (Node's own start included; a
  // restart's budget: issue 14 item 5, BENCHMARKS.md "Gateway restart").
  // cpu: the process's CPU time by then, the part of it a loaded host cannot hide.
  const cpu = process.cpuUsage();
  const startup = {
    modules: Math.round(loadedAt), steered: Math.round(steeredAt), adopted: Math.round(adoptedAt), ready: Math.round(performance.now()),
    cpu: Math.round((cpu.user + cpu.system) / 1000),
  };
  logger.info({ role: gw!.role, tun: tun.name, protect: values.protect, steer, log: values.log, control: control ? `${control.addr}:${control.port}` : null, controlToken: controlToken !== null, supervisor: values.supervisor ?? null, crashPolicy, startup }, 'gateway running');

  return await new Promise<number>((resolve) => {
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal: sig }, 'gateway stopping');
      const stopAll = async () => {
        await closeAll();
        if (values['remove-on-exit'] && record !== null) {
          await removeSteering(record, steering.file, logger);
        } else {
          logger.warn({ tun: tun.name, stateFile: steering.file },
            `TUN and steering kept: protected traffic is dropped until a gateway runs again; 'ftcp gateway down --tun ${tun.name}' removes them`);
        }
      };
      stopAll().then(
        () => resolve(0),
        (err) => {
          logger.error({ err }, 'cleanup failed');
          resolve(1);
        },
      );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}


/**
 * --standby's checks: a log another host shares (a log server; the memory log dies with its
 * process and the disk log lives on one host's disk, so a standby elsewhere would find nothing
 * or a stale copy) and a control endpoint (keepalived's hooks reach the gateway through it).
 */
/** A comma-separated list of IPv4 addresses (dotted quads), each checked. */
export function parseAddressList(v: string, flag: string): string[] {
  const out = v.split(',').map((x) => x.trim()).filter((x) => x !== '');
  if (out.length === 0) throw new UsageError(`${flag}: expected <ip>[,<ip>...], got ${JSON.stringify(v)}`);
  for (const a of out) {
    try {
      ipToU32(a);
    } catch {
      throw new UsageError(`${flag}: ${JSON.stringify(a)} is not an IPv4 address`);
    }
  }
  return out;
}

export function standbyOptions(logSpec: string, hasControl: boolean, refresh: string | undefined): { refreshMs: number } {
  if (logSpec === 'embedded' || logSpec.startsWith('embedded:memory')) {
    throw new UsageError('--standby needs a log the other gateway shares (--log udp://<ip>:<port>, an ftcp logserver): the memory log dies with its process, a standby would adopt nothing');
  }
  if (logSpec.startsWith('embedded:disk')) {
    throw new UsageError('--standby needs a log the other gateway shares (--log udp://<ip>:<port>, an ftcp logserver): the disk log is local to one host, a standby on another host cannot read it (for a restart on the same host no standby is needed: the restarted gateway adopts from the disk log)');
  }
  if (!hasControl) throw new UsageError('--standby needs --control: the takeover and the release (keepalived\'s notify hooks) come through the control endpoint');
  const s = parseNumberFlag(refresh, '--standby-refresh', { dflt: STANDBY_REFRESH_MS.dflt / 1000, min: STANDBY_REFRESH_MS.min / 1000, max: STANDBY_REFRESH_MS.max / 1000, integer: false, unit: 's' });
  return { refreshMs: Math.round(s * 1000) };
}
