/**
 * A connection being recovered that the flow table forgets (released: replaced by a new SYN
 * on its tuple, or any other release) is not recovered any longer: no keepalive with its
 * stale numbers reaches the client, the new incarnation's half-built connection is reset,
 * and it stops counting as recovering. Found by the gateway fuzz (seed 2, scripts/fuzz
 * --packets 50000): a flow replaced during its replay, whose last client window was 0 (so
 * no progress deadline applied), kept acking the client for ever (issue 11 item 5).
 */
import { describe, it, expect } from 'vitest';
import { Harness, Client, Server, FakeOracle, connect, hasFlag, CLIENT, SERVER, TCP_ACK, TCP_RST, type Seg } from './harness.js';

const toClient = (l: Seg[]) => l.filter((x) => x.dst === CLIENT);
const toServer = (l: Seg[]) => l.filter((x) => x.dst === SERVER);

async function masked(): Promise<{ h: Harness; o: FakeOracle; c: Client; s: Server }> {
  const c = new Client({ isn: 0x7000_0000, ts: 1000 });
  const s = new Server({ isn: 0x1000_0000, ts: 500_000 });
  const o = new FakeOracle();
  const h = new Harness({ oracle: o });
  await connect(h, c, s);
  h.tun.inject(...c.write(1000)).flush();
  await h.run(c, s);
  h.now += 10;
  o.emit('crashed');
  h.drain();
  expect(h.flow().rec?.phase).toBe('MASKED');
  return { h, o, c, s };
}

/** What a release does (SouthWrapper.release): out of the table, its log connection closed. */
function forget(h: Harness): void {
  const f = h.flow();
  h.gw.table.remove(h.svc, f);
  h.log.close(f.logId);
}

describe('a connection the flow table forgot while it was recovered', () => {
  it('masked: no more keepalive ACKs to the client, no longer recovering', async () => {
    const { h } = await masked();
    expect(toClient(h.tick(300)).length).toBeGreaterThan(0); // the keepalive, while it is known
    forget(h);
    const later: Seg[] = [];
    for (let i = 0; i < 10; i++) later.push(...h.tick(300));
    expect(toClient(later)).toEqual([]);
    expect(h.gw.north.recovering).toBe(0);
    expect(h.gw.north.stats.forgottenEnded).toBe(1);
  });

  it('replaying with a closed client window: the new incarnation is reset, the client hears nothing more', async () => {
    const { h, o, c } = await masked();
    // The client's last word: a zero window (no progress deadline applies while it lasts).
    c.window = 0;
    h.send(c.ack());
    const s2 = new Server({ isn: 0x2000_0000, ts: 900_000, window: 4 }); // a small window: the replay takes rounds
    h.now += 100;
    o.emit('listening');
    const syn = toServer(h.drain());
    expect(syn.length).toBeGreaterThan(0);
    h.tun.inject(...syn.flatMap((x) => s2.receive(x))).flush();
    await h.settle();
    expect(h.flow().rec?.phase).toBe('REPLAY');
    h.drain(); // the handshake's ACK and the first replayed bytes
    forget(h);
    const later: Seg[] = [];
    for (let i = 0; i < 20; i++) later.push(...h.tick(1000));
    expect(toClient(later)).toEqual([]);
    const rsts = toServer(later).filter((x) => hasFlag(x, TCP_RST));
    expect(rsts).toHaveLength(1);
    expect(toServer(later).filter((x) => !hasFlag(x, TCP_RST) && hasFlag(x, TCP_ACK))).toEqual([]); // no replay, no probe
    expect(h.gw.north.recovering).toBe(0);
  });
});
