// SMTP/LMTP injector against a raw scripted server (net.createServer): what happens when the reply to
// the message is slow or lost (no silent resend, possible duplicates logged), LMTP per-recipient
// replies up to a lost connection, log events by status, MAIL FROM parameters, bare CR.
import net from 'node:net';
import type { Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createSmtpInjector, type SmtpDeliveryConfig, type SmtpInjectorOptions } from '../../src/inject/smtp.js';
import type { InjectRequest } from '../../src/inject/types.js';

interface Mail {
  mail: string;
  rcpt: string[];
  data?: Buffer;
  conn: number;
  tx: number;
}

interface Script {
  /** EHLO/LHLO extensions besides ENHANCEDSTATUSCODES. */
  ext?: string[];
  /** Answers the final "." (default 250); the message is already stored in `mails`. */
  onDot?: (sock: net.Socket, m: Mail) => void;
  /** Return true to leave MAIL FROM unanswered (after doing whatever the test needs). */
  onMail?: (sock: net.Socket, m: Mail) => boolean;
  /** Return true to leave DATA unanswered. */
  onData?: (sock: net.Socket, m: Mail) => boolean;
  mailReply?: string;
}

interface Fake {
  port: number;
  mails: Mail[];
  conns: number;
  close(): Promise<void>;
}

const servers: Fake[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function fakeServer(script: Script = {}): Promise<Fake> {
  const mails: Mail[] = [];
  const sockets = new Set<net.Socket>();
  const fake = { mails, conns: 0 } as Fake;
  const srv = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    const conn = ++fake.conns;
    let buf = Buffer.alloc(0);
    let inData = false;
    let cur: Mail | undefined;
    let tx = 0;
    sock.write('220 t ESMTP\r\n');
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) return;
          cur!.data = buf.subarray(0, end + 2);
          buf = buf.subarray(end + 5);
          inData = false;
          mails.push(cur!);
          if (script.onDot) script.onDot(sock, cur!);
          else sock.write('250 2.0.0 ok\r\n');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.subarray(0, nl).toString('latin1');
        buf = buf.subarray(nl + 2);
        const cmd = line.toUpperCase();
        if (cmd.startsWith('EHLO') || cmd.startsWith('LHLO')) {
          sock.write(`250-t\r\n${(script.ext ?? ['PIPELINING']).map((e) => `250-${e}\r\n`).join('')}250 ENHANCEDSTATUSCODES\r\n`);
        } else if (cmd.startsWith('MAIL')) {
          cur = { mail: line, rcpt: [], conn, tx: ++tx };
          if (script.onMail?.(sock, cur)) return;
          sock.write(`${script.mailReply ?? '250 2.1.0 ok'}\r\n`);
        } else if (cmd.startsWith('RCPT')) {
          cur?.rcpt.push(line);
          sock.write('250 2.1.5 ok\r\n');
        } else if (cmd === 'DATA') {
          if (script.onData?.(sock, cur!)) return;
          inData = true;
          sock.write('354 go\r\n');
        } else if (cmd === 'QUIT') sock.end('221 bye\r\n');
        else sock.write('250 ok\r\n');
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  fake.port = (srv.address() as net.AddressInfo).port;
  fake.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      srv.close(() => r());
    });
  servers.push(fake);
  return fake;
}

function cfg(port: number, extra: Partial<SmtpDeliveryConfig> = {}): SmtpDeliveryConfig {
  return { method: 'smtp', host: '127.0.0.1', port, max_connections: 1, timeout: 300, helo_name: 'ferry.test', ...extra };
}

function req(body: string, to = ['bob@b.example'], from = 'alice@a.example'): InjectRequest {
  const bytes = Buffer.from(body, 'latin1');
  return { envelope: { from, to }, bytes, size: bytes.length, packetId: 'p1' };
}

/** A logger that keeps the warnings' fields. */
function logSink(): { log: Logger; warns: Array<Record<string, unknown>> } {
  const warns: Array<Record<string, unknown>> = [];
  const noop = (): void => undefined;
  const log = { warn: (o: Record<string, unknown>) => warns.push(o), info: noop, debug: noop, error: noop } as unknown as Logger;
  return { log, warns };
}

