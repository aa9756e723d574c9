/**
 * The oracle's pure logic with a fake clock: each notice's transition, heartbeat repairs,
 * forged/malformed/replayed/duplicate drops, old boots, silence, and waitVerdict.
 */
import { describe, it, expect } from 'vitest';
import { pino } from 'pino';
import { encodeNotice, newBootId, type Notice, type NoticeType } from '../../../src/supervisor/messages.js';
import {
  LivenessTracker,
  nextState,
  verdictOf,
  type LivenessOptions,
  type OracleEventName,
  type ServiceInfo,
  type ServiceState,
  type Verdict,
} from '../../../src/supervisor/liveness.js';

const KEY = Buffer.from('liveness-test-key-0123456789');
const SVC = '198.18.2.2:5001';

class Clock {
  t = 1000;
  now = () => this.t;
  advance(ms: number) {
    this.t += ms;
  }
}

/** A fake supervisor: numbered notices of one boot. */
class Sup {
  seq = 0;
  generation = 1;
  sentAt = 1_700_000_000_000;
  constructor(
    readonly boot = newBootId(),
    readonly service = SVC,
    readonly key = KEY,
  ) {}
  make(type: NoticeType, extra: Partial<Notice> = {}): Notice {
    this.sentAt += 10;
    return { v: 1, type, service: this.service, boot: this.boot, seq: ++this.seq, generation: this.generation, sentAt: this.sentAt, ...extra };
  }
  buf(type: NoticeType, extra: Partial<Notice> = {}): Buffer {
    return encodeNotice(this.make(type, extra), this.key);
  }
}

/** Crashes acted on at once, as for a service heard for longer than the anchoring window (tested on its own below). */
const ANCHORED: Partial<LivenessOptions> = { confirmMs: 0 };

function setup(opts: Partial<LivenessOptions> = {}) {
  const clock = new Clock();
  const events: Array<[OracleEventName, string, ServiceInfo]> = [];
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  // The wall clock at the fake supervisors' first sentAt: every notice they make is sent "after" any wait began.
  const t = new LivenessTracker(KEY, { now: clock.now, log, emit: (e, s, i) => events.push([e, s, i]), wallNow: () => 1_700_000_000_000, ...opts });
  return { clock, t, events, lines };
}

/** Tracks whether a promise has settled yet (microtasks flushed by the awaits). */
function watch(p: Promise<Verdict>) {
  const w: { v: Verdict | null } = { v: null };
  void p.then((v) => (w.v = v));
  return w;
}
const flush = () => new Promise<void>((r) => setImmediate(r));

