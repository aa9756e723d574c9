/**
 * The flow table: the protected services and, per service, its connections.
 *
 * Lookups on the hot path build no strings: a service is found by the number
 * `ip * 65536 + port`, and a connection within a service by `clientIp * 65536 + clientPort`
 * (both below 2^48, exact in a double).
 *
 * Half-open connections (handshake not complete) are also kept in one list, oldest latest
 * handshake segment first (an intrusive doubly linked list through the flows): expiry walks it
 * from the head only as far as flows are due, and eviction at the cap takes the head, so both
 * are O(1) per flow however many flows a SYN flood left (no scan of the table).
 *
 *   halfOpenHead ⇄ … ⇄ halfOpenTail        (halfOpenAt ascending: touched flows move to the tail)
 */
import { Flow } from './flow.js';
import { u32ToIp } from '../wire/addr.js';

export interface ServiceSpec {
  readonly ip: number;
  readonly port: number;
}

export class Service {
  readonly flows = new Map<number, Flow>();
  constructor(readonly ip: number, readonly port: number, readonly index: number) {}
}

/** A service as operators write it: `198.18.2.2:5001` (status, logs, the divergence policies, the supervisor's notices). */
export function serviceName(s: ServiceSpec): string {
  return `${u32ToIp(s.ip)}:${s.port}`;
}

export function endpointKey(ip: number, port: number): number {
  return ip * 65536 + port;
}

export class FlowTable {
  private readonly services = new Map<number, Service>();
  private readonly byLogId = new Map<number, Flow>();
  private count = 0;
  private hoHead: Flow | null = null;
  private hoTail: Flow | null = null;
  private hoCount = 0;

  constructor(specs: readonly ServiceSpec[]) {
    specs.forEach((s, i) => {
      const key = endpointKey(s.ip, s.port);
      if (!this.services.has(key)) this.services.set(key, new Service(s.ip, s.port, i));
    });
  }

  /** The protected service at ip:port, if any. */
  service(ip: number, port: number): Service | undefined {
    return this.services.get(ip * 65536 + port);
  }

  allServices(): Service[] {
    return [...this.services.values()];
  }

  get size(): number {
    return this.count;
  }

  get(svc: Service, clientIp: number, clientPort: number): Flow | undefined {
    return svc.flows.get(clientIp * 65536 + clientPort);
  }

  add(svc: Service, flow: Flow): void {
    const old = svc.flows.get(flow.key);
    if (old) this.remove(svc, old);
    svc.flows.set(flow.key, flow);
    this.count++;
  }

  bindLogId(flow: Flow, id: number): void {
    flow.logId = id;
    this.byLogId.set(id, flow);
  }

  byLog(id: number): Flow | undefined {
    return this.byLogId.get(id);
  }

  /**
   * Makes `flow` also found under client port `port` (a rebuilt connection moved to a fresh
   * port toward the new incarnation). Aliases do not count as connections.
   */
  alias(svc: Service, flow: Flow, port: number): boolean {
    const key = flow.clientIp * 65536 + port;
    const cur = svc.flows.get(key);
    if (cur !== undefined && cur !== flow) return false;
    svc.flows.set(key, flow);
    (flow.aliases ??= []).push(key);
    return true;
  }

  unalias(svc: Service, flow: Flow): void {
    if (flow.aliases === null) return;
    for (const k of flow.aliases) if (svc.flows.get(k) === flow) svc.flows.delete(k);
    flow.aliases = null;
  }

  remove(svc: Service, flow: Flow): void {
    this.leaveHalfOpen(flow);
    this.unalias(svc, flow);
    if (svc.flows.get(flow.key) === flow) {
      svc.flows.delete(flow.key);
      this.count--;
    }
    if (flow.logId >= 0 && this.byLogId.get(flow.logId) === flow) this.byLogId.delete(flow.logId);
  }

  // ---- the half-open list ------------------------------------------------------------

  /** Half-open connections in the table. */
  get halfOpenCount(): number {
    return this.hoCount;
  }

  /** The half-open connection whose latest handshake segment is the oldest, or null. */
  oldestHalfOpen(): Flow | null {
    return this.hoHead;
  }

  /** Puts `flow` at the tail of the half-open list (added, or moved there: a new handshake segment at `now`). */
  touchHalfOpen(flow: Flow, now: number): void {
    if (flow.halfOpenListed) this.unlink(flow);
    flow.halfOpenAt = now;
    flow.halfOpenListed = true;
    flow.halfOpenNext = null;
    flow.halfOpenPrev = this.hoTail;
    if (this.hoTail !== null) this.hoTail.halfOpenNext = flow;
    else this.hoHead = flow;
    this.hoTail = flow;
    this.hoCount++;
  }

  /** Takes `flow` out of the half-open list (its handshake completed, or it is released). */
  leaveHalfOpen(flow: Flow): void {
    if (flow.halfOpenListed) this.unlink(flow);
  }

  private unlink(flow: Flow): void {
    const { halfOpenPrev: prev, halfOpenNext: next } = flow;
    if (prev !== null) prev.halfOpenNext = next;
    else this.hoHead = next;
    if (next !== null) next.halfOpenPrev = prev;
    else this.hoTail = prev;
    flow.halfOpenPrev = flow.halfOpenNext = null;
    flow.halfOpenListed = false;
    this.hoCount--;
  }

  /** Every connection once (aliases skipped). */
  *flows(): IterableIterator<[Service, Flow]> {
    for (const svc of this.services.values()) for (const [k, f] of svc.flows) if (k === f.key) yield [svc, f];
  }
}
