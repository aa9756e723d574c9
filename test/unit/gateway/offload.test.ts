/**
 * The gateway on a TUN with virtio-net headers (--offload), driven by a FakeTun: GSO
 * super-packets pass unsplit, rewritten once; partial checksums (NEEDS_CSUM) stay right;
 * packets the gateway makes carry a zeroed header; a kernel that rejects GSO writes.
 */
import { describe, expect, it } from 'vitest';
import { GatewayRig, seg as segment } from '../../support/gateway-harness.js';
import { parseTcpPacket, type TcpPacketRepr } from '../../../src/wire/repr.js';
import { TCP_ACK, TCP_FIN, TCP_SYN } from '../../../src/wire/tcp.js';
import {
  VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_HDR_LEN, encodeVnet, finishPartialChecksum, ipv4PseudoSum,
  parseVnet, type VnetHdr,
} from '../../../src/wire/vnet.js';
import { tcpChecksumOk } from '../../../src/wire/checksum.js';
import { csumReplace32 } from '../../../src/wire/checksum.js';
import { encodeTcpOptions } from '../../../src/wire/tcp-options.js';
import { EMIT_HEADROOM, emitScratch } from '../../../src/wire/headroom.js';

const C_ISN = 1000;
const S_ISN = 9000;

/** A segment of the connection; this file's segments advertise a window field of 1000. */
function seg(fromClient: boolean, r: Partial<TcpPacketRepr>): Buffer {
  return segment({ fromClient, window: 1000, ...r });
}

/** A frame as the kernel hands it over: header + packet; NEEDS_CSUM puts the pseudo-header sum in the field. */
function frame(pkt: Buffer, h: Partial<VnetHdr> = {}): Buffer {
  if ((h.flags ?? 0) & VNET_F_NEEDS_CSUM) pkt.writeUInt16BE(ipv4PseudoSum(pkt, 0), 20 + 16);
  return Buffer.concat([encodeVnet(h), pkt]);
}
const partial = { flags: VNET_F_NEEDS_CSUM, csumStart: 20, csumOffset: 16 };
const gso = (size: number) => ({ ...partial, gsoType: VNET_GSO_TCPV4, gsoSize: size, hdrLen: 128 /* the kernel's linear length */ });

/** Finishes a written frame's checksum the way the kernel would, and verifies the segment. */
function finishedOk(f: Buffer): boolean {
  const h = parseVnet(f)!;
  const pkt = Buffer.from(f.subarray(VNET_HDR_LEN));
  if (h.flags & VNET_F_NEEDS_CSUM) finishPartialChecksum(pkt, 0, pkt.length, h.csumStart, h.csumOffset);
  return tcpChecksumOk(pkt, 0);
}

async function setup(opts: { rejectGso?: boolean } = {}) {
  const rig = new GatewayRig({ tun: { vnetHdrLen: VNET_HDR_LEN, ...opts }, manualClock: false, gateway: { mtu: 1500 } });
  const { tun, log, gw } = rig;
  // Window scaling (7) on both sides: a lowered ack then changes the window by a different
  // amount, so a wrong partial checksum cannot cancel out by luck.
  const options = encodeTcpOptions({ mss: 1460, wscale: 7 });
  tun.inject(frame(seg(true, { seq: C_ISN, flags: TCP_SYN, window: 64240, options }))).flush();
  tun.inject(frame(seg(false, { seq: S_ISN, ack: C_ISN + 1, flags: TCP_SYN | TCP_ACK, window: 65160, options }))).flush();
  tun.inject(frame(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, flags: TCP_ACK, window: 502 }))).flush(); // the log opens here
  await rig.logOpened();
  tun.drain();
  expect(log.opened).toHaveLength(1);
  return { tun, log, gw };
}

