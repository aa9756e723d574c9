/**
 * The standby's commands on the control endpoint (POST /takeover, /release) and on the command
 * line (`ftcp gateway takeover|release --control`, `ftcp gateway --standby`'s usage errors): a
 * report as JSON, bad input answered with a clear error, a gateway without --standby refusing
 * both (409), a failed takeover answered 503 while the gateway stays standby.
 */
import { describe, it, expect, afterEach, beforeAll, vi } from 'vitest';
import { Harness } from '../../support/gateway-harness.js';
import { ManualLog } from '../../support/manual-log.js';
import { testLogger } from '../../support/test-logger.js';
import { runCli } from '../../support/cli.js';
import { ensureBuilt } from '../../support/build.js';
import { rawRequest } from '../../support/raw-http.js';
import { startControl, type ControlEndpoint } from '../../../src/gateway/control.js';
import { Standby } from '../../../src/gateway/standby.js';
import { standbyOptions } from '../../../src/cli/commands/gateway.js';
import { reportLine } from '../../../src/cli/commands/gateway-role.js';
import { main } from '../../../src/cli/main.js';
import { statusText } from '../../../src/cli/commands/status.js';
import { UsageError } from '../../../src/util/errors.js';

const open: ControlEndpoint[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

/** A gateway (a standby unless `standby` is false) behind a control endpoint on 127.0.0.1. */
async function endpoint(standby = true): Promise<{ h: Harness; sb: Standby | null; c: ControlEndpoint; url: string; at: string }> {
  const h = new Harness({ log: new ManualLog() });
  const sb = standby ? new Standby(h.gw, h.log, { logger: testLogger() }) : null;
  const c = await startControl(h.gw, { addr: '127.0.0.1', port: 0, standby: sb });
  open.push(c);
  const at = `127.0.0.1:${c.address().port}`;
  return { h, sb, c, url: `http://${at}`, at };
}

describe('control endpoint: POST /takeover and /release', () => {
  it('takes over and releases, with JSON reports, idempotent; status shows the role', async () => {
    const { h, c, url } = await endpoint();
    const r1 = await fetch(`${url}/takeover`, { method: 'POST' });
    expect(r1.status).toBe(200);
    const t = await r1.json();
    expect(t).toMatchObject({ role: 'active', epoch: null, adopted: 0, already: false });
    expect(typeof t.totalMs).toBe('number');
    expect(h.gw.role).toBe('active');
    expect(await (await fetch(`${url}/takeover`, { method: 'POST' })).json()).toMatchObject({ role: 'active', already: true });
    expect((await (await fetch(`${url}/status`)).json()).role).toBe('active');
    expect(await (await fetch(`${url}/release`, { method: 'POST' })).json()).toEqual({ role: 'standby', left: 0, already: false });
    expect(await (await fetch(`${url}/release`, { method: 'POST' })).json()).toMatchObject({ already: true });
    expect(h.gw.role).toBe('standby');
    expect(c.stats.commands).toBe(4);
    const text = statusText(await (await fetch(`${url}/status`)).json());
    expect(text).toMatch(/^role: standby \(STANDBY; 1 takeover\(s\), 0 failed, 1 release\(s\)\); following 0 open connection\(s\) of the log .*; last takeover \d{4}-.*Z: epoch none \(NOT fenced\), 0 adopted in/m);
    expect(await (await fetch(`${url}/metrics`)).text()).toContain('ftcp_takeovers_total 1');
  });

  it('answers bad input with a clear error: wrong method (405), a parameter or a body (400), counted', async () => {
    const { h, c, url } = await endpoint();
    const get = await fetch(`${url}/takeover`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(await get.text()).toMatch(/POST only/);
    expect((await fetch(`${url}/status`, { method: 'POST' })).status).toBe(405); // a query is not a command
    const q = await fetch(`${url}/takeover?force=1`, { method: 'POST' });
    expect(q.status).toBe(400);
    expect((await q.json()).error).toMatch(/takes no parameters/);
    const body = await rawRequest(c.address().port, 'POST /release HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc');
    expect(body).toMatch(/^HTTP\/1\.1 400 /);
    expect(c.stats).toMatchObject({ methodNotAllowed: 2, badRequests: 2, commands: 0 });
    expect(h.gw.role).toBe('standby'); // none of them did anything
  });

  it('refuses both commands on a gateway run without --standby (409), which stays active', async () => {
    const { h, c, url } = await endpoint(false);
    for (const cmd of ['takeover', 'release']) {
      const r = await fetch(`${url}/${cmd}`, { method: 'POST' });
      expect(r.status).toBe(409);
      expect((await r.json()).error).toMatch(/without --standby/);
    }
    expect(c.stats.conflicts).toBe(2);
    expect(h.gw.role).toBe('active');
  });

  it('a failed takeover is answered 503 with the reason; the gateway stays standby', async () => {
    const { h, c, url } = await endpoint();
    h.log.listActive = () => {
      throw new Error('log server silent');
    };
    const r = await fetch(`${url}/takeover`, { method: 'POST' });
    expect(r.status).toBe(503);
    expect(await r.json()).toMatchObject({ role: 'standby', error: expect.stringContaining('log server silent') });
    expect(c.stats.commandFailures).toBe(1);
  });
});

describe('ftcp gateway takeover|release and --standby on the command line', () => {
  beforeAll(() => ensureBuilt(), 180_000);

  it('takeover and release print the report and exit 0; a refusal exits 1 with the reason', async () => {
    const { at } = await endpoint();
    const t = await runCli(['gateway', 'takeover', '--control', at]);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^role active: the log has no epochs \(NOT fenced\); 0 connection\(s\) adopted .* in [\d.]+ ms \(claim [\d.]+ ms, adopt [\d.]+ ms\)/);
    const rl = await runCli(['gateway', 'release', '--control', at, '--json']);
    expect(rl.code).toBe(0);
    expect(JSON.parse(rl.stdout)).toEqual({ role: 'standby', left: 0, already: false });
    const { at: plain } = await endpoint(false);
    const no = await runCli(['gateway', 'takeover', '--control', plain]);
    expect(no.code).toBe(1);
    expect(no.stderr).toMatch(/answered 409.*without --standby/);
    expect((await runCli(['gateway', 'takeover'])).stderr).toMatch(/--control .* is required/);
  }, 60_000);

  it('--standby is refused with a log another host cannot share, or without --control (exit 2, before creating anything)', async () => {
    expect(() => standbyOptions('embedded', true, undefined)).toThrow(/memory log dies with its process/);
    expect(() => standbyOptions('embedded:memory', true, undefined)).toThrow(UsageError);
    expect(() => standbyOptions('embedded:disk:/var/lib/ftcp', true, undefined)).toThrow(/disk log is local to one host/);
    expect(() => standbyOptions('udp://198.18.3.2:7000', false, undefined)).toThrow(/--standby needs --control/);
    expect(() => standbyOptions('udp://198.18.3.2:7000', true, '0.01')).toThrow(/--standby-refresh/);
    expect(standbyOptions('udp://198.18.3.2:7000', true, undefined)).toEqual({ refreshMs: 1000 });
    expect(standbyOptions('udp://198.18.3.2:7000', true, '0.25')).toEqual({ refreshMs: 250 });
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const base = ['gateway', '--tun', 'ftcpx0', '--protect', '198.18.2.2:5001', '--control', '7070'];
      expect(await main([...base, '--standby'])).toBe(2);
      expect(await main([...base, '--standby', '--log', 'embedded:disk:/tmp/x'])).toBe(2);
      expect(await main([...base, '--standby-refresh', '1'])).toBe(2);
      const text = err.mock.calls.map((c) => String(c[0])).join('');
      expect(text).toContain('the memory log dies with its process');
      expect(text).toContain('the disk log is local to one host');
      expect(text).toContain('--standby-refresh needs --standby');
    } finally {
      err.mockRestore();
    }
  });

  it('says what a report means in one line', () => {
    expect(reportLine('takeover', { role: 'active', epoch: 7, adopted: 3, translated: 1, rebuilding: 1, totalMs: 12.5, claimMs: 2, adoptMs: 10.5, already: false }))
      .toBe('role active: epoch 7; 3 connection(s) adopted (1 translated, 1 rebuilding) in 12.5 ms (claim 2 ms, adopt 10.5 ms)');
    expect(reportLine('release', { role: 'standby', left: 2, already: false })).toBe('role standby: released, 2 connection(s) left to the log');
  });
});
