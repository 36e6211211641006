/**
 * reload() (the daemon's SIGHUP): a renewed certificate and a changed users file are used for new
 * connections without a restart; unusable new files are refused (CONFIG) and the ones in use stay.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createSmtpListener, type SmtpListener } from '../../src/smtp/server.js';
import { listenerConfig, listenerHarness } from './smtp-fixture.js';

const h = listenerHarness();
let dir: string;
let listener: SmtpListener | undefined;
const certFor = (cn: string) =>
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${cn}`, '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
const users = (line: string) => writeFileSync(path.join(dir, 'users'), `${line}\n`);
const sha = (pw: string) => createHash('sha256').update(pw).digest('hex');

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'fp-reload-'));
});
afterEach(async () => {
  await listener?.close();
  listener = undefined;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** STARTTLS, then the certificate's CN and the answer to AUTH PLAIN user/pw. */
async function probe(port: number, user: string, pw: string): Promise<{ cn: string; auth: string }> {
  const plain = net.connect(port, '127.0.0.1');
  let buf = '';
  const next = (sock: net.Socket): Promise<string> => new Promise((resolve) => {
    const on = (d: Buffer) => {
      buf += d.toString('latin1');
      const m = /^(?:\d{3}-.*\r\n)*\d{3} .*\r\n/.exec(buf);
      if (m) {
        buf = buf.slice(m[0].length);
        sock.off('data', on);
        resolve(m[0].trim());
      }
    };
    sock.on('data', on);
  });
  await next(plain);
  plain.write('EHLO c.test\r\n');
  await next(plain);
  plain.write('STARTTLS\r\n');
  await next(plain);
  const s = tls.connect({ socket: plain, rejectUnauthorized: false });
  await new Promise((r) => s.once('secureConnect', r));
  const cn = String(s.getPeerCertificate().subject.CN);
  s.write('EHLO c.test\r\n');
  await next(s);
  s.write(`AUTH PLAIN ${Buffer.from(`\0${user}\0${pw}`).toString('base64')}\r\n`);
  const auth = await next(s);
  s.destroy();
  return { cn, auth };
}

it('a renewed certificate and a new user are used after reload(); a broken file is refused and the old ones stay', async () => {
  certFor('old.test');
  users(`bob:{SHA256}${sha('one')}`);
  const cfg = listenerConfig({ allowed_networks: ['10.0.0.0/8'], tls: { key: path.join(dir, 'key.pem'), cert: path.join(dir, 'cert.pem') }, auth_users_file: path.join(dir, 'users') });
  listener = createSmtpListener({ config: cfg, enqueue: h.enqueue(), router: h.w.router, peerProblem: () => undefined, hostname: 'mx.test', errorSleepMs: 0 });
  const port = (await listener.listen())[0]!.port;
  expect(await probe(port, 'bob', 'one')).toEqual({ cn: 'old.test', auth: expect.stringMatching(/^235 /) });

  certFor('new.test');
  users(`carol:{SHA256}${sha('two')}`);
  await listener.reload();
  expect(await probe(port, 'carol', 'two')).toEqual({ cn: 'new.test', auth: expect.stringMatching(/^235 /) });
  expect((await probe(port, 'bob', 'one')).auth).toMatch(/^535 /);

  writeFileSync(path.join(dir, 'cert.pem'), 'half-written renewal\n');
  await expect(listener.reload()).rejects.toMatchObject({ code: 'CONFIG' });
  expect(await probe(port, 'carol', 'two')).toEqual({ cn: 'new.test', auth: expect.stringMatching(/^235 /) });
}, 60_000);
