/**
 * The receiver loop: finds packets addressed to this node (fs events for latency, a periodic rescan
 * for certainty, a timer for the next due retry) and runs processPacket on each with bounded
 * concurrency. A packet (by content) is never handled twice at once. Errors that are not the packet's fault
 * (I/O, a bug) are logged and the packet is retried at the next scan; they never stop the loop.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import PQueue from 'p-queue';
import { inboxDir } from '../tree/layout.js';
import { scanInbox, type TreeEntry } from '../tree/scan.js';
import { removeLeftovers } from '../send/leftovers.js';
import { watchInbox } from '../tree/watch.js';
import { processPacket, type Outcome, type PacketDeps, type ProcessDeps } from './process.js';
import { createUnrecorded } from './unrecorded.js';
import { existsSync } from 'node:fs';
import { packetDir, packetNameForHash } from '../tree/layout.js';
import { removeDurable } from '../tree/durable.js';
import { createGroupCommit } from './group-commit.js';
import { createConflictAdopter } from './conflicts.js';
import { watchFlushRequests } from './flush-request.js';


export interface ReceiverDeps extends ProcessDeps {
  tree: string;
  rescanIntervalMs: number;
  concurrency: number;
  /** How long a delivered packet waits for others to share its journal commit (default: group-commit.ts's 8 ms). */
  commitWindowMs?: number;
  /** Called after each packet, for tests and metrics. */
  onOutcome?: (entry: TreeEntry, outcome: Outcome) => void;
  /** Called after each scan of the inbox with the number of packets found, for tests. */
  onScan?: (found: number) => void;
  /** How often old journal records are pruned while running (default PRUNE_INTERVAL_MS; also at start). */
  pruneIntervalMs?: number;
}

/** A daemon that runs for months must not keep every record it ever wrote (one row per packet). */
export const PRUNE_INTERVAL_MS = 86_400_000;

export interface Receiver {
  /** Recovery, then watch + rescan until stop(). */
  start(): Promise<void>;
  /** One full scan, waiting until every packet found has been handled. */
  scanOnce(): Promise<void>;
  /** Stops watching and waits for packets in hand to finish. */
  stop(): Promise<void>;
}

