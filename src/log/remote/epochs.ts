/**
 * Fencing at the log server (issue 14 item 3): one gateway at a time is THE writer of the log,
 * so that two gateways never both acknowledge client data (a client ack is only sent for
 * bytes the log reported stable to that gateway: `acked ⇒ stable`).
 *
 *   gateway A ── claim ──▶ epoch 1, holder A   (persisted, fsynced, then the reply)
 *   gateway B ── claim ──▶ epoch 2, holder B   (persisted, fsynced, then the reply)
 *                          A, the previous holder, is told at once: STATUS FENCED {epoch: 2}
 *                          (any other gateway when it first writes; each once per epoch)
 *   gateway A ── append / fin / gc / open / close / state / register / expiry ──▶ refused
 *                          (binary ones dropped and counted; requests answered FTCP_LOG_FENCED)
 *                          no STABLE is ever sent to A again
 *   gateway A ── list / query / read / stats ──▶ answered (reading fences nothing)
 *
 * Steps of a claim (Epochs.claim), each a distinct outcome:
 *  1. The holder asking again (a retransmitted claim, a takeover repeated): its epoch, at once,
 *     nothing written, even while another session's claim is being saved (that one, granted
 *     after, fences it as usual); a session whose claim is still being made durable gets that
 *     claim's answer (its request resent while the fsync runs). A claim is therefore
 *     idempotent, as every request of the protocol is.
 *  2. More than MAX_PENDING_CLAIMS claims waiting: refused FTCP_LOG_BUSY, counted (a claim storm
 *     costs at most that many fsyncs in a row, never unbounded memory).
 *  3. Claims run one at a time: epoch = highest granted + 1, holder = the asker. It is made
 *     durable (EpochStore.save: the file store writes, fsyncs, renames) BEFORE it is taken up
 *     and answered: a log server restarted from its directory never grants an epoch again,
 *     and it knows the holder at once (the holder's writes go on without a new claim).
 *  4. A save that fails: refused FTCP_LOG_EPOCH, the epoch not taken up, counted.
 *
 * Who holds an epoch is the link session's identity: the gateway process's link boot id
 * (src/link/endpoint.ts; authenticated by the link key, fresh for every process). A gateway
 * restarted in place is a new process: it claims at start-up (Gateway.adopt), taking over
 * from its dead self. A link resynchronisation or a reconnection keeps the boot id: the
 * holder stays the holder.
 *
 * Before the first claim (epoch 0) every gateway may write: a log server that has never been
 * claimed behaves as version 2 did. Once an epoch was granted, a gateway that never claimed
 * counts as fenced as well: only the holder writes.
 *
 * The memory store of a log server (MemoryEpochs) keeps the epoch in the process, like the
 * memory log keeps the bytes: a restart forgets both (every connection is lost with it; the
 * gateways report them expired), and the next claim grants epoch 1 again. A gateway fenced
 * before stays fenced (it forgets nothing) until it is restarted or claims itself.
 */
import { readFileSync } from 'node:fs';
import { open, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FtcpError } from '../../util/errors.js';
import { isEpoch } from './protocol.js';

/** What is persisted: the highest epoch granted and the boot id of the session holding it (0: none). */
export interface EpochRecord {
  readonly epoch: number;
  readonly holder: number;
}

export interface EpochStore {
  /** The record as it was made durable last (at construction: what the store found). */
  load(): EpochRecord;
  /** Makes `r` durable; resolves once it is. */
  save(r: EpochRecord): Promise<void>;
}

/** Epochs kept in the process only (the memory store of a log server). */
export class MemoryEpochs implements EpochStore {
  private rec: EpochRecord = { epoch: 0, holder: 0 };
  load(): EpochRecord {
    return this.rec;
  }
  save(r: EpochRecord): Promise<void> {
    this.rec = r;
    return Promise.resolve();
  }
}

/** The file holding the epoch in a disk store's directory. */
export const EPOCH_FILE = 'epoch.json';

/**
 * Epochs in `<dir>/epoch.json`: written to a temporary file, fsynced, renamed over the old one,
 * and the directory fsynced (the rename itself durable). A file that exists but does not parse
 * stops the server from starting (FTCP_LOG_EPOCH): starting from 0 could grant an old epoch again.
 */
export class FileEpochs implements EpochStore {
  readonly file: string;
  private rec: EpochRecord;

  constructor(dir: string) {
    this.file = join(dir, EPOCH_FILE);
    this.rec = readEpochFile(this.file);
  }

  load(): EpochRecord {
    return this.rec;
  }

