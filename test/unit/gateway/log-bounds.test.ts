/**
 * The memory log's bounds at the gateway (issue 10, item 6), through the fake TUN with a
 * real MemoryLog: a connection whose bytes would go past the per-connection bound or the
 * total budget continues UNPROTECTED (acks keep flowing, nothing more is logged, its log
 * memory is freed at once), counted in the snapshot and the metrics.
 */
import { describe, expect, it } from 'vitest';
import { GatewayRig, CLIENT, SERVER, seg as segment } from '../../support/gateway-harness.js';
import { MemoryLog } from '../../../src/log/memory.js';
import type { LogOptions } from '../../../src/log/common.js';
import { seqAdd, type Seq } from '../../../src/wire/seq.js';
import { parseTcpPacket, type TcpPacketRepr } from '../../../src/wire/repr.js';
import { TCP_ACK, TCP_RST, TCP_SYN } from '../../../src/wire/tcp.js';
import { recOf } from '../../../src/recovery/rebuild.js';

const SEG = 1000;

/** A segment of the connection from client port `port`; this file's segments advertise a window field of 1000. */
const seg = (fromClient: boolean, port: number, r: Partial<TcpPacketRepr>) => segment({ fromClient, port, window: 1000, ...r });

/** The gateway on a real MemoryLog (its stability reported in a microtask after each append). */
class Rig extends GatewayRig<MemoryLog> {
  constructor(opts: LogOptions) {
    super({ log: new MemoryLog(opts), gateway: { south: { lingerMs: 100 } } });
  }
  async open(port: number, cIsn: number, sIsn: number): Promise<Conn> {
    this.tun.inject(seg(true, port, { seq: cIsn, flags: TCP_SYN, window: 64240 })).flush();
    this.tun.inject(seg(false, port, { seq: sIsn, ack: cIsn + 1, flags: TCP_SYN | TCP_ACK, window: 65160 })).flush();
    await this.settle();
    this.tun.drain();
    return new Conn(this, port, cIsn as Seq, sIsn as Seq);
  }
  flow(port: number) {
    const svc = this.gw.table.service(SERVER, 5001)!;
    return this.gw.table.get(svc, CLIENT, port);
  }
}

/** One upload: the client sends SEG bytes, the log takes them, the server acks them. */
class Conn {
  sent = 0;
  /** Server acks that reached the client unchanged / any other outcome. */
  acksThrough = 0;
  acksStopped = 0;
  constructor(readonly rig: Rig, readonly port: number, readonly cIsn: Seq, readonly sIsn: Seq) {}
  async step(): Promise<void> {
    const { tun } = this.rig;
    tun.inject(seg(true, this.port, { seq: seqAdd(this.cIsn, 1 + this.sent), ack: seqAdd(this.sIsn, 1), payload: Buffer.alloc(SEG, this.port & 0xff) })).flush();
    expect(tun.drain()).toHaveLength(1); // the data always reaches the server
    this.sent += SEG;
    await this.rig.settle(); // the log's open, then stability (memory log: at once, reported in a microtask)
    const ack = seqAdd(this.cIsn, 1 + this.sent);
    tun.inject(seg(false, this.port, { seq: seqAdd(this.sIsn, 1), ack })).flush();
    const out = tun.drain().map((b) => parseTcpPacket(b));
    if (out.length === 1 && out[0]!.ack === ack) this.acksThrough++;
    else this.acksStopped++;
  }
  rst(): void {
    this.rig.tun.inject(seg(true, this.port, { seq: seqAdd(this.cIsn, 1 + this.sent), flags: TCP_RST })).flush();
    this.rig.tun.drain();
  }
}

