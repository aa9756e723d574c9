/**
 * The durable connection-state record (issue 14 item 1; DESIGN.md §7): what a gateway that
 * takes a connection over from the log needs beyond its metadata (types.ts ConnectionMeta)
 * and its client bytes — the recovery phase, the crash count, and the translation of every
 * incarnation the connection was rebuilt into. The gateway writes it (LogStore.setState) at
 * each phase change of a rebuild and before a translated byte reaches the client: no client
 * sees a translated byte whose translation is not stable (the stable-ACK rule's twin).
 *
 * Two binary layouts, big-endian, at most STATE_MAX_BYTES (216) bytes. Version 1 (12-byte
 * header) is written for a record that names no server incarnation, version 2 (24-byte header)
 * for one that does (`boundTo`); both decode, each only in its canonical form:
 *
 *    0  version      u8    1, or 2 with the binding
 *    1  phase        u8    0 MASKED, 1 HANDSHAKE, 2 REPLAY, 3 ABSORB, 4 LIVE
 *    2  count        u8    incarnations that follow, 0..MAX_INCARNATIONS (8)
 *    3  reserved     u8    0 (v2: 1, the binding is present)
 *    4  update       u32   the writer's counter, from 1: a store keeps the highest
 *    8  crashes      u32   server crashes the connection lived through (≥ count; v2: 0 for a
 *                          connection never rebuilt, then LIVE without incarnations)
 *   v2 only:
 *   12  boot         8 bytes  the supervisor run (src/supervisor/messages.ts `boot`) …
 *   20  generation   u32      … and the start of its server program the connection is bound to
 *   12 (v1), 24 (v2)  count × 24 bytes, oldest first (the last one translates):
 *         +0  serverIsn       u32   the new incarnation's ISN (its SYN-ACK's seq)
 *         +4  seqDelta        u32   ISN_old − ISN_new mod 2^32 (added toward the client)
 *         +8  tsDelta         u32   added to its TSval toward the client (0: no timestamps)
 *        +12  server addr     u32   the incarnation's address (today the service's own)
 *        +16  server port     u16
 *        +18  serverSidePort  u16   the client port toward it (the client's own: the metadata's)
 *        +20  oldShift        u8    the server's window shift as the client knows it (0..14)
 *        +21  newShift        u8    as the new incarnation uses it (0..14)
 *        +22  reserved        u16   0
 *
 * The binding (issue 14 item 2: a server crash during the gateway's outage) names the server
 * process the connection lives in now: the original one (a record written at the handshake,
 * crashes 0) or the one the last translation leads to (written in the same record as that
 * translation, so stable before it matters, as the translation is). A restarted gateway
 * compares it with the supervisor's first heartbeat (src/gateway/adopt-gate.ts): another
 * incarnation means the server died while no gateway ran. A v1 record, or none, binds to
 * nothing: the incarnation is unknown, and the adoption can only tell a server that is not
 * listening yet (a new one) from one that is (taken to be the connection's, as before v2).
 *
 * Only the last MAX_INCARNATIONS incarnations are kept (the crash count says how many there
 * were): only the last one translates, the older ones are history for the operator.
 * `decodeState` is total: bytes that are not a well-formed record (from a log server, from a
 * damaged disk) give null, for the caller to count; `encodeState` throws FtcpError
 * 'FTCP_LOG_BAD_STATE' for a record that breaks the rules (a caller's bug).
 */
import { FtcpError } from '../util/errors.js';
import { ipToU32, u32ToIp } from '../wire/addr.js';

export const STATE_VERSION = 1;
/** The version of a record that names its server incarnation (`boundTo`). */
export const STATE_VERSION_BOUND = 2;
/** Incarnations a record keeps (the latest). */
export const MAX_INCARNATIONS = 8;
const HEADER = 12;
const HEADER_BOUND = 24;
const INCARNATION = 24;
/** The largest record: the bound a store or a log server accepts. */
export const STATE_MAX_BYTES = HEADER_BOUND + MAX_INCARNATIONS * INCARNATION;

