// Quarantine on real directories: the packet leaves the tree with a durable reason file beside it,
// EXDEV falls back to a durable copy, names never collide, listing is oldest first.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listQuarantine, quarantinePacket } from '../../src/quarantine/quarantine.js';
import { errnoError, nodeTreeFs, type TreeFs } from '../../src/tree/fs.js';

const SELF = 'a'.repeat(40);
const PEER = 'b'.repeat(40);
const NAME = 'q'.repeat(52) + '.pgp';

let root: string;
let tree: string;
let state: string;
let inbox: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'fp-quarantine-'));
  tree = join(root, 'tree');
  state = join(root, 'state');
  inbox = join(tree, SELF, PEER);
  await mkdir(inbox, { recursive: true });
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const reason = { code: 'PACKET_BAD_SIGNATURE', message: 'signature does not verify', fromNode: PEER, packetId: 'abc', detail: { keyid: '0123' } };

describe('quarantinePacket', () => {
  it('moves the packet out of the tree and writes the reason file', async () => {
    const file = join(inbox, NAME);
    await writeFile(file, 'bad packet bytes');
    const when = new Date('2024-03-05T06:07:08.123Z');
    const q = await quarantinePacket(state, file, reason, undefined, when);
    expect(q.name).toBe(`20240305T060708-${NAME}`);
    expect(q.path).toBe(join(state, 'quarantine', q.name));
    expect(q.reasonPath).toBe(q.path + '.reason.json');
    expect(await readdir(inbox)).toEqual([]);
    expect(await readFile(q.path, 'utf8')).toBe('bad packet bytes');
    const onDisk = JSON.parse(await readFile(q.reasonPath, 'utf8'));
    expect(onDisk).toEqual({ ...reason, quarantinedAt: '2024-03-05T06:07:08.123Z', originalPath: file, size: 16 });
    expect(q.reason).toEqual(onDisk);
    expect((await readdir(join(state, 'quarantine'))).sort()).toEqual([q.name, `${q.name}.reason.json`]);
  });

  it('adds a counter when the name is taken, never overwriting', async () => {
    const when = new Date('2024-03-05T06:07:08Z');
    const names: string[] = [];
    for (const content of ['one', 'two', 'three']) {
      const file = join(inbox, NAME);
      await writeFile(file, content);
      names.push((await quarantinePacket(state, file, reason, undefined, when)).name);
    }
    expect(names).toEqual([`20240305T060708-${NAME}`, `20240305T060708-1-${NAME}`, `20240305T060708-2-${NAME}`]);
    expect(await readFile(join(state, 'quarantine', names[0]!), 'utf8')).toBe('one');
    expect(await readFile(join(state, 'quarantine', names[2]!), 'utf8')).toBe('three');
  });

  it('falls back to a durable copy + unlink when rename fails with EXDEV', async () => {
    let renames = 0;
    const exdev: TreeFs = {
      ...nodeTreeFs,
      rename: async (_a, b) => {
        renames++;
        throw errnoError('EXDEV', 'cross-device link not permitted', b);
      },
    };
    const file = join(inbox, NAME);
    const bytes = Buffer.alloc(300_000, 0xab);
    await writeFile(file, bytes);
    const q = await quarantinePacket(state, file, reason, exdev);
    expect(renames).toBe(1);
    expect(await readdir(inbox)).toEqual([]);
    expect((await readFile(q.path)).equals(bytes)).toBe(true);
    expect(q.reason.size).toBe(300_000);
    expect((await readdir(join(state, 'quarantine'))).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('EXDEV copy made but the original cannot be removed: the copy is taken back (no second copy at the next scan)', async () => {
    const stuck: TreeFs = {
      ...nodeTreeFs,
      rename: async (_a, b) => { throw errnoError('EXDEV', 'cross-device link not permitted', b); },
      unlink: async (p) => {
        if (p.startsWith(inbox)) throw errnoError('EACCES', 'permission denied', p);
        return nodeTreeFs.unlink(p);
      },
    };
    const file = join(inbox, NAME);
    await writeFile(file, 'still here');
    for (let i = 0; i < 2; i++) await expect(quarantinePacket(state, file, reason, stuck)).rejects.toMatchObject({ code: 'EACCES' });
    expect(await readFile(file, 'utf8')).toBe('still here');
    expect(await readdir(join(state, 'quarantine'))).toEqual([]);
  });

  it('keeps the packet in place (and no reason file) when the move fails otherwise', async () => {
    const broken: TreeFs = { ...nodeTreeFs, rename: async (_a, b) => { throw errnoError('EIO', 'injected', b); } };
    const file = join(inbox, NAME);
    await writeFile(file, 'keep me');
    await expect(quarantinePacket(state, file, reason, broken)).rejects.toMatchObject({ code: 'EIO' });
    expect(await readFile(file, 'utf8')).toBe('keep me');
    expect(await readdir(join(state, 'quarantine'))).toEqual([]);
  });

  it('keeps the packet in place when the reason file cannot be written (disk full)', async () => {
    const full: TreeFs = {
      ...nodeTreeFs,
      async open(path, flags, mode) {
        const h = await nodeTreeFs.open(path, flags, mode);
        return { ...h, write: async () => { throw errnoError('ENOSPC', 'injected', path); }, sync: () => h.sync(), close: () => h.close() };
      },
    };
    const file = join(inbox, NAME);
    await writeFile(file, 'keep me');
    await expect(quarantinePacket(state, file, reason, full)).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(await readFile(file, 'utf8')).toBe('keep me');
    expect(await readdir(join(state, 'quarantine'))).toEqual([]);
  });

  it('throws ENOENT for a missing file', async () => {
    await expect(quarantinePacket(state, join(inbox, 'gone.pgp'), reason)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('listQuarantine', () => {
  it('is empty without a quarantine dir, then lists entries oldest first', async () => {
    expect(await listQuarantine(state)).toEqual([]);
    const times = ['2024-05-01T00:00:00Z', '2023-01-01T00:00:00Z', '2024-01-01T00:00:00Z'];
    for (const [i, t] of times.entries()) {
      const file = join(inbox, `${i}${NAME}`);
      await writeFile(file, `p${i}`);
      await quarantinePacket(state, file, { code: 'PACKET_HASH', message: `m${i}` }, undefined, new Date(t));
    }
    // An orphan reason file (crash before the move) and an unreadable one are handled.
    await writeFile(join(state, 'quarantine', 'orphan.reason.json'), '{}');
    await writeFile(join(state, 'quarantine', 'junk'), 'x');
    await writeFile(join(state, 'quarantine', 'junk.reason.json'), 'not json');
    const list = await listQuarantine(state);
    expect(list.map((e) => e.reason.message)).toEqual([expect.stringContaining('unreadable reason file'), 'm1', 'm2', 'm0']);
    expect(list[1]).toMatchObject({ name: `20230101T000000-1${NAME}`, reason: { code: 'PACKET_HASH', size: 2, originalPath: join(inbox, `1${NAME}`) } });
  });
});
