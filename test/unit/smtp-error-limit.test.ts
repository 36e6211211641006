/**
 * A client that keeps failing is slowed and then cut off, as Postfix's smtpd error limits do: three
 * failed AUTHs end the session (421), refused recipients from an untrusted client are answered late
 * past the soft limit and end the session at the hard limit; the site's own MTA is never slowed.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { HARD_ERROR_LIMIT, SOFT_ERROR_LIMIT } from '../../src/smtp/error-limit.js';
import { createSmtpListener, type SmtpListener } from '../../src/smtp/server.js';
import { listenerConfig, listenerHarness } from './smtp-fixture.js';

const h = listenerHarness();
let dir: string;
let listener: SmtpListener | undefined;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'fp-errlimit-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=mx.test', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
  writeFileSync(path.join(dir, 'users'), `bob:{SHA256}${createHash('sha256').update('s3cret').digest('hex')}\n`);
});
afterEach(async () => {
  await listener?.close();
  listener = undefined;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SLEEP_MS = 200;

async function start(allowed: string[]): Promise<number> {
  const cfg = listenerConfig({ allowed_networks: allowed, max_recipients: 1000, tls: { key: path.join(dir, 'key.pem'), cert: path.join(dir, 'cert.pem') }, auth_users_file: path.join(dir, 'users') });
  listener = createSmtpListener({ config: cfg, enqueue: h.enqueue(), router: h.w.router, peerProblem: () => undefined, hostname: 'mx.test', errorSleepMs: SLEEP_MS });
  return (await listener.listen())[0]!.port;
}

/** A line-reply client over a socket that may be upgraded to TLS. */
function client(sock: net.Socket | tls.TLSSocket) {
  let buf = '';
  let closed = false;
  const waiters: Array<() => void> = [];
  sock.on('data', (d) => ((buf += d.toString('latin1')), waiters.splice(0).forEach((w) => w())));
  sock.on('close', () => ((closed = true), waiters.splice(0).forEach((w) => w())));
  const reply = (): Promise<string> => new Promise((resolve, reject) => {
    const check = () => {
      const m = /^(?:\d{3}-.*\r\n)*\d{3} .*\r\n/.exec(buf);
      if (m) {
        buf = buf.slice(m[0].length);
        resolve(m[0].trim());
      } else if (closed) reject(new Error('closed'));
      else waiters.push(check);
    };
    check();
  });
  return { reply, cmd: (l: string) => (sock.write(`${l}\r\n`), reply()), isClosed: () => closed, sock };
}

it('three failed AUTHs over STARTTLS: 535, 535, then 421 and the connection is closed', async () => {
  const port = await start(['10.0.0.0/8']);
  const plain = net.connect(port, '127.0.0.1');
  const p = client(plain);
  expect(await p.reply()).toMatch(/^220 /);
  await p.cmd('EHLO client.test');
  expect(await p.cmd('STARTTLS')).toMatch(/^220 /);
  plain.removeAllListeners('data');
  const secure = tls.connect({ socket: plain, rejectUnauthorized: false });
  await new Promise((r) => secure.once('secureConnect', r));
  const c = client(secure);
  await c.cmd('EHLO client.test');
  const guess = (pw: string) => c.cmd(`AUTH PLAIN ${Buffer.from(`\0bob\0${pw}`).toString('base64')}`);
  const t0 = Date.now();
  expect(await guess('a')).toMatch(/^535 5\.7\.8 /);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(SLEEP_MS - 20); // answered late (a lower bound only: never flaky)
  expect(await guess('b')).toMatch(/^535 5\.7\.8 /);
  expect(await guess('c')).toMatch(/^421 4\.7\.0 Error: too many failed authentications/);
  await new Promise((r) => (c.isClosed() ? r(undefined) : secure.once('close', r)));
  secure.destroy();
});

