/** Loads the N-API addon (native/tun.c). Syscalls only; see src/tun/linux.ts for policy. */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export interface TunAddon {
  open(name: string, flags: number): [number, string];
  setOffload(fd: number, flags: number): void;
  setVnetHdrSize(fd: number, size: number): void;
  setPersist(fd: number, on: number): void;
  startReader(
    fd: number, buf: Buffer, slotSize: number, lengths: Uint32Array, maxPackets: number, rounds: number,
    cb: (count: number, errno: number) => void,
  ): object;
  stopReader(handle: object): void;
  write(fd: number, buf: Buffer, off: number, len: number): number;
  writeBatch(fd: number, buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number): number;
  close(fd: number): void;
  realtimeNs(): bigint;
  readonly IFF_NO_PI: number;
  readonly IFF_VNET_HDR: number;
  readonly IFF_MULTI_QUEUE: number;
  readonly TUN_F_CSUM: number;
  readonly TUN_F_TSO4: number;
  readonly TUN_F_TSO6: number;
  readonly TUN_F_TSO_ECN: number;
}

let addon: TunAddon | undefined;

export function loadAddon(): TunAddon {
  if (!addon) {
    const here = path.dirname(fileURLToPath(import.meta.url));
    // src/tun or dist/tun: the addon is built into <repo>/native/build/Release.
    const file = path.resolve(here, '../../native/build/Release/ftcp_tun.node');
    addon = createRequire(import.meta.url)(file) as TunAddon;
  }
  return addon;
}

/** CLOCK_REALTIME in nanoseconds: the clock packet captures are stamped with. */
export function realtimeNs(): bigint {
  return loadAddon().realtimeNs();
}
