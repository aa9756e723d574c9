import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLog, DiskLog, MemoryLog } from '../../../src/log/index.js';
import { FtcpError } from '../../../src/util/errors.js';

describe('createLog', () => {
  it('embedded and embedded:memory give a memory log', async () => {
    for (const spec of ['embedded', 'embedded:memory']) {
      const log = createLog(spec);
      expect(log).toBeInstanceOf(MemoryLog);
      await log.shutdown();
    }
  });

  it('embedded:disk gives a disk log in that directory', async () => {
    const dir = join(tmpdir(), `ftcp-${randomBytes(3).toString('hex')}`, 'nested');
    try {
      const log = createLog(`embedded:disk:${dir}`);
      expect(log).toBeInstanceOf(DiskLog);
      expect((log as DiskLog).dir).toBe(dir);
      expect(existsSync(join(dir, 'ftcp-log.mdb'))).toBe(true);
      await log.shutdown();
    } finally {
      rmSync(join(dir, '..'), { recursive: true, force: true });
    }
  });

  it('anything else is a bad log spec', () => {
    for (const spec of ['', 'memory', 'embedded:', 'embedded:disk', 'embedded:disk:', 'embedded:tape', 'remote:10.0.0.1']) {
      let err: unknown;
      try {
        createLog(spec);
      } catch (e) {
        err = e;
      }
      expect(err, spec).toBeInstanceOf(FtcpError);
      expect((err as FtcpError).code).toBe('FTCP_BAD_LOG_SPEC');
      expect((err as FtcpError).message).toContain('embedded:disk:<dir>');
    }
  });
});
