/**
 * `ftcp lab up|down|status`: the network-namespace lab (see src/lab/).
 *
 *   ftcp lab up --name <n> [--protect <port>,...] [--forward gateway|kernel] [--log embedded|embedded:disk|remote] [--standby-gateway] [--json]
 *   ftcp lab down --name <n>
 *   ftcp lab status --name <n> [--json]
 *
 * Exit status: 0 done; 1 failed (up: rolled back; status: the lab is not (fully) up); 2 usage.
 */
import { parseCli } from '../args.js';
import { UsageError } from '../../util/errors.js';
import { labDown, labStatus, labUp } from '../../lab/lab.js';
import { lastTransition } from '../../lab/standby.js';
import { checkForward, checkLabName, checkLogMode, parseProtectList, type LabTopology } from '../../lab/topology.js';

const USAGE = `usage:
  ftcp lab up --name <n> [--protect <port>,...] [--forward gateway|kernel] [--log embedded|embedded:disk|remote]
              [--standby-gateway] [--json]
  ftcp lab down --name <n>
  ftcp lab status --name <n> [--json]

<n>: a lowercase letter then up to 14 of [a-z0-9-]. The lab is four network namespaces
<n>-client, <n>-gw, <n>-server, <n>-log; its state lives in /run/ftcp-lab/<n>/.
--forward gateway (default) runs the ftcp gateway in <n>-gw; kernel forwards in the kernel only.
--standby-gateway adds a second gateway host <n>-gw2 and <n>-net (the bridges of the client, server
and log networks); keepalived in both gateway hosts moves 198.18.1.1 and 198.18.2.1 to the standby
when the primary dies. With a gateway it needs --log remote (both gateways run --standby; the master's
keepalived hook runs 'ftcp gateway takeover'). See deploy/keepalived/README.md.`;

function out(s: string): void { process.stdout.write(s.endsWith('\n') ? s : s + '\n'); }

