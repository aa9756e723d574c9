/**
 * Checksums of protected segments are verified before a segment changes a flow or reaches
 * the log (issue 11 item 2): the whole gateway on a FakeTun (plain packets, and virtio-net
 * frames whose offload flags vouch for the TCP checksum), a ManualLog recording appends.
 */
import { describe, it, expect, vi } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { type ChecksumPolicy } from '../../../src/gateway/gateway.js';
import { GatewayRig, SPORT, seg as segment } from '../../support/gateway-harness.js';
import { type TcpPacketRepr } from '../../../src/wire/repr.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '../../../src/wire/tcp.js';
import { VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_HDR_LEN, encodeVnet, ipv4PseudoSum } from '../../../src/wire/vnet.js';

const C_ISN = 1000;
const S_ISN = 5_000_000;

/** A segment of the client's connection to server port `port` (another port: an unprotected service). */
function seg(fromClient: boolean, r: Partial<TcpPacketRepr>, port = SPORT): Buffer {
  return segment({ fromClient, ...(fromClient ? { dstPort: port } : { srcPort: port }), ...r });
}

/** The same segment with other payload bytes and the checksum of the original (a forged copy). */
function forged(genuine: Buffer, payloadLen: number): Buffer {
  const f = Buffer.from(genuine);
  for (let i = f.length - payloadLen; i < f.length; i++) f[i] = f[i]! ^ 0x5a;
  return f;
}

/** A wrong TCP checksum, bytes unchanged. */
function badTcp(p: Buffer): Buffer {
  const f = Buffer.from(p);
  f[20 + 16] = f[20 + 16]! ^ 0x01;
  return f;
}

/** A wrong IPv4 header checksum, bytes unchanged. */
function badIp(p: Buffer): Buffer {
  const f = Buffer.from(p);
  f[10] = f[10]! ^ 0x10;
  return f;
}

class Harness extends GatewayRig {
  constructor(readonly vnet = false, checksums?: ChecksumPolicy) {
    super({
      tun: vnet ? { vnetHdrLen: VNET_HDR_LEN } : {},
      manualClock: false,
      gateway: { south: { lingerMs: 100, idleTimeoutMs: 60_000 }, ...(checksums !== undefined ? { checksums } : {}) },
    });
  }
  /** Injects (in a frame with `flags` on a vnet TUN) and returns what was written back. */
  send(pkt: Buffer, flags = 0): Buffer[] {
    let f = pkt;
    if (this.vnet) {
      const p = Buffer.from(pkt);
      // A partial checksum: the field holds the pseudo-header sum (the kernel finishes it).
      if (flags & VNET_F_NEEDS_CSUM) p.writeUInt16BE(ipv4PseudoSum(p, 0), 20 + 16);
      f = Buffer.concat([encodeVnet(flags & VNET_F_NEEDS_CSUM ? { flags, csumStart: 20, csumOffset: 16 } : { flags }), p]);
    }
    this.tun.inject(f).flush();
    return this.tun.drain();
  }
  async handshake(): Promise<void> {
    expect(this.send(seg(true, { seq: C_ISN, flags: TCP_SYN, window: 64240 }))).toHaveLength(1);
    expect(this.send(seg(false, { seq: S_ISN, ack: C_ISN + 1, flags: TCP_SYN | TCP_ACK, window: 65160 }))).toHaveLength(1);
    expect(this.send(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1 }))).toHaveLength(1);
    await this.logOpened(); // the client's ACK of the SYN-ACK opened the connection in the log
    expect(this.log.opened).toHaveLength(1);
  }
  drop(name: string): number {
    return (this.gw.snapshot().drops as Record<string, number>)[name]!;
  }
}

const data = (n: number, fill: number) => Buffer.alloc(n, fill);

