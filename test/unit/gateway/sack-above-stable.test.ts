/**
 * The server's SACK blocks above the stable point (src/wrappers/south-stable.ts sackAbove). When
 * the south wrapper lowers a server ack to `stable`, or releases a held ACK short of the server's
 * ack, a block the server reported between the two (a D-SACK below its own ack, RFC 2883) would
 * tell the client, acked only to `stable`, that the server holds those bytes out of order
 * (RFC 2018): it would not resend them before its retransmission timeout, though the log lacks
 * them. Such blocks go, on every flow (not only adopted ones); the others stay: out-of-order data
 * above the server's ack, and a D-SACK below what the client is shown. Checksums stay exact.
 */
import { describe, it, expect } from 'vitest';
import { Harness, Client, Server, exchanged, opts, CLIENT, SERVER, CPORT, SPORT, TCP_ACK, type Seg } from '../../support/gateway-harness.js';
import { emitTcpPacket } from '../../../src/wire/repr.js';
import { encodeTcpOptions } from '../../../src/wire/tcp-options.js';
import { tcpChecksumOk } from '../../../src/wire/checksum.js';
import { statusText } from '../../../src/cli/commands/status.js';
import { seqDiff, type Seq } from '../../../src/wire/seq.js';

const IN0 = 2300;
const N = 3000;

/** A server segment acking in-stream `ack` (its rcv_nxt), with `len` bytes of output and SACK blocks (in-stream offsets). */
function serverSeg(s: Server, c: Client, ack: number, blocks: Array<[number, number]>, len = 0): Buffer {
  const seq = s.seq(s.sndNxt);
  s.sndNxt += len;
  return emitTcpPacket({
    src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: CPORT, seq, ack: c.seq(ack), flags: TCP_ACK, window: 400,
    options: encodeTcpOptions({ timestamps: { tsVal: ++s.tsVal >>> 0, tsEcr: c.tsVal >>> 0 }, sack: blocks.map(([a, b]) => [c.seq(a), c.seq(b)]) }),
    payload: Buffer.alloc(len, 0x5a),
  });
}

/** What reached the client: each segment's ack and SACK blocks (in-stream offsets), its checksum. */
function seen(c: Client, l: Seg[]): Array<{ ack: number; sack: Array<[number, number]>; csumOk: boolean }> {
  return l.filter((x) => x.dst === CLIENT).map((x) => ({
    ack: seqDiff(x.ack, c.seq(0)),
    sack: (opts(x).sack ?? []).map(([a, b]) => [seqDiff(a as Seq, c.seq(0)), seqDiff(b as Seq, c.seq(0))] as [number, number]),
    csumOk: tcpChecksumOk(x.raw, 0),
  }));
}

/** N client bytes past IN0 reached the server, which acked them all; the log made none of them stable. */
async function serverAhead(): Promise<{ h: Harness; c: Client; s: Server }> {
  const c = new Client({ isn: 0xfffff000 as Seq, ts: 1000 }); // the in-stream numbers wrap on the way
  const s = new Server({ isn: 0x80000001 as Seq, ts: 500_000 });
  const h = await exchanged(c, s, IN0);
  h.autoStable = false;
  h.tun.inject(...c.write(N)).flush();
  await h.run(c, s);
  expect([s.rcvNxt, c.maxAck, h.flow().stable, h.flow().sackOk]).toEqual([IN0 + N, IN0, IN0, true]); // the setup
  return { h, c, s };
}

