/**
 * The Prometheus text exposition (format 0.0.4) shared by the gateway's /metrics
 * (gateway/metrics.ts) and the log server's (log/remote/metrics.ts): `# HELP`, `# TYPE`, then
 * the samples. Names are `ftcp_` + snake_case of the counters' camelCase keys.
 */
export class PromText {
  private readonly lines: string[] = [];

  /** One metric with one sample. */
  put(name: string, help: string, type: 'counter' | 'gauge', value: number, labels = ''): void {
    this.lines.push(`# HELP ftcp_${name} ${help}`, `# TYPE ftcp_${name} ${type}`, `ftcp_${name}${labels} ${value}`);
  }

  /** One metric with a sample per label set: `samples` maps a label body (`reason="x"`) to its value. */
  family(name: string, help: string, type: 'counter' | 'gauge', samples: Iterable<[string, number]>): void {
    this.lines.push(`# HELP ftcp_${name} ${help}`, `# TYPE ftcp_${name} ${type}`);
    for (const [labels, v] of samples) this.lines.push(`ftcp_${name}{${labels}} ${v}`);
  }

  /** Every numeric entry of `counters` as `<prefix>_<key>_total`. */
  counters(prefix: string, what: string, counters: object): void {
    for (const [k, v] of Object.entries(counters)) if (typeof v === 'number') this.put(`${prefix}_${snake(k)}_total`, `${what} ${k}`, 'counter', v);
  }

  /** Lines written by hand (the caller keeps the format). */
  raw(...lines: string[]): void {
    this.lines.push(...lines);
  }

  text(): string {
    return this.lines.join('\n') + '\n';
  }
}

/** camelCase → snake_case (`bytesLogged` → `bytes_logged`). */
export function snake(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Parses an exposition into `name{labels}` → value (comments skipped): tests and the lab read it. */
export function parsePromText(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (sp < 0) continue;
    const v = Number(line.slice(sp + 1));
    if (!Number.isNaN(v)) out.set(line.slice(0, sp), v);
  }
  return out;
}
