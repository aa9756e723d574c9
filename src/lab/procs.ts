/**
 * Processes in the lab: demo servers and clients inside a namespace, captures, the
 * gateway's status. Shared by `ftcp drill`, the benchmarks and the lab tests.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { spawnIn, execIn, execCmd } from './exec.js';
import { REPO_ROOT } from './lab.js';
import { LAB_CONTROL, LAB_LOG_METRICS, type LabTopology } from './topology.js';
import { parsePromText } from '../util/prom.js';
import type { DemoClientReport, DemoProgress } from '../demo/client.js';

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

/**
 * A demo server run by \`ftcp supervise\` (the gateway's oracle at \`gateway\`, heartbeat
 * \`heartbeatMs\`). \`kill9()\` SIGKILLs the current program (the supervisor restarts it);
 * \`listening(gen)\` resolves when generation \`gen\` listens (bounded).
 */
export interface SupervisedServer {
  readonly child: ChildProcess;
  generation: number;
  listening(gen: number, timeoutMs?: number): Promise<number>;
  kill9(): Promise<number>;
  /** The supervised program's current pid(s) (the supervisor's children). */
  programPids(): Promise<number[]>;
  output(): string;
}

export async function startSupervisedServer(ns: string, kind: string, addr: string, gateway: string, heartbeatMs = 50): Promise<SupervisedServer> {
  return startSupervisedProgram(ns, kind, addr, gateway, [process.execPath, FTCP, 'demo-server', '--kind', kind, '--listen', addr, '--json'], heartbeatMs);
}

