/**
 * The kv demo server's store and command language; the same class is the client's model of
 * what the server must answer. One command per line, responses end with '\n' (added by the
 * caller):
 *
 *     SET <k> <v>   -> OK             (<v> is the rest of the line, may hold spaces)
 *     GET <k>       -> VALUE <v> | NIL
 *     INCR <k>      -> INT <n>        (missing key counts as 0; a value that is not a
 *                                      decimal integer -> ERR not an integer)
 *     DEL <k>       -> INT 0 | INT 1
 *     anything else -> ERR unknown command
 *
 * Keys are one or more non-space characters. A trailing '\r' is ignored (for `nc -C`).
 * Integers are arbitrary precision (BigInt), so INCR never overflows or rounds.
 */
const INTEGER = /^-?\d+$/;

export class KvStore {
  private readonly map = new Map<string, string>();

  get size(): number {
    return this.map.size;
  }

  /** Executes one request line (without '\n'); returns the response line (without '\n'). */
  execute(line: string): string {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const sp = line.indexOf(' ');
    const cmd = sp < 0 ? line : line.slice(0, sp);
    const rest = sp < 0 ? '' : line.slice(sp + 1);
    switch (cmd) {
      case 'SET': {
        const ksp = rest.indexOf(' ');
        if (ksp <= 0) break;
        const key = rest.slice(0, ksp);
        if (/\s/.test(key)) break;
        this.map.set(key, rest.slice(ksp + 1));
        return 'OK';
      }
      case 'GET': {
        if (!isKey(rest)) break;
        const v = this.map.get(rest);
        return v === undefined ? 'NIL' : `VALUE ${v}`;
      }
      case 'INCR': {
        if (!isKey(rest)) break;
        const v = this.map.get(rest) ?? '0';
        if (!INTEGER.test(v)) return 'ERR not an integer';
        const n = BigInt(v) + 1n;
        this.map.set(rest, n.toString());
        return `INT ${n}`;
      }
      case 'DEL': {
        if (!isKey(rest)) break;
        return this.map.delete(rest) ? 'INT 1' : 'INT 0';
      }
    }
    return 'ERR unknown command';
  }
}

function isKey(s: string): boolean {
  return s.length > 0 && !/\s/.test(s);
}
