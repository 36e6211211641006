/** Shared by the SMTP listener tests: a listener config with test defaults, and a raw SMTP client. */
import net from 'node:net';
import type { SmtpListenerConfig } from '../../src/config/schema.js';

export function listenerConfig(over: Partial<SmtpListenerConfig> = {}): SmtpListenerConfig {
  return {
    listen: [{ host: '127.0.0.1', port: 0 }],
    banner: 'ferrypost ESMTP',
    max_size: 100_000,
    max_recipients: 3,
    max_clients: 10,
    allowed_networks: ['127.0.0.0/8', '::1/128'],
    memory_spool_limit: 1 << 20,
    socket_timeout: 10_000,
    ...over,
  };
}

/** A raw SMTP client: cmd() sends a line, data() raw bytes; each resolves with the complete (multi-line) reply. */
export async function rawClient(port: number) {
  const sock = net.connect(port, '127.0.0.1');
  let buf = '';
  const waiters: Array<() => void> = [];
  sock.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    waiters.splice(0).forEach((f) => f());
  });
  const reply = async (): Promise<string> => {
    for (;;) {
      const m = /^(?:\d{3}-.*\r\n)*\d{3} .*\r\n/.exec(buf);
      if (m) {
        buf = buf.slice(m[0].length);
        return m[0].trimEnd();
      }
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  const greeting = await reply();
  return {
    greeting,
    async cmd(line: string): Promise<string> {
      sock.write(`${line}\r\n`);
      return reply();
    },
    async data(bytes: Buffer): Promise<string> {
      sock.write(bytes);
      return reply();
    },
    close: () => sock.destroy(),
  };
}
