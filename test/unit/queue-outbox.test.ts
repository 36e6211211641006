// The sender's outbox index: batched inserts (recordLater) become visible to other readers within the
// batch delay, at once to reads in the same process, and on close; a failed batch is reported per caller.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openOutbox, recordingEnqueue, type OutboxRecord } from '../../src/queue/outbox.js';
import type { Enqueue } from '../../src/send/types.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fp-outbox-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const row = (name: string): OutboxRecord => ({ name, id: `id-${name}`, peer: 'b', toNode: 'f'.repeat(40), from: 'a@x.test', recipients: ['r@y.test'], created: 1 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('outbox recordLater', () => {
  it('groups rows into one insert that other readers see within the batch delay', async () => {
    const writer = openOutbox(dir);
    const reader = openOutbox(dir);
    const errors: unknown[] = [];
    writer.recordLater([row('a')], (e) => errors.push(e));
    writer.recordLater([row('b'), row('c')], (e) => errors.push(e));
    expect(reader.byNames(['a', 'b', 'c']).size).toBe(0); // not yet written
    await sleep(150);
    expect([...reader.byNames(['a', 'b', 'c']).keys()].sort()).toEqual(['a', 'b', 'c']);
    expect(errors).toEqual([]);
    writer.close();
    reader.close();
  });

  it('a read in the same process and close() write pending rows first', () => {
    const o = openOutbox(dir);
    o.recordLater([row('a')], () => undefined);
    expect(o.byNames(['a']).get('a')?.recipients).toEqual(['r@y.test']);
    o.recordLater([row('b')], () => undefined);
    o.close();
    const again = openOutbox(dir);
    expect([...again.byNames(['a', 'b']).keys()].sort()).toEqual(['a', 'b']);
    again.close();
  });

  it('a failing batch is reported to every caller in it; later batches still work', async () => {
    const o = openOutbox(dir);
    const errors: string[] = [];
    o.recordLater([row('ok')], () => errors.push('ok'));
    o.recordLater([{ ...row('bad'), id: null as unknown as string }], () => errors.push('bad')); // NOT NULL violation
    await sleep(150);
    expect(errors.sort()).toEqual(['bad', 'ok']);
    o.recordLater([row('later')], () => errors.push('later'));
    expect(o.byNames(['later']).size).toBe(1);
    expect(errors).toHaveLength(2);
    o.close();
  });

  it('recordingEnqueue returns the packets at once and indexes them', async () => {
    const o = openOutbox(dir);
    const inner: Enqueue = { submit: async () => [{ id: 'p1', peer: 'b', toNode: 'f'.repeat(40), name: 'n1.pgp', path: '/t/n1.pgp', recipients: ['r@y.test'] }] };
    const errors: unknown[] = [];
    const q = recordingEnqueue(inner, o, (e) => errors.push(e), () => 42);
    expect((await q.submit({ from: 'a@x.test', to: ['r@y.test'] }, Buffer.from('x'))).map((p) => p.id)).toEqual(['p1']);
    expect(o.byNames(['n1.pgp']).get('n1.pgp')).toMatchObject({ id: 'p1', from: 'a@x.test', created: 42 });
    expect(errors).toEqual([]);
    o.close();
  });
});

describe('outbox reads', () => {
  it('byNames returns full rows for names in the index only; count and forgetExcept drop delivered packets', () => {
    const o = openOutbox(dir);
    o.record([row('a'), row('b'), { ...row('c'), recipients: ['x@y.test', 'z@y.test'], created: 7 }]);
    const got = o.byNames(['c', 'missing']);
    expect([...got.keys()]).toEqual(['c']);
    expect(got.get('c')).toEqual({ name: 'c', id: 'id-c', peer: 'b', toNode: 'f'.repeat(40), from: 'a@x.test', recipients: ['x@y.test', 'z@y.test'], created: 7 });
    expect(o.count()).toBe(3);
    expect(o.forgetExcept(new Set(['a']))).toBe(2);
    expect(o.count()).toBe(1);
    expect([...o.byNames(['a', 'b', 'c']).keys()]).toEqual(['a']);
    o.close();
  });

  it('forgetExcept with createdBefore keeps younger rows (indexed after the caller scanned)', () => {
    const o = openOutbox(dir);
    o.record([{ ...row('old'), created: 100 }, { ...row('edge'), created: 200 }, { ...row('young'), created: 300 }, { ...row('kept'), created: 100 }]);
    expect(o.forgetExcept(new Set(['kept']), 200)).toBe(1);
    expect([...o.byNames(['old', 'edge', 'young', 'kept']).keys()].sort()).toEqual(['edge', 'kept', 'young']);
    o.close();
  });
});
