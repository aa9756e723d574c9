/**
 * One log server (src/log/remote/server.ts) in process and any number of gateways' RemoteLogs,
 * each on its own simulated network (src/link/sim.ts: two endpoints per network), in virtual
 * time. `step()` advances every network by 2 ms and lets the event loop turn; `until()` steps
 * until a condition; `background()` keeps stepping while a test awaits something else (a
 * gateway's adoption, the fake-TUN harness's rounds).
 *
 *   RemoteLog A ── sim A ──▶ peer A ─┐
 *   RemoteLog B ── sim B ──▶ peer B ─┼─▶ LogServer ─▶ store (memory | disk)
 *
 * A server restart (`restartServer`) builds a new LogServer on the store given and attaches
 * a fresh endpoint (a new boot id) on every network, as a restarted process would have.
 * `remoteHarness` puts a fake-TUN gateway on one of them; `runUntil` routes until a condition.
 */
import { SimNetwork } from '../../src/link/sim.js';
import type { LinkEndpoint } from '../../src/link/endpoint.js';
import { decode, encodeRequest, T_REPLY, T_STABLE, T_STATUS, type Reply, type Request, type StatusMsg } from '../../src/log/remote/protocol.js';
import { RemoteLog } from '../../src/log/remote/client.js';
import { LogServer } from '../../src/log/remote/server.js';
import type { EpochStore } from '../../src/log/remote/epochs.js';
import type { LogStore } from '../../src/log/types.js';
import { Harness, FakeOracle, type Client, type Server } from './gateway-harness.js';
import type { ManualLog } from './manual-log.js';

export const LINK_KEY = Buffer.from('remote-log-fence-test-key-012345');

export class RemoteWorld {
  readonly sims: SimNetwork[] = [];
  /** Per network: its gateway's client (null: a raw peer, see raw()). */
  readonly clients: (RemoteLog | null)[] = [];
  server: LogServer;
  private seed: number;

  constructor(store: LogStore, private epochs?: EpochStore, seed = 11) {
    this.seed = seed;
    this.server = new LogServer({ store, ...(epochs ? { epochs } : {}) });
  }

  /** A new gateway's log client, on a network of its own to the server. */
  gateway(): RemoteLog {
    const sim = new SimNetwork({ seed: this.seed++ });
    const client = new RemoteLog({ manualClock: true, failAfterMs: 1500, stallResyncMs: 300, requestTimeoutMs: 300 });
    client.attach(sim.addEndpoint('a', { key: LINK_KEY, ...client.handlers }));
    this.server.attachPeer((h) => sim.addEndpoint('b', { key: LINK_KEY, ...h }));
    this.sims.push(sim);
    this.clients.push(client);
    return client;
  }

  /** A gateway speaking the protocol by hand (hostile or old ones): what it is sent is recorded. */
  raw(): RawPeer {
    const sim = new SimNetwork({ seed: this.seed++ });
    const peer = new RawPeer(this);
    peer.ep = sim.addEndpoint('a', {
      key: LINK_KEY, onMessage: (m) => peer.received(m), onLost: () => {}, onPeerState: () => {}, onWritable: () => {},
    });
    this.server.attachPeer((h) => sim.addEndpoint('b', { key: LINK_KEY, ...h }));
    this.sims.push(sim);
    this.clients.push(null);
    return peer;
  }

  /** The log server process restarts on `store` (its epochs from `epochs`). */
  restartServer(store: LogStore, epochs?: EpochStore): LogServer {
    if (epochs) this.epochs = epochs;
    this.server = new LogServer({ store, ...(this.epochs ? { epochs: this.epochs } : {}) });
    for (const sim of this.sims) this.server.attachPeer((h) => sim.addEndpoint('b', { key: LINK_KEY, ...h }));
    return this.server;
  }

  /** The link boot id of a gateway's client (what the server knows it by: its epoch's holder). */
  bootOf(client: RemoteLog): number {
    const i = this.clients.indexOf(client);
    if (i < 0) throw new Error('not a gateway of this world');
    return this.sims[i]!.endpoint('a').bootId;
  }

  get now(): number {
    return this.sims[0]?.now ?? 0;
  }

  /** 2 ms of virtual time on every network, then one turn of the event loop. */
  async step(): Promise<void> {
    for (let i = 0; i < this.sims.length; i++) {
      const sim = this.sims[i]!;
      sim.run(2);
      this.clients[i]?.tick(sim.now);
    }
    this.server.tick(this.now);
    await new Promise((res) => setImmediate(res));
  }

  /** Steps until `cond` (virtual `maxMs`, then up to 5 s of real time for disk I/O). */
  async until(cond: () => boolean, maxMs: number, what: string): Promise<void> {
    const end = this.now + maxMs;
    let realEnd = 0;
    while (!cond()) {
      if (this.now >= end) {
        if (realEnd === 0) realEnd = performance.now() + 5000;
        if (performance.now() > realEnd) throw new Error(`timed out waiting for ${what}`);
        await new Promise((res) => setTimeout(res, 5));
      }
      await this.step();
    }
  }

  /** Steps until `p` settles; its value. */
  async settle<T>(p: Promise<T>, maxMs = 5000, what = 'a promise'): Promise<T> {
    let done = false;
    const q = p.finally(() => (done = true));
    q.catch(() => {});
    await this.until(() => done, maxMs, what);
    return q;
  }

  /** Keeps stepping until the returned stop function is called (and awaited). */
  background(): () => Promise<void> {
    let on = true;
    const loop = (async () => {
      while (on) await this.step();
    })();
    return async () => {
      on = false;
      await loop;
    };
  }

  async shutdown(): Promise<void> {
    for (const c of this.clients) await c?.shutdown();
  }
}

/** A hand-driven gateway end of a log link. */
export class RawPeer {
  ep!: LinkEndpoint;
  readonly replies = new Map<number, Reply>();
  readonly statuses: StatusMsg[] = [];
  /** Every STABLE entry received, in order. */
  readonly stable: [number, number][] = [];
  private nextReq = 1000;

  constructor(private readonly world: RemoteWorld) {}

  received(m: Buffer): void {
    const d = decode(m);
    if (d === null) return;
    if (d.t === T_REPLY) this.replies.set(d.reqId, d.reply);
    else if (d.t === T_STATUS) this.statuses.push(d.status);
    else if (d.t === T_STABLE) this.stable.push(...d.entries);
  }

  /** Sends `msg` as soon as the link takes it. */
  async send(msg: Buffer): Promise<void> {
    for (let i = 0; i < 1000 && !this.ep.send(msg); i++) await this.world.step();
  }

  /** A request and its reply. */
  async ask(req: Request): Promise<Reply> {
    const id = this.nextReq++;
    await this.send(encodeRequest(id, req));
    await this.world.until(() => this.replies.has(id), 3000, `the reply to ${req.op}`);
    return this.replies.get(id)!;
  }
}

/** A harness whose gateway logs to `log`, a log server's client: its stability comes from the server. */
export function remoteHarness(log: RemoteLog, oracle: FakeOracle = new FakeOracle()): Harness {
  // The harness's log type is the ManualLog; a RemoteLog is used only through LogStore here
  // (autoStable off: nothing calls the ManualLog's own methods).
  return new Harness({ oracle, log: log as unknown as ManualLog, autoStable: false });
}

/** Routes until `cond` holds (stability arrives from the server between rounds). */
export async function runUntil(h: Harness, c: Client | Client[], s: Server | Server[] | null, cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    await h.run(c, s);
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`runUntil: ${what}`);
}
