import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { describe, it, expect, afterAll } from 'vitest';
import fc from 'fast-check';
import { decodeNotice, encodeNotice, newBootId, MAGIC, TAG_LEN, NOTICE_TYPES, type Notice } from '../../../src/supervisor/messages.js';
import { DEV_KEY, loadKey, MAX_KEY_FILE_BYTES } from '../../../src/link/key.js';
import { createLog } from '../../../src/log/index.js';
import { FtcpError } from '../../../src/util/errors.js';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
const OTHER = Buffer.from('fedcba9876543210fedcba9876543210', 'hex');

function notice(over: Partial<Notice> = {}): Notice {
  return { v: 1, type: 'crashed', service: '198.18.2.2:5001', boot: 'a1b2c3d4e5f60718', seq: 7, generation: 3, sentAt: 1_700_000_000_000, pid: 4242, signal: 'SIGKILL', ...over };
}

/** Signs arbitrary body bytes the way encodeNotice does, to build authentic-but-bad bodies. */
function signRaw(body: string, key = KEY): Buffer {
  const signed = Buffer.concat([MAGIC, Buffer.from(body, 'utf8')]);
  return Buffer.concat([signed, createHmac('sha256', key).update(signed).digest()]);
}

const dir = mkdtempSync(join(tmpdir(), 'ftcp-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('notice encoding', () => {
  it('round-trips every type with and without optional fields', () => {
    for (const type of NOTICE_TYPES) {
      const n = notice({ type });
      expect(decodeNotice(encodeNotice(n, KEY), KEY)).toEqual(n);
      const bare: Notice = { v: 1, type, service: '127.0.0.1:80', boot: newBootId(), seq: 1, generation: 0, sentAt: 0 };
      expect(decodeNotice(encodeNotice(bare, KEY), KEY)).toEqual(bare);
    }
    const hb = notice({ type: 'heartbeat', alive: false, listening: true, exitCode: 0, signal: undefined });
    delete hb.signal;
    expect(decodeNotice(encodeNotice(hb, KEY), KEY)).toEqual(hb);
  });

  it('round-trips arbitrary valid notices (property)', () => {
    const arb = fc.record({
      type: fc.constantFrom(...NOTICE_TYPES),
      seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      generation: fc.integer({ min: 0, max: 1e9 }),
      sentAt: fc.integer({ min: 0, max: 4e12 }),
      pid: fc.option(fc.integer({ min: 1, max: 4_194_304 }), { nil: undefined }),
      alive: fc.option(fc.boolean(), { nil: undefined }),
    });
    fc.assert(
      fc.property(arb, (r) => {
        const n: Notice = { v: 1, service: '10.0.0.1:65535', boot: '0000000000000001', ...r };
        if (n.pid === undefined) delete n.pid;
        if (n.alive === undefined) delete n.alive;
        expect(decodeNotice(encodeNotice(n, KEY), KEY)).toEqual(n);
      }),
      { numRuns: 200 },
    );
  });

  it('the body is magic + JSON + a 32-byte HMAC-SHA256 over both', () => {
    const buf = encodeNotice(notice(), KEY);
    expect(buf.subarray(0, 4).toString('latin1')).toBe('FTSN');
    const signed = buf.subarray(0, buf.length - TAG_LEN);
    expect(buf.subarray(buf.length - TAG_LEN)).toEqual(createHmac('sha256', KEY).update(signed).digest());
    expect(JSON.parse(signed.subarray(4).toString('utf8'))).toMatchObject({ v: 1, type: 'crashed', seq: 7 });
  });

  it('a wrong key is FORGED', () => {
    expect(decodeNotice(encodeNotice(notice(), OTHER), KEY)).toEqual({ error: 'FORGED' });
  });

  it('any flipped bit is FORGED (or MALFORMED when it hits the magic), never accepted', () => {
    const buf = encodeNotice(notice(), KEY);
    for (let bit = 0; bit < buf.length * 8; bit++) {
      const b = Buffer.from(buf);
      b[bit >> 3]! ^= 1 << (bit & 7);
      const r = decodeNotice(b, KEY);
      expect(r, `bit ${bit}`).toEqual({ error: bit < 32 ? 'MALFORMED' : 'FORGED' });
    }
  });

  it('truncated, oversized, magic-less and authentic-but-invalid bodies are MALFORMED', () => {
    const buf = encodeNotice(notice(), KEY);
    expect(decodeNotice(Buffer.alloc(0), KEY)).toEqual({ error: 'MALFORMED' });
    expect(decodeNotice(buf.subarray(0, 20), KEY)).toEqual({ error: 'MALFORMED' });
    expect(decodeNotice(Buffer.concat([Buffer.from('XXXX'), buf.subarray(4)]), KEY)).toEqual({ error: 'MALFORMED' });
    expect(decodeNotice(Buffer.alloc(2000, 1), KEY)).toEqual({ error: 'MALFORMED' });
    expect(decodeNotice(signRaw('{not json'), KEY)).toEqual({ error: 'MALFORMED' });
    expect(decodeNotice(signRaw('[1,2]'), KEY)).toEqual({ error: 'MALFORMED' });
    const good = JSON.parse(JSON.stringify(notice())) as Record<string, unknown>;
    const bad: Array<Record<string, unknown>> = [
      { ...good, v: 2 },
      { ...good, type: 'exploded' },
      { ...good, service: 'localhost:80' },
      { ...good, boot: 'xyz' },
      { ...good, seq: 0 },
      { ...good, seq: 1.5 },
      { ...good, generation: -1 },
      { ...good, pid: 'one' },
      { ...good, signal: 'kill' },
      { ...good, alive: 'yes' },
    ];
    for (const b of bad) expect(decodeNotice(signRaw(JSON.stringify(b)), KEY), JSON.stringify(b)).toEqual({ error: 'MALFORMED' });
    // the same body, valid, is accepted: the cases above fail for the field they change
    expect(decodeNotice(signRaw(JSON.stringify(good)), KEY)).toEqual(notice());
  });

  it('boot ids are 64 random bits in hex', () => {
    const a = newBootId();
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(newBootId()).not.toBe(a);
  });
});