/** The phases a record names: a rebuild's (recovery/rebuild.ts Phase) while it lasts, LIVE once translated. */
export const STATE_PHASES = ['MASKED', 'HANDSHAKE', 'REPLAY', 'ABSORB', 'LIVE'] as const;
export type StatePhase = (typeof STATE_PHASES)[number];

/** One incarnation the connection was rebuilt into: its translation (recovery/translate.ts Translation). */
export interface IncarnationState {
  readonly serverIsn: number;
  readonly seqDelta: number;
  readonly tsDelta: number;
  /** The incarnation's address (types.ts Endpoint's shape: spelt out, so that types.ts, which names this record, is not imported back). */
  readonly server: { readonly addr: string; readonly port: number };
  readonly serverSidePort: number;
  readonly oldShift: number;
  readonly newShift: number;
}

/** A server incarnation as its supervisor names it: the supervisor's run and the program's start count in it. */
export interface ServerIncarnation {
  /** 16 lowercase hex digits. */
  readonly boot: string;
  readonly generation: number;
}

export function sameIncarnation(a: ServerIncarnation, b: ServerIncarnation): boolean {
  return a.boot === b.boot && a.generation === b.generation;
}

export interface ConnectionState {
  /** The writer's counter (1, 2, …): a store never replaces a record by one with a lower update. */
  readonly update: number;
  readonly phase: StatePhase;
  readonly crashes: number;
  /** Oldest first, at most MAX_INCARNATIONS; the last one is the translation in force. */
  readonly incarnations: readonly IncarnationState[];
  /** The server incarnation the connection is bound to now (v2); absent or null: unknown (v1). */
  readonly boundTo?: ServerIncarnation | null;
}

const isU32 = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 0xffffffff;
const isPort = (n: unknown): n is number => Number.isInteger(n) && (n as number) > 0 && (n as number) <= 0xffff;
const isShift = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 14;

/** Why `s` is not a valid record, or null. Rules shared by encode (throws) and decode (null). */
function invalid(s: ConnectionState): string | null {
  if (!isU32(s.update) || s.update < 1) return 'update';
  const phase = STATE_PHASES.indexOf(s.phase);
  if (phase < 0) return 'phase';
  if (!isU32(s.crashes)) return 'crash count';
  if (!Array.isArray(s.incarnations) || s.incarnations.length > MAX_INCARNATIONS) return 'incarnation count';
  const b = s.boundTo ?? null;
  if (b !== null && (typeof b !== 'object' || typeof b.boot !== 'string' || !/^[0-9a-f]{16}$/.test(b.boot) || !isU32(b.generation))) return 'binding';
  // Never crashed: only a binding of the original incarnation is worth a record.
  const original = b !== null && s.crashes === 0 && s.incarnations.length === 0 && s.phase === 'LIVE';
  if (!original && s.crashes < Math.max(1, s.incarnations.length)) return 'crash count below the incarnations';
  // Past the handshake a translation is in force: the record must hold it.
  if (!original && phase >= STATE_PHASES.indexOf('REPLAY') && s.incarnations.length === 0) return `${s.phase} without an incarnation`;
  for (const inc of s.incarnations) {
    if (!isU32(inc.serverIsn) || !isU32(inc.seqDelta) || !isU32(inc.tsDelta)) return 'incarnation numbers';
    if (!isPort(inc.serverSidePort) || !isShift(inc.oldShift) || !isShift(inc.newShift)) return 'incarnation port or shift';
    if (typeof inc.server !== 'object' || inc.server === null || !isPort(inc.server.port)) return 'incarnation server';
  }
  return null;
}

