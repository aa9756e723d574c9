/**
 * Running programs inside a lab namespace (`ip netns exec NS cmd args...`) and plain
 * commands (`ip ...`), always with argument arrays: no shell ever sees user input.
 * `ip netns exec` execs the command in place, so the child's pid is the command's pid.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { FtcpError } from '../util/errors.js';

export interface ExecResult { stdout: string; stderr: string; code: number }

const DEFAULT_TIMEOUT_MS = 30_000;
/** Output kept per stream; beyond it, the oldest bytes are dropped (the tail matters). */
const MAX_CAPTURE = 4 * 1024 * 1024;

/** Spawns `cmd args` inside network namespace `ns` (via `ip netns exec`). */
export function spawnIn(ns: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, cmd, ...args], opts);
}

/** Runs `cmd args` inside `ns` to completion; `code` is the exit status (128+signal if killed). */
export function execIn(ns: string, cmd: string, args: string[], opts: { timeoutMs?: number; input?: string | Buffer } = {}): Promise<ExecResult> {
  return execCmd('ip', ['netns', 'exec', ns, cmd, ...args], opts);
}

const SIGNUMS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

/** Runs a command in the current namespace to completion, bounded by `timeoutMs` (default 30 s). */
export function execCmd(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string | Buffer } = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let timedOut = false;
    const keep = (chunks: Buffer[], len: number, b: Buffer): number => {
      chunks.push(b);
      len += b.length;
      while (len > MAX_CAPTURE && chunks.length > 1) len -= chunks.shift()!.length;
      return len;
    };
    child.stdout!.on('data', (b: Buffer) => { outLen = keep(out, outLen, b); });
    child.stderr!.on('data', (b: Buffer) => { errLen = keep(err, errLen, b); });
    child.stdin!.on('error', () => { /* the command may exit without reading its input */ });
    child.stdin!.end(opts.input ?? '');
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(new FtcpError('FTCP_LAB_EXEC', `${cmd}: ${e.message}`, { cause: e })); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) {
        reject(new FtcpError('FTCP_LAB_TIMEOUT', `${[cmd, ...args].join(' ')}: no exit within ${timeoutMs} ms (killed)`));
        return;
      }
      resolve({ stdout, stderr, code: code ?? 128 + (signal ? SIGNUMS[signal] ?? 0 : 0) });
    });
  });
}

/** Like execCmd, but a non-zero exit is an FtcpError carrying the command's stderr. */
export async function mustExec(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await execCmd(cmd, args, opts);
  if (r.code !== 0) {
    throw new FtcpError('FTCP_LAB_EXEC', `'${[cmd, ...args].join(' ')}' failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}
