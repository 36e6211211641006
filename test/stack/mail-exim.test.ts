/**
 * Real Exim at the cabin (site A), real Postfix at home (site B), through the same kind of tree:
 * Exim relays outgoing mail to ferrypost A (with PIPELINING, QUIT and half-close), and ferrypost A
 * injects incoming mail with Exim's sendmail interface (`exim -odi -i -f SENDER -- RCPT`).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { treePackets, twoSites, type SiteNodes } from '../helpers/sites.js';
import { EXIM_BIN, EXIM_INSTANCE_DIR, startExim, type EximInstance } from '../helpers/stack/exim.js';
import { startPostfix, type PostfixInstance } from '../helpers/stack/postfix.js';
import { sendSmtp } from '../helpers/stack/smtp-client.js';
import { asStored, splitTrace, waitUntil } from '../helpers/mail.js';

let sites: SiteNodes;
let exim: EximInstance;
let pfB: PostfixInstance;

beforeAll(async () => {
  const pfPortB = await freePort();
  sites = await twoSites({
    deliverA: { method: 'sendmail', command: [EXIM_BIN, '-C', path.join(EXIM_INSTANCE_DIR, 'exim.conf'), '-odi'] },
    deliverB: { method: 'smtp', port: pfPortB },
  });
  exim = await startExim({ localDomain: 'offline.test', users: ['alice', 'bob'], ferrypostPort: sites.fpPortA });
  expect(exim.eximArgv.slice(0, 3)).toEqual([EXIM_BIN, '-C', path.join(EXIM_INSTANCE_DIR, 'exim.conf')]);
  pfB = await startPostfix({ name: 'exim-b', localDomain: 'home.test', users: ['carol'], ferrypostPort: sites.fpPortB, relayDomains: ['offline.test'], port: pfPortB });
  await sites.start('a');
  await sites.start('b');
});

afterAll(async () => {
  await sites?.stopAll();
  await pfB?.stop();
  await exim?.stop();
});

// Real mail carries Date and Message-ID (Exim adds them to local submissions that lack them).
const body = (s: string) => `Subject: ${s}\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <${s.replace(/\W/g, '')}@test>\r\nContent-Type: text/plain; charset=latin1\r\n\r\n\xe9t\xe9 \xe0 la cabane\r\n.dot line\r\n${'y'.repeat(990)}\r\n`;



describe('mail through real Exim', () => {
  it('Exim (cabin) → ferrypost A → tree → ferrypost B → Postfix B → Maildir, delivered once', async () => {
    const msg = Buffer.from(`From: alice@offline.test\r\nTo: carol@home.test\r\n${body('from exim')}`, 'latin1');
    await sendSmtp(exim.port, { from: 'alice@offline.test', to: ['carol@home.test'], raw: msg });
    const [file] = await pfB.waitForMail('carol', 1, 30_000);
    const { trace, rest } = splitTrace(readFileSync(file!));
    expect(rest).toEqual(asStored(msg));
    expect(trace[0]).toBe('Return-Path: <alice@offline.test>');
    // Exim got its 250 from ferrypost (pipelined QUIT + half-close) and did not defer or resend.
    await exim.waitForLog(/=> carol@home\.test .*C="250 2\.0\.0 Ok: queued as [a-z2-7]{26}"/, 10_000);
    expect(exim.mainlog()).not.toMatch(/== carol@home\.test/);
    await waitUntil(() => treePackets(sites.tree).length === 0, 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(pfB.maildirFiles('carol')).toHaveLength(1);
  });

  it('Postfix (home) → ferrypost B → tree → ferrypost A → exim -odi → Maildir', async () => {
    const msg = Buffer.from(`From: carol@home.test\r\nTo: bob@offline.test\r\n${body('to exim')}`, 'latin1');
    await sendSmtp(pfB.port, { from: 'carol@home.test', to: ['bob@offline.test'], raw: msg });
    const [file] = await exim.waitForMail('bob', 1, 30_000);
    const { trace, rest } = splitTrace(readFileSync(file!));
    expect(rest).toEqual(asStored(msg));
    expect(trace).toContain('Return-path: <carol@home.test>');
    expect(trace).toContain('Envelope-to: bob@offline.test');
    await waitUntil(() => treePackets(sites.tree).length === 0, 10_000);
  });
});
