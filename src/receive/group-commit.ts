/**
 * Group commit of the receiver's journal records: packets that finish injection within a few
 * milliseconds of each other (8 by default) share one fsync'd SQLite transaction, instead of each blocking the event
 * loop for its own fsync (better-sqlite3 is synchronous; an fsync on the thread pool was tried and was
 * slower: its completion waits behind every other callback of a busy event loop).
 * - delivered(hash) resolves only after the transaction that includes the packet has committed, so
 *   "delete only after the journal durably says delivered" still holds.
 * - removed(hash) (the file is gone) is only queued: it rides along with the next transaction. Losing
 *   it in a crash is harmless: a delivered entry whose file is gone is marked removed at start.
 * - A batch closes early once every packet in hand waits in it (options.inHand): none of them can join
 *   later, so waiting out the rest of the window would only idle the receive slots. A packet that
 *   starts in a slot freed meanwhile (another one ended without delivering) could have joined; it
 *   takes the next commit instead: a trade of that rare sharing for never idling.
 * A failing commit rejects every delivered() of that batch (those packets stay in the tree and
 * are retried); removed records of a failed transaction are dropped (recovery finishes them).
 */
import type { Journal } from '../store/journal.js';

export interface GroupCommit {
  delivered(hash: string): Promise<void>;
  /** Records "removed" with the next transaction (not durable by itself; see the file comment). */
  removed(hash: string): void;
  /** True while a removed() record waits for its transaction (the journal still says delivered). */
  removedPending(hash: string): boolean;
  /** Commits whatever is pending now (shutdown). */
  flush(): void;
  /** A packet in hand finished (options.inHand dropped): commits now if every one left waits here. */
  settle(): void;
}

interface Waiter {
  hash: string;
  resolve: () => void;
  reject: (e: unknown) => void;
}

export interface GroupCommitOptions {
  /** Commit at once when this many records are pending. */
  maxBatch?: number;
  /** How long a delivered() waits for others to share its transaction. */
  maxDelayMs?: number;
  /** How long removed records alone wait for a transaction to ride along with. */
  removedDelayMs?: number;
  /**
   * Packets in hand that may still call delivered() (the receiver's running tasks, those waiting here
   * included). When as many wait as are in hand, the batch commits at once instead of after maxDelayMs.
   */
  inHand?: () => number;
}

export function createGroupCommit(journal: Journal, now: () => number, opts: GroupCommitOptions = {}): GroupCommit {
  const maxBatch = opts.maxBatch ?? 256;
  // 8 ms: at ~450 packets/s a 2 ms window held one or two packets, so nearly every packet paid its own
  // blocking fsync; 8 ms shares it among ~4 (A/B into smtp-sink: 3.96 vs 4.25 ms CPU per packet) and
  // adds a few ms to a packet's latency, which the receive.concurrency slots absorb.
  const maxDelayMs = opts.maxDelayMs ?? 8;
  const removedDelayMs = opts.removedDelayMs ?? 200;
  let delivered: Waiter[] = [];
  let removed: string[] = [];
  const removedSet = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let timerUrgent = false;

  const allWaiting = (): boolean => opts.inHand !== undefined && delivered.length > 0 && delivered.length >= opts.inHand();

  function schedule(urgent: boolean): void {
    if (delivered.length + removed.length >= maxBatch || (urgent && allWaiting())) {
      commitNow();
      return;
    }
    if (timer && (timerUrgent || !urgent)) return;
    if (timer) clearTimeout(timer);
    timerUrgent = urgent;
    timer = setTimeout(commitNow, urgent ? maxDelayMs : removedDelayMs);
    // Removed records alone must not keep the process alive; flush() at stop writes them.
    if (!urgent) timer.unref();
  }

  function commitNow(): void {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const waiters = delivered;
    const gone = removed;
    delivered = [];
    removed = [];
    removedSet.clear();
    if (!waiters.length && !gone.length) return;
    try {
      journal.commit({ delivered: waiters.map((w) => w.hash), removed: gone }, now());
    } catch (err) {
      for (const w of waiters) w.reject(err);
      return;
    }
    for (const w of waiters) w.resolve();
  }

  return {
    delivered(hash) {
      return new Promise<void>((resolve, reject) => {
        delivered.push({ hash, resolve, reject });
        schedule(true);
      });
    },
    removed(hash) {
      removed.push(hash);
      removedSet.add(hash);
      schedule(false);
    },
    removedPending: (hash) => removedSet.has(hash),
    flush: commitNow,
    settle() {
      if (allWaiting()) commitNow();
    },
  };
}
