/**
 * Watches our inbox (TREE/<self>, created if missing) and every sender subdirectory, including ones that
 * appear later, and calls onChange (coalesced: at most once per debounceMs after the first event).
 * A latency optimisation only: the receiver also rescans periodically. Watcher errors and vanishing
 * directories never throw; they go to opts.onError and the watch is re-established (root retried every
 * second). Exceptions from onChange also go to onError.
 */
import { watch, mkdirSync, statSync, readdirSync, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { inboxDir, isNodeId } from './layout.js';

export interface WatchOptions {
  debounceMs?: number;
  onError?: (err: unknown) => void;
  /** Retry interval for re-creating a vanished inbox watch (default 1000 ms). */
  retryMs?: number;
}

interface Watched {
  watcher: FSWatcher;
  ino: number;
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

  const drop = (dir: string): void => {
    const w = watched.get(dir);
    if (w === undefined) return;
    watched.delete(dir);
    try {
      w.watcher.close();
    } catch {
      // already closed
    }
  };

  const inoOf = (dir: string): number | undefined => {
    try {
      const st = statSync(dir);
      return st.isDirectory() ? st.ino : undefined;
    } catch {
      return undefined;
    }
  };

  /** Make the watch on `dir` match the filesystem: add, replace (recreated dir) or drop (gone). */
  const sync = (dir: string, onEvent: (filename: string | null) => void): boolean => {
    const ino = inoOf(dir);
    const cur = watched.get(dir);
    if (cur !== undefined && cur.ino === ino) return true;
    drop(dir);
    if (ino === undefined) return false;
    try {
      const watcher = watch(dir, { persistent: true }, (_event, filename) => onEvent(filename === null ? null : String(filename)));
      watcher.on('error', (err) => {
        report(err);
        drop(dir);
        if (dir === root) scheduleRetry();
        fire();
      });
      watched.set(dir, { watcher, ino });
      return true;
    } catch (err) {
      report(err);
      return false;
    }
  };

  const syncSender = (name: string): void => {
    if (isNodeId(name)) sync(join(root, name), () => fire());
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
    if (inoOf(root) !== watched.get(root)?.ino) {
      // The inbox itself vanished or was replaced: start over.
      for (const dir of [...watched.keys()]) drop(dir);
      scheduleRetry();
      return;
    }
    if (filename !== null && filename !== '') syncSender(filename);
    else syncAll();
  };

  const start = (): boolean => {
    try {
      mkdirSync(root, { recursive: true });
    } catch (err) {
      report(err);
      return false;
    }
    if (!sync(root, onRootEvent)) return false;
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
