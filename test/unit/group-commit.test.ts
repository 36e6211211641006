// The receiver's group commit on a real journal: delivered() resolves only once its record is
// committed, removed() rides along with a later transaction, a failing batch rejects its waiters,
// and a "crash" (journal closed) with removed records still pending leaves delivered entries that
// recovery finishes.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createGroupCommit } from '../../src/receive/group-commit.js';
import { openJournal, type Journal } from '../../src/store/journal.js';

const FROM = 'b'.repeat(40);
const hash = (n: number) => n.toString(16).padStart(64, '0');
const pkt = (n: number) => ({ hash: hash(n), id: `id${n}`, fromNode: FROM, recipients: ['a@x.example'], expires: 5_000_000, size: 10 });

let dir: string;
let file: string;
let j: Journal;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fp-gc-'));
  file = join(dir, 'journal.sqlite');
  j = openJournal(file);
});
afterEach(async () => {
  vi.restoreAllMocks();
  j.close();
  await rm(dir, { recursive: true, force: true });
});

describe('group commit', () => {
  it('packets delivered together share one transaction; each resolves only after it is committed', async () => {
    for (const n of [1, 2, 3]) j.begin(pkt(n));
    const commit = vi.spyOn(j, 'commit');
    const gc = createGroupCommit(j, () => 100, { maxDelayMs: 5 });
    const states: string[] = [];
    const all = [1, 2, 3].map((n) => gc.delivered(hash(n)).then(() => states.push(j.byHash(hash(n))!.state)));
    expect(j.byHash(hash(1))?.state).toBe('injecting'); // nothing written before the batch closes
    await Promise.all(all);
    expect(states).toEqual(['delivered', 'delivered', 'delivered']);
    expect(commit).toHaveBeenCalledTimes(1);
    expect(commit.mock.calls[0]![0]).toEqual({ delivered: [hash(1), hash(2), hash(3)], removed: [] });
  });

  it('removed records ride along with the next delivered batch, or are written alone after a while', async () => {
    j.begin(pkt(1));
    j.begin(pkt(2));
    const commit = vi.spyOn(j, 'commit');
    const gc = createGroupCommit(j, () => 100, { maxDelayMs: 2, removedDelayMs: 50 });
    await gc.delivered(hash(1));
    gc.removed(hash(1));
    expect(j.byHash(hash(1))?.state).toBe('delivered'); // only queued
    expect(gc.removedPending(hash(1))).toBe(true);
    await gc.delivered(hash(2));
    expect(commit).toHaveBeenCalledTimes(2);
    expect(commit.mock.calls[1]![0]).toEqual({ delivered: [hash(2)], removed: [hash(1)] });
    expect(j.byHash(hash(1))?.state).toBe('removed');
    expect(gc.removedPending(hash(1))).toBe(false);
    gc.removed(hash(2));
    await new Promise((r) => setTimeout(r, 120));
    expect(commit).toHaveBeenCalledTimes(3);
    expect(j.byHash(hash(2))?.state).toBe('removed');
  });

  it('commits at once when maxBatch records are pending', async () => {
    for (const n of [1, 2]) j.begin(pkt(n));
    const gc = createGroupCommit(j, () => 100, { maxBatch: 2, maxDelayMs: 10_000 });
    await Promise.all([gc.delivered(hash(1)), gc.delivered(hash(2))]);
    expect(j.inState('delivered')).toHaveLength(2);
  });

  it('commits at once when every packet in hand waits for it, not after the window', async () => {
    for (const n of [1, 2, 3]) j.begin(pkt(n));
    let inHand = 3;
    const commit = vi.spyOn(j, 'commit');
    const gc = createGroupCommit(j, () => 100, { maxDelayMs: 60_000, inHand: () => inHand });
    const first = [gc.delivered(hash(1)), gc.delivered(hash(2))];
    await new Promise((r) => setTimeout(r, 20));
    expect(commit).not.toHaveBeenCalled(); // the third packet in hand may still join
    // The third one ends another way (e.g. deferred): the two left both wait, so nothing can join.
    inHand = 2;
    gc.settle();
    await Promise.all(first);
    expect(commit).toHaveBeenCalledTimes(1);
    expect(commit.mock.calls[0]![0]).toEqual({ delivered: [hash(1), hash(2)], removed: [] });
    // One packet alone in hand commits at once as well.
    inHand = 1;
    await gc.delivered(hash(3));
    expect(commit).toHaveBeenCalledTimes(2);
    expect(j.byHash(hash(3))?.state).toBe('delivered');
    gc.settle(); // nothing waiting: no empty transaction
    expect(commit).toHaveBeenCalledTimes(2);
  });

  it('a batch closed early because every packet in hand waits: a failing commit rejects its waiter', async () => {
    j.begin(pkt(1));
    const gc = createGroupCommit(j, () => 100, { maxDelayMs: 60_000, inHand: () => 1 });
    await expect(gc.delivered(hash(2))).rejects.toThrow(/unknown packet hash/); // hash(2) is not in the journal
    await gc.delivered(hash(1));
    expect(j.byHash(hash(1))?.state).toBe('delivered');
  });

  it('a failing batch rejects every waiter of that batch; the next batch is unaffected', async () => {
    j.begin(pkt(1));
    j.begin(pkt(3));
    const gc = createGroupCommit(j, () => 100, { maxDelayMs: 2 });
    // hash(2) is unknown to the journal: the whole transaction is refused
    const results = await Promise.allSettled([gc.delivered(hash(1)), gc.delivered(hash(2))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(j.byHash(hash(1))?.state).toBe('injecting');
    await gc.delivered(hash(3));
    expect(j.byHash(hash(3))?.state).toBe('delivered');
  });

  it('flush writes pending removed records (shutdown)', async () => {
    j.begin(pkt(1));
    const gc = createGroupCommit(j, () => 100, { removedDelayMs: 60_000 });
    await gc.delivered(hash(1));
    gc.removed(hash(1));
    gc.flush();
    expect(j.byHash(hash(1))?.state).toBe('removed');
  });

  it('a crash with removed records still pending leaves the entries delivered (recovery removes them, never injects again)', async () => {
    j.begin(pkt(1));
    const gc = createGroupCommit(j, () => 100, { removedDelayMs: 60_000 });
    await gc.delivered(hash(1));
    gc.removed(hash(1)); // the file is gone, the record is not written yet
    j.close(); // the process dies here
    j = openJournal(file);
    expect(j.inState('delivered').map((e) => e.hash)).toEqual([hash(1)]);
    expect(j.inState('injecting')).toEqual([]);
  });
});
