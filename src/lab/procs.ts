/**
 * Processes in the lab: demo servers and clients inside a namespace, captures, the
 * gateway's status. Shared by `ftcp drill`, the benchmarks and the lab tests.
 */
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { spawnIn, execIn, execCmd } from './exec.js';
import { REPO_ROOT } from './lab.js';
import type { DemoClientReport } from '../demo/client.js';

const FTCP = path.join(REPO_ROOT, 'bin', 'ftcp.js');

/** Waits (bounded) until `child` prints a line matching `re` on stdout or stderr. */
export async function waitForLine(child: ChildProcess, re: RegExp, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => done(new Error(`timed out waiting for ${re} (got: ${buf.slice(-500)})`)), timeoutMs);
    const onData = (d: Buffer) => {
      buf += d.toString();
      const m = buf.split('\n').find((l) => re.test(l));
      if (m !== undefined) done(null, m);
    };
    const onExit = (code: number | null) => done(new Error(`process exited (${code}) before ${re}: ${buf.slice(-500)}`));
    const done = (err: Error | null, line?: string) => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(line!);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}

export async function startDemoServer(ns: string, kind: string, addr: string): Promise<ChildProcess> {
  const child = spawnIn(ns, process.execPath, [FTCP, 'demo-server', '--kind', kind, '--listen', addr, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  await waitForLine(child, /"listening"/);
  return child;
}

export async function runDemoClient(ns: string, args: string[], timeoutMs = 300_000): Promise<DemoClientReport> {
  const r = await execIn(ns, process.execPath, [FTCP, 'demo-client', ...args, '--json'], { timeoutMs });
  try {
    return JSON.parse(r.stdout) as DemoClientReport;
  } catch {
    throw new Error(`demo-client printed no report (exit ${r.code}): ${r.stdout.slice(0, 500)} ${r.stderr.slice(0, 1000)}`);
  }
}

/** tcpdump on `iface` inside `ns`, headers only, into `file`. stop() ends it and waits. */
export async function startCapture(ns: string, iface: string, file: string, filter = 'tcp'): Promise<{ stop(): Promise<string> }> {
  const child = spawnIn(ns, 'tcpdump', ['-i', iface, '-n', '-s', '128', '-B', '65536', '-U', '--immediate-mode', '--time-stamp-precision', 'nano', '-w', file, filter], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await waitForLine(child, /listening on/);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return {
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGINT');
        await once(child, 'exit');
      }
      return stderr;
    },
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function gatewayStatus(lab: string): Promise<any> {
  const r = await execCmd(process.execPath, [FTCP, 'status', '--name', lab, '--json'], { timeoutMs: 15_000 });
  return JSON.parse(r.stdout);
}

export async function stopProcess(child: ChildProcess | undefined, timeoutMs = 5_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await once(child, 'exit');
  clearTimeout(t);
}
