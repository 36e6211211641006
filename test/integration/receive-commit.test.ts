/**
 * The receiver's journal group commit, wired into the receiver: a batch closes as soon as every packet
 * in hand waits in it, also when the last other packet in hand ends without delivering (deferred).
 * The commit window is set to a minute, so a receiver that waited it out would time the test out.
 * Real codec, journal and receiver; the injector answers without writing anything.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { messageStream, type Injector, type RecipientResult } from '../../src/inject/types.js';
import type { Journal, JournalBatch } from '../../src/store/journal.js';
import { enqueueFor, receiverTests, receivingNode, type ReceivingNode } from '../helpers/inproc.js';

const t = receiverTests('fp-rx-commit-');

let base: string;
let rx: ReceivingNode | undefined;

const WINDOW_MS = 60_000;

async function sendAll(tree: string, subjects: string[]): Promise<void> {
  const enqueue = enqueueFor(t.A, t.B, tree, path.join(base, 'a'));
  for (const s of subjects) await enqueue.submit({ from: 'a@offline.test', to: ['b@home.test'] }, Buffer.from(`Subject: ${s}\r\n\r\nhello\r\n`));
}

/** Accepts every message, except one whose subject is "defer": answered 451 after `deferAfterMs`. */
function answering(deferAfterMs: number): Injector {
  return {
    name: 'answering',
    async inject(req): Promise<RecipientResult[]> {
      let text = '';
      for await (const c of messageStream(req)) text += Buffer.from(c).toString('latin1');
      if (text.startsWith('Subject: defer')) {
        await new Promise((r) => setTimeout(r, deferAfterMs));
        return req.envelope.to.map((rcpt) => ({ rcpt, status: 'temp', code: 451, enhanced: '4.3.0', message: '451 try later' }));
      }
      return req.envelope.to.map((rcpt) => ({ rcpt, status: 'ok', code: 250, enhanced: '2.0.0', message: '250 ok' }));
    },
    async close() {},
  };
}

/** The real journal, with every commit's batch recorded. */
function recording(batches: JournalBatch[]): (j: Journal) => Journal {
  return (j) => ({
    ...j,
    commit: (batch, now) => {
      batches.push({ delivered: [...(batch.delivered ?? [])], removed: [...(batch.removed ?? [])] });
      j.commit(batch, now);
    },
  });
}

describe('receiver: journal group commit', () => {
  it('two packets in hand, both delivered: one commit for both, without waiting out the window', async () => {
    base = t.dir();
    const tree = path.join(base, 'tree');
    await sendAll(tree, ['one', 'two']);
    const batches: JournalBatch[] = [];
    rx = t.track(receivingNode(t.B, [t.A], tree, path.join(base, 'b'), { injector: answering(0), concurrency: 2, commitWindowMs: WINDOW_MS, wrapJournal: recording(batches) }));
    const t0 = Date.now();
    await rx.receiver.scanOnce();
    expect(Date.now() - t0).toBeLessThan(WINDOW_MS / 4);
    expect(rx.outcomes.map((o) => o.outcome)).toEqual(['delivered', 'delivered']);
    expect(batches.filter((b) => b.delivered!.length > 0).map((b) => b.delivered!.length)).toEqual([2]);
    expect(rx.journal.inState('delivered').length + rx.journal.inState('removed').length).toBe(2);
  }, WINDOW_MS / 2);

  it('the third packet in hand is deferred after the other two wait: they commit when it ends', async () => {
    base = t.dir();
    const tree = path.join(base, 'tree');
    await sendAll(tree, ['one', 'defer', 'two']);
    const batches: JournalBatch[] = [];
    rx = t.track(receivingNode(t.B, [t.A], tree, path.join(base, 'b'), { injector: answering(300), concurrency: 3, commitWindowMs: WINDOW_MS, wrapJournal: recording(batches) }));
    const t0 = Date.now();
    await rx.receiver.scanOnce();
    expect(Date.now() - t0).toBeLessThan(WINDOW_MS / 4);
    expect(rx.outcomes.map((o) => o.outcome).sort()).toEqual(['deferred', 'delivered', 'delivered']);
    // Both delivered packets waited for the deferred one to end, then shared one commit.
    expect(batches.filter((b) => b.delivered!.length > 0).map((b) => b.delivered!.length)).toEqual([2]);
    expect(rx.journal.inState('deferred')).toHaveLength(1);
  }, WINDOW_MS / 2);
});
