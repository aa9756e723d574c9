/**
 * ftcp logserver --listen <ip:port>[,<ip:port>] --store memory|disk:<dir> [--key-file F]
 *                [--max-bytes N] [--max-bytes-per-conn N] [--low-space-pct P] [--ready-file F]
 *                [--metrics [ip:]port]
 *
 * Serves the log (src/log/remote/server.ts) to gateways over the link protocol, one
 * address per log network. SIGINT/SIGTERM: close the sockets, flush the store, exit 0.
 */
import { rm, writeFile } from 'node:fs/promises';
import { parseCli, parseEndpointFlag, parseHostPort, parseNumberFlag, parseSizeFlag } from '../args.js';
import { FtcpError, UsageError } from '../../util/errors.js';
import { logger } from '../../util/logger.js';
import { DEV_KEY, loadKey } from '../../link/key.js';
import { DiskLog } from '../../log/disk.js';
import { MemoryLog } from '../../log/memory.js';
import type { LogOptions } from '../../log/common.js';
import type { LogStore } from '../../log/types.js';
import { LogServer, UdpLogServer, parseImpairment, type Impairment } from '../../log/remote/server.js';
import { FileEpochs, MemoryEpochs, type EpochStore } from '../../log/remote/epochs.js';
import { readFileSync } from 'node:fs';
import { startLogServerMetrics } from '../../log/remote/metrics.js';
import { HTTP_LIMITS, type HttpEndpoint } from '../../util/http-endpoint.js';

const HELP = `usage: ftcp logserver --listen <ip:port>[,<ip:port>] --store memory|disk:<dir> [options]

  --listen <ip:port>,…        one address per log network (at most two), e.g. 198.18.3.2:7500,198.18.4.2:7500
  --store memory|disk:<dir>   memory: lost with the process; disk: LMDB under <dir>, fsynced, survives a
                              restart (nothing ever reported stable is lost)
  --key-file <path>           shared link key: raw bytes or hex, at least 16 bytes. Without it a built-in,
                              PUBLIC development key is used (a warning is logged): lab use only
  --max-bytes <n>             bound on the stream bytes held, all connections, 1..64T (e.g. 512M, 8G;
                              default: unlimited)
  --max-bytes-per-conn <n>    bound on the stream bytes one connection holds, 1..64T (default: unlimited)
  --low-space-pct <p>         report LOW-SPACE to the gateways at p% of --max-bytes, 1..100 (default 90)
  --ready-file <path>         written (JSON) once listening; removed at exit
  --metrics [ip:]port         serve GET /metrics (Prometheus text: what was served and refused, the fencing
                              epoch, the store against its bounds, each gateway's link); a bare port binds
                              127.0.0.1. Bounded: ${HTTP_LIMITS.maxConnections} connections, ${HTTP_LIMITS.maxHeaderBytes} B of headers, a request in ${HTTP_LIMITS.requestTimeoutMs / 1000} s
  --impair-file <path>        TESTS ONLY: while this file holds e.g. "loss=0.03 dup=0.02 reorder=0.2",
                              datagrams in and out are dropped/duplicated/delayed (for kernels without netem)

example: ftcp logserver --listen 198.18.3.2:7500,198.18.4.2:7500 --store disk:/var/lib/ftcp-log --key-file /etc/ftcp/key \\
           --metrics 127.0.0.1:7073`;

/** The bound of --max-bytes and --max-bytes-per-conn. */
const MAX_STORE_BYTES = 2 ** 46;

