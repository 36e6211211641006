/**
 * The sender's index of the packets it wrote: the tree holds them encrypted to their recipient, so
 * the sender cannot read its own packets back. `ferrypost queue` joins this index with what is still
 * in the tree. Informational only: losing it loses no mail (the packets themselves are the queue).
 * So the daemon's inserts are batched (recordLater): one sqlite transaction per ~50 ms instead of one
 * per message (each was a WAL append costing ~0.4 ms of the event loop at 150 msg/s); a crash loses at
 * most the rows of the last batch, never a packet.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { MailEnvelope } from '../packet/header.js';
import type { Enqueue, QueuedPacket } from '../send/types.js';

export interface OutboxRecord {
  name: string;
  id: string;
  peer: string;
  toNode: string;
  from: string;
  recipients: string[];
  created: number;
}

export interface Outbox {
  record(rows: OutboxRecord[]): void;
  /**
   * Queues rows for one transaction with the others recorded within BATCH_MS (or BATCH_ROWS rows);
   * a failed insert is reported to `onError` of the rows concerned. Reads and close() write pending rows first.
   */
  recordLater(rows: OutboxRecord[], onError: (err: unknown) => void): void;
  byNames(names: readonly string[]): Map<string, OutboxRecord>;
  /** Rows in the index (pending rows written first). */
  count(): number;
  /**
   * Forget entries whose packets are gone from the tree (delivered). With `createdBefore`, only rows
   * created before it: a younger row may be for a packet written after the caller's scan.
   */
  forgetExcept(names: ReadonlySet<string>, createdBefore?: number): number;
  close(): void;
}

const BATCH_MS = 50;
const BATCH_ROWS = 500;

export function openOutbox(stateDir: string): Outbox {
  mkdirSync(stateDir, { recursive: true });
  const db = new Database(path.join(stateDir, 'outbox.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.exec(`CREATE TABLE IF NOT EXISTS outbox (
    name TEXT PRIMARY KEY, id TEXT NOT NULL, peer TEXT NOT NULL, to_node TEXT NOT NULL,
    mail_from TEXT NOT NULL, recipients TEXT NOT NULL, created INTEGER NOT NULL)`);
  const insert = db.prepare(`INSERT OR REPLACE INTO outbox VALUES (@name, @id, @peer, @toNode, @from, @recipients, @created)`);
  const insertMany = db.transaction((rows: OutboxRecord[]) => {
    for (const r of rows) insert.run({ ...r, recipients: JSON.stringify(r.recipients) });
  });
  const all = db.prepare(`SELECT name FROM outbox`);
  const older = db.prepare(`SELECT name FROM outbox WHERE created < ?`);
  const del = db.prepare(`DELETE FROM outbox WHERE name = ?`);
  // Rows as arrays, not objects: `ferrypost queue` reads every row (10,000 packets: ~10 % less time).
  const everything = db.prepare(`SELECT name, id, peer, to_node, mail_from, recipients, created FROM outbox`).raw(true);
  const countRows = db.prepare(`SELECT count(*) FROM outbox`).pluck(true);
  let pending: Array<{ rows: OutboxRecord[]; onError: (err: unknown) => void }> = [];
  let pendingRows = 0;
  let timer: NodeJS.Timeout | undefined;
  function flush(): void {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const batch = pending;
    pending = [];
    pendingRows = 0;
    if (batch.length === 0) return;
    try {
      insertMany(batch.flatMap((b) => b.rows));
    } catch (err) {
      for (const b of batch) b.onError(err);
    }
  }
  return {
    record: (rows) => insertMany(rows),
    recordLater(rows, onError) {
      pending.push({ rows, onError });
      pendingRows += rows.length;
      if (pendingRows >= BATCH_ROWS) flush();
      else timer ??= setTimeout(flush, BATCH_MS).unref();
    },
    byNames(names) {
      flush();
      // One pass over the index (it holds only packets still in the tree) instead of a query per name.
      const wanted = new Set(names);
      const out = new Map<string, OutboxRecord>();
      for (const [name, id, peer, toNode, from, recipients, created] of everything.iterate() as IterableIterator<[string, string, string, string, string, string, number]>) {
        if (!wanted.has(name)) continue;
        out.set(name, { name, id, peer, toNode, from, recipients: JSON.parse(recipients) as string[], created: Number(created) });
      }
      return out;
    },
    count() {
      flush();
      return countRows.get() as number;
    },
    forgetExcept(keep, createdBefore) {
      flush();
      const rows = (createdBefore === undefined ? all.all() : older.all(createdBefore)) as Array<{ name: string }>;
      const gone = rows.filter((r) => !keep.has(r.name));
      db.transaction(() => gone.forEach((r) => del.run(r.name)))();
      return gone.length;
    },
    close() {
      flush();
      db.close();
    },
  };
}

/** Wraps an Enqueue so that every packet it writes is indexed; an index failure never fails the mail. */
export function recordingEnqueue(inner: Enqueue, outbox: Outbox, onError: (err: unknown) => void, now: () => number = Date.now): Enqueue {
  return {
    async submit(envelope: MailEnvelope, message) {
      const queued: QueuedPacket[] = await inner.submit(envelope, message);
      outbox.recordLater(queued.map((q) => ({ name: q.name, id: q.id, peer: q.peer, toNode: q.toNode, from: envelope.from, recipients: q.recipients, created: now() })), onError);
      return queued;
    },
  };
}

/**
 * An outbox that keeps nothing: what the daemon and `sendmail` use when the real one cannot be opened
 * (corrupt, or left unwritable by root), since the index must never stop mail. `ferrypost queue` then
 * lists packets without their envelope.
 */
export function nullOutbox(): Outbox {
  return { record: () => undefined, recordLater: () => undefined, byNames: () => new Map(), count: () => 0, forgetExcept: () => 0, close: () => undefined };
}
