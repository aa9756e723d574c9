/**
 * ftcp gateway down --tun <name> [--state-dir D]
 *
 * The only way the gateway's kernel state goes away (issue 14): a gateway that stops or dies
 * leaves its persistent TUN device and its steering in place, so protected traffic is dropped,
 * never forwarded unprotected, until the next gateway starts. This removes the rules, the
 * routes, the device and the state file that record them, and restores
 * net.ipv4.conf.all.rp_filter. Idempotent; refuses while a gateway has the device open.
 */
import { parseCli } from '../args.js';
import { UsageError } from '../../util/errors.js';
import { logger } from '../../util/logger.js';
import { removeSteering, inspectLink } from '../../gateway/steering.js';
import { DEFAULT_STATE_DIR, readRecord, stateFile } from '../../gateway/steering-state.js';

const HELP = `usage: ftcp gateway down --tun <name> [--state-dir <dir>]

  Removes what 'ftcp gateway --tun <name>' left in the kernel for the next gateway: its steering
  rules, the routes of its table, the TUN device, the state file, and restores
  net.ipv4.conf.all.rp_filter if the gateway changed it. Until then, protected traffic is
  dropped while no gateway runs. Refuses while a gateway has the device open (stop it first).
  Nothing there: says so, exit status 0.

  --tun <name>        the gateway's TUN device
  --state-dir <dir>   where the gateway recorded its state (default ${DEFAULT_STATE_DIR})`;

/** `--tun`, required, an interface name (15 bytes at most): for `ftcp gateway` and `ftcp gateway down`. */
export function requireTun(tun: string | undefined): string {
  if (!tun) throw new UsageError('--tun <name> is required');
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(tun)) throw new UsageError(`--tun: bad interface name '${tun}'`);
  return tun;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    tun: { type: 'string' },
    'state-dir': { type: 'string', default: DEFAULT_STATE_DIR },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const tun = requireTun(values.tun);
  const file = stateFile(values['state-dir']!, tun);
  const record = await readRecord(file);
  if (record === null) {
    // No record: say whether the kernel still holds a device of that name (not removed: nothing says it is ours).
    const link = await inspectLink(tun);
    if (link !== null) {
      process.stderr.write(`ftcp gateway down: no state file ${file}, but a device ${tun} (${link.kind ?? '?'}) exists; ` +
        `not removed, nothing records it as a gateway's (another --state-dir? remove it with 'ip link del ${tun}')\n`);
      return 1;
    }
    process.stdout.write(`nothing to remove for ${tun}: no state file ${file} and no such device\n`);
    return 0;
  }
  const removed = await removeSteering(record, file, logger);
  process.stdout.write(`removed: ${removed.join('; ')}\n`);
  return 0;
}