function injector(port: number, extra: Partial<SmtpDeliveryConfig> = {}, opts: SmtpInjectorOptions = {}) {
  return createSmtpInjector(cfg(port, extra), opts);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sent = (f: Fake): string[] => f.mails.map((m) => `conn${m.conn}/tx${m.tx}:${m.data?.toString('latin1').trim()}`);

describe('smtp injector: no reply to the message', () => {
  it('the reply to "." comes after the final timeout on a reused connection → temp, not sent again, possible duplicate logged', async () => {
    const s = await fakeServer({
      onDot: (sock, m) => {
        if (m.tx === 2) setTimeout(() => sock.writable && sock.write('250 2.0.0 late ok\r\n'), 1500);
        else sock.write('250 2.0.0 ok\r\n');
      },
    });
    const { log, warns } = logSink();
    const inj = injector(s.port, {}, { log, finalTimeout: 600 });
    expect((await inj.inject(req('m1\r\n')))[0]!.status).toBe('ok');
    const res = await inj.inject(req('m2\r\n'));
    expect(res.map((r) => [r.rcpt, r.status])).toEqual([['bob@b.example', 'temp']]);
    expect(res[0]!.message).toMatch(/may already have it/);
    expect(sent(s)).toEqual(['conn1/tx1:m1', 'conn1/tx2:m2']);
    expect(warns.find((w) => w.evt === 'inject.possible-duplicate')).toMatchObject({ rcpts: ['bob@b.example'] });
    await inj.close();
  });

  it('the connection is lost after "." without a reply → temp, not sent again, possible duplicate logged', async () => {
    const s = await fakeServer({
      onDot: (sock, m) => (m.tx === 2 ? sock.destroy() : sock.write('250 2.0.0 ok\r\n')),
    });
    const { log, warns } = logSink();
    const inj = injector(s.port, {}, { log });
    expect((await inj.inject(req('m1\r\n')))[0]!.status).toBe('ok');
    const res = await inj.inject(req('m2\r\n', ['bob@b.example', 'carol@b.example']));
    expect(res.map((r) => r.status)).toEqual(['temp', 'temp']);
    await sleep(100);
    expect(sent(s)).toEqual(['conn1/tx1:m1', 'conn1/tx2:m2']);
    expect(warns.find((w) => w.evt === 'inject.possible-duplicate')).toMatchObject({ rcpts: ['bob@b.example', 'carol@b.example'] });
    await inj.close();
  });

  it('a reused connection lost at DATA, before 354 → sent again on a fresh connection, ok, nothing logged as duplicate', async () => {
    const s = await fakeServer({ onData: (sock, m) => (m.conn === 1 && m.tx === 2 ? (sock.destroy(), true) : false) });
    const { log, warns } = logSink();
    const inj = injector(s.port, {}, { log });
    expect((await inj.inject(req('m1\r\n')))[0]!.status).toBe('ok');
    expect((await inj.inject(req('m2\r\n')))[0]!.status).toBe('ok');
    expect(sent(s)).toEqual(['conn1/tx1:m1', 'conn2/tx1:m2']);
    expect(warns.some((w) => w.evt === 'inject.possible-duplicate')).toBe(false);
    await inj.close();
  });

  it('a reply to "." slower than the inactivity timeout is still waited for (final timeout ≥ 600 s by default)', async () => {
    const s = await fakeServer({ onDot: (sock) => setTimeout(() => sock.write('250 2.0.0 slow filter ok\r\n'), 800) });
    const inj = injector(s.port); // timeout 300 ms
    const res = await inj.inject(req('m1\r\n'));
    expect(res.map((r) => [r.status, r.message])).toEqual([['ok', '250 2.0.0 slow filter ok']]);
    expect(sent(s)).toEqual(['conn1/tx1:m1']);
    await inj.close();
  });

  it('after the final reply the short inactivity timeout applies again', async () => {
    const s = await fakeServer({
      onDot: (sock, m) => void setTimeout(() => sock.write('250 2.0.0 ok\r\n'), m.tx === 1 ? 500 : 0),
      onMail: (_sock, m) => m.conn === 1 && m.tx === 2, // the reused connection hangs at MAIL FROM
    });
    const inj = injector(s.port, {}, { finalTimeout: 3000 });
    expect((await inj.inject(req('m1\r\n')))[0]!.status).toBe('ok');
    const t0 = Date.now();
    expect((await inj.inject(req('m2\r\n')))[0]!.status).toBe('ok'); // sent again: nothing went out
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(sent(s)).toEqual(['conn1/tx1:m1', 'conn2/tx1:m2']);
    await inj.close();
  });
});

describe('lmtp injector: per-recipient replies after "."', () => {
  const to = ['a@b.example', 'b@b.example', 'c@b.example'];

  it('connection lost after the first recipient 250 → that one ok, the others temp and logged as possible duplicates', async () => {
    const s = await fakeServer({
      onDot: (sock) => {
        sock.write('250 2.1.5 <a@b.example> delivered\r\n');
        setTimeout(() => sock.destroy(), 50);
      },
    });
    const { log, warns } = logSink();
    const inj = injector(s.port, { method: 'lmtp' }, { log });
    const res = await inj.inject(req('m\r\n', to));
    expect(res.map((r) => [r.rcpt, r.status, r.code, r.enhanced])).toEqual([
      ['a@b.example', 'ok', 250, '2.1.5'],
      ['b@b.example', 'temp', undefined, '4.4.1'],
      ['c@b.example', 'temp', undefined, '4.4.1'],
    ]);
    expect(res[0]!.message).toBe('250 2.1.5 <a@b.example> delivered');
    expect(warns.find((w) => w.evt === 'inject.possible-duplicate')).toMatchObject({ rcpts: ['b@b.example', 'c@b.example'] });
    expect(s.mails).toHaveLength(1);
    await inj.close();
  });

  it('250, 452, then the connection is lost → ok, temp 452, temp (in doubt)', async () => {
    const s = await fakeServer({
      onDot: (sock) => {
        sock.write('250 2.0.0 <a> ok\r\n452 4.2.2 <b> over quota\r\n');
        setTimeout(() => sock.destroy(), 50);
      },
    });
    const { log, warns } = logSink();
    const inj = injector(s.port, { method: 'lmtp' }, { log });
    const res = await inj.inject(req('m\r\n', to));
    expect(res.map((r) => [r.status, r.code])).toEqual([
      ['ok', 250],
      ['temp', 452],
      ['temp', undefined],
    ]);
    expect(warns.find((w) => w.evt === 'inject.possible-duplicate')).toMatchObject({ rcpts: ['c@b.example'] });
    await inj.close();
  });

  it('each accepted recipient gets its own reply text', async () => {
    const s = await fakeServer({
      onDot: (sock) => sock.write('250 2.0.0 <a> saved as 1\r\n550 5.1.1 <b> unknown\r\n250 2.1.5 <c> saved as 3\r\n'),
    });
    const inj = injector(s.port, { method: 'lmtp' });
    const res = await inj.inject(req('m\r\n', [...to, 'a@b.example']));
    expect(res.map((r) => [r.rcpt, r.status, r.enhanced, r.message])).toEqual([
      ['a@b.example', 'ok', '2.0.0', '250 2.0.0 <a> saved as 1'],
      ['b@b.example', 'perm', '5.1.1', expect.stringContaining('<b> unknown')],
      ['c@b.example', 'ok', '2.1.5', '250 2.1.5 <c> saved as 3'],
      ['a@b.example', 'ok', '2.0.0', '250 2.0.0 <a> saved as 1'],
    ]);
    await inj.close();
  });
});

describe('smtp injector: log events and MAIL FROM parameters', () => {
  it('a refused transaction logs inject.failed when permanent, inject.tempfail when temporary', async () => {
    const s = await fakeServer({ mailReply: '553 5.7.1 sender refused' });
    const { log, warns } = logSink();
    const inj = injector(s.port, {}, { log });
    expect((await inj.inject(req('m\r\n')))[0]!.status).toBe('perm');
    const t = await fakeServer({ mailReply: '451 4.3.0 try later' });
    const inj2 = injector(t.port, {}, { log });
    expect((await inj2.inject(req('m\r\n')))[0]!.status).toBe('temp');
    expect(warns.map((w) => w.evt)).toEqual(['inject.failed', 'inject.tempfail']);
    await inj.close();
    await inj2.close();
  });

  it('BODY=8BITMIME and SIZE= when the server announces them, not otherwise', async () => {
    const s = await fakeServer({ ext: ['PIPELINING', '8BITMIME', 'SIZE 1000000'] });
    const inj = injector(s.port);
    const body = 'Subject: t\r\n\r\n8bit \xe9\r\n';
    expect((await inj.inject(req(body)))[0]!.status).toBe('ok');
    expect(s.mails[0]!.mail).toBe(`MAIL FROM:<alice@a.example> BODY=8BITMIME SIZE=${body.length}`);
    const plain = await fakeServer();
    const inj2 = injector(plain.port);
    expect((await inj2.inject(req(body)))[0]!.status).toBe('ok');
    expect(plain.mails[0]!.mail).toBe('MAIL FROM:<alice@a.example>');
    await inj.close();
    await inj2.close();
  });

  it('a message over the announced SIZE → perm 552 5.3.4 without a transaction; the connection stays usable', async () => {
    const s = await fakeServer({ ext: ['PIPELINING', 'SIZE 20'] });
    const { log, warns } = logSink();
    const inj = injector(s.port, {}, { log });
    const res = await inj.inject(req('Subject: too long for twenty\r\n\r\nx\r\n', ['bob@b.example', 'carol@b.example']));
    expect(res.map((r) => [r.status, r.code, r.enhanced])).toEqual([
      ['perm', 552, '5.3.4'],
      ['perm', 552, '5.3.4'],
    ]);
    expect(warns.map((w) => w.evt)).toEqual(['inject.failed']);
    expect((await inj.inject(req('x\r\n')))[0]!.status).toBe('ok');
    expect(s.mails.map((m) => m.data?.toString())).toEqual(['x\r\n']);
    expect(s.conns).toBe(1);
    await inj.close();
  });

  it('a bare CR and a bare LF both become CRLF on the wire; other bytes arrive unchanged', async () => {
    const s = await fakeServer();
    const inj = injector(s.port);
    expect((await inj.inject(req('Subject: t\r\n\r\nbare\rCR\r\nbare\nLF\r\nnul\0 \xe9\xff\r\n')))[0]!.status).toBe('ok');
    expect(s.mails[0]!.data!.toString('latin1')).toBe('Subject: t\r\n\r\nbare\r\nCR\r\nbare\r\nLF\r\nnul\0 \xe9\xff\r\n');
    await inj.close();
  });
});
