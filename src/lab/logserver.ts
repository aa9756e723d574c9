/**
 * Starts `ftcp logserver` inside <n>-log for a lab with `--log remote`: detached (its own
 * process group), output appended to <state-dir>/logserver.log, ready once it wrote
 * <state-dir>/logserver.ready. `ftcp lab down` stops it with everything else in the
 * lab's namespaces.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { FtcpError } from '../util/errors.js';
import { logServerArgs, type LabTopology } from './topology.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** The lab's log server runs on its disk store unless told 'memory' (the benchmark's remote-memory column). */
export type LabLogStore = 'disk' | 'memory';

/** The log server's arguments with the store replaced (`--store memory`) when asked. */
export function logServerArgsWithStore(stateDir: string, store: LabLogStore): string[] {
  const args = logServerArgs(stateDir);
  if (store === 'disk') return args;
  const i = args.indexOf('--store');
  if (i < 0 || i + 1 >= args.length) throw new FtcpError('FTCP_LAB_LOGSERVER', 'log server arguments carry no --store');
  return [...args.slice(0, i + 1), 'memory', ...args.slice(i + 2)];
}

/** Starts the log server and waits (bounded) for its ready file. Returns its pid. */
export async function startLogServer(topo: LabTopology, timeoutMs = 15_000, store: LabLogStore = 'disk'): Promise<number> {
  const argv = [process.execPath, join(REPO, 'bin', 'ftcp.js'), ...logServerArgsWithStore(topo.stateDir, store)];
  const logFile = join(topo.stateDir, 'logserver.log');
  const readyFile = join(topo.stateDir, 'logserver.ready');
  const fd = openSync(logFile, 'a');
  let exited: string | null = null;
  let child;
  try {
    child = spawn('ip', ['netns', 'exec', topo.namespaces.log, ...argv], { detached: true, stdio: ['ignore', fd, fd], cwd: REPO });
  } finally {
    closeSync(fd);
  }
  child.on('error', (e) => { exited = `could not start: ${e.message}`; });
  child.on('exit', (code, sig) => { exited = sig ? `killed by ${sig}` : `exited with status ${code}`; });
  child.unref();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(readyFile)) {
      try {
        const pid = (JSON.parse(readFileSync(readyFile, 'utf8')) as { pid?: unknown }).pid;
        if (typeof pid === 'number') return pid;
      } catch { /* partly written */ }
    }
    if (exited !== null) {
      const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : '';
      throw new FtcpError('FTCP_LAB_LOGSERVER', `log server ${exited} before it was ready; ${logFile} ends with:\n${tail}`);
    }
    if (Date.now() >= deadline) throw new FtcpError('FTCP_LAB_LOGSERVER', `log server not ready within ${timeoutMs} ms`);
    await sleep(50);
  }
}
