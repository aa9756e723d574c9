/**
 * The log: where the gateway keeps each protected connection's metadata and in-stream
 * bytes until they are stable. `createLog` turns the gateway's `--log` value into a store.
 */
import { FtcpError } from '../util/errors.js';
import { DiskLog, type DiskLogOptions } from './disk.js';
import { MemoryLog } from './memory.js';
import type { LogStore } from './types.js';
import { connectUdp, type RemoteLogOptions } from './remote/client.js';
import { DEV_KEY, loadKey } from '../link/key.js';
import { logger } from '../util/logger.js';

export type * from './types.js';
export type { LogOptions } from './common.js';
export type { DiskLogOptions } from './disk.js';
export { MemoryLog } from './memory.js';
export { DiskLog } from './disk.js';

export { RemoteLog, connectUdp } from './remote/client.js';
export { LogServer, UdpLogServer } from './remote/server.js';

export const LOG_SPEC_HELP = "expected 'embedded', 'embedded:memory', 'embedded:disk:<dir>' or 'udp://<ip>:<port>[,<ip>:<port>]'";

export interface CreateLogOptions extends DiskLogOptions, RemoteLogOptions {
  /** Remote log: the shared link key, or a file holding it (hex or raw). Default: DEV_KEY, with a warning. */
  key?: Buffer;
  keyFile?: string;
}

/** Parses the address list of a `udp://a:p[,b:p]` spec (one or two IPv4 endpoints). */
export function parseUdpSpec(spec: string): { address: string; port: number }[] {
  const body = spec.trim().slice('udp://'.length);
  const parts = body.split(',').map((p) => p.trim()).filter((p) => p !== '');
  const bad = (why: string): never => {
    throw new FtcpError('FTCP_BAD_LOG_SPEC', `--log ${JSON.stringify(spec)}: ${why}; ${LOG_SPEC_HELP}`);
  };
  if (parts.length < 1 || parts.length > 2) bad('expected one or two <ip>:<port>');
  return parts.map((p) => {
    const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(p);
    if (!m || m[1]!.split('.').some((o) => Number(o) > 255)) return bad(`bad address '${p}'`);
    const port = Number(m[2]);
    if (port < 1 || port > 65535) bad(`port out of range in '${p}'`);
    return { address: m[1]!, port };
  });
}

/**
 * `embedded` / `embedded:memory` -> MemoryLog; `embedded:disk:<dir>` -> DiskLog(dir)
 * (the directory is created if missing; a path may itself contain ':');
 * `udp://<ip>:<port>[,<ip>:<port>]` -> RemoteLog to an `ftcp logserver` (one address per network).
 * Anything else throws FtcpError 'FTCP_BAD_LOG_SPEC'.
 */
export function createLog(spec: string, options: CreateLogOptions = {}): LogStore {
  const s = spec.trim();
  if (s.startsWith('udp://')) {
    const servers = parseUdpSpec(s);
    let key = options.key;
    if (key === undefined && options.keyFile !== undefined) key = loadKey(options.keyFile);
    if (key === undefined) {
      logger.warn('log link: no key file, using the public development key (lab use only)');
      key = DEV_KEY;
    }
    return connectUdp({ ...options, key, servers });
  }
  if (s === 'embedded' || s === 'embedded:memory') return new MemoryLog(options);
  const diskPrefix = 'embedded:disk:';
  if (s.startsWith(diskPrefix)) {
    const dir = s.slice(diskPrefix.length);
    if (dir.trim() === '') throw new FtcpError('FTCP_BAD_LOG_SPEC', `--log ${JSON.stringify(spec)}: missing directory; ${LOG_SPEC_HELP}`);
    return new DiskLog(dir, options);
  }
  throw new FtcpError('FTCP_BAD_LOG_SPEC', `--log ${JSON.stringify(spec)} is not a log this build knows; ${LOG_SPEC_HELP}`);
}