function describe(t: LabTopology): string {
  const a = t.addresses;
  const lines = [
    `lab ${t.name}: forward=${t.forward}${t.log ? ` log=${t.log}` : ''}${t.protect.length ? ` protect=${t.protect.join(',')}` : ''}`,
    `  ${t.namespaces.client.padEnd(22)} ${t.interfaces.client} ${a.client}  (default via ${a.gwClient})`,
    t.standby
      ? `  ${t.namespaces.gw.padEnd(22)} ${t.interfaces.gwClient} ${t.standby.hosts.gw.client}, ${t.interfaces.gwServer} ${t.standby.hosts.gw.server}, ${t.interfaces.gwLog1} ${t.standby.hosts.gw.log1}, ${t.interfaces.gwLog2} ${t.standby.hosts.gw.log2}`
      : `  ${t.namespaces.gw.padEnd(22)} ${t.interfaces.gwClient} ${a.gwClient}, ${t.interfaces.gwServer} ${a.gwServer}, ${t.interfaces.gwLog1} ${a.gwLog1}, ${t.interfaces.gwLog2} ${a.gwLog2}`,
    `  ${t.namespaces.server.padEnd(22)} ${t.interfaces.server} ${a.server}  (default via ${a.gwServer})`,
    `  ${t.namespaces.log.padEnd(22)} ${t.interfaces.log1} ${a.log1}, ${t.interfaces.log2} ${a.log2}`,
    `  state: ${t.stateDir}`,
  ];
  if (t.forward === 'gateway') lines.push(`  gateway: pid ${t.gatewayPid}, control ${t.control}, log ${t.gatewayLog}`);
  const sb = t.standby;
  if (sb) {
    const h = sb.hosts;
    lines.push(
      `  ${sb.namespaces.gw2.padEnd(22)} ${t.interfaces.gwClient} ${h.gw2.client}, ${t.interfaces.gwServer} ${h.gw2.server}, ${t.interfaces.gwLog1} ${h.gw2.log1}, ${t.interfaces.gwLog2} ${h.gw2.log2}` +
        (sb.gateway2Pid !== null ? `  (gateway pid ${sb.gateway2Pid}, ${sb.gateway2Log})` : ''),
      `  ${sb.namespaces.net.padEnd(22)} bridges br-c, br-s, br-l1, br-l2 (the shared segments)`,
      `  vrrp: VIPs ${sb.vips.client}, ${sb.vips.server} (on the master); advert ${sb.advertInt} s; ` +
        `keepalived pids ${sb.keepalivedPid.gw} (${t.namespaces.gw}), ${sb.keepalivedPid.gw2} (${sb.namespaces.gw2}); ${sb.vrrpDir.gw}, ${sb.vrrpDir.gw2}`,
    );
  }
  return lines.join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    if (sub === undefined) { process.stderr.write(USAGE + '\n'); return 2; }
    out(USAGE);
    return 0;
  }
  switch (sub) {
    case 'up': {
      const { values } = parseCli(rest, {
        name: { type: 'string' }, protect: { type: 'string' }, forward: { type: 'string' },
        log: { type: 'string' }, 'standby-gateway': { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      });
      if (values.help) { out(USAGE); return 0; }
      const name = requireName(values.name);
      const protect = values.protect === undefined ? [] : parseProtectList(values.protect);
      const forward = checkForward(values.forward ?? 'gateway');
      const log = checkLogMode(values.log ?? 'embedded');
      // Ctrl-C or a SIGTERM while coming up: stop at the next step and roll back, leave nothing.
      const ac = new AbortController();
      const onSignal = () => ac.abort();
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      let t;
      try {
        t = await labUp({ name, protect, forward, log, standbyGateway: values['standby-gateway'] === true, signal: ac.signal });
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      out(values.json ? JSON.stringify(t, null, 2) : describe(t));
      return 0;
    }
    case 'down': {
      const { values } = parseCli(rest, { name: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
      if (values.help) { out(USAGE); return 0; }
      const name = requireName(values.name);
      await labDown(name);
      out(`lab ${name}: down`);
      return 0;
    }
    case 'status': {
      const { values } = parseCli(rest, { name: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
      if (values.help) { out(USAGE); return 0; }
      const name = requireName(values.name);
      const s = await labStatus(name);
      const allNs = Object.values(s.namespaces).every(Boolean);
      const up = allNs && s.topology !== null && (s.topology.forward === 'kernel' || s.gatewayAlive);
      if (values.json) {
        out(JSON.stringify({ name, up, namespaces: s.namespaces, gatewayAlive: s.gatewayAlive, topology: s.topology }, null, 2));
      } else {
        const nsLine = Object.entries(s.namespaces).map(([n, ok]) => `${n}=${ok ? 'yes' : 'no'}`).join(' ');
        out([`lab ${name}: ${up ? 'up' : allNs || Object.values(s.namespaces).some(Boolean) ? 'partial' : 'down'}`,
          `  namespaces: ${nsLine}`,
          `  gateway: ${s.topology?.forward === 'gateway' ? (s.gatewayAlive ? `alive (pid ${s.topology.gatewayPid})` : 'not running') : 'none (kernel forwarding)'}`,
          ...(s.topology?.standby ? [`  vrrp (last notify): ${(['gw', 'gw2'] as const).map((h) => `${h} ${lastTransition(s.topology!.standby!, h)?.state ?? 'none'}`).join(', ')}`] : []),
          ...(s.topology ? [describe(s.topology)] : ['  no state.json']),
        ].join('\n'));
      }
      return up ? 0 : 1;
    }
    default:
      throw new UsageError(`unknown subcommand '${sub}' (expected up, down or status)\n${USAGE}`);
  }
}

function requireName(v: string | undefined): string {
  if (v === undefined) throw new UsageError('--name <n> is required');
  return checkLabName(v);
}
