/**
 * The rebuild's state machine (src/recovery/rebuild.ts), driven directly: a NorthWrapper on a
 * flow table, a log whose reads the test settles, an injected clock and a logger that keeps
 * its lines. Every transition is logged from → to by the one transition function; a failure
 * carries its code, counted per code; a transition not in the table is refused and counted.
 */
import { describe, it, expect } from 'vitest';
import { pino } from 'pino';
import { NorthWrapper } from '../../../src/recovery/engine.js';
import { defaultNorthOptions, type NorthOptions } from '../../../src/recovery/options.js';
import { FAILURE_CODES, failuresByCode, type FailureCode, type Phase, type Rebuild } from '../../../src/recovery/rebuild.js';
import { FlowTable } from '../../../src/flow/table.js';
import { Flow } from '../../../src/flow/flow.js';
import { PacketInfo, parsePacket } from '../../../src/wire/packet.js';
import { emitTcpPacket, parseTcpPacket } from '../../../src/wire/repr.js';
import { encodeTcpOptions } from '../../../src/wire/tcp-options.js';
import { seqAdd, type Seq } from '../../../src/wire/seq.js';
import { TCP_ACK, TCP_RST, TCP_SYN } from '../../../src/wire/tcp.js';
import { ManualLog } from '../../support/manual-log.js';
import { CLIENT, SERVER, CPORT, SPORT } from '../../support/segments.js';
import { recOf, xlateOf } from '../../../src/recovery/rebuild.js';

const C_ISN = 0xfffffff0 as Seq;
const S_ISN = 0x70000000 as Seq;
const S2_ISN = 0x12345678 as Seq;
const SYN_OPTS = encodeTcpOptions({ mss: 1460 });

/** A log whose reads stay pending until the test settles them. */
class PendingReadLog extends ManualLog {
  readonly reads: Array<{ resolve: (b: Buffer) => void; reject: (e: Error) => void }> = [];
  override read(): Promise<Buffer> {
    return new Promise((resolve, reject) => this.reads.push({ resolve, reject }));
  }
}

/** Exposes the transition function, to try transitions the protocol never asks for. */
class OpenNorth extends NorthWrapper {
  tryEnter(flow: Flow, r: Rebuild, next: Phase, why: string): boolean {
    return this.enter(flow, r, next, why);
  }
}

interface Rig {
  north: OpenNorth;
  table: FlowTable;
  flow: Flow;
  log: PendingReadLog;
  sent: Buffer[];
  lines: Array<Record<string, unknown>>;
  clock: { now: number };
}

function rig(opts: Partial<NorthOptions> = {}): Rig {
  const table = new FlowTable([{ ip: SERVER, port: SPORT }]);
  const svc = table.allServices()[0]!;
  const clock = { now: 5_000_000 };
  const flow = new Flow(CLIENT * 65536 + CPORT, CLIENT, CPORT, SERVER, SPORT, C_ISN, SYN_OPTS, clock.now);
  flow.serverIsn = S_ISN;
  flow.serverSynOptions = SYN_OPTS;
  flow.to('ESTABLISHED', 'test');
  table.add(svc, flow);
  const log = new PendingReadLog();
  table.bindLogId(flow, 1);
  const sent: Buffer[] = [];
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const north = new OpenNorth(table, log, (b, off, len) => sent.push(Buffer.from(b.subarray(off, off + len))), { ...defaultNorthOptions, ...opts }, logger, () => clock.now);
  return { north, table, flow, log, sent, lines, clock };
}

/** The transitions logged so far, as "FROM → TO". */
function transitions(w: Rig): string[] {
  return w.lines.filter((l) => typeof l.from === 'string' && typeof l.to === 'string' && String(l.msg).startsWith('rebuild ')).map((l) => `${String(l.from)} → ${String(l.to)}`);
}

function svcOf(w: Rig) {
  return w.table.allServices()[0]!;
}

