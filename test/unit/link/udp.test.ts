import { afterEach, describe, expect, it } from 'vitest';
import { UdpLink } from '../../../src/link/udp.js';
import { checkMessage, Flow, KEY } from './harness.js';

const links: UdpLink[] = [];
afterEach(async () => {
  await Promise.all(links.splice(0).map((l) => l.close()));
});

/** Two UdpLinks on 127.0.0.1, two paths each (= two loopback ports each). */
async function udpPair(ab: Flow, ba: Flow) {
  const local = [
    { address: '127.0.0.1', port: 0 },
    { address: '127.0.0.1', port: 0 },
  ];
  const mk = (out: Flow, inn: Flow) =>
    UdpLink.open({
      key: KEY,
      local,
      onMessage: (m) => inn.delivered.push(checkMessage(m)),
      onLost: (ids, reason) => {
        for (const id of ids) out.lost.set(id - 1, reason);
      },
      onWritable: () => out.pump(),
      onPeerState: (s) => out.events.push(s),
    });
  const a = await mk(ab, ba);
  links.push(a);
  const b = await mk(ba, ab);
  links.push(b);
  for (const p of [0, 1]) {
    a.setRemote(p, b.localAddress(p)!);
    b.setRemote(p, a.localAddress(p)!);
  }
  ab.from = a.endpoint;
  ba.from = b.endpoint;
  return { a, b };
}

/** Pump every few ms until `done` or the deadline (real time). */
async function until(flows: Flow[], done: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (const f of flows) if (f.from.peerState === 'active') f.pump();
    if (done()) return true;
    await new Promise((r) => setTimeout(r, 3));
  }
  return done();
}

// Every 40th message is 100 KB (84 chunks); the rest are small.
const size = (i: number) => (i % 40 === 0 ? 100_000 : 32 + (i % 500));

describe('UdpLink on loopback', () => {
  it('exchanges 10,000 messages (large ones chunked) in order exactly once', async () => {
    const ab = new Flow(10_000, size);
    const ba = new Flow(2_000);
    const { a, b } = await udpPair(ab, ba);
    expect(await until([ab, ba], () => ab.resolved() && ba.resolved(), 20_000)).toBe(true);
    ab.check();
    ba.check();
    expect(ab.lost.size).toBe(0);
    expect(ab.delivered.length).toBe(10_000);
    expect(ba.delivered.length).toBe(2_000);
    expect(a.endpoint.counters.forged + b.endpoint.counters.forged).toBe(0);
  }, 25_000);

  it('one path socket closed mid-run: traffic switches paths, nothing lost', async () => {
    const ab = new Flow(10_000, size);
    const ba = new Flow(0);
    const { a, b } = await udpPair(ab, ba);
    expect(await until([ab], () => ab.delivered.length >= 3000, 10_000)).toBe(true);
    const dead = a.endpoint.currentPath;
    a.closePath(dead);
    expect(await until([ab], () => ab.resolved(), 20_000)).toBe(true);
    ab.check();
    expect(ab.lost.size).toBe(0);
    expect(ab.delivered.length).toBe(10_000);
    expect(a.endpoint.counters.pathSwitches).toBeGreaterThan(0);
    expect(a.endpoint.currentPath).toBe(1 - dead);
    expect(b.endpoint.currentPath).toBe(1 - dead);
    expect(a.sendErrors).toBeGreaterThan(0);
  }, 35_000);
});
