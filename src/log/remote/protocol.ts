/**
 * The log protocol: the messages a gateway (RemoteLog, client.ts) and a log server
 * (LogServer, server.ts) exchange over one link (src/link: sequenced, authenticated,
 * in-order within a session, losses reported). One link message is one log message.
 *
 * Hot path messages are binary (all integers big-endian; offsets as u64 = hi u32, lo u32,
 * below 2^53):
 *
 *   APPEND  0x01 | id u32 | offset u64 | data ...          gateway → server
 *   FIN     0x02 | id u32 | offset u64                     gateway → server
 *   GC      0x03 | id u32 | through u64                    gateway → server
 *   READ    0x04 | reqId u32 | id u32 | start u64 | end u64   gateway → server
 *   STABLE  0x81 | count u16 | count × (id u32 | stable u64)   server → gateway
 *   DATA    0x82 | reqId u32 | bytes ...                   server → gateway (READ reply)
 *
 * Slow path messages carry JSON after a one-byte type and a u32 request id:
 *
 *   REQUEST 0x10 | reqId u32 | {"op": "open" | "close" | "list" | "query" | "register" | "expiry" | "stats" | "state" | "claim", ...}
 *   REPLY   0x90 | reqId u32 | {"ok": true, ...} | {"ok": false, "code": "...", "message": "...", "epoch"?: n}
 *   STATUS  0x91 | 0 u32     | {"status": "OK" | "LOW-SPACE" | "FAILED", "expired"?: id, "reason"?: text}
 *                            | {"status": "FENCED", "epoch": n}   (this gateway's writes are refused: epochs.ts)
 *
 * `decode` never throws: a message that does not parse is `null`, counted by the caller
 * as malformed (STYLE.md 6). Metadata option bytes travel as hex strings, and so does a
 * connection's state record (src/log/state.ts, at most STATE_MAX_BYTES): `state` requests
 * {"op": "state", "id", "state": hex} are answered {"ok": true, "update"} once the record is
 * stable in the server's store; records in `list` / `query` replies carry it (or null).
 *
 * Epochs (version 3, epochs.ts): {"op": "claim", "protocol"} makes the asking gateway THE
 * writer; the reply {"ok": true, "epoch"} names its epoch, higher than any granted before.
 * Writes of any other gateway are refused from then on: FTCP_LOG_FENCED (with "epoch") for a
 * request, a STATUS "FENCED" once per epoch for the binary ones.
 *
 * Paged list: {"op": "list", "after": id, "max": n} asks for the open connections with an id
 * above `after` (0: from the start), ascending, at most `max` of them; the server answers at
 * most LIST_PAGE_RECORDS records and LIST_PAGE_BYTES of them per reply, whichever comes first,
 * with "next": the cursor for the next page (the last id in this one), or null when none is
 * left. A list without "after" is the one-message list of before (every record; refused with
 * FTCP_LOG_TOO_LARGE when it does not fit a link message). No version bump: a server that
 * does not page answers a paged request with every record and no "next", which the client
 * takes as the whole list; a client that does not page never sends "after".
 *
 * Versions: LOG_PROTOCOL_VERSION travels in every `open` and `claim` request ("protocol") and
 * the open's reply. Version 1 (before the state record) carried none; 2 had no epochs. A server refuses an open of another
 * version with FTCP_LOG_VERSION; a gateway whose open is answered without its version (an
 * older server) reports the log FAILED with the same code: never a half-understood link.
 */
import type { ConnectionRecord, Endpoint, LogStats, LogStatus, OpenMeta } from '../types.js';
import { encodeState, stateFromHex } from '../state.js';

/** The log link protocol's version (2: the state record; 3: epochs and fencing). */
export const LOG_PROTOCOL_VERSION = 3;

