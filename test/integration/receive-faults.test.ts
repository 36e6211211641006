/**
 * Faults between the next hop's acceptance and the journal, and copies of one packet in two places:
 * never a second injection, never a corrupted one. Real codec, journal, receiver and Maildir injector;
 * faults are injected into the journal and the Maildir's file calls.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import * as nodeFs from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMaildirInjector } from '../../src/inject/maildir.js';
import { messageStream, type Injector, type RecipientResult } from '../../src/inject/types.js';
import { listQuarantine } from '../../src/quarantine/quarantine.js';
import type { Journal } from '../../src/store/journal.js';
import { enqueueFor, makeKeys, receivingNode, type NodeKeys, type ReceivingNode } from '../helpers/inproc.js';
import { tmpdir } from '../helpers/node.js';

let A: NodeKeys, B: NodeKeys, C: NodeKeys;
beforeAll(async () => {
  [A, B, C] = await Promise.all([makeKeys('a'), makeKeys('b'), makeKeys('c')]);
});

let base: string;
let tree: string;
let rx: ReceivingNode | undefined;
afterEach(async () => {
  await rx?.close();
  rx = undefined;
  rmSync(base, { recursive: true, force: true });
});

function begin(): void {
  base = tmpdir('fp-rx-faults-');
  tree = path.join(base, 'tree');
}

async function send(message: Buffer): Promise<string> {
  const q = await enqueueFor(A, B, tree, path.join(base, 'a')).submit({ from: 'a@offline.test', to: ['b@home.test'] }, message);
  return q[0]!.path;
}

const ok = (to: string[]): RecipientResult[] => to.map((rcpt) => ({ rcpt, status: 'ok', code: 250, enhanced: '2.0.0', message: '250 ok' }));

/** Log lines as objects. */
function capture(): { log: pino.Logger; events: () => string[] } {
  const lines: Array<{ evt?: string }> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as { evt?: string }) });
  return { log, events: () => lines.map((l) => l.evt ?? '') };
}

