/**
 * The drill's log-link faults (`ftcp drill --log remote --fault <f>`): when each is applied
 * and undone (the mechanisms are in ./faults.ts), the gateway's log-link counters as the
 * report carries them, and whether they show that the fault acted.
 *
 *   log-loss       netem loss, reordering and duplication on both log links, to the end
 *   log-path-down  the log link in use taken down, to the end
 *   log-restart    kill -9 of the log server (disk store) and an immediate restart; the
 *                  server crash comes only after the gateway is back with the restarted
 *                  log server, so the rebuild reads the replay from it
 */
import { gatewayStatus } from './procs.js';
import { logLoss, logPathDown, logRestart } from './faults.js';
import type { LabTopology } from './topology.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const LOG_FAULTS = {
  'log-loss': 'loss, reordering and duplication on both log links',
  'log-path-down': 'the log link in use goes down mid-transfer',
  'log-restart': 'kill -9 of the log server mid-transfer, restarted on its disk store; the server crash follows',
} as const;
export type LogFault = keyof typeof LOG_FAULTS;

/** The gateway's log link as the drill reports it (gateway status `logLink`, at the end). */
export interface LogLinkReport {
  fault: LogFault | null;
  /** From the clients' start: the fault began (-1: not applied, the clients had finished). */
  faultAtMs: number;
  /** Epoch ms the fault was in place (log-restart: the gateway back with the restarted server); -1: never. */
  faultReadyAt: number;
  /** log-loss: 'netem' or the log server's userspace impairment. */
  impairment?: 'netem' | 'userspace';
  /** log-path-down: the link taken down (1 or 2). */
  downLink?: number;
  /** log-restart: from the kill to the gateway re-registered with the restarted server. */
  restartMs?: number;
  peer: string;
  path: number;
  datagramsOut: number;
  retransmitted: number;
  rejectsSent: number;
  rejectsReceived: number;
  duplicates: number;
  replayed: number;
  pathSwitches: number;
  resyncs: number;
  peerResyncs: number;
  reconnects: number;
  serverRestarts: number;
  reRegistrations: number;
  lostMessages: number;
  bytesResent: number;
  failures: number;
}

export interface FaultInfo {
  atMs: number;
  readyAt: number;
  impairment?: 'netem' | 'userspace';
  downLink?: number;
  restartMs?: number;
}

export interface FaultRun {
  /** The fault is in place (log-restart: the gateway is back with the restarted server). */
  ready: Promise<void>;
  /** Resolves once the fault step is over (at once for the faults that last to the end). */
  done: Promise<FaultInfo>;
  /** Undoes what lasts to the end (netem off, the link up again). */
  undo(): Promise<void>;
}

/**
 * Applies `fault` FAULT_AT_MS after `clientsAt`. log-loss and log-path-down last until
 * undo(); log-restart kills and restarts the log server, then waits (bounded) until the
 * gateway reports the new server and an active link.
 */