describe('loadKey', () => {
  it('reads hex text (whitespace trimmed) and raw bytes', () => {
    const hex = join(dir, 'hex');
    writeFileSync(hex, '  00112233445566778899aabbccddeeff\n', { mode: 0o600 });
    expect(loadKey(hex)).toEqual(Buffer.from('00112233445566778899aabbccddeeff', 'hex'));
    const raw = join(dir, 'raw');
    const bytes = Buffer.from([0, 1, 2, 255, 254, 10, 13, 32, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
    writeFileSync(raw, bytes, { mode: 0o600 });
    expect(loadKey(raw)).toEqual(bytes);
  });

  it('rejects short keys and missing files with FtcpError FTCP_KEY', () => {
    const short = join(dir, 'short');
    writeFileSync(short, '00112233445566778899aabbccddee', { mode: 0o600 }); // 15 bytes as hex, 30 as raw? hex wins
    expect(() => loadKey(short)).toThrowError(FtcpError);
    expect(() => loadKey(short)).toThrowError(/15 bytes; at least 16/);
    const tiny = join(dir, 'tiny');
    writeFileSync(tiny, 'secret', { mode: 0o600 });
    expect(() => loadKey(tiny)).toThrowError(/6 bytes/);
    try {
      loadKey(join(dir, 'absent'));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(FtcpError);
      expect((err as FtcpError).code).toBe('FTCP_KEY');
      expect((err as Error).message).toMatch(/ENOENT/);
    }
  });

  it('refuses a key file group or others can access, like ssh, naming the file, its mode and the fix', () => {
    const f = join(dir, 'shared');
    writeFileSync(f, '00112233445566778899aabbccddeeff\n', { mode: 0o600 });
    expect(loadKey(f).length).toBe(16);
    for (const mode of [0o644, 0o640, 0o604, 0o660, 0o602, 0o610, 0o666]) {
      chmodSync(f, mode);
      const want = mode.toString(8).padStart(4, '0');
      try {
        loadKey(f);
        expect.unreachable(`mode ${want} accepted`);
      } catch (err) {
        expect(err).toBeInstanceOf(FtcpError);
        expect((err as FtcpError).code).toBe('FTCP_KEY_MODE');
        expect((err as Error).message).toBe(
          `key file '${f}' has mode ${want}: group or others can access it, so the key is not secret. Make it private to its owner: chmod 600 '${f}'`,
        );
      }
    }
    chmodSync(f, 0o400);
    expect(loadKey(f).length).toBe(16);
    // The log link's key file (gateway --log-key-file) goes through the same check.
    chmodSync(f, 0o644);
    expect(() => createLog('udp://127.0.0.1:9', { keyFile: f })).toThrowError(/has mode 0644.*chmod 600/);
  });

  it('refuses a key "file" that is not a regular file', () => {
    expect(() => loadKey(dir)).toThrowError(/key file '.*': is a directory, not a regular file/);
    const big = join(dir, 'big');
    writeFileSync(big, Buffer.alloc(MAX_KEY_FILE_BYTES + 1, 0x61), { mode: 0o600 });
    expect(() => loadKey(big)).toThrowError(/4097 bytes/);
  });

  it('the development key is long enough to be a key', () => {
    expect(DEV_KEY.length).toBeGreaterThanOrEqual(16);
  });
});
