// Loopback port helpers for tests: find a free port, wait until something listens on one.
// freePort rejects if the kernel gives no port; waitForPort rejects with the last connect error on timeout.
import net from 'node:net';

/** A port that was free a moment ago on 127.0.0.1 (listen on :0, read, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('freePort: no TCP address'));
        return;
      }
      const { port } = addr;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

function tryConnect(port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    sock.once('connect', () => {
      sock.destroy();
      resolve();
    });
    sock.once('error', (err) => {
      sock.destroy();
      reject(err);
    });
  });
}

/** Resolves once a TCP connect to 127.0.0.1:port succeeds; rejects after timeoutMs. */
export async function waitForPort(port: number, timeoutMs = 10_000, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      await tryConnect(port, host);
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`waitForPort: nothing listening on ${host}:${port} after ${timeoutMs} ms (${String(last)})`);
}
