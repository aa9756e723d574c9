/**
 * keepalived for a gateway pair: the configuration and the two small scripts it runs, as text.
 * Pure (no files, no processes): src/lab/standby.ts writes them into the lab's state dir and
 * starts keepalived; deploy/keepalived/ holds the same configuration, commented, for two VMs.
 *
 *   vrrp_sync_group ftcp_gateway ─┬─ vrrp_instance client_net  (VIP 198.18.1.1 on gc0, VRID 51)
 *     track_script gateway_ready  └─ vrrp_instance server_net  (VIP 198.18.2.1 on gs0, VRID 52)
 *     notify_master|backup|fault → notify.sh MASTER|BACKUP|FAULT
 *                                   → `ftcp gateway takeover|release --control <local control>`
 *
 * Why each choice:
 * * VRRP version 3: its advertisement interval is in centiseconds; version 2 carries whole
 *   seconds (keepalived 2.2 rounds 0.1 up to 1 with a warning), and 3 x 1 s + skew = 3.5 s of
 *   outage before the backup takes over, against the issue's aim of 1 s for a failover.
 * * Unicast peers: a real pair of VMs often sits on a network without multicast (clouds), and
 *   the lab's bridges then carry nothing the test did not ask for.
 * * One sync group: the client-side and the server-side addresses must move together; a
 *   gateway holding only one of them would see one direction of every connection.
 * * Both hosts start BACKUP with nopreempt: a recovered primary must not take the addresses back
 *   from a standby that has adopted the connections (its own state is stale, and the log's
 *   fencing would refuse it anyway).
 * * gateway_ready (track_script, init_fail, weight 0 through the sync group): a host whose
 *   gateway process is not running, or not yet ready/warm, is in FAULT and cannot become master;
 *   keepalived's FAULT also releases the addresses if the gateway dies on the master.
 */

/** One gateway host's own addresses on the client and server networks (not the virtual ones). */
export interface VrrpHost {
  /** keepalived's router_id: the host's name (the lab uses the namespace's). */
  name: string;
  clientIf: string;
  serverIf: string;
  clientAddr: string;
  serverAddr: string;
}

export interface KeepalivedConfigInput {
  self: VrrpHost;
  peer: VrrpHost;
  /** The addresses that move, with their prefix length: what clients and servers route through. */
  vip: { client: string; server: string; prefixLength: number };
  priority: number;
  /** Seconds; VRRPv3 allows hundredths. */
  advertInt: number;
  /** Absolute path of the notify script (called with MASTER, BACKUP or FAULT). */
  notifyScript: string;
  /** Absolute path of the readiness check, or null: no gateway process to track (kernel forwarding). */
  checkScript: string | null;
}

/** Virtual router ids of the two instances (any free pair of 1..255 on those segments). */
export const VRID = { client: 51, server: 52 } as const;
export const SYNC_GROUP = 'ftcp_gateway';

/** 0.1 s: the backup declares the master dead after 3 x 0.1 s + skew (≈ 0.34 s at priority 100). */
export const DEFAULT_ADVERT_INT_S = 0.1;

function instance(name: string, iface: string, vrid: number, src: string, peer: string, vip: string, input: KeepalivedConfigInput): string[] {
  return [
    `vrrp_instance ${name} {`,
    '  state BACKUP',
    '  nopreempt',
    `  interface ${iface}`,
    `  virtual_router_id ${vrid}`,
    `  priority ${input.priority}`,
    `  advert_int ${input.advertInt}`,
    `  unicast_src_ip ${src}`,
    '  unicast_peer {',
    `    ${peer}`,
    '  }',
    '  virtual_ipaddress {',
    `    ${vip}/${input.vip.prefixLength} dev ${iface}`,
    '  }',
    '}',
  ];
}

