/**
 * Step 7 of the log client (client.ts): a connection's newest state record (src/log/state.ts)
 * as one `state` request, kept (requests.ts) until the log server answers that its store
 * holds it stable. A newer record replaces the request of an older one still unanswered (the
 * newer covers it). The request is built at each send, so that it names the connection's id
 * at the server of that moment (a re-registration after a server restart changes it) and
 * waits while the connection is re-registering. An error answer other than a malformed record
 * (the server lost the connection, its store failed) leaves the record to be sent again
 * after the next re-registration.
 */
import { FtcpError } from '../../util/errors.js';
import type { ConnectionState } from '../types.js';
import { encodeRequest } from './protocol.js';
import type { Requests } from './requests.js';

/** What the request reads and writes of a connection. */
export interface StateSlot {
  closed: boolean;
  remoteId: number | null;
  registering: boolean;
  /** The newest record to make stable at the server (hex: its encoding), and its request while unanswered. */
  stateSend: { state: ConnectionState; hex: string } | null;
  stateReq: number | null;
}

export interface StateRequestHooks {
  /** A request left (first time or again). */
  sent(): void;
  /** The server holds `state` stably. */
  stable(state: ConnectionState): void;
  /** The server answered with an error (counted; `fatal` set when the record itself was refused). */
  refused(fatal: FtcpError | null): void;
  /** The request failed for good (the client shut down). */
  failed(err: FtcpError): void;
}

/** Sends `c.stateSend` in a new request (replacing an unanswered one). */
export function requestState(reqs: Requests, c: StateSlot, hooks: StateRequestHooks): void {
  const send = c.stateSend;
  if (send === null) return;
  if (c.stateReq !== null) reqs.cancel(c.stateReq);
  c.stateReq = reqs.add((id) => ({
    build: () => {
      if (c.closed) {
        reqs.cancel(id);
        return null;
      }
      if (c.remoteId === null || c.registering) return null;
      hooks.sent();
      return encodeRequest(id, { op: 'state', id: c.remoteId, state: send.hex });
    },
    settle: (m) => {
      if (c.stateReq === id) c.stateReq = null;
      const r = m.reply;
      if (r !== undefined && r.ok) hooks.stable(send.state);
      else hooks.refused(r !== undefined && !r.ok && r.code === 'FTCP_LOG_BAD_STATE' ? new FtcpError(r.code, r.message) : null);
    },
    fail: (err) => hooks.failed(err),
    staleOnRestart: false,
  }));
}
