/**
 * The checking client of the random demo servers (random.ts): each connection pipelines its
 * requests, RANDOM_WINDOW of them in flight (so the replies queued in the server's socket
 * make a crash land inside one), verifies every reply with a
 * RandomVerifier, and ends with ONE outcome (RandomOutcome): ok, reset, inconsistent,
 * misframed, hung or error, with the replies verified and where the first bad one began.
 *
 * A reset is not judged here: whether a clean RST is acceptable (the gateway counted a
 * divergence) is the drill's call (src/lab/nondet.ts). The connection fails on its first
 * bad reply and closes (the bytes after a splice say nothing more).
 */
import { randomRequest, RANDOM_OUTCOMES, RandomVerifier, type RandomKind, type RandomOutcome } from './random.js';
import type { ConnApi, Driver, RandomConnResult } from './driver.js';

/**
 * Requests in flight on one connection: 256 KiB of random replies (about 512 KiB of
 * random-var), more than the path holds in flight, so the server's socket always has
 * output queued and a kill -9 cuts the stream inside a reply, not between two (with 8,
 * every fixed-length connection of a drill was cut on a reply boundary: no splice to see).
 */
export const RANDOM_WINDOW = 64;

export class RandomDriver implements Driver {
  private readonly verifier: RandomVerifier;
  private sent = 0;
  private ended = false;

  constructor(kind: RandomKind, private readonly tag: string, private readonly total: number) {
    this.verifier = new RandomVerifier(kind);
  }

  units() {
    return { done: this.verifier.verified, total: this.total };
  }

  onConnect(c: ConnApi): void {
    this.fill(c);
  }

  private fill(c: ConnApi): void {
    if (c.finished) return;
    const batch: Buffer[] = [];
    while (this.sent < this.total && this.sent - this.verifier.verified < RANDOM_WINDOW) {
      const req = randomRequest(this.tag, this.sent);
      this.verifier.expect(req);
      batch.push(req);
      this.sent++;
    }
    if (batch.length > 0) c.write(Buffer.concat(batch));
    if (this.verifier.verified === this.total && !this.ended) {
      this.ended = true;
      c.end();
    }
  }

  onData(c: ConnApi, b: Buffer): void {
    const bad = this.verifier.push(b);
    if (bad !== null) return c.fail(bad.outcome.toUpperCase(), `${bad.reason} (at stream offset ${bad.offset})`);
    this.fill(c);
  }

  onEnd(c: ConnApi): void {
    const bad = this.verifier.end();
    if (bad !== null) return c.fail(bad.outcome.toUpperCase(), `${bad.reason} (at stream offset ${bad.offset})`);
    if (this.verifier.verified < this.total) {
      return c.fail('EARLY_EOF', `server closed after ${this.verifier.verified} of ${this.total} replies`);
    }
    c.pass();
  }

  /** The outcome, from the connection's error code (none: ok). */
  result(error: { code: string } | undefined): RandomConnResult {
    return {
      outcome: randomOutcome(error?.code),
      verified: this.verifier.verified,
      requests: this.sent,
      firstBad: this.verifier.bad?.reply ?? -1,
      firstBadOffset: this.verifier.bad?.offset ?? -1,
    };
  }
}

/** A connection's error code as a RandomOutcome (undefined: it passed). */
export function randomOutcome(code: string | undefined): RandomOutcome {
  switch (code) {
    case undefined: return 'ok';
    case 'ECONNRESET': case 'EPIPE': return 'reset';
    case 'INCONSISTENT': return 'inconsistent';
    case 'MISFRAMED': return 'misframed';
    case 'TIMEOUT': return 'hung';
    default: return 'error';
  }
}

/** Connections per outcome, every outcome present (0 when none). */
export function countOutcomes(results: ReadonlyArray<{ outcome: RandomOutcome }>): Record<RandomOutcome, number> {
  const out = Object.fromEntries(RANDOM_OUTCOMES.map((o) => [o, 0])) as Record<RandomOutcome, number>;
  for (const r of results) out[r.outcome]++;
  return out;
}
