/**
 * Group commit of "delivered" journal records: packets that finish injection within a couple of
 * milliseconds of each other share one fsync'd SQLite transaction, instead of each blocking the event
 * loop for its own fsync. Each caller's promise resolves only after the transaction that includes its
 * packet has committed, so "delete only after the journal durably says delivered" still holds.
 * A failing commit rejects every packet of that batch (they stay in the tree and are retried).
 */
import type { Journal } from '../store/journal.js';

export interface GroupCommit {
  delivered(hash: string): Promise<void>;
  /** Commits whatever is pending now (shutdown). */
  flush(): void;
}

export function createGroupCommit(journal: Journal, now: () => number, opts: { maxBatch?: number; maxDelayMs?: number } = {}): GroupCommit {
  const maxBatch = opts.maxBatch ?? 256;
  const maxDelayMs = opts.maxDelayMs ?? 2;
  let pending: Array<{ hash: string; resolve: () => void; reject: (e: unknown) => void }> = [];
  let timer: NodeJS.Timeout | undefined;

  function flush(): void {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const batch = pending;
    pending = [];
    if (!batch.length) return;
    try {
      journal.deliveredMany(batch.map((b) => b.hash), now());
    } catch (err) {
      for (const b of batch) b.reject(err);
      return;
    }
    for (const b of batch) b.resolve();
  }

  return {
    delivered(hash) {
      return new Promise<void>((resolve, reject) => {
        pending.push({ hash, resolve, reject });
        if (pending.length >= maxBatch) flush();
        else timer ??= setTimeout(flush, maxDelayMs);
      });
    },
    flush,
  };
}
