// Watching a real directory: renames into existing and newly created sender dirs trigger onChange
// within 1 s; a vanished inbox is re-established; close() stops callbacks.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { watchInbox } from '../../src/tree/watch.js';
import { counter, deliver } from '../helpers/watch.js';

const SELF = 'a'.repeat(40);
const PEER = 'b'.repeat(40);
const LATE = 'c'.repeat(40);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let tree: string;
let closers: Array<() => void>;
beforeEach(async () => {
  tree = await mkdtemp(join(tmpdir(), 'fp-watch-'));
  closers = [];
});
afterEach(async () => {
  for (const c of closers) c();
  await rm(tree, { recursive: true, force: true });
});



describe('watchInbox', () => {
  it('creates the inbox and fires for a rename into an existing sender dir', async () => {
    await mkdir(join(tree, SELF, PEER), { recursive: true });
    const c = counter();
    closers.push(watchInbox(tree, SELF, c.cb).close);
    await sleep(50);
    const fired = c.next(1000);
    await deliver(join(tree, SELF, PEER), '1');
    expect(await fired).toBe(true);
  });

  it('creates a missing inbox and fires for a sender dir created after the watch started', async () => {
    const c = counter();
    closers.push(watchInbox(tree, SELF, c.cb, { debounceMs: 10 }).close);
    await mkdir(join(tree, SELF, LATE));
    await sleep(200); // the dir-creation event has fired and been handled
    const fired = c.next(1000);
    await deliver(join(tree, SELF, LATE), '2');
    expect(await fired).toBe(true);
  });

  it('coalesces a burst of events into few calls', async () => {
    await mkdir(join(tree, SELF, PEER), { recursive: true });
    const c = counter();
    closers.push(watchInbox(tree, SELF, c.cb, { debounceMs: 100 }).close);
    await sleep(50);
    for (let i = 0; i < 20; i++) await writeFile(join(tree, SELF, PEER, `f${i}`), 'x');
    await sleep(400);
    expect(c.count()).toBeGreaterThanOrEqual(1);
    expect(c.count()).toBeLessThanOrEqual(3);
  });

  it('survives the inbox being removed and recreated, and stops after close', async () => {
    const errors: unknown[] = [];
    const c = counter();
    const w = watchInbox(tree, SELF, c.cb, { debounceMs: 10, retryMs: 100, onError: (e) => errors.push(e) });
    closers.push(w.close);
    await mkdir(join(tree, SELF, PEER));
    await sleep(100);
    await rm(join(tree, SELF), { recursive: true });
    await sleep(400); // retry re-creates TREE/<self>
    await mkdir(join(tree, SELF, PEER), { recursive: true });
    await sleep(200);
    const fired = c.next(1000);
    await deliver(join(tree, SELF, PEER), '3');
    expect(await fired).toBe(true);

    w.close();
    const before = c.count();
    await deliver(join(tree, SELF, PEER), '4');
    await sleep(200);
    expect(c.count()).toBe(before);
  });
});
