/**
 * Recipients the next hop accepted (or that were bounced) whose journal record has not committed yet,
 * per packet hash, in memory. If a journal write fails after the MTA's 250 (disk full, EIO), the
 * packet stays in the tree and is retried; without this, the retry would inject those recipients a
 * second time with nothing logged. With it, the retry only writes the record. A crash loses this set,
 * and recovery's "possible duplicate" warning for packets left "injecting" covers that case
 * (docs/delivery.md).
 */
export interface Unrecorded {
  /** Notes recipients as finished before their record is written. */
  add(hash: string, rcpts: readonly string[]): void;
  /** Recipients of this packet finished but not recorded (empty if none). */
  get(hash: string): readonly string[];
  /** The journal now holds everything about this packet: forget it. */
  clear(hash: string): void;
}

export function createUnrecorded(): Unrecorded {
  const byHash = new Map<string, Set<string>>();
  return {
    add(hash, rcpts) {
      if (!rcpts.length) return;
      let set = byHash.get(hash);
      if (!set) byHash.set(hash, (set = new Set()));
      for (const r of rcpts) set.add(r);
    },
    get: (hash) => [...(byHash.get(hash) ?? [])],
    clear(hash) {
      byHash.delete(hash);
    },
  };
}
