/**
 * ftcp supervise --gateway <ip:port> --service <ip:port> [--key-file F] [options] -- <cmd> [args…]
 *
 * Runs the server program, restarts it when it dies, and reports its liveness to the
 * gateway's oracle (src/supervisor/). SIGTERM/SIGINT stop the program gracefully; exit 0.
 */
import { parseCli, parseHostPort, parseNumberFlag } from '../args.js';
import { UsageError } from '../../util/errors.js';
import { logger } from '../../util/logger.js';
import { DEV_KEY, loadKey } from '../../link/key.js';
import { Supervisor } from '../../supervisor/supervisor.js';

/** The bound of the millisecond timeouts (a timer beyond 2^31-1 ms would fire at once). */
const MAX_TIMEOUT_MS = 3_600_000;

const HELP = `usage: ftcp supervise --gateway <ip:port> --service <ip:port> [options] -- <command> [args…]

  --gateway <ip:port>       the gateway's supervisor (oracle) UDP port, e.g. 198.18.2.1:7071
  --service <ip:port>       the protected service the program serves (its port is watched for LISTEN)
  --key-file <path>         shared key: raw bytes or hex, at least 16 bytes. Without it a built-in,
                            PUBLIC development key is used (a warning is logged): lab use only
  --heartbeat-ms <n>        heartbeat interval, 10..10000 (default 100)
  --stop-timeout-ms <n>     SIGKILL the program this long after SIGTERM on a stop, at most 3600000 (1 h)
                            (default 5000)
  --max-restarts <n>        give up (exit 1) after n restarts, at most 1000000000 (default: never)
  --listen-timeout-ms <n>   stop polling for LISTEN after this long per start, 1..3600000 (default 60000)

Restarts back off 100 ms, doubling to 5 s, reset after 30 s of healthy run.
A program exiting with status 0 is a deliberate stop: 'stopped' is reported and the supervisor exits 0.

example: ftcp supervise --gateway 198.18.2.1:7071 --service 198.18.2.2:5001 --key-file /etc/ftcp/key \\
           -- ftcp demo-server --kind echo --listen 198.18.2.2:5001`;

export async function run(argv: string[]): Promise<number> {
  const dd = argv.indexOf('--');
  const own = dd >= 0 ? argv.slice(0, dd) : argv;
  const cmd = dd >= 0 ? argv.slice(dd + 1) : [];
  const { values } = parseCli(own, {
    gateway: { type: 'string' },
    service: { type: 'string' },
    'key-file': { type: 'string' },
    'heartbeat-ms': { type: 'string' },
    'stop-timeout-ms': { type: 'string' },
    'max-restarts': { type: 'string' },
    'listen-timeout-ms': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (!values.gateway) throw new UsageError('--gateway <ip:port> is required');
  if (!values.service) throw new UsageError('--service <ip:port> is required');
  const gw = parseHostPort(values.gateway, '--gateway');
  const svc = parseHostPort(values.service, '--service');
  const heartbeatMs = parseNumberFlag(values['heartbeat-ms'], '--heartbeat-ms', { dflt: 100, min: 10, max: 10_000 });
  const stopTimeoutMs = parseNumberFlag(values['stop-timeout-ms'], '--stop-timeout-ms', { dflt: 5000, min: 0, max: MAX_TIMEOUT_MS });
  const maxRestarts = values['max-restarts'] === undefined ? undefined : parseNumberFlag(values['max-restarts'], '--max-restarts', { dflt: 0, min: 0, max: 1_000_000_000 });
  const listenTimeoutMs = parseNumberFlag(values['listen-timeout-ms'], '--listen-timeout-ms', { dflt: 60_000, min: 1, max: MAX_TIMEOUT_MS });
  if (cmd.length === 0 || !cmd[0]) throw new UsageError("the program to run is required after '--' (ftcp supervise … -- <command> [args…])");

  const log = logger.child({ mod: 'supervise' });
  let key: Buffer;
  if (values['key-file']) key = loadKey(values['key-file']);
  else {
    key = DEV_KEY;
    log.warn('no --key-file: using the built-in development key, which is public; notices are NOT authenticated against an attacker');
  }

  const sup = new Supervisor({
    gateway: gw,
    service: `${svc.addr}:${svc.port}`,
    key,
    command: cmd[0],
    args: cmd.slice(1),
    heartbeatMs,
    stopTimeoutMs,
    maxRestarts,
    listenTimeoutMs,
    log,
  });
  const onSignal = (sig: NodeJS.Signals) => {
    log.info({ signal: sig }, 'stop requested');
    void sup.stop(sig);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    return await sup.run();
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
