/**
 * Two small scripted TCP endpoints for the gateway harness (gateway-harness.ts): a client
 * and a server incarnation that talk through the gateway. They are scripted, not full TCPs:
 * no retransmission timers, no congestion control.
 *
 * The server is deterministic: for every full 100 input bytes it has received in order it
 * writes 150 output bytes, byte i of the out-stream being `outByte(i)` — so a new incarnation
 * fed the same input regenerates the same bytes at the same offsets.
 */
import { emitTcpPacket } from '../../src/wire/repr.js';
import { encodeTcpOptions, type TcpOptionsRepr } from '../../src/wire/tcp-options.js';
import { seqAdd, seqDiff, seqGe, type Seq } from '../../src/wire/seq.js';
import { CLIENT, CPORT, SERVER, SPORT, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, hasFlag, opts, type Seg } from './segments.js';

/** In-stream byte i (client → server) and out-stream byte i (server → client). */
export function inByte(i: number): number {
  return (i * 31 + 7) & 0xff;
}
export function outByte(i: number): number {
  return (i * 17 + 101) & 0xff;
}
export function inBytes(from: number, to: number): Buffer {
  const b = Buffer.alloc(to - from);
  for (let i = from; i < to; i++) b[i - from] = inByte(i);
  return b;
}
export function outBytes(from: number, to: number): Buffer {
  const b = Buffer.alloc(to - from);
  for (let i = from; i < to; i++) b[i - from] = outByte(i);
  return b;
}
/** Output length after `input` in-order bytes. */
export function outputFor(input: number): number {
  return Math.floor(input / 100) * 150;
}


export interface PeerOptions {
  isn: number;
  mss?: number;
  /** null: no window scale option. */
  wscale?: number | null;
  sack?: boolean;
  /** Initial TSval; null: no timestamps. */
  ts?: number | null;
  /** Raw window field. */
  window?: number;
  /** Client only: its port. */
  port?: number;
  /**
   * Server only: check each segment's acceptability as Linux does (tcp_sequence: a segment
   * starting past rcv_nxt + the window it advertised, or ending before rcv_nxt, is dropped
   * unread — its ACK field too — and answered with a duplicate ACK), and take data only
   * inside the window.
   */
  strict?: boolean;
  /**
   * Server only: a receive buffer of this many bytes, read by an application that reads the
   * next request only once all its output is acknowledged (memcached's shape: it stops
   * reading while its output is blocked). The window it advertises is the buffer's free room.
   */
  rcvBuf?: number;
}

/** The client's TCP as the test scripts it. */
export class Client {
  readonly isn: Seq;
  readonly mss: number;
  readonly wscale: number | null;
  readonly useTs: boolean;
  tsVal: number;
  window: number;
  readonly synOptions: Buffer;
  /** In-stream bytes written (offsets from 0) and the FIN's offset (-1: none). */
  sent = 0;
  finAt = -1;
  /** Out-stream: the server ISN the client knows, bytes received in order, their end. */
  serverIsn = 0 as Seq;
  readonly received: Buffer[] = [];
  rcvNxt = 0;
  serverFin = false;
  /** The latest TSval seen from "the server", and every oddity noticed on the way. */
  lastTsSeen = -1;
  readonly violations: string[] = [];
  /** Highest in-stream offset acked to the client. */
  maxAck = 0;
  lastWindow = 0;
  resets = 0;
  readonly port: number;

  constructor(o: PeerOptions) {
    this.port = o.port ?? CPORT;
    this.isn = o.isn >>> 0 as Seq;
    this.mss = o.mss ?? 1460;
    this.wscale = o.wscale === undefined ? 7 : o.wscale;
    this.useTs = o.ts !== null;
    this.tsVal = o.ts ?? 0;
    this.window = o.window ?? 502;
    const r: TcpOptionsRepr = { mss: this.mss, sackPermitted: o.sack ?? true };
    if (this.useTs) r.timestamps = { tsVal: this.tsVal, tsEcr: 0 };
    if (this.wscale !== null) r.wscale = this.wscale;
    this.synOptions = encodeTcpOptions(r);
  }

  seq(off: number): Seq {
    return seqAdd(this.isn, 1 + off);
  }
  /** Out-stream offset → the client's sequence number for it. */
  outSeq(off: number): Seq {
    return seqAdd(this.serverIsn, 1 + off);
  }

  /** The SYN's window field (never scaled). */
  synWindow = 64240;

  syn(): Buffer {
    return emitTcpPacket({ src: CLIENT, dst: SERVER, srcPort: this.port, dstPort: SPORT, seq: this.isn, ack: 0, flags: TCP_SYN, window: this.synWindow, options: this.synOptions });
  }

