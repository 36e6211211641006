/**
 * One daemon per node: `ferrypost run` holds an exclusive lock on its state directory while it runs,
 * as Postfix's master holds master.lock. Why: two daemons on one state directory would both take the
 * same packets from the inbox, and the journal's "is this packet new?" and the injection are not one
 * step across processes, so both would inject some packets (the recipient gets the mail twice), and
 * each would quarantine as replays packets the other had just delivered.
 * How: `daemon.lock` in the state directory is an SQLite database held in exclusive locking mode. Its
 * lock is a POSIX record lock, which the kernel drops when the process ends in any way (kill -9,
 * a crash, a power cut: nothing stale to clean up), and SQLite makes a second connection in the same
 * process wait for it too. The caller must keep the returned handle referenced: a collected
 * connection closes, and that releases the lock. `daemon.pid` next to it only names the holder in
 * the error; it is never trusted for the decision (it may be stale after a kill -9). The lock is
 * per state directory: two configs with different state directories for one node are not caught.
 * Fails: FerryError ALREADY_RUNNING (another daemon holds the lock; the message names its pid when
 * known); STORE_FAILED if the file cannot be created or opened.
 */
import Database from 'better-sqlite3';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FerryError } from '../errors/index.js';

export const LOCK_FILE = 'daemon.lock';
export const PID_FILE = 'daemon.pid';

export interface DaemonLock {
  /** Releases the lock (the daemon stopped). Idempotent. */
  release(): void;
}

/** Takes the state directory's daemon lock, or throws at once if another daemon holds it. */
export function acquireDaemonLock(stateDir: string, pid = process.pid): DaemonLock {
  const file = join(stateDir, LOCK_FILE);
  let db: Database.Database;
  try {
    db = new Database(file, { timeout: 0 });
  } catch (e) {
    throw new FerryError('STORE_FAILED', `cannot open the daemon lock ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = MEMORY'); // no daemon.lock-journal file next to it
    // The first write transaction takes the exclusive lock; in this locking mode it is kept after
    // COMMIT until the connection closes.
    db.exec('BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS holder (pid INTEGER); DELETE FROM holder; COMMIT');
  } catch (e) {
    db.close();
    // better-sqlite3 reports extended codes (SQLITE_BUSY_*) too.
    if ((e as { code?: string }).code?.startsWith('SQLITE_BUSY')) {
      const holder = readPid(join(stateDir, PID_FILE));
      throw new FerryError(
        'ALREADY_RUNNING',
        `another ferrypost daemon is running for the state directory ${stateDir}${holder ? ` (pid ${holder}, from ${PID_FILE})` : ''}: stop it first (two daemons would deliver the same packets twice)`,
      );
    }
    throw new FerryError('STORE_FAILED', `cannot lock ${file}: ${(e as Error).message}`, { cause: e });
  }
  const pidFile = join(stateDir, PID_FILE);
  try {
    // Renamed into place: a reader never sees a half-written pid.
    writeFileSync(`${pidFile}.tmp`, `${pid}\n`, { mode: 0o644 });
    renameSync(`${pidFile}.tmp`, pidFile);
  } catch {
    // Only informational: better none than a stale one.
    try {
      rmSync(pidFile, { force: true });
    } catch {
      // nothing more to do
    }
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      try {
        rmSync(pidFile, { force: true });
      } catch {
        // A read-only or changed directory: the lock is released all the same.
      } finally {
        db.close();
      }
    },
  };
}

function readPid(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
