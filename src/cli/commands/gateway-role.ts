/**
 * ftcp gateway takeover --control [<ip>:]<port> [--token-file F] [--json]
 * ftcp gateway release  --control [<ip>:]<port> [--token-file F] [--json]
 *
 * The two commands of a standby pair (src/gateway/standby.ts), for keepalived's notify hooks:
 * MASTER → takeover (claim the log's epoch, adopt every open connection, forward), BACKUP or
 * FAULT → release (stop forwarding protected traffic at once). Both are POSTs to the running
 * gateway's control endpoint; both are idempotent. Exit status 0 once the gateway answered
 * that it is active (takeover) or standby (release), 1 otherwise, with the reason.
 */
import { parseCli } from '../args.js';
import { UsageError } from '../../util/errors.js';
import { loadControlToken } from '../../gateway/control.js';
import { direct, parseControlFlag } from './status.js';

const HELP = (cmd: string) => `usage: ftcp gateway ${cmd} --control [<ip>:]<port> [--token-file F] [--json]

  ${cmd === 'takeover'
    ? 'Makes a gateway run with --standby the active one: it claims the log\'s epoch (the old primary is\n  refused by the log from then on), adopts every open connection from the log, then forwards.\n  Prints the time each step took. Already active: prints the earlier takeover\'s report.'
    : 'Puts a gateway run with --standby back to standby: protected traffic is dropped from the answer\n  on (fail closed); its connections are left to the log for the gateway that takes over.'}

  --control [<ip>:]<port>  the gateway's control endpoint (a bare port: 127.0.0.1)
  --token-file F           send the bearer token in F (the gateway's --control-token-file)
  --json                   print the gateway's JSON report as it is

example (keepalived notify_master): ftcp gateway ${cmd} --control 127.0.0.1:7070`;

export async function run(cmd: 'takeover' | 'release', argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    control: { type: 'string' },
    'token-file': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP(cmd) + '\n');
    return 0;
  }
  if (values.control === undefined) throw new UsageError(`ftcp gateway ${cmd}: --control [<ip>:]<port> is required (the gateway's control endpoint)`);
  const { addr, port } = parseControlFlag(values.control);
  const token = values['token-file'] !== undefined ? loadControlToken(values['token-file'], '--token-file') : null;
  const body = await direct(`http://${addr}:${port}/${cmd}`, token, `the gateway at ${addr}:${port}`, 'POST');
  if (values.json) {
    process.stdout.write(body);
    return 0;
  }
  const r = JSON.parse(body) as Record<string, unknown>;
  process.stdout.write(reportLine(cmd, r) + '\n');
  return 0;
}

/** One line for a takeover or release report. */
export function reportLine(cmd: 'takeover' | 'release', r: Record<string, unknown>): string {
  if (cmd === 'release') {
    return r.already ? `role ${r.role}: already standby` : `role ${r.role}: released, ${r.left} connection(s) left to the log`;
  }
  const epoch = r.epoch === null ? 'the log has no epochs (NOT fenced)' : `epoch ${r.epoch}`;
  return `role ${r.role}${r.already ? ' (already: the earlier takeover)' : ''}: ${epoch}; ${r.adopted} connection(s) adopted ` +
    `(${r.translated} translated, ${r.rebuilding} rebuilding) in ${r.totalMs} ms (claim ${r.claimMs} ms, adopt ${r.adoptMs} ms)`;
}
