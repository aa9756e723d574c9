/**
 * The ceiling of any TUN-based gateway on this machine: a forwarder with no policy at all,
 * as the benchmark's "plain TUN forwarder" column. It takes the place of `ftcp gateway` in a
 * lab (labUp's `gatewayCommand`), accepts the same arguments, and uses the same parts
 * (LinuxTun with offloads, Steering), but every batch read is written straight back:
 *
 *   kernel ──steering──▶ TUN ──read batch──▶ writeBatch(same slots) ──▶ TUN ──▶ kernel forwards
 *
 * No parsing, no flow table, no log, no rewrite: what remains is the TUN's own cost
 * (read/write copies, GSO super-packets re-entering the stack) and one Node event loop.
 * Not part of the product; a benchmark baseline (issue 5: "a plain TUN forwarder").
 */
import { writeFile, rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { LinuxTun } from '../tun/linux.js';
import { Steering, removeSteering } from '../gateway/steering.js';
import { DEFAULT_STATE_DIR, readRecord } from '../gateway/steering-state.js';
import { logger as rootLogger } from '../util/logger.js';
import { runIfEntry } from './program.js';

export async function main(argv: string[]): Promise<number> {
  // The lab passes every `ftcp gateway` flag; only these matter here.
  const { values } = parseArgs({
    args: argv[0] === 'gateway' ? argv.slice(1) : argv,
    strict: false,
    options: {
      tun: { type: 'string' }, steer: { type: 'string' }, table: { type: 'string' }, mtu: { type: 'string' },
      'ready-file': { type: 'string' }, 'no-offload': { type: 'boolean' }, 'state-dir': { type: 'string' },
    },
  });
  const logger = rootLogger.child({ mod: 'tunfwd' });
  const tunName = typeof values.tun === 'string' ? values.tun : 'ftcpfwd0';
  const mtu = typeof values.mtu === 'string' ? Number(values.mtu) : 1500;
  const steer = typeof values.steer === 'string' ? values.steer.split(',').filter(Boolean) : [];
  const table = typeof values.table === 'string' ? Number(values.table) : 100;
  const stateDir = typeof values['state-dir'] === 'string' ? values['state-dir'] : DEFAULT_STATE_DIR;
  // As the gateway: decide before the open (which creates the device), apply after.
  const steering = new Steering({ tun: tunName, steer, table, pref: 1000, mtu, stateDir }, logger);
  await steering.prepare(await readRecord(steering.file));
  const tun = values['no-offload'] ? LinuxTun.open(tunName, { slotSize: mtu + 64 }) : LinuxTun.openWithOffloads(tunName, {}, mtu + 64).tun;
  const readyFile = typeof values['ready-file'] === 'string' ? values['ready-file'] : null;
  let offsets = new Uint32Array(0);
  let dropped = 0;
  let record;
  try {
    record = await steering.apply(process.pid);
  } catch (e) {
    tun.close();
    throw e;
  }
  tun.start((b) => {
    if (offsets.length < b.count) offsets = Uint32Array.from({ length: b.count }, (_, i) => i * b.slotSize);
    dropped += b.count - tun.writeBatch(b.buf, offsets, b.lengths, b.count);
  });
  if (readyFile) await writeFile(readyFile, JSON.stringify({ pid: process.pid, tun: tun.name, control: null }) + '\n');
  logger.info({ tun: tun.name, vnetHdrLen: tun.vnetHdrLen ?? 0 }, 'plain TUN forwarder running');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  tun.close();
  // A benchmark baseline, not a gateway: it leaves nothing behind.
  await removeSteering(record, steering.file, logger);
  if (readyFile) await rm(readyFile, { force: true });
  logger.info({ dropped }, 'plain TUN forwarder stopped');
  return 0;
}

runIfEntry(import.meta.url, 'tunfwd', main);
