// Half-closed clients get their 250: a client that pipelines "." + QUIT and closes its sending side
// (Exim) must see the reply to DATA before the connection closes, on a dual-stack listener (IPv4 peers
// appear as ::ffff:a.b.c.d on the socket) and over STARTTLS (close_notify + FIN on the TLS socket).
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SmtpListenerConfig } from '../../src/config/schema.js';
import type { Enqueue } from '../../src/send/types.js';
import { listFiles } from './send-fixture.js';
import { listenerConfig as config, listenerHarness } from './smtp-fixture.js';

const h = listenerHarness();
let tlsDir: string;
beforeAll(() => {
  tlsDir = path.join(h.w.dir, '..', `fp-halfclose-tls-${process.pid}`);
  mkdirSync(tlsDir, { recursive: true });
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=mx.test',
    '-keyout', path.join(tlsDir, 'key.pem'), '-out', path.join(tlsDir, 'cert.pem')], { stdio: 'ignore' });
});
afterAll(() => rmSync(tlsDir, { recursive: true, force: true }));

const MESSAGE = 'From: a@example.org\r\nTo: b@example.net\r\nSubject: half-close\r\n\r\nbody\r\n';

/** An Enqueue whose durable write takes a while: the client's FIN arrives long before the 250. */
function slowEnqueue(): Enqueue {
  const inner = h.enqueue();
  return {
    async submit(env, msg) {
      const r = await inner.submit(env, msg);
      await new Promise((res) => setTimeout(res, 300));
      return r;
    },
  };
}

const start = (cfg: SmtpListenerConfig): Promise<{ host: string; port: number }> => h.start(cfg, { enqueue: slowEnqueue() });

/** Can this machine bind "::" dual-stack and reach it over IPv4? (Debian 12 with IPv6 loopback: yes.) */
async function dualStackWorks(): Promise<boolean> {
  const srv = net.createServer((s) => s.destroy());
  try {
    await new Promise<void>((res, rej) => srv.once('error', rej).listen({ host: '::', port: 0, ipv6Only: false }, res));
    const { port } = srv.address() as net.AddressInfo;
    await new Promise<void>((res, rej) => net.connect(port, '127.0.0.1').once('connect', function (this: net.Socket) {
      this.destroy();
      res();
    }).once('error', rej));
    return true;
  } catch {
    return false;
  } finally {
    srv.close();
  }
}

/** Reads from `sock` until `re` matches what arrived since the last call. */
function reader(sock: net.Socket | tls.TLSSocket) {
  let buf = '';
  let all = '';
  const waiters: Array<() => void> = [];
  sock.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    all += d.toString('latin1');
    waiters.splice(0).forEach((f) => f());
  });
  return {
    async until(re: RegExp): Promise<void> {
      while (!re.test(buf)) await new Promise<void>((r) => waiters.push(r));
      buf = '';
    },
    all: () => all,
  };
}

const closed = (sock: net.Socket) => new Promise<void>((res) => sock.once('close', () => res()));
const packets = () => listFiles(h.w.tree).filter((f) => f.endsWith('.pgp'));

describe('half-closed clients get the reply to DATA', () => {
  it('dual-stack listener ("::"), IPv4 client: "." + QUIT + FIN gets 250 then 221, one packet', async () => {
    const dual = await dualStackWorks();
    // Without IPv6 the mapped-address case cannot arise; the pipeline is still checked on 127.0.0.1.
    if (!dual) console.warn('IPv6 dual-stack unavailable: testing on 127.0.0.1 only');
    const { host, port } = await start(config({ listen: [{ host: dual ? '::' : '127.0.0.1', port: 0 }] }));
    expect(host).toBe(dual ? '::' : '127.0.0.1');
    const sock = net.connect(port, '127.0.0.1');
    const r = reader(sock);
    const done = closed(sock);
    await r.until(/^220 .*\r\n/m);
    sock.write('EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n');
    await r.until(/^354 /m);
    sock.end(`${MESSAGE}.\r\nQUIT\r\n`);
    await done;
    expect(r.all()).toMatch(/\r\n250 2\.0\.0 Ok: queued as [a-z2-7]{26}\r\n221 /);
    expect(packets()).toHaveLength(1);
  });

  for (const quit of [true, false]) {
    it(`STARTTLS: "."${quit ? ' + QUIT' : ''} then close_notify + FIN gets 250${quit ? ' then 221' : ''}, one packet`, async () => {
      const { port } = await start(config({ tls: { key: path.join(tlsDir, 'key.pem'), cert: path.join(tlsDir, 'cert.pem') } }));
      const raw = net.connect(port, '127.0.0.1');
      const plain = reader(raw);
      await plain.until(/^220 .*\r\n/m);
      raw.write('EHLO c.test\r\n');
      await plain.until(/^250 .*\r\n/m);
      raw.write('STARTTLS\r\n');
      await plain.until(/^220 .*\r\n/m);
      raw.removeAllListeners('data');
      // allowHalfOpen (not in the typings): the client still reads after its end().
      const t = tls.connect({ socket: raw, rejectUnauthorized: false, allowHalfOpen: true } as tls.ConnectionOptions);
      await new Promise((res) => t.once('secureConnect', res));
      const r = reader(t);
      const done = closed(t);
      t.write('EHLO c.test\r\n');
      await r.until(/^250 .*\r\n/m);
      t.write('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n');
      await r.until(/^354 /m);
      t.end(`${MESSAGE}.\r\n${quit ? 'QUIT\r\n' : ''}`); // write-only TLS shutdown, as Exim does
      await done;
      expect(r.all()).toMatch(quit ? /\r\n250 2\.0\.0 Ok: queued as [a-z2-7]{26}\r\n221 / : /\r\n250 2\.0\.0 Ok: queued as [a-z2-7]{26}\r\n$/);
      expect(packets()).toHaveLength(1);
    });
  }
});

describe('a client that closes in the middle of a message', () => {
  it('FIN after 354 and half a body: the connection and the message end at once, not at the idle timeout', async () => {
    // memory_spool_limit below the body: the message goes to a spool file, which must not stay behind.
    const { port } = await h.start(config({ socket_timeout: 60_000, memory_spool_limit: 1_000 }));
    const sock = net.connect(port, '127.0.0.1');
    const r = reader(sock);
    const done = closed(sock);
    await r.until(/^220 .*\r\n/m);
    sock.write('EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n');
    await r.until(/^354 /m);
    sock.end(`${MESSAGE}${'x'.repeat(5_000)}\r\n`); // no final ".": the client gave up
    const t0 = Date.now();
    await done;
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(packets()).toHaveLength(0);
    const t1 = Date.now();
    await h.stop(); // nothing in hand holds the listener's close
    expect(Date.now() - t1).toBeLessThan(5_000);
    expect(listFiles(h.w.spool)).toEqual([]);
  });
});