/** The new incarnation answers the gateway's SYN, with `options`. */
function synAck(w: Rig, options = SYN_OPTS): void {
  const syn = w.sent.map((b) => parseTcpPacket(b)).find((s) => s.flags === TCP_SYN);
  expect(syn).toBeDefined();
  const buf = emitTcpPacket({
    src: SERVER, dst: CLIENT, srcPort: SPORT, dstPort: syn!.srcPort, seq: S2_ISN, ack: seqAdd(C_ISN, 1),
    flags: TCP_SYN | TCP_ACK, window: 65535, options,
  });
  const p = new PacketInfo();
  parsePacket(buf, 0, buf.length, p);
  w.north.fromServer(svcOf(w), buf, p);
}

function rec(w: Rig): Rebuild | null {
  return recOf(w.flow) as Rebuild | null;
}

describe('the rebuild state machine', () => {
  it('logs every transition from → to, through every phase of a rebuild, and sets and clears the flow rebuild (recOf) with it', () => {
    const w = rig();
    w.north.crash(svcOf(w), 'test crash');
    expect(rec(w)?.phase).toBe('MASKED');
    w.clock.now += 10;
    w.north.listening(svcOf(w));
    expect(rec(w)?.phase).toBe('HANDSHAKE');
    w.clock.now += 10;
    synAck(w);
    expect(rec(w)?.phase).toBe('REPLAY');
    // Nothing to replay and nothing the client had: the next tick finds the replay at its
    // target (ABSORB) and the output regenerated (LIVE).
    w.clock.now += 10;
    w.north.tick();
    expect(recOf(w.flow)).toBeNull();
    expect(xlateOf(w.flow)).not.toBeNull();
    expect(transitions(w)).toEqual(['LIVE → MASKED', 'MASKED → HANDSHAKE', 'HANDSHAKE → REPLAY', 'REPLAY → ABSORB', 'ABSORB → LIVE']);
    const msgs = w.lines.filter((l) => String(l.msg).startsWith('rebuild ') && l.to !== undefined).map((l) => String(l.msg));
    expect(msgs[0]).toBe('rebuild LIVE → MASKED (record set)');
    expect(msgs[4]).toBe('rebuild ABSORB → LIVE (record dropped)');
    // The transition function stamped the timeline on the injected clock.
    const tl = w.north.timelines[0]!;
    expect([tl.handshakesDoneAt, tl.replayDoneAt, tl.caughtUpAt]).toEqual([w.clock.now - 10, w.clock.now, w.clock.now]);
    expect([tl.handshakes, tl.replayed, tl.caughtUp]).toEqual([1, 1, 1]);
    expect(w.north.stats.caughtUp).toBe(1);
    expect(w.north.recovering).toBe(0);
    expect(w.north.stats.illegalTransitions).toBe(0);
  });

  it('a crash during the handshake starts again at MASKED with a fresh record, and frees the handshake slot', () => {
    const w = rig({ maxParallel: 1 });
    w.north.crash(svcOf(w), 'first');
    w.north.listening(svcOf(w));
    const first = rec(w)!;
    expect(first.phase).toBe('HANDSHAKE');
    w.north.crash(svcOf(w), 'second');
    const second = rec(w)!;
    expect(second).not.toBe(first);
    expect(second.phase).toBe('MASKED');
    // The slot the first handshake held is free again: with maxParallel 1 the next starts.
    w.north.listening(svcOf(w));
    expect(rec(w)?.phase).toBe('HANDSHAKE');
    expect(transitions(w)).toEqual(['LIVE → MASKED', 'MASKED → HANDSHAKE', 'HANDSHAKE → MASKED', 'MASKED → HANDSHAKE']);
  });

  it('FAILED carries its code, counted per code; a failed record is forgotten as ENDED', async () => {
    const o = defaultNorthOptions;
    const cases: Array<[FailureCode, (w: Rig) => void]> = [
      ['MASK_DEADLINE', (w) => {
        w.clock.now += o.maskDeadlineMs + 1;
        w.north.tick();
      }],
      ['HANDSHAKE_DEADLINE', (w) => {
        w.north.listening(svcOf(w));
        w.clock.now += o.rebuildDeadlineMs + 1;
        w.north.tick();
      }],
      ['OPTIONS_MISMATCH', (w) => {
        w.north.listening(svcOf(w));
        synAck(w, encodeTcpOptions({ mss: 1400 }));
      }],
      ['LOG_READ_FAILED', (w) => {
        w.flow.received = w.flow.stable = w.flow.high = 1000;
        w.north.listening(svcOf(w));
        synAck(w);
        expect(w.log.reads).toHaveLength(1);
        w.log.reads[0]!.reject(new Error('gone')); // failed in the rejection handler, a microtask later
      }],
      ['NO_PROGRESS', (w) => {
        w.flow.received = w.flow.stable = w.flow.high = 1000;
        w.flow.cliWindow = 100;
        w.north.listening(svcOf(w));
        synAck(w);
        w.clock.now += o.progressDeadlineMs + 1;
        w.north.tick();
      }],
    ];
    for (const [code, drive] of cases) {
      const w = rig();
      w.north.crash(svcOf(w), 'test crash');
      drive(w);
      await Promise.resolve();
      await Promise.resolve();
      expect(rec(w)?.phase, code).toBe('FAILED');
      expect(rec(w)?.failure).toBe(code);
      expect(w.north.stats.rebuildFailed).toBe(1);
      const by = failuresByCode(w.north.stats);
      for (const c of FAILURE_CODES) expect(by[c], `${code}: ${c}`).toBe(c === code ? 1 : 0);
      expect(w.flow.state).toBe('CLOSED');
      expect(w.lines.find((l) => l.to === 'FAILED')?.code).toBe(code);
      // Released from the table: FAILED → ENDED, the record dropped.
      w.north.forget(w.flow);
      expect(recOf(w.flow)).toBeNull();
      expect(transitions(w).at(-1)).toBe('FAILED → ENDED');
      expect(w.north.recovering).toBe(0);
      expect(w.north.stats.illegalTransitions).toBe(0);
    }
  });

  it('a rebuild fails once: the log read failing after a failure for want of progress is refused and counted', async () => {
    const w = rig();
    w.flow.received = w.flow.stable = w.flow.high = 1000;
    w.flow.cliWindow = 100;
    w.north.crash(svcOf(w), 'test crash');
    w.north.listening(svcOf(w));
    synAck(w);
    expect(w.log.reads).toHaveLength(1); // the replay's read, pending
    w.clock.now += defaultNorthOptions.progressDeadlineMs + 1;
    w.north.tick();
    expect(rec(w)?.failure).toBe('NO_PROGRESS');
    const rstsToClient = w.north.stats.rstsToClient;
    w.log.reads[0]!.reject(new Error('gone'));
    await Promise.resolve();
    await Promise.resolve();
    expect(w.north.stats.illegalTransitions).toBe(1);
    expect(w.north.stats.rebuildFailed).toBe(1);
    expect(w.north.stats.failedLogRead).toBe(0);
    expect(w.north.stats.rstsToClient).toBe(rstsToClient);
    expect(rec(w)?.failure).toBe('NO_PROGRESS');
    expect(w.lines.some((l) => l.msg === 'rebuild: illegal transition FAILED → FAILED refused')).toBe(true);
  });

  it('refuses transitions not in its table, and on a record that is not the flow\'s', () => {
    const w = rig();
    w.north.crash(svcOf(w), 'test crash');
    const r = rec(w)!;
    expect(w.north.tryEnter(w.flow, r, 'LIVE', 'skipping the rebuild')).toBe(false);
    expect(w.north.tryEnter(w.flow, r, 'REPLAY', 'skipping the handshake')).toBe(false);
    expect(r.phase).toBe('MASKED');
    expect(recOf(w.flow)).toBe(r);
    // The same record entering MASKED again is not a crash (a crash brings a fresh one).
    expect(w.north.tryEnter(w.flow, r, 'MASKED', 'again')).toBe(false);
    expect(w.north.stats.illegalTransitions).toBe(3);
    expect(transitions(w)).toEqual(['LIVE → MASKED']);
    expect(w.lines.filter((l) => String(l.msg).startsWith('rebuild: illegal transition'))).toHaveLength(3);
    // A legal one still goes through.
    expect(w.north.tryEnter(w.flow, r, 'ENDED', 'test')).toBe(true);
    expect(recOf(w.flow)).toBeNull();
    expect(w.north.recovering).toBe(0);
  });
});
