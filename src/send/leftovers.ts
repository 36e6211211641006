/**
 * What a crash leaves behind on the sending side, removed when the daemon starts (with or without a
 * receiver: a send-only node crashes too): `.ferrypost.*.tmp` files in the tree older than an hour
 * (younger ones may be another node's or a `ferrypost sendmail`'s write under way), and spooled
 * messages (STATE/spool/<pid>-<random>.msg) of processes that are gone: a `ferrypost sendmail`
 * running next to the daemon spools into the same directory (a reused pid keeps a file until a later start). STATE/work holds
 * only the daemon's own receiver work files (one daemon per state directory) and is emptied whole.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { removeStaleTemps, type ScanErrorHandler } from '../tree/scan.js';

/** Temp and spool files older than this are crash leftovers; younger ones may be in use by another process. */
export const STALE_AGE_MS = 3_600_000;

export async function removeLeftovers(tree: string, stateDir: string, log: Logger, onError?: ScanErrorHandler, now: number = Date.now()): Promise<void> {
  const temps = await removeStaleTemps(tree, STALE_AGE_MS, now, onError);
  for (const p of temps) log.info({ evt: 'rx.recover-temp', file: p }, 'removed a temp file left by a crash');
  await rm(path.join(stateDir, 'work'), { recursive: true, force: true });
  const spool = path.join(stateDir, 'spool');
  const names = await readdir(spool).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    throw e;
  });
  for (const name of names) {
    const file = path.join(spool, name);
    const st = await stat(file).catch(() => undefined);
    if (!st) continue;
    // A live writer's file stays whatever its age (a sendmail whose input pipe stalls writes nothing
    // for a while): removing it would fail that sendmail after it consumed its input.
    if (writerAlive(name)) continue;
    await rm(file, { recursive: true, force: true });
    log.info({ evt: 'send.recover-spool', file }, 'removed a spooled message left by a crash');
  }
}

/** The spool file's writer (its name's pid) still runs; false for a name without one. */
function writerAlive(name: string): boolean {
  const pid = Number(/^(\d+)-/.exec(name)?.[1]);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false; // this daemon has just started: nothing of its own is under way
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}