describe('state transitions, one per notice', () => {
  it('hello → ALIVE → listening → LISTENING → crashed → CRASHED → restarted → RESTARTING → listening → LISTENING → stopping → stopped', () => {
    const { t, events, lines } = setup(ANCHORED);
    const s = new Sup();
    const steps: Array<[NoticeType, Partial<Notice>, ServiceState, Verdict, OracleEventName]> = [
      ['hello', { alive: true, pid: 100 }, 'ALIVE', 'alive', 'alive'],
      ['listening', {}, 'LISTENING', 'alive', 'listening'],
      ['crashed', { signal: 'SIGKILL', pid: 100 }, 'CRASHED', 'dead', 'crashed'],
      ['restarted', { pid: 101 }, 'RESTARTING', 'dead', 'restarted'],
      ['listening', { pid: 101 }, 'LISTENING', 'alive', 'listening'],
      ['stopping', {}, 'STOPPING', 'alive', 'stopping'],
      ['stopped', { exitCode: 0 }, 'STOPPED', 'alive', 'stopped'],
    ];
    expect(t.state(SVC)).toBe('UNKNOWN');
    expect(t.verdict(SVC)).toBe('unknown');
    for (const [type, extra, state, verdict, ev] of steps) {
      if (type === 'restarted') s.generation++;
      expect(t.receive(s.buf(type, extra))).toBe('accepted');
      expect(t.state(SVC), type).toBe(state);
      expect(t.verdict(SVC), type).toBe(verdict);
      expect(events.at(-1)?.[0], type).toBe(ev);
      expect(events.at(-1)?.[1]).toBe(SVC);
    }
    expect(events.map((e) => e[0])).toEqual(['alive', 'listening', 'crashed', 'restarted', 'listening', 'stopping', 'stopped']);
    const crashed = events[2]![2];
    expect(crashed).toMatchObject({ state: 'CRASHED', verdict: 'dead', generation: 1, pid: 100, signal: 'SIGKILL' });
    expect(events[4]![2]).toMatchObject({ generation: 2, pid: 101 });
    // the one transition function logs from → to for each
    const trans = lines.filter((l) => typeof l.msg === 'string' && (l.msg as string).includes('→'));
    expect(trans.map((l) => `${l.from}→${l.to}`)).toEqual([
      'UNKNOWN→ALIVE',
      'ALIVE→LISTENING',
      'LISTENING→CRASHED',
      'CRASHED→RESTARTING',
      'RESTARTING→LISTENING',
      'LISTENING→STOPPING',
      'STOPPING→STOPPED',
    ]);
    expect(t.counters.perType).toMatchObject({ hello: 1, listening: 2, crashed: 1, restarted: 1, stopping: 1, stopped: 1, heartbeat: 0 });
    expect(t.counters.accepted).toBe(7);
  });

  it('crashed with an exit code, from any live state', () => {
    for (const first of ['hello', 'listening', 'restarted'] as const) {
      const { t } = setup(ANCHORED);
      const s = new Sup();
      t.receive(s.buf(first, { alive: true }));
      t.receive(s.buf('crashed', { exitCode: 2 }));
      expect(t.info(SVC)).toMatchObject({ state: 'CRASHED', verdict: 'dead', exitCode: 2 });
    }
  });

  it('heartbeats repair what lost notices left wrong (pure nextState)', () => {
    const hb = (alive: boolean, listening: boolean, newIncarnation = false) =>
      ({ kind: 'notice', newIncarnation, notice: new Sup().make('heartbeat', { alive, listening }) }) as const;
    // the program is found dead: a crash we missed
    expect(nextState('LISTENING', hb(false, false))).toBe('CRASHED');
    expect(nextState('ALIVE', hb(false, false))).toBe('CRASHED');
    expect(nextState('UNKNOWN', hb(false, false))).toBe('CRASHED');
    // …but not while stopping or restarting
    expect(nextState('STOPPING', hb(false, false))).toBe('STOPPING');
    expect(nextState('RESTARTING', hb(false, false))).toBe('RESTARTING');
    expect(nextState('CRASHED', hb(false, false))).toBe('CRASHED');
    // listening learned from a heartbeat (e.g. after the gateway restarted)
    expect(nextState('UNKNOWN', hb(true, true))).toBe('LISTENING');
    expect(nextState('UNKNOWN', hb(true, false))).toBe('ALIVE');
    expect(nextState('ALIVE', hb(true, true))).toBe('LISTENING');
    expect(nextState('RESTARTING', hb(true, true))).toBe('LISTENING');
    expect(nextState('SILENT', hb(true, true))).toBe('LISTENING');
    expect(nextState('SILENT', hb(true, false))).toBe('ALIVE');
    // a later generation: restart / listen notices were lost
    expect(nextState('CRASHED', hb(true, false, true))).toBe('RESTARTING');
    expect(nextState('CRASHED', hb(true, true, true))).toBe('LISTENING');
    expect(nextState('LISTENING', hb(true, false, true))).toBe('RESTARTING');
    // the same incarnation never undoes a crash or a stop
    expect(nextState('CRASHED', hb(true, true))).toBe('CRASHED');
    expect(nextState('STOPPING', hb(true, true))).toBe('STOPPING');
    expect(nextState('STOPPED', hb(true, true))).toBe('STOPPED');
    expect(nextState('STOPPED', hb(true, true, true))).toBe('LISTENING');
    expect(nextState('LISTENING', hb(true, true))).toBe('LISTENING');
    // silence
    for (const st of ['ALIVE', 'LISTENING', 'CRASHED', 'RESTARTING', 'STOPPING'] as const) expect(nextState(st, { kind: 'silence' })).toBe('SILENT');
    for (const st of ['UNKNOWN', 'STOPPED', 'SILENT'] as const) expect(nextState(st, { kind: 'silence' })).toBe(st);
  });

  it('verdicts: STOPPING/STOPPED let FINs pass, SILENT is dead', () => {
    expect(verdictOf('UNKNOWN')).toBe('unknown');
    for (const st of ['ALIVE', 'LISTENING', 'STOPPING', 'STOPPED'] as const) expect(verdictOf(st)).toBe('alive');
    for (const st of ['CRASHED', 'RESTARTING', 'SILENT'] as const) expect(verdictOf(st)).toBe('dead');
  });
});

