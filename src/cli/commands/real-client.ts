/**
 * `ftcp real-client --kind memcached|http --connect <ip:port> [options]`
 *
 * Checking clients for unmodified third-party servers (src/demo/real-clients.ts): memcached's
 * text protocol, and static files over HTTP/1.1 keep-alive. `--write-files <dir>` makes the
 * HTTP file tree and its manifest instead. Exit status 0 only when every connection passed.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseCli, parseHostPort, parseIntFlag, parseSizeFlag } from '../args.js';
import { UsageError } from '../../util/errors.js';
import {
  REAL_DEFAULT_TIMEOUT_MS, REAL_KINDS, isRealKind, runRealClient, writeHttpTree, writeManifest,
  type HttpFile, type RealClientReport,
} from '../../demo/real-clients.js';

const USAGE = `usage: ftcp real-client --kind ${REAL_KINDS.join('|')} --connect <ip:port> [options]
       ftcp real-client --kind http --write-files <dir> [--seed S] [--bytes B] [--files N]

  --connections N   concurrent connections (default 1); connection i uses seed S+i
  --ops N           memcached: set/get operations per connection (default 1000)
  --manifest F      http: the files to GET, in order, on each connection (JSON {"files":[{path,size,sha256}]})
  --window N        most requests outstanding per connection (default: memcached 32, http 1)
  --seed S          base seed (default 1)
  --timeout-ms T    deadline for the whole run (default ${REAL_DEFAULT_TIMEOUT_MS}); unfinished connections fail with TIMEOUT
  --progress-ms T   print {"progress":{"ops","of","bytes","finished"}} on stderr every T ms
  --json            print the report as one JSON document
  --write-files D   http: write D/www/big.bin (--bytes, default 64M) and D/www/small/fNNNN.bin
                    (--files, default 500, 1-20 KiB) and D/manifest.json, then exit

example: ftcp real-client --kind memcached --connect 198.18.2.2:11211 --connections 20 --ops 5000`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    kind: { type: 'string' },
    connect: { type: 'string' },
    connections: { type: 'string' },
    ops: { type: 'string' },
    manifest: { type: 'string' },
    window: { type: 'string' },
    seed: { type: 'string' },
    'timeout-ms': { type: 'string' },
    'progress-ms': { type: 'string' },
    'write-files': { type: 'string' },
    bytes: { type: 'string' },
    files: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (!values.kind) throw new UsageError(`--kind is required\n${USAGE}`);
  if (!isRealKind(values.kind)) throw new UsageError(`--kind: expected one of ${REAL_KINDS.join(', ')}, got '${values.kind}'`);
  const kind = values.kind;
  const seed = parseIntFlag(values.seed, '--seed', 1, 0, 2 ** 48);

  if (values['write-files'] !== undefined) {
    if (kind !== 'http') throw new UsageError('--write-files: only with --kind http');
    const dir = values['write-files'];
    const files = await writeHttpTree(path.join(dir, 'www'), {
      seed,
      bigBytes: parseSizeFlag(values.bytes, '--bytes', { dflt: 64 * 2 ** 20, min: 1, max: 2 ** 40 }),
      smallFiles: parseIntFlag(values.files, '--files', 500, 0, 100_000),
    });
    await writeManifest(path.join(dir, 'manifest.json'), files);
    process.stdout.write(`${files.length} files in ${path.join(dir, 'www')}, manifest ${path.join(dir, 'manifest.json')}\n`);
    return 0;
  }

  if (!values.connect) throw new UsageError(`--connect is required\n${USAGE}`);
  const { addr, port } = parseHostPort(values.connect, '--connect');
  let files: HttpFile[] | undefined;
  if (kind === 'http') {
    if (!values.manifest) throw new UsageError('--manifest is required with --kind http');
    files = readManifest(values.manifest);
  } else if (values.manifest) {
    throw new UsageError('--manifest: only with --kind http');
  }
  if (kind === 'http' && values.ops !== undefined) throw new UsageError('--ops: only with --kind memcached');
  const progressMs = values['progress-ms'] === undefined ? undefined : parseIntFlag(values['progress-ms'], '--progress-ms', 100, 10, 60_000);
  const report = await runRealClient({
    kind,
    host: addr,
    port,
    connections: parseIntFlag(values.connections, '--connections', 1, 1, 10_000),
    ops: parseIntFlag(values.ops, '--ops', 1000, 0, 100_000_000),
    ...(files ? { files } : {}),
    ...(values.window !== undefined ? { window: parseIntFlag(values.window, '--window', 1, 1, 65_536) } : {}),
    seed,
    timeoutMs: parseIntFlag(values['timeout-ms'], '--timeout-ms', REAL_DEFAULT_TIMEOUT_MS, 1, 2 ** 31 - 1),
    ...(progressMs !== undefined ? { progressMs, onProgress: (p) => process.stderr.write(JSON.stringify({ progress: p }) + '\n') } : {}),
  });
  process.stdout.write(values.json ? JSON.stringify(report) + '\n' : summary(report));
  return report.allOk ? 0 : 1;
}

function readManifest(file: string): HttpFile[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`--manifest: cannot read ${file}: ${(e as Error).message}`);
  }
  const files = (doc as { files?: unknown })?.files;
  if (!Array.isArray(files) || files.length === 0 || files.length > 1_000_000) throw new UsageError(`--manifest: ${file} has no "files" list`);
  for (const f of files as Array<Record<string, unknown>>) {
    const ok = f && typeof f.path === 'string' && /^\/[\x21-\x7e]{0,1000}$/.test(f.path)
      && Number.isSafeInteger(f.size) && (f.size as number) >= 0 && typeof f.sha256 === 'string' && /^[0-9a-f]{64}$/.test(f.sha256);
    if (!ok) throw new UsageError(`--manifest: bad entry ${JSON.stringify(f).slice(0, 200)} (expected {path: "/…", size, sha256})`);
  }
  return files as HttpFile[];
}

function summary(r: RealClientReport): string {
  const lines = [
    `${r.kind}: ${r.ok}/${r.connections} connections ok, ${r.failed} failed; ${r.ops} of ${r.of} answers checked; ` +
      `sent ${r.bytesSent} B, received ${r.bytesReceived} B in ${r.durationMs} ms; longest stall ${r.maxStallMs.toFixed(1)} ms`,
  ];
  for (const e of r.errors.slice(0, 20)) lines.push(`  conn ${e.conn}: ${e.code}: ${e.message}`);
  if (r.errors.length > 20) lines.push(`  ... and ${r.errors.length - 20} more errors`);
  return lines.join('\n') + '\n';
}
