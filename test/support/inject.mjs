#!/usr/bin/env node
/**
 * Crafted-packet injector for the lab tests of hostile input (issue 11). Run inside a lab
 * namespace (`ip netns exec NS node test/support/inject.mjs ...`): it sends whole IPv4
 * packets, headers included (IP_HDRINCL), through a raw socket (the `raw-socket` package),
 * so the source address, checksums and options are exactly what the test wrote.
 *
 *   inject.mjs send HEX [HEX...]                        each packet once, in order
 *   inject.mjs flood --dst IP:PORT --src-net A.B.0.0 --count N [--rate R] [--seed S]
 *                                                        N SYNs from random sources in A.B.0.0/16
 *
 * Prints one JSON line at the end: {"sent": n, "errors": e, "ms": t}. Bounded: at most
 * 10^6 packets and 10 minutes per run.
 */
import raw from 'raw-socket';
// The project's one seeded PRNG, from the build (lab tests build dist first: test/support/build.ts).
import { mulberry32 as rng } from '../../dist/util/rng.js';

const MAX_PACKETS = 1_000_000;
const MAX_MS = 10 * 60 * 1000;

function usage(msg) {
  process.stderr.write(`inject: ${msg}\nusage: inject.mjs send HEX... | flood --dst IP:PORT --src-net A.B.0.0 --count N [--rate R] [--seed S]\n`);
  process.exit(2);
}

function ipToU32(s) {
  const p = s.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) usage(`bad address ${s}`);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

function u32ToIp(n) {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function sum16(buf, off, len, acc = 0) {
  for (let i = 0; i + 1 < len; i += 2) acc += buf.readUInt16BE(off + i);
  if (len & 1) acc += buf[off + len - 1] << 8;
  return acc;
}

function fold(acc) {
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return ~acc & 0xffff;
}

/** A SYN from src:sport to dst:dport with an MSS option, both checksums right. */
function synPacket(src, sport, dst, dport, isn) {
  const b = Buffer.alloc(44);
  b[0] = 0x45; b.writeUInt16BE(44, 2); b.writeUInt16BE(0x4000, 6); b[8] = 64; b[9] = 6;
  b.writeUInt32BE(src, 12); b.writeUInt32BE(dst, 16);
  b.writeUInt16BE(fold(sum16(b, 0, 20)), 10);
  b.writeUInt16BE(sport, 20); b.writeUInt16BE(dport, 22); b.writeUInt32BE(isn, 24);
  b[32] = 6 << 4; b[33] = 0x02; b.writeUInt16BE(64240, 34);
  b[40] = 2; b[41] = 4; b.writeUInt16BE(1460, 42);
  let acc = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + 6 + 24;
  acc = sum16(b, 20, 24, acc);
  b.writeUInt16BE(fold(acc), 36);
  return b;
}

function flag(args, name, def) {
  const i = args.indexOf(name);
  if (i < 0) return def;
  const v = args[i + 1];
  if (v === undefined) usage(`${name} needs a value`);
  return v;
}

const [mode, ...rest] = process.argv.slice(2);
const sock = raw.createSocket({ protocol: raw.Protocol.TCP });
sock.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, Buffer.from([1, 0, 0, 0]), 4);
const started = Date.now();
let sent = 0;
let errors = 0;

function sendOne(pkt) {
  return new Promise((resolve) => {
    sock.send(pkt, 0, pkt.length, u32ToIp(pkt.readUInt32BE(16)), null, (err) => {
      if (err) errors++;
      else sent++;
      resolve();
    });
  });
}

async function main() {
  if (mode === 'send') {
    if (rest.length === 0 || rest.length > MAX_PACKETS) usage('send needs 1 to 10^6 packets');
    for (const hex of rest) {
      if (!/^([0-9a-f]{2})+$/i.test(hex) || hex.length < 40) usage(`not an IPv4 packet in hex: ${hex.slice(0, 40)}`);
      await sendOne(Buffer.from(hex, 'hex'));
    }
  } else if (mode === 'flood') {
    const [dstIp, dstPort] = String(flag(rest, '--dst', '')).split(':');
    const dst = ipToU32(dstIp ?? '');
    const dport = Number(dstPort);
    const net = ipToU32(String(flag(rest, '--src-net', '')));
    const count = Number(flag(rest, '--count', '0'));
    const rate = Number(flag(rest, '--rate', '5000'));
    const seed = Number(flag(rest, '--seed', '1'));
    if (!Number.isInteger(dport) || dport < 1 || dport > 65535) usage('--dst needs IP:PORT');
    if (!Number.isInteger(count) || count < 1 || count > MAX_PACKETS) usage('--count: 1 to 10^6');
    if (!(rate > 0 && rate <= 1e6)) usage('--rate: 1 to 10^6 per second');
    const r = rng(seed);
    for (let i = 0; i < count; i++) {
      if (Date.now() - started > MAX_MS) break;
      const due = started + (i * 1000) / rate;
      const wait = due - Date.now();
      if (wait > 1) await new Promise((res) => setTimeout(res, wait));
      const src = (net & 0xffff0000) | (1 + Math.floor(r() * 65533));
      const sport = 1024 + Math.floor(r() * 64000);
      await sendOne(synPacket(src >>> 0, sport, dst, dport, Math.floor(r() * 2 ** 32) >>> 0));
    }
  } else {
    usage(`unknown mode ${mode ?? '(none)'}`);
  }
  sock.close();
  process.stdout.write(JSON.stringify({ sent, errors, ms: Date.now() - started }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`inject: ${e?.stack ?? e}\n`);
  process.exit(1);
});