describe('checksums of protected segments (plain TUN)', () => {
  it('a forged copy with a bad checksum is dropped and not logged; the genuine bytes are', async () => {
    const h = new Harness();
    await h.handshake();
    const genuine = seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, flags: TCP_ACK | TCP_PSH, payload: data(1000, 0x41) });
    expect(h.send(forged(genuine, 1000))).toHaveLength(0);
    expect(h.log.appends).toHaveLength(0);
    expect(h.drop('BAD_TCP_CHECKSUM')).toBe(1);
    expect(h.gw.stats.dropped).toBe(1);

    const out = h.send(genuine);
    expect(out).toHaveLength(1);
    expect(out[0]!.equals(genuine)).toBe(true);
    expect(h.log.bytes(1).equals(data(1000, 0x41))).toBe(true);
    expect(h.drop('BAD_TCP_CHECKSUM')).toBe(1);
  });

  it('a client FIN with a bad checksum is not logged: later bytes and the genuine FIN are', async () => {
    const h = new Harness();
    await h.handshake();
    expect(h.send(badTcp(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, flags: TCP_ACK | TCP_FIN })))).toHaveLength(0);
    expect(h.log.fins).toHaveLength(0);
    expect(h.drop('BAD_TCP_CHECKSUM')).toBe(1);

    expect(h.send(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, flags: TCP_ACK | TCP_PSH, payload: data(300, 0x42) }))).toHaveLength(1);
    expect(h.log.bytes(1).equals(data(300, 0x42))).toBe(true);
    expect(h.send(seg(true, { seq: C_ISN + 301, ack: S_ISN + 1, flags: TCP_ACK | TCP_FIN }))).toHaveLength(1);
    expect(h.log.fins).toEqual([{ id: 1, offset: 300 }]);
  });

  it('a bad IPv4 header checksum is dropped and counted, in both directions', async () => {
    const h = new Harness();
    await h.handshake();
    expect(h.send(badIp(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, payload: data(100, 0x43) })))).toHaveLength(0);
    expect(h.send(badIp(seg(false, { seq: S_ISN + 1, ack: C_ISN + 1, payload: data(100, 0x44) })))).toHaveLength(0);
    expect(h.log.appends).toHaveLength(0);
    expect(h.drop('BAD_IPV4_CHECKSUM')).toBe(2);
    expect(h.drop('BAD_TCP_CHECKSUM')).toBe(0);
    expect(h.gw.south.stats.unknownMidstream).toBe(0);
  });

  it('a server segment with a bad checksum changes nothing: its data and ack do not reach the client', async () => {
    const h = new Harness();
    await h.handshake();
    expect(h.send(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, payload: data(500, 0x45) }))).toHaveLength(1);
    h.log.stabilize(1, 500);
    h.tun.drain();
    const flow = [...h.gw.table.flows()][0]![1];
    const sndMax = flow.sndMax;
    expect(h.send(badTcp(seg(false, { seq: S_ISN + 1, ack: C_ISN + 501, payload: data(200, 0x46) })))).toHaveLength(0);
    expect(flow.sndMax).toBe(sndMax);
    expect(h.drop('BAD_TCP_CHECKSUM')).toBe(1);
    expect(h.send(seg(false, { seq: S_ISN + 1, ack: C_ISN + 501, payload: data(200, 0x46) }))).toHaveLength(1);
    expect(flow.sndMax).not.toBe(sndMax);
  });

  it('unprotected traffic passes unverified (not ours to judge)', async () => {
    const h = new Harness();
    const p = badTcp(seg(true, { seq: 7, flags: TCP_SYN }, 6000));
    const out = h.send(p);
    expect(out).toHaveLength(1);
    expect(out[0]!.equals(p)).toBe(true);
    expect(h.gw.stats.unprotectedTcp).toBe(1);
    expect(h.gw.drops.drops).toBe(0);
  });

  it('the drop reasons are in /status and /metrics', async () => {
    const h = new Harness();
    await h.handshake();
    h.send(badTcp(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, payload: data(10, 1) })));
    h.send(badIp(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, payload: data(10, 1) })));
    const m = h.gw.metrics();
    expect(m).toContain('ftcp_drops_total{reason="BAD_TCP_CHECKSUM"} 1');
    expect(m).toContain('ftcp_drops_total{reason="BAD_IPV4_CHECKSUM"} 1');
    expect(h.gw.snapshot().drops).toMatchObject({ BAD_TCP_CHECKSUM: 1, BAD_IPV4_CHECKSUM: 1 });
    expect(h.gw.snapshot().checksums).toBe('verify');
  });

  it("--checksums trust: the segment is not checked (the benchmark's baseline)", async () => {
    const h = new Harness(false, 'trust');
    await h.handshake();
    expect(h.send(forged(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, payload: data(100, 0x47) }), 100))).toHaveLength(1);
    expect(h.log.bytes(1).length).toBe(100);
    expect(h.gw.drops.drops).toBe(0);
    expect(h.gw.snapshot().checksums).toBe('trust');
  });
});

describe('checksums of protected segments (TUN offloads: the virtio-net flags)', () => {
  it('flags 0: verified in full, a forged copy is dropped', async () => {
    const h = new Harness(true);
    await h.handshake();
    const genuine = seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, payload: data(800, 0x48) });
    expect(h.send(forged(genuine, 800))).toHaveLength(0);
    expect(h.drop('BAD_TCP_CHECKSUM')).toBe(1);
    expect(h.log.appends).toHaveLength(0);
    expect(h.send(genuine)).toHaveLength(1);
    expect(h.log.bytes(1).equals(data(800, 0x48))).toBe(true);
  });

  it('NEEDS_CSUM (a partial sum the kernel completes) and DATA_VALID (verified) are trusted', async () => {
    const h = new Harness(true);
    await h.handshake();
    // A partial checksum is not a valid complete one: verified in full, it would be dropped.
    expect(h.send(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, payload: data(100, 0x49) }), VNET_F_NEEDS_CSUM)).toHaveLength(1);
    expect(h.send(badTcp(seg(true, { seq: C_ISN + 101, ack: S_ISN + 1, payload: data(100, 0x4a) })), VNET_F_DATA_VALID)).toHaveLength(1);
    expect(h.log.bytes(1).equals(Buffer.concat([data(100, 0x49), data(100, 0x4a)]))).toBe(true);
    expect(h.gw.drops.drops).toBe(0);
    expect(h.gw.vnet!.stats.dataValid).toBe(1);
    // The IPv4 header checksum is always checked (no flag covers it).
    expect(h.send(badIp(seg(true, { seq: C_ISN + 201, ack: S_ISN + 1, payload: data(100, 0x4b) })), VNET_F_DATA_VALID)).toHaveLength(0);
    expect(h.drop('BAD_IPV4_CHECKSUM')).toBe(1);
  });
});

describe('ftcp gateway --checksums', () => {
  // Each argv also carries a later usage error (--offload with --no-offload), so even a value
  // that were accepted would stop there, before a TUN is created.
  it.each([['off'], [''], ['VERIFY']])("refuses --checksums '%s': exit 2 naming the flag", async (v) => {
    let text = '';
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((text += String(s)), true));
    const code = await main(['gateway', '--tun', 'ftcpx0', '--protect', '198.18.2.2:5001', '--offload', '--no-offload', '--checksums', v]).finally(() => spy.mockRestore());
    expect(code).toBe(2);
    expect(text).toContain(`--checksums: expected 'verify' or 'trust', got '${v}'`);
  });
});
