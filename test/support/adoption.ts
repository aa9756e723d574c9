/**
 * The adoption tests' steps (test/unit/gateway/adopt.test.ts, standby.test.ts): a connection
 * opened through a first gateway, that gateway's death and a second one on its log, a server
 * crash and its rebuild as a gateway sees them, and the checks that a connection carries on
 * byte-exact with no ack beyond the stable point.
 */
import { expect } from 'vitest';
import {
  Harness, Client, Server, FakeOracle, exchanged, inBytes, outBytes, outputFor,
  CLIENT, TCP_ACK, TCP_SYN, type Seg,
} from './gateway-harness.js';
import { seqDiff, type Seq } from '../../src/wire/seq.js';
import { recOf } from '../../src/recovery/rebuild.js';
import type { ManualLog } from './manual-log.js';

/** A client ISN that wraps during the test, and three server incarnations' ISNs. */
export const ISN = { client: 0xfffff800, s1: 0x80000001, s2: 0x0c0ffee0, s3: 0x55555555 } as const;
export const C_ISN = ISN.client as Seq, S_ISN = ISN.s1 as Seq, S2_ISN = ISN.s2 as Seq, S3_ISN = ISN.s3 as Seq;
/** Bytes the client sent (and the server answered) through the first gateway. */
export const IN0 = 2300;

export const toClient = (l: Seg[]) => l.filter((x) => x.dst === CLIENT);

/** The client sends again everything not acknowledged to it (its retransmission timer). */
export function resend(c: Client): Buffer[] {
  const end = c.sent;
  c.sent = c.maxAck;
  return c.write(end - c.maxAck);
}

/** Every segment the gateway sent the client acked no more than the log's stable point then. */
export function expectAcksStable(h: Harness, c: Client): void {
  for (const { s, stable } of h.toClientLog) {
    if (s.flags & TCP_ACK && !(s.flags & TCP_SYN)) expect(seqDiff(s.ack, c.seq(0))).toBeLessThanOrEqual(stable);
  }
}

/** A connection with IN0 bytes exchanged and stable through gateway 1 (on `log`, default a new ManualLog). */
export async function opened(log?: ManualLog): Promise<{ h: Harness; o: FakeOracle; c: Client; s: Server }> {
  const c = new Client({ isn: C_ISN, ts: 1000 });
  const s = new Server({ isn: S_ISN, ts: 500_000 });
  const o = new FakeOracle();
  const h = await exchanged(c, s, IN0, o, log);
  expect(c.bytes().equals(outBytes(0, outputFor(IN0)))).toBe(true);
  return { h, o, c, s };
}

/** Gateway 1 is gone (kill -9): gateway 2 starts on its log and adopts. */
export async function restart(h1: Harness): Promise<{ h: Harness; o: FakeOracle }> {
  const o = new FakeOracle();
  const h = new Harness({ oracle: o, log: h1.log });
  h.now = h1.now + 500;
  await h.gw.adopt();
  return { h, o };
}

/** The server's crash as gateway h sees it (the oracle's notice); the client gets what h sent it. */
export function crashOn(h: Harness, o: FakeOracle, c: Client): void {
  h.now += 10;
  o.emit('crashed');
  for (const x of toClient(h.drain())) c.receive(x);
}

/** The service listens again: gateway h's rebuild SYN. */
export function synOn(h: Harness, o: FakeOracle): Seg {
  h.now += 100;
  o.emit('listening');
  return h.drain().find((x) => x.flags === TCP_SYN)!;
}

/** More bytes both ways, then byte-exact at both ends against `s` (which has the whole in-stream). */
export async function carriesOn(h: Harness, c: Client, s: Server, more = 300): Promise<void> {
  h.tun.inject(...c.write(more)).flush();
  await h.run(c, s);
  expect(s.bytes().equals(inBytes(0, c.sent))).toBe(true);
  expect(c.bytes().equals(outBytes(0, outputFor(c.sent)))).toBe(true);
  expect(c.resets).toBe(0);
}

/** A server crash on gateway h, rebuilt into a fresh incarnation from the log. */
export async function crashAndRebuild(h: Harness, o: FakeOracle, c: Client, isn: Seq): Promise<Server> {
  crashOn(h, o, c);
  const s = new Server({ isn, ts: 77 });
  h.tun.inject(...s.receive(synOn(h, o))).flush();
  await h.run(c, s);
  return s;
}

/** Gateway 2's rebuild of an adopted connection: its SYN (from `out`) answered by a new incarnation after the client spoke. */
export async function rebuiltBy(h: Harness, c: Client, out: Seg[], s: Server): Promise<void> {
  const syn = out.find((x) => x.flags === TCP_SYN)!;
  expect(syn.seq).toBe(c.seq(-1));
  h.tun.inject(c.ack()).flush(); // the client's next segment: its numbers
  h.tun.inject(...s.receive(syn)).flush();
  await h.run(c, s);
  expect(recOf(h.flow())).toBeNull();
}
