/**
 * The fuzz world's genuine endpoints: a client TCP and a deterministic server (one object
 * per incarnation of a service) that talk through the gateway. They are scripted, not full
 * TCPs: no retransmission timers, no congestion control. What they must do is produce the
 * real traffic of every phase of a protected connection — handshake, data both ways, FINs,
 * RSTs, the rebuild's spoofed handshake and replay answered by a restarted incarnation — so
 * that the fuzzer always has live flows in every state to aim its mutations at.
 *
 *   FuzzClient ──(genuine packets)──▶ gateway ──▶ FuzzServer (current incarnation)
 *        ▲                                              │
 *        └───────────────(genuine packets)──────────────┘
 *
 * Determinism (what makes a rebuild possible, DESIGN.md §1): for every full 100 in-stream
 * bytes received in order, the server writes 150 out-stream bytes, byte i being outByte(i).
 * Only the byte count matters, so a new incarnation fed the logged bytes regenerates the
 * same output at the same offsets whatever the bytes were.
 *
 * `receive` takes a packet the engine parsed (a well-formed IPv4/TCP one); anything an
 * endpoint does not expect it ignores.
 */
import { emitTcpPacket } from '../wire/repr.js';
import { TcpOptions, encodeTcpOptions, tsValOf } from '../wire/tcp-options.js';
import type { PacketInfo } from '../wire/packet.js';
import { seqAdd, seqDiff, type Seq } from '../wire/seq.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../wire/tcp.js';

/** The SYN options every endpoint of the fuzz world uses (both SYNs carry all four). */
const SYN_OPTIONS = encodeTcpOptions({ mss: 1460, sackPermitted: true, wscale: 7, timestamps: { tsVal: 1, tsEcr: 0 } });
/** Largest segment payload the endpoints send (small, so a few KB make several segments). */
const SEG = 700;

export function inPattern(i: number): number {
  return (i * 29 + 3) & 0xff;
}
export function outPattern(i: number): number {
  return (i * 13 + 77) & 0xff;
}
function pattern(f: (i: number) => number, from: number, to: number): Buffer {
  const b = Buffer.allocUnsafe(to - from);
  for (let i = from; i < to; i++) b[i - from] = f(i);
  return b;
}

/** The timestamps option alone, as both endpoints send after the SYN. */
function tsOption(tsVal: number, tsEcr: number): Buffer {
  return encodeTcpOptions({ timestamps: { tsVal: tsVal >>> 0, tsEcr: tsEcr >>> 0 } });
}

const scratch = new TcpOptions();
function tsVal(buf: Buffer, p: PacketInfo): number {
  return tsValOf(buf, p, scratch);
}

/**
 * A receiver's in-order bookkeeping (both endpoints): takes the bytes that continue
 * `rcvNxt` and a FIN right after them. True when the segment carried data or that FIN
 * (the receiver answers it).
 */
function takeInOrder(r: { rcvNxt: number; finRcvd: boolean }, off: number, flags: number, len: number): boolean {
  let got = false;
  if (len > 0) {
    got = true;
    if (off <= r.rcvNxt && off + len > r.rcvNxt) r.rcvNxt = off + len;
  }
  if (flags & TCP_FIN && off + len === r.rcvNxt && !r.finRcvd) {
    r.finRcvd = true;
    got = true;
  }
  return got;
}

export class FuzzClient {
  /** In-stream bytes written; the FIN was sent (it sits at offset `sent`). */
  sent = 0;
  finSent = false;
  /** The client reset the connection or was reset: it sends nothing more. */
  dead = false;
  serverIsn = 0 as Seq;
  synAcked = false;
  /** Out-stream bytes received in order. */
  rcvNxt = 0;
  /** The server's FIN was received (in order). */
  finRcvd = false;
  /** Right edge (in-stream offset) of the window the server advertised: the client sends no further. */
  rightEdge = 0;
  /** Highest in-stream offset the server acknowledged (snd_una). */
  sndUna = 0;
  private tsVal = 1000;
  private tsEcr = 0;
  readonly window = 502;

