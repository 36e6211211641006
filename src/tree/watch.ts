/**
 * Watches our inbox (TREE/<self>, created if missing; TREE itself never is) and every sender
 * subdirectory, including ones that appear later, and calls onChange (coalesced: at most once per
 * debounceMs after the first event). A latency optimisation only: the receiver also rescans
 * periodically. Watcher errors and vanishing directories never throw; they go to opts.onError and the
 * watch is re-established (root retried every second). Exceptions from onChange also go to onError.
 */
import { watch, mkdirSync, statSync, lstatSync, readdirSync, type FSWatcher } from 'node:fs';
import { basename, join } from 'node:path';
import { FerryError } from '../errors/index.js';
import { treeMissingError } from './fs.js';
import { inboxDir, isNodeId } from './layout.js';

export interface WatchOptions {
  debounceMs?: number;
  onError?: (err: unknown) => void;
  /** Retry interval for re-creating a vanished inbox watch (default 1000 ms). */
  retryMs?: number;
}

interface Watched {
  watcher: FSWatcher;
  id: string;
}

export function watchInbox(tree: string, self: string, onChange: () => void, opts: WatchOptions = {}): { close(): void } {
  const root = inboxDir(tree, self);
  const debounceMs = opts.debounceMs ?? 20;
  const retryMs = opts.retryMs ?? 1000;
  const report = (err: unknown): void => {
    try {
      opts.onError?.(err);
    } catch {
      // A failing error reporter must not take the watcher down.
    }
  };
  const watched = new Map<string, Watched>();
  let timer: NodeJS.Timeout | undefined;
  let retry: NodeJS.Timeout | undefined;
  let closed = false;
  /** The last problem start() reported: a retry that fails the same way every second stays quiet. */
  let startProblem: string | undefined;

  const fire = (): void => {
    if (closed || timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      if (closed) return;
      try {
        onChange();
      } catch (err) {
        report(err);
      }
    }, debounceMs);
  };

  /** Stop watching `dir`; with `only`, just if that is still its watcher (not a replacement). */
  const drop = (dir: string, only?: FSWatcher): void => {
    const w = watched.get(dir);
    if (w === undefined || (only !== undefined && w.watcher !== only)) return;
    watched.delete(dir);
    try {
      w.watcher.close();
    } catch {
      // already closed
    }
  };

  /**
   * Which directory is at `dir`: inode and birth time, since ext4 gives a recreated directory the
   * inode just freed (ctime where there is no birth time). Undefined if none. Sender directories are
   * not followed: the scanner skips a symlink there; the root is followed, as the scanner does.
   */
  const idOf = (dir: string): string | undefined => {
    try {
      const st = (dir === root ? statSync : lstatSync)(dir, { bigint: true });
      return st.isDirectory() ? `${st.ino}:${st.birthtimeNs || st.ctimeNs}` : undefined;
    } catch {
      return undefined;
    }
  };

  /**
   * Make the watch on `dir` match the filesystem: add, replace (recreated dir; always with `renew`) or
   * drop (gone). A replacement is made before the old watch closes: on the same directory both share
   * one inotify watch, so no event falls between them.
   */
  const sync = (dir: string, onEvent: (filename: string | null) => void, renew = false): boolean => {
    const id = idOf(dir);
    const cur = watched.get(dir);
    if (cur !== undefined && cur.id === id && !renew) return true;
    if (id === undefined) {
      drop(dir);
      return false;
    }
    try {
      const watcher = watch(dir, { persistent: true }, (_event, filename) => onEvent(filename === null ? null : String(filename)));
      watcher.on('error', (err) => {
        report(err);
        drop(dir, watcher);
        if (dir === root) scheduleRetry();
        fire();
      });
      drop(dir);
      watched.set(dir, { watcher, id });
      return true;
    } catch (err) {
      drop(dir);
      report(err);
      return false;
    }
  };

  const syncSender = (name: string, renew = false): void => {
    if (isNodeId(name)) sync(join(root, name), () => fire(), renew);
  };

  const syncAll = (): void => {
    let names: string[] = [];
    try {
      names = readdirSync(root);
    } catch (err) {
      report(err);
    }
    const present = new Set(names.filter(isNodeId).map((n) => join(root, n)));
    for (const dir of [...watched.keys()]) if (dir !== root && !present.has(dir)) drop(dir);
    for (const n of names) syncSender(n);
  };

  const onRootEvent = (filename: string | null): void => {
    fire();
    // An event naming the root is about the root itself (deleted or moved: its watch is dead), or about
    // TREE/<self>/<self>; both are rare, so start over on either rather than trust the identity alone
    // (timestamps may be too coarse to tell a directory recreated within a tick).
    if (idOf(root) !== watched.get(root)?.id || filename === basename(root)) {
      for (const dir of [...watched.keys()]) drop(dir);
      if (start()) fire();
      else scheduleRetry();
      return;
    }
    // Renewed on every event naming it (created, deleted, replaced: rare, and cheap).
    if (filename !== null && filename !== '') syncSender(filename, true);
    else syncAll();
  };

  const startFailed = (err: unknown): false => {
    const problem = err instanceof Error ? `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}` : String(err);
    if (problem !== startProblem) report(err);
    startProblem = problem;
    return false;
  };

  const start = (): boolean => {
    try {
      // Not recursive: a missing TREE is a wrong node.tree or an unmounted folder, not ours to create.
      mkdirSync(root);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return startFailed(treeMissingError(tree, err));
      if (code !== 'EEXIST') return startFailed(err);
    }
    if (idOf(root) === undefined) return startFailed(new FerryError('CONFIG', `inbox ${root} is not a directory`));
    if (!sync(root, onRootEvent, true)) return false;
    startProblem = undefined;
    syncAll();
    return true;
  };

  function scheduleRetry(): void {
    if (closed || retry !== undefined) return;
    retry = setTimeout(() => {
      retry = undefined;
      if (closed) return;
      if (start()) fire();
      else scheduleRetry();
    }, retryMs);
    retry.unref();
  }

  if (!start()) scheduleRetry();

  return {
    close(): void {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      if (retry !== undefined) clearTimeout(retry);
      for (const dir of [...watched.keys()]) drop(dir);
    },
  };
}
