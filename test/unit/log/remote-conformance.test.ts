/**
 * The LogStore suite (suite.ts) against RemoteLog → loopback UDP (two sockets, two paths)
 * → UdpLogServer → MemoryLog: the remote log behaves as the embedded ones do.
 */
import { randomBytes } from 'node:crypto';
import { MemoryLog } from '../../../src/log/memory.js';
import { LogServer, UdpLogServer } from '../../../src/log/remote/server.js';
import { connectUdp } from '../../../src/log/remote/client.js';
import { logSuite } from './suite.js';

logSuite(
  'RemoteLog (UDP loopback, memory server)',
  async (options) => {
    const key = randomBytes(32);
    const store = new MemoryLog(options);
    const server = new LogServer({ store });
    const udp = await UdpLogServer.listen({ server, key, listen: [{ address: '127.0.0.1', port: 0 }, { address: '127.0.0.1', port: 0 }] });
    const log = connectUdp({
      key,
      servers: [udp.address(0), udp.address(1)],
      local: [{ address: '127.0.0.1', port: 0 }, { address: '127.0.0.1', port: 0 }],
      ...(options?.maxHeldBytes !== undefined ? { maxHeldBytes: options.maxHeldBytes } : {}),
    });
    return {
      log,
      cleanup: async () => {
        await log.shutdown();
        await udp.close();
        await store.shutdown();
      },
    };
  },
  { propertyRuns: 15, asyncStatus: true },
);