  private tsOpt(extra: TcpOptionsRepr = {}): Buffer | undefined {
    if (!this.useTs && extra.sack === undefined) return undefined;
    const r: TcpOptionsRepr = { ...extra };
    if (this.useTs) r.timestamps = { tsVal: ++this.tsVal >>> 0, tsEcr: this.lastTsSeen < 0 ? 0 : this.lastTsSeen };
    return encodeTcpOptions(r);
  }

  /** A pure ACK of everything received (or of `ackOff`), optionally with SACK blocks (seq numbers). */
  ack(o: { ackOff?: number; sack?: Array<[number, number]> } = {}): Buffer {
    const a = o.ackOff ?? this.rcvNxt + (this.serverFin ? 1 : 0);
    const seqOff = this.finAt >= 0 ? this.finAt + 1 : this.sent;
    return emitTcpPacket({
      src: CLIENT, dst: SERVER, srcPort: this.port, dstPort: SPORT, seq: this.seq(seqOff), ack: this.outSeq(a),
      flags: TCP_ACK, window: this.window, options: this.tsOpt(o.sack ? { sack: o.sack } : {}),
    });
  }

  /** Writes `n` more in-stream bytes (content inByte), in MSS-sized segments; optionally a FIN. */
  write(n: number, fin = false): Buffer[] {
    const out: Buffer[] = [];
    const seg = this.mss - (this.useTs ? 12 : 0);
    let at = this.sent;
    const end = at + n;
    while (at < end || (fin && at === end && this.finAt < 0)) {
      const e = Math.min(end, at + seg);
      const last = e === end && fin;
      out.push(emitTcpPacket({
        src: CLIENT, dst: SERVER, srcPort: this.port, dstPort: SPORT, seq: this.seq(at), ack: this.outSeq(this.rcvNxt),
        flags: TCP_ACK | (e > at ? TCP_PSH : 0) | (last ? TCP_FIN : 0), window: this.window, options: this.tsOpt(),
        payload: e > at ? inBytes(at, e) : undefined,
      }));
      if (last) this.finAt = e;
      at = e;
      if (last) break;
    }
    this.sent = end;
    return out;
  }

  /** A segment the gateway wrote toward the client. Returns the client's ACK when it got data. */
  receive(s: Seg): Buffer | null {
    if (s.dstPort !== this.port) this.violations.push(`to port ${s.dstPort}`);
    if (s.srcPort !== SPORT || s.src !== SERVER) this.violations.push(`from ${s.src}:${s.srcPort}`);
    if (hasFlag(s, TCP_RST)) {
      this.resets++;
      return null;
    }
    if (hasFlag(s, TCP_SYN)) {
      this.serverIsn = s.seq;
      this.noteTs(s);
      this.lastWindow = s.window;
      return emitTcpPacket({ src: CLIENT, dst: SERVER, srcPort: this.port, dstPort: SPORT, seq: this.seq(0), ack: this.outSeq(0), flags: TCP_ACK, window: this.window, options: this.tsOpt() });
    }
    this.noteTs(s);
    if (hasFlag(s, TCP_ACK)) {
      const a = seqDiff(s.ack, this.seq(0));
      if (a > this.maxAck) this.maxAck = a;
      this.lastWindow = s.window;
    }
    const len = s.payload?.length ?? 0;
    const off = seqDiff(s.seq, this.outSeq(0));
    let got = false;
    if (len > 0) {
      got = true;
      if (off <= this.rcvNxt && off + len > this.rcvNxt) {
        this.received.push(Buffer.from(s.payload!.subarray(this.rcvNxt - off)));
        this.rcvNxt = off + len;
      }
    }
    if (hasFlag(s, TCP_FIN) && off + len === this.rcvNxt) {
      this.serverFin = true;
      got = true;
    }
    return got ? this.ack() : null;
  }

  private noteTs(s: Seg): void {
    const ts = opts(s).timestamps;
    if (!this.useTs) return;
    if (ts === undefined) {
      this.violations.push('segment without timestamps');
      return;
    }
    if (this.lastTsSeen >= 0 && !seqGe(ts.tsVal as Seq, this.lastTsSeen as Seq)) this.violations.push(`TSval ${ts.tsVal} < ${this.lastTsSeen}`);
    if (this.lastTsSeen < 0 || seqGe(ts.tsVal as Seq, this.lastTsSeen as Seq)) this.lastTsSeen = ts.tsVal;
  }

