/**
 * kill -9 at the moments that matter, with real processes. Nothing accepted is lost; nothing is
 * injected twice once the journal recorded it; the one documented window duplicates, never loses.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hashFromPacketName } from '../../src/tree/layout.js';
import { freePort } from '../helpers/ports.js';
import { nodePair, startNode, tmpdir, type RunningNode, type TestNode } from '../helpers/node.js';
import { rawSmtp } from '../helpers/smtp-raw.js';
import { waitUntil } from '../helpers/mail.js';
import { startRecordServer } from '../helpers/stack/record-server.js';

const running: RunningNode[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) await r.kill9();
});

async function start(node: TestNode, env: NodeJS.ProcessEnv = {}): Promise<RunningNode> {
  const r = await startNode(node, env);
  running.push(r);
  return r;
}

/** Two nodes, A listens for SMTP on a free port; B delivers into its Maildir. */
async function pair() {
  const base = tmpdir('fp-crash-');
  const p = nodePair(base, { offlineDomain: 'offline.test' });
  const port = await freePort();
  p.a.edit((d) => {
    d.setIn(['smtp', 'listen'], [`127.0.0.1:${port}`]);
    d.setIn(['smtp', 'memory_spool_limit'], '64k');
  });
  p.b.edit((d) => {
    d.deleteIn(['smtp']);
    d.setIn(['receive', 'rescan_interval'], '1s');
  });
  return { ...p, port, maildirB: path.join(p.b.dir, 'Maildir') };
}

function packets(tree: string): string[] {
  if (!existsSync(tree)) return [];
  return (readdirSync(tree, { recursive: true }) as string[]).filter((n) => hashFromPacketName(path.basename(n)) !== undefined).map((n) => path.join(tree, n));
}

function mails(maildir: string): Buffer[] {
  const dir = path.join(maildir, 'new');
  return existsSync(dir) ? readdirSync(dir).map((n) => readFileSync(path.join(dir, n))) : [];
}


const MESSAGE = Buffer.from('From: alice@home.test\r\nTo: bob@offline.test\r\nSubject: crash test\r\n\r\nline 1\r\n..dot-stuffed line\r\nline 3\r\n');

async function smtpTransaction(port: number) {
  const s = await rawSmtp(port);
  expect(await s.cmd('EHLO client.test')).toMatch(/^250/);
  expect(await s.cmd('MAIL FROM:<alice@home.test>')).toMatch(/^250/);
  expect(await s.cmd('RCPT TO:<bob@offline.test>')).toMatch(/^250/);
  expect(await s.cmd('DATA')).toMatch(/^354/);
  return s;
}

/** A queues one message for B; B's receiver starts with a crash point and dies there (SIGKILL). */
async function deliverAndCrash(a: TestNode, b: TestNode, port: number, at: 'after-inject' | 'after-delivered', message = MESSAGE): Promise<void> {
  await start(a);
  const s = await smtpTransaction(port);
  s.write(Buffer.concat([message, Buffer.from('.\r\n')]));
  expect(await s.reply()).toMatch(/^250/);
  const crashing = await startNode(b, { FERRYPOST_TEST_CRASH_AT: at });
  running.push(crashing);
  await new Promise<void>((resolve) => crashing.proc.once('exit', () => resolve()));
  expect(crashing.proc.signalCode).toBe('SIGKILL');
}

