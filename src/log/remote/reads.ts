/**
 * Reads of the log client (client.ts): a connection's stable bytes fetched back from the log
 * server in READ requests of at most `chunk` bytes, `parallel` of them in flight, each kept
 * (requests.ts) until answered and sent again like every request. The server answers at most
 * MAX_READ_CHUNK bytes per request (server.ts), and a shorter answer than asked is not an
 * error: the next batch starts where it stopped. An empty answer is: the server holds less
 * than it reported stable (FTCP_LOG_RANGE).
 */
import { FtcpError } from '../../util/errors.js';
import { encodeRead } from './protocol.js';
import { replyError, type Requests } from './requests.js';

/** What a read needs of the connection (its request is built at each send: the server's id may change). */
export interface ReadTarget {
  readonly id: number;
  closed: boolean;
  remoteId: number | null;
  registering: boolean;
}

export interface ReadChunks {
  /** Bytes per READ request, and how many are in flight. */
  chunk: number;
  parallel: number;
}

/** Bytes [start, e) of `c` from the server; `pump` sends what the requests made. */
export async function readStable(reqs: Requests, c: ReadTarget, start: number, e: number, o: ReadChunks, pump: () => void): Promise<Buffer> {
  const parts: Buffer[] = [];
  let pos = start;
  while (pos < e) {
    const batch: [number, number][] = [];
    for (let k = 0, s = pos; k < o.parallel && s < e; k++, s += o.chunk) {
      batch.push([s, Math.min(e, s + o.chunk)]);
    }
    const got = await Promise.all(batch.map(([s, t]) => readChunk(reqs, c, s, t, pump)));
    let next = batch[batch.length - 1]![1];
    for (let i = 0; i < batch.length; i++) {
      const [s, t] = batch[i]!;
      const d = got[i]!;
      parts.push(d.length > t - s ? d.subarray(0, t - s) : d);
      if (d.length < t - s) {
        if (d.length === 0) {
          throw new FtcpError('FTCP_LOG_RANGE', `log read: the server holds less of connection ${c.id} than it reported stable (${s} < ${e})`);
        }
        next = s + d.length;
        break;
      }
    }
    pos = next;
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** One READ request; it waits (unsent) while the connection is re-registering, fails once it is closed. */
function readChunk(reqs: Requests, c: ReadTarget, start: number, end: number, pump: () => void): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    reqs.add((reqId) => ({
      build: () => {
        if (c.closed) {
          reqs.cancel(reqId);
          reject(new FtcpError('FTCP_LOG_UNKNOWN', `log read: connection ${c.id} was closed`));
          return null;
        }
        return c.remoteId === null || c.registering ? null : encodeRead(reqId, c.remoteId, start, end);
      },
      settle: (m) => (m.data !== undefined ? resolve(Buffer.from(m.data)) : reject(replyError(m.reply!))),
      fail: reject,
      staleOnRestart: false,
    }));
    queueMicrotask(pump);
  });
}
