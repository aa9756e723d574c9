/**
 * Step 6 of the rebuild (DESIGN.md §5): translation for the life of a rebuilt connection.
 *
 * The spoofed SYN carried the client's own ISN, so the client's sequence space needs no
 * translation. The restarted server chose a new ISN, its own timestamp clock, maybe its
 * own window scale, and, when the original tuple was busy, talks to another client port:
 *
 *   client's view (old incarnation)            new incarnation (server's view)
 *   ───────────────────────────────            ───────────────────────────────
 *   server seq  S_old = S_new + seqDelta   ◀── S_new            seqDelta = ISN_old − ISN_new
 *   server ack  (client seq, unchanged)        (client seq, unchanged)
 *   client ack  A_old                       ──▶ A_old − seqDelta
 *   client SACK [l, r) (server seq)         ──▶ [l − seqDelta, r − seqDelta)
 *   server TSval T_new + tsDelta           ◀── T_new            (monotonic for the client)
 *   client TSecr E                          ──▶ E − tsDelta      (what the server sent)
 *   client port P                          ◀──▶ P' (when moved)
 *   server window W·2^newShift / 2^oldShift ◀── W               (scale difference)
 *
 * All rewrites are in place with incremental checksum updates (RFC 1624).
 */
import type { PacketInfo } from '../wire/packet.js';
import { TcpOptions, parseTcpOptions } from '../wire/tcp-options.js';
import { seqAdd, type Seq } from '../wire/seq.js';
import { windowField } from '../wire/window.js';
import { tcpSetAck, tcpSetSeq, tcpSetDstPort, tcpSetSrcPort, tcpSetU32, tcpSetWindow } from '../wire/rewrite.js';

export class Translation {
  constructor(
    /** ISN_old − ISN_new (mod 2^32): added to server sequence numbers toward the client. */
    readonly seqDelta: number,
    /** Added to the server's TSval toward the client (mod 2^32); 0 without timestamps. */
    readonly tsDelta: number,
    /** The client's port as the client knows it, and as the new incarnation knows it. */
    readonly clientPort: number,
    readonly serverSidePort: number,
    /** The server's window shift as the client knows it, and as the new incarnation uses it. */
    readonly oldShift: number,
    readonly newShift: number,
  ) {}

  get movesPort(): boolean {
    return this.clientPort !== this.serverSidePort;
  }
}

const opts = new TcpOptions();

/** Rewrites a segment of the new incarnation so the client sees the old one. */
export function translateToClient(t: Translation, buf: Buffer, p: PacketInfo): void {
  const tcp = p.l4Off;
  if (t.seqDelta !== 0) tcpSetSeq(buf, tcp, seqAdd(p.seq, t.seqDelta));
  if (t.movesPort) tcpSetDstPort(buf, tcp, t.clientPort);
  if (t.oldShift !== t.newShift) tcpSetWindow(buf, tcp, windowField(p.window * 2 ** t.newShift, 0, t.oldShift));
  if (t.tsDelta !== 0 && p.optLen > 0 && parseTcpOptions(buf, p.optOff, p.optLen, opts) && opts.tsOff >= 0) {
    tcpSetU32(buf, tcp, opts.tsOff + 2, seqAdd(opts.tsVal, t.tsDelta));
  }
}

/** Rewrites a client segment for the new incarnation. */
export function translateToServer(t: Translation, buf: Buffer, p: PacketInfo): void {
  const tcp = p.l4Off;
  if (t.seqDelta !== 0) tcpSetAck(buf, tcp, seqAdd(p.ack, -t.seqDelta));
  if (t.movesPort) tcpSetSrcPort(buf, tcp, t.serverSidePort);
  if (p.optLen > 0 && (t.seqDelta !== 0 || t.tsDelta !== 0) && parseTcpOptions(buf, p.optOff, p.optLen, opts)) {
    if (t.tsDelta !== 0 && opts.tsOff >= 0) tcpSetU32(buf, tcp, opts.tsOff + 6, seqAdd(opts.tsEcr, -t.tsDelta));
    if (t.seqDelta !== 0) {
      for (let i = 0, off = opts.sackOff; i < opts.sackCount; i++, off += 8) {
        tcpSetU32(buf, tcp, off, seqAdd(buf.readUInt32BE(off) as Seq, -t.seqDelta));
        tcpSetU32(buf, tcp, off + 4, seqAdd(buf.readUInt32BE(off + 4) as Seq, -t.seqDelta));
      }
    }
  }
}
