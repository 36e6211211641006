import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import nodemailer from 'nodemailer';
import pino from 'pino';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SmtpListenerConfig } from '../../src/config/schema.js';
import type { FerryError } from '../../src/errors/index.js';
import type { Enqueue } from '../../src/send/types.js';
import { errnoError, nodeTreeFs, type TreeFs } from '../../src/tree/fs.js';
import { decodeFile, listFiles } from './send-fixture.js';
import { listenerConfig as config, listenerHarness, rawClient } from './smtp-fixture.js';

const h = listenerHarness();
const enqueue = (fs?: TreeFs): Enqueue => h.enqueue(fs ? { fs } : {});
const start = async (cfg: SmtpListenerConfig, enq?: Enqueue): Promise<number> => (await h.start(cfg, enq ? { enqueue: enq } : {})).port;

const MESSAGE = Buffer.concat([
  Buffer.from('From: a@example.org\r\nTo: b@example.net\r\nSubject: caf\xe9\r\n\r\n', 'latin1'),
  Buffer.from('line 1\r\n..leading dot (stuffed on the wire)\r\nbare\nlf\r\nend\r\n'),
]);
/** nodemailer turns bare LF into CRLF, so its tests use a CRLF-only message. */
const CRLF_MESSAGE = Buffer.from(MESSAGE.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
const UNSTUFFED = Buffer.from(MESSAGE.toString('latin1').replace('..leading', '.leading'), 'latin1');

describe('SMTP listener', () => {
  it('accepts a message; the 250 names the packet, which decodes byte-exact', async () => {
    const port = await start(config());
    const c = await rawClient(port);
    expect(c.greeting).toMatch(/^220 mx\.test/);
    expect(await c.cmd('EHLO client.test')).toMatch(/SIZE 100000/);
    expect(await c.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<b@example.net>')).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<nobody@nowhere.test>')).toBe(
      '550 5.1.2 <nobody@nowhere.test>: Recipient address rejected: no route to a ferrypost node',
    );
    expect(await c.cmd('RCPT TO:<c@sub.example.com>')).toMatch(/^250/);
    expect(await c.cmd('DATA')).toMatch(/^354/);
    const r = await c.data(Buffer.concat([MESSAGE, Buffer.from('.\r\n')]));
    expect(r).toMatch(/^250 2\.0\.0 Ok: queued as [a-z2-7]{26} [a-z2-7]{26}$/);
    const ids = r.split(' ').slice(-2);
    c.close();

    const files = listFiles(h.w.tree);
    expect(files).toHaveLength(2);
    for (const f of files) {
      const to = f.startsWith(h.w.bob.fpr) ? h.w.bob : h.w.carol;
      const d = await decodeFile(path.join(h.w.tree, f), to, h.w.self);
      expect(d.payload.equals(UNSTUFFED)).toBe(true);
      expect(ids).toContain(d.header.id);
      expect(d.header.envelope).toEqual({ from: 'a@example.org', to: [to === h.w.bob ? 'b@example.net' : 'c@sub.example.com'] });
    }
  });

  it('logs one info line per accepted message: smtp.accepted with its packets, peers and tree files', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(JSON.parse(chunk.toString())); cb(); } });
    const log = pino({ level: 'info' }, sink);
    const addr = await h.start(config(), { enqueue: h.enqueue({ log }), log });
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: addr.port, secure: false, ignoreTLS: true });
    await t.sendMail({ envelope: { from: 'a@example.org', to: ['b@example.net', 'c@sub.example.com'] }, raw: CRLF_MESSAGE });
    t.close();
    const perMessage = lines.filter((l) => l.evt !== 'smtp.listening');
    expect(perMessage.map((l) => l.evt)).toEqual(['smtp.accepted']);
    const files = listFiles(h.w.tree).map((f) => path.basename(f));
    expect(perMessage[0]).toMatchObject({ from: 'a@example.org', rcpts: 2, peers: ['bob', 'carol'] });
    expect([...(perMessage[0]!.files as string[])].sort()).toEqual(files.sort());
    expect(perMessage[0]!.packets).toHaveLength(2);
  });

  it('works with nodemailer as the client (null sender, 8-bit)', async () => {
    const port = await start(config());
    const t = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
    const info = await t.sendMail({ envelope: { from: '', to: ['x@example.net'] }, raw: CRLF_MESSAGE });
    t.close();
    expect(info.accepted).toEqual(['x@example.net']);
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as/);
    const [f] = listFiles(h.w.tree);
    const d = await decodeFile(path.join(h.w.tree, f!), h.w.bob, h.w.self);
    expect(d.payload.equals(CRLF_MESSAGE)).toBe(true); // nodemailer dot-stuffs, the server unstuffs
    expect(d.header.envelope.from).toBe('');
  });

  it('checks addresses and the recipient limit', async () => {
    const port = await start(config());
    const c = await rawClient(port);
    await c.cmd('EHLO client.test');
    expect(await c.cmd('MAIL FROM:<bad address@example.org>')).toMatch(/^5\d\d/);
    expect(await c.cmd('MAIL FROM:<a(b@example.org>')).toBe('553 5.1.7 <a(b@example.org>: Sender address rejected: bad address syntax (malformed local part)');
    expect(await c.cmd('MAIL FROM:<a@-x.org>')).toMatch(/^553 5\.1\.7 <a@-x\.org>: Sender address rejected/);
    expect(await c.cmd('MAIL FROM:<>')).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<b@-x.net>')).toBe('501 5.1.3 <b@-x.net>: bad address syntax (malformed domain)');
    for (const n of [1, 2, 3]) expect(await c.cmd(`RCPT TO:<r${n}@example.net>`)).toMatch(/^250/);
    expect(await c.cmd('RCPT TO:<r4@example.net>')).toBe('452 4.5.3 Error: too many recipients');
    c.close();
  });

  it('oversized: 552 5.3.4 and no packet (DATA and declared SIZE)', async () => {
    const port = await start(config({ max_size: 1000 }));
    const c = await rawClient(port);
    await c.cmd('EHLO client.test');
    expect(await c.cmd('MAIL FROM:<a@example.org> SIZE=5000')).toMatch(/^552/);
    expect(await c.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
    await c.cmd('RCPT TO:<b@example.net>');
    await c.cmd('DATA');
    const big = Buffer.from(`Subject: big\r\n\r\n${'x'.repeat(70)}\r\n`.repeat(100));
    expect(await c.data(Buffer.concat([big, Buffer.from('.\r\n')]))).toMatch(/^552 5\.3\.4 /);
    // The session goes on: a small message right after is accepted.
    expect(await c.cmd('MAIL FROM:<a@example.org>')).toMatch(/^250/);
    await c.cmd('RCPT TO:<b@example.net>');
    await c.cmd('DATA');
    expect(await c.data(Buffer.from('Subject: small\r\n\r\nhi\r\n.\r\n'))).toMatch(/^250 2\.0\.0 Ok/);
    c.close();
    expect(listFiles(h.w.tree)).toHaveLength(1);
    expect(listFiles(h.w.spool)).toEqual([]);
  });

  it('relay from a network not allowed: 554 5.7.1 Relay access denied', async () => {
    const port = await start(config({ allowed_networks: ['10.0.0.0/8', '::ffff:192.168.0.0/112'] }));
    const c = await rawClient(port);
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<a@example.org>');
    expect(await c.cmd('RCPT TO:<b@example.net>')).toBe('554 5.7.1 <b@example.net>: Relay access denied');
    expect(await c.cmd('AUTH PLAIN AGFhAGI=')).toMatch(/^5\d\d/); // AUTH not offered without TLS
    c.close();
  });

  it('answers 250 to a client that pipelined QUIT and half-closed before the (slow) durable write ended', async () => {
    const inner = enqueue();
    const slow: Enqueue = {
      async submit(env, msg) {
        const r = await inner.submit(env, msg);
        await new Promise((res) => setTimeout(res, 300));
        return r;
      },
    };
    const port = await start(config(), slow);
    const sock = net.connect(port, '127.0.0.1');
    let got = '';
    sock.on('data', (d) => (got += d.toString('latin1')));
    const closed = new Promise<void>((res) => sock.on('close', () => res()));
    await new Promise((res) => sock.once('data', res)); // greeting
    sock.write('EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n');
    await new Promise((res) => setTimeout(res, 200));
    sock.end(Buffer.concat([MESSAGE, Buffer.from('.\r\nQUIT\r\n')])); // FIN right after QUIT, as Exim does
    await closed;
    expect(got).toMatch(/\r\n250 2\.0\.0 Ok: queued as [a-z2-7]{26}\r\n221 /);
    expect(listFiles(h.w.tree).filter((f) => f.endsWith('.pgp'))).toHaveLength(1);
  });

  it('greets trusted relays at once; an untrusted early talker is still caught by the greet pause', async () => {
    const talk = async (port: number): Promise<string> => {
      const sock = net.connect(port, '127.0.0.1');
      let got = '';
      sock.on('data', (d) => (got += d.toString('latin1')));
      sock.on('error', () => undefined);
      await new Promise((res) => sock.once('connect', res));
      sock.write('EHLO early.test\r\n'); // before any greeting: an early talker
      await new Promise((res) => setTimeout(res, 400));
      sock.destroy();
      return got;
    };
    const trusted = await start(config());
    expect(await talk(trusted)).toMatch(/^220 [\s\S]*\r\n250[ -]/);
    await h.stop();
    const untrusted = await start(config({ allowed_networks: ['10.0.0.0/8'] }));
    expect(await talk(untrusted)).toMatch(/^421 .*You talk too soon/);
  });

  it('disk full while storing: 452 4.3.1, the client sees the failure, nothing left in the tree', async () => {
    const full: TreeFs = {
      ...nodeTreeFs,
      async open(p, flags, mode) {
        const h = await nodeTreeFs.open(p, flags, mode);
        return flags === 'wx' ? { ...h, write: async () => Promise.reject(errnoError('ENOSPC', 'no space left on device', p)) } : h;
      },
    };
    const port = await start(config(), enqueue(full));
    const t = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
    const err = await t.sendMail({ envelope: { from: 'a@example.org', to: ['b@example.net'] }, raw: CRLF_MESSAGE }).catch((e: unknown) => e);
    t.close();
    expect((err as { responseCode?: number }).responseCode).toBe(452);
    expect((err as { response?: string }).response).toMatch(/^452 4\.3\.1 /);
    expect(listFiles(h.w.tree)).toEqual([]);
  });
});


