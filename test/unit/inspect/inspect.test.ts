/** inspectCapture on captures built packet by packet (no root). */
import { describe, it, expect } from 'vitest';
import { checkAckInvariant, inspectCapture, formatInspect, type ConnectionReport } from '../../../src/inspect/inspect.js';
import { parseStabilityTrace } from '../../../src/inspect/ack-invariant.js';
import { seqAdd, type Seq } from '../../../src/wire/seq.js';
import { ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_PORT_UNREACH } from '../../../src/wire/icmp.js';
import { TCP_ACK, TCP_FIN, TCP_PSH } from '../../../src/wire/tcp.js';
import { Convo, C, S, ms, T0 } from './inspect-helpers.js';

function only(pcap: Buffer, opts?: Parameters<typeof inspectCapture>[1]): ConnectionReport {
  const r = inspectCapture(pcap, opts);
  expect(r.connections).toHaveLength(1);
  return r.connections[0]!;
}

/** A clean exchange: 300+200 bytes up, 1000 down, closed both ways. */
function clean(opts: ConstructorParameters<typeof Convo>[0] = {}): Convo {
  const k = new Convo(opts);
  k.handshake(0).data(10, k.c, 300).data(11, k.c, 200).ack(12, k.s).data(20, k.s, 1000).ack(21, k.c).close(30);
  return k;
}

describe('inspectCapture: a clean connection', () => {
  it('counts the bytes each way exactly, sees the handshake and both FINs, and says ok', () => {
    const k = clean();
    const c = only(k.pcap());
    expect(c.client).toEqual({ ip: '198.18.1.2', port: 40000 });
    expect(c.server).toEqual({ ip: '198.18.2.2', port: 5001 });
    expect(c.clientIsn).toBe(1000);
    expect(c.serverIsn).toBe(5000);
    expect(c.c2s.bytes).toBe(500);
    expect(c.s2c.bytes).toBe(1000);
    expect(c.c2s.payloadBytes).toBe(500);
    expect(c.seen).toEqual({ syn: true, synAck: true, finFromClient: true, finFromServer: true, rstFromClient: false, rstFromServer: false });
    expect(c.c2s.retransmissions + c.s2c.retransmissions).toBe(0);
    expect(c.c2s.gaps).toEqual([]);
    expect(c.s2c.gaps).toEqual([]);
    expect(c.c2s.finOffset).toBe(500);
    expect(c.s2c.finOffset).toBe(1000);
    // The client's FIN is acked: 500 bytes + FIN.
    expect(c.c2s.ackedByPeer).toBe(501);
    expect(c.packets).toBe(11);
    expect(c.startNs).toBe(0);
    expect(c.endNs).toBe(32e6);
    expect(c.midStream).toBe(false);
    expect(c.verdict).toBe('ok');
    expect(c.reason).toMatch(/500 B client→server, 1000 B server→client/);
  });

  it('is the side that sent the SYN that is the client, whatever the ports', () => {
    const c = only(clean({ cport: 80, sport: 50000 }).pcap());
    expect(c.client.port).toBe(80);
    expect(c.server.port).toBe(50000);
    expect(c.c2s.bytes).toBe(500);
  });

  it('says incomplete when no close is seen, and names the missing FIN', () => {
    const k = new Convo();
    k.handshake(0).data(10, k.c, 100).ack(11, k.s).fin(12, k.c).ack(13, k.s);
    const c = only(k.pcap());
    expect(c.verdict).toBe('incomplete');
    expect(c.reason).toMatch(/no FIN from the server/);
  });
});