  bytes(): Buffer {
    return Buffer.concat(this.received);
  }
}

/** One incarnation of the deterministic server. */
export class Server {
  readonly isn: Seq;
  readonly mss: number;
  readonly wscale: number | null;
  readonly sack: boolean;
  readonly useTs: boolean;
  tsVal: number;
  /** Raw window field advertised after the handshake; `synWindow` in the SYN-ACK. */
  window: number;
  synWindow = 65160;
  /** Ignore everything (a process that does not answer). */
  silent = false;
  /** The tuple's client port (from the SYN), the client's ISN. */
  peerPort = 0;
  clientIsn = 0 as Seq;
  established = false;
  /** In-stream bytes received in order, their end, a FIN. */
  readonly rcvd: Buffer[] = [];
  rcvNxt = 0;
  finRcvd = false;
  /** Out-stream bytes sent (end), and what the peer acked. */
  sndNxt = 0;
  sndUna = 0;
  clientTs = 0;
  /** Every segment it received, after the handshake. */
  readonly got: Seg[] = [];
  synsSeen = 0;
  /** Right edge (in-stream offset) of the window it last advertised, and oddities seen. */
  edge = 0;
  readonly violations: string[] = [];
  readonly strict: boolean;
  readonly rcvBuf: number;
  /** With rcvBuf: in-stream bytes the application has read (output is due for these only). */
  consumed = 0;
  /** Segments dropped as unacceptable (strict), and those of them that began past the window. */
  unacceptable = 0;
  beyondWindow = 0;
  /**
   * A server that is not quite deterministic (issue 13): `alter` changes its output bytes
   * (given the payload and its offset) before they are sent; `outputCap` stops its output there.
   */
  alter: ((off: number, payload: Buffer) => void) | null = null;
  outputCap = Number.POSITIVE_INFINITY;

  constructor(o: PeerOptions) {
    this.isn = o.isn >>> 0 as Seq;
    this.mss = o.mss ?? 1460;
    this.wscale = o.wscale === undefined ? 7 : o.wscale;
    this.sack = o.sack ?? true;
    this.useTs = o.ts !== null;
    this.tsVal = o.ts ?? 0;
    this.window = o.window ?? 1000;
    this.strict = o.strict ?? o.rcvBuf !== undefined;
    this.rcvBuf = o.rcvBuf ?? 0;
  }

  /** With rcvBuf: the window field for the buffer's free room (consumption applied first). */
  private bufWindow(): number {
    if (this.rcvBuf === 0) return this.window;
    if (this.sndUna === this.sndNxt) this.consumed = this.rcvNxt;
    const free = Math.max(0, this.rcvBuf - (this.rcvNxt - this.consumed));
    // Like Linux (tcp_select_window), the right edge never moves left.
    const edge = Math.max(this.edge, this.rcvNxt + free);
    return (this.window = Math.ceil((edge - this.rcvNxt) / 2 ** (this.wscale ?? 0)));
  }

  seq(off: number): Seq {
    return seqAdd(this.isn, 1 + off);
  }
  inSeq(off: number): Seq {
    return seqAdd(this.clientIsn, 1 + off);
  }

  private tsOpt(extra: TcpOptionsRepr = {}): Buffer | undefined {
    if (!this.useTs) return Object.keys(extra).length > 0 ? encodeTcpOptions(extra) : undefined;
    return encodeTcpOptions({ ...extra, timestamps: { tsVal: ++this.tsVal >>> 0, tsEcr: this.clientTs } });
  }

  synAck(syn: Seg): Buffer {
    this.peerPort = syn.srcPort;
    this.clientIsn = syn.seq;
    const so = opts(syn);
    if (so.timestamps) this.clientTs = so.timestamps.tsVal;
    const r: TcpOptionsRepr = { mss: this.mss };
    if (this.sack && so.sackPermitted) r.sackPermitted = true;
    if (this.useTs && so.timestamps) r.timestamps = { tsVal: ++this.tsVal >>> 0, tsEcr: this.clientTs };
    if (this.wscale !== null && so.wscale !== undefined) r.wscale = this.wscale;
    this.edge = this.synWindow;
    return emitTcpPacket({ src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: this.peerPort, seq: this.isn, ack: seqAdd(syn.seq, 1), flags: TCP_SYN | TCP_ACK, window: this.synWindow, options: encodeTcpOptions(r) });
  }

