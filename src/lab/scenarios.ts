/**
 * The drill's scenarios: which demo servers and clients run, how many crashes by default, what
 * places the first one, and the client-side conditions (sysctls, windows, deadlines). runDrill
 * (drill.ts) runs one; `ftcp drill --scenario` and `ftcp soak` name them.
 */
import { UsageError } from '../util/errors.js';

export type Kind = 'upload' | 'download' | 'echo' | 'kv' | 'stall' | 'random' | 'random-var';

export interface ScenarioSpec {
  kinds: readonly Kind[];
  /** Default number of crashes. */
  crashes: number;
  /** Later crashes land during the replay (10-40 ms after listening again). */
  duringReplay?: boolean;
  /** download clients half-close right after their request. */
  halfClose?: boolean;
  /** Overrides --connections for echo/kv/stall. */
  connections?: number;
  /** Defaults for --bytes / --lines (the flags win). */
  bytes?: number;
  lines?: number;
  /** What places the first crash: the leading client's progress (default), a closed receive
   *  window (the clients stop reading first), or idle connections past the idle timeout. */
  trigger?: 'progress' | 'zero-window' | 'idle';
  /** echo/kv: the even connections go quiet for this long halfway (the odd ones pace). */
  idleMs?: number;
  /** The gateway's --idle-timeout (s). */
  idleTimeoutS?: number;
  /** sysctls in the client's namespace (the --client-sysctl flag adds to / overrides them). */
  clientSysctls?: Record<string, string>;
  /** The largest window the client advertises (bytes; `ip route ... window` on its default
   *  route): with tcp_rmem's floor of 4 KB, the way to a window under one MSS, as a client
   *  with SO_RCVBUF 2 KB reading at its own pace has. */
  clientWindow?: number;
  /** The clients' deadline (ms; default 240 s): a hung connection fails with TIMEOUT. */
  timeoutMs?: number;
  /** Fail when throughput after the last crash is below this share of before the first. */
  minRateRatio?: number;
  what: string;
}

export const SCENARIOS: Record<string, ScenarioSpec> = {
  upload: { kinds: ['upload'], crashes: 1, what: 'kill -9 mid-upload' },
  download: { kinds: ['download'], crashes: 1, what: 'kill -9 mid-download' },
  echo: { kinds: ['echo'], crashes: 1, what: 'kill -9 mid-echo' },
  kv: { kinds: ['kv'], crashes: 1, what: 'kill -9 mid-kv' },
  mixed: { kinds: ['upload', 'download', 'echo', 'kv'], crashes: 1, what: 'all four at once, one crash of every server' },
  'double-crash': { kinds: ['upload', 'echo'], crashes: 2, duringReplay: true, what: 'a second crash during the replay' },
  'crash-storm': { kinds: ['upload', 'download', 'kv'], crashes: 4, what: 'four crashes in a row' },
  'half-close': { kinds: ['download'], crashes: 1, halfClose: true, what: 'the client shut its sending side before the crash' },
  many: { kinds: ['echo'], crashes: 1, connections: 200, what: '200 concurrent connections' },
  'stall-reader': {
    kinds: ['stall'], crashes: 1, connections: 10, lines: 5000, timeoutMs: 60_000,
    what: 'a server that stops reading while its output is blocked (like memcached), 5,000 pipelined requests per connection read late',
  },
  'zero-window': {
    kinds: ['download', 'stall'], crashes: 1, trigger: 'zero-window', connections: 4, lines: 3000, timeoutMs: 60_000,
    what: 'the clients stopped reading before the crash (zero windows; the stall server then stops reading too), read again after it',
  },
  'tiny-rcvbuf': {
    kinds: ['download'], crashes: 1, bytes: 4_000_000, clientSysctls: { 'net.ipv4.tcp_rmem': '4096 4096 4096' }, clientWindow: 1024, timeoutMs: 30_000, minRateRatio: 0.1,
    what: 'a client with a 4 KB receive buffer (SO_RCVBUF 2 KB) and a window under one MSS downloading 4 MB; throughput after the crash must hold',
  },
  nondet: {
    kinds: ['random', 'random-var'], crashes: 1, connections: 8, lines: 1000, timeoutMs: 60_000,
    what: 'non-deterministic servers (fresh random replies, fixed and variable length), 64 pipelined requests in flight; each client consistent or reset, every reset a counted divergence',
  },
  'nondet-tiny': {
    kinds: ['random', 'random-var'], crashes: 1, connections: 4, lines: 200, timeoutMs: 60_000,
    clientSysctls: { 'net.ipv4.tcp_rmem': '4096 4096 4096' }, clientWindow: 1024,
    what: 'nondet with every client\'s receive buffer 4 KB and its window under one MSS (as tiny-rcvbuf)',
  },
  idle: {
    kinds: ['echo'], crashes: 1, trigger: 'idle', connections: 10, lines: 400, idleMs: 4000, idleTimeoutS: 1, timeoutMs: 60_000,
    what: 'half the connections idle across the crash and past the gateway\'s --idle-timeout 1, then active again',
  },
};
export type Scenario = keyof typeof SCENARIOS;

export const PORTS: Record<Kind, number> = { upload: 5001, download: 5002, echo: 5003, kv: 5004, stall: 5005, random: 5006, 'random-var': 5007 };

export function checkScenario(s: string): Scenario {
  if (!(s in SCENARIOS)) throw new UsageError(`--scenario: expected one of ${Object.keys(SCENARIOS).join(', ')}; got '${s}'`);
  return s;
}