describe('inspectCapture: retransmissions', () => {
  it('counts segments re-covering seen space, with the re-sent bytes, and keeps the unique count exact', () => {
    const k = new Convo();
    k.handshake(0);
    const seq0 = k.c.nxt;
    k.data(10, k.c, 100); // [0,100)
    k.raw(210, k.c, { seq: seq0, len: 100, flags: TCP_ACK | TCP_PSH }); // full resend
    k.raw(420, k.c, { seq: seqAdd(seq0, 50), len: 100, flags: TCP_ACK | TCP_PSH }); // [50,150): 50 old + 50 new
    k.skip(k.c, 50);
    k.ack(421, k.s).fin(430, k.c);
    k.raw(630, k.c, { seq: seqAdd(k.c.nxt, -1), flags: TCP_ACK | 0x01 }); // the FIN again
    k.fin(631, k.s).ack(632, k.c);
    const c = only(k.pcap());
    expect(c.c2s.bytes).toBe(150);
    expect(c.c2s.payloadBytes).toBe(300);
    expect(c.c2s.retransmissions).toBe(3);
    expect(c.c2s.retransmittedBytes).toBe(150);
    expect(c.s2c.retransmissions).toBe(0);
    expect(c.c2s.gaps).toEqual([]);
    expect(c.verdict).toBe('ok');
    expect(c.reason).toMatch(/3 retransmission/);
  });

  it('counts a retransmitted SYN but not as a new connection', () => {
    const k = new Convo();
    k.raw(0, k.c, { flags: 0x02, ack: 0 });
    k.raw(1000, k.c, { flags: 0x02, ack: 0 });
    k.c.nxt = seqAdd(k.c.nxt, 1);
    k.raw(1001, k.s, { flags: 0x12 });
    k.s.nxt = seqAdd(k.s.nxt, 1);
    k.ack(1002, k.c).close(1003);
    const c = only(k.pcap());
    expect(c.c2s.retransmissions).toBe(1);
    expect(c.verdict).toBe('ok');
  });
});

describe('inspectCapture: gaps', () => {
  it('reports sequence ranges never seen below the highest seen, and the verdict gap', () => {
    const k = new Convo();
    k.handshake(0).data(10, k.c, 100).skip(k.c, 50).data(11, k.c, 100);
    k.ack(12, k.s, seqAdd(k.c.isn, 101)); // the server never gets [100, 150) either
    const c = only(k.pcap());
    expect(c.c2s.gaps).toEqual([{ start: 100, end: 150, ackedByPeer: false }]);
    expect(c.c2s.gapBytes).toBe(50);
    expect(c.c2s.bytes).toBe(200);
    expect(c.s2c.gaps).toEqual([]);
    expect(c.verdict).toBe('gap');
    expect(c.reason).toMatch(/1 gap\(s\) in client→server data, 50 B never seen \(first \[100, 150\)\)/);
  });

  it('marks a gap the peer acknowledged as missed by the capture', () => {
    const k = new Convo();
    k.handshake(0).skip(k.c, 10).data(10, k.c, 100).ack(12, k.s).close(20);
    const c = only(k.pcap());
    expect(c.c2s.gaps).toEqual([{ start: 0, end: 10, ackedByPeer: true }]);
    expect(c.verdict).toBe('gap');
    expect(c.reason).toMatch(/capture missed them/);
  });

  it('counts the bytes before a FIN that were never seen as a gap', () => {
    const k = new Convo();
    k.handshake(0).data(10, k.s, 100).skip(k.s, 30).ack(11, k.c, seqAdd(k.s.isn, 101));
    k.raw(20, k.s, { flags: TCP_ACK | TCP_FIN });
    k.ack(21, k.c, seqAdd(k.s.isn, 101));
    const c = only(k.pcap());
    expect(c.s2c.gaps).toEqual([{ start: 100, end: 130, ackedByPeer: false }]);
    expect(c.s2c.highestOffset).toBe(130);
  });
});

describe('inspectCapture: resets and ICMP', () => {
  it('says reset when the server sends a RST, and who sent it', () => {
    const k = new Convo();
    k.handshake(0).data(10, k.c, 100).ack(11, k.s).rst(500, k.s);
    const c = only(k.pcap());
    expect(c.seen.rstFromServer).toBe(true);
    expect(c.seen.rstFromClient).toBe(false);
    expect(c.s2c.rsts).toBe(1);
    expect(c.s2c.rstNs).toBe(500e6);
    expect(c.verdict).toBe('reset');
    expect(c.reason).toMatch(/^RST from the server at \+0\.500s, after 100 B client→server/);
    // A RST carries a zero window but is not a zero-window advertisement.
    expect(c.s2c.zeroWindows).toBe(0);
  });

  it('attributes an ICMP error to the connection whose packet it quotes', () => {
    const k = new Convo();
    k.handshake(0).data(10, k.c, 100);
    const quoted = k.last; // a client data segment
    k.icmp(15, quoted, S, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH).ack(20, k.s).close(30);
    // An error quoting some other connection is not attributed to this one.
    const other = new Convo({ cport: 41000 });
    other.handshake(0);
    k.icmp(16, other.last);
    const r = inspectCapture(k.pcap());
    expect(r.connections).toHaveLength(1);
    expect(r.unmatchedIcmpErrors).toBe(1);
    const c = r.connections[0]!;
    expect(c.icmp).toEqual([
      { tNs: 15e6, type: 3, code: 3, from: '198.18.2.2', to: '198.18.1.2', quotes: 'c2s', quotedSeq: 1001, mtu: null, hard: true },
    ]);
    expect(c.verdict).toBe('icmp');
    expect(c.reason).toMatch(/ICMP type 3 code 3 from 198\.18\.2\.2/);
  });

  it('lists a fragmentation-needed error without failing the connection', () => {
    const k2 = new Convo();
    k2.handshake(0).data(10, k2.s, 100);
    k2.icmp(12, k2.last, C, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED).ack(13, k2.c).close(20);
    const c = only(k2.pcap());
    expect(c.icmp).toHaveLength(1);
    expect(c.icmp[0]!.quotes).toBe('s2c');
    expect(c.icmp[0]!.hard).toBe(false);
    expect(c.verdict).toBe('ok');
  });
});

