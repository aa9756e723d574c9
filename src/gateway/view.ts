/**
 * What the gateway's readers see of it: `ftcp status` / GET /status (snapshot.ts) and /metrics
 * (metrics.ts) read a GatewayView; the control endpoint and the standby state machine are seen
 * by the gateway as a ControlView and a StandbyView. Declared apart from gateway.ts, which
 * implements the one and reads the others, so that no file of this folder and gateway.ts
 * import each other: gateway.ts is the one place that wires them (Gateway.snapshot, .metrics).
 */
import type { FlowTable } from '../flow/table.js';
import type { SouthWrapper } from '../wrappers/south.js';
import type { WrapperDrops } from '../wrappers/contract.js';
import type { DropCounters } from '../wire/packet.js';
import type { NorthWrapper } from '../recovery/engine.js';
import type { CrashMasking } from '../recovery/verdict.js';
import type { VnetPath } from './offload.js';
import type { AdoptionStats } from './adopt.js';
import type { AdoptGate } from './adopt-gate.js';
import type { FencedState } from './fence.js';

/**
 * Whether this gateway carries protected traffic: 'active', or not: 'fenced' (another gateway
 * claimed the log: fence.ts), 'standby' (a --standby gateway before its takeover or after a
 * release: standby.ts). Not active, it forwards no protected packet and makes none, each
 * dropped and counted (FENCED, STANDBY); unprotected traffic passes.
 */
export type GatewayRole = 'active' | 'standby' | 'fenced';

export type ChecksumPolicy = 'verify' | 'trust';

export type LogFailurePolicy = 'stall' | 'passthrough';

export class GatewayStats {
  batches = 0;
  packets = 0;
  protectedPackets = 0;
  unprotectedTcp = 0;
  icmp = 0;
  otherIpv4 = 0;
  fragments = 0;
  ipv6 = 0;
  dropped = 0;
  writeShort = 0;
  emitted = 0;
  icmpSuppressed = 0;
  /** Exceptions caught on a packet path, an upcall or a timer (each dropped its packet or event). */
  internalErrors = 0;
}

/** What status and metrics read of the gateway (Gateway implements it; the log is passed beside it). */
export interface GatewayView {
  readonly stats: GatewayStats;
  readonly drops: DropCounters;
  readonly wrapperDrops: WrapperDrops;
  readonly table: FlowTable;
  readonly south: SouthWrapper;
  readonly north: NorthWrapper;
  readonly masking: CrashMasking;
  readonly vnet: VnetPath | null;
  readonly adoption: AdoptionStats;
  readonly adoptGate: AdoptGate;
  readonly startedAt: number;
  readonly role: GatewayRole;
  readonly standby: StandbyView | null;
  readonly startState: Record<string, unknown> | null;
  /** The TUN device's name. */
  readonly tunName: string;
  readonly epoch: number | null;
  readonly fenced: FencedState | null;
  readonly onLogFailure: LogFailurePolicy;
  readonly logFailures: number;
  readonly unprotected: ReadonlySet<number>;
  readonly boundStats: { readonly connection: number; readonly total: number; readonly deferred: number };
  readonly checksums: ChecksumPolicy;
  readonly control: ControlView | null;
}

/**
 * What the gateway reads of its control endpoint (control.ts serves the gateway and sets
 * `gateway.control`); declared here, so that the two files do not import each other.
 */
export interface ControlView {
  readonly stats: object;
  readonly limits: Readonly<Record<string, number>>;
  readonly tokenRequired: boolean;
  address(): { address: string; port: number };
  connections(): number;
}

/** What the gateway reads of its standby state machine (standby.ts), declared here for the same reason. */
export interface StandbyView {
  readonly follow: { readonly followed: number; readonly refreshes: number; readonly failures: number; readonly lastRefreshAt: number | null };
  readonly takeovers: number;
  readonly takeoverFailures: number;
  readonly releases: number;
  readonly lastTakeover: { readonly totalMs: number } | null;
  describe(): Record<string, unknown>;
  limits(): Record<string, number>;
}