describe('drops', () => {
  it('forged and malformed datagrams are counted and change nothing', () => {
    const { t, events } = setup();
    const s = new Sup();
    t.receive(s.buf('listening'));
    const forger = new Sup(s.boot, SVC, Buffer.from('not-the-shared-key-at-all!'));
    forger.seq = 100;
    expect(t.receive(forger.buf('crashed'))).toBe('forged');
    const flipped = s.buf('crashed');
    flipped[10]! ^= 0x01;
    expect(t.receive(flipped)).toBe('forged');
    expect(t.receive(Buffer.from('hello there'))).toBe('malformed');
    expect(t.receive(Buffer.alloc(0))).toBe('malformed');
    expect(t.state(SVC)).toBe('LISTENING');
    expect(t.counters).toMatchObject({ received: 5, accepted: 1, forged: 2, malformed: 2 });
    expect(events.map((e) => e[0])).toEqual(['listening']);
  });

  it('repeated copies are duplicates; an old seq of the same boot is a replay', () => {
    const { t } = setup(ANCHORED);
    const s = new Sup();
    const crashed = s.buf('crashed', { exitCode: 1 });
    expect(t.receive(crashed)).toBe('accepted');
    expect(t.receive(crashed)).toBe('duplicate');
    expect(t.receive(crashed)).toBe('duplicate');
    s.generation++;
    t.receive(s.buf('restarted'));
    t.receive(s.buf('listening'));
    for (let i = 0; i < 10; i++) t.receive(s.buf('heartbeat', { alive: true, listening: true }));
    // the captured 'crashed' (seq 1) replayed much later
    expect(t.receive(crashed)).toBe('replayed');
    expect(t.state(SVC)).toBe('LISTENING');
    expect(t.counters).toMatchObject({ duplicate: 2, replayed: 1, accepted: 13 });
  });

  it('a new boot is accepted; notices of retired or older boots are replays', () => {
    const { t, events } = setup();
    const a = new Sup();
    const oldCrash = a.buf('crashed', { exitCode: 9 });
    t.receive(a.buf('hello', { alive: true }));
    t.receive(a.buf('listening'));
    // a new supervisor run on the same host: a later clock, seq and generation restart
    const b = new Sup();
    b.sentAt = a.sentAt + 5000;
    expect(t.receive(b.buf('hello', { alive: true }))).toBe('accepted');
    // a new instance, not listening yet: the one we knew is gone
    expect(t.info(SVC)).toMatchObject({ boot: b.boot, generation: 1, state: 'RESTARTING', verdict: 'dead' });
    expect(t.receive(b.buf('listening'))).toBe('accepted');
    expect(t.state(SVC)).toBe('LISTENING');
    // old boot (retired): even a fresh-looking seq is dropped
    a.seq = 1000;
    a.sentAt = b.sentAt + 1;
    expect(t.receive(a.buf('crashed'))).toBe('replayed');
    expect(t.receive(oldCrash)).toBe('replayed');
    // an unknown boot whose clock is older than the newest notice heard: a recorded old run
    const c = new Sup();
    c.sentAt = b.sentAt - 60_000;
    expect(t.receive(c.buf('crashed'))).toBe('replayed');
    expect(t.state(SVC)).toBe('LISTENING');
    expect(t.counters.replayed).toBe(3);
    expect(events.filter((e) => e[0] === 'crashed')).toHaveLength(0);
  });

  it('maxAgeMs drops notices far from the wall clock', () => {
    let wall = 1_700_000_000_000;
    const { t } = setup({ maxAgeMs: 2000, wallNow: () => wall });
    const s = new Sup();
    s.sentAt = wall - 10_000;
    expect(t.receive(s.buf('listening'))).toBe('replayed');
    s.sentAt = wall;
    expect(t.receive(s.buf('listening'))).toBe('accepted');
    wall += 500;
    expect(t.receive(s.buf('heartbeat', { alive: true, listening: true }))).toBe('accepted');
  });

  it('only the configured services are tracked', () => {
    const { t } = setup({ services: [SVC] });
    expect(t.receive(new Sup(newBootId(), '10.9.9.9:80').buf('crashed'))).toBe('unknown-service');
    expect(t.counters.unknownService).toBe(1);
    expect(t.services()).toEqual([SVC]);
  });
});

