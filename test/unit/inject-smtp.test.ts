// SMTP/LMTP injector against a real smtp-server on port 0: per-recipient mapping, byte-exact bodies,
// null sender, transaction-level failures, closed port, silent server (timeout), pool reuse.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSmtpInjector, enhancedFromReply, type SmtpDeliveryConfig } from '../../src/inject/smtp.js';
import type { Injector, InjectRequest } from '../../src/inject/types.js';

const FIX = join(import.meta.dirname, '../../fixtures/mail');
const fixtures = readdirSync(FIX).filter((f) => f.endsWith('.eml'));

interface Received {
  from: string;
  to: string[];
  data: Buffer;
}

function rcptError(code: number, text: string): Error {
  return Object.assign(new Error(text), { responseCode: code });
}

interface Sink {
  port: number;
  received: Received[];
  connections: number;
  mode: { data?: Error; mailFrom?: Error; lmtpPerRcpt?: boolean };
  close(): Promise<void>;
}

async function startSink(lmtp = false, socketTimeout?: number): Promise<Sink> {
  const sink: Omit<Sink, 'port' | 'close'> = { received: [], connections: 0, mode: {} };
  const server = new SMTPServer({
    lmtp,
    ...(socketTimeout ? { socketTimeout } : {}),
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onConnect(_s, cb) {
      sink.connections += 1;
      cb();
    },
    onMailFrom(_a, _s, cb) {
      cb(sink.mode.mailFrom ?? null);
    },
    onRcptTo(addr, _s, cb) {
      const local = addr.address.split('@')[0];
      if (local === 'unknown') return cb(rcptError(550, `5.1.1 <${addr.address}>: user unknown`));
      if (local === 'busy') return cb(rcptError(450, `4.2.1 <${addr.address}>: mailbox busy`));
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const env = session.envelope;
        const to = env.rcptTo.map((r) => r.address);
        sink.received.push({ from: env.mailFrom ? env.mailFrom.address : '?', to, data: Buffer.concat(chunks) });
        if (sink.mode.data) return cb(sink.mode.data);
        if (lmtp && sink.mode.lmtpPerRcpt) {
          const replies = to.map((a) =>
            a.startsWith('full') ? rcptError(552, '5.2.2 mailbox full') : a.startsWith('later') ? rcptError(452, '4.2.2 over quota, try later') : 'ok',
          );
          return (cb as unknown as (e: null, r: Array<string | Error>) => void)(null, replies);
        }
        cb(null, '2.0.0 queued as X1');
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.server.address() as net.AddressInfo).port;
  return Object.assign(sink, { port, close: () => new Promise<void>((r) => server.close(() => r())) });
}

function cfg(port: number, extra: Partial<SmtpDeliveryConfig> = {}): SmtpDeliveryConfig {
  return { method: 'smtp', host: '127.0.0.1', port, max_connections: 2, timeout: 5000, helo_name: 'ferry.test', ...extra };
}

function req(file: string, from: string, to: string[]): InjectRequest {
  return { envelope: { from, to }, file, size: statSync(file).size, packetId: 'p1' };
}

describe('smtp injector', () => {
  let sink: Sink;
  let inj: Injector;
  beforeAll(async () => {
    sink = await startSink();
    inj = createSmtpInjector(cfg(sink.port));
  });
  afterAll(async () => {
    await inj.close();
    await sink.close();
  });
  afterEach(() => {
    sink.mode = {};
  });

  it.each(fixtures)('delivers %s byte-exact (bare LF becomes CRLF on the wire)', async (name) => {
    const file = join(FIX, name);
    const res = await inj.inject(req(file, 'alice@a.example', ['bob@b.example']));
    expect(res).toEqual([expect.objectContaining({ rcpt: 'bob@b.example', status: 'ok', code: 250 })]);
    const got = sink.received.at(-1)!;
    const sent = readFileSync(file);
    const bareLf = !sent.includes('\r\n');
    expect(bareLf).toBe(name.startsWith('bare-lf'));
    const expected = bareLf ? Buffer.from(sent.toString('latin1').replace(/\n/g, '\r\n'), 'latin1') : sent;
    expect(got.data.equals(expected)).toBe(true);
    expect(got.from).toBe('alice@a.example');
  });

  it('maps per-recipient replies and keeps order and duplicates', async () => {
    const to = ['bob@b.example', 'unknown@b.example', 'busy@b.example', 'bob@b.example'];
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'alice@a.example', to));
    expect(res.map((r) => [r.rcpt, r.status, r.code, r.enhanced])).toEqual([
      ['bob@b.example', 'ok', 250, '2.0.0'],
      ['unknown@b.example', 'perm', 550, '5.1.1'],
      ['busy@b.example', 'temp', 450, '4.2.1'],
      ['bob@b.example', 'ok', 250, '2.0.0'],
    ]);
    expect(res[1]!.message).toContain('user unknown');
    expect(sink.received.at(-1)!.to).toEqual(['bob@b.example']);
  });

  it('every recipient refused: each keeps its own status', async () => {
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'alice@a.example', ['unknown@b.example', 'busy@b.example']));
    expect(res.map((r) => r.status)).toEqual(['perm', 'temp']);
  });

  it('null sender is sent as MAIL FROM:<>', async () => {
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), '', ['bob@b.example']));
    expect(res[0]!.status).toBe('ok');
    expect(sink.received.at(-1)!.from).toBe('');
  });

  it('DATA 554 → every accepted recipient perm; RCPT-refused ones keep their reply', async () => {
    sink.mode.data = rcptError(554, '5.6.0 content rejected');
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'alice@a.example', ['bob@b.example', 'carol@b.example', 'busy@b.example']));
    expect(res.map((r) => [r.status, r.code, r.enhanced])).toEqual([
      ['perm', 554, '5.6.0'],
      ['perm', 554, '5.6.0'],
      ['temp', 450, '4.2.1'],
    ]);
  });

  it('DATA 451 → every recipient temp', async () => {
    sink.mode.data = rcptError(451, '4.3.0 try again');
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'alice@a.example', ['bob@b.example', 'carol@b.example']));
    expect(res.map((r) => [r.status, r.code])).toEqual([
      ['temp', 451],
      ['temp', 451],
    ]);
  });

  it('MAIL FROM 553 → every recipient perm', async () => {
    sink.mode.mailFrom = rcptError(553, '5.7.1 sender refused');
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'alice@a.example', ['bob@b.example', 'carol@b.example']));
    expect(res.map((r) => [r.status, r.code, r.enhanced])).toEqual([
      ['perm', 553, '5.7.1'],
      ['perm', 553, '5.7.1'],
    ]);
  });

  it('reuses pooled connections for many messages', async () => {
    const before = sink.connections;
    const file = join(FIX, 'crlf-plain.eml');
    const all = await Promise.all(Array.from({ length: 40 }, (_, i) => inj.inject(req(file, 'alice@a.example', [`u${i}@b.example`]))));
    expect(all.flat().every((r) => r.status === 'ok')).toBe(true);
    expect(sink.connections - before).toBeLessThanOrEqual(2);
  });
});

