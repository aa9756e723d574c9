/** `ftcp inspect` through the CLI entry (in-process): output, exit statuses, bad files. */
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { mkdtemp, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../src/cli/main.js';
import { Convo } from './inspect-helpers.js';
import { ensureBuilt } from '../../support/build.js';
import { runCli } from '../../support/cli.js';

let dir: string;

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
  try {
    const code = await main(['inspect', ...argv]);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

beforeAll(async () => {
  ensureBuilt();
  dir = await mkdtemp(join(tmpdir(), 'ftcp-inspect-'));
  const ok = new Convo();
  ok.handshake(0).data(10, ok.c, 64).ack(11, ok.s).close(20);
  await writeFile(join(dir, 'ok.pcap'), ok.pcap());
  const rst = new Convo();
  rst.handshake(0).data(10, rst.c, 64).rst(11, rst.s);
  await writeFile(join(dir, 'rst.pcap'), rst.pcap());
  const open = new Convo();
  open.handshake(0).data(10, open.c, 64).ack(11, open.s);
  await writeFile(join(dir, 'open.pcap'), open.pcap());
  await writeFile(join(dir, 'text.pcap'), 'this is not a capture, just some text\n');
  await writeFile(join(dir, 'cut.pcap'), ok.pcap().subarray(0, 24 + 16 + 10));
  await writeFile(join(dir, 'trace'), `1 198.18.1.2:40000 5001 1000 10\n`);
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('ftcp inspect', () => {
  it('prints the table and exits 0 when every connection is ok', async () => {
    const r = await cli(join(dir, 'ok.pcap'));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/1 connection\(s\)/);
    expect(r.out).toMatch(/^#1 198\.18\.1\.2:40000 -> 198\.18\.2\.2:5001: OK /m);
    expect(r.err).toBe('');
  });

  it('exits 1 on a reset, and --json gives the report', async () => {
    const r = await cli(join(dir, 'rst.pcap'), '--json');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out) as { captureStartNs: string; connections: Array<{ verdict: string; c2s: { bytes: number } }> };
    expect(typeof j.captureStartNs).toBe('string');
    expect(j.connections.map((c) => [c.verdict, c.c2s.bytes])).toEqual([['reset', 64]]);
  });

  it('exits 1 on an incomplete connection unless --allow-incomplete', async () => {
    expect((await cli(join(dir, 'open.pcap'))).code).toBe(1);
    expect((await cli(join(dir, 'open.pcap'), '--allow-incomplete')).code).toBe(0);
    // ... which does not excuse a reset.
    expect((await cli(join(dir, 'rst.pcap'), '--allow-incomplete')).code).toBe(1);
  });

  it('filters by --ports and checks acks against --trace', async () => {
    const none = await cli(join(dir, 'ok.pcap'), '--ports', '80,443');
    expect(none.code).toBe(0);
    expect(none.out).toMatch(/0 connection\(s\) \(1 connections on other ports ignored\)/);
    // Stable only to 10 while the server acks 64: a violation.
    const t = await cli(join(dir, 'ok.pcap'), '--trace', join(dir, 'trace'), '--ports', '5001');
    expect(t.code).toBe(1);
    expect(t.out).toMatch(/UNSTABLE-ACK .*ack 64 > stable 10/);
  });

  it('exits 2 on usage errors', async () => {
    expect((await cli()).code).toBe(2);
    expect((await cli('a.pcap', 'b.pcap')).code).toBe(2);
    const bad = await cli(join(dir, 'ok.pcap'), '--ports', '5001,x');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--ports: bad port 'x'/);
    expect((await cli(join(dir, 'ok.pcap'), '--bogus')).code).toBe(2);
  });

  it('reports a missing, unreadable or non-pcap file clearly, with exit 1 and no stack trace', async () => {
    const cases: Array<[string, RegExp]> = [
      [join(dir, 'nope.pcap'), /cannot read capture '.*nope\.pcap': no such file/],
      [dir, /cannot read capture '.*': is a directory/],
      [join(dir, 'text.pcap'), /'.*text\.pcap' is not a readable pcap file: pcap: bad magic/],
      [join(dir, 'cut.pcap'), /is not a readable pcap file: pcap: truncated record/],
    ];
    for (const [file, msg] of cases) {
      const r = await cli(file);
      expect(r.code, file).toBe(1);
      expect(r.err).toMatch(msg);
      expect(r.err).not.toMatch(/\n\s+at /);
      expect(r.out).toBe('');
    }
    const t = await cli(join(dir, 'ok.pcap'), '--trace', join(dir, 'missing-trace'));
    expect(t.code).toBe(1);
    expect(t.err).toMatch(/cannot read stability trace/);
  });

  it('refuses what is not a regular file at once (reading /dev/zero or a pipe never ends)', async () => {
    // As a child with a deadline: the unfixed command read /dev/zero for ever.
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const cases: Array<[string[], RegExp]> = [
      [['/dev/zero'], /^ftcp inspect: cannot read capture '\/dev\/zero': is a character device, not a regular file$/m],
      [[fifo], /^ftcp inspect: cannot read capture '.*fifo': is a pipe, not a regular file$/m],
      [[join(dir, 'ok.pcap'), '--trace', '/dev/zero'], /cannot read stability trace '\/dev\/zero': is a character device/],
    ];
    for (const [argv, msg] of cases) {
      const r = await runCli(['inspect', ...argv], 10_000);
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.stderr).toMatch(msg);
      expect(r.stdout).toBe('');
    }
  });

  it('a malformed capture ends with a clear error: bad magic, truncated header, absurd caplen', async () => {
    const ok = await readFile(join(dir, 'ok.pcap'));
    // A record header cut short.
    await writeFile(join(dir, 'cut-header.pcap'), ok.subarray(0, 24 + 10));
    // A record claiming 300,000 captured bytes (more than libpcap ever writes), all present.
    const rec = Buffer.alloc(16 + 300_000);
    rec.writeUInt32LE(1, 0);
    rec.writeUInt32LE(300_000, 8);
    rec.writeUInt32LE(400_000, 12);
    rec[16] = 0x45;
    await writeFile(join(dir, 'huge.pcap'), Buffer.concat([ok.subarray(0, 24), rec]));
    // A caplen of 4 GB in a short file.
    const big = Buffer.from(rec.subarray(0, 16));
    big.writeUInt32LE(0xffffffff, 8);
    await writeFile(join(dir, 'caplen.pcap'), Buffer.concat([ok.subarray(0, 24), big, Buffer.alloc(100)]));
    const cases: Array<[string, RegExp]> = [
      ['cut-header.pcap', /not a readable pcap file: pcap: truncated record header at 24/],
      ['huge.pcap', /not a readable pcap file: pcap: record at 24 claims 300000 captured bytes, more than any capture holds \(262144\)/],
      ['caplen.pcap', /not a readable pcap file: pcap: record at 24 claims 4294967295 captured bytes/],
    ];
    for (const [file, msg] of cases) {
      const r = await cli(join(dir, file));
      expect(r.code, file).toBe(1);
      expect(r.err).toMatch(msg);
      expect(r.out).toBe('');
    }
  });

  it('reports permission denied when it cannot open the file', async () => {
    const f = join(dir, 'locked.pcap');
    await writeFile(f, 'x');
    await chmod(f, 0o000);
    const r = await cli(f);
    // Root reads the file anyway (and finds it is not a pcap); anyone else is denied.
    expect(r.code).toBe(1);
    expect(r.err).toMatch(process.getuid?.() === 0 ? /not a readable pcap file/ : /permission denied/);
  });
});