export const T_APPEND = 0x01;
export const T_FIN = 0x02;
export const T_GC = 0x03;
export const T_READ = 0x04;
export const T_REQUEST = 0x10;
export const T_STABLE = 0x81;
export const T_DATA = 0x82;
export const T_REPLY = 0x90;
export const T_STATUS = 0x91;

export const APPEND_HEADER = 13;
/** Entries per STABLE message (12 bytes each; one message stays within a few frames). */
export const MAX_STABLE_ENTRIES = 1000;
/** Records per `list` page, and their JSON bytes per page (at least one record goes): far below a link message (1 MiB). */
export const LIST_PAGE_RECORDS = 256;
export const LIST_PAGE_BYTES = 256 * 1024;

const TWO32 = 0x1_0000_0000;

function putU64(b: Buffer, off: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / TWO32), off);
  b.writeUInt32BE(v >>> 0, off + 4);
}

function getU64(b: Buffer, off: number): number {
  return b.readUInt32BE(off) * TWO32 + b.readUInt32BE(off + 4);
}

/** An offset that fits the wire (u64 below 2^53). */
export function wireOffset(v: number): boolean {
  return Number.isSafeInteger(v) && v >= 0;
}

// ---- binary messages -------------------------------------------------------------------

/** APPEND with `n` data bytes left to fill at APPEND_HEADER (the caller copies them in). */
export function allocAppend(id: number, offset: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(APPEND_HEADER + n);
  b[0] = T_APPEND;
  b.writeUInt32BE(id, 1);
  putU64(b, 5, offset);
  return b;
}

export function encodeAppend(id: number, offset: number, data: Uint8Array): Buffer {
  const b = allocAppend(id, offset, data.length);
  b.set(data, APPEND_HEADER);
  return b;
}

function encodeIdOffset(type: number, id: number, offset: number): Buffer {
  const b = Buffer.allocUnsafe(13);
  b[0] = type;
  b.writeUInt32BE(id, 1);
  putU64(b, 5, offset);
  return b;
}

export const encodeFin = (id: number, offset: number): Buffer => encodeIdOffset(T_FIN, id, offset);
export const encodeGc = (id: number, through: number): Buffer => encodeIdOffset(T_GC, id, through);

export function encodeRead(reqId: number, id: number, start: number, end: number): Buffer {
  const b = Buffer.allocUnsafe(25);
  b[0] = T_READ;
  b.writeUInt32BE(reqId, 1);
  b.writeUInt32BE(id, 5);
  putU64(b, 9, start);
  putU64(b, 17, end);
  return b;
}

export function encodeStable(entries: readonly (readonly [number, number])[]): Buffer {
  const b = Buffer.allocUnsafe(3 + entries.length * 12);
  b[0] = T_STABLE;
  b.writeUInt16BE(entries.length, 1);
  let o = 3;
  for (const [id, stable] of entries) {
    b.writeUInt32BE(id, o);
    putU64(b, o + 4, stable);
    o += 12;
  }
  return b;
}

export function encodeData(reqId: number, data: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(5 + data.length);
  b[0] = T_DATA;
  b.writeUInt32BE(reqId, 1);
  b.set(data, 5);
  return b;
}

// ---- JSON messages ---------------------------------------------------------------------

export interface WireMeta {
  client: Endpoint;
  server: Endpoint;
  clientIsn: number;
  serverIsn: number;
  clientSynOptions: string;
  serverSynOptions: string;
}

export type Request =
  | { op: 'open'; meta: WireMeta; gcThrough?: number; protocol?: number }
  | { op: 'close'; id: number }
  | { op: 'list'; after?: number; max?: number }
  | { op: 'query'; client: Endpoint; server?: Endpoint }
  | { op: 'register'; services: Endpoint[] }
  | { op: 'expiry'; ms: number }
  | { op: 'stats' }
  | { op: 'state'; id: number; state: string }
  | { op: 'claim'; protocol?: number };