describe('inspectCapture: pauses', () => {
  it('measures the longest pause each way and the ack stall of the client data', () => {
    const k = new Convo();
    k.handshake(0).data(10, k.c, 100).data(20, k.c, 100); // 10 ms apart
    k.ack(1520, k.s); // the client waited 1.5 s for this ack (outstanding since t=10)
    k.data(2020, k.c, 100).ack(2021, k.s); // 2 s since the last new client data
    k.data(2100, k.s, 10).data(2400, k.s, 10).ack(2401, k.c);
    k.close(3000);
    const c = only(k.pcap());
    expect(c.c2s.longestPause).toEqual({ durationNs: 2000e6, fromNs: 20e6, toNs: 2020e6, atOffset: 200 });
    expect(c.c2s.ackStall).toEqual({ durationNs: 1510e6, fromNs: 10e6, toNs: 1520e6, unackedAtEnd: false });
    // Server→client: 300 ms between its two data segments; then 600 ms to its FIN.
    expect(c.s2c.longestPause).toEqual({ durationNs: 601e6, fromNs: 2400e6, toNs: 3001e6, atOffset: 20 });
    expect(c.verdict).toBe('ok');
  });

  it('measures a stall that lasts to the end, marked unacked at end', () => {
    const k = new Convo();
    k.handshake(0).data(10, k.c, 100).ack(11, k.s).data(100, k.c, 50).ack(900, k.s, seqAdd(k.c.isn, 101));
    const c = only(k.pcap());
    expect(c.c2s.ackStall).toEqual({ durationNs: 800e6, fromNs: 100e6, toNs: 900e6, unackedAtEnd: true });
  });

  it('counts zero-window advertisements', () => {
    const k = new Convo();
    k.handshake(0).data(10, k.c, 100).ack(11, k.s, undefined, 0).ack(500, k.s, undefined, 0).ack(900, k.s).close(1000);
    const c = only(k.pcap());
    expect(c.s2c.zeroWindows).toBe(2);
    expect(c.c2s.zeroWindows).toBe(0);
  });
});

describe('inspectCapture: sequence numbers across the 2^32 wrap', () => {
  it('counts bytes, retransmissions and gaps exactly across the wrap both ways', () => {
    const k = new Convo({ cisn: 0xffffff00, sisn: 0xfffffff0 });
    k.handshake(0);
    const seq0 = k.c.nxt;
    k.data(10, k.c, 200).data(11, k.c, 200); // 0xffffff01 .. past 0
    k.data(20, k.s, 1000).ack(21, k.c); // acks the client's 400 bytes
    k.raw(300, k.c, { seq: seqAdd(seq0, 150), len: 100, flags: TCP_ACK | TCP_PSH }); // straddles the wrap, all old
    k.skip(k.c, 40).data(301, k.c, 60);
    k.ack(302, k.s, seqAdd(seq0, 400));
    k.raw(400, k.s, { flags: TCP_ACK | TCP_FIN, ack: seqAdd(seq0, 400) });
    const c = only(k.pcap());
    expect(c.clientIsn).toBe(0xffffff00);
    expect(c.c2s.bytes).toBe(460);
    expect(c.c2s.retransmissions).toBe(1);
    expect(c.c2s.retransmittedBytes).toBe(100);
    expect(c.c2s.gaps).toEqual([{ start: 400, end: 440, ackedByPeer: false }]);
    expect(c.s2c.bytes).toBe(1000);
    expect(c.s2c.gaps).toEqual([]);
    expect(c.s2c.finOffset).toBe(1000);
  });
});

