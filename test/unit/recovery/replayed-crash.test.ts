/**
 * Issue 10, item 7, through the whole gateway: a restarted gateway (fake TUN, ManualLog) whose
 * liveness oracle is the real tracker (src/supervisor/liveness.ts) on the harness clock. A
 * recorded, authentic CRASHED notice reaches it before the live supervisor's first heartbeat,
 * while a connection of the live server is open. The connection must stay untouched: no
 * masking, and no reaping RST or spoofed SYN toward the live server.
 */
import { describe, it, expect } from 'vitest';
import { testLogger } from '../../support/test-logger.js';
import { Harness, Client, Server, FakeOracle, connect, hasFlag, outBytes, outputFor, SERVER, SVC_NAME, TCP_RST, TCP_SYN } from '../../support/gateway-harness.js';
import { LivenessTracker } from '../../../src/supervisor/liveness.js';
import { encodeNotice, newBootId, type Notice, type NoticeType } from '../../../src/supervisor/messages.js';
import type { LivenessVerdict } from '../../../src/recovery/verdict.js';
import { recOf } from '../../../src/recovery/rebuild.js';

const KEY = Buffer.from('replayed-crash-test-key-000000');

/** The harness's oracle interface backed by the real state machine. */
class TrackerOracle extends FakeOracle {
  readonly t: LivenessTracker;
  constructor(now: () => number) {
    super();
    this.t = new LivenessTracker(KEY, {
      now,
      heartbeatMs: 100,
      silenceMs: 1000, // as `ftcp gateway` sets it
      log: testLogger(),
      emit: (ev, service) => {
        if (ev === 'crashed' || ev === 'silent' || ev === 'listening') this.emit(ev, service);
      },
    });
  }
  override waitVerdict(service: string, timeoutMs: number): Promise<LivenessVerdict> {
    return this.t.waitVerdict(service, timeoutMs, true, 25);
  }
  override state(service: string): string {
    return this.t.state(service);
  }
  get counters(): object {
    return this.t.counters;
  }
}

function notice(boot: string, type: NoticeType, seq: number, generation: number, sentAt: number, extra: Partial<Notice> = {}): Buffer {
  return encodeNotice({ v: 1, type, service: SVC_NAME, boot, seq, generation, sentAt, ...extra }, KEY);
}

describe('a replayed crash notice at a restarted gateway', () => {
  for (const crashed of [{ gen: 2, what: 'the running generation' }, { gen: 1, what: 'the previous generation' }]) {
    it(`of ${crashed.what}: the live server's connection is neither masked nor rebuilt`, async () => {
      let h: Harness | null = null;
      const o = new TrackerOracle(() => h!.now);
      h = new Harness({ oracle: o, holdMs: 1200 });
      const c = new Client({ isn: 0x20000000, ts: 1000 });
      const s = new Server({ isn: 0x30000000, ts: 9000 });
      await connect(h, c, s);
      h.tun.inject(...c.write(400)).flush();
      await h.run(c, s);

      const boot = newBootId();
      const wall = 1_800_000_000_000;
      // recorded a minute ago (seq 12); the live supervisor runs generation 2, at seq 700
      expect(o.t.receive(notice(boot, 'crashed', 12, crashed.gen, wall - 60_000, { signal: 'SIGKILL' }))).toBe('accepted');
      await h.settle();
      h.tick(80);
      expect(o.t.receive(notice(boot, 'heartbeat', 700, 2, wall, { alive: true, listening: true }))).toBe('accepted');
      const out: ReturnType<Harness['drain']> = [];
      for (let i = 1; i <= 15; i++) {
        out.push(...h.tick(100));
        o.t.receive(notice(boot, 'heartbeat', 700 + i, 2, wall + 100 * i, { alive: true, listening: true }));
        o.t.tick();
        h.gw.north.tick();
        await h.settle();
        out.push(...h.drain());
      }
      expect(out.filter((x) => x.dst === SERVER && (hasFlag(x, TCP_RST) || hasFlag(x, TCP_SYN)))).toEqual([]);
      expect(h.gw.north.stats.crashes).toBe(0);
      expect(recOf(h.flow())).toBeNull();
      expect(o.t.state(SVC_NAME)).toBe('LISTENING');
      // the connection goes on, end to end
      h.tun.inject(...c.write(300)).flush();
      await h.run(c, s);
      expect(c.bytes().equals(outBytes(0, outputFor(700)))).toBe(true);
      expect(c.resets).toBe(0);
      // the superseded replay is visible in status and metrics
      expect((h.gw.snapshot().masking as { notices: Record<string, number> }).notices).toMatchObject({ superseded: 1, confirmed: 0 });
      expect(h.gw.metrics()).toContain('ftcp_oracle_superseded_total 1');
    });
  }
});
