/** src/util/fs.ts: a directory path made one component at a time; regular files only. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeDirs, readRegularFile, removeCreatedDirs } from '../../../src/util/fs.js';
import { FtcpError } from '../../../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'ftcp-fs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('makeDirs', () => {
  it('creates the missing components and returns them, outermost first; nothing when all exist', () => {
    const target = join(dir, 'a', 'b', 'c');
    expect(makeDirs(target)).toEqual([join(dir, 'a'), join(dir, 'a', 'b'), target]);
    expect(statSync(target).isDirectory()).toBe(true);
    expect(makeDirs(target)).toEqual([]);
    removeCreatedDirs([join(dir, 'a'), join(dir, 'a', 'b'), target]);
    expect(existsSync(join(dir, 'a'))).toBe(false);
  });

  it('fails at once where Node 20 recursive mkdir spins for ever: ENOENT under /proc', () => {
    const t0 = Date.now();
    expect(() => makeDirs('/proc/nope/x')).toThrowError(/ENOENT.*mkdir '\/proc\/nope'/);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('a file in the path: ENOTDIR, the file untouched', () => {
    writeFileSync(join(dir, 'file'), 'x');
    expect(() => makeDirs(join(dir, 'file', 'sub', 'dir'))).toThrowError(/ENOTDIR/);
    expect(statSync(join(dir, 'file')).isFile()).toBe(true);
  });

  it('removeCreatedDirs leaves a directory that holds something', () => {
    const made = makeDirs(join(dir, 'k', 'l'));
    writeFileSync(join(dir, 'k', 'l', 'data'), 'x');
    removeCreatedDirs(made);
    expect(existsSync(join(dir, 'k', 'l', 'data'))).toBe(true);
  });
});

describe('readRegularFile', () => {
  it('reads a file whole; refuses devices, pipes and directories at once, and files over the bound', () => {
    const f = join(dir, 'r');
    writeFileSync(f, Buffer.alloc(200_000, 7));
    expect(readRegularFile(f, 'input', 'FTCP_T', 1 << 20).equals(Buffer.alloc(200_000, 7))).toBe(true);
    expect(readRegularFile(f, 'input', 'FTCP_T', 200_000).length).toBe(200_000);
    expect(() => readRegularFile(f, 'input', 'FTCP_T', 199_999)).toThrowError(/200000 bytes, more than the 199999/);
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    for (const [p, kind] of [['/dev/zero', 'a character device'], [fifo, 'a pipe'], [dir, 'a directory']] as const) {
      try {
        readRegularFile(p, 'input', 'FTCP_T', 1 << 20);
        expect.unreachable(p);
      } catch (err) {
        expect(err).toBeInstanceOf(FtcpError);
        expect((err as FtcpError).code).toBe('FTCP_T');
        expect((err as Error).message).toBe(`cannot read input '${p}': is ${kind}, not a regular file`);
      }
    }
    expect(() => readRegularFile(join(dir, 'absent'), 'input', 'FTCP_T', 10)).toThrowError(/ENOENT/);
  });
});