describe('memory log bounds at the gateway', () => {
  it('an upload past the per-connection bound continues unprotected: no stall, counted, its log memory freed', async () => {
    const rig = new Rig({ maxBytesPerConn: 50_000, maxBytes: 1_000_000 });
    const small = await rig.open(41000, 7000, 8000);
    const big = await rig.open(40000, 1000, 9000);
    for (let i = 0; i < 5; i++) await small.step();
    for (let i = 0; i < 120; i++) await big.step(); // 120 KB through a 50 KB bound
    expect(big.acksThrough).toBe(120); // every ack reached the client: no stall
    expect(big.acksStopped).toBe(0);
    const f = rig.flow(40000)!;
    expect(f.unprotected).toBe(true);
    expect(rig.flow(41000)!.unprotected).toBe(false);
    expect(rig.gw.boundStats).toEqual({ connection: 1, total: 0, deferred: 0 });
    // Its log connection is gone with its memory; the small one's 5 KB remain.
    expect(rig.log.listActive().map((r) => r.client.port)).toEqual([41000]);
    expect(rig.log.usage()).toMatchObject({ bytes: 5 * SEG, connections: 1 });
    const lm = rig.gw.snapshot().logMemory as Record<string, unknown>;
    expect(lm).toMatchObject({ bytes: 5 * SEG, budget: 1_000_000, perConnection: 50_000, policy: 'unprotect', unprotected: { connection: 1, total: 0 } });
    const flows = rig.gw.snapshot().flows as Array<{ flow: string; unprotected: boolean }>;
    expect(flows.filter((x) => x.unprotected)).toHaveLength(1);
    const m = rig.gw.metrics();
    expect(m).toContain('ftcp_unprotected_total{reason="conn_bound"} 1');
    expect(m).toContain('ftcp_unprotected_total{reason="budget"} 0');
    expect(m).toContain('ftcp_log_memory_conn_bound_bytes 50000');
    expect(m).toMatch(/ftcp_log_bytes 5000\n/);
    // A crash of the server: the unprotected connection is not masked (nothing to rebuild it from).
    const svc = rig.gw.table.service(SERVER, 5001)!;
    rig.gw.north.crash(svc, 'test');
    expect(recOf(f)).toBeNull();
    expect(recOf(rig.flow(41000)!)).not.toBeNull();
    rig.gw.stop();
  });

  it('past the total budget the connection whose bytes would exceed it goes unprotected; the others stay protected; all memory returns when the flows end', async () => {
    const rig = new Rig({ maxBytesPerConn: 200_000, maxBytes: 250_000 });
    const conns = [await rig.open(40001, 1000, 9000), await rig.open(40002, 2000, 19000), await rig.open(40003, 3000, 29000)];
    for (let i = 0; i < 100; i++) for (const c of conns) await c.step(); // 3 x 100 KB through a 250 KB budget
    for (const c of conns) {
      expect(c.acksThrough).toBe(100);
      expect(c.acksStopped).toBe(0);
    }
    expect(rig.gw.boundStats).toEqual({ connection: 0, total: 1, deferred: 0 });
    const unprotected = conns.filter((c) => rig.flow(c.port)!.unprotected);
    expect(unprotected).toHaveLength(1);
    expect(rig.log.usage().bytes).toBe(200_000); // the two protected ones hold everything
    expect(rig.log.usage().bytes).toBeLessThanOrEqual(250_000);
    expect(rig.gw.metrics()).toContain('ftcp_unprotected_total{reason="budget"} 1');
    // The flows end (client RST), linger, and are released: the log holds nothing.
    for (const c of conns) c.rst();
    rig.now += 1000;
    rig.gw.south.sweep();
    expect(rig.gw.table.size).toBe(0);
    expect(rig.log.usage()).toMatchObject({ bytes: 0, memory: 0, connections: 0 });
    rig.gw.stop();
  });

  it('a connection being rebuilt keeps its log past a bound (deferred, counted once); the policy applies after the rebuild', async () => {
    const rig = new Rig({ maxBytesPerConn: 50_000, maxBytes: 1_000_000 });
    const c = await rig.open(40000, 1000, 9000);
    for (let i = 0; i < 40; i++) await c.step();
    // The server's last word: a window with room for what the client sends while it is down
    // (the gateway logs a client byte only inside the server's window, issue 11).
    rig.tun.inject(seg(false, 40000, { seq: seqAdd(9000 as Seq, 1), ack: seqAdd(1000 as Seq, 1 + c.sent), window: 65535 })).flush();
    rig.tun.drain();
    const svc = rig.gw.table.service(SERVER, 5001)!;
    rig.gw.north.crash(svc, 'test');
    const f = rig.flow(40000)!;
    expect(recOf(f)).not.toBeNull();
    // The client goes on sending while its server is down: past the bound.
    for (let i = 0; i < 20; i++) {
      rig.tun.inject(seg(true, 40000, { seq: seqAdd(1000 as Seq, 1 + c.sent), ack: 9001, payload: Buffer.alloc(SEG, 1) })).flush();
      c.sent += SEG;
      await rig.settle();
    }
    rig.tun.drain();
    expect(rig.gw.boundStats).toEqual({ connection: 0, total: 0, deferred: 1 });
    expect(f.unprotected).toBe(false);
    expect(rig.log.listActive()).toHaveLength(1); // the replay still has its bytes
    expect(rig.log.usage().bytes).toBe(50_000);
    rig.gw.stop();
  });

  it('a connection whose rebuild failed is forgotten by the log too (its memory returns)', async () => {
    const rig = new Rig({ maxBytesPerConn: 500_000, maxBytes: 1_000_000 });
    const c = await rig.open(40000, 1000, 9000);
    for (let i = 0; i < 30; i++) await c.step();
    expect(rig.log.usage().bytes).toBe(30_000);
    const svc = rig.gw.table.service(SERVER, 5001)!;
    rig.gw.north.onFailed!(svc, rig.flow(40000)!); // what the north wrapper does 10 s after a failed rebuild
    expect(rig.gw.table.size).toBe(0);
    expect(rig.log.usage()).toMatchObject({ bytes: 0, memory: 0, connections: 0 });
    rig.gw.stop();
  });
});
