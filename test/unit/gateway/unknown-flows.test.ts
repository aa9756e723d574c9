/**
 * Connections the gateway has no flow for (issue 14 item 2: after a gateway restart, until
 * adoption from the log exists) pass as before, unprotected, but never silently: each is
 * counted once in unknownFlows and logged once, the log lines rate-limited, the memory of
 * them bounded (MAX_UNKNOWN_TRACKED), the bounds in `limits` and /metrics.
 * Through the whole pipeline on a FakeTun.
 */
import { describe, it, expect, vi } from 'vitest';
import { Harness, CLIENT, SERVER, SPORT } from '../../support/gateway-harness.js';
import { emitTcpPacket } from '../../../src/wire/repr.js';
import { MAX_UNKNOWN_TRACKED, UNKNOWN_LOG_PER_S } from '../../../src/wrappers/south-flows.js';
import { TCP_ACK, TCP_FIN, TCP_PSH } from '../../../src/wire/tcp.js';

/** A client data segment of an established connection the gateway never saw open. */
function midstream(port: number, seq: number, flags = TCP_ACK | TCP_PSH, src = CLIENT): Buffer {
  return emitTcpPacket({ src, dst: SERVER, srcPort: port, dstPort: SPORT, seq, ack: 2000, flags, window: 500, payload: Buffer.alloc(10, 7) });
}

function warnSpy(h: Harness) {
  const logger = (h.gw.south as unknown as { logger: { warn: (...a: unknown[]) => void } }).logger;
  return vi.spyOn(logger, 'warn');
}

describe('unknown connections (no SYN seen)', () => {
  it('pass, each counted once and logged once however many segments it sends', () => {
    const h = new Harness();
    const warn = warnSpy(h);
    for (let i = 0; i < 5; i++) {
      expect(h.send(midstream(41000, 1000 + 10 * i))).toHaveLength(1); // forwarded
      expect(h.send(midstream(41001, 5000 + 10 * i))).toHaveLength(1);
    }
    const st = h.gw.south.stats;
    expect(st.unknownFlows).toBe(2);
    expect(st.unknownMidstream).toBe(10);
    expect(h.gw.table.size).toBe(0); // nothing adopted: unprotected
    const lines = warn.mock.calls.filter((c) => String(c[1]).includes('does not know'));
    expect(lines).toHaveLength(2);
    expect(lines.map((c) => (c[0] as { client: string }).client).sort()).toEqual(['198.18.1.2:41000', '198.18.1.2:41001']);
    const m = h.gw.metrics();
    expect(m).toContain('ftcp_south_unknown_flows_total 2');
    expect(m).toContain(`ftcp_limit{name="maxUnknownTracked"} ${MAX_UNKNOWN_TRACKED}`);
    expect(m).toContain(`ftcp_limit{name="unknownLogPerS"} ${UNKNOWN_LOG_PER_S}`);
    expect((h.gw.snapshot().south as Record<string, number>).unknownFlows).toBe(2);
  });

  it('log lines are rate-limited per second, the rest counted as suppressed', () => {
    const h = new Harness();
    const warn = warnSpy(h);
    const n = UNKNOWN_LOG_PER_S * 4;
    for (let i = 0; i < n; i++) h.send(midstream(42000 + i, 1000));
    const st = h.gw.south.stats;
    expect(st.unknownFlows).toBe(n);
    expect(warn.mock.calls.filter((c) => String(c[1]).includes('does not know'))).toHaveLength(UNKNOWN_LOG_PER_S);
    expect(st.unknownFlowLogsSuppressed).toBe(n - UNKNOWN_LOG_PER_S);
    h.now += 1000; // the next second: lines again
    h.send(midstream(43000, 1000));
    expect(warn.mock.calls.filter((c) => String(c[1]).includes('does not know'))).toHaveLength(UNKNOWN_LOG_PER_S + 1);
  });

  it('a FIN forgets the connection: a new one from the same port counts again', () => {
    const h = new Harness();
    h.send(midstream(44000, 1000));
    h.send(midstream(44000, 1010, TCP_ACK | TCP_FIN));
    h.send(midstream(44000, 9000));
    expect(h.gw.south.stats.unknownFlows).toBe(2);
  });

  it('memory is bounded: past MAX_UNKNOWN_TRACKED the oldest is forgotten, counted', () => {
    const h = new Harness();
    const total = MAX_UNKNOWN_TRACKED + 3;
    for (let i = 0; i < total; i++) h.send(midstream(10000 + (i % 50000), 1000, TCP_ACK | TCP_PSH, CLIENT + Math.floor(i / 50000)));
    const st = h.gw.south.stats;
    expect(st.unknownFlows).toBe(total);
    expect(st.unknownFlowsForgotten).toBe(3);
    // The first was forgotten: its next segment counts it again; the last is still known.
    h.send(midstream(10000, 1010));
    expect(st.unknownFlows).toBe(total + 1);
    h.send(midstream(10000 + total - 1, 1010));
    expect(st.unknownFlows).toBe(total + 1);
  });
});