  constructor(readonly ip: number, readonly port: number, readonly serverIp: number, readonly serverPort: number, readonly isn: Seq) {}

  /** Highest sequence offset the client ever sent (its snd_nxt as an in-stream offset). */
  get sndNxt(): number {
    return this.sent + (this.finSent ? 1 : 0);
  }

  private pkt(seqOff: number, flags: number, payload?: Buffer): Buffer {
    this.tsVal++;
    return emitTcpPacket({
      src: this.ip, dst: this.serverIp, srcPort: this.port, dstPort: this.serverPort,
      seq: seqAdd(this.isn, 1 + seqOff), ack: flags & TCP_ACK ? seqAdd(this.serverIsn, 1 + this.rcvNxt + (this.finRcvd ? 1 : 0)) : 0,
      flags, window: this.window, options: tsOption(this.tsVal, this.tsEcr), payload,
    });
  }

  syn(): Buffer {
    return emitTcpPacket({ src: this.ip, dst: this.serverIp, srcPort: this.port, dstPort: this.serverPort, seq: this.isn, ack: 0, flags: TCP_SYN, window: 64240, options: SYN_OPTIONS });
  }

  /** Up to `n` more in-stream bytes, in segments, within the window the server advertised. */
  write(n: number): Buffer[] {
    if (this.dead || this.finSent || !this.synAcked) return [];
    const out: Buffer[] = [];
    const end = Math.min(this.sent + n, this.rightEdge);
    while (this.sent < end) {
      const e = Math.min(end, this.sent + SEG);
      out.push(this.pkt(this.sent, TCP_ACK | TCP_PSH, pattern(inPattern, this.sent, e)));
      this.sent = e;
    }
    return out;
  }

  /** What a retransmission timeout sends: everything not acknowledged yet (and the FIN), from snd_una. */
  retransmit(): Buffer[] {
    if (this.dead || !this.synAcked || this.sndUna >= this.sndNxt) return [];
    const out: Buffer[] = [];
    for (let at = this.sndUna; at < this.sent; at = Math.min(this.sent, at + SEG)) {
      out.push(this.pkt(at, TCP_ACK | TCP_PSH, pattern(inPattern, at, Math.min(this.sent, at + SEG))));
    }
    if (this.finSent) out.push(this.pkt(this.sent, TCP_ACK | TCP_FIN));
    return out;
  }

  ack(): Buffer | null {
    return this.dead || !this.synAcked ? null : this.pkt(this.sndNxt, TCP_ACK);
  }

  fin(): Buffer | null {
    if (this.dead || this.finSent || !this.synAcked) return null;
    this.finSent = true;
    return this.pkt(this.sent, TCP_ACK | TCP_FIN);
  }

  /** An abort at the client's snd_nxt (exactly what the server expects: accepted). */
  rst(): Buffer | null {
    if (this.dead || !this.synAcked) return null;
    this.dead = true;
    return this.pkt(this.sndNxt, TCP_RST | TCP_ACK);
  }