  /** A pure ACK of what it has received, with its current window. */
  ackNow(window = this.rcvBuf > 0 ? this.bufWindow() : this.window): Buffer {
    this.edge = this.rcvNxt + window * 2 ** (this.wscale ?? 0);
    return emitTcpPacket({ src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: this.peerPort, seq: this.seq(this.sndNxt), ack: this.inSeq(this.rcvNxt + (this.finRcvd ? 1 : 0)), flags: TCP_ACK, window, options: this.tsOpt() });
  }

  /** Its own FIN (after all its output). */
  fin(): Buffer {
    const p = emitTcpPacket({ src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: this.peerPort, seq: this.seq(this.sndNxt), ack: this.inSeq(this.rcvNxt + (this.finRcvd ? 1 : 0)), flags: TCP_ACK | TCP_FIN, window: this.window, options: this.tsOpt() });
    this.sndNxt++;
    return p;
  }

  /** Output due for the input received so far, in segments. */
  private output(): Buffer[] {
    const out: Buffer[] = [];
    if (this.rcvBuf > 0) this.bufWindow();
    const due = Math.min(this.outputCap, outputFor(this.rcvBuf > 0 ? this.consumed : this.rcvNxt));
    const segMax = this.mss - (this.useTs ? 12 : 0);
    if (this.sndNxt < due) this.edge = this.rcvNxt + this.window * 2 ** (this.wscale ?? 0);
    while (this.sndNxt < due) {
      const e = Math.min(due, this.sndNxt + segMax);
      out.push(emitTcpPacket({
        src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: this.peerPort, seq: this.seq(this.sndNxt), ack: this.inSeq(this.rcvNxt + (this.finRcvd ? 1 : 0)),
        flags: TCP_ACK | TCP_PSH, window: this.window, options: this.tsOpt(), payload: this.payload(this.sndNxt, e),
      }));
      this.sndNxt = e;
    }
    return out;
  }

  private payload(from: number, to: number): Buffer {
    const b = outBytes(from, to);
    if (this.alter !== null) this.alter(from, b);
    return b;
  }

  receive(s: Seg): Buffer[] {
    if (this.silent || s.dstPort !== SPORT) return [];
    if (hasFlag(s, TCP_SYN)) {
      this.synsSeen++;
      if (this.established) return [];
      return [this.synAck(s)];
    }
    if (s.srcPort !== this.peerPort || this.peerPort === 0) return []; // no socket: ignored here
    if (hasFlag(s, TCP_RST)) return [];
    const ts = opts(s).timestamps;
    if (ts) this.clientTs = ts.tsVal;
    if (!this.established) {
      if (hasFlag(s, TCP_ACK) && s.ack === this.seq(0)) this.established = true;
      else return [];
    }
    this.got.push(s);
    let len = s.payload?.length ?? 0;
    const off = seqDiff(s.seq, this.inSeq(0));
    if (this.strict) {
      // tcp_sequence(): !before(end_seq, rcv_wup) && !after(seq, rcv_nxt + rcv_wnd).
      const rcvNxt = this.rcvNxt + (this.finRcvd ? 1 : 0);
      const wnd = Math.max(0, this.edge - this.rcvNxt);
      const end = off + len + (hasFlag(s, TCP_FIN) ? 1 : 0);
      if (off > rcvNxt + wnd || end < rcvNxt) {
        this.unacceptable++;
        if (off > rcvNxt + wnd) this.beyondWindow++;
        return [this.ackNow()];
      }
    }
    if (hasFlag(s, TCP_ACK)) {
      const a = seqDiff(s.ack, this.seq(0));
      if (a > this.sndUna && a <= this.sndNxt) this.sndUna = a;
    }
    let changed = false;
    if (len > 0) {
      if (off + len > this.edge) {
        if (this.strict) len = Math.max(0, this.edge - off); // only what fits (tcp_data_queue)
        else this.violations.push(`data [${off}, ${off + len}) beyond the window's right edge ${this.edge}`);
      }
      if (len > 0 && off <= this.rcvNxt && off + len > this.rcvNxt) {
        this.rcvd.push(Buffer.from(s.payload!.subarray(this.rcvNxt - off, len)));
        this.rcvNxt = off + len;
      }
      changed = true;
    }
    if (this.rcvBuf > 0 && this.sndUna === this.sndNxt && this.consumed < this.rcvNxt) changed = true;
    if (hasFlag(s, TCP_FIN) && off + len === this.rcvNxt && len === (s.payload?.length ?? 0) && !this.finRcvd) {
      this.finRcvd = true;
      changed = true;
    }
    if (!changed) return [];
    const out = this.output();
    return out.length > 0 ? out : [this.ackNow()];
  }

  bytes(): Buffer {
    return Buffer.concat(this.rcvd);
  }
}