export interface WireRecord extends WireMeta {
  id: number;
  created: number;
  stable: number;
  finOffset: number | null;
  gcThrough: number;
  modified: number;
  /** The state record (hex), null when none. */
  state: string | null;
}

export type Reply =
  | {
      ok: true; id?: number; stable?: number; finOffset?: number | null; gcThrough?: number; records?: WireRecord[];
      record?: WireRecord | null; stats?: LogStats; status?: LogStatus;
      /** open: the server's protocol version, and the update of the state record it holds (0: none). */
      protocol?: number; stateUpdate?: number;
      /** state: the update now stable. */
      update?: number;
      /** claim: the epoch granted. */
      epoch?: number;
      /** paged list: the cursor of the next page (the last id in this one), null when none is left. */
      next?: number | null;
    }
  | { ok: false; code: string; message: string; epoch?: number };

export interface StatusMsg {
  /** FENCED: this gateway's writes are refused from now on (`epoch`: the one that fenced it). */
  status: LogStatus | 'FENCED';
  expired?: number;
  reason?: string;
  epoch?: number;
}

function encodeJson(type: number, reqId: number, body: unknown): Buffer {
  return encodeJsonText(type, reqId, JSON.stringify(body));
}

function encodeJsonText(type: number, reqId: number, text: string): Buffer {
  const json = Buffer.from(text, 'utf8');
  const b = Buffer.allocUnsafe(5 + json.length);
  b[0] = type;
  b.writeUInt32BE(reqId >>> 0, 1);
  json.copy(b, 5);
  return b;
}

export const encodeRequest = (reqId: number, r: Request): Buffer => encodeJson(T_REQUEST, reqId, r);
export const encodeReply = (reqId: number, r: Reply): Buffer => encodeJson(T_REPLY, reqId, r);
/** A reply whose JSON text the caller made (a list page: each record encoded once, measured as it is). */
export const encodeReplyText = (reqId: number, json: string): Buffer => encodeJsonText(T_REPLY, reqId, json);
export const encodeStatus = (s: StatusMsg): Buffer => encodeJson(T_STATUS, 0, s);

export function metaToWire(m: OpenMeta): WireMeta {
  return {
    client: { addr: m.client.addr, port: m.client.port },
    server: { addr: m.server.addr, port: m.server.port },
    clientIsn: m.clientIsn,
    serverIsn: m.serverIsn,
    clientSynOptions: Buffer.from(m.clientSynOptions).toString('hex'),
    serverSynOptions: Buffer.from(m.serverSynOptions).toString('hex'),
  };
}

export function metaFromWire(w: WireMeta): OpenMeta {
  return {
    client: { addr: w.client.addr, port: w.client.port },
    server: { addr: w.server.addr, port: w.server.port },
    clientIsn: w.clientIsn,
    serverIsn: w.serverIsn,
    clientSynOptions: Uint8Array.from(Buffer.from(String(w.clientSynOptions), 'hex')),
    serverSynOptions: Uint8Array.from(Buffer.from(String(w.serverSynOptions), 'hex')),
  };
}

export function recordToWire(r: ConnectionRecord): WireRecord {
  // Added to metaToWire's object, not spread into a new one: a log server's list makes one per
  // record listed (a standby lists every second), and the spread was most of its time.
  return Object.assign(metaToWire(r), {
    id: r.id,
    created: r.created,
    stable: r.stable,
    finOffset: r.finOffset,
    gcThrough: r.gcThrough,
    modified: r.modified,
    state: r.state === null ? null : encodeState(r.state).toString('hex'),
  });
}

/** A record from the wire; its state is null when absent or malformed (`badState` tells which). */
export function recordFromWire(w: WireRecord): { record: ConnectionRecord; badState: boolean } {
  const state = w.state === null || w.state === undefined ? null : stateFromHex(w.state);
  return {
    record: {
      ...metaFromWire(w),
      id: w.id,
      created: w.created,
      stable: w.stable,
      finOffset: w.finOffset,
      gcThrough: w.gcThrough,
      modified: w.modified,
      state,
    },
    badState: state === null && w.state !== null && w.state !== undefined,
  };
}

