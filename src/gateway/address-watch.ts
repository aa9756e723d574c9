/**
 * A standby's own trigger for its takeover (`ftcp gateway --standby --takeover-on-address`):
 * keepalived puts the virtual addresses on this host's interfaces when it becomes MASTER, so the
 * address appearing IS the decision; the gateway sees it within `periodMs` and takes over at
 * once, without waiting for the notify hook to start a process (`ftcp gateway takeover`: a Node
 * start and its imports, 0.4-0.7 s on a busy host, on the failover's critical path; measured in
 * BENCHMARKS.md "Gateway failover"). The hook still runs, and its takeover is then answered with
 * this one's report (idempotent); the release stays the hook's (BACKUP, FAULT).
 *
 * It fires on an edge: an address of `addrs` on an interface now, none at the previous look
 * (the first look counts as none: a gateway started on the master host takes over). A takeover
 * that fails re-arms the edge after `retryMs`, so a present address is tried again, bounded.
 */
import { networkInterfaces } from 'node:os';

/** The IPv4 addresses on this host's (namespace's) interfaces now. */
export function hostAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4') out.add(a.address);
  return out;
}

export interface AddressWatchOptions {
  /** How often to look (ms). */
  periodMs?: number;
  /** After a failed takeover, when the present address may fire again (ms). */
  retryMs?: number;
  /** The addresses now (tests inject theirs). */
  read?: () => Set<string>;
}

export const ADDRESS_WATCH_MS = Object.freeze({ period: 10, retry: 1000 });

export class AddressWatch {
  private present = false;
  private timer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Edges seen (takeovers asked). */
  fired = 0;
  readonly periodMs: number;
  private readonly retryMs: number;
  private readonly read: () => Set<string>;

  constructor(readonly addrs: readonly string[], private readonly onAppear: () => Promise<unknown>, opts: AddressWatchOptions = {}) {
    this.periodMs = opts.periodMs ?? ADDRESS_WATCH_MS.period;
    this.retryMs = opts.retryMs ?? ADDRESS_WATCH_MS.retry;
    this.read = opts.read ?? hostAddresses;
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.look(), this.periodMs);
    this.timer.unref();
    this.look();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.timer = this.retryTimer = null;
  }

  /** One look: fires on the absent → present edge. */
  look(): void {
    let now: boolean;
    try {
      const have = this.read();
      now = this.addrs.some((a) => have.has(a));
    } catch {
      return; // an unreadable interface list is no decision
    }
    const edge = now && !this.present;
    this.present = now;
    if (!edge) return;
    this.fired++;
    this.onAppear().catch(() => {
      // Failed (the takeover logged why): the address may still be here; look again later.
      if (this.retryTimer !== null) clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => { this.retryTimer = null; this.present = false; }, this.retryMs);
      this.retryTimer.unref();
    });
  }
}
