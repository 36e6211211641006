/**
 * The receiver's durable journal (better-sqlite3, WAL): one row per packet, keyed by the packet file's
 * SHA-256 (hex), with the packet id unique too (replay detection via byId).
 * States: injecting → deferred ⇄ injecting → delivered → removed. Every method that writes has committed
 * its transaction (written to the WAL, so it survives kill -9) before it returns. `defer` and `delivered`
 * are also fsync'd before they return (synchronous=FULL for that transaction): they are what stops a
 * second injection. The others commit without an fsync (synchronous=NORMAL): losing them in a power
 * failure changes nothing that matters (an entry still "injecting" is injected again either way; a
 * delivered entry without its file is marked removed at start), and the next fsync makes them durable
 * too, in order (WAL). The receiver's hot path uses `commit`: several packets' records in one fsync'd
 * transaction (its group commit), so the fsync, which blocks the event loop (better-sqlite3 is
 * synchronous), is shared. Illegal transitions, unknown hashes and a reused id throw FerryError
 * (PACKET_REPLAY for a reused id or re-delivery, INTERNAL otherwise); an unopenable or newer-schema file
 * throws FerryError('STORE_FAILED' / 'CONFIG') naming the file.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { FerryError } from '../errors/index.js';

export type JournalState = 'injecting' | 'deferred' | 'delivered' | 'removed';

export interface JournalEntry {
  hash: string;
  id: string;
  fromNode: string;
  state: JournalState;
  firstSeen: number;
  updated: number;
  attempts: number;
  nextAttempt: number | null;
  lastError: string | null;
  doneRecipients: string[];
  recipients: string[];
  /** Packet expiry, ms since the epoch. */
  expires: number;
  size: number;
}

export interface BeginArgs {
  hash: string;
  id: string;
  fromNode: string;
  recipients: string[];
  expires: number;
  size: number;
}

export interface JournalBatch {
  delivered?: readonly string[];
  removed?: readonly string[];
}

export interface Journal {
  byHash(hash: string): JournalEntry | undefined;
  byId(id: string): JournalEntry | undefined;
  /** Insert as 'injecting', or move an existing injecting/deferred entry back to 'injecting'; attempts+1. */
  begin(e: BeginArgs, now?: number): JournalEntry;
  recipientsDone(hash: string, rcpts: string[]): void;
  /**
   * A packet refused after its sender was told (expired in transit: DSN sent), never injected: one
   * durable insert as 'removed' with every recipient done, so neither a restart nor a quarantine
   * release bounces it again or delivers it. PACKET_REPLAY if its id is recorded under another hash.
   */
  recordBounced(e: BeginArgs, reason: string, now?: number): void;
  defer(hash: string, error: string, nextAttempt: number, now?: number): void;
  delivered(hash: string, now?: number): void;
  /**
   * Several packets' records in one transaction (the receiver's group commit), fsync'd when it holds
   * delivered records: `delivered` as
   * delivered() (an illegal transition throws and nothing of the batch is written); `removed` for
   * entries that are delivered (others are left as they are).
   */
  commit(batch: JournalBatch, now?: number): void;
  removed(hash: string, now?: number): void;
  inState(state: JournalState): JournalEntry[];
  /** Deferred entries with nextAttempt <= now, earliest first. */
  dueForRetry(now: number): JournalEntry[];
  /** Every deferred entry due at `now` (`ferrypost flush`, Postfix's `postqueue -f`); how many were deferred. Attempts and backoff stay. */
  retryNow(now?: number): number;
  /** Delete 'removed' entries whose expires + 7 days < now; the count. */
  prune(now: number): number;
  /** The connection's PRAGMA synchronous now (1 NORMAL, 2 FULL); NORMAL between transactions. For tests. */
  syncLevel(): number;
  close(): void;
}

export const JOURNAL_SCHEMA_VERSION = 1;
/** How long a removed entry outlives its packet's expiry, to refuse replays. */
export const PRUNE_GRACE_MS = 7 * 24 * 3600 * 1000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS packets (
  hash TEXT PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  from_node TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('injecting', 'deferred', 'delivered', 'removed')),
  first_seen INTEGER NOT NULL,
  updated INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  next_attempt INTEGER,
  last_error TEXT,
  done_recipients TEXT NOT NULL,
  recipients TEXT NOT NULL,
  expires INTEGER NOT NULL,
  size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS packets_state_next ON packets (state, next_attempt);
