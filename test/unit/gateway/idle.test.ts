/**
 * Idle connections stay protected (issue 10, item 5): the idle timeout releases only half-open
 * and unprotected connections; an established protected connection idle for longer is still
 * masked and rebuilt at a crash. The flow table is bounded by maxFlows instead (new
 * connections beyond it pass unprotected, counted); segments of connections the gateway does
 * not know are counted; a connection the log expires goes on unprotected, loudly.
 * Through the whole pipeline on a FakeTun (test/unit/recovery/harness.ts).
 */
import { describe, it, expect } from 'vitest';
import {
  Harness, Client, Server, FakeOracle, connect, hasFlag, outBytes, outputFor, parseSeg,
  CLIENT, SERVER, SPORT, TCP_FIN, TCP_RST, TCP_SYN,
} from '../../support/gateway-harness.js';
import { emitTcpPacket } from '../../../src/wire/repr.js';
import { recOf } from '../../../src/recovery/rebuild.js';

const IDLE = 600_000; // the harness's idle timeout

async function established(o: FakeOracle, h: Harness, port = 40000) {
  const c = new Client({ isn: 0x7fff0000 + port, ts: 1000, port });
  const s = new Server({ isn: 0x12340000 + port, ts: 50_000 });
  await connect(h, c, s);
  h.tun.inject(...c.write(500)).flush();
  await h.run(c, s);
  expect(c.bytes().equals(outBytes(0, outputFor(500)))).toBe(true);
  return { c, s };
}

describe('idle connections', () => {
  it('an established connection idle past the idle timeout is still protected: masked and rebuilt at a crash', async () => {
    const o = new FakeOracle();
    const h = new Harness({ oracle: o });
    const { c } = await established(o, h);
    h.now += 3 * IDLE; // hours of silence
    h.gw.south.sweep();
    expect(h.gw.table.size).toBe(1);
    expect(h.flow().state).toBe('ESTABLISHED');
    expect(h.gw.south.stats.flowsExpired).toBe(0);

    o.emit('crashed');
    const masked = h.drain();
    expect(masked.filter((x) => x.dst === CLIENT && (hasFlag(x, TCP_FIN) || hasFlag(x, TCP_RST)))).toEqual([]);
    expect(recOf(h.flow())?.phase).toBe('MASKED');
    const s2 = new Server({ isn: 0x0badf00d, ts: 3 });
    h.now += 100;
    o.emit('listening');
    const seen = await h.run(c, s2);
    expect(h.gw.north.stats.caughtUp).toBe(1);
    expect(recOf(h.flow())).toBeNull();
    // traffic resumes through the rebuilt connection, byte-exact, no FIN or RST at the client
    h.tun.inject(...c.write(300)).flush();
    seen.push(...(await h.run(c, s2)));
    expect(c.bytes().equals(outBytes(0, outputFor(800)))).toBe(true);
    expect(seen.filter((x) => x.dst === CLIENT && (hasFlag(x, TCP_FIN) || hasFlag(x, TCP_RST)))).toEqual([]);
    expect(c.resets).toBe(0);
    expect(c.violations).toEqual([]);
  });

  it('a half-open connection (SYN, no SYN-ACK) is released after min(idle timeout, halfOpenTimeoutMs)', async () => {
    const h = new Harness({ south: { halfOpenTimeoutMs: 60_000 } });
    const c = new Client({ isn: 5, ts: 1 });
    h.send(c.syn());
    expect(h.flow().state).toBe('SYN_SEEN');
    h.now += 59_999;
    h.gw.south.sweep();
    expect(h.gw.table.size).toBe(1);
    h.now += 1;
    h.gw.south.sweep();
    expect(h.gw.table.size).toBe(0);
    expect(h.gw.south.stats.flowsExpired).toBe(1);
  });

  it('a connection the log expires while open goes on unprotected (counted), not forgotten; it then idles out', async () => {
    const o = new FakeOracle();
    const h = new Harness({ oracle: o });
    const { c, s } = await established(o, h);
    h.gw.south.onLogExpired(h.flow().logId);
    expect(h.gw.table.size).toBe(1);
    expect(h.flow().unprotected).toBe(true);
    expect(h.gw.south.stats.flowsLogExpired).toBe(1);
    // a crash does not mask it (nothing to rebuild from): its packets pass as they are
    o.emit('crashed');
    expect(recOf(h.flow())).toBeNull();
    h.tun.inject(...c.write(100)).flush();
    await h.run(c, s);
    expect(c.bytes().equals(outBytes(0, outputFor(600)))).toBe(true);
    h.now += IDLE;
    h.gw.south.sweep();
    expect(h.gw.table.size).toBe(0);
  });
});

describe('the flow table bound (maxFlows)', () => {
  it('new connections beyond it pass unprotected, counted; status and metrics show the bound', async () => {
    const o = new FakeOracle();
    const h = new Harness({ oracle: o, south: { maxFlows: 2 } });
    await established(o, h, 40001);
    await established(o, h, 40002);
    const c3 = new Client({ isn: 77, ts: 1, port: 40003 });
    const out = h.send(c3.syn());
    expect(out).toHaveLength(1); // forwarded
    expect(hasFlag(out[0]!, TCP_SYN)).toBe(true);
    expect(h.gw.table.size).toBe(2);
    expect(h.gw.south.stats.flowsOverCap).toBe(1);
    const snap = h.gw.snapshot();
    expect(snap.flowLimits).toMatchObject({ maxFlows: 2, idleTimeoutMs: IDLE });
    expect((snap.south as Record<string, number>).flowsOverCap).toBe(1);
    const m = h.gw.metrics();
    expect(m).toContain('ftcp_max_flows 2');
    expect(m).toContain('ftcp_south_flows_over_cap_total 1');
    // its later segments are not protected: counted as unknown mid-stream segments
    const s3 = new Server({ isn: 99, ts: 1 });
    h.tun.inject(...s3.receive(parseSeg(c3.syn()))).flush();
    await h.run(c3, s3);
    h.tun.inject(...c3.write(200)).flush();
    await h.run(c3, s3);
    expect(c3.bytes().equals(outBytes(0, outputFor(200)))).toBe(true);
    expect(h.gw.south.stats.unknownMidstream).toBeGreaterThan(0);
    expect(h.gw.metrics()).toMatch(/ftcp_south_unknown_midstream_total [1-9]/);
  });

  it('a mid-stream segment of a protected service with no flow passes, counted', () => {
    const h = new Harness();
    const data = emitTcpPacket({ src: CLIENT, dst: SERVER, srcPort: 45555, dstPort: SPORT, seq: 1000, ack: 2000, flags: 0x18, window: 100, payload: Buffer.alloc(10, 1) });
    expect(h.send(data)).toHaveLength(1);
    expect(h.gw.south.stats.unknownMidstream).toBe(1);
    expect(h.gw.table.size).toBe(0);
  });
});