describe('SMTP listener, shared directory fsync failing', () => {
  it('every message whose commit the failed fsync served gets 451 4.3.0, none a 250, nothing left in the tree', async () => {
    // Only the packet directory's fsyncs (TREE/<to>/<from>: the commits', shared) fail and are
    // counted; its parents' (from creating it, which the first sessions may each do when their opens
    // find it missing) succeed, so that timing cannot turn this into a test of creations.
    let dirSyncs = 0;
    const isPacketDir = (p: string) => path.relative(h.w.tree, p).split(path.sep).length === 2;
    const failing: TreeFs = {
      ...nodeTreeFs,
      async open(p, flags, mode) {
        const h = await nodeTreeFs.open(p, flags, mode);
        if (flags !== 'r' || !isPacketDir(p)) return h;
        return {
          ...h,
          async sync() {
            dirSyncs++;
            await new Promise((r) => setTimeout(r, 200)); // long enough for the other sessions to queue up
            throw errnoError('EIO', 'injected directory fsync failure', p);
          },
        };
      },
    };
    const port = await start(config(), enqueue(failing));
    const results = await Promise.all(Array.from({ length: 6 }, async () => {
      const t = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
      try {
        return await t.sendMail({ envelope: { from: 'a@example.org', to: ['b@example.net'] }, raw: CRLF_MESSAGE }).then(() => undefined, (e: unknown) => e);
      } finally {
        t.close();
      }
    }));
    for (const err of results) expect((err as { response?: string } | undefined)?.response).toMatch(/^451 4\.3\.0 /);
    expect(dirSyncs).toBeGreaterThan(0);
    expect(dirSyncs).toBeLessThan(6); // the commits did share fsyncs
    expect(listFiles(h.w.tree)).toEqual([]);
  });
});