describe('gateway --offload (virtio-net frames)', () => {
  it('a client super packet is forwarded unsplit and logged in one append', async () => {
    const { tun, log, gw } = await setup();
    const payload = Buffer.alloc(40_000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + 3) & 0xff;
    const f = frame(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, payload }), gso(1448));
    const out = tun.inject(f).flush();
    expect(out).toHaveLength(1);
    expect(out[0]!.length).toBe(f.length); // unsplit
    const h = parseVnet(out[0]!)!;
    expect(h.gsoType).toBe(VNET_GSO_TCPV4);
    expect(h.gsoSize).toBe(1448);
    expect(h.hdrLen).toBe(40); // IP + TCP header, not the kernel's linear length
    expect(finishedOk(out[0]!)).toBe(true);
    expect(log.appends).toHaveLength(1);
    expect(log.appends[0]!.offset).toBe(0);
    expect(log.bytes(1).equals(payload)).toBe(true);
    expect(gw.vnet!.stats.superPackets).toBe(1);
    gw.stop();
  });

  it('the server ack of a super packet is held then released with a zeroed header', async () => {
    const { tun, log, gw } = await setup();
    tun.inject(frame(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, payload: Buffer.alloc(30_000, 5) }), gso(1448))).flush();
    tun.drain();
    // The server's pure ACK of all 30000 bytes, with a partial checksum: none is stable yet.
    expect(tun.inject(frame(seg(false, { seq: S_ISN + 1, ack: C_ISN + 1 + 30_000 }), partial)).flush()).toHaveLength(0);
    expect(gw.south.stats.acksHeld).toBe(1);
    log.stabilize(1, 30_000);
    const rel = tun.drain();
    expect(rel).toHaveLength(1);
    const h = parseVnet(rel[0]!)!;
    expect(h).toEqual({ flags: 0, gsoType: VNET_GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0, numBuffers: 0 });
    const pkt = rel[0]!.subarray(VNET_HDR_LEN);
    expect(tcpChecksumOk(pkt, 0)).toBe(true); // complete, not partial
    expect(parseTcpPacket(pkt).ack).toBe(C_ISN + 1 + 30_000);
    gw.stop();
  });

  it('writes a released ack from the emit scratch, its header in place, no copy', async () => {
    const { tun, log, gw } = await setup();
    const writes: Array<{ buf: Buffer; off: number; len: number }> = [];
    const write = tun.write.bind(tun);
    tun.write = (buf, off, len) => {
      writes.push({ buf, off, len });
      return write(buf, off, len);
    };
    tun.inject(frame(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, payload: Buffer.alloc(300, 5) }))).flush();
    tun.drain();
    writes.length = 0;
    expect(tun.inject(frame(seg(false, { seq: S_ISN + 1, ack: C_ISN + 301 }), partial)).flush()).toHaveLength(0);
    emitScratch.fill(0xee, 0, EMIT_HEADROOM); // a header left from before must not survive
    log.stabilize(1, 300);
    const rel = tun.drain();
    expect(rel).toHaveLength(1);
    // The frame handed to the TUN starts in the scratch's headroom: the header was written in
    // front of the packet the south wrapper built there, not into a copy.
    expect(writes).toHaveLength(1);
    expect(writes[0]!.buf).toBe(emitScratch);
    expect(writes[0]!.off).toBe(EMIT_HEADROOM - VNET_HDR_LEN);
    expect(parseVnet(rel[0]!)).toEqual({ flags: 0, gsoType: VNET_GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0, numBuffers: 0 });
    expect(parseTcpPacket(rel[0]!.subarray(VNET_HDR_LEN)).ack).toBe(C_ISN + 301);
    expect(tcpChecksumOk(rel[0]!.subarray(VNET_HDR_LEN), 0)).toBe(true);
    gw.stop();
  });

  it('refuses an emitted packet without headroom rather than write a header over its front', async () => {
    const { tun, gw } = await setup();
    const pkt = seg(false, { seq: S_ISN + 1, ack: C_ISN + 1 });
    expect(() => gw.vnet!.emit(pkt, 0, pkt.length)).toThrow(/headroom/);
    expect(tun.drain()).toHaveLength(0);
    const framed = Buffer.concat([Buffer.alloc(EMIT_HEADROOM, 0xee), pkt]);
    expect(gw.vnet!.emit(framed, EMIT_HEADROOM, pkt.length)).toBe(true);
    const out = tun.drain();
    expect(out).toHaveLength(1);
    expect(out[0]!.equals(Buffer.concat([Buffer.alloc(VNET_HDR_LEN), pkt]))).toBe(true);
    gw.stop();
  });

  it('a server super packet gets its ack lowered once and its partial checksum stays right', async () => {
    const { tun, log, gw } = await setup();
    tun.inject(frame(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, payload: Buffer.alloc(1000, 1) }))).flush();
    tun.drain();
    log.stabilize(1, 400);
    tun.drain();
    const data = Buffer.alloc(60_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
    const f = frame(seg(false, { seq: S_ISN + 1, ack: C_ISN + 1 + 1000, window: 500, payload: data }), gso(1448));
    const out = tun.inject(f).flush();
    expect(out).toHaveLength(1);
    const pkt = Buffer.from(out[0]!.subarray(VNET_HDR_LEN));
    expect(parseTcpPacket(pkt).ack).toBe(C_ISN + 1 + 400); // lowered to stable
    expect(parseVnet(out[0]!)!.flags & VNET_F_NEEDS_CSUM).toBe(VNET_F_NEEDS_CSUM);
    expect(pkt.readUInt16BE(36)).toBe(ipv4PseudoSum(pkt, 0)); // still the pseudo-header sum
    expect(finishedOk(out[0]!)).toBe(true);
    expect(gw.south.stats.acksLowered).toBe(1);
    // What RFC 1624 alone would have left in the field: finishing that gives a wrong checksum.
    const naive = Buffer.from(f.subarray(VNET_HDR_LEN));
    const field = csumReplace32(naive.readUInt16BE(36), naive.readUInt32BE(28), C_ISN + 1 + 400);
    naive.writeUInt32BE(C_ISN + 1 + 400, 28);
    naive.writeUInt16BE(field, 36);
    naive.writeUInt16BE(pkt.readUInt16BE(34), 34); // the same window
    finishPartialChecksum(naive, 0, naive.length, 20, 16);
    expect(tcpChecksumOk(naive, 0)).toBe(false);
    gw.stop();
  });

  it('a NEEDS_CSUM FIN gets a complete checksum before the wrappers', async () => {
    const { tun, gw } = await setup();
    const out = tun.inject(frame(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, flags: TCP_FIN | TCP_ACK, payload: Buffer.alloc(10, 9) }), partial)).flush();
    expect(out).toHaveLength(1);
    expect(parseVnet(out[0]!)!.flags & VNET_F_NEEDS_CSUM).toBe(0);
    expect(tcpChecksumOk(out[0]!.subarray(VNET_HDR_LEN), 0)).toBe(true);
    expect(gw.vnet!.stats.checksumsFinished).toBe(1);
    gw.stop();
  });

  it('a held super packet fin is emitted later as GSO with a partial checksum', async () => {
    const { tun, log, gw } = await setup();
    tun.inject(frame(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, payload: Buffer.alloc(100, 1) }))).flush();
    tun.drain();
    const data = Buffer.alloc(20_000, 3);
    // The server's last super-packet carries its FIN and acks bytes not stable: held whole.
    expect(tun.inject(frame(seg(false, { seq: S_ISN + 1, ack: C_ISN + 101, flags: TCP_FIN | TCP_ACK, payload: data }), gso(1448))).flush()).toHaveLength(0);
    log.stabilize(1, 100);
    const rel = tun.drain();
    expect(rel).toHaveLength(1);
    const h = parseVnet(rel[0]!)!;
    expect(h.gsoType).toBe(VNET_GSO_TCPV4);
    expect(h.gsoSize).toBe(1500 - 40);
    expect(h.hdrLen).toBe(40);
    expect(finishedOk(rel[0]!)).toBe(true);
    expect(gw.vnet!.stats.emittedGso).toBe(1);
    gw.stop();
  });

  it('DATA_VALID frames keep complete checksums through rewrites', async () => {
    const { tun, log, gw } = await setup();
    tun.inject(frame(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, payload: Buffer.alloc(500, 1) }))).flush();
    tun.drain();
    log.stabilize(1, 200);
    const out = tun.inject(frame(seg(false, { seq: S_ISN + 1, ack: C_ISN + 501, payload: Buffer.alloc(700, 2) }), { flags: VNET_F_DATA_VALID })).flush();
    expect(out).toHaveLength(1);
    expect(parseVnet(out[0]!)!.flags).toBe(VNET_F_DATA_VALID);
    expect(parseTcpPacket(out[0]!.subarray(VNET_HDR_LEN)).ack).toBe(C_ISN + 201);
    expect(tcpChecksumOk(out[0]!.subarray(VNET_HDR_LEN), 0)).toBe(true);
    gw.stop();
  });

  it('a kernel rejecting GSO writes turns offloads off and the rest of the batch goes', async () => {
    const { tun, gw } = await setup({ rejectGso: true });
    const small1 = frame(seg(true, { seq: C_ISN + 1, ack: S_ISN + 1, payload: Buffer.alloc(100, 1) }));
    const big = frame(seg(true, { seq: C_ISN + 101, ack: S_ISN + 1, payload: Buffer.alloc(5000, 2) }), gso(1448));
    const small2 = frame(seg(true, { seq: C_ISN + 5101, ack: S_ISN + 1, payload: Buffer.alloc(100, 3) }));
    const out = tun.inject(small1, big, small2).flush();
    expect(out.map((f) => f.length)).toEqual([small1.length, small2.length]);
    expect(tun.rejected).toBe(1);
    expect(tun.offloads).toBe(false);
    expect(gw.vnet!.active).toBe(false);
    expect(gw.vnet!.stats).toMatchObject({ gsoRejected: 1, gsoDropped: 1 });
    gw.stop();
  });
});
