/**
 * `ferrypost flush` (Postfix's `postqueue -f`): every deferred incoming packet is made due now in the
 * journal, then the running daemon is asked to rescan (receive/flush-request.ts). Returns the line
 * to print. Refuses, before writing anything, a missing state directory and, as root, a node another
 * user owns or a journal this user cannot write (CONFIG, with the fix).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { FerryError } from '../errors/index.js';
import { loadIdentities } from '../keys/identities.js';
import { controlDir, requestFlush } from '../receive/flush-request.js';
import { openJournal } from '../store/journal.js';
import { incomingPackets } from '../queue/report.js';
import { requireNodeUser, requireWritableState } from './context.js';

/** How long the command waits for the daemon to take the request. */
const HEARD_WITHIN_MS = 3000;

export async function flushNode(cfg: Readonly<Config>): Promise<string> {
  if (!existsSync(cfg.node.state_dir)) throw new FerryError('CONFIG', `node.state_dir ${cfg.node.state_dir} does not exist (run "ferrypost init" first)`);
  requireNodeUser(cfg.node.state_dir, cfg.node.tree);
  requireWritableState(cfg.node.state_dir, ['', 'journal.sqlite']);
  const journalFile = path.join(cfg.node.state_dir, 'journal.sqlite');
  let deferred = 0;
  let unreadable = 0;
  if (existsSync(journalFile)) {
    const journal = openJournal(journalFile);
    try {
      journal.retryNow(); // first: the part that matters, whatever the count below finds
      // Counted as `queue` shows them: a deferred record whose packet is gone is not waiting for anything.
      const { incoming } = await incomingPackets(cfg.node.tree, await loadIdentities(cfg), journal, Date.now(), () => void unreadable++);
      deferred = incoming.filter((r) => r.state === 'deferred').length;
    } finally {
      journal.close();
    }
  }
  const heard = await requestFlush(cfg.node.state_dir, HEARD_WITHIN_MS);
  const what = `${deferred} deferred packet(s) due now${unreadable ? ` (and any in ${unreadable} part(s) of the inbox this user cannot read)` : ''}`;
  return heard === 'taken'
    ? `${what}; the daemon is retrying them`
    : `${what}; no daemon took the request within ${HEARD_WITHIN_MS / 1000} s (none is running, or it cannot watch ${controlDir(cfg.node.state_dir)}: its log says so): they are retried at its next rescan (receive.rescan_interval) or start`;
}