/** Any server program (`argv`, run in the foreground) under `ftcp supervise`, serving `addr`. */
export async function startSupervisedProgram(ns: string, kind: string, addr: string, gateway: string, argv: string[], heartbeatMs = 50): Promise<SupervisedServer> {
  const child = spawnIn(ns, process.execPath, [
    FTCP, 'supervise', '--gateway', gateway, '--service', addr, '--heartbeat-ms', String(heartbeatMs),
    '--', ...argv,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const listened = new Map<number, number>();
  const pidOf = new Map<number, number>();
  const waiters: Array<{ gen: number; resolve: (t: number) => void }> = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    if (out.length > 1 << 20) out = out.slice(-(1 << 19));
    for (const line of d.toString().split('\n')) {
      if (!line.includes('program listening')) continue;
      try {
        const j = JSON.parse(line) as { generation?: number; time?: number; pid?: number };
        if (typeof j.generation === 'number') {
          listened.set(j.generation, j.time ?? Date.now());
          if (typeof j.pid === 'number') pidOf.set(j.generation, j.pid);
          for (const w of waiters.splice(0)) {
            if (listened.has(w.gen)) w.resolve(listened.get(w.gen)!);
            else waiters.push(w);
          }
        }
      } catch { /* not a log line */ }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const srv: SupervisedServer = {
    child,
    generation: 1,
    listening(gen, timeoutMs = 15_000) {
      if (listened.has(gen)) return Promise.resolve(listened.get(gen)!);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${kind} server generation ${gen} did not listen within ${timeoutMs} ms:\n${out.slice(-1500)}`)), timeoutMs);
        waiters.push({ gen, resolve: (v) => { clearTimeout(t); resolve(v); } });
      });
    },
    async programPids() {
      // The supervisor logged the program's pid when it listened: no pgrep on the way to a kill.
      const known = pidOf.get(srv.generation);
      if (known !== undefined && isChildOf(known, child.pid)) return [known];
      const r = await execCmd('pgrep', ['-P', String(child.pid)]);
      return r.stdout.trim().split('\n').filter(Boolean).map(Number);
    },
    async kill9() {
      const pids = await srv.programPids();
      if (pids.length === 0) throw new Error(`${kind}: the supervisor has no program to kill`);
      const t = Date.now();
      for (const pid of pids) process.kill(pid, 'SIGKILL');
      srv.generation++;
      return t;
    },
    output: () => out,
  };
  try {
    await srv.listening(1);
  } catch (err) {
    await stopProcess(child);
    throw err;
  }
  return srv;
}

/**
 * A demo client that reports its progress (`--progress-ms`) and takes pause/resume
 * commands (`--control`) while it runs: what the drill places its crashes by.
 * `samples` keeps (epoch ms, done) every report, bounded.
 */
export interface LiveDemoClient {
  latest(): DemoProgress | null;
  readonly samples: Array<{ at: number; done: number }>;
  /** Resolves with the first progress report that satisfies `pred`, or null once the client exited. */
  until(pred: (p: DemoProgress) => boolean): Promise<DemoProgress | null>;
  command(cmd: 'pause' | 'resume'): void;
  readonly report: Promise<DemoClientReport>;
}

const MAX_SAMPLES = 20_000;

export function startLiveDemoClient(ns: string, args: string[], timeoutMs = 300_000, progressMs = 10): LiveDemoClient {
  const child = spawnIn(ns, process.execPath, [FTCP, 'demo-client', ...args, '--json', '--progress-ms', String(progressMs), '--control'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let latest: DemoProgress | null = null;
  const samples: Array<{ at: number; done: number }> = [];
  const waiters: Array<{ pred: (p: DemoProgress) => boolean; resolve: (p: DemoProgress | null) => void }> = [];
  let exited = false;
  let stdout = '';
  let errTail = '';
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => {
    const text = partial + d.toString();
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    if (partial.length > 65_536) partial = '';
    for (const line of lines) {
      if (!line.startsWith('{"progress"')) {
        errTail = (errTail + line + '\n').slice(-4000);
        continue;
      }
      try {
        const p = (JSON.parse(line) as { progress: DemoProgress }).progress;
        latest = p;
        if (samples.length < MAX_SAMPLES) samples.push({ at: Date.now(), done: p.done });
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (waiters[i]!.pred(p)) waiters.splice(i, 1)[0]!.resolve(p);
        }
      } catch { /* a torn line */ }
    }
  });
  child.stdin!.on('error', () => { /* the client may have exited */ });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const report = new Promise<DemoClientReport>((resolve, reject) => {
    child.on('error', (e) => reject(e));
    child.on('close', (code) => {
      clearTimeout(timer);
      exited = true;
      for (const w of waiters.splice(0)) w.resolve(null);
      try {
        resolve(JSON.parse(stdout) as DemoClientReport);
      } catch {
        reject(new Error(`demo-client printed no report (exit ${code}): ${stdout.slice(0, 500)} ${errTail.slice(-1000)}`));
      }
    });
  });
  report.catch(() => {});
  return {
    latest: () => latest,
    samples,
    until(pred) {
      if (latest !== null && pred(latest)) return Promise.resolve(latest);
      if (exited) return Promise.resolve(null);
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
    command(cmd) {
      if (!exited) child.stdin!.write(cmd + '\n');
    },
    report,
  };
}

/** `pid` is alive and its parent is `parent` (the pid was not reused). */
function isChildOf(pid: number, parent: number | undefined): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] !== 'Z' && Number(fields[1]) === parent;
  } catch {
    return false;
  }
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
  const r = await execCmd(process.execPath, [FTCP, 'status', '--name', lab, '--json', '--all'], { timeoutMs: 15_000 });
  return JSON.parse(r.stdout);
}

/**
 * The status of the gateway on host namespace `ns` (a standby lab's <n>-gw2, or a frozen and
 * thawed <n>-gw): `ftcp status` run inside it against the lab's control endpoint on its loopback.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function gatewayStatusIn(ns: string): Promise<any> {
  const r = await execCmd('ip', ['netns', 'exec', ns, process.execPath, FTCP, 'status', '--control', LAB_CONTROL, '--json', '--all'], { timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`ftcp status in ${ns}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
  return JSON.parse(r.stdout);
}

/**
 * The lab log server's /metrics (`name{labels}` → value), fetched inside <n>-log from its
 * loopback (--log remote).
 */
export async function logServerMetrics(topo: LabTopology): Promise<Map<string, number>> {
  const js = `fetch('http://${LAB_LOG_METRICS}/metrics',{signal:AbortSignal.timeout(10000)}).then(r=>r.text()).then(t=>process.stdout.write(t),e=>{console.error(String(e));process.exit(1)})`;
  const r = await execCmd('ip', ['netns', 'exec', topo.namespaces.log, process.execPath, '-e', js], { timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`log server /metrics in ${topo.namespaces.log}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
  return parsePromText(r.stdout);
}

export async function stopProcess(child: ChildProcess | undefined, timeoutMs = 5_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await once(child, 'exit');
  clearTimeout(t);
}
