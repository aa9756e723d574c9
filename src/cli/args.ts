import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../util/errors.js';
import { DEMO_KINDS, isDemoKind, type DemoKind } from '../demo/server.js';

/** node:util parseArgs, with its errors turned into UsageError (exit status 2, clear message). */
export function parseCli<T extends ParseArgsConfig['options']>(argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Parses "a.b.c.d:port" (port 1..65535) or throws UsageError naming the flag. */
export function parseHostPort(s: string, flag: string): { addr: string; port: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(s.trim());
  if (!m) throw new UsageError(`${flag}: expected <ipv4>:<port>, got '${s}'`);
  const addr = m[1]!;
  if (addr.split('.').some((o) => Number(o) > 255)) throw new UsageError(`${flag}: bad IPv4 address '${addr}'`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new UsageError(`${flag}: port out of range in '${s}'`);
  return { addr, port };
}

/** The demo programs' `--kind` (required, one of DEMO_KINDS). */
export function parseDemoKind(kind: string | undefined, usage: string): DemoKind {
  if (!kind) throw new UsageError(`--kind is required\n${usage}`);
  if (!isDemoKind(kind)) throw new UsageError(`--kind: expected one of ${DEMO_KINDS.join(', ')}, got '${kind}'`);
  return kind;
}

/** `--flag N`: an integer in min..max, `dflt` when absent; anything else is a UsageError naming the flag. */
export function parseIntFlag(s: string | undefined, flag: string, dflt: number, min: number, max: number): number {
  if (s === undefined) return dflt;
  if (!/^\d+$/.test(s)) throw new UsageError(`${flag}: expected an integer, got '${s}'`);
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${flag}: must be in ${min}..${max}, got ${s}`);
  return n;
}

const SIZE_UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/**
 * `--flag <size>`: bytes as "1048576", "64K", "256MiB", "1G", "2GiB" (binary multiples), or,
 * when `percentOf` is given, "25%" of it. At least `min`; anything else is a UsageError
 * naming the flag.
 */
export function parseSizeFlag(s: string, flag: string, min: number, percentOf?: number): number {
  const t = s.trim();
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(t);
  let n: number;
  if (pct && percentOf !== undefined) {
    const p = Number(pct[1]);
    if (!(p > 0 && p <= 100)) throw new UsageError(`${flag}: a percentage must be in (0, 100], got '${s}'`);
    n = Math.floor((percentOf * p) / 100);
  } else {
    const m = /^(\d+)([KMGT]?)(?:i?B)?$/i.exec(t);
    if (!m) {
      throw new UsageError(`${flag}: expected a size such as 268435456, 256M, 256MiB or 1GiB${percentOf !== undefined ? ", or a share of the memory such as '25%'" : ''}, got '${s}'`);
    }
    n = Number(m[1]) * SIZE_UNITS[m[2]!.toUpperCase()]!;
    if (!Number.isSafeInteger(n)) throw new UsageError(`${flag}: too large: '${s}'`);
  }
  if (n < min) throw new UsageError(`${flag}: must be at least ${min} bytes, got '${s}'`);
  return n;
}
