/**
 * The wrappers' drop-reason vocabulary (src/wrappers/contract.ts): the table itself, the one
 * counter, and what the gateway exports of it: every reason in /metrics `ftcp_drops_total` and
 * in /status `drops` (zero or not), a reason counted where a wrapper returns it.
 */
import { describe, it, expect } from 'vitest';
import {
  DROP_REASON_COUNT, DropReason, FORWARD, WrapperDrops, dropReasonName, formatDrops,
} from '../../../src/wrappers/contract.js';
import { FIRST_DROP, VERDICT_COUNT, verdictName } from '../../../src/wire/packet.js';
import { emitTcpPacket } from '../../../src/wire/repr.js';
import { Harness, Client, Server, FakeOracle, connect, CLIENT, SERVER, SPORT, TCP_ACK, TCP_FIN, TCP_RST } from '../../support/gateway-harness.js';

const reasons = Object.entries(DropReason);
const wireDrops = Array.from({ length: VERDICT_COUNT - FIRST_DROP }, (_, i) => verdictName(FIRST_DROP + i));

describe('the drop-reason table', () => {
  it('numbers the reasons 1..DROP_REASON_COUNT-1, each once, FORWARD (0) apart, each with its name', () => {
    const values = reasons.map(([, v]) => v as number).sort((a, b) => a - b);
    expect(values).toEqual(Array.from({ length: DROP_REASON_COUNT - 1 }, (_, i) => i + 1));
    expect(FORWARD).toBe(0);
    expect(dropReasonName(FORWARD)).toBe('FORWARD');
    for (const [name, v] of reasons) expect(dropReasonName(v)).toBe(name);
    expect(dropReasonName(DROP_REASON_COUNT)).toBe(`UNKNOWN_${DROP_REASON_COUNT}`);
  });

  it('shares no name with the wire verdicts (one metric family, one /status map for both)', () => {
    const wire = new Set(wireDrops);
    expect(reasons.filter(([name]) => wire.has(name))).toEqual([]);
  });
});

describe('WrapperDrops', () => {
  it('counts by reason, ignores FORWARD, counts anything outside the table apart, stable shape', () => {
    const d = new WrapperDrops();
    d.count(DropReason.ABSORBED);
    d.count(DropReason.ABSORBED);
    d.count(DropReason.DEAD_SEQ);
    d.count(FORWARD);
    d.count(999);
    expect(d.get(DropReason.ABSORBED)).toBe(2);
    expect(d.get(DropReason.DEAD_SEQ)).toBe(1);
    expect(d.get(FORWARD)).toBe(0);
    expect(d.total).toBe(4);
    const s = d.snapshot();
    expect(Object.keys(s)).toEqual([...reasons.map(([n]) => n), 'UNKNOWN']);
    expect(s).toMatchObject({ ABSORBED: 2, DEAD_SEQ: 1, UNKNOWN: 1, STALE_PORT: 0 });
  });

  it('formatDrops shows the non-zero reasons, largest first, or none', () => {
    expect(formatDrops({ A: 0, B: 3, C: 7, D: 3 })).toBe('C 7, B 3, D 3');
    expect(formatDrops({ A: 0 })).toBe('none');
    expect(formatDrops(undefined)).toBe('none');
  });
});

/** The value of the sample `line` (e.g. `ftcp_drops_total{reason="X"}`) in a metrics text, or undefined. */
function sample(metrics: string, line: string): number | undefined {
  const l = metrics.split('\n').find((x) => x.startsWith(`${line} `));
  return l === undefined ? undefined : Number(l.slice(line.length + 1));
}

/** A gateway with one established, logged connection and a fake liveness oracle. */
async function connected(): Promise<{ o: FakeOracle; h: Harness; c: Client; s: Server }> {
  const o = new FakeOracle();
  const h = new Harness({ oracle: o });
  const c = new Client({ isn: 1000, ts: 1 });
  const s = new Server({ isn: 5_000_000, ts: 1 });
  await connect(h, c, s);
  return { o, h, c, s };
}

describe('the gateway exports every reason', () => {
  it('a fresh gateway: every wrapper reason and every wire drop in /metrics and /status, at 0', () => {
    const h = new Harness();
    const m = h.gw.metrics();
    const st = h.gw.snapshot().drops as Record<string, number>;
    for (const name of [...reasons.map(([n]) => n), ...wireDrops]) {
      expect(sample(m, `ftcp_drops_total{reason="${name}"}`), name).toBe(0);
      expect(st[name], name).toBe(0);
    }
    expect(m.match(/^ftcp_drops_total\{/gm)).toHaveLength(reasons.length + wireDrops.length);
  });

  it('a dead incarnation\'s segment while masked: counted once as SERVER_WHILE_MASKED, in /metrics and /status', async () => {
    const { o, h, s } = await connected();
    o.emit('crashed');
    h.drain();
    expect(h.send(s.ackNow(1000))).toHaveLength(0);
    expect(h.gw.wrapperDrops.get(DropReason.SERVER_WHILE_MASKED)).toBe(1);
    expect(h.gw.wrapperDrops.total).toBe(1);
    expect(sample(h.gw.metrics(), 'ftcp_drops_total{reason="SERVER_WHILE_MASKED"}')).toBe(1);
    expect((h.gw.snapshot().drops as Record<string, number>).SERVER_WHILE_MASKED).toBe(1);
  });

  it('a RST answering a new SYN while the service is down: SYN_RST_WHILE_DOWN (south\'s reason, no north stat)', async () => {
    const { o, h } = await connected();
    o.emit('crashed');
    h.drain();
    expect(h.gw.north.isDown(h.svc)).toBe(true);
    const late = new Client({ isn: 77_000, ts: 1, port: 40002 });
    expect(h.send(late.syn()).filter((x) => x.dst === SERVER)).toHaveLength(1);
    const rst = emitTcpPacket({ src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: 40002, seq: 0, ack: late.seq(0), flags: TCP_RST | TCP_ACK, window: 0 });
    expect(h.send(rst)).toHaveLength(0);
    expect(h.gw.wrapperDrops.get(DropReason.SYN_RST_WHILE_DOWN)).toBe(1);
    expect('synRstsDropped' in h.gw.north.stats).toBe(false);
  });

  it('a FIN held for the verdict, released alive and held again for stability: both reasons counted (the release path too)', async () => {
    const { o, h, c, s } = await connected();
    h.autoStable = false;
    h.send(...c.write(100)); // logged, not stable
    const fin = emitTcpPacket({ src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: c.port, seq: s.seq(s.sndNxt), ack: c.seq(100), flags: TCP_ACK | TCP_FIN, window: 1000 });
    expect(h.send(fin)).toHaveLength(0);
    expect(h.gw.wrapperDrops.get(DropReason.HELD_FOR_VERDICT)).toBe(1);
    o.answer('alive');
    await h.settle();
    expect(h.gw.masking.stats.releasedAlive).toBe(1);
    expect(h.drain()).toHaveLength(0); // its ack is beyond stable: held whole
    expect(h.gw.wrapperDrops.get(DropReason.FIN_HELD_UNSTABLE)).toBe(1);
    expect(h.gw.wrapperDrops.total).toBe(2);
    h.log.stabilize(h.logId(), 100);
    expect(h.drain().filter((x) => x.dst === CLIENT && (x.flags & TCP_FIN) !== 0)).toHaveLength(1); // the FIN goes out
  });
});
