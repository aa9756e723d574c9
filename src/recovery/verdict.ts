/**
 * Crash detection (DESIGN.md §3.3, §4): a server FIN or RST on a protected connection is held
 * until the liveness verdict, because a dying process closes its sockets too.
 *
 *   server FIN/RST ──▶ held (copy) ──▶ oracle.waitVerdict(service, bound)
 *                                         ├─ 'alive'   → released: the server closed or aborted on purpose
 *                                         ├─ 'dead'    → suppressed; every connection of the service masked
 *                                         └─ 'unknown' → the policy: `--assume-crash-on rst` treats a
 *                                                        RST as a crash, anything else passes
 *   oracle 'crashed' / 'silent'  ──▶ crash(service) at once (no need to wait for a FIN)
 *   oracle 'listening'           ──▶ the rebuilds start
 *
 * Without a supervisor (no oracle, or one that never heard of the service), `--assume-crash-on
 * rst` makes every server RST a crash and FINs pass at once; with neither, nothing is held.
 * The hold is bounded by `holdMs` (default: two heartbeats and a little).
 */
import type { Flow } from '../flow/flow.js';
import { serviceName, type FlowTable, type Service } from '../flow/table.js';
import type { PacketInfo } from '../wire/packet.js';
import { TCP_MIN_HEADER, TCP_OFF_FLAGS, TCP_OFF_SEQ, TCP_RST } from '../wire/tcp.js';
import { ipv4HeaderLen, readU32 } from '../wire/ipv4.js';
import { ipToU32 } from '../wire/addr.js';
import type { NorthWrapper } from './engine.js';
import { northOf, peekNorth } from './rebuild.js';

/** The liveness oracle's answer about a service (not src/wire/packet.ts's packet Verdict). */
export type LivenessVerdict = 'alive' | 'dead' | 'unknown';
export type CrashPolicy = 'none' | 'rst';

/** What the gateway needs from a liveness oracle (src/supervisor/oracle.ts is one). */
export interface LivenessSource {
  waitVerdict(service: string, timeoutMs: number, settle?: boolean, minGapMs?: number): Promise<LivenessVerdict>;
  state(service: string): string;
  on(ev: 'crashed' | 'silent' | 'listening', fn: (service: string) => void): unknown;
  /** Notice counters (accepted, replayed, superseded crashes, …), shown in status and metrics. */
  readonly counters?: object;
  /**
   * The service's state and the incarnation last heard (src/supervisor/oracle.ts has it): what
   * durable records bind a connection to, and what a restarted gateway checks adopted ones
   * against (src/gateway/adopt-gate.ts). Without it, neither.
   */
  info?(service: string): { readonly state: string; readonly boot: string | null; readonly generation: number };
}

export class VerdictStats {
  held = 0;
  heldDuplicates = 0;
  releasedAlive = 0;
  suppressed = 0;
  policyCrashes = 0;
}

export class CrashMasking {
  readonly stats = new VerdictStats();

  constructor(
    private readonly table: FlowTable,
    private readonly north: NorthWrapper,
    private readonly oracle: LivenessSource | null,
    private readonly policy: CrashPolicy,
    private readonly holdMs: number,
    /** A notice saying alive counts only if accepted this long after the hold began. */
    private readonly minGapMs = 25,
  ) {
    if (oracle !== null) {
      const down = (why: string) => (name: string) => {
        const svc = this.byName(name);
        if (svc) this.north.crash(svc, why);
      };
      oracle.on('crashed', down('supervisor: crashed'));
      oracle.on('silent', down('supervisor: silent'));
      oracle.on('listening', (name) => {
        const svc = this.byName(name);
        if (svc) this.north.listening(svc);
      });
    }
  }

  get enabled(): boolean {
    return this.oracle !== null || this.policy !== 'none';
  }

