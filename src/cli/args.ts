import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../util/errors.js';
import { DEMO_KINDS, isDemoKind, type DemoKind } from '../demo/server.js';

/** node:util parseArgs, with its errors turned into UsageError (exit status 2, clear message). */
export function parseCli<T extends ParseArgsConfig['options']>(argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: joinNegativeValues(argv, options ?? {}), options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A value that starts with '-' but is a (negative) number, not an option: -5, -0.5, -Infinity. */
const NEGATIVE_NUMBER = /^-(?:\d|\.\d|inf|nan)/i;

/**
 * `--flag -5` → `--flag=-5` for string options, so that a negative number reaches the
 * flag's own parser (which names the flag and its bounds) instead of parseArgs' "argument
 * is ambiguous" message. Nothing after `--` is touched.
 */
function joinNegativeValues(argv: string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    const name = a.startsWith('--') ? a.slice(2) : /^-[^-]$/.test(a) ? Object.keys(options).find((k) => options[k]!.short === a[1]) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      out.push(`--${name}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
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

/** An operator endpoint's `--flag [ip:]port`: a bare port binds `dfltAddr` (loopback: nothing from a wire reaches it). */
export function parseEndpointFlag(s: string, flag: string, dfltAddr = '127.0.0.1'): { addr: string; port: number } {
  if (/^\d{1,5}$/.test(s.trim())) return parseHostPort(`${dfltAddr}:${s.trim()}`, flag);
  return parseHostPort(s, flag);
}

/** The demo programs' `--kind` (required, one of DEMO_KINDS). */
export function parseDemoKind(kind: string | undefined, usage: string): DemoKind {
  if (!kind) throw new UsageError(`--kind is required\n${usage}`);
  if (!isDemoKind(kind)) throw new UsageError(`--kind: expected one of ${DEMO_KINDS.join(', ')}, got '${kind}'`);
  return kind;
}

/**
 * The one parser of numeric flags: plain decimal (an optional '-', digits, and a fraction
 * where `integer: false`), between `min` and `max`; `dflt` when the flag is absent.
 * Everything else (exponents, hex, Infinity, NaN, blanks, out of bounds) is a UsageError
 * naming the flag and its bounds: every numeric flag has a maximum.
 */
export function parseNumberFlag(
  s: string | undefined,
  flag: string,
  o: { dflt: number; min: number; max: number; integer?: boolean; unit?: string },
): number {
  if (s === undefined) return o.dflt;
  const integer = o.integer ?? true;
  const n = (integer ? /^-?\d{1,20}$/ : /^-?\d{1,20}(?:\.\d{1,9})?$/).test(s) ? Number(s) : NaN;
  if (!Number.isFinite(n) || (integer && !Number.isSafeInteger(n)) || n < o.min || n > o.max) {
    throw new UsageError(`${flag}: expected ${integer ? 'an integer' : 'a number'} in ${o.min}..${o.max}${o.unit ? ` ${o.unit}` : ''}, got '${s}'`);
  }
  return n;
}

/** `--flag N`: an integer in min..max, `dflt` when absent; anything else is a UsageError naming the flag. */
export function parseIntFlag(s: string | undefined, flag: string, dflt: number, min: number, max: number): number {
  return parseNumberFlag(s, flag, { dflt, min, max });
}

const SIZE_SUFFIX: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** Writes a byte count with the largest exact binary suffix: 1099511627776 → "1T". */
export function formatSize(n: number): string {
  for (const s of ['T', 'G', 'M', 'K']) if (n >= SIZE_SUFFIX[s]! && n % SIZE_SUFFIX[s]! === 0) return `${n / SIZE_SUFFIX[s]!}${s}`;
  return String(n);
}

/**
 * `--flag B`: a byte count, "1048576", "64K", "100M", "1G", "1T" (binary multiples; "KiB",
 * "MB" also read), in min..max; `dflt` when absent; otherwise a UsageError naming the flag.
 */
export function parseSizeFlag(s: string | undefined, flag: string, o: { dflt: number; min: number; max: number }): number {
  if (s === undefined) return o.dflt;
  const m = /^(-?\d{1,20})([KMGT]?)(?:i?B)?$/i.exec(s);
  const n = m ? Number(m[1]) * SIZE_SUFFIX[m[2]!.toUpperCase()]! : NaN;
  if (!Number.isSafeInteger(n) || n < o.min || n > o.max) {
    throw new UsageError(`${flag}: expected a byte count in ${formatSize(o.min)}..${formatSize(o.max)} (e.g. 1048576, 64K, 100M, 1G), got '${s}'`);
  }
  return n;
}

/**
 * `--flag <size|N%>`: a byte count as parseSizeFlag reads it, or, when `percentOf` is given,
 * "25%" of it. At least `min`; anything else is a UsageError naming the flag.
 */
export function parseSizeOrShareFlag(s: string, flag: string, min: number, percentOf?: number): number {
  const t = s.trim();
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(t);
  let n: number;
  if (pct && percentOf !== undefined) {
    const p = Number(pct[1]);
    if (!(p > 0 && p <= 100)) throw new UsageError(`${flag}: a percentage must be in (0, 100], got '${s}'`);
    n = Math.floor((percentOf * p) / 100);
  } else {
    const m = /^(\d{1,20})([KMGT]?)(?:i?B)?$/i.exec(t);
    if (!m) {
      throw new UsageError(`${flag}: expected a size such as 268435456, 256M, 256MiB or 1GiB${percentOf !== undefined ? ", or a share of the memory such as '25%'" : ''}, got '${s}'`);
    }
    n = Number(m[1]) * SIZE_SUFFIX[m[2]!.toUpperCase()]!;
    if (!Number.isSafeInteger(n)) throw new UsageError(`${flag}: too large: '${s}'`);
  }
  if (n < min) throw new UsageError(`${flag}: must be at least ${min} bytes, got '${s}'`);
  return n;
}
