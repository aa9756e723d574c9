/**
 * The log: where the gateway keeps each protected connection's metadata and in-stream
 * bytes until they are stable. `createLog` turns the gateway's `--log` value into a store.
 */
import { FtcpError } from '../util/errors.js';
import { DiskLog, type DiskLogOptions } from './disk.js';
import { MemoryLog } from './memory.js';
import type { LogStore } from './types.js';

export type * from './types.js';
export type { LogOptions } from './common.js';
export type { DiskLogOptions } from './disk.js';
export { MemoryLog } from './memory.js';
export { DiskLog } from './disk.js';

export const LOG_SPEC_HELP = "expected 'embedded', 'embedded:memory' or 'embedded:disk:<dir>'";

/**
 * `embedded` / `embedded:memory` -> MemoryLog; `embedded:disk:<dir>` -> DiskLog(dir)
 * (the directory is created if missing; a path may itself contain ':').
 * Anything else throws FtcpError 'FTCP_BAD_LOG_SPEC'.
 */
export function createLog(spec: string, options: DiskLogOptions = {}): LogStore {
  const s = spec.trim();
  if (s === 'embedded' || s === 'embedded:memory') return new MemoryLog(options);
  const diskPrefix = 'embedded:disk:';
  if (s.startsWith(diskPrefix)) {
    const dir = s.slice(diskPrefix.length);
    if (dir.trim() === '') throw new FtcpError('FTCP_BAD_LOG_SPEC', `--log ${JSON.stringify(spec)}: missing directory; ${LOG_SPEC_HELP}`);
    return new DiskLog(dir, options);
  }
  throw new FtcpError('FTCP_BAD_LOG_SPEC', `--log ${JSON.stringify(spec)} is not a log this build knows; ${LOG_SPEC_HELP}`);
}
