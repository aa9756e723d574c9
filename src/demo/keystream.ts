/**
 * The demo programs' deterministic byte source: an AES-128-CTR keystream (AES over zero
 * bytes), key and IV derived from a seed string by SHA-256. Native (OpenSSL, AES-NI), so a
 * generator costs a fraction of what the TCP path it feeds costs, and any length can be
 * regenerated on the other side to check what arrived.
 *
 *     sha256("ftcp-demo\0" + seed) = key[0..16) ‖ iv[16..32)
 *     stream(seed) = AES-128-CTR(key, iv) applied to 00 00 00 ...
 *
 * CTR mode is a stream: next(10) then next(20) yields the same bytes as next(30).
 */
import { createCipheriv, createHash, type Cipher } from 'node:crypto';

/** Size of the writes the demo programs make: large, so per-call overhead stays small. */
export const CHUNK_BYTES = 256 * 1024;

const ZEROS = Buffer.alloc(CHUNK_BYTES);

export function keystreamParams(seed: string): { key: Buffer; iv: Buffer } {
  const d = createHash('sha256').update('ftcp-demo\0').update(seed).digest();
  return { key: d.subarray(0, 16), iv: d.subarray(16, 32) };
}

export class Keystream {
  private readonly cipher: Cipher;
  /** Bytes produced so far. */
  offset = 0;

  constructor(readonly seed: string) {
    const { key, iv } = keystreamParams(seed);
    this.cipher = createCipheriv('aes-128-ctr', key, iv);
  }

  /** The next `n` bytes of the stream, in a fresh Buffer (safe to hand to socket.write). */
  next(n: number): Buffer {
    if (n <= 0) return Buffer.alloc(0);
    const out = this.cipher.update(n <= CHUNK_BYTES ? ZEROS.subarray(0, n) : Buffer.alloc(n));
    this.offset += n;
    return out;
  }

  /** One pseudo-random byte (0..255), for the small per-line choices of the echo/kv scripts. */
  byte(): number {
    return this.next(1)[0]!;
  }
}

/** SHA-256 (hex) of the first `bytes` bytes of stream(seed), generated in chunks. */
export function keystreamSha256(seed: string, bytes: number): string {
  const ks = new Keystream(seed);
  const h = createHash('sha256');
  for (let left = bytes; left > 0; ) {
    const n = Math.min(CHUNK_BYTES, left);
    h.update(ks.next(n));
    left -= n;
  }
  return h.digest('hex');
}