describe('silence', () => {
  it('defaults to 3 heartbeats + 50 ms', () => {
    expect(setup().t.silenceMs).toBe(350);
    expect(setup({ heartbeatMs: 20 }).t.silenceMs).toBe(110);
    expect(setup({ silenceMs: 1000 }).t.silenceMs).toBe(1000);
  });

  it('a supervisor silent for longer than silenceMs makes the service SILENT (dead); a heartbeat revives it', () => {
    const { t, clock, events } = setup();
    const s = new Sup();
    t.receive(s.buf('listening'));
    clock.advance(350);
    t.tick();
    expect(t.verdict(SVC)).toBe('alive');
    clock.advance(1);
    expect(t.verdict(SVC)).toBe('dead'); // evaluated lazily too
    expect(t.state(SVC)).toBe('SILENT');
    t.tick();
    expect(events.map((e) => e[0])).toEqual(['listening', 'silent']);
    t.receive(s.buf('heartbeat', { alive: true, listening: true }));
    expect(t.info(SVC)).toMatchObject({ state: 'LISTENING', verdict: 'alive', lastHeard: clock.t });
  });

  it('heartbeats keep it fresh; UNKNOWN and STOPPED are not made SILENT', () => {
    const { t, clock } = setup({ services: ['1.1.1.1:1', SVC] });
    const s = new Sup();
    t.receive(s.buf('listening'));
    for (let i = 0; i < 20; i++) {
      clock.advance(100);
      t.receive(s.buf('heartbeat', { alive: true, listening: true }));
      t.tick();
    }
    expect(t.state(SVC)).toBe('LISTENING');
    t.receive(s.buf('stopping'));
    t.receive(s.buf('stopped'));
    clock.advance(10_000);
    t.tick();
    expect(t.state(SVC)).toBe('STOPPED');
    expect(t.state('1.1.1.1:1')).toBe('UNKNOWN');
    expect(t.verdict('1.1.1.1:1')).toBe('unknown');
  });
});

