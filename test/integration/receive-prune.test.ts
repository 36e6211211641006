/**
 * The journal is pruned while the daemon runs, not only at start: a node that runs for months must not
 * keep a row for every packet it ever delivered. Real codec, journal, receiver and Maildir.
 */
import path from 'node:path';
import { expect, it } from 'vitest';
import { PRUNE_GRACE_MS } from '../../src/store/journal.js';
import { enqueueFor, receiverTests, receivingNode } from '../helpers/inproc.js';

const t = receiverTests('fp-rx-prune-');

it('a delivered packet\'s record goes once expires + PRUNE_GRACE_MS has passed, at the next prune interval', async () => {
  const tree = path.join(t.dir(), 'tree');
  let now = Date.now();
  const rx = t.track(receivingNode(t.B, [t.A], tree, path.join(t.dir(), 'b'), { now: () => now, pruneIntervalMs: 50 }));
  const [q] = await enqueueFor(t.A, t.B, tree, path.join(t.dir(), 'a'), { expiryMs: 3_600_000 })
    .submit({ from: 'a@offline.test', to: ['b@home.test'] }, Buffer.from('Subject: s\r\n\r\nhello\r\n'));
  await rx.receiver.start();
  await rx.receiver.scanOnce();
  expect(rx.outcomes.map((o) => o.outcome)).toEqual(['delivered']);
  await new Promise((r) => setTimeout(r, 400)); // the removed record rides on a commit within 200 ms; prunes ran meanwhile
  expect(rx.journal.byId(q!.id)?.state).toBe('removed'); // still within the grace: kept
  now += 3_600_000 + PRUNE_GRACE_MS + 1000;
  await new Promise((r) => setTimeout(r, 150));
  expect(rx.journal.byId(q!.id)).toBeUndefined();
});
