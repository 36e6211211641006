/**
 * Postfix hands mail to ferrypost through pipe(8) and `ferrypost sendmail` (deploy/postfix/master.cf's
 * "ferrypost" service), running as an unprivileged user as it would in production.
 */
import { chownSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLI, nodePair, startNode, tmpdir, type RunningNode, type TestNode } from '../helpers/node.js';
import { userIds } from '../helpers/stack/proc.js';
import { startPostfix, type PostfixInstance } from '../helpers/stack/postfix.js';
import { sendSmtp } from '../helpers/stack/smtp-client.js';

let pf: PostfixInstance | undefined;
const running: RunningNode[] = [];
let a: TestNode;
let b: TestNode;
let base: string;

function chownR(p: string, uid: number, gid: number): void {
  chownSync(p, uid, gid);
  if (statSync(p).isDirectory()) for (const n of readdirSync(p)) chownR(path.join(p, n), uid, gid);
}

beforeAll(async () => {
  base = tmpdir('fp-pipe-');
  ({ a, b } = nodePair(base, { offlineDomain: 'offline.test' }));
  a.edit((d) => d.deleteIn(['smtp']));
  b.edit((d) => {
    d.deleteIn(['smtp']);
    d.setIn(['receive', 'rescan_interval'], '1s');
    d.setIn(['delivery', 'path'], 'mail/%u/Maildir');
  });
  // Node A belongs to the unprivileged user pipe(8) runs ferrypost as (vmail here).
  const vmail = userIds('vmail');
  chownR(base, vmail.uid, vmail.gid);
  chownSync(path.dirname(base), vmail.uid, vmail.gid);
  pf = await startPostfix({
    name: 'pipe',
    localDomain: 'offline.test',
    users: ['alice'],
    ferrypostPort: 9, // unused: relay domains go through the pipe
    relayDomains: ['home.test'],
    pipe: { sendmail: `${process.execPath} ${CLI} sendmail --config ${a.config}`, user: 'vmail' },
  });
  running.push(await startNode(b, {}, vmail)); // both nodes run as the same user, as they would share a tree
});

afterAll(async () => {
  for (const r of running) await r.stop();
  await pf?.stop();
});

it('Postfix → pipe(8) → ferrypost sendmail → packet → node B → Maildir, byte-exact, null sender kept', async () => {
  const msg = Buffer.from('From: alice@offline.test\r\nTo: carol@home.test\r\nSubject: via pipe\r\nMessage-ID: <pipe1@test>\r\n\r\n.dot\r\nbody \xe9\r\n', 'latin1');
  await sendSmtp(pf!.port, { from: 'alice@offline.test', to: ['carol@home.test', 'dave@home.test'], raw: msg });
  await sendSmtp(pf!.port, { from: '', to: ['carol@home.test'], raw: Buffer.from('Subject: bounce-like\r\n\r\nnull sender\r\n') });
  const mailbox = (u: string) => path.join(b.dir, 'mail', u, 'Maildir', 'new');
  const list = (u: string) => {
    try {
      return readdirSync(mailbox(u)).map((f) => path.join(mailbox(u), f));
    } catch {
      return [];
    }
  };
  const end = Date.now() + 30_000;
  let files: string[] = [];
  while (Date.now() < end) {
    files = [...list('carol'), ...list('dave')];
    if (files.length >= 3) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(pf!.maillog()).toMatch(/relay=ferrypost, .*status=sent \(delivered via ferrypost service\)/);
  const contents = files.map((f) => readFileSync(f, 'latin1'));
  expect(contents).toHaveLength(3);
  // Postfix adds its Received header; the rest is byte-identical (LF line ends: pipe(8) hands over the queue file's lines).
  const viaPipe = contents.filter((c) => c.includes('Subject: via pipe'));
  expect(viaPipe).toHaveLength(2);
  for (const c of viaPipe) {
    expect(c).toMatch(/^Return-Path: <alice@offline\.test>\r?\nDelivered-To: (carol|dave)@home\.test\r?\n/);
    // pipe(8) hands over the queue file's lines with LF endings, after Postfix's Received header.
    const asPiped = msg.toString('latin1').replace(/\r\n/g, '\n');
    expect(c.endsWith(asPiped)).toBe(true);
    expect(c).toMatch(/\nReceived: from [^\n]+\n(\t[^\n]+\n)*From: alice@offline\.test\n/);
  }
  const nullSender = contents.find((c) => c.includes('bounce-like'));
  expect(nullSender).toMatch(/^Return-Path: <>/);
});