describe('waitVerdict', () => {
  it('resolves at once when the state decides it', async () => {
    const { t } = setup(ANCHORED);
    const s = new Sup();
    t.receive(s.buf('crashed', { exitCode: 1 }));
    expect(await t.waitVerdict(SVC, 10_000)).toBe('dead');
    s.generation++;
    t.receive(s.buf('restarted'));
    expect(await t.waitVerdict(SVC, 10_000)).toBe('dead');
    t.receive(s.buf('listening'));
    t.receive(s.buf('stopping'));
    expect(await t.waitVerdict(SVC, 10_000)).toBe('alive');
  });

  it('while alive, waits for the next notice: a crash → dead', async () => {
    const { t } = setup(ANCHORED);
    const s = new Sup();
    t.receive(s.buf('listening'));
    const w = watch(t.waitVerdict(SVC, 300));
    await flush();
    expect(w.v).toBeNull();
    t.receive(s.buf('crashed', { signal: 'SIGSEGV' }));
    await flush();
    expect(w.v).toBe('dead');
  });

  it('while alive, the next heartbeat of the same incarnation → alive', async () => {
    const { t } = setup();
    const s = new Sup();
    t.receive(s.buf('listening'));
    const w = watch(t.waitVerdict(SVC, 300));
    await flush();
    expect(w.v).toBeNull();
    t.receive(s.buf('heartbeat', { alive: true, listening: true }));
    await flush();
    expect(w.v).toBe('alive');
  });

  it('settle: a heartbeat accepted within minGap of the hold (maybe in flight at the death) does not pass a FIN; a later one does', async () => {
    const { t, clock } = setup();
    const s = new Sup();
    t.receive(s.buf('listening'));
    const w = watch(t.waitVerdict(SVC, 1000, true, 25));
    clock.advance(5);
    t.receive(s.buf('heartbeat', { alive: true, listening: true }));
    await flush();
    expect(w.v).toBeNull(); // too soon after the hold began: proves nothing
    clock.advance(30);
    t.receive(s.buf('heartbeat', { alive: true, listening: true }));
    await flush();
    expect(w.v).toBe('alive');
  });

  it('settle: an alive heartbeat sent before the hold began does not pass a FIN however late it is processed; one sent after does', async () => {
    let wall = 1_700_000_000_000;
    const { t, clock } = setup({ wallNow: () => wall });
    const s = new Sup();
    t.receive(s.buf('listening')); // sentAt +10
    const inFlight = s.buf('heartbeat', { alive: true, listening: true }); // sentAt +20: before the death
    wall += 25; // the FIN arrives, the hold begins
    const w = watch(t.waitVerdict(SVC, 1000, true, 25));
    clock.advance(60); // a busy gateway reads the in-flight heartbeat 60 ms after the hold began
    t.receive(inFlight);
    await flush();
    expect(w.v).toBeNull(); // without the sentAt rule: 'alive', and a dead server's FIN reached its client
    s.sentAt = wall + 50;
    t.receive(s.buf('heartbeat', { alive: true, listening: true })); // sent after the hold began
    await flush();
    expect(w.v).toBe('alive');
  });

  it('settle: a heartbeat saying not alive (a zombie not yet reaped) → dead; a crash during the gap → dead', async () => {
    const { t, clock } = setup(ANCHORED);
    const s = new Sup();
    t.receive(s.buf('listening'));
    const w1 = watch(t.waitVerdict(SVC, 1000, true, 25));
    clock.advance(40);
    t.receive(s.buf('heartbeat', { alive: false, listening: false }));
    await flush();
    expect(w1.v).toBe('dead');

    const s2 = new Sup();
    s2.sentAt = s.sentAt + 1000;
    t.receive(s2.buf('listening'));
    const w2 = watch(t.waitVerdict(SVC, 1000, true, 25));
    clock.advance(5);
    t.receive(s2.buf('heartbeat', { alive: true, listening: true }));
    t.receive(s2.buf('crashed', { signal: 'SIGKILL' }));
    await flush();
    expect(w2.v).toBe('dead');
  });

  it('a notice of a later generation or another boot → dead (the FIN came from a gone instance)', async () => {
    const { t } = setup();
    const s = new Sup();
    t.receive(s.buf('listening'));
    const w1 = watch(t.waitVerdict(SVC, 300));
    s.generation++;
    t.receive(s.buf('heartbeat', { alive: true, listening: true }));
    await flush();
    expect(w1.v).toBe('dead');

    const w2 = watch(t.waitVerdict(SVC, 300));
    const other = new Sup();
    other.sentAt = s.sentAt + 1000;
    t.receive(other.buf('heartbeat', { alive: true, listening: true }));
    await flush();
    expect(w2.v).toBe('dead');
  });

  it('times out with the verdict then: alive while fresh, dead once silent, unknown if never heard', async () => {
    const { t, clock } = setup();
    const s = new Sup();
    t.receive(s.buf('listening'));
    const w = watch(t.waitVerdict(SVC, 100));
    expect(t.nextDeadline()).toBe(clock.t + 100);
    clock.advance(99);
    t.tick();
    await flush();
    expect(w.v).toBeNull();
    clock.advance(1);
    t.tick();
    await flush();
    expect(w.v).toBe('alive');
    expect(t.nextDeadline()).toBeNull();

    const w2 = watch(t.waitVerdict(SVC, 1000));
    clock.advance(400); // past silenceMs since the last notice
    t.tick();
    await flush();
    expect(w2.v).toBe('dead');

    const w3 = watch(t.waitVerdict('10.0.0.9:9', 50));
    clock.advance(50);
    t.tick();
    await flush();
    expect(w3.v).toBe('unknown');
  });

  it('an unknown service decided by its first notice', async () => {
    const { t } = setup();
    const w = watch(t.waitVerdict(SVC, 1000));
    t.receive(new Sup().buf('hello', { alive: true }));
    await flush();
    expect(w.v).toBe('alive');
  });

  it('flushWaiters resolves everything pending (close)', async () => {
    const { t } = setup();
    const w = watch(t.waitVerdict(SVC, 1000));
    t.flushWaiters();
    await flush();
    expect(w.v).toBe('unknown');
  });
});

