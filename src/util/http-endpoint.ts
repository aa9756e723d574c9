/**
 * A bounded HTTP listener for an operator's endpoint: the gateway's control endpoint
 * (gateway/control.ts: /status, /metrics, the standby's commands) and the log server's
 * /metrics (log/remote/metrics.ts) are both built on it. It holds what a hostile or broken
 * client can exhaust, and counts every refusal:
 *
 *  * headers within headersTimeoutMs of the connection (408), the whole request within
 *    requestTimeoutMs, an idle keep-alive connection closed after keepAliveTimeoutMs, any
 *    silent socket after idleTimeoutMs (`timedOut`); Node checks every checkIntervalMs;
 *  * at most maxConnections at once, more closed at accept (`overCapacity`);
 *  * request line + headers at most maxHeaderBytes (431, `headersTooLarge`); anything else the
 *    parser refuses is a 400 (`badRequests`);
 *  * `accept(socket)` may close a connection before any byte is read (the control endpoint's
 *    reverse-path guard); a handler that throws answers 500 and is reported, never thrown.
 *
 * What the requests mean is the caller's: `handle(req, res)`.
 */
import http, { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { FtcpError } from './errors.js';
import type { Logger } from './logger.js';

/** The endpoint's bounds (ms, counts, bytes). */
export interface HttpLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
  maxHeaderBytes: number;
  checkIntervalMs: number;
}

export const HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 15_000,
  maxConnections: 32,
  maxHeaderBytes: 4096,
  checkIntervalMs: 250,
});

/** Requests answered and refused by the listener itself (the caller counts its own refusals beside them). */
export class HttpStats {
  /** Requests that reached the handler (answered or refused). */
  requests = 0;
  answered = 0;
  /** Not the method the path takes (405). */
  methodNotAllowed = 0;
  notFound = 0;
  /** A bad query, a request body, or a request the HTTP parser refused (400). */
  badRequests = 0;
  /** Request line + headers over maxHeaderBytes (431). */
  headersTooLarge = 0;
  /** Connections closed by a timeout: headers or request not complete in time, or silent. */
  timedOut = 0;
  /** Connections closed at accept: maxConnections were open. */
  overCapacity = 0;
}

export interface HttpEndpointOptions {
  addr: string;
  port: number;
  limits: HttpLimits;
  stats: HttpStats;
  /** What the endpoint is, for errors (e.g. '--control 127.0.0.1:7070'). */
  what: string;
  /** The FtcpError code of a failed bind. */
  bindErrorCode: string;
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** false: the connection is closed before any byte is read (counted by the caller). */
  accept?(socket: Socket): boolean;
  /** A handler that threw (answered 500). */
  onHandlerError?(err: unknown): void;
  logger?: Logger;
}

export interface HttpEndpoint {
  readonly server: http.Server;
  /** The bound address and port (port 0 asked: the one the kernel chose). */
  address(): { address: string; port: number };
  /** Open connections now. */
  connections(): number;
  close(): Promise<void>;
}

/** Listens (unref'd: it never keeps the process alive); rejects with FtcpError(bindErrorCode). */
export async function startHttpEndpoint(opts: HttpEndpointOptions): Promise<HttpEndpoint> {
  const { limits, stats } = opts;
  const sockets = new Set<Socket>();
  const server = http.createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: limits.checkIntervalMs,
      requireHostHeader: true,
    },
    (req, res) => {
      stats.requests++;
      try {
        opts.handle(req, res);
      } catch (err) {
        opts.onHandlerError?.(err);
        if (!res.headersSent) res.writeHead(500, { connection: 'close' });
        res.end();
      }
    },
  );
  server.maxConnections = limits.maxConnections;
  server.maxRequestsPerSocket = 100;
  server.on('drop', () => {
    stats.overCapacity++;
  });
  server.on('connection', (s: Socket) => {
    if (opts.accept !== undefined && !opts.accept(s)) {
      s.destroy();
      return;
    }
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  // A silent socket (idle keep-alive or a stalled client) past idleTimeoutMs.
  server.setTimeout(limits.idleTimeoutMs, (s: Socket) => {
    stats.timedOut++;
    s.destroy();
  });
  // Requests the parser refuses or that time out: answered with a status line and closed.
  server.on('clientError', (err: NodeJS.ErrnoException, s: Socket) => {
    let status = 400;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      stats.timedOut++;
      status = 408;
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      stats.headersTooLarge++;
      status = 431;
    } else if (err.code === 'ECONNRESET') {
      s.destroy();
      return;
    } else {
      stats.badRequests++;
    }
    if (s.writable && s.bytesWritten === 0) s.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    s.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new FtcpError(opts.bindErrorCode, `${opts.what}: ${(err as Error).message}`, { cause: err })));
    server.listen(opts.port, opts.addr, () => resolve());
  });
  server.removeAllListeners('error');
  server.on('error', (err) => opts.logger?.error({ err }, `${opts.what}: endpoint error`));
  const bound = server.address() as { address: string; port: number };
  server.unref();
  return {
    server,
    address: () => ({ address: bound.address, port: bound.port }),
    connections: () => sockets.size,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}

/**
 * The checks every GET-only path shares: the method (405) and no body (400). Answers and
 * counts the refusal; true when the request may be served.
 */
export function plainGet(req: http.IncomingMessage, res: http.ServerResponse, stats: HttpStats, method = 'GET'): boolean {
  if (req.method !== method) {
    stats.methodNotAllowed++;
    refuse(res, 405, `only ${method}\n`, { allow: method });
    return false;
  }
  if (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0') {
    stats.badRequests++;
    refuse(res, 400, `a ${method} carries no body\n`);
    return false;
  }
  return true;
}

/** A plain-text refusal; the connection is closed after it. */
export function refuse(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain', connection: 'close', ...headers }).end(body);
}