  receive(buf: Buffer, p: PacketInfo): Buffer | null {
    if (this.dead) return null;
    const flags = p.flags;
    if (flags & TCP_RST) {
      // RFC 5961 §3.2, as Linux: exactly at rcv_nxt it resets; elsewhere in the window it
      // draws a challenge ACK (which a peer whose socket is gone answers with an exact RST).
      if (!this.synAcked) return null;
      const off = seqDiff(p.seq, seqAdd(this.serverIsn, 1));
      const rcvNxt = this.rcvNxt + (this.finRcvd ? 1 : 0);
      if (off === rcvNxt) this.dead = true;
      else if (off > rcvNxt && off <= rcvNxt + this.window * 128) return this.ack();
      return null;
    }
    const ts = tsVal(buf, p);
    if (ts >= 0) this.tsEcr = ts;
    if (flags & TCP_SYN) {
      if (!(flags & TCP_ACK)) return null;
      if (!this.synAcked) {
        this.serverIsn = p.seq;
        this.synAcked = true;
        this.rightEdge = p.window; // a SYN-ACK's window is never scaled
      }
      return this.ack();
    }
    if (!this.synAcked) return null;
    if (flags & TCP_ACK) {
      const a = seqDiff(p.ack, seqAdd(this.isn, 1));
      if (a >= 0 && a <= this.sndNxt && a + p.window * 128 > this.rightEdge) this.rightEdge = a + p.window * 128;
      if (a > this.sndUna && a <= this.sndNxt) this.sndUna = a;
    }
    return takeInOrder(this, seqDiff(p.seq, seqAdd(this.serverIsn, 1)), flags, p.payloadLen) ? this.ack() : null;
  }
}

/** The server side of one connection in one incarnation. */
class ServerConn {
  rcvNxt = 0;
  finRcvd = false;
  sndNxt = 0;
  finSent = false;
  established = false;
  tsEcr = 0;
  constructor(readonly peerIp: number, readonly peerPort: number, readonly clientIsn: Seq, readonly isn: Seq) {}
}

/** One incarnation of a deterministic server listening on ip:port. */
export class FuzzServer {
  private readonly conns = new Map<number, ServerConn>();
  /** False until the incarnation answers SYNs (a handshake held by the engine), and after it died. */
  listening = true;
  dead = false;
  /** Client ports whose SYNs it never answers (half-open connections). */
  readonly ignore = new Set<number>();
  /** Raw window field (scale 7): 3 KB, so a replay takes several rounds. */
  window = 24;
  private tsVal: number;
  private isnNext: Seq;

  constructor(readonly ip: number, readonly port: number, isnBase: number) {
    this.isnNext = isnBase >>> 0 as Seq;
    this.tsVal = (isnBase >>> 8) & 0xffffff;
  }

  get connections(): number {
    return this.conns.size;
  }

  private key(ip: number, port: number): number {
    return ip * 65536 + port;
  }

  private pkt(c: ServerConn, seqOff: number, flags: number, payload?: Buffer): Buffer {
    this.tsVal++;
    return emitTcpPacket({
      src: this.ip, dst: c.peerIp, srcPort: this.port, dstPort: c.peerPort,
      seq: seqAdd(c.isn, 1 + seqOff), ack: seqAdd(c.clientIsn, 1 + c.rcvNxt + (c.finRcvd ? 1 : 0)),
      flags, window: this.window, options: tsOption(this.tsVal, c.tsEcr), payload,
    });
  }

  /** The connection of the client at `ip` whose ISN is `isn` (its port may have changed in a rebuild). */
  private find(ip: number, isn: number): ServerConn | undefined {
    for (const c of this.conns.values()) if (c.peerIp === ip && c.clientIsn === isn) return c;
    return undefined;
  }

  /** Its application closes that client's connection (a FIN after its output). */
  close(ip: number, isn: number): Buffer | null {
    const c = this.find(ip, isn);
    if (this.dead || c === undefined || !c.established || c.finSent) return null;
    c.finSent = true;
    const p = this.pkt(c, c.sndNxt, TCP_ACK | TCP_FIN);
    c.sndNxt++;
    return p;
  }

  /** Its application aborts that client's connection (a RST). */
  abort(ip: number, isn: number): Buffer | null {
    const c = this.find(ip, isn);
    if (this.dead || c === undefined || !c.established) return null;
    this.conns.delete(this.key(c.peerIp, c.peerPort));
    return this.pkt(c, c.sndNxt, TCP_RST | TCP_ACK);
  }

