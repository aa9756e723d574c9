/**
 * The supervisor's notices as the oracle reported them (`<event>:<generation>`), less each
 * 'silent' and the alive/listening of the same generation that ended it: a starved supervisor
 * (a loaded 2-core host) misses heartbeats and the tracker reports the flap by its own rule,
 * which is not what the supervisor tests assert.
 */
export function withoutSilences(seen: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < seen.length; i++) {
    const m = /^silent:(\d+)$/.exec(seen[i]!);
    if (m === null) {
      out.push(seen[i]!);
      continue;
    }
    if (i + 1 < seen.length && (seen[i + 1] === `alive:${m[1]}` || seen[i + 1] === `listening:${m[1]}`)) i++;
  }
  return out;
}
