// Proves the real-daemon harness against real Postfix, Exim and Dovecot running the shipped
// deploy/ templates: two Postfix instances at once, byte-exact Maildir delivery, relay to the
// ferrypost port with the envelope intact, 550 for unknown users, sendmail-style injection,
// Exim delivery/relay/injection, IMAP listing, and a valid systemd unit.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort, waitForPort } from '../helpers/ports.js';
import { startPostfix, type PostfixInstance } from '../helpers/stack/postfix.js';
import { startExim, type EximInstance } from '../helpers/stack/exim.js';
import { imapList, startDovecot } from '../helpers/stack/dovecot.js';
import { sendSmtp, type SmtpError } from '../helpers/stack/smtp-client.js';
import { startRecordServer, type RecordServer } from '../helpers/stack/record-server.js';
import { DEPLOY_DIR, renderString } from '../helpers/stack/render.js';
import { startSmtpSink } from '../helpers/stack/smtp-sink.js';

/**
 * A message with 8-bit bytes, a leading dot, a long line and trailing blanks: CRLF, as on the wire.
 * The default unqualified "To: someone" proves no header rewriting on the SMTP path; sendmail-style
 * submissions DO qualify such addresses (Postfix and Exim both), so those tests pass a full address.
 */
function sample(subject: string, id: string, to = 'someone'): Buffer {
  return Buffer.concat([
    Buffer.from(
      `From: Sender <sender@home.test>\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${id}@test>\r\n` +
        'Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n' +
        'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n',
    ),
    Buffer.from('Grüße aus der Ferne – ✉\r\n.a line that starts with a dot\r\n..two dots\r\n'),
    Buffer.from(`${'x'.repeat(900)}\r\ntrailing blanks   \r\n\r\nend\r\n`),
  ]);
}
const toLf = (b: Buffer): Buffer => Buffer.from(b.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');

function expectEndsWith(actual: Buffer, tail: Buffer): void {
  expect(actual.length).toBeGreaterThan(tail.length);
  // compared as latin1 strings so a mismatch shows a readable diff; still byte-for-byte
  expect(actual.subarray(actual.length - tail.length).toString('latin1')).toBe(tail.toString('latin1'));
}

function sendmail(argv: string[], from: string, rcpts: string[], input: Buffer): void {
  const r = spawnSync(argv[0]!, [...argv.slice(1), '-i', '-f', from, '--', ...rcpts], { input, encoding: 'utf8', timeout: 30_000 });
  expect(r.error).toBeUndefined();
  expect({ status: r.status, out: r.stdout + r.stderr }).toEqual({ status: 0, out: '' });
}

describe('templates', () => {
  test('rendering fails on a missing variable and on a leftover placeholder', () => {
    expect(renderString('a=@A@', { A: 1 })).toBe('a=1');
    expect(() => renderString('a=@A@ b=@B@', { A: 1 })).toThrow(/@B@/);
    expect(() => renderString('a=@A@', { A: '@C@' })).toThrow(/left after rendering: @C@/);
  });

  test('systemd unit has the required keys and passes systemd-analyze verify', () => {
    const text = fs.readFileSync(path.join(DEPLOY_DIR, 'systemd/ferrypost.service'), 'utf8');
    const sections = new Map<string, Map<string, string[]>>();
    let cur: Map<string, string[]> | undefined;
    for (const line of text.split('\n')) {
      const t = line.trim();
      if (t === '' || t.startsWith('#') || t.startsWith(';')) continue;
      const sec = /^\[(.+)\]$/.exec(t);
      if (sec) {
        cur = new Map();
        sections.set(sec[1]!, cur);
        continue;
      }
      const kv = /^([A-Za-z]+)=(.*)$/.exec(t);
      expect(kv, `not a key=value line: ${t}`).not.toBeNull();
      expect(cur, `key outside a section: ${t}`).toBeDefined();
      cur!.set(kv![1]!, [...(cur!.get(kv![1]!) ?? []), kv![2]!]);
    }
    const svc = sections.get('Service')!;
    expect(svc.get('ExecStart')).toEqual(['/usr/bin/ferrypost run --config /etc/ferrypost/ferrypost.yaml']);
    for (const [k, v] of [['Type', 'simple'], ['KillSignal', 'SIGTERM'], ['TimeoutStopSec', '60'], ['Restart', 'on-failure'],
      ['NoNewPrivileges', 'yes'], ['PrivateTmp', 'yes'], ['ProtectSystem', 'strict'], ['User', 'ferrypost'],
      ['KillMode', 'mixed'], ['RestartPreventExitStatus', '78']] as const) {
      expect(svc.get(k), k).toEqual([v]);
    }
    expect(svc.get('ReadWritePaths')?.[0]).toMatch(/\/var\/lib\/ferrypost/);
    expect(sections.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);

    const analyze = '/usr/bin/systemd-analyze';
    if (!fs.existsSync(analyze)) return; // the INI checks above still ran
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-unit-'));
    try {
      // verify insists the ExecStart binary exists: point it at a stand-in, keep everything else.
      const bin = path.join(tmp, 'ferrypost');
      fs.writeFileSync(bin, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      fs.writeFileSync(path.join(tmp, 'ferrypost.service'), text.replaceAll('/usr/bin/ferrypost', bin));
      const r = spawnSync(analyze, ['verify', path.join(tmp, 'ferrypost.service')], { encoding: 'utf8', timeout: 30_000 });
      expect({ status: r.status, out: (r.stdout + r.stderr).trim() }).toEqual({ status: 0, out: '' });
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

test('smtp-sink accepts mail and writes it to the dump dir', async () => {
  const dump = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-sink-'));
  const sink = await startSmtpSink(await freePort(), { dumpDir: dump });
  try {
    expect(await sendSmtp(sink.port, { from: 'a@x.test', to: ['b@y.test'], raw: sample('sink', 'sk1') })).toMatch(/^250 /);
    const files = fs.readdirSync(dump);
    expect(files).toHaveLength(1);
    expect(fs.readFileSync(path.join(dump, files[0]!), 'latin1')).toMatch(/Message-ID: <sk1@test>/);
  } finally {
    await sink.stop();
    fs.rmSync(dump, { recursive: true, force: true });
  }
});

describe('postfix (two instances) + dovecot', () => {
  const cleanups: Array<() => Promise<void>> = [];
  let a: PostfixInstance;
  let b: PostfixInstance;
  let sinkA: RecordServer;
  let sinkB: RecordServer;

  beforeAll(async () => {
    // 300 ms before each 250, like ferrypost's durable write
    sinkA = await startRecordServer(await freePort(), { replyDelayMs: 300 });
    cleanups.push(sinkA.stop);
    sinkB = await startRecordServer(await freePort());
    cleanups.push(sinkB.stop);
    const [ra, rb] = await Promise.allSettled([
      startPostfix({ name: 'a', localDomain: 'offline.test', ferrypostPort: sinkA.port, relayDomains: ['home.test'] }),
      startPostfix({ name: 'b', localDomain: 'home.test', ferrypostPort: sinkB.port, relayDomains: ['offline.test'] }),
    ]);
    for (const r of [ra, rb]) if (r.status === 'fulfilled') cleanups.push(r.value.stop);
    if (ra.status === 'rejected') throw ra.reason;
    if (rb.status === 'rejected') throw rb.reason;
    a = ra.value;
    b = rb.value;
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  test('two instances run at once, each delivering its own domain byte-exact into its Maildir', async () => {
    expect(a.port).not.toBe(b.port);
    const ma = sample('to alice at A', 'pa1');
    const mb = sample('to alice at B', 'pb1');
    expect(await sendSmtp(a.port, { from: 'sender@home.test', to: ['alice@offline.test'], raw: ma })).toMatch(/^250 /);
    expect(await sendSmtp(b.port, { from: 'sender@offline.test', to: ['alice@home.test'], raw: mb })).toMatch(/^250 /);
    const [fa] = await a.waitForMail('alice', 1);
    const [fb] = await b.waitForMail('alice', 1);
    const da = fs.readFileSync(fa!);
    expectEndsWith(da, toLf(ma));
    expect(da.toString('latin1')).toMatch(/^Return-Path: <sender@home.test>\nX-Original-To: alice@offline.test\nDelivered-To: alice@offline.test\n/);
    expectEndsWith(fs.readFileSync(fb!), toLf(mb));
    expect(fs.statSync(fa!).uid).toBe(5000);
    expect(a.maildirFiles('bob')).toEqual([]);
    await a.waitForLog(/to=<alice@offline.test>.*status=sent/);
    expect(b.maillog()).not.toMatch(/offline\.test>.*status=sent \(delivered/);
  });

  test('relay domain and "the Internet" go to the ferrypost port with the envelope intact', async () => {
    const m = sample('to carol at home', 'pa2');
    await sendSmtp(a.port, { from: 'alice@offline.test', to: ['carol@home.test', 'dave@sub.home.test'], raw: m });
    const [got] = await sinkA.waitForMessages(1);
    expect(got!.from).toBe('alice@offline.test');
    expect(got!.to.sort()).toEqual(['carol@home.test', 'dave@sub.home.test']);
    expectEndsWith(got!.raw, m);
    expect(got!.helo).toBe('mx.offline.test');

    await sendSmtp(a.port, { from: 'alice@offline.test', to: ['eve@example.net'], raw: sample('internet', 'pa3') });
    const all = await sinkA.waitForMessages(2);
    expect(all[1]!.to).toEqual(['eve@example.net']);
    expect(sinkB.messages).toEqual([]);
    // the sink answers 300 ms after recording: wait for Postfix to see the 250
    await a.waitForLog(/to=<eve@example.net>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+,.*status=sent \(250 /);
    await a.waitForLog(/to=<carol@home.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+,.*status=sent \(250 /);
    expect(a.queue()).toMatch(/Mail queue is empty/);
  });

  test('an unknown local user is refused with 550 at RCPT', async () => {
    const err = (await sendSmtp(a.port, { from: 'x@home.test', to: ['nobody@offline.test'], raw: sample('x', 'pa4') }).then(
      () => undefined,
      (e: unknown) => e,
    )) as SmtpError | undefined;
    expect(err?.responseCode).toBe(550);
    expect(err?.response).toMatch(/5\.1\.1 <nobody@offline.test>/);
  });

  test('sendmail -C injection delivers into the instance', async () => {
    const m = toLf(sample('via sendmail', 'pa5', 'bob@offline.test'));
    sendmail(a.sendmailArgv, 'sender@home.test', ['bob@offline.test'], m);
    const [f] = await a.waitForMail('bob', 1);
    expectEndsWith(fs.readFileSync(f!), m);
  });

  test('dovecot lists the delivered messages over IMAP', async () => {
    const d = await startDovecot({ mailDir: a.mailDir, users: { alice: 'alicepw', bob: 'bobpw' } });
    cleanups.push(d.stop);
    const alice = await imapList(d.port, 'alice', 'alicepw');
    expect(alice).toEqual({ count: 1, subjects: ['to alice at A'], messageIds: ['<pa1@test>'] });
    const bob = await imapList(d.port, 'bob', 'bobpw');
    expect(bob.subjects).toEqual(['via sendmail']);
    await expect(imapList(d.port, 'alice', 'wrong')).rejects.toThrow(/LOGIN -> NO/);
    await d.stop();
  });
});

describe('exim', () => {
  let ex: EximInstance | undefined;
  let sink: RecordServer | undefined;
  beforeAll(async () => {
    // 300 ms before the 250, like a durable write; Exim pipelines QUIT and half-closes meanwhile.
    sink = await startRecordServer(await freePort(), { replyDelayMs: 300 });
    ex = await startExim({ localDomain: 'home.test', ferrypostPort: sink.port });
  });
  afterAll(async () => {
    await ex?.stop();
    await sink?.stop();
  });

  test('delivers local users to Maildir byte-exact and relays the rest to the ferrypost port', async () => {
    const m = sample('exim to alice', 'ex1');
    expect(await sendSmtp(ex!.port, { from: 'sender@offline.test', to: ['alice@home.test'], raw: m })).toMatch(/^250 /);
    const [f] = await ex!.waitForMail('alice', 1);
    const data = fs.readFileSync(f!);
    expectEndsWith(data, toLf(m));
    expect(data.toString('latin1')).toMatch(/^Return-path: <sender@offline.test>\nEnvelope-to: alice@home.test\n/);
    expect(fs.statSync(f!).uid).toBe(5000);

    const r = sample('exim to carol', 'ex2');
    await sendSmtp(ex!.port, { from: 'alice@home.test', to: ['carol@offline.test'], raw: r });
    const [got] = await sink!.waitForMessages(1);
    expect({ from: got!.from, to: got!.to }).toEqual({ from: 'alice@home.test', to: ['carol@offline.test'] });
    expectEndsWith(got!.raw, r);
    await ex!.waitForLog(/=> carol@offline.test R=ferrypost T=ferrypost_smtp H=127\.0\.0\.1 .*C="250 /);
    expect(ex!.mainlog()).not.toMatch(/defer/);
  });

  test('refuses an unknown local user with 550 at RCPT', async () => {
    const err = (await sendSmtp(ex!.port, { from: 'x@offline.test', to: ['nobody@home.test'], raw: sample('x', 'ex3') }).then(
      () => undefined,
      (e: unknown) => e,
    )) as SmtpError | undefined;
    expect(err?.responseCode).toBe(550);
  });

  test('sendmail-style injection (-odi -i -f SENDER -- RCPT) delivers before exit', async () => {
    const m = toLf(sample('exim via sendmail', 'ex4', 'bob@home.test'));
    sendmail(ex!.eximArgv, 'sender@offline.test', ['bob@home.test'], m);
    const files = ex!.maildirFiles('bob'); // -odi: delivered before the command returned
    expect(files).toHaveLength(1);
    expectEndsWith(fs.readFileSync(files[0]!), m);
    expect(ex!.queueCount()).toBe(0);
  });

  test('a second startExim waits for the lock', async () => {
    const second = startExim({ localDomain: 'x.test', ferrypostPort: 1025, lockTimeoutMs: 300 });
    await expect(second).rejects.toThrow(/Exim test lock/);
    await waitForPort(ex!.port, 1000); // the first instance is untouched
  });
});
