// The receiver journal on a real SQLite file: persistence across reopen, state transitions, retries,
// pruning, replay detection by id, schema version guard.
import Database from 'better-sqlite3';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../../src/errors/index.js';
import { openJournal, PRUNE_GRACE_MS, type Journal } from '../../src/store/journal.js';

const FROM = 'b'.repeat(40);
const H1 = '11'.repeat(32);
const H2 = '22'.repeat(32);
const H3 = '33'.repeat(32);
const pkt = (hash: string, id: string, expires = 5_000_000) => ({ hash, id, fromNode: FROM, recipients: ['a@x.example', 'b@x.example'], expires, size: 1234 });

let dir: string;
let file: string;
let j: Journal;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fp-journal-'));
  file = join(dir, 'state', 'journal.sqlite');
  j = openJournal(file);
});
afterEach(async () => {
  j.close();
  await rm(dir, { recursive: true, force: true });
});

describe('journal', () => {
  it('runs at synchronous=NORMAL between transactions, also after the fsync\'d ones', () => {
    // A connection left at FULL fsyncs every transaction (it once did: see durably() in journal.ts).
    expect(j.syncLevel()).toBe(1);
    j.begin(pkt(H1, 'id1'), 1000);
    expect(j.syncLevel()).toBe(1);
    j.delivered(H1, 1001);
    expect(j.syncLevel()).toBe(1);
    j.begin(pkt(H2, 'id2'), 1002);
    j.defer(H2, 'x', 5000, 1003);
    j.commit({ removed: [H1] }, 1004);
    expect(j.syncLevel()).toBe(1);
  });

  it('begin inserts an injecting entry; data survives close and reopen', () => {
    const e = j.begin(pkt(H1, 'id1'), 1000);
    expect(e).toEqual({
      hash: H1, id: 'id1', fromNode: FROM, state: 'injecting', firstSeen: 1000, updated: 1000, attempts: 1,
      nextAttempt: null, lastError: null, doneRecipients: [], recipients: ['a@x.example', 'b@x.example'], expires: 5_000_000, size: 1234,
    });
    j.recipientsDone(H1, ['a@x.example']);
    j.close();
    j = openJournal(file);
    expect(j.byHash(H1)).toMatchObject({ state: 'injecting', doneRecipients: ['a@x.example'] });
    expect(j.byId('id1')?.hash).toBe(H1);
    expect(j.byHash(H2)).toBeUndefined();
    expect(j.byId('nope')).toBeUndefined();
  });

  it('walks injecting → deferred → injecting → delivered → removed', () => {
    j.begin(pkt(H1, 'id1'), 1000);
    j.recipientsDone(H1, ['a@x.example']);
    j.defer(H1, '451 4.4.1 try later', 61_000, 1000);
    expect(j.byHash(H1)).toMatchObject({ state: 'deferred', lastError: '451 4.4.1 try later', nextAttempt: 61_000, updated: 1000, attempts: 1 });
    const again = j.begin(pkt(H1, 'id1'), 70_000);
    expect(again).toMatchObject({ state: 'injecting', attempts: 2, nextAttempt: null, firstSeen: 1000, updated: 70_000, doneRecipients: ['a@x.example'] });
    j.recipientsDone(H1, ['a@x.example', 'b@x.example']);
    expect(j.byHash(H1)?.doneRecipients).toEqual(['a@x.example', 'b@x.example']);
    j.delivered(H1, 71_000);
    expect(j.byHash(H1)).toMatchObject({ state: 'delivered', updated: 71_000 });
    j.removed(H1, 72_000);
    expect(j.byHash(H1)).toMatchObject({ state: 'removed', updated: 72_000 });
    expect(j.inState('removed').map((e) => e.hash)).toEqual([H1]);
  });

  it('a leftover injecting entry (crash) can begin again', () => {
    j.begin(pkt(H1, 'id1'), 1000);
    j.close();
    j = openJournal(file);
    expect(j.inState('injecting').map((e) => e.hash)).toEqual([H1]);
    expect(j.begin(pkt(H1, 'id1'), 2000).attempts).toBe(2);
  });

  it('refuses illegal transitions and unknown hashes', () => {
    expect(() => j.defer(H1, 'x', 1)).toThrow(/unknown packet hash/);
    j.begin(pkt(H1, 'id1'));
    expect(() => j.removed(H1)).toThrow(/from state injecting/);
    j.delivered(H1);
    expect(() => j.defer(H1, 'x', 1)).toThrow(/from state delivered/);
    const err = (() => {
      try {
        j.begin(pkt(H1, 'id1'));
      } catch (e) {
        return e;
      }
    })();
    expect(isFerryError(err, 'PACKET_REPLAY')).toBe(true);
  });

  it('a reused packet id with a different hash is detectable via byId and refused by begin', () => {
    j.begin(pkt(H1, 'same-id'));
    expect(j.byId('same-id')?.hash).toBe(H1);
    let err: unknown;
    try {
      j.begin(pkt(H2, 'same-id'));
    } catch (e) {
      err = e;
    }
    expect(isFerryError(err, 'PACKET_REPLAY')).toBe(true);
    expect(j.byHash(H2)).toBeUndefined();
  });

  /** H1, H2, H3 begun; H1 deferred to 5000, H2 to 3000. */
  function twoDeferred(): void {
    for (const [h, id] of [[H1, 'id1'], [H2, 'id2'], [H3, 'id3']] as const) j.begin(pkt(h, id));
    j.defer(H1, 'e', 5000);
    j.defer(H2, 'e', 3000);
  }

  it('dueForRetry returns deferred entries whose time has come, earliest first', () => {
    twoDeferred();
    j.defer(H3, 'e', 9000);
    expect(j.dueForRetry(2999)).toEqual([]);
    expect(j.dueForRetry(5000).map((e) => e.hash)).toEqual([H2, H1]);
    expect(j.inState('deferred').length).toBe(3);
  });

  it('retryNow makes every deferred entry due (none later than now), keeps attempts, touches nothing else', () => {
    twoDeferred();
    j.delivered(H3);
    expect(j.retryNow(4000)).toBe(2);
    expect(j.dueForRetry(4000).map((e) => [e.hash, e.nextAttempt, e.attempts])).toEqual([[H2, 3000, 1], [H1, 4000, 1]]);
    expect(j.byHash(H3)?.state).toBe('delivered');
    expect(j.byHash(H3)?.nextAttempt).toBeNull();
  });

  it('prune deletes only removed entries past expiry + 7 days', () => {
    j.begin(pkt(H1, 'id1', 1000));
    j.delivered(H1);
    j.removed(H1);
    j.begin(pkt(H2, 'id2', 1000));
    j.delivered(H2); // delivered but not removed: kept
    j.begin(pkt(H3, 'id3', 10_000_000));
    j.delivered(H3);
    j.removed(H3);
    expect(j.prune(1000 + PRUNE_GRACE_MS)).toBe(0);
    expect(j.prune(1001 + PRUNE_GRACE_MS)).toBe(1);
    expect(j.byHash(H1)).toBeUndefined();
    expect(j.byHash(H2)?.state).toBe('delivered');
    expect(j.byHash(H3)?.state).toBe('removed');
  });

  it('commit: several packets delivered and removed in one transaction; an illegal transition writes nothing', () => {
    j.begin(pkt(H1, 'id1'));
    j.begin(pkt(H2, 'id2'));
    j.delivered(H1, 10);
    j.commit({ delivered: [H2], removed: [H1] }, 20);
    expect(j.byHash(H1)).toMatchObject({ state: 'removed', updated: 20 });
    expect(j.byHash(H2)).toMatchObject({ state: 'delivered', updated: 20 });
    j.begin(pkt(H3, 'id3'));
    // removed only applies to delivered entries: H3 (injecting) stays as it is
    j.commit({ removed: [H3] }, 30);
    expect(j.byHash(H3)?.state).toBe('injecting');
    // H1 is removed: delivering it again is illegal, and the whole batch (H2 removed too) is rolled back
    expect(() => j.commit({ delivered: [H3, H1], removed: [H2] }, 40)).toThrow(/cannot mark packet id1 delivered from state removed/);
    expect(j.byHash(H3)?.state).toBe('injecting');
    expect(j.byHash(H2)?.state).toBe('delivered');
    j.close();
    j = openJournal(file);
    expect(j.byHash(H2)?.state).toBe('delivered');
    expect(j.byHash(H1)?.state).toBe('removed');
  });

  it('stores the database in WAL mode', () => {
    j.close();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
    j = openJournal(file);
  });

  it('refuses a newer schema version with a clear error', () => {
    j.close();
    const db = new Database(file);
    db.prepare('INSERT INTO schema_version (version) VALUES (99)').run();
    db.close();
    expect(() => openJournal(file)).toThrow(/schema version 99.*understands up to 1/);
    j = openJournal(join(dir, 'other.sqlite'));
  });

  it('names the file when it is not a database', async () => {
    j.close();
    const bad = join(dir, 'bad.sqlite');
    await writeFile(bad, 'this is not sqlite at all, just text padding padding padding padding padding padding padding padding padding');
    expect(() => openJournal(bad)).toThrow(new RegExp(`cannot open journal ${bad}`));
    j = openJournal(file);
  });
});