  private byName(name: string): Service | undefined {
    const i = name.lastIndexOf(':');
    try {
      return this.table.service(ipToU32(name.slice(0, i)), Number(name.slice(i + 1)));
    } catch {
      return undefined; // not an IPv4 service name
    }
  }

  /** The oracle says the service listens now (for a tick that missed the event). */
  serviceListening(svc: Service): boolean {
    return this.oracle !== null && this.oracle.state(serviceName(svc)) === 'LISTENING';
  }

  /**
   * The verdict stage, called by the gateway for a server FIN or RST the south wrapper accepted
   * (SouthEvents.finOrRst). Returns true when the segment was taken (held or suppressed): the
   * gateway drops it. When the verdict says alive, the held segments go to `release` (the
   * gateway's: each goes through the south wrapper again, skipping this stage).
   */
  hold(svc: Service, flow: Flow, buf: Buffer, p: PacketInfo, release: (svc: Service, buf: Buffer) => void): boolean {
    const n = northOf(flow);
    // A service no supervisor ever spoke for is judged by the policy alone (no hold).
    if (this.oracle === null || (n.verdictHold === null && this.oracle.state(serviceName(svc)) === 'UNKNOWN')) {
      if (this.policy === 'rst' && p.flags & TCP_RST) {
        this.stats.policyCrashes++;
        this.stats.suppressed++;
        this.north.crash(svc, 'policy: a server RST means a crash');
        return true;
      }
      return false;
    }
    if (n.verdictHold !== null) {
      // A retransmission of a held segment is dropped: released twice, the second copy would
      // reach a client already in TIME_WAIT, whose ACK the closed server answers with a RST.
      // Each held copy read at its own header length (a copy is a whole IP packet; a new
      // segment with IP options has another one: reading a held copy at the new segment's
      // offsets ran past its end and threw in the TUN reader, issue 11 item 1).
      const dup = n.verdictHold.some((h) => {
        const l4 = ipv4HeaderLen(h, 0);
        return h.length === p.totalLen && h.length >= l4 + TCP_MIN_HEADER && readU32(h, l4 + TCP_OFF_SEQ) === p.seq &&
          h[l4 + TCP_OFF_FLAGS] === p.flags;
      });
      if (!dup && n.verdictHold.length < 8) n.verdictHold.push(Buffer.from(buf.subarray(p.ipOff, p.ipOff + p.totalLen)));
      else this.stats.heldDuplicates++;
      return true;
    }
    const copy = Buffer.from(buf.subarray(p.ipOff, p.ipOff + p.totalLen));
    n.verdictHold = [copy];
    this.stats.held++;
    const hold = n.verdictHold;
    // settle: a heartbeat already in flight when the process died must not pass its FIN.
    void this.oracle.waitVerdict(serviceName(svc), this.holdMs, true, this.minGapMs).then((v) => {
      if (n.verdictHold !== hold) return; // a crash took it meanwhile
      n.verdictHold = null;
      let verdict = v;
      if (verdict === 'unknown') verdict = this.policy === 'rst' && hold.some((b) => isRst(b)) ? 'dead' : 'alive';
      if (verdict === 'dead') {
        this.stats.suppressed += hold.length;
        this.north.crash(svc, 'a server FIN/RST, and the supervisor says the process died');
        return;
      }
      this.stats.releasedAlive += hold.length;
      for (const b of hold) release(svc, b);
    });
    return true;
  }

  /** The flow left the table: a FIN/RST held for it is never released (it would be judged against another flow). */
  forget(flow: Flow): void {
    const n = peekNorth(flow); // nothing to forget without a record
    if (n !== null) n.verdictHold = null;
  }

  describe(): Record<string, unknown> {
    const notices = this.oracle?.counters;
    return { oracle: this.oracle !== null, policy: this.policy, ...this.stats, ...(notices !== undefined ? { notices } : {}) };
  }
}


function isRst(b: Buffer): boolean {
  return (b[ipv4HeaderLen(b, 0) + TCP_OFF_FLAGS]! & TCP_RST) !== 0;
}
