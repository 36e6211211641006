/**
 * The narrow filesystem interface used by durable writes (tree/durable.ts) and quarantine, so tests can
 * inject faults (ENOSPC on write, EIO on fsync, a failing rename/link, EXDEV). `nodeTreeFs` is the real
 * thing over node:fs/promises. Failures are the plain errno errors from Node; nothing is retried here.
 */
import { promises as fsp } from 'node:fs';

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
    const h = await fsp.open(path, flags, mode);
    return {
      write: async (buffer, offset, length) => ({ bytesWritten: (await h.write(buffer, offset, length)).bytesWritten }),
      sync: () => h.sync(),
      close: () => h.close(),
    };
  },
  rename: (from: string, to: string) => fsp.rename(from, to),
  link: (existing: string, newPath: string) => fsp.link(existing, newPath),
  unlink: (path: string) => fsp.unlink(path),
  lstat: (path: string) => fsp.lstat(path),
  mkdirp: (path: string) => fsp.mkdir(path, { recursive: true }),
});

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