describe('kill -9', () => {
  it('mid-DATA: the client sees a failure and no packet exists', async () => {
    const { b: _b, a, tree, port } = await pair();
    const nodeA = await start(a);
    const s = await smtpTransaction(port);
    s.write(MESSAGE);
    s.write(Buffer.alloc(300_000, 'x')); // past the memory limit: spooling to disk is under way
    const spool = path.join(a.dir, 'state', 'spool');
    await waitUntil(() => existsSync(spool) && readdirSync(spool).length > 0, 15_000);
    await nodeA.kill9();
    expect(await s.closed).toMatch(/closed|error/);
    expect(packets(tree)).toEqual([]);
    // Restart: the partial spool is cleaned up, still no packet.
    await start(a);
    expect(existsSync(spool) ? readdirSync(spool) : []).toEqual([]);
    expect(packets(tree)).toEqual([]);
  });

  it('right after 250: the packet is complete and is delivered later, byte-exact', async () => {
    const { a, b, tree, port, maildirB } = await pair();
    const nodeA = await start(a);
    const s = await smtpTransaction(port);
    s.write(Buffer.concat([MESSAGE, Buffer.from('.\r\n')]));
    const reply = await s.reply();
    await nodeA.kill9();
    expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as [a-z2-7]{26}/);
    const [p] = packets(tree);
    expect(p).toBeDefined();
    // complete: the content hashes to the name
    expect(createHash('sha256').update(readFileSync(p!)).digest()).toEqual(hashFromPacketName(path.basename(p!)));
    await start(b);
    await waitUntil(() => mails(maildirB).length === 1, 15_000);
    // Maildir has Return-Path + Delivered-To prepended; the SMTP-unstuffed message follows unchanged.
    const got = mails(maildirB)[0]!;
    const expected = Buffer.from(MESSAGE.toString('latin1').replace('..dot', '.dot'), 'latin1');
    expect(got.subarray(got.length - expected.length)).toEqual(expected);
    expect(got.toString()).toMatch(/^Return-Path: <alice@home.test>\r\nDelivered-To: bob@offline.test\r\n/);
    await waitUntil(() => packets(tree).length === 0, 15_000);
  });

  it('receiver killed after the journal recorded delivery, before the unlink: no second injection', async () => {
    const { a, b, tree, port, maildirB } = await pair();
    await deliverAndCrash(a, b, port, 'after-delivered');
    expect(mails(maildirB)).toHaveLength(1);
    expect(packets(tree)).toHaveLength(1); // still there: killed before the unlink
    const again = await start(b);
    await again.waitForEvent('rx.recover-delivered');
    await waitUntil(() => packets(tree).length === 0, 15_000);
    await new Promise((r) => setTimeout(r, 1500)); // a rescan or two
    expect(mails(maildirB)).toHaveLength(1);
    expect(again.events('rx.injected')).toHaveLength(0);
  });

  it('receiver killed after injection, before the journal: Maildir delivery is not repeated (the packet id is in the file name)', async () => {
    const { a, b, tree, port, maildirB } = await pair();
    await deliverAndCrash(a, b, port, 'after-inject');    expect(mails(maildirB)).toHaveLength(1);
    expect(packets(tree)).toHaveLength(1);
    const again = await start(b);
    await again.waitForEvent('rx.recover-injecting');
    await again.waitForEvent('rx.resume-skip');
    await waitUntil(() => packets(tree).length === 0, 15_000);
    expect(mails(maildirB)).toHaveLength(1);
    expect(again.events('rx.injected')).toHaveLength(0);
  });

  it('large message (decoded straight into Maildir tmp/): killed after the rename into new/, before the journal → not repeated, tmp/ empty', async () => {
    const { a, b, tree, port, maildirB } = await pair();
    // Random base64: still over 1 MiB (the in-memory limit) once compressed, so the receiver stages it.
    const body = randomBytes(1536 * 1024).toString('base64').replace(/.{76}/g, '$&\r\n');
    const big = Buffer.concat([MESSAGE, Buffer.from(`${body}\r\n`)]);
    await deliverAndCrash(a, b, port, 'after-inject', big);
    expect(packets(tree).map((p) => statSync(p).size)).toEqual([expect.any(Number)]);
    expect(statSync(packets(tree)[0]!).size).toBeGreaterThan(1 << 20);
    expect(mails(maildirB)).toHaveLength(1);
    const again = await start(b);
    await again.waitForEvent('rx.resume-skip');
    await waitUntil(() => packets(tree).length === 0, 30_000);
    const got = mails(maildirB);
    expect(got).toHaveLength(1);
    const expected = Buffer.from(big.toString('latin1').replace('..dot', '.dot'), 'latin1');
    expect(got[0]!.subarray(got[0]!.length - expected.length).equals(expected)).toBe(true);
    expect(again.events('rx.injected')).toHaveLength(0);
    expect(readdirSync(path.join(maildirB, 'tmp'))).toEqual([]); // the second run's staged copy was discarded
  });

  it('the one documented window: SMTP injection accepted, receiver killed before the journal → injected again (a duplicate, never a loss)', async () => {
    const { a, b, tree, port } = await pair();
    const mta = await startRecordServer(await freePort());
    try {
      b.edit((d) => d.setIn(['delivery'], { method: 'smtp', host: '127.0.0.1', port: mta.port }));
      await deliverAndCrash(a, b, port, 'after-inject');      expect(mta.messages).toHaveLength(1);
      await start(b);
      await waitUntil(() => packets(tree).length === 0, 15_000);
      expect(mta.messages).toHaveLength(2); // the MTA cannot tell us it already has it
      expect(mta.messages[1]!.raw).toEqual(mta.messages[0]!.raw);
    } finally {
      for (const r of running.splice(0)) await r.kill9(); // their pooled connections would hold the MTA's close
      await mta.stop();
    }
  });
});