describe('smtp injector: connection pool', () => {
  it('a pooled connection the server closed while idle is replaced; the message still goes out once', async () => {
    const sink = await startSink(false, 150); // the server drops idle sessions after 150 ms
    const inj = createSmtpInjector(cfg(sink.port));
    const file = join(FIX, 'crlf-plain.eml');
    try {
      expect((await inj.inject(req(file, 'alice@a.example', ['bob@b.example'])))[0]!.status).toBe('ok');
      await new Promise((r) => setTimeout(r, 400));
      expect((await inj.inject(req(file, 'alice@a.example', ['carol@b.example'])))[0]!.status).toBe('ok');
      expect(sink.received.map((m) => m.to)).toEqual([['bob@b.example'], ['carol@b.example']]);
      expect(sink.connections).toBe(2);
    } finally {
      await inj.close();
      await sink.close();
    }
  });

  it('a reused connection that drops at MAIL FROM (no reply) is replaced and the message sent again', async () => {
    // A bare SMTP server that hangs up on the second transaction of every connection.
    let messages = 0;
    let connections = 0;
    const srv = net.createServer((sock) => {
      connections += 1;
      let buf = '';
      let inData = false;
      let mails = 0;
      sock.write('220 test ESMTP\r\n');
      sock.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        for (;;) {
          if (inData) {
            const end = buf.indexOf('\r\n.\r\n');
            if (end < 0) return;
            buf = buf.slice(end + 5);
            inData = false;
            messages += 1;
            sock.write('250 2.0.0 queued\r\n');
            continue;
          }
          const nl = buf.indexOf('\r\n');
          if (nl < 0) return;
          const line = buf.slice(0, nl).toUpperCase();
          buf = buf.slice(nl + 2);
          if (line.startsWith('EHLO')) sock.write('250-test\r\n250 PIPELINING\r\n');
          else if (line.startsWith('MAIL')) {
            if (++mails === 2) return void sock.destroy();
            sock.write('250 2.1.0 ok\r\n');
          } else if (line.startsWith('RCPT')) sock.write('250 2.1.5 ok\r\n');
          else if (line === 'DATA') {
            inData = true;
            sock.write('354 go\r\n');
          } else if (line === 'QUIT') sock.end('221 bye\r\n');
          else sock.write('250 ok\r\n');
        }
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const inj = createSmtpInjector(cfg((srv.address() as net.AddressInfo).port, { max_connections: 1 }));
    const file = join(FIX, 'crlf-plain.eml');
    try {
      expect((await inj.inject(req(file, 'alice@a.example', ['bob@b.example'])))[0]!.status).toBe('ok');
      expect((await inj.inject(req(file, 'alice@a.example', ['carol@b.example'])))[0]!.status).toBe('ok');
      expect(messages).toBe(2);
      expect(connections).toBe(2);
    } finally {
      await inj.close();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it('queues messages beyond max_connections and sends them all, in any order, one per transaction', async () => {
    const sink = await startSink();
    const inj = createSmtpInjector(cfg(sink.port, { max_connections: 3 }));
    const file = join(FIX, 'crlf-plain.eml');
    try {
      const res = await Promise.all(Array.from({ length: 25 }, (_, i) => inj.inject(req(file, 'alice@a.example', [`u${i}@b.example`, 'unknown@b.example']))));
      expect(res.map((r) => r.map((x) => x.status))).toEqual(Array.from({ length: 25 }, () => ['ok', 'perm']));
      expect(sink.received.map((m) => m.to[0]).sort()).toEqual(Array.from({ length: 25 }, (_, i) => `u${i}@b.example`).sort());
      expect(sink.connections).toBeLessThanOrEqual(3);
    } finally {
      await inj.close();
      await sink.close();
    }
  });

  it('after a refused transaction the connection is reset and used again', async () => {
    const sink = await startSink();
    const inj = createSmtpInjector(cfg(sink.port, { max_connections: 1 }));
    const file = join(FIX, 'crlf-plain.eml');
    try {
      sink.mode.mailFrom = rcptError(553, '5.7.1 sender refused');
      expect((await inj.inject(req(file, 'alice@a.example', ['bob@b.example'])))[0]!.status).toBe('perm');
      sink.mode = {};
      expect((await inj.inject(req(file, 'alice@a.example', ['unknown@b.example'])))[0]!.status).toBe('perm');
      expect((await inj.inject(req(file, 'alice@a.example', ['bob@b.example'])))[0]!.status).toBe('ok');
      expect(sink.connections).toBe(1);
    } finally {
      await inj.close();
      await sink.close();
    }
  });
});

describe('smtp injector: unreachable next hop', () => {
  it('closed port → every recipient temp', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const inj = createSmtpInjector(cfg(port));
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'alice@a.example', ['bob@b.example', 'carol@b.example']));
    await inj.close();
    expect(res.map((r) => r.status)).toEqual(['temp', 'temp']);
    expect(res[0]!.message).toMatch(/ECONNREFUSED|connect/i);
  });

  it('a server that never greets → temp after the timeout', async () => {
    const sockets: net.Socket[] = [];
    const srv = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const inj = createSmtpInjector(cfg((srv.address() as net.AddressInfo).port, { timeout: 300 }));
    const t0 = Date.now();
    const res = await inj.inject(req(join(FIX, 'crlf-plain.eml'), 'alice@a.example', ['bob@b.example']));
    await inj.close();
    sockets.forEach((s) => s.destroy());
    await new Promise<void>((r) => srv.close(() => r()));
    expect(res[0]!.status).toBe('temp');
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe('lmtp injector', () => {
  it('maps per-recipient DATA replies', async () => {
    const sink = await startSink(true);
    sink.mode.lmtpPerRcpt = true;
    const inj = createSmtpInjector(cfg(sink.port, { method: 'lmtp' }));
    const to = ['bob@b.example', 'full@b.example', 'later@b.example', 'unknown@b.example'];
    const res = await inj.inject(req(join(FIX, 'dot-lines.eml'), 'alice@a.example', to));
    expect(res.map((r) => [r.rcpt, r.status, r.code, r.enhanced])).toEqual([
      ['bob@b.example', 'ok', 250, expect.any(String)],
      ['full@b.example', 'perm', 552, '5.2.2'],
      ['later@b.example', 'temp', 452, '4.2.2'],
      ['unknown@b.example', 'perm', 550, '5.1.1'],
    ]);
    expect(sink.received[0]!.data.equals(readFileSync(join(FIX, 'dot-lines.eml')))).toBe(true);
    await inj.close();
    await sink.close();
  });
});

describe('enhancedFromReply', () => {
  it('parses the enhanced status code after the reply code', () => {
    expect(enhancedFromReply('550 5.1.1 <x@y>: user unknown')).toBe('5.1.1');
    expect(enhancedFromReply('451-4.3.0 busy')).toBe('4.3.0');
    expect(enhancedFromReply('550 user unknown')).toBeUndefined();
  });
});
