/**
 * Scanning the synced tree: packets waiting in our inbox (TREE/<self>/<from>/), packets we wrote that
 * the peers have not consumed yet (TREE/<to>/<self>/), streaming file hashes, and removal of stale
 * ferrypost temp files at start. Missing directories and files vanishing mid-scan are normal (Syncthing
 * and the receiver delete concurrently) and are skipped. Other errors (EACCES, EIO) on the directory
 * scanned are thrown; on one sender's directory or one file they go to `onError` and the rest is
 * scanned all the same (Syncthing copies a peer's permission bits: one unreadable directory must not
 * hide every other peer's packets), or are thrown if there is no `onError`.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp, statSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { TEMP_PREFIX, TEMP_SUFFIX } from './durable.js';
import { errnoError, errnoOf } from './fs.js';
import { conflictOriginal, hashFromPacketName, inboxDir, isIgnoredName, isNodeId } from './layout.js';

export interface TreeEntry {
  to: string;
  from: string;
  name: string;
  path: string;
  size: number;
  mtimeMs: number;
  /** The SHA-256 the name claims; the file content is checked against it by the receiver. */
  hash: Buffer;
}

const STAT_PARALLEL = 64;

async function readdirOrEmpty(dir: string): Promise<Dirent[]> {
  try {
    return await fsp.readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw err;
  }
}

/** Run fn over items with at most `limit` in flight; results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

interface Candidate {
  to: string;
  from: string;
  name: string;
  hash: Buffer;
}

async function packetsIn(tree: string, to: string, from: string, onError?: ScanErrorHandler, onConflict?: ConflictHandler): Promise<Candidate[]> {
  const dir = join(tree, to, from);
  const out: Candidate[] = [];
  let entries: Dirent[];
  try {
    entries = await readdirOrEmpty(dir);
  } catch (err) {
    if (!onError) throw err;
    onError(dir, err);
    return out;
  }
  for (const d of entries) {
    if (onConflict && d.name.includes('.sync-conflict-') && d.isFile() && conflictOriginal(d.name)) onConflict(dir, d.name);
    if (!d.isFile() || isIgnoredName(d.name)) continue;
    const hash = hashFromPacketName(d.name);
    if (hash !== undefined) out.push({ to, from, name: d.name, hash });
  }
  return out;
}

/** Where a part of the tree could not be read, and why. */
export type ScanErrorHandler = (path: string, err: unknown) => void;
/** A Syncthing conflict copy of a packet, found in directory `dir`. */
export type ConflictHandler = (dir: string, name: string) => void;

export interface ScanOptions {
  /** Skip a sender directory or file that cannot be read, reporting it here, instead of failing the scan. */
  onError?: ScanErrorHandler;
  /** Called for each Syncthing conflict copy of a packet met on the way (scanInbox only). */
  onConflict?: ConflictHandler;
  /**
   * stat(2) synchronously: several times faster on large trees, but blocks the event loop for the
   * whole scan. For one-shot commands (ferrypost queue), never for the daemon.
   */
  blocking?: boolean;
}

async function statAll(tree: string, cands: Candidate[], opts: ScanOptions = {}): Promise<TreeEntry[]> {
  const statOne = (c: Candidate, st: { isFile(): boolean; size: number; mtimeMs: number } | undefined, path: string): TreeEntry | undefined =>
    st?.isFile() ? { ...c, path, size: st.size, mtimeMs: st.mtimeMs } : undefined; // undefined: consumed or removed meanwhile
  const failed = (path: string, err: unknown): undefined => {
    if (!opts.onError) throw err;
    opts.onError(path, err);
    return undefined;
  };
  const entries = opts.blocking
    ? // A plain loop: no promise per file (10,000 packets: a third of `ferrypost queue`'s scan time).
      cands.map((c) => {
        const path = join(tree, c.to, c.from, c.name);
        try {
          return statOne(c, statSync(path, { throwIfNoEntry: false }), path);
        } catch (err) {
          return failed(path, err);
        }
      })
    : await mapLimit(cands, STAT_PARALLEL, async (c): Promise<TreeEntry | undefined> => {
        const path = join(tree, c.to, c.from, c.name);
        try {
          return statOne(c, await fsp.stat(path), path);
        } catch (err) {
          if (errnoOf(err) === 'ENOENT') return undefined;
          return failed(path, err);
        }
      });
  const found = entries.filter((e): e is TreeEntry => e !== undefined);
  // Oldest first, so a backlog is delivered roughly in the order it was written.
  found.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return found;
}