/** The record's bytes. Throws FtcpError 'FTCP_LOG_BAD_STATE' for a record that breaks the rules. */
export function encodeState(s: ConnectionState): Buffer {
  const why = invalid(s);
  let addrs: number[] = [];
  if (why === null) {
    try {
      addrs = s.incarnations.map((i) => ipToU32(i.server.addr));
    } catch {
      throw new FtcpError('FTCP_LOG_BAD_STATE', 'connection state: an incarnation server address is not IPv4');
    }
  } else {
    throw new FtcpError('FTCP_LOG_BAD_STATE', `connection state: invalid ${why}`);
  }
  const bound = s.boundTo ?? null;
  const head = bound === null ? HEADER : HEADER_BOUND;
  const b = Buffer.alloc(head + s.incarnations.length * INCARNATION);
  b[0] = bound === null ? STATE_VERSION : STATE_VERSION_BOUND;
  b[1] = STATE_PHASES.indexOf(s.phase);
  b[2] = s.incarnations.length;
  b.writeUInt32BE(s.update, 4);
  b.writeUInt32BE(s.crashes, 8);
  if (bound !== null) {
    b[3] = 1;
    b.write(bound.boot, 12, 'hex');
    b.writeUInt32BE(bound.generation, 20);
  }
  s.incarnations.forEach((inc, k) => {
    const o = head + k * INCARNATION;
    b.writeUInt32BE(inc.serverIsn, o);
    b.writeUInt32BE(inc.seqDelta, o + 4);
    b.writeUInt32BE(inc.tsDelta, o + 8);
    b.writeUInt32BE(addrs[k]!, o + 12);
    b.writeUInt16BE(inc.server.port, o + 16);
    b.writeUInt16BE(inc.serverSidePort, o + 18);
    b[o + 20] = inc.oldShift;
    b[o + 21] = inc.newShift;
  });
  return b;
}

/** The record in `b`, or null when `b` is not exactly one well-formed version-1 or version-2 record. Never throws. */
export function decodeState(b: Uint8Array): ConnectionState | null {
  if (!(b instanceof Uint8Array) || b.length < HEADER || b.length > STATE_MAX_BYTES) return null;
  const v = Buffer.from(b.buffer, b.byteOffset, b.length);
  const bound = v[0] === STATE_VERSION_BOUND;
  if (!bound && v[0] !== STATE_VERSION) return null;
  if (v[3] !== (bound ? 1 : 0)) return null;
  const head = bound ? HEADER_BOUND : HEADER;
  const phase = STATE_PHASES[v[1]!];
  const count = v[2]!;
  if (phase === undefined || count > MAX_INCARNATIONS || v.length !== head + count * INCARNATION) return null;
  const incarnations: IncarnationState[] = [];
  for (let k = 0; k < count; k++) {
    const o = head + k * INCARNATION;
    if (v.readUInt16BE(o + 22) !== 0) return null;
    incarnations.push({
      serverIsn: v.readUInt32BE(o),
      seqDelta: v.readUInt32BE(o + 4),
      tsDelta: v.readUInt32BE(o + 8),
      server: { addr: u32ToIp(v.readUInt32BE(o + 12)), port: v.readUInt16BE(o + 16) },
      serverSidePort: v.readUInt16BE(o + 18),
      oldShift: v[o + 20]!,
      newShift: v[o + 21]!,
    });
  }
  const s: ConnectionState = {
    update: v.readUInt32BE(4), phase, crashes: v.readUInt32BE(8), incarnations,
    ...(bound ? { boundTo: { boot: v.toString('hex', 12, 20), generation: v.readUInt32BE(20) } } : {}),
  };
  return invalid(s) === null ? s : null;
}

/** The hex form the link protocol and the disk log carry; null when it does not decode. */
export function stateFromHex(hex: unknown): ConnectionState | null {
  if (typeof hex !== 'string' || hex.length > 2 * STATE_MAX_BYTES || !/^(?:[0-9a-f]{2})*$/i.test(hex)) return null;
  return decodeState(Buffer.from(hex, 'hex'));
}