  async save(r: EpochRecord): Promise<void> {
    const tmp = `${this.file}.tmp`;
    await writeFile(tmp, JSON.stringify(r) + '\n', { mode: 0o644 });
    await fsync(tmp);
    await rename(tmp, this.file);
    await fsync(dirname(this.file));
    this.rec = r;
  }
}

function readEpochFile(file: string): EpochRecord {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { epoch: 0, holder: 0 };
    throw new FtcpError('FTCP_LOG_EPOCH', `log epoch file ${file} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = null;
  }
  const r = v as Partial<EpochRecord> | null;
  if (r === null || typeof r !== 'object' || !isEpoch(r.epoch) || !Number.isInteger(r.holder) || r.holder! < 0 || r.holder! > 0xffff_ffff) {
    throw new FtcpError('FTCP_LOG_EPOCH', `log epoch file ${file} is damaged: refusing to start (an old epoch could be granted again); restore it or move it away knowingly`);
  }
  return { epoch: r.epoch, holder: r.holder! };
}

/** fsync of a file or a directory (Linux: a directory opened read-only can be fsynced). */
async function fsync(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Claims waiting at once (beyond: FTCP_LOG_BUSY, counted). */
export const MAX_PENDING_CLAIMS = 4;

export interface FenceCounters {
  /** Claims asked, granted (a new epoch), answered for the holder again, refused busy, failed to persist. */
  claims: number;
  claimsGranted: number;
  claimsRepeated: number;
  claimsBusy: number;
  claimsFailed: number;
  /** Writes refused because their session does not hold the epoch (binary messages and requests). */
  fencedWrites: number;
  /** STATUS FENCED notices sent (once per session and epoch). */
  fencedNotices: number;
  /** Claims refused as malformed (a protocol field of the wrong type or version). */
  badClaims: number;
}

/** The server's fencing state: the epoch, its holder, the claims in progress. */
export class Epochs {
  readonly counters: FenceCounters = {
    claims: 0, claimsGranted: 0, claimsRepeated: 0, claimsBusy: 0, claimsFailed: 0, fencedWrites: 0, fencedNotices: 0, badClaims: 0,
  };
  private rec: EpochRecord;
  private chain: Promise<unknown> = Promise.resolve();
  /** The claims waiting, by the boot id of the session asking (one per session). */
  private readonly waiting = new Map<number, Promise<number>>();

  constructor(private readonly store: EpochStore) {
    this.rec = store.load();
  }

  get epoch(): number {
    return this.rec.epoch;
  }

  get holder(): number {
    return this.rec.holder;
  }

  /** May the session with this boot id write? (Anyone before the first claim; then the holder only.) */
  admits(boot: number): boolean {
    return this.rec.epoch === 0 || boot === this.rec.holder;
  }

  /** Steps 1-4 at the top. `granted` runs when a new epoch is taken up (before the reply). */
  claim(boot: number, granted: (previous: EpochRecord) => void): Promise<number> {
    this.counters.claims++;
    const same = this.waiting.get(boot);
    if (same !== undefined) {
      this.counters.claimsRepeated++;
      return same;
    }
    // Decided on arrival, even while another session's claim is being saved: queued behind it,
    // the holder's resent claim would find that one holding and take a new epoch, fencing the
    // gateway that just took over with a claim its old primary had already been answered.
    if (boot !== 0 && boot === this.rec.holder) {
      this.counters.claimsRepeated++;
      return Promise.resolve(this.rec.epoch);
    }
    if (this.waiting.size >= MAX_PENDING_CLAIMS) {
      this.counters.claimsBusy++;
      return Promise.reject(new FtcpError('FTCP_LOG_BUSY', `log claim: ${this.waiting.size} claims already waiting`));
    }
    const run = async (): Promise<number> => {
      try {
        const next: EpochRecord = { epoch: this.rec.epoch + 1, holder: boot };
        try {
          await this.store.save(next);
        } catch (err) {
          this.counters.claimsFailed++;
          throw new FtcpError('FTCP_LOG_EPOCH', `log claim: the epoch could not be made durable: ${(err as Error).message}`, { cause: err });
        }
        const previous = this.rec;
        this.rec = next;
        this.counters.claimsGranted++;
        granted(previous);
        return next.epoch;
      } finally {
        this.waiting.delete(boot);
      }
    };
    const p = this.chain.then(run, run);
    this.waiting.set(boot, p);
    this.chain = p.catch(() => {});
    return p;
  }

  describe(): Record<string, number> {
    return { epoch: this.rec.epoch, holder: this.rec.holder, ...this.counters, limitMaxPendingClaims: MAX_PENDING_CLAIMS };
  }
}
