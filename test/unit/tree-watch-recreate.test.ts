// The watcher against directories replaced under it and a tree that is not there: a directory removed
// and made again within one tick (ext4 hands the new one the freed inode) is watched anew, the inbox
// too; a missing TREE is reported and never created, and watched once it appears; a symlinked sender
// directory is not watched (the scanner skips it).
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../../src/errors/index.js';
import { watchInbox } from '../../src/tree/watch.js';
import { counter, deliver } from '../helpers/watch.js';

const SELF = 'a'.repeat(40);
const PEER = 'b'.repeat(40);
const LATE = 'c'.repeat(40);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let base: string;
let closers: Array<() => void>;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'fp-watch-re-'));
  closers = [];
});
afterEach(async () => {
  for (const c of closers) c();
  await rm(base, { recursive: true, force: true });
});



describe('watchInbox, directories replaced under it', () => {
  it('watches a sender dir removed and made again while the event loop is busy', async () => {
    const sender = join(base, SELF, PEER);
    mkdirSync(sender, { recursive: true });
    const c = counter();
    closers.push(watchInbox(base, SELF, c.cb, { debounceMs: 10, retryMs: 100 }).close);
    await sleep(100);
    rmSync(sender, { recursive: true }); // both in one tick: the watcher sees the events afterwards
    mkdirSync(sender);
    await sleep(300);
    const fired = c.next(1000);
    await deliver(sender, '1');
    expect(await fired).toBe(true);
  });

  it('watches the inbox removed and made again while the event loop is busy, old and new senders', async () => {
    const inbox = join(base, SELF);
    mkdirSync(join(inbox, PEER), { recursive: true });
    const c = counter();
    closers.push(watchInbox(base, SELF, c.cb, { debounceMs: 10, retryMs: 100 }).close);
    await sleep(100);
    rmSync(inbox, { recursive: true });
    mkdirSync(inbox);
    mkdirSync(join(inbox, PEER));
    await sleep(300);
    let fired = c.next(1000);
    await deliver(join(inbox, PEER), '2');
    expect(await fired).toBe(true);
    mkdirSync(join(inbox, LATE)); // needs a live watch on the new inbox
    await sleep(200);
    fired = c.next(1000);
    await deliver(join(inbox, LATE), '3');
    expect(await fired).toBe(true);
  });
});

describe('watchInbox, a missing tree', () => {
  it('reports a missing TREE once, never creates it, and starts when it appears', async () => {
    const tree = join(base, 'tree');
    const errors: unknown[] = [];
    const c = counter();
    closers.push(watchInbox(tree, SELF, c.cb, { debounceMs: 10, retryMs: 50, onError: (e) => errors.push(e) }).close);
    await sleep(300); // several retries
    expect(existsSync(tree)).toBe(false);
    expect(errors).toHaveLength(1);
    expect(isFerryError(errors[0], 'CONFIG')).toBe(true);
    expect(String((errors[0] as Error).message)).toContain(`tree ${tree} does not exist`);

    const started = c.next(1000);
    mkdirSync(tree); // mounted at last
    expect(await started).toBe(true);
    expect(existsSync(join(tree, SELF))).toBe(true);
    mkdirSync(join(tree, SELF, PEER));
    await sleep(200);
    const fired = c.next(1000);
    await deliver(join(tree, SELF, PEER), '4');
    expect(await fired).toBe(true);
  });
});

describe('watchInbox, symlinks', () => {
  it('does not watch a symlinked sender dir', async () => {
    const elsewhere = join(base, 'elsewhere');
    mkdirSync(elsewhere);
    mkdirSync(join(base, SELF));
    symlinkSync(elsewhere, join(base, SELF, PEER));
    const c = counter();
    closers.push(watchInbox(base, SELF, c.cb, { debounceMs: 10 }).close);
    await sleep(200);
    const fired = c.next(500);
    await deliver(elsewhere, '5');
    expect(await fired).toBe(false);
  });
});
