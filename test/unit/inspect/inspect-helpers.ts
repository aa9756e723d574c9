/** Builds captures for the inspect tests: a scripted TCP conversation as packets in a pcap. */
import { PcapWriter, LINKTYPE_RAW } from '../../../src/wire/pcap.js';
import { emitTcpPacket, emitIcmpError } from '../../../src/wire/repr.js';
import { ipToU32 } from '../../../src/wire/addr.js';
import { seqAdd, type Seq } from '../../../src/wire/seq.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../../src/wire/tcp.js';

export const C = ipToU32('198.18.1.2');
export const S = ipToU32('198.18.2.2');
export const ROUTER = ipToU32('198.18.1.1');

/** Times in ms from T0 (an absolute time so the pcap holds realistic stamps). */
export const T0 = 1_700_000_000_000_000_000n;
export const ms = (m: number): bigint => T0 + BigInt(Math.round(m * 1e6));

export interface Side {
  ip: number;
  port: number;
  isn: Seq;
  /** Next sequence number to send. */
  nxt: Seq;
}

/**
 * A conversation between a client and a server; each call appends one packet. `acked`
 * tracks what each side has acknowledged of the other (the last byte received).
 */
export class Convo {
  readonly w: PcapWriter;
  readonly c: Side;
  readonly s: Side;
  /** The last packet emitted (for ICMP quotes). */
  last: Buffer = Buffer.alloc(0);
  /** TCP option bytes put on every segment (e.g. timestamps). */
  readonly options: Uint8Array | undefined;

  constructor(opts: { cport?: number; sport?: number; cisn?: number; sisn?: number; snaplen?: number; options?: Uint8Array } = {}) {
    this.options = opts.options;
    this.w = new PcapWriter(LINKTYPE_RAW, { nanosecond: true, snaplen: opts.snaplen });
    const cisn = (opts.cisn ?? 1000) as Seq;
    const sisn = (opts.sisn ?? 5000) as Seq;
    this.c = { ip: C, port: opts.cport ?? 40000, isn: cisn, nxt: cisn };
    this.s = { ip: S, port: opts.sport ?? 5001, isn: sisn, nxt: sisn };
  }

  private peer(from: Side): Side {
    return from === this.c ? this.s : this.c;
  }

  /** Emits a raw segment from `from` with explicit seq (default: from.nxt). Does not move nxt. */
  raw(t: number, from: Side, o: { seq?: number; ack?: number; flags?: number; len?: number; window?: number; fill?: number }): Buffer {
    const to = this.peer(from);
    const pkt = emitTcpPacket({
      src: from.ip, dst: to.ip, srcPort: from.port, dstPort: to.port,
      seq: o.seq ?? from.nxt, ack: o.ack ?? to.nxt, flags: o.flags ?? TCP_ACK, window: o.window ?? 65535,
      payload: o.len ? Buffer.alloc(o.len, o.fill ?? 0x61) : undefined,
      options: this.options,
    });
    this.w.add(ms(t), pkt);
    this.last = pkt;
    return pkt;
  }

  handshake(t: number): this {
    this.raw(t, this.c, { flags: TCP_SYN, ack: 0 });
    this.c.nxt = seqAdd(this.c.nxt, 1);
    this.raw(t + 1, this.s, { flags: TCP_SYN | TCP_ACK });
    this.s.nxt = seqAdd(this.s.nxt, 1);
    this.raw(t + 2, this.c, {});
    return this;
  }

  /** Sends `len` new bytes from `from` (nxt moves), acking the peer's nxt. */
  data(t: number, from: Side, len: number, extra: { window?: number } = {}): this {
    this.raw(t, from, { flags: TCP_ACK | TCP_PSH, len, ...extra });
    from.nxt = seqAdd(from.nxt, len);
    return this;
  }

  /** A pure ack from `from` (acks everything the peer sent, unless `ack` is given). */
  ack(t: number, from: Side, ack?: number, window?: number): this {
    this.raw(t, from, { ack, window });
    return this;
  }

  /** Skips `len` bytes of `from`'s stream without capturing them (a gap). */
  skip(from: Side, len: number): this {
    from.nxt = seqAdd(from.nxt, len);
    return this;
  }

  fin(t: number, from: Side): this {
    this.raw(t, from, { flags: TCP_FIN | TCP_ACK });
    from.nxt = seqAdd(from.nxt, 1);
    return this;
  }

  rst(t: number, from: Side): this {
    this.raw(t, from, { flags: TCP_RST | TCP_ACK, window: 0 });
    return this;
  }

  /** Both FINs and the final ack. */
  close(t: number): this {
    this.fin(t, this.c).fin(t + 1, this.s).ack(t + 2, this.c);
    return this;
  }

  icmp(t: number, quoting: Buffer, from = ROUTER, type?: number, code?: number): this {
    this.w.add(ms(t), emitIcmpError(quoting, { src: from, type, code }));
    return this;
  }

  pcap(): Buffer {
    return this.w.toBuffer();
  }
}
