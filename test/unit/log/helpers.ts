/** Shared helpers for the log tests (not a test file itself). */
import type { ConnectionState, IncarnationState, LogStore, OpenMeta, StabilityListener } from '../../../src/log/types.js';

/** A deterministic pseudo-random stream: byte i of stream `seed`. */
export function streamBytes(seed: number, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(Math.max(0, end - start));
  for (let i = start; i < end; i++) {
    let x = Math.imul((i ^ seed) >>> 0, 2654435761) >>> 0;
    x ^= x >>> 15;
    x = Math.imul(x, 0x2c1b3c6d) >>> 0;
    x ^= x >>> 12;
    out[i - start] = x & 0xff;
  }
  return out;
}

let port = 20000;
/** Connection metadata with a fresh client port (server 10.9.0.2:80 unless given). */
export function openMeta(over: Partial<OpenMeta> = {}): OpenMeta {
  port = port >= 65000 ? 20000 : port + 1;
  return {
    client: { addr: '10.9.0.1', port },
    server: { addr: '10.9.0.2', port: 80 },
    clientIsn: 0xfffffff0,
    serverIsn: 12345,
    clientSynOptions: Uint8Array.from([2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]),
    serverSynOptions: Uint8Array.from([2, 4, 5, 0xb4, 1, 3, 3, 7]),
    ...over,
  };
}

/** Polls `cond` every few ms; rejects after `ms`. */
export async function waitFor(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Lets a few event-loop turns pass (so a disk store may commit what it has). */
export async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 1));
}

/** Records every stability call; tells the latest stable point per id. */
export class StableRecorder {
  readonly calls: [number, number][] = [];
  readonly latest = new Map<number, number>();
  /** Extra check run on every call (e.g. "never covers a gap"). */
  check: StabilityListener | undefined;
  constructor(log: LogStore) {
    log.onStable((id, stable) => {
      this.calls.push([id, stable]);
      this.latest.set(id, stable);
      this.check?.(id, stable);
    });
  }
  stable(id: number): number {
    return this.latest.get(id) ?? 0;
  }
  callsFor(id: number): number[] {
    return this.calls.filter(([i]) => i === id).map(([, s]) => s);
  }
  until(id: number, target: number, ms = 5000): Promise<void> {
    return waitFor(() => this.stable(id) >= target, ms, `stable(${id}) >= ${target} (is ${this.stable(id)})`);
  }
}

/** State records of one rebuild (src/log/state.ts): masked, replaying into an incarnation, live in it. */
export const STATE_INCARNATION: IncarnationState = {
  serverIsn: 0x0badf00d, seqDelta: 0x84521ff3, tsDelta: 500_002,
  server: { addr: '10.9.0.2', port: 80 }, serverSidePort: 40000, oldShift: 7, newShift: 9,
};
export const STATE_MASKED: ConnectionState = { update: 1, phase: 'MASKED', crashes: 1, incarnations: [] };
export const STATE_REPLAY: ConnectionState = { update: 2, phase: 'REPLAY', crashes: 1, incarnations: [STATE_INCARNATION] };
export const STATE_LIVE: ConnectionState = { update: 3, phase: 'LIVE', crashes: 1, incarnations: [STATE_INCARNATION] };
