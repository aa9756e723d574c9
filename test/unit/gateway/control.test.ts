/**
 * The control endpoint off the clients' side and bounded (issue 11, item 7): a connection whose
 * replies would leave by a steered interface is closed at accept; half-sent requests are closed by the headers
 * timeout; connections past the cap are closed at accept; headers are small; GET only, no
 * body; /status pages its flow list; an optional bearer token; every refusal counted in
 * /status and /metrics. A real HTTP server on 127.0.0.1 (port 0) in front of a Gateway on
 * a FakeTun (test/unit/recovery/harness.ts).
 */
import { describe, it, expect, afterEach, beforeAll } from 'vitest';
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Harness, Client } from '../../support/gateway-harness.js';
import { startControl, loadControlToken, parseControlUrl, controlExposure, ClientSideGuard, type ControlEndpoint, type ControlLimits, type RouteSource } from '../../../src/gateway/control.js';
import { FLOW_PAGE } from '../../../src/gateway/flow-page.js';
import { runCli } from '../../support/cli.js';
import { ensureBuilt } from '../../support/build.js';
import { rawRequest } from '../../support/raw-http.js';

const open: ControlEndpoint[] = [];
const tmp: string[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
  for (const d of tmp.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function endpoint(h: Harness, o: { token?: Buffer; limits?: Partial<ControlLimits> } = {}): Promise<{ c: ControlEndpoint; url: string }> {
  const c = await startControl(h.gw, { addr: '127.0.0.1', port: 0, token: o.token ?? null, limits: o.limits });
  open.push(c);
  return { c, url: `http://127.0.0.1:${c.address().port}` };
}

/** `n` client SYNs from ports 30000.. : n half-open flows in the table. */
function flows(h: Harness, n: number): void {
  for (let i = 0; i < n; i++) h.send(new Client({ isn: 1000 + i, ts: 1, port: 30000 + i }).syn());
}

describe('control endpoint: bounded', () => {
  it('closes a half-sent request at the headers timeout (408), counted', async () => {
    const h = new Harness();
    const { c } = await endpoint(h, { limits: { headersTimeoutMs: 300, checkIntervalMs: 50 } });
    const got = await rawRequest(c.address().port, 'GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: '); // never ends
    expect(got).toMatch(/^HTTP\/1\.1 408 /);
    expect(c.stats.timedOut).toBe(1);
    expect(c.connections()).toBe(0);
  });

  it('closes a connection that sends nothing at the headers timeout', async () => {
    const h = new Harness();
    const { c } = await endpoint(h, { limits: { headersTimeoutMs: 300, checkIntervalMs: 50 } });
    await rawRequest(c.address().port, '');
    expect(c.stats.timedOut).toBe(1);
  });

  it('500 half-sent requests: those past the connection cap are closed at accept, the rest at the timeout; all counted', async () => {
    const h = new Harness();
    const { c } = await endpoint(h, { limits: { headersTimeoutMs: 500, checkIntervalMs: 50, maxConnections: 32 } });
    const all = await Promise.all(Array.from({ length: 500 }, () => rawRequest(c.address().port, 'GET /status HTTP/1.1\r\n')));
    expect(all).toHaveLength(500);
    expect(c.stats.overCapacity + c.stats.timedOut).toBe(500);
    expect(c.stats.timedOut).toBeGreaterThanOrEqual(32); // the 32 admitted at first, and any admitted as others closed
    expect(c.connections()).toBe(0);
  });

  it('refuses request lines and headers over maxHeaderBytes (431), counted', async () => {
    const h = new Harness();
    const { c } = await endpoint(h);
    const got = await rawRequest(c.address().port, `GET /status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`);
    expect(got).toMatch(/^HTTP\/1\.1 431 /);
    expect(c.stats.headersTooLarge).toBe(1);
  });

  it('answers GET only (405), and no request body (400)', async () => {
    const h = new Harness();
    const { c, url } = await endpoint(h);
    expect((await fetch(`${url}/status`, { method: 'POST', body: 'x' })).status).toBe(405);
    expect((await fetch(`${url}/status`, { method: 'DELETE' })).status).toBe(405);
    const got = await rawRequest(c.address().port, 'GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello');
    expect(got).toMatch(/^HTTP\/1\.1 400 /);
    expect(c.stats.methodNotAllowed).toBe(2);
    expect(c.stats.badRequests).toBe(1);
    expect((await fetch(`${url}/nothing`)).status).toBe(404);
    expect(c.stats.notFound).toBe(1);
  });
});

describe('control endpoint: paged /status', () => {
  it('gives a page of the flow list with the total and the next offset', async () => {
    const h = new Harness();
    flows(h, 250);
    expect(h.gw.table.size).toBe(250);
    const { url } = await endpoint(h);
    const first = await (await fetch(`${url}/status`)).json();
    expect(first.flows).toHaveLength(FLOW_PAGE.dflt);
    expect(first.flowsPage).toEqual({ offset: 0, limit: FLOW_PAGE.dflt, total: 250, next: FLOW_PAGE.dflt });
    expect(first.connections).toBe(250);
    const last = await (await fetch(`${url}/status?offset=200&limit=100`)).json();
    expect(last.flows).toHaveLength(50);
    expect(last.flowsPage).toEqual({ offset: 200, limit: 100, total: 250, next: null });
    // the pages cover the table once, in order
    const seen: string[] = [];
    for (let off: number | null = 0; off !== null; ) {
      const p = await (await fetch(`${url}/status?offset=${off}&limit=70`)).json();
      seen.push(...p.flows.map((f: { flow: string }) => f.flow));
      off = p.flowsPage.next;
    }
    expect(new Set(seen).size).toBe(250);
  });

  it('refuses a limit past the maximum, a bad or unknown parameter (400)', async () => {
    const h = new Harness();
    const { c, url } = await endpoint(h);
    for (const q of [`limit=${FLOW_PAGE.max + 1}`, 'limit=0', 'offset=-1', 'offset=1e3', 'limit=10&limit=20', 'foo=1', 'gc=2']) {
      expect((await fetch(`${url}/status?${q}`)).status, q).toBe(400);
    }
    expect((await fetch(`${url}/metrics?offset=1`)).status).toBe(400);
    expect(c.stats.badRequests).toBe(8);
    expect((await fetch(`${url}/status?limit=${FLOW_PAGE.max}&offset=0&gc=1`)).status).toBe(200);
  });

  it('parses the request target strictly', () => {
    expect(parseControlUrl('/status')).toEqual({ path: '/status', offset: 0, limit: FLOW_PAGE.dflt, gc: false });
    expect(parseControlUrl('/status?offset=5&limit=7')).toEqual({ path: '/status', offset: 5, limit: 7, gc: false });
    expect(parseControlUrl('/metrics')).toEqual({ path: '/metrics' });
    expect(parseControlUrl('/status/')).toMatchObject({ status: 404 });
    expect(parseControlUrl('http://evil/status')).toMatchObject({ status: 404 });
  });
});

describe('control endpoint: bearer token', () => {
  function tokenFile(mode: number, text: string): string {
    const d = mkdtempSync(join(tmpdir(), 'ftcp-ctl-'));
    tmp.push(d);
    const f = join(d, 'token');
    writeFileSync(f, text);
    chmodSync(f, mode);
    return f;
  }

  it('401 without the token or with a wrong one, 200 with it; counted', async () => {
    const h = new Harness();
    const token = loadControlToken(tokenFile(0o600, 'sekrit-token-0123456789\n'));
    expect(token.toString()).toBe('sekrit-token-0123456789');
    const { c, url } = await endpoint(h, { token });
    const none = await fetch(`${url}/status`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer sekrit-token-0123456788' } })).status).toBe(401);
    expect((await fetch(`${url}/status`, { headers: { authorization: 'Basic c2Vrcml0' } })).status).toBe(401);
    expect((await fetch(`${url}/status`, { method: 'POST', headers: { authorization: 'Bearer x' } })).status).toBe(401); // nothing said before the token
    expect(c.stats.unauthorized).toBe(4);
    const ok = await fetch(`${url}/status`, { headers: { authorization: 'Bearer sekrit-token-0123456789' } });
    expect(ok.status).toBe(200);
    expect((await ok.json()).control).toMatchObject({ token: true, unauthorized: 4 });
  });

  it('refuses a token file others can read, and a short token', () => {
    expect(() => loadControlToken(tokenFile(0o644, 'sekrit-token-0123456789'))).toThrow(/mode 0644.*chmod 600/);
    expect(() => loadControlToken(tokenFile(0o600, 'short'))).toThrow(/at least 16/);
    expect(() => loadControlToken(tokenFile(0o600, 'has a space in it, long enough'))).toThrow(/without spaces/);
  });
});

describe('control endpoint: not on the clients\' side', () => {
  // The gateway of the lab: clients on gc0 (198.18.1.0/24 and beyond, by default), servers on gs0,
  // a management interface mg0. Replies to a connection leave by the route back to its source.
  const LAB: RouteSource = async () => ({
    routes: [
      { dst: 'default', dev: 'gc0' },
      { dst: '198.18.1.0/24', dev: 'gc0' },
      { dst: '198.18.2.0/24', dev: 'gs0' },
      { dst: '10.9.0.0/16', dev: 'mg0' },
      { dst: '10.9.8.7', dev: 'gs0' }, // a host route wins over the /16
    ],
    local: ['127.0.0.1', '198.18.1.1', '198.18.2.1', '10.9.0.1'],
  });

  it('the reverse-path check: the clients\' and servers\' side refused, the management side and the gateway itself answered', async () => {
    const g = await ClientSideGuard.start(['gc0', 'gs0'], LAB);
    expect(g.fromClientSide('198.18.1.2')).toBe(true); // a client
    expect(g.fromClientSide('203.0.113.9')).toBe(true); // a client beyond a router (the default route)
    expect(g.fromClientSide('::ffff:198.18.2.2')).toBe(true); // a server
    expect(g.fromClientSide('10.9.3.4')).toBe(false); // the management network
    expect(g.fromClientSide('10.9.8.7')).toBe(true); // longest prefix: this host is routed to gs0
    expect(g.fromClientSide('127.0.0.1')).toBe(false); // the gateway itself
    expect(g.fromClientSide('198.18.2.1')).toBe(false); // the gateway itself, from its own server-side address
    g.stop();
    const none = await ClientSideGuard.start([], LAB);
    expect(none.fromClientSide('198.18.1.2')).toBe(false); // nothing steered: nothing refused
  });

  it('closes a connection from a steered interface\'s side at accept, before reading it; counted', async () => {
    const h = new Harness();
    // As if 127.0.0.1 were a client: the route back to it leaves by the steered 'gc0', and it is not ours.
    const routes: RouteSource = async () => ({ routes: [{ dst: '127.0.0.0/8', dev: 'gc0' }], local: [] });
    const c = await startControl(h.gw, { addr: '127.0.0.1', port: 0, steer: ['gc0'], routes });
    open.push(c);
    const got = await rawRequest(c.address().port, 'GET /status HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(got).toBe(''); // not a byte of status
    expect(c.stats.clientSide).toBe(1);
    expect(c.stats.requests).toBe(0);
    // the same endpoint with the route back on a management interface answers
    const mgmt = await startControl(h.gw, { addr: '127.0.0.1', port: 0, steer: ['gc0'], routes: async () => ({ routes: [{ dst: '127.0.0.0/8', dev: 'lo' }], local: [] }) });
    open.push(mgmt);
    expect(await rawRequest(mgmt.address().port, 'GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('warns when the address is the wildcard or on a steered interface', () => {
    expect(controlExposure('0.0.0.0', [])).toMatch(/every address/);
    expect(controlExposure('127.0.0.1', ['lo'])).toMatch(/127\.0\.0\.1 is an address of lo/);
    expect(controlExposure('127.0.0.1', ['gc0'])).toBeNull();
  });
});

describe('control endpoint: counters', () => {
  it('shows its counters and limits in /status and /metrics', async () => {
    const h = new Harness();
    const { url } = await endpoint(h);
    await fetch(`${url}/nope`);
    const st = await (await fetch(`${url}/status`)).json();
    expect(st.control).toMatchObject({ listen: expect.stringMatching(/^127\.0\.0\.1:\d+$/), token: false, notFound: 1, requests: 2 });
    expect(st.limits).toMatchObject({ controlHeadersTimeoutMs: 5000, controlMaxConnections: 32, controlMaxHeaderBytes: 4096 });
    const m = await (await fetch(`${url}/metrics`)).text();
    expect(m).toContain('ftcp_control_not_found_total 1');
    expect(m).toContain('ftcp_control_timed_out_total 0');
    expect(m).toContain('ftcp_limit{name="controlRequestTimeoutMs"} 10000');
  });
});

describe('ftcp status against a control endpoint', () => {
  beforeAll(() => ensureBuilt(), 120_000);

  it('pages (--offset/--limit, --all) and sends the token (--token-file)', async () => {
    const h = new Harness();
    flows(h, 1200);
    const d = mkdtempSync(join(tmpdir(), 'ftcp-ctl-'));
    tmp.push(d);
    const f = join(d, 'token');
    writeFileSync(f, 'abcdefghijklmnopqrstuvwxyz\n', { mode: 0o600 });
    const { c } = await endpoint(h, { token: loadControlToken(f) });
    const at = `127.0.0.1:${c.address().port}`;
    const refused = await runCli(['status', '--control', at]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/answered 401 \(it requires a token: --token-file F\)/);
    const text = await runCli(['status', '--control', at, '--token-file', f, '--offset', '1190']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('flows 1191-1200 of 1200');
    expect(text.stdout.split('\n').filter((l) => l.startsWith('  198.18.1.2:'))).toHaveLength(10);
    const page = await runCli(['status', '--control', at, '--token-file', f, '--limit', '5']);
    expect(page.stdout).toContain('flows 1-5 of 1200 (next page: --offset 5, or --all)');
    const all = await runCli(['status', '--control', at, '--token-file', f, '--all', '--json']);
    expect(all.code).toBe(0);
    const st = JSON.parse(all.stdout);
    expect(st.flows).toHaveLength(1200);
    expect(new Set(st.flows.map((x: { flow: string }) => x.flow)).size).toBe(1200);
    expect(st.flowsPage).toMatchObject({ offset: 0, total: 1200, next: null });
    expect((await runCli(['status', '--control', at, '--limit', '1001'])).code).toBe(2);
  }, 60_000);
});