it('an untrusted client refused again and again is cut off at the hard limit; the trusted MTA is not', async () => {
  for (const [allowed, cutOff] of [[['10.0.0.0/8'], true], [['127.0.0.0/8'], false]] as const) {
    const port = await start([...allowed]);
    const c = client(net.connect(port, '127.0.0.1'));
    await c.reply();
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<a@example.org>');
    const replies: string[] = [];
    const took: number[] = [];
    for (let i = 0; i < HARD_ERROR_LIMIT; i++) {
      const t0 = Date.now();
      replies.push(await c.cmd(`RCPT TO:<x${i}@nowhere.invalid>`));
      took.push(Date.now() - t0);
    }
    if (cutOff) {
      expect(replies.slice(0, HARD_ERROR_LIMIT - 1).every((r) => r.startsWith('554 5.7.1'))).toBe(true);
      expect(replies.at(-1)).toMatch(/^421 4\.7\.0 Error: too many errors/);
      for (const ms of took.slice(SOFT_ERROR_LIMIT)) expect(ms).toBeGreaterThanOrEqual(SLEEP_MS - 20); // past the soft limit: late
    } else {
      expect(replies.every((r) => r.startsWith('550 5.1.2'))).toBe(true); // refused each time, never cut off
    }
    c.sock.destroy();
    await listener!.close();
    listener = undefined;
  }
  expect(SOFT_ERROR_LIMIT).toBeLessThan(HARD_ERROR_LIMIT);
});

it('an accepted message starts the count of refusals over (Postfix counts errors without delivering mail)', async () => {
  const port = await start(['10.0.0.0/8']);
  const plain = net.connect(port, '127.0.0.1');
  const p = client(plain);
  await p.reply();
  await p.cmd('EHLO client.test');
  await p.cmd('STARTTLS');
  plain.removeAllListeners('data');
  const secure = tls.connect({ socket: plain, rejectUnauthorized: false });
  await new Promise((r) => secure.once('secureConnect', r));
  const c = client(secure);
  await c.cmd('EHLO client.test');
  expect(await c.cmd(`AUTH PLAIN ${Buffer.from('\0bob\0s3cret').toString('base64')}`)).toMatch(/^235 /);
  const refusals = async (n: number) => {
    for (let i = 0; i < n; i++) expect(await c.cmd(`RCPT TO:<x${i}@nowhere.invalid>`)).toMatch(/^550 /);
  };
  await c.cmd('MAIL FROM:<a@example.org>');
  await refusals(HARD_ERROR_LIMIT - 1);
  expect(await c.cmd('RCPT TO:<b@example.net>')).toMatch(/^250 /);
  expect(await c.cmd('DATA')).toMatch(/^354 /);
  expect(await c.cmd('Subject: s\r\n\r\nx\r\n.')).toMatch(/^250 /);
  await c.cmd('MAIL FROM:<a@example.org>');
  await refusals(HARD_ERROR_LIMIT - 1); // not cut off: the count started over after the 250
  secure.destroy();
}, 60_000);

it('one untrusted address holds at most half the slots (max_clients 4: the third connection gets 421); the trusted MTA all of them', async () => {
  const greet = async (port: number) => {
    const c = client(net.connect(port, '127.0.0.1'));
    return { c, greeting: await c.reply() };
  };
  for (const [allowed, expectThird] of [[['10.0.0.0/8'], /^421 4\.7\.0 Error: too many connections from /], [['127.0.0.0/8'], /^220 /]] as const) {
    const cfg = listenerConfig({ allowed_networks: [...allowed], max_clients: 4 });
    listener = createSmtpListener({ config: cfg, enqueue: h.enqueue(), router: h.w.router, peerProblem: () => undefined, hostname: 'mx.test', errorSleepMs: 0 });
    const port = (await listener.listen())[0]!.port;
    const a = await greet(port);
    const b = await greet(port);
    expect([a.greeting, b.greeting].every((g) => g.startsWith('220 '))).toBe(true);
    const third = await greet(port);
    expect(third.greeting).toMatch(expectThird);
    if (expectThird.source.startsWith('^421')) {
      // A slot freed is a slot again.
      a.c.sock.destroy();
      await new Promise((r) => setTimeout(r, 100));
      const again = await greet(port);
      expect(again.greeting).toMatch(/^220 /);
      again.c.sock.destroy();
    } else a.c.sock.destroy();
    b.c.sock.destroy();
    third.c.sock.destroy();
    await listener.close();
    listener = undefined;
  }
});