/** keepalived.conf for one host of the pair. */
export function keepalivedConfig(input: KeepalivedConfigInput): string {
  const { self, peer } = input;
  if (!(input.priority >= 1 && input.priority <= 254 && Number.isInteger(input.priority))) {
    throw new RangeError(`VRRP priority ${input.priority}: expected an integer 1..254 (255 is the address owner)`);
  }
  if (!(input.advertInt >= 0.01 && input.advertInt <= 40.95)) {
    throw new RangeError(`advert_int ${input.advertInt}: VRRPv3 allows 0.01..40.95 s`);
  }
  const lines = [
    `# keepalived for ftcp gateway host ${self.name} (peer ${peer.name}); written by ftcp, see deploy/keepalived/`,
    'global_defs {',
    `  router_id ${self.name}`,
    '  vrrp_version 3',
    // Scripts run as root (they talk to the gateway's control endpoint); script security makes
    // keepalived refuse them if a non-root user could rewrite them or their directories.
    '  script_user root',
    '  enable_script_security',
    '}',
    '',
  ];
  if (input.checkScript !== null) {
    lines.push(
      'vrrp_script gateway_ready {',
      `  script "${input.checkScript}"`,
      '  interval 1',
      '  timeout 1',
      '  fall 1',
      '  rise 1',
      '  init_fail',
      '}',
      '',
    );
  }
  lines.push(
    `vrrp_sync_group ${SYNC_GROUP} {`,
    '  group {',
    '    client_net',
    '    server_net',
    '  }',
    ...(input.checkScript !== null ? ['  track_script {', '    gateway_ready', '  }'] : []),
    `  notify_master "${input.notifyScript} MASTER"`,
    `  notify_backup "${input.notifyScript} BACKUP"`,
    `  notify_fault "${input.notifyScript} FAULT"`,
    '}',
    '',
    ...instance('client_net', self.clientIf, VRID.client, self.clientAddr, peer.clientAddr, input.vip.client, input),
    '',
    ...instance('server_net', self.serverIf, VRID.server, self.serverAddr, peer.serverAddr, input.vip.server, input),
  );
  return lines.join('\n') + '\n';
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * notify.sh STATE: appends "<epoch seconds.ns> STATE" to `transitions`, then tells the local
 * gateway (unless `gateway` is null: kernel forwarding, nothing to tell): MASTER → takeover
 * (claims the log epoch, adopts every open connection, then forwards), BACKUP/FAULT → release
 * (stops forwarding protected traffic). The outcome goes on a second line, "... STATE rc=<n>".
 */
export function notifyScript(opts: { transitions: string; gateway: { program: readonly string[]; control: string } | null }): string {
  const call = opts.gateway === null
    ? ['rc=0 # kernel forwarding: no gateway process to tell']
    : [
      'case "$state" in',
      '  MASTER) verb=takeover ;;',
      '  *) verb=release ;;',
      'esac',
      `${opts.gateway.program.map(shq).join(' ')} gateway "$verb" --control ${shq(opts.gateway.control)} >>${shq(opts.transitions + '.out')} 2>&1`,
      'rc=$?',
    ];
  return [
    '#!/bin/sh',
    '# keepalived notify hook for an ftcp gateway host (written by ftcp; see deploy/keepalived/).',
    'state="$1"',
    `echo "$(date +%s.%N) $state" >>${shq(opts.transitions)}`,
    ...call,
    `echo "$(date +%s.%N) $state rc=$rc" >>${shq(opts.transitions)}`,
    'exit 0',
    '',
  ].join('\n');
}

/**
 * check-gateway.sh: exit 0 only if the gateway's ready file names a live process. The gateway
 * writes that file once it is ready (a `--standby` gateway once it is warm: connected to the log
 * and following its records) and a dead process leaves a stale pid behind, hence the kill -0.
 */
export function checkScript(readyFile: string): string {
  return [
    '#!/bin/sh',
    '# keepalived track_script: is this host\'s ftcp gateway running and ready? (written by ftcp)',
    `pid=$(sed -n 's/.*"pid": *\\([0-9][0-9]*\\).*/\\1/p' ${shq(readyFile)} 2>/dev/null | head -n 1)`,
    '[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null',
    '',
  ].join('\n');
}
