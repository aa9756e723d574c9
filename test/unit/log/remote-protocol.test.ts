/** The log protocol's encodings: golden bytes for the binary messages, round trips, malformed input. */
import { describe, expect, it } from 'vitest';
import {
  decode, encodeAppend, encodeData, encodeFin, encodeGc, encodeRead, encodeReply, encodeRequest, encodeStable, encodeStatus,
  metaFromWire, metaToWire, T_APPEND, T_STABLE,
} from '../../../src/log/remote/protocol.js';
import { createLog, parseUdpSpec } from '../../../src/log/index.js';
import { openMeta } from './helpers.js';

describe('log protocol', () => {
  it('append: golden bytes and round trip beyond 4 GiB', () => {
    const b = encodeAppend(7, 0x1_0000_0002, Buffer.from('hi'));
    expect(b.toString('hex')).toBe('01' + '00000007' + '00000001' + '00000002' + '6869');
    const d = decode(b);
    expect(d).toMatchObject({ t: T_APPEND, id: 7, offset: 0x1_0000_0002 });
    expect(d && d.t === T_APPEND && d.data.toString()).toBe('hi');
  });

  it('stable: golden bytes and round trip', () => {
    const b = encodeStable([[1, 5], [2, 2 ** 40]]);
    expect(b.toString('hex')).toBe('81' + '0002' + '00000001' + '0000000000000005' + '00000002' + '0000010000000000');
    expect(decode(b)).toEqual({ t: T_STABLE, entries: [[1, 5], [2, 2 ** 40]] });
  });

  it('every message round trips', () => {
    expect(decode(encodeFin(3, 10))).toEqual({ t: 0x02, id: 3, offset: 10 });
    expect(decode(encodeGc(3, 11))).toEqual({ t: 0x03, id: 3, offset: 11 });
    expect(decode(encodeRead(9, 3, 100, 200))).toEqual({ t: 0x04, reqId: 9, id: 3, start: 100, end: 200 });
    expect(decode(encodeData(9, Buffer.from('xyz')))).toMatchObject({ t: 0x82, reqId: 9 });
    const m = openMeta();
    const req = decode(encodeRequest(4, { op: 'open', meta: metaToWire(m), gcThrough: 0 }));
    expect(req).toMatchObject({ t: 0x10, reqId: 4, req: { op: 'open' } });
    if (req?.t === 0x10 && req.req.op === 'open') {
      const back = metaFromWire(req.req.meta);
      expect(back.client).toEqual(m.client);
      expect(Buffer.from(back.clientSynOptions).equals(Buffer.from(m.clientSynOptions))).toBe(true);
    }
    expect(decode(encodeReply(4, { ok: false, code: 'FTCP_X', message: 'no' }))).toMatchObject({ reply: { ok: false, code: 'FTCP_X' } });
    expect(decode(encodeStatus({ status: 'LOW-SPACE' }))).toEqual({ t: 0x91, status: { status: 'LOW-SPACE' } });
  });

  it('malformed messages decode to null', () => {
    expect(decode(Buffer.alloc(0))).toBeNull();
    expect(decode(Buffer.from([0x01, 0, 0]))).toBeNull(); // short APPEND
    expect(decode(Buffer.from([0x81, 0, 2, 0]))).toBeNull(); // STABLE count vs length
    expect(decode(Buffer.from([0x10, 0, 0, 0, 1, 0x7b]))).toBeNull(); // bad JSON
    expect(decode(encodeRequest(1, { op: 'nope' } as never))).toBeNull();
    expect(decode(Buffer.from([0x55, 1, 2, 3]))).toBeNull();
  });

  it('udp: log specs parse and bad ones are refused', async () => {
    expect(parseUdpSpec('udp://198.18.3.2:7500,198.18.4.2:7500')).toEqual([
      { address: '198.18.3.2', port: 7500 },
      { address: '198.18.4.2', port: 7500 },
    ]);
    for (const bad of ['udp://', 'udp://1.2.3.4', 'udp://1.2.3.4:0', 'udp://1.2.3.999:5', 'udp://1.1.1.1:1,2.2.2.2:2,3.3.3.3:3']) {
      expect(() => createLog(bad)).toThrow(expect.objectContaining({ code: 'FTCP_BAD_LOG_SPEC' }));
    }
    const log = createLog('udp://127.0.0.1:9', { key: Buffer.alloc(32, 1) });
    expect(log.status()).toBe('OK');
    await log.shutdown();
  });
});
