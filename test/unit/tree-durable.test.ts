// The one durable-write helper: content, hash, size, no-overwrite commit, and fault injection through
// the TreeFs interface (ENOSPC on write, EIO on fsync, failing link/rename) leaving nothing behind.
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDirSync, ensureDir, prepareDurable, removeDurable, writeDurable } from '../../src/tree/durable.js';
import { errnoError, nodeTreeFs, type TreeFs } from '../../src/tree/fs.js';
import { packetNameForHash } from '../../src/tree/layout.js';
import { replyFor } from '../../src/errors/index.js';

type Op = 'write' | 'fileSync' | 'dirSync' | 'link' | 'rename' | 'unlink';

/** nodeTreeFs with chosen operations failing with an errno code. */
function faulty(fail: Partial<Record<Op, string>>): TreeFs {
  const maybe = (op: Op, path?: string): void => {
    const code = fail[op];
    if (code !== undefined) throw errnoError(code, `injected ${op} failure`, path);
  };
  return {
    ...nodeTreeFs,
    async open(path, flags, mode) {
      const h = await nodeTreeFs.open(path, flags, mode);
      const isDir = flags === 'r';
      return {
        write: async (b, o, l) => (maybe('write', path), h.write(b, o, l)),
        sync: async () => (maybe(isDir ? 'dirSync' : 'fileSync', path), h.sync()),
        close: () => h.close(),
      };
    },
    link: async (a, b) => (maybe('link', b), nodeTreeFs.link(a, b)),
    rename: async (a, b) => (maybe('rename', b), nodeTreeFs.rename(a, b)),
    unlink: async (p) => (maybe('unlink', p), nodeTreeFs.unlink(p)),
  };
}

