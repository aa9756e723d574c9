/**
 * The shared key: what authenticates the link (every frame's HMAC, src/link/endpoint.ts)
 * between a gateway and its log server, and the supervisor → gateway notices
 * (src/supervisor/messages.ts). One key file format and one loader for all of them.
 *
 * Key: `loadKey(path)` reads a key file: either hex text (an even number of hex digits,
 * surrounding whitespace ignored) or raw bytes; at least 16 bytes either way. Like ssh with
 * a private key, it refuses a file that group or others may read or write (mode & 077).
 * Every key file (--key-file, --log-key-file) goes through it. Without a key
 * file the CLI uses DEV_KEY, a fixed, public development key, and logs a warning: it
 * authenticates nothing against an attacker and must not be used outside a lab.
 */
import type { Stats } from 'node:fs';
import { FtcpError } from '../util/errors.js';
import { readRegularFile } from '../util/fs.js';

export const MIN_KEY_LEN = 16;

/**
 * The built-in development key, used when no --key-file is given. It is public (it is in
 * this source file): notices and link frames signed with it are only protected against
 * accidents.
 */
export const DEV_KEY: Buffer = Buffer.from('ftcp-dev-key: NOT SECRET, lab use only', 'utf8');

/** A key file is at most this long (a 64-byte key in hex with a newline is 129 bytes). */
export const MAX_KEY_FILE_BYTES = 4096;

/**
 * A shared key must be private to its owner: refuses (FtcpError FTCP_KEY_MODE) a file
 * that group or others may read or write, as ssh refuses such a private key.
 */
export function checkKeyFileMode(path: string, st: Stats, what = 'key file'): void {
  if ((st.mode & 0o077) === 0) return;
  const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
  throw new FtcpError(
    'FTCP_KEY_MODE',
    `${what} '${path}' has mode ${mode}: group or others can access it, so ${what === 'key file' ? 'the key' : 'it'} is not secret. ` +
      `Make it private to its owner: chmod 600 '${path}'`,
  );
}

/**
 * Reads a key file: hex text (even number of hex digits, whitespace around ignored) or raw
 * bytes. Throws FtcpError FTCP_KEY when unreadable, not a regular file or shorter than 16
 * bytes, FTCP_KEY_MODE when group or others can access it (checkKeyFileMode).
 */
export function loadKey(path: string): Buffer {
  let raw: Buffer;
  try {
    raw = readRegularFile(path, 'key file', 'FTCP_KEY', MAX_KEY_FILE_BYTES, (st) => checkKeyFileMode(path, st));
  } catch (err) {
    if (err instanceof FtcpError) throw err;
    throw new FtcpError('FTCP_KEY', `cannot read key file '${path}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const text = raw.toString('latin1').trim();
  const key = text.length > 0 && text.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(text) ? Buffer.from(text, 'hex') : raw;
  if (key.length < MIN_KEY_LEN) {
    throw new FtcpError('FTCP_KEY', `key file '${path}' holds ${key.length} bytes; at least ${MIN_KEY_LEN} are needed (raw bytes or hex)`);
  }
  return key;
}