export function createReceiver(receiverDeps: ReceiverDeps): Receiver {
  let running = 0; // packets between the start and the end of processPacket
  const groupCommit = createGroupCommit(receiverDeps.journal, receiverDeps.now, {
    inHand: () => running,
    ...(receiverDeps.commitWindowMs !== undefined ? { maxDelayMs: receiverDeps.commitWindowMs } : {}),
  });
  const deps: ReceiverDeps & PacketDeps = { ...receiverDeps, commit: groupCommit, unrecorded: createUnrecorded() };
  const queue = new PQueue({ concurrency: deps.concurrency });
  const inFlight = new Set<string>();
  const self = deps.keyring.self.fingerprint;
  let watcher: { close(): void } | undefined;
  let stopFlushWatch: (() => void) | undefined;
  let rescanTimer: NodeJS.Timeout | undefined;
  let pruneTimer: NodeJS.Timeout | undefined;
  const conflicts = createConflictAdopter({ stateDir: deps.stateDir, log: deps.log, adopted: () => trigger() });
  let retryTimer: NodeJS.Timeout | undefined;
  let scanning: Promise<void> | undefined;
  let rescanRequested = false;
  let stopped = false;

  function handle(entry: TreeEntry): Promise<void> | undefined {
    // Keyed by content (the name's hash), not path: copies of one packet under two senders' directories
    // share the journal entry and would otherwise be handled at once. The second waits for a later scan.
    const key = entry.hash.toString('hex');
    if (inFlight.has(key)) return undefined;
    inFlight.add(key);
    return queue.add(async () => {
      let outcome: Outcome;
      running++;
      try {
        outcome = await processPacket(deps, entry);
      } catch (err) {
        outcome = 'error';
        deps.log.error({ evt: 'rx.error', file: entry.name, from: entry.from, err }, 'packet handling failed; will retry at the next scan');
      } finally {
        inFlight.delete(key);
        running--;
        groupCommit.settle(); // those left may all be waiting for a commit now
      }
      if (outcome === 'deferred') armRetry(deps.journal.byHash(key)?.nextAttempt ?? undefined);
      deps.onOutcome?.(entry, outcome);
    });
  }

  /** One scan: every packet found is queued (or skipped if in hand); resolves with their handlings. */
  async function scan(): Promise<Array<Promise<void>>> {
    const entries = await scanInbox(deps.tree, self, { onError: skipped, onConflict: conflicts.found });
    // Oldest first: mail should leave roughly in the order it came.
    entries.sort((a, b) => a.mtimeMs - b.mtimeMs);
    const handlings = entries.map(handle).filter((h): h is Promise<void> => h !== undefined);
    scheduleRetry(new Set(entries.map((e) => e.hash.toString('hex'))));
    deps.onScan?.(entries.length);
    return handlings;
  }

  async function scanAndWait(): Promise<void> {
    await Promise.all(await scan());
  }

  /**
   * Coalesces triggers. A scan runs only while no packet waits for a slot: one that waits could not
   * start sooner for being found again, and a backlog of 10,000 would be listed and stat'ed at every
   * watch event. The scan does not wait for what it queued, so a slow packet (a stuck MTA, a large
   * one) holds its slot only, not the pickup of new packets: a trigger meanwhile runs as soon as the
   * queue's waiting list is empty (its 'empty' event).
   */
  function prune(): void {
    try {
      const n = deps.journal.prune(deps.now());
      if (n > 0) deps.log.info({ evt: 'rx.pruned', records: n }, 'old journal records pruned');
    } catch (err) {
      deps.log.error({ evt: 'rx.prune-error', err }, 'pruning the journal failed; trying again at the next interval');
    }
  }

  function trigger(): void {
    if (stopped) return;
    if (scanning || queue.size > 0) {
      rescanRequested = true;
      return;
    }
    scanning = scan()
      .then(() => undefined, (err: unknown) => deps.log.error({ evt: 'rx.scan-error', err }, 'scanning the tree failed'))
      .finally(() => {
        scanning = undefined;
        if (rescanRequested && queue.size === 0) {
          rescanRequested = false;
          trigger();
        }
      });
  }
  queue.on('empty', () => {
    if (rescanRequested && !scanning) {
      rescanRequested = false;
      trigger();
    }
  });

  /** A directory or file the scan could not read (EACCES, EIO): the others are scanned all the same. */
  function skipped(where: string, err: unknown): void {
    deps.log.warn({ evt: 'rx.scan-skipped', path: where, err: (err as Error).message }, 'cannot read this part of the inbox; skipped (check its owner and permissions)');
  }

  let retryDue = Infinity; // when the retry timer fires

  /**
   * The retry timer at the earliest due deferred packet whose file the scan found (a full pass over the
   * journal's deferred entries). One whose file is gone (the sender deleted it, `queue delete` on a
   * self-addressed packet, a carrier's deletion) stays deferred, in case the file comes back, but must
   * not set the timer: its due time never moves, so the timer would fire and rescan every few ms.
   */
  function scheduleRetry(present: ReadonlySet<string>): void {
    if (stopped) return;
    const due = deps.journal
      .inState('deferred')
      // In hand: handle() re-arms the timer if it is deferred again; until then its record stays
      // deferred and due, and would set the timer to now after every scan.
      .filter((e) => present.has(e.hash) && !inFlight.has(e.hash))
      .map((e) => e.nextAttempt ?? 0)
      .reduce((a, b) => Math.min(a, b), Infinity);
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = undefined;
    retryDue = Infinity;
    armRetry(due);
  }

  /** The retry timer at `due` if that is sooner than it is set for (a packet just deferred). */
  function armRetry(due: number | undefined): void {
    if (stopped || due === undefined || due === Infinity || due >= retryDue) return;
    if (retryTimer) clearTimeout(retryTimer);
    retryDue = due;
    const wait = Math.max(0, due - deps.now()) + 5;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      retryDue = Infinity;
      trigger();
    }, Math.min(wait, 2 ** 31 - 1));
    retryTimer.unref?.();
  }

  async function recover(): Promise<void> {
    await removeLeftovers(deps.tree, deps.stateDir, deps.log, skipped);
    // Delivered but not yet unlinked when we stopped: unlink now (never inject again).
    for (const e of deps.journal.inState('delivered')) {
      const file = path.join(packetDir(deps.tree, self, e.fromNode), packetNameForHash(Buffer.from(e.hash, 'hex')));
      if (existsSync(file)) await removeDurable(file);
      deps.journal.removed(e.hash, deps.now());
      deps.log.info({ evt: 'rx.recover-delivered', packet: e.id }, 'finished removal of a delivered packet');
    }
    const stale = deps.journal.inState('injecting');
    if (stale.length) {
      deps.log.warn({ evt: 'rx.recover-injecting', packets: stale.map((e) => e.id) },
        'packets were being injected when the receiver stopped; they will be injected again (possible duplicate)');
    }
  }

  return {
    async start() {
      await recover();
      deps.journal.prune(deps.now());
      pruneTimer = setInterval(prune, deps.pruneIntervalMs ?? PRUNE_INTERVAL_MS);
      pruneTimer.unref?.();
      watcher = watchInbox(deps.tree, self, trigger, {
        // e.g. the tree is missing (not mounted?): the watcher retries; the periodic rescan goes on
        onError: (err) => deps.log.warn({ evt: 'rx.watch-error', err: (err as Error).message }, 'watching the inbox failed; retrying'),
      });
      rescanTimer = setInterval(trigger, deps.rescanIntervalMs);
      rescanTimer.unref?.();
      // `ferrypost flush` made the deferred packets due in the journal; a scan now retries them.
      stopFlushWatch = watchFlushRequests(
        deps.stateDir,
        () => {
          deps.log.info({ evt: 'rx.flush' }, 'flush requested: retrying deferred packets now');
          trigger();
        },
        (err) => deps.log.warn({ evt: 'rx.flush-watch-error', err: (err as Error).message }, 'cannot watch for flush requests; deferred packets are retried on schedule'),
      );
      trigger();
      const inbox = inboxDir(deps.tree, self);
      const senders = await readdir(inbox).catch(() => [] as string[]);
      deps.log.info({ evt: 'rx.started', inbox, senders: senders.length }, 'receiver started');
    },
    async scanOnce() {
      await scanAndWait();
      await queue.onIdle();
      await conflicts.idle();
    },
    async stop() {
      stopped = true;
      watcher?.close();
      stopFlushWatch?.();
      if (rescanTimer) clearInterval(rescanTimer);
      if (pruneTimer) clearInterval(pruneTimer);
      if (retryTimer) clearTimeout(retryTimer);
      await scanning;
      await queue.onIdle();
      await conflicts.idle();
      groupCommit.flush();
    },
  };
}