const sha = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fp-durable-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('prepareDurable / commit', () => {
  it('writes a Uint8Array with the right size and hash, and creates missing directories', async () => {
    const data = Buffer.from('hello, durable world\n');
    const target = join(dir, 'a', 'b');
    const p = await prepareDurable(target, data);
    expect(p.size).toBe(data.length);
    expect(p.sha256.equals(sha(data))).toBe(true);
    expect(p.tmpPath).toMatch(/\/\.ferrypost\.[0-9a-f]+\.tmp$/);
    // Not visible under the final name before commit.
    expect(await readdir(target)).toEqual([p.tmpPath.split('/').pop()]);
    const final = await p.commit('msg');
    expect(final).toBe(join(target, 'msg'));
    expect(await readdir(target)).toEqual(['msg']);
    expect((await readFile(final)).equals(data)).toBe(true);
    expect((await stat(final)).mode & 0o777).toBe(0o640);
  });

  it('streams a Readable of many chunks (including strings)', async () => {
    const parts = ['abc', Buffer.from([0, 1, 2, 255]), 'déjà vu'];
    const p = await prepareDurable(dir, Readable.from(parts), { mode: 0o600 });
    const expected = Buffer.concat(parts.map((x) => (typeof x === 'string' ? Buffer.from(x) : x)));
    expect(p.size).toBe(expected.length);
    expect(p.sha256.equals(sha(expected))).toBe(true);
    const final = await p.commit('x');
    expect((await readFile(final)).equals(expected)).toBe(true);
    expect((await stat(final)).mode & 0o777).toBe(0o600);
  });

  it('flushes a large file while writing it; a failed background flush fails the prepare although the final fsync succeeds', async () => {
    const chunks = () => Readable.from(Array.from({ length: 24 }, () => Buffer.alloc(1 << 20, 0x5a))); // 24 MiB: flushes at 8 and 16
    let syncs = 0;
    const counting: TreeFs = {
      ...nodeTreeFs,
      async open(path, flags, mode) {
        const h = await nodeTreeFs.open(path, flags, mode);
        return { ...h, sync: () => (flags === 'r' ? h.sync() : (syncs++, h.sync())) };
      },
    };
    await (await prepareDurable(dir, chunks(), { fs: counting })).commit('ok');
    expect(syncs).toBeGreaterThanOrEqual(2); // the early flush(es) and the final fsync
    // The first file fsync (a background flush) fails, every later one succeeds, as after a writeback error.
    let fileSyncs = 0;
    const failsOnce: TreeFs = {
      ...nodeTreeFs,
      async open(path, flags, mode) {
        const h = await nodeTreeFs.open(path, flags, mode);
        if (flags === 'r') return h;
        return { ...h, sync: () => (++fileSyncs === 1 ? Promise.reject(errnoError('EIO', 'injected writeback failure', path)) : h.sync()) };
      },
    };
    await expect(prepareDurable(join(dir, 'b'), chunks(), { fs: failsOnce })).rejects.toMatchObject({ code: 'EIO' });
    expect(fileSyncs).toBe(1); // no flush after the failure, and no final fsync trusted instead
    expect(await readdir(join(dir, 'b'))).toEqual([]);
  });

  it('a write that fails while a background flush runs: the file is closed only after the flush ended', async () => {
    const log: string[] = [];
    let release: (() => void) | undefined;
    const fs: TreeFs = {
      ...nodeTreeFs,
      async open(path, flags, mode) {
        const h = await nodeTreeFs.open(path, flags, mode);
        if (flags === 'r') return h;
        let writes = 0;
        return {
          write: async (b, o, l) => {
            if (++writes === 10) {
              log.push('write-fail');
              setTimeout(() => release?.(), 50); // the flush ends only after the failure, however slow the writes
              throw errnoError('ENOSPC', 'injected write failure', path);
            }
            return h.write(b, o, l);
          },
          sync: async () => {
            log.push('sync-start');
            await new Promise<void>((r) => (release = r));
            log.push('sync-end');
            return h.sync();
          },
          close: async () => {
            log.push('close');
            return h.close();
          },
        };
      },
    };
    const src = Readable.from(Array.from({ length: 12 }, () => Buffer.alloc(1 << 20)));
    await expect(prepareDurable(dir, src, { fs })).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(log).toEqual(['sync-start', 'write-fail', 'sync-end', 'close']);
    expect(await readdir(dir)).toEqual([]);
  });

  it('writes a 50 MiB Readable without buffering it and hashes it correctly', async () => {
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31) & 0xff;
    const h = createHash('sha256');
    for (let i = 0; i < 50; i++) h.update(chunk);
    async function* gen(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 50; i++) yield chunk;
    }
    const t0 = Date.now();
    const r = await writeDurable(dir, Readable.from(gen()), packetNameForHash);
    console.log(`50 MiB durable write: ${Date.now() - t0} ms`);
    expect(r.size).toBe(50 << 20);
    expect(r.sha256.equals(h.digest())).toBe(true);
    expect(r.name).toBe(packetNameForHash(r.sha256));
    expect((await stat(r.path)).size).toBe(50 << 20);
    expect(await readdir(dir)).toEqual([r.name]);
  });

  it('commit refuses to overwrite an existing file and leaves both intact', async () => {
    await writeFile(join(dir, 'taken'), 'old');
    const p = await prepareDurable(dir, Buffer.from('new'));
    await expect(p.commit('taken')).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(join(dir, 'taken'), 'utf8')).toBe('old');
    expect(await readdir(dir)).toEqual(['taken']);
  });

  it('commit refuses to overwrite when the filesystem has no hard links (check + rename fallback)', async () => {
    await writeFile(join(dir, 'taken'), 'old');
    const fs = faulty({ link: 'EPERM' });
    const p = await prepareDurable(dir, Buffer.from('new'), { fs });
    await expect(p.commit('taken')).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(join(dir, 'taken'), 'utf8')).toBe('old');
    const q = await prepareDurable(dir, Buffer.from('new'), { fs });
    expect(await readFile(await q.commit('free'), 'utf8')).toBe('new');
    expect((await readdir(dir)).sort()).toEqual(['free', 'taken']);
  });

  it('rejects a final name with a path separator', async () => {
    const p = await prepareDurable(dir, Buffer.from('x'));
    await expect(p.commit('../escape')).rejects.toMatchObject({ code: 'EINVAL' });
    await p.abort();
    expect(await readdir(dir)).toEqual([]);
  });

  it('abort removes the temp file; abort twice is fine', async () => {
    const p = await prepareDurable(dir, Buffer.from('x'));
    await p.abort();
    await p.abort();
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('injected failures leave no temp and no final file', () => {
  const cases: Array<[string, Partial<Record<Op, string>>, string]> = [
    ['ENOSPC on write', { write: 'ENOSPC' }, 'ENOSPC'],
    ['EIO on file fsync', { fileSync: 'EIO' }, 'EIO'],
    ['EIO on link (rename step)', { link: 'EIO' }, 'EIO'],
    ['rename failing where link is unsupported', { link: 'ENOTSUP', rename: 'EIO' }, 'EIO'],
    ['EIO on directory fsync after the rename', { dirSync: 'EIO' }, 'EIO'],
  ];
  for (const [label, fail, code] of cases) {
    it(label, async () => {
      const target = join(dir, 'out');
      await nodeTreeFs.mkdirp(target); // so dirSync failures hit the commit, not ensureDir
      const data = Readable.from([Buffer.alloc(100_000, 7), Buffer.alloc(5, 1)]);
      await expect(writeDurable(target, data, packetNameForHash, { fs: faulty(fail) })).rejects.toMatchObject({ code });
      expect(await readdir(target)).toEqual([]);
    });
  }

  it('ENOSPC stays an errno error that maps to 452 4.3.1', async () => {
    const err = await writeDurable(dir, Buffer.from('x'), packetNameForHash, { fs: faulty({ write: 'ENOSPC' }) }).catch((e: unknown) => e);
    expect(replyFor(err)).toMatchObject({ smtp: 452, enhanced: '4.3.1' });
  });

  it('a Readable that errors midway leaves nothing behind', async () => {
    async function* bad(): AsyncGenerator<Buffer> {
      yield Buffer.from('partial');
      throw new Error('client went away');
    }
    await expect(writeDurable(dir, Readable.from(bad()), packetNameForHash)).rejects.toThrow('client went away');
    expect(await readdir(dir)).toEqual([]);
  });
});

/** nodeTreeFs whose directory fsyncs go through `sync(path, real)` (which calls `real` to fsync, or throws). */
function withDirSync(sync: (path: string, real: () => Promise<void>) => Promise<void>): TreeFs {
  return {
    ...nodeTreeFs,
    async open(path, flags, mode) {
      const h = await nodeTreeFs.open(path, flags, mode);
      return flags === 'r' ? { ...h, sync: () => sync(path, () => h.sync()) } : h;
    },
  };
}

/** nodeTreeFs whose directory fsyncs take `ms` and are logged (with link/rename) in `events`; `failAt` fails the n-th (1-based). */
function slowDirSync(ms: number, events: string[], failAt?: number): TreeFs {
  let n = 0;
  return {
    ...withDirSync(async (path, real) => {
      const id = ++n;
      events.push(`start ${id}`);
      await new Promise((r) => setTimeout(r, ms));
      events.push(`end ${id}`);
      if (id === failAt) throw errnoError('EIO', 'injected directory fsync failure', path);
      return real();
    }),
    link: async (a, b) => (events.push(`link ${b.split('/').pop()}`), nodeTreeFs.link(a, b)),
  };
}

describe('group commit of directory fsyncs (createDirSync)', () => {
  it('concurrent commits share fsyncs, and each waits for one that started after its link', async () => {
    const events: string[] = [];
    const fs = slowDirSync(30, events);
    const dirSync = createDirSync(fs);
    const prepared = await Promise.all(Array.from({ length: 10 }, (_, i) => prepareDurable(dir, Buffer.from(`m${i}`), { fs, dirSync })));
    await Promise.all(prepared.map((p, i) => p.commit(`f${i}`).then(() => events.push(`done f${i}`))));
    // The first commit starts an fsync alone; the nine that linked meanwhile share the next one.
    expect(events.filter((e) => e.startsWith('start'))).toEqual(['start 1', 'start 2']);
    for (let i = 0; i < 10; i++) {
      const linked = events.indexOf(`link f${i}`);
      const done = events.indexOf(`done f${i}`);
      const covered = [1, 2].some((id) => events.indexOf(`start ${id}`) > linked && events.indexOf(`end ${id}`) < done);
      expect(covered, `f${i}: ${events.join(', ')}`).toBe(true);
    }
    expect((await readdir(dir)).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `f${i}`).sort());
  });

  it('a failing shared fsync fails every commit it served, and removes their files; others are unaffected', async () => {
    const events: string[] = [];
    const fs = slowDirSync(20, events, 2);
    const dirSync = createDirSync(fs);
    const prepared = await Promise.all(Array.from({ length: 6 }, (_, i) => prepareDurable(dir, Buffer.from(`m${i}`), { fs, dirSync })));
    const results = await Promise.allSettled(prepared.map((p, i) => p.commit(`f${i}`)));
    expect(results[0]!.status).toBe('fulfilled');
    for (const r of results.slice(1)) expect(r).toMatchObject({ status: 'rejected', reason: { code: 'EIO' } });
    expect(await readdir(dir)).toEqual(['f0']);
    // The queue recovers: the next commit gets a fresh fsync.
    const next = await prepareDurable(dir, Buffer.from('later'), { fs, dirSync });
    await next.commit('later');
    expect((await readdir(dir)).sort()).toEqual(['f0', 'later']);
  });

  it('a directory creation that fails delays other syncs, but does not fail them', async () => {
    const dirSync = createDirSync(nodeTreeFs);
    let fail!: (e: unknown) => void;
    const creation = dirSync.create(join(dir, 'other'), () => new Promise<void>((_, reject) => (fail = reject)));
    creation.catch(() => undefined);
    let synced = false;
    const sync = dirSync.sync(dir).then(() => (synced = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(synced).toBe(false); // waits for the creation under way
    fail(Object.assign(new Error('EACCES'), { code: 'EACCES' }));
    await expect(creation).rejects.toMatchObject({ code: 'EACCES' });
    await sync; // resolves: the failed creation is its own writer's error
    expect(synced).toBe(true);
  });

  it('directories are independent', async () => {
    const events: string[] = [];
    const fs = slowDirSync(20, events);
    const dirSync = createDirSync(fs);
    const a = join(dir, 'a'), b = join(dir, 'b');
    for (const d of [a, b]) await nodeTreeFs.mkdirp(d); // only the commits' fsyncs are counted
    const ps = await Promise.all([a, b].map((d) => prepareDurable(d, Buffer.from(d), { fs, dirSync })));
    await Promise.all(ps.map((p) => p.commit('x')));
    expect(events.filter((e) => e.startsWith('start'))).toEqual(['start 1', 'start 2']);
    expect(events.indexOf('start 2')).toBeLessThan(events.indexOf('end 1')); // not serialised
  });
});

describe('first packets to a new directory race (ensureDir)', () => {
  /** fsyncs of `slow` take 100 ms; the log says when one ended and when each commit resolved. */
  const slowParent = (slow: string, events: string[]): TreeFs =>
    withDirSync(async (path, real) => {
      if (path === slow) {
        await new Promise((r) => setTimeout(r, 100));
        events.push('parent synced');
      }
      return real();
    });
  const write = (target: string, fs: TreeFs, name: string, events: string[], dirSync = createDirSync(fs)) =>
    prepareDurable(target, Buffer.from(name), { fs, dirSync }).then((p) => p.commit(name)).then(() => events.push(`done ${name}`));

  it('no writer reports success before the new directory\'s parents are fsync\'d (shared DirSync)', async () => {
    const events: string[] = [];
    const fs = slowParent(join(dir, 'to'), events);
    const dirSync = createDirSync(fs);
    const target = join(dir, 'to', 'from');
    const a = write(target, fs, 'a', events, dirSync);
    const b = write(target, fs, 'b', events, dirSync); // its mkdir -p finds the directory A made
    await new Promise((r) => setTimeout(r, 30));
    const c = write(target, fs, 'c', events, dirSync); // its open succeeds: the directory is there
    await Promise.all([a, b, c]);
    expect(events.indexOf('parent synced')).toBeGreaterThanOrEqual(0);
    for (const n of ['a', 'b', 'c']) expect(events.indexOf(`done ${n}`)).toBeGreaterThan(events.indexOf('parent synced'));
  });

  it('a creation whose parent fsync failed: a writer that found the directory made by it fsyncs the parents itself, or fails', async () => {
    // Writer A makes TREE/to/from, and the fsync of TREE fails (EIO): A fails. Writer B opened its temp
    // file in the new directory meanwhile (its open succeeded, so it created nothing itself). B must not
    // get its 250 while the new entries may not be durable: it fsyncs TREE and TREE/to itself.
    const tree = join(dir, 'tree');
    await nodeTreeFs.mkdirp(tree);
    const target = join(tree, 'to', 'from');
    const synced: string[] = [];
    let failTree = true;
    const fs = withDirSync(async (path, real) => {
      if (path === tree && failTree) throw errnoError('EIO', 'injected dirSync failure', path);
      synced.push(path);
      return real();
    });
    const dirSync = createDirSync(fs);
    const a = prepareDurable(target, Buffer.from('a'), { fs, dirSync, within: tree }).then((p) => p.commit('a'));
    await expect(a).rejects.toMatchObject({ code: 'EIO' });
    expect(await nodeTreeFs.lstat(target).then((st) => st.isDirectory())).toBe(true); // made, but its entry may not be durable

    // B: the directory is there, its open succeeds; its commit must fsync the parents first. They still fail: B fails.
    const b = await prepareDurable(target, Buffer.from('b'), { fs, dirSync, within: tree });
    await expect(b.commit('b')).rejects.toMatchObject({ code: 'EIO' });
    await expect(nodeTreeFs.lstat(join(target, 'b'))).rejects.toMatchObject({ code: 'ENOENT' });

    // C: the disk is back: the parents are fsync'd (top down) before its commit resolves, once.
    failTree = false;
    synced.length = 0;
    const c = await prepareDurable(target, Buffer.from('c'), { fs, dirSync, within: tree });
    await c.commit('c');
    expect(synced).toEqual([target, tree, join(tree, 'to')]);
    synced.length = 0;
    const d = await prepareDurable(target, Buffer.from('d'), { fs, dirSync, within: tree });
    await d.commit('d');
    expect(synced).toEqual([target]); // durable now: only the commit's own fsync
  });

  it('a writer that saw the directory missing fsyncs its parent although another process created it meanwhile', async () => {
    const events: string[] = [];
    const fs = slowParent(join(dir, 'to'), events);
    const target = join(dir, 'to', 'from');
    await nodeTreeFs.mkdirp(target); // the other process's mkdir -p; its fsyncs may still be under way
    await ensureDir(target, fs, true); // our open had failed with ENOENT
    expect(events).toEqual(['parent synced']);
    await ensureDir(target, fs); // nobody saw it missing: nothing to do
    expect(events).toEqual(['parent synced']);
  });
});

describe('nodeTreeFs', () => {
  it('a handle refuses writes and a second close after close (its fd number may be reused)', async () => {
    const h = await nodeTreeFs.open(join(dir, 'f'), 'wx', 0o600);
    await h.write(Buffer.from('x'), 0, 1);
    await h.sync();
    await h.close();
    await expect(h.close()).rejects.toMatchObject({ code: 'EBADF' });
    await expect(h.write(Buffer.from('y'), 0, 1)).rejects.toMatchObject({ code: 'EBADF' });
    expect(await readFile(join(dir, 'f'), 'utf8')).toBe('x');
  });

  it('errors are rejections with the errno code, not synchronous throws', async () => {
    const opened = nodeTreeFs.open(join(dir, 'missing', 'f'), 'wx');
    expect(opened).toBeInstanceOf(Promise);
    await expect(opened).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(nodeTreeFs.link(join(dir, 'nope'), join(dir, 'x'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('removeDurable', () => {
  it('removes a file and tolerates ENOENT', async () => {
    const f = join(dir, 'f');
    await writeFile(f, 'x');
    await removeDurable(f);
    expect(await readdir(dir)).toEqual([]);
    await removeDurable(f);
  });

  it('propagates a failing directory fsync', async () => {
    const f = join(dir, 'f');
    await writeFile(f, 'x');
    await expect(removeDurable(f, faulty({ dirSync: 'EIO' }))).rejects.toMatchObject({ code: 'EIO' });
  });
});

describe('throughput', () => {
  it('writes 1,000 4 KiB files (timing logged)', async () => {
    const body = Buffer.alloc(4096, 0x61);
    const t0 = Date.now();
    for (let i = 0; i < 1000; i++) {
      body.writeUInt32BE(i, 0);
      await writeDurable(dir, body, packetNameForHash);
    }
    const ms = Date.now() - t0;
    console.log(`1,000 x 4 KiB durable writes: ${ms} ms (${Math.round(1000000 / ms)}/s)`);
    expect((await readdir(dir)).length).toBe(1000);
  });
});
