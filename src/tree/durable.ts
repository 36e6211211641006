/**
 * THE durable-write helper (STYLE.md §4); nothing else in ferrypost writes durable files.
 * prepareDurable: exclusive temp file `.ferrypost.<hex>.tmp` (if the directory is missing: mkdir -p,
 * fsyncing the parents of the directories that were missing, whoever created them, then again; with
 * a DirSync, a commit also waits for the directory creations under way: see createDirSync) → stream
 * the data in while hashing → fsync →
 * close. commit: link to the final name (never overwrites: EEXIST) → unlink the temp → fsync the
 * directory (rename after an existence check where the filesystem has no hard links). With a DirSync
 * (createDirSync), commits into the same directory share directory fsyncs (group commit). Any failure
 * removes the temp (and a final name this call created) and rethrows the errno error unchanged: ENOSPC
 * stays ENOSPC, for the caller to map (452 4.3.1).
 */
import { createHash, randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { errnoError, errnoOf, nodeTreeFs, pathExists, treeMissingError, type TreeFileHandle, type TreeFs } from './fs.js';
import { EarlyWriteback } from './writeback.js';

export interface PreparedFile {
  readonly tmpPath: string;
  readonly size: number;
  readonly sha256: Buffer;
  /** Move the temp file to dir/finalName (which must not exist), fsync the directory; the final path. */
  commit(finalName: string): Promise<string>;
  /** Remove the temp file (ENOENT ignored). No-op after a successful commit. */
  abort(): Promise<void>;
}

export interface DurableOptions {
  fs?: TreeFs;
  /** File mode of the new file (default 0o640). */
  mode?: number;
  /** Shares directory fsyncs between concurrent commits (over the same fs); default: one fsync per commit. */
  dirSync?: DirSync;
  /**
   * A directory that is never created (the tree): missing directories below it are made, but if it is
   * missing itself the write fails with treeMissingError (CONFIG, temporary): a wrong node.tree or a
   * Syncthing folder not mounted, where a packet would be "accepted" into a folder nobody syncs.
   */
  within?: string;
}

/** fsyncDir with group commit, and directory creations that commits wait for: see createDirSync. */
export interface DirSync {
  /**
   * Resolves after an fsync of `dir` that started after this call and after every creation (create())
   * under way at this call ended; rejects with that fsync's or creation's error.
   */
  sync(dir: string): Promise<void>;
  /**
   * Runs the creation (ensureDir) of `dir` that later sync() calls wait for until it is durable. If it
   * fails, `dir` may exist without its entry being durable (mkdir done, a parent fsync failed): a later
   * sync() of `dir` or of a directory below it fsyncs the parents again (up to `within`) before it
   * resolves, and rejects if that fails.
   */
  create(dir: string, run: () => Promise<void>, within?: string): Promise<void>;
}

export const TEMP_PREFIX = '.ferrypost.';
export const TEMP_SUFFIX = '.tmp';

/** errnos meaning "this filesystem cannot hard-link": fall back to check + rename. */
const NO_LINK = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK', 'EXDEV']);

export async function fsyncDir(dir: string, fs: TreeFs = nodeTreeFs): Promise<void> {
  const h = await fs.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * Group commit of directory fsyncs. A caller that arrives while an fsync of the same directory runs
 * cannot use it (that fsync may have started before the caller's rename): it waits for the next one,
 * which starts as soon as the running one ends and serves everyone who arrived meanwhile. Each caller
 * thus waits at most two fsyncs, and N concurrent commits cost about two fsyncs instead of N. A failed
 * fsync fails every caller it was serving (each then removes its own file and reports the error).
 *
 * Creations: the first packets to a new peer race. The one that creates TREE/<to>/<from> fsyncs the
 * parents; another one that finds the directory already there (its open succeeds, or its mkdir -p
 * creates nothing) must not report success before those fsyncs ended, or a crash could lose the new
 * directory entry with its packet in it. So sync() also waits for every creation under way (rare: the
 * first message to a peer, a few ms). A creation that failed fails its own writer; the others must not
 * report success either while the new entry may not be durable: every later sync() of that directory
 * (or one below it) fsyncs its parents first, until that succeeds once. Writers in other processes
 * are covered by ensureDir's own fsyncs when they saw the directory missing; one whose open succeeds
 * in the creator's window is not.
 */
export function createDirSync(fs: TreeFs = nodeTreeFs): DirSync {
  interface Waiter { resolve(): void; reject(err: unknown): void }
  const queues = new Map<string, { running: boolean; waiting: Waiter[] }>();
  const creating = new Set<Promise<void>>();
  /** Directories whose creation failed (their entries may not be durable) → the tree root they were created within. */
  const unsure = new Map<string, string | undefined>();
  async function parentsDurable(dir: string): Promise<void> {
    const at = resolve(dir);
    for (const [u, within] of [...unsure]) {
      if (at !== u && !at.startsWith(`${u}${sep}`)) continue;
      // Top down, the parent of every level from just below `within` (or of `u` alone) to `u`.
      const levels: string[] = [];
      for (let d = u; dirname(d) !== d; d = dirname(d)) {
        levels.push(d);
        if (within === undefined || resolve(dirname(d)) === resolve(within)) break;
      }
      for (const d of levels.reverse()) await fsyncDir(dirname(d), fs);
      unsure.delete(u);
    }
  }
  function run(dir: string, q: { running: boolean; waiting: Waiter[] }): void {
    const batch = q.waiting;
    q.waiting = [];
    q.running = true;
    fsyncDir(dir, fs).then(
      () => batch.forEach((w) => w.resolve()),
      (err: unknown) => batch.forEach((w) => w.reject(err)),
    ).finally(() => {
      q.running = false;
      if (q.waiting.length > 0) run(dir, q);
      else queues.delete(dir);
    });
  }
  return {
    sync(dir: string): Promise<void> {
      // A creation that failed fails its own writer; the others here need only to wait for it to end.
      const created = Promise.all([...creating].map((p) => p.catch(() => undefined)));
      let q = queues.get(dir);
      if (!q) queues.set(dir, (q = { running: false, waiting: [] }));
      const queue = q;
      const done = new Promise<void>((resolve, reject) => queue.waiting.push({ resolve, reject }));
      if (!queue.running) run(dir, queue);
      return Promise.all([done, created]).then(() => (unsure.size > 0 ? parentsDurable(dir) : undefined));
    },
    create(dir: string, runCreation: () => Promise<void>, within?: string): Promise<void> {
      const p = runCreation();
      creating.add(p);
      p.then(
        () => creating.delete(p),
        () => {
          creating.delete(p);
          unsure.set(resolve(dir), within);
        },
      );
      return p;
    },
  };
}

/**
 * mkdir -p, then fsync the parent of every directory that was missing, top down, so the new entries
 * survive a crash: also when a concurrent writer created some of them (its fsyncs may not have ended).
 * `within`: never created (see DurableOptions.within); missing, it is treeMissingError.
 * `sawMissing`: the caller saw `dir` missing (an open failed with ENOENT), so its parent is fsync'd
 * even if another writer created `dir` in the meantime.
 */
export async function ensureDir(dir: string, fs: TreeFs = nodeTreeFs, sawMissing = false, within?: string): Promise<void> {
  const missing: string[] = [];
  const stop = within === undefined ? undefined : resolve(within);
  for (let d = dir; dirname(d) !== d; d = dirname(d)) {
    if (await pathExists(d, fs)) break;
    if (stop !== undefined && resolve(d) === stop) throw treeMissingError(within!);
    missing.push(d);
  }
  if (missing.length === 0 && !sawMissing) return;
  if (missing.length > 0) await fs.mkdirp(dir);
  else missing.push(dir);
  for (const d of missing.reverse()) await fsyncDir(dirname(d), fs);
}

async function writeAll(h: TreeFileHandle, buf: Uint8Array): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await h.write(buf, off, buf.length - off);
    if (bytesWritten <= 0) throw errnoError('EIO', 'write returned no progress');
    off += bytesWritten;
  }
}

async function unlinkQuiet(fs: TreeFs, path: string): Promise<void> {
  try {
    await fs.unlink(path);
  } catch {
    // Best effort during cleanup: ENOENT means already gone; anything else is left for removeStaleTemps.
  }
}

function checkName(finalName: string): void {
  if (finalName === '' || finalName === '.' || finalName === '..' || basename(finalName) !== finalName || finalName.includes('/')) {
    throw errnoError('EINVAL', `not a plain file name: ${JSON.stringify(finalName)}`);
  }
}

export async function prepareDurable(dir: string, data: Readable | Uint8Array, opts: DurableOptions = {}): Promise<PreparedFile> {
  const fs = opts.fs ?? nodeTreeFs;
  const tmpPath = join(dir, `${TEMP_PREFIX}${randomBytes(12).toString('hex')}${TEMP_SUFFIX}`);
  const mode = opts.mode ?? 0o640;
  // The directory almost always exists: try first, mkdir only on ENOENT (saves a syscall per packet).
  const h = await fs.open(tmpPath, 'wx', mode).catch(async (err: unknown) => {
    if (errnoOf(err) !== 'ENOENT') throw err;
    const create = () => ensureDir(dir, fs, true, opts.within);
    await (opts.dirSync ? opts.dirSync.create(dir, create, opts.within) : create());
    return fs.open(tmpPath, 'wx', mode);
  });
  const hash = createHash('sha256');
  let size = 0;
  let open = true;
  const writeback = new EarlyWriteback(() => h.sync()); // a large packet is flushed as it is written
  try {
    if (data instanceof Uint8Array) {
      hash.update(data);
      await writeAll(h, data);
      size = data.length;
    } else {
      for await (const chunk of data) {
        const buf: Uint8Array = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
        hash.update(buf);
        await writeAll(h, buf);
        size += buf.length;
        writeback.wrote(buf.length);
      }
    }
    await writeback.settle();
    await h.sync();
    open = false;
    await h.close();
  } catch (err) {
    await writeback.quiesce(); // a flush under way still uses the descriptor
    if (open) await h.close().catch(() => undefined);
    await unlinkQuiet(fs, tmpPath);
    throw err;
  }
  const sha256 = hash.digest();
  let state: 'prepared' | 'committing' | 'done' = 'prepared';

  return {
    tmpPath,
    size,
    sha256,
    async commit(finalName: string): Promise<string> {
      if (state !== 'prepared') throw errnoError('EINVAL', `temp file ${tmpPath} already ${state === 'done' ? 'committed or aborted' : 'committing'}`);
      checkName(finalName);
      state = 'committing';
      const finalPath = join(dir, finalName);
      let created = false;
      try {
        try {
          await fs.link(tmpPath, finalPath);
          created = true;
          await fs.unlink(tmpPath);
        } catch (err) {
          if (created || !NO_LINK.has(errnoOf(err) ?? '')) throw err;
          // No hard links here (e.g. FAT): check, then rename. Only ferrypost writes these names.
          if (await pathExists(finalPath, fs)) throw errnoError('EEXIST', `refusing to overwrite ${finalPath}`, finalPath);
          await fs.rename(tmpPath, finalPath);
          created = true;
        }
        await (opts.dirSync ? opts.dirSync.sync(dir) : fsyncDir(dir, fs));
      } catch (err) {
        // Leave nothing behind: the caller reports a failure, so the file must not appear later either.
        await unlinkQuiet(fs, tmpPath);
        if (created) await unlinkQuiet(fs, finalPath);
        state = 'done';
        throw err;
      }
      state = 'done';
      return finalPath;
    },
    async abort(): Promise<void> {
      if (state === 'done') return;
      state = 'done';
      await unlinkQuiet(fs, tmpPath);
    },
  };
}

/** prepareDurable + commit under nameFor(sha256); the temp is removed if anything fails. */
export async function writeDurable(
  dir: string,
  data: Readable | Uint8Array,
  nameFor: (sha256: Buffer) => string,
  opts: DurableOptions = {},
): Promise<{ path: string; name: string; size: number; sha256: Buffer }> {
  const prepared = await prepareDurable(dir, data, opts);
  try {
    const name = nameFor(prepared.sha256);
    const path = await prepared.commit(name);
    return { path, name, size: prepared.size, sha256: prepared.sha256 };
  } catch (err) {
    await prepared.abort();
    throw err;
  }
}

/** unlink (ENOENT is fine: already gone) + fsync the parent directory so the removal is durable. */
export async function removeDurable(file: string, fs: TreeFs = nodeTreeFs): Promise<void> {
  try {
    await fs.unlink(file);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
  await fsyncDir(dirname(file), fs);
}

/**
 * Atomically replaces a whole file (config edits; never packets, whose names are never reused):
 * temp + fsync, rename over the old file, fsync the directory. Readers see the old or the new file.
 */
export async function replaceDurable(file: string, data: Readable | Uint8Array, opts: DurableOptions = {}): Promise<void> {
  const fs = opts.fs ?? nodeTreeFs;
  const dir = dirname(file);
  const prepared = await prepareDurable(dir, data, opts);
  try {
    await fs.rename(prepared.tmpPath, file);
  } catch (err) {
    await prepared.abort();
    throw err;
  }
  await fsyncDir(dir, fs);
}