describe('receiver faults', () => {
  it('a copy of a large packet under another peer\'s directory while the first is injected: byte-exact once, the copy quarantined', async () => {
    begin();
    // ~3 MiB of base64: the packet is over the in-memory limit, so the message goes through a work file
    const body = randomBytes(3 << 20).toString('base64').replace(/.{76}/g, '$&\r\n');
    const msg = Buffer.from(`From: a@offline.test\r\nTo: b@home.test\r\nSubject: big\r\n\r\n${body}\r\n`);
    const packet = await send(msg);
    let reading!: () => void;
    const halfway = new Promise<void>((r) => (reading = r));
    const injected: Buffer[] = [];
    const injector: Injector = {
      name: 'slow',
      async inject(req) {
        const chunks: Buffer[] = [];
        let n = 0;
        for await (const c of messageStream(req)) {
          chunks.push(Buffer.from(c));
          n += c.length;
          if (n > msg.length / 2) reading();
          await new Promise((r) => setTimeout(r, 5));
        }
        injected.push(Buffer.concat(chunks));
        return ok(req.envelope.to);
      },
      async close() {},
    };
    rx = receivingNode(B, [A, C], tree, path.join(base, 'b'), { injector, concurrency: 4 });
    const first = rx.receiver.scanOnce();
    await halfway;
    const inC = path.join(tree, B.fingerprint, C.fingerprint);
    mkdirSync(inC, { recursive: true });
    copyFileSync(packet, path.join(inC, path.basename(packet)));
    await rx.receiver.scanOnce(); // the copy has the same content: it waits for the first
    await first;
    expect(injected).toHaveLength(1);
    expect(injected[0]!.equals(msg)).toBe(true);
    expect(existsSync(packet)).toBe(false);
    await rx.receiver.scanOnce();
    const q = await listQuarantine(rx.stateDir);
    expect(q.map((e) => e.reason.code)).toEqual(['PACKET_WRONG_SENDER']);
    expect(injected).toHaveLength(1);
    expect(readdirSync(inC)).toEqual([]);
  });

  it('the "delivered" commit fails after the MTA accepted: the retry records it without injecting again', async () => {
    begin();
    const packet = await send(Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
    let failures = 1;
    const wrapJournal = (j: Journal): Journal => ({
      ...j,
      commit(batch, now) {
        if (batch.delivered?.length && failures-- > 0) throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_FSYNC' });
        return j.commit(batch, now);
      },
    });
    let injections = 0;
    const injector: Injector = { name: 'smtp-like', inject: async (req) => ((injections += 1), ok(req.envelope.to)), async close() {} };
    const { log, events } = capture();
    rx = receivingNode(B, [A], tree, path.join(base, 'b'), { injector, wrapJournal, log });
    await rx.receiver.scanOnce();
    expect(rx.outcomes.map((o) => o.outcome)).toEqual(['error']);
    expect(existsSync(packet)).toBe(true);
    await rx.receiver.scanOnce();
    expect(rx.outcomes.map((o) => o.outcome)).toEqual(['error', 'delivered']);
    expect(injections).toBe(1);
    expect(events()).toContain('rx.record-retry');
    expect(existsSync(packet)).toBe(false);
  });

  it('a partial-progress record fails: recipients already accepted are never injected again, through a later deferral too', async () => {
    begin();
    const to = ['one@home.test', 'two@home.test', 'three@home.test'];
    const q = await enqueueFor(A, B, tree, path.join(base, 'a')).submit({ from: 'a@offline.test', to }, Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
    let failures = 1;
    const wrapJournal = (j: Journal): Journal => ({
      ...j,
      recipientsDone(hash, rcpts) {
        if (failures-- > 0) throw new Error('disk I/O error');
        return j.recipientsDone(hash, rcpts);
      },
    });
    const seen: string[][] = [];
    const injector: Injector = {
      name: 'smtp-like',
      async inject(req) {
        seen.push([...req.envelope.to]);
        // each attempt: the first recipient offered is accepted, the others deferred
        return req.envelope.to.map((rcpt, i): RecipientResult => (i === 0 ? { rcpt, status: 'ok', code: 250, message: 'ok' } : { rcpt, status: 'temp', code: 451, message: 'later' }));
      },
      async close() {},
    };
    let t = Date.now();
    rx = receivingNode(B, [A], tree, path.join(base, 'b'), { injector, wrapJournal, now: () => t });
    for (let i = 0; i < 3; i++) {
      await rx.receiver.scanOnce();
      t += 86_400_000;
    }
    expect(rx.outcomes.map((o) => o.outcome)).toEqual(['error', 'deferred', 'delivered']);
    expect(seen).toEqual([to, to.slice(1), to.slice(2)]);
    expect(existsSync(q[0]!.path)).toBe(false);
  });

  it('Maildir: renamed into new/ but the fsync of new/ failed → deferred; the retry finds it and delivers no second copy', async () => {
    begin();
    await send(Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
    const maildir = path.join(base, 'b', 'Maildir');
    let failOnce = true;
    const fs = {
      ...nodeFs,
      open: async (p: string, flags: string, mode?: number) => {
        if (failOnce && p.endsWith(`${path.sep}new`) && flags === 'r') {
          failOnce = false;
          throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
        }
        return nodeFs.open(p, flags, mode);
      },
    };
    const injector = createMaildirInjector({ method: 'maildir', path: maildir, add_headers: false }, { hostname: 'h', fs });
    let t = Date.now();
    rx = receivingNode(B, [A], tree, path.join(base, 'b'), { injector, now: () => t });
    await rx.receiver.scanOnce();
    expect(rx.outcomes.map((o) => o.outcome)).toEqual(['deferred']);
    expect(readdirSync(path.join(maildir, 'new'))).toHaveLength(1);
    t += 120_000;
    await rx.receiver.scanOnce();
    expect(rx.outcomes.map((o) => o.outcome)).toEqual(['deferred', 'delivered']);
    expect(readdirSync(path.join(maildir, 'new'))).toHaveLength(1);
  });

  it('a deferred packet whose file is then deleted (queue delete, the sender, a carrier) does not make the receiver rescan in a loop once due', async () => {
    begin();
    const packet = await send(Buffer.from('From: a@offline.test\r\nSubject: s\r\n\r\nx\r\n'));
    let scans = 0;
    const down: Injector = { name: 'down', inject: async (req) => req.envelope.to.map((rcpt) => ({ rcpt, status: 'temp', code: 451, message: '451 down' })), close: async () => undefined };
    rx = receivingNode(B, [A], tree, path.join(base, 'b'), { injector: down, retryInitialMs: 100, onScan: () => void scans++ });
    await rx.receiver.start();
    const until = async (pred: () => boolean) => {
      for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 25));
    };
    await until(() => rx!.outcomes.some((o) => o.outcome === 'deferred'));
    expect(rx.journal.inState('deferred')).toHaveLength(1);
    rmSync(packet);
    // Due 100 ms after the deferral: with the file gone it must not set the retry timer again and again.
    await new Promise((r) => setTimeout(r, 150));
    const before = scans;
    await new Promise((r) => setTimeout(r, 500));
    expect(scans - before).toBeLessThanOrEqual(2);
    expect(rx.journal.inState('deferred')).toHaveLength(1); // kept, in case the file comes back
  });

  it('a due deferred packet being decoded again does not make the receiver rescan while it is in hand', async () => {
    begin();
    // ~3 MiB: tens of ms of decoding per attempt, the window in which its record is still deferred and due
    const body = randomBytes(3 << 20).toString('base64').replace(/.{76}/g, '$&\r\n');
    await send(Buffer.from(`From: a@offline.test\r\nTo: b@home.test\r\nSubject: big\r\n\r\n${body}\r\n`));
    let scans = 0;
    const down: Injector = { name: 'down', inject: async (req) => req.envelope.to.map((rcpt) => ({ rcpt, status: 'temp', code: 451, message: '451 down' })), close: async () => undefined };
    rx = receivingNode(B, [A], tree, path.join(base, 'b'), { injector: down, retryInitialMs: 100, onScan: () => void scans++ });
    await rx.receiver.start();
    for (let i = 0; i < 200 && !rx.outcomes.length; i++) await new Promise((r) => setTimeout(r, 25));
    const deferrals = () => rx!.outcomes.filter((o) => o.outcome === 'deferred').length;
    const scansBefore = scans;
    const attemptsBefore = deferrals();
    await new Promise((r) => setTimeout(r, 1500)); // retries at +100, +200, +400, +800 ms (doubling)
    const attempts = deferrals() - attemptsBefore;
    expect(attempts).toBeGreaterThanOrEqual(2);
    // One scan per retry (the timer's), not one every few ms while each attempt decodes.
    expect(scans - scansBefore).toBeLessThanOrEqual(attempts + 2);
  });
});
