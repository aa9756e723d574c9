/**
 * A fault of the gateway itself, as `ftcp drill` runs it: gateway-kill (gwkill.ts, the process
 * killed and restarted in place) and gateway-failover (gwfailover.ts, the primary host's death
 * and the standby's takeover). drill.ts drives either through this one shape, never asking
 * which it has:
 *
 *   arm() ─ clients start ─ kill() ··· restart()  (or killAndRestart(), placed by `place`
 *                                                   around crash 1; untilCaughtUp() for :before)
 *         ─ clients done ─ afterClients() ─ status() ─ finish(): the report and its failures
 *
 * The report's type is the fault's own (`Fields`: its entry in the drill's report, e.g.
 * { gatewayKill: GatewayKillReport }), so this file names neither fault.
 */

/** Where a gateway fault is placed around crash 1 in drill.ts (the part of its name after the colon). */
export type FaultPlace = 'plain' | 'before' | 'outage' | 'rebuild';

/** The place of a gateway fault (gateway-kill's or gateway-failover's): the part after the colon. */
export function faultPlace(fault: string): FaultPlace {
  const w = fault.slice(fault.indexOf(':') + 1);
  return fault.includes(':') && (w === 'before' || w === 'outage' || w === 'rebuild') ? w : 'plain';
}

/** What only the end of the drill knows, for finish(). */
export interface FaultEnd {
  /** The client-side capture, the servers' ports and the client's address (u32). */
  pcap: Buffer;
  serverPorts: readonly number[];
  clientIp: number;
  /** The stability trace (both gateways' lines in one file). */
  traceText: string;
  /** The active gateway's status at the end (status()). */
  status: unknown;
}

export interface GatewayFault<Fields extends object> {
  readonly place: FaultPlace;
  /** Before the clients start. */
  arm(): Promise<void>;
  /** The gateway dies now (`clientsAt`: the clients' start, epoch ms, for the report). */
  kill(clientsAt: number): Promise<void>;
  /** Waits until a gateway carries the connections again (or records why none does). */
  restart(): Promise<void>;
  killAndRestart(clientsAt: number): Promise<void>;
  /** :before: waits (bounded) until the crash at `crashAt` has been recovered; the gateway's status then. */
  untilCaughtUp(crashAt: number, services: number): Promise<unknown>;
  /** Once the clients are done, before the gateway's status is read and the lab goes down. */
  afterClients(): Promise<void>;
  /** The status of the gateway active now. */
  status(): Promise<unknown>;
  /** The fault's report (its entry in the drill's report) and its failures (empty: it held). */
  finish(end: FaultEnd): Promise<{ fields: Fields; failures: string[] }>;
}
