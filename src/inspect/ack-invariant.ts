/**
 * The invariant checked from outside (DESIGN.md §2): no ack that reaches the client may
 * exceed what the log held stably at that moment.
 *
 * Input: a capture taken at the client's interface (pcap, any link type readPcap knows)
 * and the gateway's stability trace (`ftcp gateway --stability-trace`): one line per
 * stable-point advance, `<realtime ns> <client ip:port> <server port> <client ISN> <stable>`.
 * Both are stamped with CLOCK_REALTIME; the gateway records an advance before it sends
 * anything that relies on it, and the capture stamps a packet after the gateway wrote it,
 * so an ack stamped at t must satisfy ack ≤ stable(t).
 *
 * This file holds the rule: the trace's format and the stable point at a time. The check
 * itself runs inside inspectCapture's pass over the capture (inspect.ts; checkAckInvariant
 * there gives its whole-capture report), where acks are unwrapped to stream offsets like
 * every other sequence number, so it holds for streams past 2^31 and 2^32 bytes.
 */

export interface TraceEntry {
  tNs: bigint;
  stable: number;
}

/** Parses a stability trace into per-connection series keyed "<client ip:port> <server port> <client ISN>". */
export function parseStabilityTrace(text: string): Map<string, TraceEntry[]> {
  const out = new Map<string, TraceEntry[]>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [t, client, sport, isn, stable] = line.split(' ');
    if (!t || !client || !sport || !isn || stable === undefined) continue;
    const key = `${client} ${sport} ${isn}`;
    let arr = out.get(key);
    if (!arr) out.set(key, (arr = []));
    arr.push({ tNs: BigInt(t), stable: Number(stable) });
  }
  for (const arr of out.values()) arr.sort((a, b) => (a.tNs < b.tNs ? -1 : a.tNs > b.tNs ? 1 : 0));
  return out;
}

export interface AckViolation {
  connection: string;
  tNs: bigint;
  ack: number;
  stableAtThatTime: number;
}

/** The check over a whole capture (InspectReport.ackInvariant, checkAckInvariant). */
export interface AckInvariantReport {
  /** Server→client acks checked. */
  checked: number;
  connections: number;
  violations: AckViolation[];
  /** Acks whose connection's client ISN the capture does not tell (no SYN or SYN-ACK: not checkable). */
  unchecked: number;
}

/**
 * stable(t) of one connection's series, for times that do not go back: the series is
 * walked forward once. The stable point never moves back (a lower entry is ignored).
 */
export class StableCursor {
  private i = 0;
  private stable = 0;

  constructor(private readonly series: readonly TraceEntry[]) {}

  /** The stable point at `tNs` (0 before the first entry). */
  at(tNs: bigint): number {
    const series = this.series;
    while (this.i < series.length && series[this.i]!.tNs <= tNs) {
      if (series[this.i]!.stable > this.stable) this.stable = series[this.i]!.stable;
      this.i++;
    }
    return this.stable;
  }
}