function sizeFlag(v: string | undefined, flag: string): number | undefined {
  return v === undefined ? undefined : parseSizeFlag(v, flag, { dflt: 0, min: 1, max: MAX_STORE_BYTES });
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    listen: { type: 'string' },
    store: { type: 'string', default: 'memory' },
    'key-file': { type: 'string' },
    'max-bytes': { type: 'string' },
    'max-bytes-per-conn': { type: 'string' },
    'low-space-pct': { type: 'string' },
    'ready-file': { type: 'string' },
    'impair-file': { type: 'string' },
    metrics: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (!values.listen) throw new UsageError('--listen <ip:port>[,<ip:port>] is required');
  const listen = values.listen.split(',').filter((s) => s.trim() !== '').map((s) => parseHostPort(s, '--listen'));
  if (listen.length < 1 || listen.length > 2) throw new UsageError('--listen: one or two addresses (one per log network)');
  const metricsAt = values.metrics !== undefined ? parseEndpointFlag(values.metrics, '--metrics') : null;
  const opts: LogOptions = {};
  const maxBytes = sizeFlag(values['max-bytes'], '--max-bytes');
  if (maxBytes !== undefined) opts.maxBytes = maxBytes;
  const perConn = sizeFlag(values['max-bytes-per-conn'], '--max-bytes-per-conn');
  if (perConn !== undefined) opts.maxBytesPerConn = perConn;
  if (values['low-space-pct'] !== undefined) {
    opts.lowSpaceFraction = parseNumberFlag(values['low-space-pct'], '--low-space-pct', { dflt: 90, min: 1, max: 100, integer: false }) / 100;
  }
  const storeSpec = values.store!;
  let key: Buffer;
  if (values['key-file']) {
    key = loadKey(values['key-file']);
  } else {
    logger.warn('logserver: no --key-file, using the PUBLIC development key (lab use only)');
    key = DEV_KEY;
  }
  let store: LogStore;
  // The fencing epoch lives beside the store: on disk in its directory (a restart never grants
  // an old epoch again), in the process for the memory store (lost with the connections).
  let epochs: EpochStore;
  if (storeSpec === 'memory') {
    store = new MemoryLog(opts);
    epochs = new MemoryEpochs();
  } else if (storeSpec.startsWith('disk:') && storeSpec.length > 'disk:'.length) {
    const disk = new DiskLog(storeSpec.slice('disk:'.length), opts);
    store = disk;
    try {
      epochs = new FileEpochs(disk.dir);
    } catch (err) {
      await disk.shutdown();
      throw err;
    }
  } else throw new UsageError(`--store: expected 'memory' or 'disk:<dir>', got '${storeSpec}'`);

  const server = new LogServer({ store, logger, epochs });
  let udp: UdpLogServer;
  let metrics: HttpEndpoint | null = null;
  try {
    const impairFile = values['impair-file'];
    let impairment: Impairment | null = null;
    if (impairFile) {
      const poll = () => {
        let next: Impairment | null = null;
        try {
          next = parseImpairment(readFileSync(impairFile, 'utf8'));
        } catch {
          next = null; // no file: clean
        }
        if (JSON.stringify(next) !== JSON.stringify(impairment)) logger.warn({ impairment: next }, 'logserver: test impairment changed');
        impairment = next;
      };
      poll();
      setInterval(poll, 100).unref();
    }
    udp = await UdpLogServer.listen({
      server, key, listen: listen.map((h) => ({ address: h.addr, port: h.port })),
      ...(impairFile ? { impair: () => impairment } : {}),
    });
    if (metricsAt !== null) {
      try {
        metrics = await startLogServerMetrics(udp, store, metricsAt.addr, metricsAt.port, logger);
      } catch (err) {
        await udp.close();
        throw err;
      }
    }
  } catch (err) {
    await store.shutdown();
    // A store this run created holds nothing yet: leave nothing behind.
    if (store instanceof DiskLog && store.createdDir !== null) await rm(store.createdDir, { recursive: true, force: true });
    throw err instanceof FtcpError ? err : new FtcpError('FTCP_LOGSERVER', String(err));
  }
  if (values['ready-file']) {
    await writeFile(values['ready-file'], JSON.stringify({ pid: process.pid, listen: values.listen, store: storeSpec }) + '\n');
  }
  logger.info({ listen: values.listen, store: storeSpec, metrics: metrics?.address() ?? null, connections: store.listActive().length, ...opts }, 'logserver listening');
  const statsTimer = setInterval(() => logger.debug({ server: server.counters, fence: server.epochs.describe(), store: store.stats?.() }, 'logserver stats'), 10_000);
  statsTimer.unref();

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      clearInterval(statsTimer);
      logger.info({ signal: sig, server: server.counters, fence: server.epochs.describe() }, 'logserver stopping');
      (async () => {
        await metrics?.close();
        await udp.close();
        await store.shutdown();
        if (values['ready-file']) await rm(values['ready-file'], { force: true });
      })().then(
        () => resolve(0),
        (err: unknown) => {
          logger.error({ err }, 'logserver shutdown failed');
          resolve(1);
        },
      );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
