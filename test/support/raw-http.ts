/** A raw HTTP exchange for the control endpoint's tests: bytes fetch() would not send (half-sent requests, a body on a GET). */
import net from 'node:net';

/** Opens a connection to 127.0.0.1:`port`, writes `bytes`, and resolves with everything read once the server closes it. */
export function rawRequest(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err)));
    s.on('close', () => resolve(got));
    s.on('connect', () => s.write(bytes));
  });
}