/** Packets addressed to us: TREE/<self>/<from>/<packet name>, for every sender directory. */
export async function scanInbox(tree: string, self: string, opts: ScanOptions = {}): Promise<TreeEntry[]> {
  const inbox = inboxDir(tree, self);
  // A symlink in its place (Syncthing syncs symlinks a peer made) would have us read, and quarantine
  // from, wherever it points: refused, as symlinked sender directories and packets are.
  const st = await fsp.lstat(inbox).catch((err: unknown) => {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  });
  if (st?.isSymbolicLink()) throw errnoError('ELOOP', `the inbox ${inbox} is a symbolic link, not a directory: not scanned (replace it with a directory)`, inbox);
  const senders = (await readdirOrEmpty(inbox)).filter((d) => d.isDirectory() && isNodeId(d.name));
  const lists = await Promise.all(senders.map((d) => packetsIn(tree, self, d.name, opts.onError, opts.onConflict)));
  return statAll(tree, lists.flat(), opts);
}

/** Packets we wrote that are still in the tree: TREE/<to>/<self>/<packet name>, for every `to` (incl. self). */
export async function scanOutgoing(tree: string, self: string, opts: ScanOptions = {}): Promise<TreeEntry[]> {
  const recipients = (await readdirOrEmpty(tree)).filter((d) => d.isDirectory() && isNodeId(d.name));
  const lists = await Promise.all(recipients.map((d) => packetsIn(tree, d.name, self, opts.onError)));
  return statAll(tree, lists.flat(), opts);
}

/** Streaming SHA-256 of a file. */
export async function hashFile(file: string): Promise<Buffer> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), h);
  return h.digest();
}

function isOurTemp(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) && name.endsWith(TEMP_SUFFIX);
}

/**
 * Recovery: delete `.ferrypost.*.tmp` files whose mtime is older than `olderThanMs` in TREE, TREE/<node>
 * and TREE/<node>/<node> (node-id directories: where ferrypost writes). Returns the removed paths. A
 * directory or temp that cannot be read or removed goes to `onError` (other nodes' directories may well
 * be unreadable to us), or is thrown without it.
 */
export async function removeStaleTemps(tree: string, olderThanMs: number, now: number = Date.now(), onError?: ScanErrorHandler): Promise<string[]> {
  const removed: string[] = [];
  const failed = (path: string, err: unknown): void => {
    if (!onError) throw err;
    onError(path, err);
  };
  const visit = async (dir: string, depth: number): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdirOrEmpty(dir);
    } catch (err) {
      failed(dir, err);
      return;
    }
    // The path is joined only for what is visited or removed: a backlog of 10,000 packets is 10,000
    // entries here at every start.
    for (const d of entries) {
      if (d.isDirectory()) {
        if (depth < 2 && isNodeId(d.name)) await visit(join(dir, d.name), depth + 1); // not .stversions etc.
      } else if (d.isFile() && isOurTemp(d.name)) {
        const p = join(dir, d.name);
        try {
          const st = await fsp.stat(p);
          if (now - st.mtimeMs <= olderThanMs) continue;
          await fsp.unlink(p);
          removed.push(p);
        } catch (err) {
          if (errnoOf(err) !== 'ENOENT') failed(p, err);
        }
      }
    }
  };
  await visit(tree, 0);
  return removed;
}
