// Scanning real temp directories: inbox and outgoing packets, ignored names, hashing, stale temp removal,
// and a 10,000-packet inbox (time logged, not asserted).
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { packetNameForHash } from '../../src/tree/layout.js';
import { hashFile, removeStaleTemps, scanInbox, scanOutgoing } from '../../src/tree/scan.js';

const SELF = 'a'.repeat(40);
const PEER = 'b'.repeat(40);
const PEER2 = 'c'.repeat(40);
const nameOf = (s: string): string => packetNameForHash(createHash('sha256').update(s).digest());

let tree: string;
beforeEach(async () => {
  tree = await mkdtemp(join(tmpdir(), 'fp-scan-'));
});
afterEach(async () => {
  await rm(tree, { recursive: true, force: true });
});

async function put(rel: string[], content = 'x', mtime?: number): Promise<string> {
  const p = join(tree, ...rel);
  await mkdir(join(p, '..'), { recursive: true });
  await writeFile(p, content);
  if (mtime !== undefined) await utimes(p, mtime / 1000, mtime / 1000);
  return p;
}

describe('scanInbox', () => {
  it('returns [] when the tree or the inbox is missing', async () => {
    expect(await scanInbox(join(tree, 'nope'), SELF)).toEqual([]);
    expect(await scanInbox(tree, SELF)).toEqual([]);
  });

  it('refuses an inbox that is a symbolic link (it would read and quarantine where the link points)', async () => {
    const elsewhere = join(tree, 'elsewhere');
    await put(['elsewhere', PEER, nameOf('x')]);
    await symlink(elsewhere, join(tree, SELF));
    await expect(scanInbox(tree, SELF)).rejects.toMatchObject({ code: 'ELOOP' });
  });

  it('lists packets from every sender, oldest first, skipping ignored and invalid names', async () => {
    const p1 = nameOf('1');
    const p2 = nameOf('2');
    await put([SELF, PEER, p1], 'hello', 2_000_000_000_000);
    await put([SELF, PEER2, p2], 'hi', 1_000_000_000_000);
    await put([SELF, PEER, `.syncthing.${p1}.tmp`]);
    await put([SELF, PEER, `~syncthing~${p1}.tmp`]);
    await put([SELF, PEER, nameOf('3').replace('.pgp', '.sync-conflict-20240101-000000-ABCDEFG.pgp')]);
    await put([SELF, PEER, '.ferrypost.abcd.tmp']);
    await put([SELF, PEER, 'notes.txt']);
    await put([SELF, 'not-a-node', nameOf('4')]);
    await put([SELF, '.stversions', nameOf('5')]);
    await mkdir(join(tree, SELF, PEER, nameOf('6')), { recursive: true }); // a directory with a packet name
    await put([PEER, SELF, nameOf('7')]); // outgoing, not inbox

    const got = await scanInbox(tree, SELF);
    expect(got.map((e) => [e.from, e.name])).toEqual([
      [PEER2, p2],
      [PEER, p1],
    ]);
    const e = got[1]!;
    expect(e).toMatchObject({ to: SELF, from: PEER, name: p1, path: join(tree, SELF, PEER, p1), size: 5, mtimeMs: 2_000_000_000_000 });
    expect(e.hash.equals(createHash('sha256').update('1').digest())).toBe(true);
    // The blocking variant (one-shot commands) gives the same answer.
    expect(await scanInbox(tree, SELF, { blocking: true })).toEqual(got);
  });

  it('scans 10,000 packets (time logged)', async () => {
    const dir = join(tree, SELF, PEER);
    await mkdir(dir, { recursive: true });
    const names: string[] = [];
    for (let i = 0; i < 10_000; i++) names.push(nameOf(`p${i}`));
    for (let i = 0; i < names.length; i += 500) await Promise.all(names.slice(i, i + 500).map((n) => writeFile(join(dir, n), '')));
    const t0 = performance.now();
    const got = await scanInbox(tree, SELF);
    console.log(`scanInbox of 10,000 packets: ${Math.round(performance.now() - t0)} ms`);
    expect(got.length).toBe(10_000);
    expect(new Set(got.map((e) => e.name))).toEqual(new Set(names));
  });
});

describe('scanOutgoing', () => {
  it('lists TREE/<to>/<self>/* for every recipient including self', async () => {
    const a = nameOf('a');
    const b = nameOf('b');
    const c = nameOf('c');
    await put([PEER, SELF, a]);
    await put([SELF, SELF, b]);
    await put([PEER2, PEER, c]); // not ours
    await put([SELF, PEER, c]); // inbox, not outgoing
    const got = await scanOutgoing(tree, SELF);
    expect(got.map((e) => `${e.to}/${e.name}`).sort()).toEqual([`${PEER}/${a}`, `${SELF}/${b}`].sort());
    expect(got.every((e) => e.from === SELF)).toBe(true);
  });
});

describe('hashFile', () => {
  it('hashes a file by streaming', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024 + 7, 0x5a);
    const p = await put(['f'], data.toString('latin1'));
    expect((await hashFile(p)).equals(createHash('sha256').update(data).digest())).toBe(true);
  });
});

describe('removeStaleTemps', () => {
  it('removes only old .ferrypost.*.tmp files, up to TREE/<x>/<y>', async () => {
    const now = 2_000_000_000_000;
    const old = now - 3_600_000;
    const oldTop = await put(['.ferrypost.01.tmp'], 'x', old);
    const oldDeep = await put([PEER, SELF, '.ferrypost.02.tmp'], 'x', old);
    await put([PEER, SELF, '.ferrypost.03.tmp'], 'x', now - 1000); // fresh: a write in progress
    await put([PEER, SELF, '.syncthing.x.tmp'], 'x', old); // Syncthing's, not ours
    await put([PEER, SELF, nameOf('p')], 'x', old);
    await put([PEER, SELF, 'deeper', '.ferrypost.04.tmp'], 'x', old); // beyond 2 levels
    const removed = await removeStaleTemps(tree, 60_000, now);
    expect(removed.sort()).toEqual([oldTop, oldDeep].sort());
    expect((await readdir(join(tree, PEER, SELF))).sort()).toEqual(['.ferrypost.03.tmp', '.syncthing.x.tmp', 'deeper', nameOf('p')].sort());
    expect(await removeStaleTemps(join(tree, 'missing'), 0, now)).toEqual([]);
  });
});