`;

interface Row {
  hash: string;
  id: string;
  from_node: string;
  state: JournalState;
  first_seen: number;
  updated: number;
  attempts: number;
  next_attempt: number | null;
  last_error: string | null;
  done_recipients: string;
  recipients: string;
  expires: number;
  size: number;
}

function toEntry(r: Row): JournalEntry {
  return {
    hash: r.hash,
    id: r.id,
    fromNode: r.from_node,
    state: r.state,
    firstSeen: r.first_seen,
    updated: r.updated,
    attempts: r.attempts,
    nextAttempt: r.next_attempt,
    lastError: r.last_error,
    doneRecipients: JSON.parse(r.done_recipients) as string[],
    recipients: JSON.parse(r.recipients) as string[],
    expires: r.expires,
    size: r.size,
  };
}

function openDb(file: string): Database.Database {
  try {
    mkdirSync(dirname(file), { recursive: true });
    const db = new Database(file);
    try {
      db.pragma('journal_mode = WAL');
      // Per transaction: NORMAL (written, not fsync'd) unless durably() or sync() says otherwise.
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      db.exec(SCHEMA);
    } catch (err) {
      db.close();
      throw err;
    }
    return db;
  } catch (err) {
    throw new FerryError('STORE_FAILED', `cannot open journal ${file}: ${(err as Error).message}`, { cause: err });
  }
}

export function openJournal(file: string): Journal {
  const db = openDb(file);
  const version = db.transaction((): number => {
    const row = db.prepare('SELECT MAX(version) AS v FROM schema_version').get() as { v: number | null };
    if (row.v === null) {
      db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(JOURNAL_SCHEMA_VERSION);
      return JOURNAL_SCHEMA_VERSION;
    }
    return row.v;
  }).immediate();
  if (version > JOURNAL_SCHEMA_VERSION) {
    db.close();
    throw new FerryError(
      'CONFIG',
      `journal ${file} has schema version ${version}; this ferrypost understands up to ${JOURNAL_SCHEMA_VERSION} (written by a newer ferrypost: upgrade, or point state_dir elsewhere)`,
    );
  }

  const sel = db.prepare('SELECT * FROM packets WHERE hash = ?');
  const selId = db.prepare('SELECT * FROM packets WHERE id = ?');
  const insert = db.prepare(
    `INSERT INTO packets (hash, id, from_node, state, first_seen, updated, attempts, next_attempt, last_error, done_recipients, recipients, expires, size)
     VALUES (@hash, @id, @fromNode, 'injecting', @now, @now, 1, NULL, NULL, '[]', @recipients, @expires, @size)`,
  );
  const reBegin = db.prepare("UPDATE packets SET state = 'injecting', attempts = attempts + 1, next_attempt = NULL, updated = ? WHERE hash = ?");
  const setDone = db.prepare('UPDATE packets SET done_recipients = ? WHERE hash = ?');
  const setDefer = db.prepare("UPDATE packets SET state = 'deferred', last_error = ?, next_attempt = ?, updated = ? WHERE hash = ?");
  const setState = db.prepare('UPDATE packets SET state = ?, next_attempt = NULL, updated = ? WHERE hash = ?');
  const selState = db.prepare('SELECT * FROM packets WHERE state = ? ORDER BY first_seen, hash');
  const selDue = db.prepare("SELECT * FROM packets WHERE state = 'deferred' AND next_attempt <= ? ORDER BY next_attempt, hash");
  const setDueNow = db.prepare("UPDATE packets SET next_attempt = MIN(next_attempt, ?) WHERE state = 'deferred'");
  const del = db.prepare("DELETE FROM packets WHERE state = 'removed' AND expires + ? < ?");

  const get = (hash: string): Row | undefined => sel.get(hash) as Row | undefined;
  const must = (hash: string, allowed: readonly JournalState[], action: string): Row => {
    const row = get(hash);
    if (row === undefined) throw new FerryError('INTERNAL', `journal: ${action} for unknown packet hash ${hash}`);
    if (!allowed.includes(row.state)) {
      throw new FerryError('INTERNAL', `journal: cannot mark packet ${row.id} ${action} from state ${row.state}`, { detail: { hash, id: row.id, state: row.state } });
    }
    return row;
  };

  /**
   * Runs one transaction with its own fsync before it returns (see the file comment). db.pragma each
   * time, never a statement prepared once: SQLite applies PRAGMA synchronous while it compiles the
   * statement, so running a prepared one later changes nothing. Two prepared statements (NORMAL, then
   * FULL) once left the connection at FULL for good: every begin() paid an fsync (~100 -> ~400 µs).
   */
  function durably<T>(fn: () => T): T {
    db.pragma('synchronous = FULL');
    try {
      return fn();
    } finally {
      db.pragma('synchronous = NORMAL');
    }
  }

  const begin = db.transaction((e: BeginArgs, now: number): JournalEntry => {
    const row = get(e.hash);
    if (row === undefined) {
      const other = selId.get(e.id) as Row | undefined;
      if (other !== undefined) {
        throw new FerryError('PACKET_REPLAY', `duplicate of packet ${e.id} (state ${other.state}) under another file name (first seen as file hash ${other.hash})`, {
          detail: { id: e.id, hash: e.hash, seenHash: other.hash, seenState: other.state },
        });
      }
      insert.run({ ...e, recipients: JSON.stringify(e.recipients), now });
      // What the row now holds, without reading it back.
      return {
        hash: e.hash, id: e.id, fromNode: e.fromNode, state: 'injecting', firstSeen: now, updated: now, attempts: 1,
        nextAttempt: null, lastError: null, doneRecipients: [], recipients: [...e.recipients], expires: e.expires, size: e.size,
      };
    } else {
      if (row.id !== e.id) throw new FerryError('INTERNAL', `journal: hash ${e.hash} recorded with id ${row.id}, not ${e.id}`);
      if (row.state !== 'injecting' && row.state !== 'deferred') {
        throw new FerryError('PACKET_REPLAY', `packet ${row.id} is already ${row.state}`, { detail: { id: row.id, hash: e.hash, state: row.state } });
      }
      reBegin.run(now, e.hash);
    }
    return toEntry(get(e.hash) as Row);
  });

  const insertBounced = db.prepare(
    `INSERT INTO packets (hash, id, from_node, state, first_seen, updated, attempts, next_attempt, last_error, done_recipients, recipients, expires, size)
     VALUES (@hash, @id, @fromNode, 'removed', @now, @now, 1, NULL, @reason, @recipients, @recipients, @expires, @size)`,
  );
  const recordBounced = db.transaction((e: BeginArgs, reason: string, now: number): void => {
    const other = (get(e.hash) ?? selId.get(e.id)) as Row | undefined;
    if (other !== undefined) {
      throw new FerryError('PACKET_REPLAY', `packet ${e.id} is already recorded (state ${other.state}, file hash ${other.hash})`, {
        detail: { id: e.id, hash: e.hash, seenHash: other.hash, seenState: other.state },
      });
    }
    insertBounced.run({ ...e, recipients: JSON.stringify(e.recipients), reason, now });
  });
  const recipientsDone = db.transaction((hash: string, rcpts: string[]): void => {
    const row = must(hash, ['injecting', 'deferred', 'delivered'], 'recipients done');
    const done = JSON.parse(row.done_recipients) as string[];
    for (const r of rcpts) if (!done.includes(r)) done.push(r);
    setDone.run(JSON.stringify(done), hash);
  });
  const defer = db.transaction((hash: string, error: string, nextAttempt: number, now: number): void => {
    must(hash, ['injecting', 'deferred'], 'deferred');
    setDefer.run(error, nextAttempt, now, hash);
  });
  const delivered = db.transaction((hash: string, now: number): void => {
    const row = must(hash, ['injecting', 'deferred', 'delivered'], 'delivered');
    if (row.state !== 'delivered') setState.run('delivered', now, hash);
  });
  const setRemovedIfDelivered = db.prepare("UPDATE packets SET state = 'removed', next_attempt = NULL, updated = ? WHERE hash = ? AND state = 'delivered'");
  const commit = db.transaction((batch: JournalBatch, now: number): void => {
    for (const hash of batch.delivered ?? []) {
      const row = must(hash, ['injecting', 'deferred', 'delivered'], 'delivered');
      if (row.state !== 'delivered') setState.run('delivered', now, hash);
    }
    for (const hash of batch.removed ?? []) setRemovedIfDelivered.run(now, hash);
  });
  const removed = db.transaction((hash: string, now: number): void => {
    const row = must(hash, ['delivered', 'removed'], 'removed');
    if (row.state !== 'removed') setState.run('removed', now, hash);
  });

  let isOpen = true;
  return {
    byHash: (hash) => {
      const r = get(hash);
      return r === undefined ? undefined : toEntry(r);
    },
    byId: (id) => {
      const r = selId.get(id) as Row | undefined;
      return r === undefined ? undefined : toEntry(r);
    },
    begin: (e, now = Date.now()) => begin.immediate(e, now),
    recipientsDone: (hash, rcpts) => recipientsDone.immediate(hash, rcpts),
    recordBounced: (e, reason, now = Date.now()) => durably(() => recordBounced.immediate(e, reason, now)),
    defer: (hash, error, nextAttempt, now = Date.now()) => durably(() => defer.immediate(hash, error, nextAttempt, now)),
    delivered: (hash, now = Date.now()) => durably(() => delivered.immediate(hash, now)),
    // Only "delivered" needs the fsync; a batch of removed records alone rides on the next one.
    commit: (batch, now = Date.now()) => (batch.delivered?.length ? durably(() => commit.immediate(batch, now)) : commit.immediate(batch, now)),
    removed: (hash, now = Date.now()) => removed.immediate(hash, now),
    inState: (state) => (selState.all(state) as Row[]).map(toEntry),
    dueForRetry: (now) => (selDue.all(now) as Row[]).map(toEntry),
    retryNow: (now = Date.now()) => durably(() => setDueNow.run(now).changes),
    prune: (now) => del.run(PRUNE_GRACE_MS, now).changes,
    syncLevel: () => db.pragma('synchronous', { simple: true }) as number,
    close: () => {
      if (isOpen) {
        isOpen = false;
        db.close();
      }
    },
  };
}

