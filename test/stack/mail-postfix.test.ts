/**
 * The mail path end to end with real Postfix on both sides and Dovecot reading the result:
 * Postfix A → ferrypost A → tree → ferrypost B → Postfix B → Maildir, and back; the MTA down and
 * a 5xx from it (DSN back to the sender's Maildir on the other node).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/node.js';
import { freePort } from '../helpers/ports.js';
import { treePackets, twoSites, type SiteNodes } from '../helpers/sites.js';
import { imapList, startDovecot, type DovecotInstance } from '../helpers/stack/dovecot.js';
import { startPostfix, type PostfixInstance } from '../helpers/stack/postfix.js';
import { sendSmtp } from '../helpers/stack/smtp-client.js';
import { asStored, splitTrace, waitUntil } from '../helpers/mail.js';

let sites: SiteNodes;
let pfA: PostfixInstance;
let pfB: PostfixInstance | undefined;
let dovecot: DovecotInstance | undefined;
let pfPortB: number;

beforeAll(async () => {
  const pfPortA = await freePort();
  pfPortB = await freePort();
  sites = await twoSites({ deliverA: { method: 'smtp', port: pfPortA }, deliverB: { method: 'smtp', port: pfPortB } });
  pfA = await startPostfix({ name: 'site-a', localDomain: 'offline.test', users: ['alice', 'bob'], ferrypostPort: sites.fpPortA, relayDomains: ['home.test'], port: pfPortA });
  await sites.start('a');
  await sites.start('b');
});

afterAll(async () => {
  await sites?.stopAll();
  await dovecot?.stop();
  await pfB?.stop();
  await pfA?.stop();
});

/** A message with the things that break naive relays: 8-bit, dots, a long line, folded headers. */
function message(subject: string, from: string, to: string): Buffer {
  return Buffer.from(
    `From: ${from}\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}.${Date.now()}@test>\r\n` +
      `X-Folded: first part\r\n\tsecond part\r\nContent-Type: text/plain; charset=latin1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n` +
      `Gr\xfc\xdfe aus der H\xfctte\r\n.a line starting with a dot\r\n..two dots\r\n${'x'.repeat(900)}\r\nend\r\n`,
    'latin1',
  );
}



describe('mail through real Postfix on both sides', () => {
  it('MTA down at B: the packet waits, ferrypost queue shows why, then it is delivered when Postfix B starts', async () => {
    const msg = message('while B is down', 'alice@offline.test', 'carol@home.test');
    await sendSmtp(pfA.port, { from: 'alice@offline.test', to: ['carol@home.test'], raw: msg });
    // ferrypost B tries Postfix B (not running yet) and defers
    await waitUntil(() => /deferred/.test(cli(['queue'], { config: sites.b.config }).stdout), 30_000);
    const q = cli(['queue'], { config: sites.b.config }).stdout;
    expect(q).toMatch(/Incoming: 1 packet\(s\) deferred/);
    expect(q).toMatch(/ECONNREFUSED|connect|Connection/i);
    expect(q).toContain('carol@home.test');
    expect(treePackets(sites.tree)).toHaveLength(1);
    // the MTA returns
    pfB = await startPostfix({ name: 'site-b', localDomain: 'home.test', users: ['carol', 'dave'], ferrypostPort: sites.fpPortB, relayDomains: ['offline.test'], port: pfPortB });
    const [file] = await pfB.waitForMail('carol', 1, 30_000);
    const { rest } = splitTrace(readFileSync(file!));
    expect(rest).toEqual(asStored(msg));
    await waitUntil(() => treePackets(sites.tree).length === 0, 10_000);
  });

  it('A → B: byte-identical body and original headers, envelope kept, packet gone, Dovecot lists it', async () => {
    const msg = message('cabin to home', 'alice@offline.test', 'carol@home.test, dave@home.test');
    const reply = await sendSmtp(pfA.port, { from: 'alice@offline.test', to: ['carol@home.test', 'dave@home.test'], raw: msg });
    expect(reply).toMatch(/^250/);
    const [carol] = await pfB!.waitForMail('carol', 2, 30_000).then((f) => f.slice(1));
    const [dave] = await pfB!.waitForMail('dave', 1, 30_000);
    for (const [file, rcpt] of [[carol!, 'carol@home.test'], [dave!, 'dave@home.test']] as const) {
      const { trace, rest } = splitTrace(readFileSync(file));
      expect(rest).toEqual(asStored(msg));
      expect(trace[0]).toBe('Return-Path: <alice@offline.test>');
      expect(trace).toContain(`Delivered-To: ${rcpt}`);
      expect(trace).toContain(`X-Original-To: ${rcpt}`);
      // The hop through ferrypost is visible: Postfix B received it from ferrypost B, which got it from Postfix A.
      expect(trace.filter((t) => t.startsWith('Received:')).length).toBeGreaterThanOrEqual(2);
    }
    await waitUntil(() => treePackets(sites.tree).length === 0, 10_000);
    dovecot = await startDovecot({ mailDir: pfB!.mailDir, users: { carol: 'carolpw' } });
    const list = await imapList(dovecot.port, 'carol', 'carolpw');
    expect(list.count).toBe(2);
    expect(list.subjects).toContain('cabin to home');
  });

  it('B → A: mail from the Internet side for the offline domain reaches the cabin Maildir', async () => {
    const msg = message('home to cabin', 'carol@home.test', 'bob@offline.test');
    await sendSmtp(pfB!.port, { from: 'carol@home.test', to: ['bob@offline.test'], raw: msg });
    const [file] = await pfA.waitForMail('bob', 1, 30_000);
    const { trace, rest } = splitTrace(readFileSync(file!));
    expect(rest).toEqual(asStored(msg));
    expect(trace[0]).toBe('Return-Path: <carol@home.test>');
    expect(trace).toContain('Delivered-To: bob@offline.test');
    await waitUntil(() => treePackets(sites.tree).length === 0, 10_000);
  });

  it('5xx from Postfix B: the DSN travels back and reaches the sender\'s Maildir at A', async () => {
    const msg = message('to nobody', 'alice@offline.test', 'nobody@home.test');
    await sendSmtp(pfA.port, { from: 'alice@offline.test', to: ['nobody@home.test', 'dave@home.test'], raw: msg });
    await pfB!.waitForMail('dave', 2, 30_000); // the good recipient still gets it
    const files = await pfA.waitForMail('alice', 1, 45_000);
    const dsn = readFileSync(files[0]!).toString('latin1');
    expect(dsn).toMatch(/^Return-Path: <>$/m);
    expect(dsn).toMatch(/Content-Type: multipart\/report; report-type=delivery-status/i);
    expect(dsn).toMatch(/Final-Recipient: rfc822; ?nobody@home\.test/i);
    expect(dsn).toMatch(/Action: failed/);
    expect(dsn).toMatch(/Status: 5\.1\.1/);
    expect(dsn).toMatch(/Diagnostic-Code: smtp; ?550/);
    expect(dsn).toContain('Subject: to nobody');
    expect(dsn).not.toMatch(/dave@home\.test.*\n.*Action: failed/);
    await waitUntil(() => treePackets(sites.tree).length === 0, 10_000);
  });
});

