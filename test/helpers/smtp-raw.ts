/** A minimal raw SMTP client for tests that must control the exact moment of each byte. */
import net from 'node:net';

export interface RawSmtp {
  /** Sends a command line and resolves with the complete reply (all continuation lines). */
  cmd(line: string): Promise<string>;
  write(data: Buffer | string): void;
  /** Resolves with the next complete reply. */
  reply(): Promise<string>;
  /** Resolves when the connection is closed by the other side (or errors). */
  closed: Promise<string>;
  end(): void;
}

export async function rawSmtp(port: number): Promise<RawSmtp> {
  const sock = net.connect({ port, host: '127.0.0.1' });
  let buf = '';
  const waiters: Array<() => void> = [];
  sock.on('data', (d) => {
    buf += d.toString('latin1');
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise<string>((resolve) => {
    sock.on('error', (e) => resolve(`error: ${e.message}`));
    sock.on('close', () => resolve('closed'));
  });
  closed.then(() => waiters.splice(0).forEach((w) => w()));
  function reply(): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = /^(?:\d{3}-.*\r\n)*\d{3} .*\r\n/.exec(buf);
        if (m) {
          buf = buf.slice(m[0].length);
          resolve(m[0]);
        } else if (sock.destroyed) reject(new Error(`connection closed; pending: ${buf}`));
        else waiters.push(check);
      };
      check();
    });
  }
  const greeting = await reply();
  if (!greeting.startsWith('220')) throw new Error(`bad greeting ${greeting}`);
  return {
    cmd(line) {
      sock.write(line + '\r\n');
      return reply();
    },
    write: (d) => void sock.write(d),
    reply,
    closed,
    end: () => sock.destroy(),
  };
}
