/**
 * File-system steps whose failure must be prompt and clear: creating a directory path
 * and reading a file named on the command line (a key, a capture, a trace).
 */
import { closeSync, constants, fstatSync, mkdirSync, openSync, readSync, rmdirSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { FtcpError } from './errors.js';

/**
 * Creates `dir` and its missing parents with one mkdir(2) each, and returns the
 * directories it created (outermost first), for `removeCreatedDirs` when a later setup
 * step fails. Throws the error of the first step that fails (ENOENT, EACCES, ENOTDIR ...).
 *
 * Not `mkdirSync(dir, { recursive: true })`: Node 20's recursive mkdir retries for ever,
 * at 100 % CPU, when mkdir(2) answers ENOENT although the parent exists, as it does
 * under /proc and /sys (`ftcp logserver --store disk:/proc/nope/x` never returned). Here
 * every component is tried once: at most one stat and one mkdir per path component.
 */
export function makeDirs(dir: string): string[] {
  const missing: string[] = [];
  for (let p = resolve(dir); ; p = dirname(p)) {
    let st: Stats | undefined;
    try {
      st = statSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (st !== undefined) {
      if (!st.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${p}'`), { code: 'ENOTDIR', path: p });
      break;
    }
    missing.push(p);
    if (dirname(p) === p) break; // the root itself is missing: mkdir will say why
  }
  const created: string[] = [];
  for (const p of missing.reverse()) {
    try {
      mkdirSync(p);
      created.push(p);
    } catch (err) {
      // Made meanwhile by someone else: fine if it is a directory.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && statSync(p, { throwIfNoEntry: false })?.isDirectory()) continue;
      removeCreatedDirs(created);
      throw err;
    }
  }
  return created;
}

/** Removes the directories `makeDirs` created, innermost first, if they are empty. */
export function removeCreatedDirs(created: readonly string[]): void {
  for (const p of [...created].reverse()) {
    try {
      rmdirSync(p);
    } catch {
      return; // not empty (or gone): leave it and its parents
    }
  }
}

/** What a file named on the command line is, when it is not a regular file. */
function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a pipe';
  if (st.isSocket()) return 'a socket';
  return 'of another kind';
}

/**
 * Reads a whole regular file, at most `maxBytes`. A device (/dev/zero), a pipe, a socket
 * or a directory is refused at once with FtcpError `code` (reading one would never end or
 * block): the file is opened non-blocking and fstat'ed before anything is read. `check`
 * sees the file's status first (e.g. its mode). Errors of open(2) are thrown as they are
 * (ENOENT, EACCES), for the caller to phrase.
 */
export function readRegularFile(path: string, what: string, code: string, maxBytes: number, check?: (st: Stats) => void): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FtcpError(code, `cannot read ${what} '${path}': is ${fileKind(st)}, not a regular file`);
    check?.(st);
    if (st.size > maxBytes) throw new FtcpError(code, `cannot read ${what} '${path}': ${st.size} bytes, more than the ${maxBytes} read at most`);
    // Read to EOF, not st.size bytes: a file still being written may have grown.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(Math.max(st.size - total, 64 * 1024), maxBytes + 1 - total);
      if (want <= 0) throw new FtcpError(code, `cannot read ${what} '${path}': it grew beyond ${maxBytes} bytes while being read`);
      const buf = Buffer.allocUnsafe(want);
      const n = readSync(fd, buf, 0, want, null);
      if (n === 0) break;
      chunks.push(n === want ? buf : buf.subarray(0, n));
      total += n;
    }
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}