describe('SMTP listener with STARTTLS + AUTH', () => {
  let tlsDir: string;
  beforeAll(() => {
    tlsDir = path.join(h.w.dir, '..', `fp-tls-${process.pid}`);
    execFileSync('mkdir', ['-p', tlsDir]);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=mx.test',
      '-keyout', path.join(tlsDir, 'key.pem'), '-out', path.join(tlsDir, 'cert.pem')], { stdio: 'ignore' });
    const hash = createHash('sha256').update('s3cret').digest('hex');
    writeFileSync(path.join(tlsDir, 'users'), `# test users\nalice:{PLAIN}pa:ss word\nbob:{SHA256}${hash}\n`);
  });
  afterAll(() => execFileSync('rm', ['-rf', tlsDir]));

  const tlsConfig = () => config({
    allowed_networks: ['10.0.0.0/8'],
    tls: { key: path.join(tlsDir, 'key.pem'), cert: path.join(tlsDir, 'cert.pem') },
    auth_users_file: path.join(tlsDir, 'users'),
  });

  it('relays after AUTH over STARTTLS (PLAIN and SHA256 entries), 535 on a bad password', async () => {
    const port = await start(tlsConfig());
    const send = (user: string, pass: string) => {
      const t = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user, pass } });
      return t.sendMail({ envelope: { from: 'a@example.org', to: ['b@example.net'] }, raw: CRLF_MESSAGE }).finally(() => t.close());
    };
    expect((await send('alice', 'pa:ss word')).response).toMatch(/^250 2\.0\.0 Ok: queued as/);
    expect((await send('bob', 's3cret')).response).toMatch(/^250 2\.0\.0 Ok: queued as/);
    const bad = await send('bob', 'wrong').catch((e: unknown) => e);
    expect((bad as { responseCode?: number }).responseCode).toBe(535);
    expect(listFiles(h.w.tree)).toHaveLength(2);
    const f = listFiles(h.w.tree)[0]!;
    expect((await decodeFile(path.join(h.w.tree, f), h.w.bob, h.w.self)).payload.equals(CRLF_MESSAGE)).toBe(true);
  });

  it('a garbage PEM or a key that does not match the certificate is CONFIG naming smtp.tls and the files (was a bare OpenSSL error, exit 70)', async () => {
    writeFileSync(path.join(tlsDir, 'garbage.pem'), 'not a certificate\n');
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path.join(tlsDir, 'other-key.pem')], { stdio: 'ignore' });
    for (const tls of [
      { key: path.join(tlsDir, 'key.pem'), cert: path.join(tlsDir, 'garbage.pem') },
      { key: path.join(tlsDir, 'other-key.pem'), cert: path.join(tlsDir, 'cert.pem') },
    ]) {
      const err = (await start(config({ tls })).catch((e: unknown) => e)) as FerryError;
      expect(err.code).toBe('CONFIG');
      expect(err.message).toMatch(new RegExp(`^smtp\\.tls: key ${tls.key} and certificate ${tls.cert} are not a usable pair: `));
    }
  });

  it('does not offer AUTH before STARTTLS, and refuses relay without it', async () => {
    const port = await start(tlsConfig());
    const c = await rawClient(port);
    const ehlo = await c.cmd('EHLO client.test');
    expect(ehlo).toMatch(/STARTTLS/);
    expect(ehlo).not.toMatch(/AUTH/);
    expect(await c.cmd('AUTH PLAIN AGFsaWNlAHBhOnNzIHdvcmQ=')).toMatch(/^5\d\d/);
    await c.cmd('MAIL FROM:<a@example.org>');
    expect(await c.cmd('RCPT TO:<b@example.net>')).toMatch(/^554 5\.7\.1/);
    c.close();
    expect(readFileSync(path.join(tlsDir, 'users'), 'utf8')).toMatch(/alice/);
  });
});