  /** Output due (150 bytes per full 100 received), in segments. */
  private output(c: ServerConn): Buffer[] {
    const due = Math.floor(c.rcvNxt / 100) * 150;
    const out: Buffer[] = [];
    while (!c.finSent && c.sndNxt < due) {
      const e = Math.min(due, c.sndNxt + SEG);
      out.push(this.pkt(c, c.sndNxt, TCP_ACK | TCP_PSH, pattern(outPattern, c.sndNxt, e)));
      c.sndNxt = e;
    }
    return out;
  }

  receive(buf: Buffer, p: PacketInfo): Buffer[] {
    if (this.dead) return [];
    const flags = p.flags;
    const k = this.key(p.src, p.srcPort);
    let c = this.conns.get(k);
    if (flags & TCP_SYN) {
      if (flags & TCP_ACK || !this.listening || this.ignore.has(p.srcPort)) return [];
      if (c !== undefined && c.established) return [this.pkt(c, c.sndNxt, TCP_ACK)]; // challenge ACK (RFC 5961)
      if (c === undefined || c.clientIsn !== p.seq) {
        c = new ServerConn(p.src, p.srcPort, p.seq, this.isnNext);
        this.isnNext = (this.isnNext + 0x01000193) >>> 0 as Seq;
        this.conns.set(k, c);
      }
      const ts = tsVal(buf, p);
      this.tsVal++;
      return [emitTcpPacket({
        src: this.ip, dst: p.src, srcPort: this.port, dstPort: p.srcPort, seq: c.isn, ack: seqAdd(p.seq, 1),
        flags: TCP_SYN | TCP_ACK, window: this.window * 128, // unscaled in a SYN-ACK: the same right edge as later (a window never shrinks)
        options: encodeTcpOptions({ mss: 1460, sackPermitted: true, wscale: 7, timestamps: { tsVal: this.tsVal >>> 0, tsEcr: Math.max(0, ts) } }),
      })];
    }
    if (c === undefined) {
      // No socket: answered as a closed port (after an abort, a crash of the incarnation that had it).
      const r = closedPortReset(p);
      return r !== null ? [r] : [];
    }
    const off = seqDiff(p.seq, seqAdd(c.clientIsn, 1));
    if (flags & TCP_RST) {
      // RFC 5961 §3.2, as Linux: a RST at exactly rcv_nxt resets; one elsewhere in the window
      // draws a challenge ACK (a client whose socket is gone answers it with an exact RST).
      const rcvNxt = c.rcvNxt + (c.finRcvd ? 1 : 0);
      if (off === rcvNxt) this.conns.delete(k);
      else if (c.established && off > rcvNxt && off <= rcvNxt + this.window * 128) return [this.pkt(c, c.sndNxt, TCP_ACK)];
      return [];
    }
    const ts = tsVal(buf, p);
    if (ts >= 0) c.tsEcr = ts;
    if (!c.established) {
      if (flags & TCP_ACK && p.ack === seqAdd(c.isn, 1)) c.established = true;
      else return [];
    }
    if (!takeInOrder(c, off, flags, p.payloadLen)) return [];
    const out = this.output(c);
    return out.length > 0 ? out : [this.pkt(c, c.sndNxt, TCP_ACK)];
  }
}

/**
 * What a host's TCP answers a segment for which it has no socket (RFC 793 "Reset
 * Generation"): nothing to a RST; seq = its ack if it carries one, else an ACK of it.
 */
export function closedPortReset(p: PacketInfo): Buffer | null {
  if (p.flags & TCP_RST) return null;
  const len = p.payloadLen + (p.flags & TCP_SYN ? 1 : 0) + (p.flags & TCP_FIN ? 1 : 0);
  return p.flags & TCP_ACK
    ? emitTcpPacket({ src: p.dst, dst: p.src, srcPort: p.dstPort, dstPort: p.srcPort, seq: p.ack, ack: 0, flags: TCP_RST, window: 0 })
    : emitTcpPacket({ src: p.dst, dst: p.src, srcPort: p.dstPort, dstPort: p.srcPort, seq: 0, ack: seqAdd(p.seq, len), flags: TCP_RST | TCP_ACK, window: 0 });
}
