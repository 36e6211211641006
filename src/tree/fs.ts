/**
 * The narrow filesystem interface used by durable writes (tree/durable.ts) and quarantine, so tests can
 * inject faults (ENOSPC on write, EIO on fsync, a failing rename/link, EXDEV). `nodeTreeFs` is the real
 * thing over node:fs. Failures are the plain errno errors from Node; nothing is retried here.
 *
 * In `nodeTreeFs`, fsync and the creating open run on libuv's thread pool; write, close, link, rename,
 * unlink, lstat, mkdir and opening a directory are synchronous calls behind the same promise interface.
 * Measured here (ext4 under gVisor, 10 SMTP sessions): through the pool each call costs 0.1–0.2 ms of
 * dispatch on the main thread and then queues behind other messages' fsyncs; as direct calls most take
 * 10–100 µs. Creating a file does not: under load it blocked the main thread ~0.7 ms per packet, so it
 * stays on the pool. Writes go to the page cache; only fsync waits for the disk.
 */
import { FerryError } from '../errors/index.js';
import { closeSync, fsync, linkSync, lstatSync, mkdirSync, open, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { stat, unlink as fsUnlink } from 'node:fs/promises';

export interface TreeFileHandle {
  /** Write `length` bytes of `buffer` from `offset`; may write fewer (the caller loops). */
  write(buffer: Uint8Array, offset: number, length: number): Promise<{ bytesWritten: number }>;
  /** fsync(2). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface TreeStat {
  size: number;
  mtimeMs: number;
  ino: number;
  isFile(): boolean;
  isDirectory(): boolean;
}

export interface TreeFs {
  /** open(2): 'wx' + mode for exclusive creation of temp files, 'r' to open a directory for fsync. */
  open(path: string, flags: string, mode?: number): Promise<TreeFileHandle>;
  /** rename(2): replaces an existing target, so callers check first. */
  rename(from: string, to: string): Promise<void>;
  /** link(2): fails with EEXIST if the target exists (the no-overwrite commit). */
  link(existing: string, newPath: string): Promise<void>;
  unlink(path: string): Promise<void>;
  lstat(path: string): Promise<TreeStat>;
  /** mkdir -p; returns the first directory created, or undefined if it already existed. */
  mkdirp(path: string): Promise<string | undefined>;
}

export const nodeTreeFs: TreeFs = Object.freeze({
  async open(path: string, flags: string, mode?: number): Promise<TreeFileHandle> {
    const fd = flags === 'r'
      ? openSync(path, flags)
      : await new Promise<number>((resolve, reject) => open(path, flags, mode, (err, n) => (err ? reject(err) : resolve(n))));
    let closed = false;
    const live = (): number => {
      if (closed) throw errnoError('EBADF', `${path}: file already closed`, path);
      return fd;
    };
    return {
      write: async (buffer, offset, length) => ({ bytesWritten: writeSync(live(), buffer, offset, length) }),
      sync: () => new Promise<void>((resolve, reject) => fsync(live(), (err) => (err ? reject(err) : resolve()))),
      close: async () => {
        live();
        closed = true; // never closed twice: the number may belong to another file by then
        closeSync(fd);
      },
    };
  },
  rename: async (from: string, to: string) => renameSync(from, to),
  link: async (existing: string, newPath: string) => linkSync(existing, newPath),
  unlink: async (path: string) => unlinkSync(path),
  lstat: async (path: string) => lstatSync(path),
  mkdirp: async (path: string) => mkdirSync(path, { recursive: true }),
});

/** unlink(2) through `unlink` (fs.promises' by default); false if the file was already gone. */
export async function unlinkIfPresent(path: string, unlink: (path: string) => Promise<void> = fsUnlink): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
}

/** The errno code of a thrown value, if any. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** An errno-style error (for refusals that should look like the syscall's own, e.g. EEXIST). */
export function errnoError(code: string, message: string, path?: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: ${message}`);
  err.code = code;
  if (path !== undefined) err.path = path;
  return err;
}

/** TREE itself is missing: a wrong node.tree or a folder not mounted, never something to create. */
export function treeMissingError(tree: string, cause?: unknown): FerryError {
  return new FerryError('CONFIG', `tree ${tree} does not exist (node.tree in the config; is the Syncthing folder mounted?)`, cause === undefined ? {} : { cause });
}

/**
 * TREE is a directory (a symlink to one too: the Syncthing folder often lives elsewhere), or CONFIG
 * (treeMissingError, or "not a directory"): for commands that write into or list it.
 */
export async function requireTree(tree: string): Promise<void> {
  let st;
  try {
    st = await stat(tree);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
    throw treeMissingError(tree, err);
  }
  if (!st.isDirectory()) throw new FerryError('CONFIG', `tree ${tree} is not a directory (node.tree in the config)`);
}

/** Whether `path` exists (a symlink counts as itself); errors other than ENOENT are thrown. */
export async function pathExists(path: string, fs: TreeFs = nodeTreeFs): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
}