/** The identity of a connection for re-registration: 4-tuple and both ISNs. */
export function metaKey(m: { client: Endpoint; server: Endpoint; clientIsn: number; serverIsn: number }): string {
  return `${m.client.addr}:${m.client.port}>${m.server.addr}:${m.server.port}/${m.clientIsn}/${m.serverIsn}`;
}

// ---- decoding --------------------------------------------------------------------------

export type Decoded =
  | { t: typeof T_APPEND; id: number; offset: number; data: Buffer }
  | { t: typeof T_FIN; id: number; offset: number }
  | { t: typeof T_GC; id: number; offset: number }
  | { t: typeof T_READ; reqId: number; id: number; start: number; end: number }
  | { t: typeof T_STABLE; entries: [number, number][] }
  | { t: typeof T_DATA; reqId: number; data: Buffer }
  | { t: typeof T_REQUEST; reqId: number; req: Request }
  | { t: typeof T_REPLY; reqId: number; reply: Reply }
  | { t: typeof T_STATUS; status: StatusMsg };

function parseJson(b: Buffer): unknown {
  try {
    return JSON.parse(b.subarray(5).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const REQUEST_OPS = new Set(['open', 'close', 'list', 'query', 'register', 'expiry', 'stats', 'state', 'claim']);
const STATUSES = new Set(['OK', 'LOW-SPACE', 'FAILED', 'FENCED']);

/** An epoch as the wire may carry it: a positive safe integer (0 is "none granted yet"). */
export function isEpoch(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

/** Decodes one log message; null when it is malformed (never throws). */
export function decode(b: Buffer): Decoded | null {
  if (b.length < 1) return null;
  const t = b[0];
  switch (t) {
    case T_APPEND:
      if (b.length < APPEND_HEADER) return null;
      return { t, id: b.readUInt32BE(1), offset: getU64(b, 5), data: b.subarray(APPEND_HEADER) };
    case T_FIN:
    case T_GC:
      if (b.length !== 13) return null;
      return { t, id: b.readUInt32BE(1), offset: getU64(b, 5) };
    case T_READ:
      if (b.length !== 25) return null;
      return { t, reqId: b.readUInt32BE(1), id: b.readUInt32BE(5), start: getU64(b, 9), end: getU64(b, 17) };
    case T_STABLE: {
      if (b.length < 3) return null;
      const n = b.readUInt16BE(1);
      if (b.length !== 3 + n * 12) return null;
      const entries: [number, number][] = [];
      for (let i = 0, o = 3; i < n; i++, o += 12) entries.push([b.readUInt32BE(o), getU64(b, o + 4)]);
      return { t, entries };
    }
    case T_DATA:
      if (b.length < 5) return null;
      return { t, reqId: b.readUInt32BE(1), data: b.subarray(5) };
    case T_REQUEST: {
      if (b.length < 5) return null;
      const v = parseJson(b);
      if (!isObj(v) || typeof v.op !== 'string' || !REQUEST_OPS.has(v.op)) return null;
      return { t, reqId: b.readUInt32BE(1), req: v as unknown as Request };
    }
    case T_REPLY: {
      if (b.length < 5) return null;
      const v = parseJson(b);
      if (!isObj(v) || typeof v.ok !== 'boolean') return null;
      return { t, reqId: b.readUInt32BE(1), reply: v as unknown as Reply };
    }
    case T_STATUS: {
      if (b.length < 5) return null;
      const v = parseJson(b);
      if (!isObj(v) || typeof v.status !== 'string' || !STATUSES.has(v.status)) return null;
      if (v.status === 'FENCED' && !isEpoch(v.epoch)) return null;
      return { t, status: v as unknown as StatusMsg };
    }
    default:
      return null;
  }
}
