/**
 * `ferrypost flush` asks the running daemon to retry deferred packets now (Postfix's `postqueue -f`).
 * The command makes them due in the journal (the part that matters: any rescan or start then retries
 * them), then drops a request file into STATE/control/ and waits briefly for the daemon to take it
 * away, which is how it knows a daemon heard it. The daemon watches that directory (inotify; nothing
 * else is written there, so the watch never fires for journal writes) and rescans at once; a request
 * left from a time no daemon ran is taken at its next start. No signals: a pid file may be stale, and
 * a signal to the wrong process, or to a daemon not yet listening for it, would kill it.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errnoOf } from '../tree/fs.js';

const CONTROL_DIR = 'control';
const FLUSH_REQUEST = 'flush';

export function controlDir(stateDir: string): string {
  return join(stateDir, CONTROL_DIR);
}

/** Writes the request (atomically: a temp file renamed), then waits up to `waitMs` for a daemon to take it. */
export async function requestFlush(stateDir: string, waitMs: number): Promise<'taken' | 'not-taken'> {
  const dir = controlDir(stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  const tmp = join(dir, `.${FLUSH_REQUEST}.${process.pid}`);
  const file = join(dir, FLUSH_REQUEST);
  try {
    writeFileSync(tmp, `${new Date().toISOString()}\n`);
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  const until = Date.now() + waitMs;
  while (Date.now() < until) {
    if (!existsSync(file)) return 'taken';
    await new Promise((r) => setTimeout(r, 50));
  }
  return existsSync(file) ? 'not-taken' : 'taken';
}

/**
 * Calls `onFlush` for each request (and once at once for one left waiting), after removing it.
 * Returns the function that stops watching. A directory that cannot be made or watched is reported to
 * `onError`; deferred packets are then still retried on schedule and at every rescan.
 */
export function watchFlushRequests(stateDir: string, onFlush: () => void, onError: (err: unknown) => void): () => void {
  const dir = controlDir(stateDir);
  const file = join(dir, FLUSH_REQUEST);
  const take = (): void => {
    try {
      rmSync(file);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') onError(err);
      return; // no request (an event for the temp file, or another event for one already taken)
    }
    onFlush();
  };
  let watcher: ReturnType<typeof watch>;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    // Temp files of a `flush` that died between its write and its rename: nothing else removes them.
    for (const n of readdirSync(dir)) if (n.startsWith(`.${FLUSH_REQUEST}.`)) rmSync(join(dir, n), { force: true });
    watcher = watch(dir, (_event, name) => {
      if (name === FLUSH_REQUEST) take();
    });
    watcher.on('error', onError);
  } catch (err) {
    onError(err);
    return () => undefined;
  }
  take();
  return () => watcher.close();
}
