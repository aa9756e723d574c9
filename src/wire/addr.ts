/** IPv4 address conversions (slow path: configuration, logs, tests). */

/** Dotted quad to unsigned 32-bit. Throws RangeError on anything but a.b.c.d with 0..255 parts. */
export function ipToU32(s: string): number {
  if (typeof s !== 'string') throw new RangeError(`not an IPv4 address: ${String(s)}`);
  const parts = s.split('.');
  if (parts.length !== 4) throw new RangeError(`not an IPv4 address: ${JSON.stringify(s)}`);
  let n = 0;
  for (const p of parts) {
    // No signs, spaces, hex or empty parts; at most 3 digits.
    if (!/^[0-9]{1,3}$/.test(p)) throw new RangeError(`not an IPv4 address: ${JSON.stringify(s)}`);
    const v = Number(p);
    if (v > 255) throw new RangeError(`not an IPv4 address: ${JSON.stringify(s)}`);
    n = n * 256 + v;
  }
  return n >>> 0;
}

/** Unsigned 32-bit to dotted quad. */
export function u32ToIp(n: number): string {
  const v = n >>> 0;
  return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}
