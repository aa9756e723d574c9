/**
 * The log server on UDP (split from server.ts, which serves the protocol over any link): one
 * socket per network, datagrams demultiplexed to the server's peers by the sender's boot id.
 */
import { createSocket, type Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { FtcpError } from '../../util/errors.js';
import { LinkEndpoint, type LinkCounters, type LinkOptions } from '../../link/endpoint.js';
import { decodeFrame, HEADER_LEN, OFF } from '../../link/frame.js';
import { bindSocket, type UdpAddr } from '../../link/udp.js';
import type { LogServer, Peer } from './server.js';

export interface UdpLogServerOptions {
  server: LogServer;
  key: Buffer;
  /** One address per network (path 0, path 1). */
  listen: UdpAddr[];
  link?: Omit<LinkOptions, 'key' | 'transmit' | 'now' | 'paths' | 'onMessage' | 'onLost' | 'onPeerState' | 'onWritable'>;
  /** At most this many gateway peers at once (new senders beyond it are ignored). Default 64. */
  maxPeers?: number;
  tickMs?: number;
  /**
   * Test/lab fault injection in userspace (for kernels without netem): consulted for every
   * datagram in and out; null = clean.
   */
  impair?: () => Impairment | null;
}

/** Probabilities per datagram; reordered datagrams are delayed by up to `reorderMs`. */
export interface Impairment {
  loss: number;
  dup: number;
  reorder: number;
  reorderMs: number;
}

/** Parses "loss=0.03 dup=0.02 reorder=0.2 reorderMs=5" (missing keys: 0; reorderMs default 5). */
export function parseImpairment(text: string): Impairment | null {
  const im: Impairment = { loss: 0, dup: 0, reorder: 0, reorderMs: 5 };
  let any = false;
  for (const kv of text.split(/[\s,]+/).filter(Boolean)) {
    const [k, v] = kv.split('=');
    const n = Number(v);
    if ((k === 'loss' || k === 'dup' || k === 'reorder' || k === 'reorderMs') && Number.isFinite(n) && n >= 0) {
      im[k] = n;
      any = true;
    }
  }
  return any ? im : null;
}

interface UdpPeer {
  peer: Peer;
  addr: (UdpAddr | null)[];
}

/**
 * The log server on UDP: one socket per listen address (= per network); datagrams are
 * demultiplexed to peers by the sender's boot id (frame offset 4). A boot id not seen
 * before creates a peer only if the datagram authenticates; replies go to the address
 * the peer was last heard from on that network.
 */
export class UdpLogServer {
  readonly server: LogServer;
  private readonly sockets: Socket[];
  private readonly byBoot = new Map<number, UdpPeer>();
  /** Datagrams dropped / duplicated / delayed by the impairment (in + out). */
  readonly impaired = { dropped: 0, duplicated: 0, delayed: 0 };
  /** Authentic datagrams of a new gateway ignored because maxPeers gateways were attached. */
  peersRefused = 0;
  private readonly opts: UdpLogServerOptions;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(opts: UdpLogServerOptions, sockets: Socket[]) {
    this.opts = opts;
    this.server = opts.server;
    this.sockets = sockets;
    sockets.forEach((s, i) =>
      s.on('message', (msg, rinfo) => this.impaired_(() => this.datagram(msg, i, { address: rinfo.address, port: rinfo.port }))),
    );
    // In the check phase, after the poll phase has read what arrived (see UdpLink).
    this.timer = setInterval(() => setImmediate(() => {
      if (!this.closed) this.tick();
    }), opts.tickMs ?? 2);
  }

  static async listen(opts: UdpLogServerOptions): Promise<UdpLogServer> {
    if (opts.listen.length < 1 || opts.listen.length > 2) throw new FtcpError('FTCP_LINK_CONFIG', 'a log server listens on one or two addresses');
    const sockets: Socket[] = [];
    try {
      for (const a of opts.listen) {
        const s = createSocket({ type: 'udp4' });
        sockets.push(s);
        await bindSocket(s, a);
        s.on('error', () => {});
        try {
          s.setRecvBufferSize(4 << 20);
          s.setSendBufferSize(4 << 20);
        } catch {
          // capped by the kernel: the protocol copes with drops
        }
      }
    } catch (err) {
      for (const s of sockets) s.close();
      throw new FtcpError('FTCP_LINK_BIND', `log server cannot bind: ${(err as Error).message}`, { cause: err });
    }
    return new UdpLogServer(opts, sockets);
  }

  /** At most this many gateways attached at once. */
  get maxPeers(): number {
    return this.opts.maxPeers ?? 64;
  }

  /** Whether datagrams are impaired (tests: --impair-file). */
  get impairable(): boolean {
    return this.opts.impair !== undefined;
  }

  /** The attached gateways' links, by the gateway's boot id (hex): what /metrics shows. */
  links(): { boot: string; state: 'active' | 'inactive'; counters: Readonly<LinkCounters> }[] {
    return [...this.byBoot].map(([boot, up]) => ({ boot: boot.toString(16).padStart(8, '0'), state: up.peer.ep.peerState, counters: up.peer.ep.counters }));
  }

  address(path: number): UdpAddr {
    const a = this.sockets[path]!.address();
    return { address: a.address, port: a.port };
  }

  /** Runs `fn` once, never, twice or later, as the impairment says. */
  private impaired_(fn: () => void): void {
    const im = this.opts.impair?.() ?? null;
    if (im === null) {
      fn();
      return;
    }
    if (Math.random() < im.loss) {
      this.impaired.dropped++;
      return;
    }
    const copies = Math.random() < im.dup ? 2 : 1;
    if (copies === 2) this.impaired.duplicated++;
    for (let i = 0; i < copies; i++) {
      if (Math.random() < im.reorder) {
        this.impaired.delayed++;
        setTimeout(fn, Math.random() * im.reorderMs).unref();
      } else {
        fn();
      }
    }
  }

  private datagram(msg: Buffer, path: number, from: UdpAddr): void {
    if (this.closed || msg.length < HEADER_LEN) return;
    const boot = msg.readUInt32BE(OFF.srcBoot);
    let up = this.byBoot.get(boot);
    if (up === undefined) {
      if (!decodeFrame(this.opts.key, msg).ok) {
        this.server.counters.forged++;
        return;
      }
      if (this.byBoot.size >= this.maxPeers) {
        this.peersRefused++;
        return;
      }
      const entry: UdpPeer = { peer: undefined as unknown as Peer, addr: this.sockets.map(() => null) };
      entry.peer = this.server.attachPeer(
        (h) =>
          new LinkEndpoint({
            ...this.opts.link,
            ...h,
            key: this.opts.key,
            paths: this.sockets.length,
            now: performance.now(),
            name: `gw-${boot.toString(16)}`,
            transmit: (dg, p) => {
              const to = entry.addr[p] ?? entry.addr.find((a) => a !== null) ?? null;
              const s = this.sockets[p] ?? this.sockets[0];
              if (to !== null && s !== undefined && !this.closed) {
                this.impaired_(() => {
                  if (!this.closed) s.send(dg, to.port, to.address, () => {});
                });
              }
            },
          }),
      );
      this.byBoot.set(boot, entry);
      up = entry;
    }
    const c = up.peer.ep.counters;
    const bad = c.forged + c.malformed;
    const prev = up.addr[path];
    up.addr[path] = from;
    up.peer.ep.receive(msg, path, performance.now());
    if (c.forged + c.malformed !== bad) up.addr[path] = prev ?? null; // not authentic: keep the old address
  }

  private tick(): void {
    const now = performance.now();
    for (const up of this.byBoot.values()) up.peer.ep.tick(now);
    this.server.tick(now);
    for (const [boot, up] of this.byBoot) if (!this.server.hasPeer(up.peer)) this.byBoot.delete(boot);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}
