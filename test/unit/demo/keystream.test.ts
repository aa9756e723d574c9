import { createCipheriv, createHash } from 'node:crypto';
import { describe, it, expect } from 'vitest';
import { CHUNK_BYTES, Keystream, keystreamParams, keystreamSha256 } from '../../../src/demo/keystream.js';
import { LineSplitter } from '../../../src/demo/lines.js';
import { EchoScript, KvScript, KV_KEYS_PER_CONN } from '../../../src/demo/scripts.js';

describe('keystream', () => {
  it('derives key and iv from SHA-256 of the seed', () => {
    const d = createHash('sha256').update('ftcp-demo\0seed-7').digest();
    const { key, iv } = keystreamParams('seed-7');
    expect(key.equals(d.subarray(0, 16))).toBe(true);
    expect(iv.equals(d.subarray(16, 32))).toBe(true);
  });

  it('is AES-128-CTR over zeros: block 0 is AES_k(iv), block 1 is AES_k(iv+1)', () => {
    const { key, iv } = keystreamParams('42');
    const ecb = createCipheriv('aes-128-ecb', key, null).setAutoPadding(false);
    const iv1 = Buffer.from(iv);
    for (let i = 15; i >= 0; i--) {
      iv1[i] = (iv1[i]! + 1) & 0xff;
      if (iv1[i] !== 0) break;
    }
    const expected = ecb.update(Buffer.concat([iv, iv1]));
    expect(new Keystream('42').next(32).equals(expected)).toBe(true);
  });

  it('does not depend on how the stream is cut into chunks', () => {
    const whole = new Keystream('9').next(CHUNK_BYTES + 1000);
    const ks = new Keystream('9');
    const parts = [ks.next(1), ks.next(15), ks.next(17), ks.next(CHUNK_BYTES), ks.next(CHUNK_BYTES + 1000 - 33 - CHUNK_BYTES)];
    expect(Buffer.concat(parts).equals(whole)).toBe(true);
    expect(ks.offset).toBe(CHUNK_BYTES + 1000);
  });

  it('differs between seeds and repeats for the same seed', () => {
    expect(new Keystream('1').next(64).equals(new Keystream('2').next(64))).toBe(false);
    expect(new Keystream('1').next(64).equals(new Keystream('1').next(64))).toBe(true);
  });

  it('keystreamSha256 hashes exactly the first n bytes', () => {
    const n = 3 * CHUNK_BYTES + 77;
    const direct = createHash('sha256').update(new Keystream('s').next(n)).digest('hex');
    expect(keystreamSha256('s', n)).toBe(direct);
    expect(keystreamSha256('s', n - 1)).not.toBe(direct);
    expect(keystreamSha256('s', 0)).toBe(createHash('sha256').digest('hex'));
  });
});

describe('LineSplitter', () => {
  it('yields lines split anywhere across chunks, without their terminators', () => {
    const text = 'alpha\nbe\n\ngamma delta\nlast';
    const bytes = Buffer.from(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      for (let cut2 = cut; cut2 <= bytes.length; cut2 += 3) {
        const sp = new LineSplitter();
        const got: string[] = [];
        for (const part of [bytes.subarray(0, cut), bytes.subarray(cut, cut2), bytes.subarray(cut2)]) {
          expect(sp.push(part, (l) => void got.push(l.toString()))).toBe(true);
        }
        expect(got).toEqual(['alpha', 'be', '', 'gamma delta']);
        expect(sp.buffered).toBe(4);
      }
    }
  });

  it('refuses a line longer than maxLine, terminated or not', () => {
    expect(new LineSplitter(4).push(Buffer.from('abcd\nabcde\n'), () => {})).toBe(false);
    expect(new LineSplitter(4).push(Buffer.from('abcd\n'), () => {})).toBe(true);
    const sp = new LineSplitter(4);
    expect(sp.push(Buffer.from('abc'), () => {})).toBe(true);
    expect(sp.push(Buffer.from('de'), () => {})).toBe(false);
  });

  it('stops when the callback returns false', () => {
    const got: string[] = [];
    const sp = new LineSplitter();
    expect(sp.push(Buffer.from('a\nb\nc\n'), (l) => (got.push(l.toString()), got.length < 2))).toBe(false);
    expect(got).toEqual(['a', 'b']);
  });
});

describe('scripts', () => {
  it('echo lines are 1..200 printable characters plus newline, deterministic per seed', () => {
    const a = new EchoScript('5');
    const b = new EchoScript('5');
    const lengths = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const line = a.nextLine();
      expect(line.equals(b.nextLine())).toBe(true);
      expect(line[line.length - 1]).toBe(10);
      const body = line.subarray(0, -1).toString('latin1');
      expect(body).toMatch(/^[A-Za-z0-9 .]{1,200}$/);
      lengths.add(body.length);
    }
    expect(Math.min(...lengths)).toBeLessThan(10);
    expect(Math.max(...lengths)).toBeGreaterThan(190);
    expect(new EchoScript('6').nextLine().equals(new EchoScript('5').nextLine())).toBe(false);
  });

  it('kv scripts start by setting their keys, use only c<conn>: keys and cover every command', () => {
    const s = new KvScript(3, '11');
    const reqs = Array.from({ length: 3000 }, () => s.nextRequest());
    for (let j = 0; j < KV_KEYS_PER_CONN; j++) expect(reqs[j]).toBe(`SET c3:k${j} init-${j}`);
    for (const r of reqs) {
      const key = r.split(' ')[1];
      if (key !== undefined) expect(key).toMatch(/^c3:k[0-7]$/);
    }
    const cmds = new Set(reqs.map((r) => r.split(' ')[0]));
    for (const c of ['SET', 'GET', 'INCR', 'DEL', 'PING', 'FLUSH', 'get']) expect(cmds.has(c)).toBe(true);
    const again = new KvScript(3, '11');
    expect(reqs.slice(0, 100)).toEqual(Array.from({ length: 100 }, () => again.nextRequest()));
  });
});
