/**
 * What the two SYNs of a connection negotiated, as the flow keeps it: the window shifts (both
 * SYNs carried a window scale, else 0), timestamps and SACK (both carried them), the first
 * TSvals. One function for the handshake seen live (src/wrappers/south-judge.ts synAcked) and
 * for a connection adopted from the log's SYN options (src/gateway/adopt.ts), so both read
 * the options the same way.
 */
import { TcpOptions, parseTcpOptions } from '../wire/tcp-options.js';
import type { Flow } from './flow.js';

const c = new TcpOptions();
const s = new TcpOptions();

/** Applies the client SYN's options (`flow.clientSynOptions`) and the server SYN-ACK's (at buf[off, off + len)) to `flow`. */
export function applySynOptions(flow: Flow, buf: Buffer, off: number, len: number): void {
  const okC = parseTcpOptions(flow.clientSynOptions, 0, flow.clientSynOptions.length, c);
  const okS = parseTcpOptions(buf, off, len, s);
  if (okC && okS && c.wscale >= 0 && s.wscale >= 0) {
    flow.clientWscale = Math.min(c.wscale, 14);
    flow.serverWscale = Math.min(s.wscale, 14);
  }
  if (!okC || !okS) return;
  flow.tsOk = c.tsOff >= 0 && s.tsOff >= 0;
  flow.sackOk = c.sackPermitted && s.sackPermitted;
  if (flow.tsOk) {
    flow.lastTsToClient = s.tsVal;
    flow.cliTsVal = c.tsVal;
  }
}