export function runLogFault(topo: LabTopology, fault: LogFault, clientsAt: number, due: Promise<unknown>, clientsDone: () => boolean, say: (m: string) => void): FaultRun {
  let undo: () => Promise<void> = async () => {};
  const done = (async (): Promise<FaultInfo> => {
    await due;
    if (clientsDone()) return { atMs: -1, readyAt: -1 };
    const atMs = Date.now() - clientsAt;
    switch (fault) {
      case 'log-loss': {
        const impairment = await logLoss(topo, true);
        undo = async () => { await logLoss(topo, false); };
        say(`log fault: loss, reordering, duplication on both log links (${impairment})`);
        return { atMs, readyAt: Date.now(), impairment };
      }
      case 'log-path-down': {
        const st = await gatewayStatus(topo.name);
        const which = (Number(st.logLink?.path ?? 0) + 1) as 1 | 2;
        await logPathDown(topo, which, true);
        undo = async () => { await logPathDown(topo, which, false); };
        say(`log fault: log link ${which} down`);
        return { atMs, readyAt: Date.now(), downLink: which };
      }
      case 'log-restart': {
        const before = Number((await gatewayStatus(topo.name)).logLink?.client?.serverRestarts ?? 0);
        const killedAt = Date.now();
        const { oldPid, newPid } = await logRestart(topo);
        say(`log fault: log server ${oldPid} killed (-9), restarted as ${newPid}`);
        for (let i = 0; i < 100; i++) {
          const ll = (await gatewayStatus(topo.name)).logLink;
          if (Number(ll?.client?.serverRestarts ?? 0) > before && ll?.peer === 'active') break;
          await sleep(50);
        }
        const restartMs = Date.now() - killedAt;
        say(`log fault: the gateway is back with the restarted log server (${restartMs} ms after the kill)`);
        return { atMs, readyAt: Date.now(), restartMs };
      }
    }
  })();
  done.catch(() => {}); // awaited by the drill; this only keeps an early exit from leaving it unhandled
  const ready = done.then(() => {});
  ready.catch(() => {});
  return { ready, done, undo: () => undo() };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function logLinkReport(fault: LogFault | null, info: FaultInfo | null, ll: any): LogLinkReport {
  const link = (ll?.link ?? {}) as Record<string, number>;
  const cl = (ll?.client ?? {}) as Record<string, number>;
  const n = (v: number | undefined) => (typeof v === 'number' ? v : 0);
  return {
    fault, faultAtMs: info?.atMs ?? -1, faultReadyAt: info?.readyAt ?? -1,
    ...(info?.impairment ? { impairment: info.impairment } : {}),
    ...(info?.downLink ? { downLink: info.downLink } : {}),
    ...(info?.restartMs !== undefined ? { restartMs: info.restartMs } : {}),
    peer: String(ll?.peer ?? 'unknown'), path: n(ll?.path),
    datagramsOut: n(link.datagramsOut), retransmitted: n(link.retransmitted), rejectsSent: n(link.rejectsSent),
    rejectsReceived: n(link.rejectsReceived), duplicates: n(link.duplicates), replayed: n(link.replayed),
    pathSwitches: n(link.pathSwitches), resyncs: n(link.resyncs), peerResyncs: n(link.peerResyncs),
    reconnects: n(cl.reconnects), serverRestarts: n(cl.serverRestarts), reRegistrations: n(cl.reRegistrations),
    lostMessages: n(cl.lostMessages), bytesResent: n(cl.bytesResent), failures: n(cl.failures),
  };
}

/** Why the counters do not show the fault, or null when they do. */
export function faultTrace(l: LogLinkReport): string | null {
  switch (l.fault) {
    case 'log-loss':
      // Any trace of the impairment: a loss repaired (retransmission, REJECT) or a duplicate
      // dropped. A drill with little log traffic (tiny-rcvbuf: a few MB at a crawl) can see
      // no loss at 3 % and still the duplicates; with none of them the fault did not act.
      // Below 200 datagrams (a download or tiny-rcvbuf drill logs a 21-byte request) a clean
      // run is likely enough (P ≈ 0.95^n) that it proves nothing either way: not judged.
      if (l.datagramsOut < 200) return null;
      return l.retransmitted + l.rejectsSent + l.rejectsReceived + l.duplicates > 0 ? null : 'no retransmission, REJECT or duplicate on the log link';
    case 'log-path-down':
      return l.pathSwitches > 0 ? null : 'no path switch on the log link';
    case 'log-restart':
      return l.serverRestarts > 0 && l.reRegistrations > 0 ? null : 'the gateway saw no log server restart / re-registration';
    default:
      return null;
  }
}

export function formatLogLink(l: LogLinkReport): string[] {
  const at = l.faultAtMs < 0 ? 'not applied' : `at ${l.faultAtMs} ms`;
  const detail = l.impairment ? `, ${l.impairment}` : l.downLink ? `, link ${l.downLink} down` : l.restartMs !== undefined ? `, gateway back with the new server ${l.restartMs} ms after the kill` : '';
  return [
    '',
    `  log link (remote log server): fault ${l.fault ?? 'none'}${l.fault ? ` (${at}${detail})` : ''}; peer ${l.peer}, on link ${l.path + 1}`,
    `    link:   ${l.datagramsOut} datagrams out, ${l.retransmitted} retransmitted, REJECTs ${l.rejectsSent} sent / ${l.rejectsReceived} received, ${l.duplicates} duplicates, ${l.replayed} replayed, ${l.pathSwitches} path switches, ${l.resyncs} resyncs (peer ${l.peerResyncs})`,
    `    client: ${l.reconnects} reconnects, ${l.serverRestarts} server restarts, ${l.reRegistrations} re-registrations, ${l.lostMessages} messages lost, ${(l.bytesResent / 1e6).toFixed(1)} MB resent, ${l.failures} FAILED`,
  ];
}
