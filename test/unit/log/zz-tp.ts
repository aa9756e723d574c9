import { DiskLog } from '../../../src/log/disk.js';
import { mkdtempSync, rmSync } from 'node:fs';
const dir = mkdtempSync('/tmp/ftcp-');
const log = new DiskLog(dir);
const meta = { client: { addr: '10.0.0.1', port: 1234 }, server: { addr: '10.0.1.1', port: 80 }, clientIsn: 1, serverIsn: 2, clientSynOptions: new Uint8Array([2,4,5,180]), serverSynOptions: new Uint8Array() };
const id = await log.open(meta);
const N = 20_000_000; const seg = Buffer.alloc(1448, 7);
const t0 = performance.now();
const ev: string[] = [];
const done = new Promise<void>((res) => log.onStable((i, s) => { ev.push(`${(performance.now()-t0).toFixed(1)}:${s}`); if (s >= N) res(); }));
let off = 0; let turns = 0;
while (off < N) {
  for (let k = 0; k < 64 && off < N; k++) { const n = Math.min(1448, N - off); log.append(id, off, seg.subarray(0, n)); off += n; }
  turns++;
  await new Promise(r => setImmediate(r));
}
console.log('appended at', (performance.now()-t0).toFixed(1), 'turns', turns);
await done;
console.log(ev.length, ev.slice(0, 10), ev.slice(-3));
await log.shutdown();
rmSync(dir, { recursive: true, force: true });
