/**
 * A LogStore whose stability the test drives by hand: `stabilize(id, n)` fires the
 * stability upcall. Appends are recorded so tests can check what reached the log.
 * State records (setState) are recorded too, and stable at once unless `holdStates` is set:
 * then each call's promise waits for `releaseStates()` (or `failHeldStates()`).
 */
import type { ConnectionRecord, ConnectionState, Endpoint, LogStatus, LogStore, OpenMeta, StabilityListener, StatusListener } from '../../src/log/types.js';

export class ManualLog implements LogStore {
  readonly opened: OpenMeta[] = [];
  readonly appends: Array<{ id: number; offset: number; data: Buffer }> = [];
  readonly fins: Array<{ id: number; offset: number }> = [];
  readonly closed: number[] = [];
  private stable = new Map<number, number>();
  private listener: StabilityListener = () => {};
  private nextId = 1;

  /** The metadata of each open connection (listActive), by id. */
  private readonly metas = new Map<number, OpenMeta & { created: number }>();
  async open(meta: OpenMeta): Promise<number> {
    this.opened.push(meta);
    const id = this.nextId++;
    this.stable.set(id, 0);
    this.metas.set(id, { ...meta, created: 0 });
    return id;
  }
  append(id: number, offset: number, data: Uint8Array): void {
    this.appends.push({ id, offset, data: Buffer.from(data) });
  }
  appendFin(id: number, offset: number): void {
    this.fins.push({ id, offset });
  }
  /** Every setState call, in order. */
  readonly states: Array<{ id: number; state: ConnectionState }> = [];
  holdStates = false;
  private readonly heldStates: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  setState(id: number, state: ConnectionState): Promise<void> {
    this.states.push({ id, state });
    if (!this.holdStates) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.heldStates.push({ resolve, reject }));
  }
  /** The held setState calls become stable (their promises resolve). Returns how many. */
  releaseStates(): number {
    const held = this.heldStates.splice(0);
    for (const h of held) h.resolve();
    return held.length;
  }
  /** The held setState calls fail with `err`. */
  failHeldStates(err: unknown): number {
    const held = this.heldStates.splice(0);
    for (const h of held) h.reject(err);
    return held.length;
  }
  onStable(l: StabilityListener): void {
    this.listener = l;
  }
  onStatus(_l: StatusListener): void {}
  stabilize(id: number, n: number): void {
    this.stable.set(id, n);
    this.listener(id, n);
  }
  /** The bytes appended for `id`, assembled by offset (gap-free prefix). */
  bytes(id: number): Buffer {
    const parts = this.appends.filter((a) => a.id === id).sort((a, b) => a.offset - b.offset);
    const out: Buffer[] = [];
    let at = 0;
    for (const p of parts) {
      if (p.offset > at) break;
      if (p.offset + p.data.length <= at) continue;
      out.push(p.data.subarray(at - p.offset));
      at = p.offset + p.data.length;
    }
    return Buffer.concat(out);
  }
  /**
   * Every connection not closed, as a durable store lists it for a restarted gateway: its
   * metadata, its stable point (as the test drove it), its FIN, its latest state record.
   */
  listActive(): ConnectionRecord[] {
    const out: ConnectionRecord[] = [];
    for (const [id, m] of this.metas) {
      if (this.closed.includes(id)) continue;
      const fin = this.fins.find((f) => f.id === id);
      const st = this.states.filter((x) => x.id === id).pop();
      out.push({
        id, ...m, clientIsn: m.clientIsn >>> 0, serverIsn: m.serverIsn >>> 0, stable: this.stable.get(id) ?? 0,
        finOffset: fin?.offset ?? null, gcThrough: 0, modified: 0, state: st?.state ?? null,
      });
    }
    return out;
  }
  queryEndpoint(_c: Endpoint, _s?: Endpoint): ConnectionRecord | undefined {
    return undefined;
  }
  async read(id: number, start: number, end: number): Promise<Buffer> {
    return this.bytes(id).subarray(start, end);
  }
  gc(): void {}
  close(id: number): void {
    this.closed.push(id);
  }
  status(): LogStatus {
    return 'OK';
  }
  registerServices(): void {}
  setIdleExpiry(): void {}
  async shutdown(): Promise<void> {}
}