describe('inspectCapture: truncated captures', () => {
  it('takes segment lengths from the IPv4 total length when the snap length cut the payload', () => {
    const k = clean({ snaplen: 60 }); // 20 IP + 20 TCP + 20 bytes of payload
    const r = inspectCapture(k.pcap());
    const c = r.connections[0]!;
    expect(c.c2s.bytes).toBe(500);
    expect(c.s2c.bytes).toBe(1000);
    expect(c.c2s.truncatedSegments).toBe(2);
    expect(c.s2c.truncatedSegments).toBe(1);
    expect(r.truncated).toBe(3);
    expect(c.verdict).toBe('ok');
  });

  it('still reads a segment cut inside its TCP options', () => {
    const ts = Buffer.from([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    const k = clean({ snaplen: 48, options: ts }); // TCP header is 32 bytes; 28 captured
    const r = inspectCapture(k.pcap());
    expect(r.malformed).toBe(0);
    const c = r.connections[0]!;
    expect(c.c2s.bytes).toBe(500);
    expect(c.s2c.bytes).toBe(1000);
    expect(c.verdict).toBe('ok');
    // The same capture read through forEachPacket-style captured lengths would see no payload at all.
    expect(c.c2s.payloadBytes).toBe(500);
  });

  it('counts a record cut inside the fixed TCP header as malformed, not as a segment', () => {
    const k = clean({ snaplen: 30 });
    const r = inspectCapture(k.pcap());
    expect(r.connections).toHaveLength(0);
    expect(r.malformed).toBe(11);
  });
});

describe('inspectCapture: connections', () => {
  it('keeps two connections on a reused 4-tuple apart by the client ISN', () => {
    const a = clean({ cisn: 1000 });
    const b = clean({ cisn: 900000 });
    const w = new Convo();
    // Concatenate the records: the second conversation 1 s later.
    const second = b.pcap().subarray(24);
    for (let o = 0; o < second.length;) {
      const incl = second.readUInt32LE(o + 8);
      const sec = BigInt(second.readUInt32LE(o));
      const ns = BigInt(second.readUInt32LE(o + 4));
      w.w.add(sec * 1_000_000_000n + ns + 1_000_000_000n, second.subarray(o + 16, o + 16 + incl));
      o += 16 + incl;
    }
    const pcap = Buffer.concat([a.pcap(), w.pcap().subarray(24)]);
    const r = inspectCapture(pcap);
    expect(r.connections.map((c) => [c.clientIsn, c.c2s.bytes, c.s2c.bytes, c.verdict])).toEqual([
      [1000, 500, 1000, 'ok'],
      [900000, 500, 1000, 'ok'],
    ]);
    expect(r.connections[1]!.startNs).toBe(1e9);
  });

  it('orients a connection seen mid-stream by the higher port, or by --ports, and says incomplete', () => {
    const k = new Convo({ cport: 40000, sport: 5001 });
    k.c.nxt = 777 as Seq;
    k.s.nxt = 888 as Seq;
    k.data(0, k.s, 100).data(1, k.c, 50).ack(2, k.s).close(3);
    let c = only(k.pcap());
    expect(c.client.port).toBe(40000);
    expect(c.midStream).toBe(true);
    expect(c.clientIsn).toBeNull();
    expect(c.c2s.bytes).toBe(50);
    expect(c.s2c.bytes).toBe(100);
    expect(c.verdict).toBe('incomplete');
    expect(c.reason).toMatch(/no SYN seen/);

    const low = new Convo({ cport: 3000, sport: 8080 });
    low.data(0, low.s, 10).data(1, low.c, 20).close(3);
    expect(only(low.pcap()).client.port).toBe(8080);
    c = only(low.pcap(), { serverPorts: [8080] });
    expect(c.client.port).toBe(3000);
    expect(c.s2c.bytes).toBe(10);
  });

  it('learns the client ISN from a SYN-ACK when the SYN was not captured', () => {
    const k = new Convo();
    k.c.nxt = seqAdd(k.c.nxt, 1);
    k.raw(0, k.s, { flags: 0x12 });
    k.s.nxt = seqAdd(k.s.nxt, 1);
    k.ack(1, k.c).data(2, k.c, 10).ack(3, k.s).close(4);
    const c = only(k.pcap());
    expect(c.clientIsn).toBe(1000);
    expect(c.seen.syn).toBe(false);
    expect(c.seen.synAck).toBe(true);
    expect(c.c2s.bytes).toBe(10);
    expect(c.c2s.gaps).toEqual([]);
  });

  it('leaves out connections to other ports when serverPorts is given', () => {
    const a = clean();
    const r = inspectCapture(a.pcap(), { serverPorts: [6000] });
    expect(r.connections).toHaveLength(0);
    expect(r.ignoredConnections).toBe(1);
  });
});

describe('inspectCapture: the stable-ack invariant with a trace', () => {
  function acked(): Buffer {
    const k = new Convo({ cisn: 0xfffffff0 });
    k.handshake(0).data(10, k.c, 400).ack(11, k.s, seqAdd(k.c.isn, 1 + 300)).ack(30, k.s).data(40, k.c, 100).ack(50, k.s).close(60);
    return k.pcap();
  }
  const at = (m: number): string => String(ms(m));

  it('finds an ack beyond the stable point at its time, and agrees with checkAckInvariant', () => {
    const key = `198.18.1.2:40000 5001 ${0xfffffff0}`;
    const trace = parseStabilityTrace([`${at(5)} ${key} 300`, `${at(45)} ${key} 500`, `${at(61)} ${key} 501`].join('\n'));
    const pcap = acked();
    const c = only(pcap, { trace, serverPorts: [5001] });
    // Acks at 11 (300 ok), 30 (400 > 300: violation), 50 (500 ok), 61 (FIN+ack 500 ok); plus SYN-ACK (0) and the last: 61 is the server FIN at 61 ms.
    expect(c.ackInvariant!.traced).toBe(true);
    expect(c.ackInvariant!.violations).toEqual([{ tNs: 30e6, ack: 400, stableAtThatTime: 300 }]);
    expect(c.verdict).toBe('unstable-ack');
    const whole = checkAckInvariant(pcap, trace, [5001]);
    expect(whole.checked).toBe(c.ackInvariant!.checked);
    expect(whole.violations.map((v) => [Number(v.tNs - T0), v.ack, v.stableAtThatTime])).toEqual(
      c.ackInvariant!.violations.map((v) => [v.tNs, v.ack, v.stableAtThatTime]),
    );
  });

  it('passes when every ack is stable, and skips connections neither traced nor on a given port', () => {
    const key = `198.18.1.2:40000 5001 ${0xfffffff0}`;
    const trace = parseStabilityTrace(`${at(5)} ${key} 501`);
    const c = only(acked(), { trace });
    expect(c.ackInvariant).toMatchObject({ traced: true, violations: [] });
    expect(c.ackInvariant!.checked).toBeGreaterThan(3);
    expect(c.verdict).toBe('ok');
    const other = only(acked(), { trace: parseStabilityTrace(`${at(5)} 198.18.1.9:1 5001 1 10`) });
    expect(other.ackInvariant).toBeNull();
  });
});

describe('formatInspect', () => {
  it('prints a table row and a verdict line per connection', () => {
    const k = new Convo();
    k.handshake(0).data(10, k.c, 123).ack(11, k.s).rst(20, k.s);
    const r = inspectCapture(Buffer.concat([clean({ cport: 41000 }).pcap(), k.pcap().subarray(24)]));
    const text = formatInspect(r);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\d+ records over .*: \d+ TCP segments, 0 ICMP errors, 2 connection\(s\)$/);
    expect(lines[1]).toMatch(/^#\s+client\s+server/);
    expect(lines[2]).toMatch(/^1\s+198\.18\.1\.2:41000\s+198\.18\.2\.2:5001 .*\s500\s+1000\s.*ok$/);
    expect(lines[3]).toMatch(/^2\s+198\.18\.1\.2:40000 .*\s123\s+0\s.*server.*reset$/);
    expect(lines).toContain(`#2 198.18.1.2:40000 -> 198.18.2.2:5001: RESET ${r.connections[1]!.reason}`);
    expect(lines.some((l) => l.startsWith('#1 ') && l.includes(': OK closed cleanly'))).toBe(true);
  });

  it('handles a capture with no connections', () => {
    const k = new Convo();
    expect(formatInspect(inspectCapture(k.pcap()))).toBe('0 records over 0us: 0 TCP segments, 0 ICMP errors, 0 connection(s)\n');
  });
});