describe('a crash heard before the service is anchored (a restarted gateway; issue 10, item 7)', () => {
  /** A live supervisor run whose notices were recorded a minute ago (seq ~10), now at seq ~700. */
  function recorded(type: NoticeType, generation: number, extra: Partial<Notice> = {}) {
    const live = new Sup();
    live.generation = generation;
    live.seq = 9;
    const now = live.sentAt;
    live.sentAt = now - 60_000;
    const old = live.buf(type, extra);
    live.seq = 700;
    live.sentAt = now;
    return { live, old };
  }

  it('a replayed crash of the running generation: superseded by the first live heartbeat, never acted on', async () => {
    const { t, clock, events, lines } = setup();
    const { live, old } = recorded('crashed', 2, { signal: 'SIGKILL' });
    live.generation = 2;
    expect(t.receive(old)).toBe('accepted');
    expect(t.state(SVC)).toBe('SUSPECT');
    const held = watch(t.waitVerdict(SVC, 1000, true, 25)); // a server FIN held meanwhile
    await flush();
    expect(held.v).toBeNull();
    clock.advance(60);
    expect(t.receive(live.buf('heartbeat', { alive: true, listening: true }))).toBe('accepted');
    expect(t.state(SVC)).toBe('LISTENING');
    for (let i = 0; i < 10; i++) {
      clock.advance(100);
      t.receive(live.buf('heartbeat', { alive: true, listening: true }));
      t.tick();
    }
    await flush();
    expect(held.v).toBe('alive'); // the FIN was the live application's
    expect(t.info(SVC)).toMatchObject({ state: 'LISTENING', verdict: 'alive', generation: 2 });
    expect(t.info(SVC).signal).toBeUndefined(); // what the replay said is forgotten
    expect(events.map((e) => e[0])).toEqual(['listening']); // no 'crashed': nothing masked
    expect(t.counters).toMatchObject({ superseded: 1, confirmed: 0 });
    expect(lines.some((l) => String(l.msg).includes('crash notice superseded'))).toBe(true);
  });

  it('a replayed crash of an older generation: the next heartbeat does not read as a restart (no crashed, no rebuild)', () => {
    const { t, clock, events } = setup();
    const { live, old } = recorded('crashed', 1, { exitCode: 1 });
    live.generation = 2;
    expect(t.receive(old)).toBe('accepted');
    clock.advance(80);
    expect(t.receive(live.buf('heartbeat', { alive: true, listening: true }))).toBe('accepted');
    for (let i = 0; i < 10; i++) {
      clock.advance(100);
      t.receive(live.buf('heartbeat', { alive: true, listening: true }));
      t.tick();
    }
    expect(t.info(SVC)).toMatchObject({ state: 'LISTENING', generation: 2 });
    expect(events.map((e) => e[0])).toEqual(['listening']);
    expect(t.counters.superseded).toBe(1);
  });

  it('a replayed crash and notices after it, of an old supervisor run: superseded by the live run', () => {
    const { t, clock, events } = setup();
    const oldRun = new Sup();
    oldRun.sentAt -= 3_600_000;
    const replays = [oldRun.buf('crashed', { signal: 'SIGSEGV' }), oldRun.buf('heartbeat', { alive: false, listening: false })];
    for (const b of replays) expect(t.receive(b)).toBe('accepted');
    expect(t.state(SVC)).toBe('SUSPECT');
    const live = new Sup();
    live.generation = 3;
    clock.advance(90);
    expect(t.receive(live.buf('heartbeat', { alive: true, listening: true }))).toBe('accepted');
    for (let i = 0; i < 10; i++) {
      clock.advance(100);
      t.receive(live.buf('heartbeat', { alive: true, listening: true }));
      t.tick();
    }
    expect(t.state(SVC)).toBe('LISTENING');
    expect(events.map((e) => e[0])).toEqual(['listening']);
    // and the old run's notices are rejected from now on
    expect(t.receive(replays[0]!)).toBe('replayed');
  });

  it('a genuine crash in the window is confirmed when it ends, with the restart heard meanwhile applied', async () => {
    const { t, clock, events, lines } = setup(); // confirmMs = silenceMs = 350
    const s = new Sup();
    t.receive(s.buf('hello', { alive: true }));
    t.receive(s.buf('listening'));
    clock.advance(100);
    t.receive(s.buf('crashed', { signal: 'SIGKILL' }));
    expect(t.state(SVC)).toBe('SUSPECT');
    expect(t.verdict(SVC)).toBe('dead');
    const held = watch(t.waitVerdict(SVC, 1000, true, 25));
    clock.advance(100);
    t.receive(s.buf('heartbeat', { alive: false, listening: false }));
    s.generation++;
    clock.advance(50);
    t.receive(s.buf('restarted', { alive: true }));
    expect(t.state(SVC)).toBe('SUSPECT');
    await flush();
    expect(held.v).toBeNull();
    clock.advance(100); // 350 ms after the first notice
    t.tick();
    await flush();
    expect(held.v).toBe('dead');
    expect(t.info(SVC)).toMatchObject({ state: 'RESTARTING', generation: 2 });
    expect(events.map((e) => e[0])).toEqual(['alive', 'listening', 'crashed', 'restarted']);
    expect(t.counters).toMatchObject({ confirmed: 1, superseded: 0 });
    const trans = lines.filter((l) => typeof l.msg === 'string' && (l.msg as string).includes('→'));
    expect(trans.map((l) => `${l.from}→${l.to}`)).toEqual(['UNKNOWN→ALIVE', 'ALIVE→LISTENING', 'LISTENING→SUSPECT', 'SUSPECT→CRASHED', 'CRASHED→RESTARTING']);
    t.receive(s.buf('listening'));
    expect(events.at(-1)?.[0]).toBe('listening');
  });

  it('a held FIN during the window resolves dead at its deadline when nothing supersedes the crash', async () => {
    const { t, clock } = setup({ confirmMs: 1000 });
    const s = new Sup();
    t.receive(s.buf('crashed', { signal: 'SIGKILL' }));
    const held = watch(t.waitVerdict(SVC, 200, true, 25));
    clock.advance(200);
    t.tick();
    await flush();
    expect(held.v).toBe('dead');
    expect(t.state(SVC)).toBe('SUSPECT');
  });

  it('once anchored, a crash is acted on at once', () => {
    const { t, clock, events } = setup();
    const s = new Sup();
    t.receive(s.buf('listening'));
    clock.advance(350);
    t.receive(s.buf('heartbeat', { alive: true, listening: true }));
    t.receive(s.buf('crashed', { signal: 'SIGKILL' }));
    expect(t.state(SVC)).toBe('CRASHED');
    expect(events.map((e) => e[0])).toEqual(['listening', 'crashed']);
  });

  it('pure nextState: SUSPECT arrows', () => {
    const n = (type: NoticeType, extra: Partial<Notice> = {}) => new Sup().make(type, extra);
    const at = (anchored: boolean, supersedes = false, newIncarnation = false) => ({ anchored, supersedes, newIncarnation });
    expect(nextState('LISTENING', { kind: 'notice', notice: n('crashed'), ...at(false) })).toBe('SUSPECT');
    expect(nextState('UNKNOWN', { kind: 'notice', notice: n('heartbeat', { alive: false }), ...at(false) })).toBe('SUSPECT');
    expect(nextState('LISTENING', { kind: 'notice', notice: n('crashed'), ...at(true) })).toBe('CRASHED');
    expect(nextState('SUSPECT', { kind: 'notice', notice: n('restarted'), ...at(false) })).toBe('SUSPECT');
    expect(nextState('SUSPECT', { kind: 'notice', notice: n('heartbeat', { alive: true, listening: true }), ...at(false, true, true) })).toBe('LISTENING');
    expect(nextState('SUSPECT', { kind: 'notice', notice: n('crashed'), ...at(false, true) })).toBe('SUSPECT');
    expect(nextState('SUSPECT', { kind: 'notice', notice: n('stopping'), ...at(false) })).toBe('STOPPING');
    expect(nextState('SUSPECT', { kind: 'confirm' })).toBe('CRASHED');
    expect(nextState('SUSPECT', { kind: 'silence' })).toBe('SILENT');
    expect(verdictOf('SUSPECT')).toBe('dead');
  });
});
