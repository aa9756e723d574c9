import net from 'node:net';

/** A throwaway TCP server on 127.0.0.1 with an ephemeral port, for faulty-server tests. */
export async function rawServer(onConn: (sock: net.Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    onConn(sock);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Sends `input` on a fresh connection, half-closes, and returns everything received until EOF. */
export function converse(port: number, input: Buffer | string, halfClose = true): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    sock.on('connect', () => {
      sock.write(input);
      if (halfClose) sock.end();
    });
    sock.on('data', (b: Buffer) => chunks.push(b));
    sock.on('end', () => {
      sock.end();
      resolve(Buffer.concat(chunks));
    });
    sock.on('error', reject);
  });
}

/** Resolves once `sock` has received `needle` (or rejects on close). */
export function readUntil(sock: net.Socket, needle: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let acc = '';
    const onData = (b: Buffer) => {
      acc += b.toString('utf8');
      if (acc.includes(needle)) {
        sock.off('data', onData);
        resolve(acc);
      }
    };
    sock.on('data', onData);
    sock.once('close', () => reject(new Error(`closed before '${needle}'; got ${JSON.stringify(acc)}`)));
  });
}

/** A port that nothing listens on (bound then released). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
