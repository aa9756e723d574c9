/**
 * `ftcp <command> [options]`: the command-line entry. Each command lives in
 * src/cli/commands/<command>.ts and exports `run(argv): Promise<number>` (the exit code).
 */
import { FtcpError } from '../util/errors.js';

type Command = { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> };

const commands: Record<string, Command> = {
  gateway: { summary: 'run the gateway on a TUN device', load: () => import('./commands/gateway.js') },
  logserver: { summary: 'serve the log to gateways over the link protocol', load: () => import('./commands/logserver.js') },
  status: { summary: "print a running gateway's state", load: () => import('./commands/status.js') },
  lab: { summary: 'network-namespace lab: up | down | status', load: () => import('./commands/lab.js') },
  drill: { summary: 'run a drill in the namespace lab and report', load: () => import('./commands/drill.js') },
  inspect: { summary: 'inspect a packet capture: per-connection bytes, retransmissions, resets, gaps, pauses', load: () => import('./commands/inspect.js') },
  supervise: { summary: 'run a server program and report its liveness to the gateway', load: () => import('./commands/supervise.js') },
  'demo-server': { summary: 'deterministic demo servers (upload, download, echo, kv)', load: () => import('./commands/demo-server.js') },
  'demo-client': { summary: 'clients for the demo servers, with digests', load: () => import('./commands/demo-client.js') },
  'real-client': { summary: 'checking clients for real servers (memcached, HTTP keep-alive)', load: () => import('./commands/real-client.js') },
};

function usage(): string {
  const lines = ['usage: ftcp <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(12)} ${c.summary}`);
  lines.push('', "Run 'ftcp <command> --help' for a command's options.");
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`ftcp: unknown command '${name}'\n\n${usage()}\n`);
    return 2;
  }
  try {
    // keepalived's notify hooks run `gateway takeover|release` on the failover's critical path:
    // the light module only (the gateway's own imports cost ~0.5 s on a busy host).
    if (name === 'gateway' && (rest[0] === 'takeover' || rest[0] === 'release')) {
      return await (await import('./commands/gateway-role.js')).run(rest[0], rest.slice(1));
    }
    const mod = await cmd.load();
    return await mod.run(rest);
  } catch (err) {
    if (err instanceof FtcpError) {
      process.stderr.write(`ftcp ${name}: ${err.message}\n`);
      return err.code === 'FTCP_USAGE' ? 2 : 1;
    }
    throw err;
  }
}