describe("the server's SACK blocks between its ack and the stable point never reach the client", () => {
  it('a segment whose ack is lowered to stable: the blocks ending in (stable, server ack] go, the others stay, checksum exact', async () => {
    const { h, c, s } = await serverAhead();
    h.log.stabilize(h.logId(), IN0 + 500);
    await h.settle();
    h.drain(); // the held ACK released at IN0 + 500 (no SACK in it)
    // (Three blocks at most beside the timestamps: 40 option bytes.)
    let got = seen(c, h.send(serverSeg(s, c, IN0 + N, [
      [IN0 + 400, IN0 + 600], // straddling stable: a D-SACK the client would discard
      [IN0 + 1000, IN0 + 2000], // between: bytes the log lacks, which the client must resend
      [IN0 + N + 100, IN0 + N + 200], // above the server's ack: out-of-order bytes it holds
    ], 100)));
    expect(got).toEqual([{ ack: IN0 + 500, sack: [[IN0 + N + 100, IN0 + N + 200]], csumOk: true }]);
    // A D-SACK below what the client is shown means to it what the server meant: it stays.
    got = seen(c, h.send(serverSeg(s, c, IN0 + N, [[IN0 + 100, IN0 + 200], [IN0 + N + 100, IN0 + N + 200]], 100)));
    expect(got).toEqual([{ ack: IN0 + 500, sack: [[IN0 + 100, IN0 + 200], [IN0 + N + 100, IN0 + N + 200]], csumOk: true }]);
    expect(h.gw.south.stats.sacksAboveStableRemoved).toBe(2);
    expect(h.gw.metrics()).toContain('ftcp_south_sacks_above_stable_removed_total 2');
    const st = JSON.parse(JSON.stringify(h.gw.snapshot())) as Record<string, any>; // as `ftcp status` gets it
    expect(st.south).toMatchObject({ sacksAboveStableRemoved: 2 });
    expect(statusText(st)).toMatch(/^south: .*SACK blocks above stable removed 2$/m);
  });

  it('a held pure ACK released short of the server ack: its blocks above the release go from the copy; released at the server ack, they pass', async () => {
    const { h, c, s } = await serverAhead();
    // The server's duplicate ack of a resent segment (a D-SACK at or below its ack) is held.
    expect(h.send(serverSeg(s, c, IN0 + N, [[IN0 + 1000, IN0 + 2000]]))).toEqual([]);
    h.log.stabilize(h.logId(), IN0 + 1500);
    await h.settle();
    let got = seen(c, h.drain());
    expect(got).toEqual([{ ack: IN0 + 1500, sack: [], csumOk: true }]);
    expect(h.gw.south.stats.sacksAboveStableRemoved).toBe(1);
    // The whole of it stable: the block lies below the ack the client gets, a D-SACK as the server sent it.
    h.log.stabilize(h.logId(), IN0 + N);
    await h.settle();
    got = seen(c, h.drain());
    expect(got).toEqual([{ ack: IN0 + N, sack: [[IN0 + 1000, IN0 + 2000]], csumOk: true }]);
    expect(h.gw.south.stats.sacksAboveStableRemoved).toBe(1);
    for (const { s: x, stable } of h.toClientLog) expect(seqDiff(x.ack, c.seq(0))).toBeLessThanOrEqual(stable);
  });

  it('a held ACK released several times: its D-SACK reaches the client once, its block above the server ack every time', async () => {
    const { h, c, s } = await serverAhead();
    expect(h.send(serverSeg(s, c, IN0 + N, [[IN0 + 1000, IN0 + 2000], [IN0 + N + 100, IN0 + N + 200]]))).toEqual([]);
    const released: ReturnType<typeof seen> = [];
    for (const at of [IN0 + 1500, IN0 + 2500, IN0 + N - 200, IN0 + N]) {
      h.log.stabilize(h.logId(), at);
      await h.settle();
      released.push(...seen(c, h.drain()));
    }
    const above: [number, number] = [IN0 + N + 100, IN0 + N + 200];
    expect(released).toEqual([
      { ack: IN0 + 1500, sack: [above], csumOk: true }, // the D-SACK ends above this ack: not yet
      { ack: IN0 + 2500, sack: [[IN0 + 1000, IN0 + 2000], above], csumOk: true }, // below it now: once
      { ack: IN0 + N - 200, sack: [above], csumOk: true },
      { ack: IN0 + N, sack: [above], csumOk: true },
    ]);
  });

  it('an ack the log covers passes untouched, its SACK blocks with it', async () => {
    const { h, c, s } = await serverAhead();
    h.log.stabilize(h.logId(), IN0 + N);
    await h.settle();
    h.drain();
    const pkt = serverSeg(s, c, IN0 + N, [[IN0 + 1000, IN0 + 2000], [IN0 + N + 100, IN0 + N + 200]]);
    const out = h.send(Buffer.from(pkt));
    expect(out).toHaveLength(1);
    expect(out[0]!.raw.equals(pkt)).toBe(true);
    expect(h.gw.south.stats.sacksAboveStableRemoved).toBe(0);
  });
});
