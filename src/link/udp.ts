/**
 * UdpLink: a LinkEndpoint bound to node:dgram sockets. One local socket per path (one per
 * network), one remote address per path, and a real timer calling `tick`. All protocol
 * policy lives in endpoint.ts; this file only moves datagrams and time.
 *
 *   path 0:  local[0] (udp socket) ──────── network A ──────── remote[0]
 *   path 1:  local[1] (udp socket) ──────── network B ──────── remote[1]
 *
 * A datagram arriving on socket i is handed to the endpoint as path i, whatever its source
 * (authenticity is the HMAC's job, not the source address's). A path whose socket is
 * closed or fails to send simply loses datagrams; the connectivity checks move traffic
 * to the other path.
 */
import { createSocket, type Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { FtcpError } from '../util/errors.js';
import { LinkEndpoint, type LinkOptions } from './endpoint.js';

export interface UdpAddr {
  address: string;
  port: number;
}

export interface UdpLinkOptions extends Omit<LinkOptions, 'transmit' | 'now' | 'paths'> {
  /** Local address per path (port 0: any free port). One or two entries. */
  local: UdpAddr[];
  /** Peer address per path (may be set later with setRemote). */
  remote?: (UdpAddr | null)[];
  /** Tick period, ms. Default 2. */
  tickMs?: number;
  /** Socket buffer sizes, bytes. Default 4 MiB (bursts of a full window). */
  socketBuffer?: number;
}

/** Binds `s` to `addr`; rejects with the bind error (the socket's later errors are the caller's). */
export function bindSocket(s: Socket, addr: UdpAddr): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(addr.port, addr.address, () => {
      s.off('error', reject);
      resolve();
    });
  });
}

export class UdpLink {
  readonly endpoint: LinkEndpoint;
  /** Datagrams that could not be handed to a socket (path closed or send error). */
  sendErrors = 0;
  private readonly sockets: (Socket | null)[];
  private readonly remote: (UdpAddr | null)[];
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(opts: UdpLinkOptions, sockets: Socket[]) {
    this.sockets = sockets;
    this.remote = opts.local.map((_, i) => opts.remote?.[i] ?? null);
    this.endpoint = new LinkEndpoint({
      ...opts,
      paths: sockets.length,
      now: performance.now(),
      transmit: (dg, path) => this.transmit(dg, path),
    });
    sockets.forEach((s, i) => {
      s.on('message', (msg) => {
        if (!this.closed) this.endpoint.receive(msg, i, performance.now());
      });
      s.on('error', () => {
        this.sendErrors++;
      });
    });
    // The tick runs in the check phase (setImmediate), after the poll phase has read the
    // datagrams that arrived meanwhile: after a stall of the event loop (a busy machine)
    // the peer's frames are seen before the timers judge it silent or a gap unrepaired.
    this.timer = setInterval(() => setImmediate(() => {
      if (!this.closed) this.endpoint.tick(performance.now());
    }), opts.tickMs ?? 2);
  }

  /** Bind the sockets and start the timer. */
  static async open(opts: UdpLinkOptions): Promise<UdpLink> {
    if (opts.local.length < 1 || opts.local.length > 2) {
      throw new FtcpError('FTCP_LINK_CONFIG', 'a link has one or two local addresses');
    }
    const sockets: Socket[] = [];
    try {
      for (const addr of opts.local) {
        const s = createSocket({ type: addr.address.includes(':') ? 'udp6' : 'udp4' });
        sockets.push(s);
        await bindSocket(s, addr);
        const size = opts.socketBuffer ?? 4 << 20;
        try {
          s.setRecvBufferSize(size);
          s.setSendBufferSize(size);
        } catch {
          // The kernel may cap buffer sizes; the protocol copes with drops.
        }
      }
    } catch (err) {
      for (const s of sockets) s.close();
      throw new FtcpError('FTCP_LINK_BIND', `cannot bind link socket: ${(err as Error).message}`, { cause: err });
    }
    return new UdpLink(opts, sockets);
  }

  /** The bound local address of each path (null once that path is closed). */
  localAddress(path: number): UdpAddr | null {
    const s = this.sockets[path];
    if (!s) return null;
    const a = s.address();
    return { address: a.address, port: a.port };
  }

  setRemote(path: number, addr: UdpAddr): void {
    this.remote[path] = addr;
  }

  send(message: Buffer): boolean {
    return this.endpoint.send(message);
  }

  /** Close one path's socket (an operator taking a network down, or a fault in tests). */
  closePath(path: number): void {
    const s = this.sockets[path];
    if (!s) return;
    this.sockets[path] = null;
    s.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all(
      this.sockets.map((s, i) => {
        this.sockets[i] = null;
        return s ? new Promise<void>((resolve) => s.close(() => resolve())) : Promise.resolve();
      }),
    );
  }

  private transmit(dg: Buffer, path: number): void {
    const s = this.sockets[path];
    const r = this.remote[path];
    if (!s || !r || this.closed) {
      this.sendErrors++;
      return;
    }
    s.send(dg, r.port, r.address, (err) => {
      if (err) this.sendErrors++;
    });
  }
}
