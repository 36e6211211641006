/**
 * `ferrypost queue`: what mailq shows for Postfix. Outgoing: packets this node wrote that are still in
 * the tree (not yet delivered and deleted by the peer), per peer. Incoming: packets for this node that
 * wait for a retry, with the last error.
 */
import type { Identities } from '../keys/identities.js';
import type { Journal } from '../store/journal.js';
import { requireTree } from '../tree/fs.js';
import { scanInbox, scanOutgoing } from '../tree/scan.js';
import type { Outbox } from './outbox.js';

export interface OutgoingRow { peer: string; toNode: string; name: string; id?: string; ageMs: number; size: number; from?: string; recipients?: string[] }
export interface IncomingRow { fromPeer: string; name: string; id: string; ageMs: number; size: number; attempts: number; nextAttempt: number | null; lastError: string | null; recipients: string[]; state: string }
export interface QueueReport { outgoing: OutgoingRow[]; incoming: IncomingRow[]; waiting: number }

export async function queueReport(tree: string, keyring: Identities, outbox: Outbox, journal: Journal, now = Date.now()): Promise<QueueReport> {
  const outgoing = (await outgoingPackets(tree, keyring, outbox)).map(({ path: _path, mtimeMs, ...row }): OutgoingRow => ({ ...row, ageMs: now - mtimeMs }))
    .sort((a, b) => a.peer.localeCompare(b.peer) || b.ageMs - a.ageMs);
  const { incoming, inInbox } = await incomingPackets(tree, keyring, journal, now);
  return { outgoing, incoming, waiting: inInbox - incoming.length };
}

/**
 * Incoming packets waiting for a retry (or caught in `injecting`): journal records whose packet is in
 * the inbox (one whose file is gone waits for nothing), and how many packets the inbox holds in all.
 * `onError`: a part of the inbox that cannot be read is skipped and reported there instead of failing.
 */
export async function incomingPackets(tree: string, keyring: Identities, journal: Journal, now = Date.now(), onError?: (path: string, err: unknown) => void): Promise<{ incoming: IncomingRow[]; inInbox: number }> {
  const peerName = (fpr: string) => keyring.peers.get(fpr)?.name ?? fpr.slice(0, 16);
  const inbox = await scanInbox(tree, keyring.self.fingerprint, { blocking: true, ...(onError ? { onError } : {}) });
  const byHash = new Map(inbox.map((e) => [e.hash.toString('hex'), e]));
  const incoming: IncomingRow[] = [];
  for (const j of [...journal.inState('deferred'), ...journal.inState('injecting')]) {
    const e = byHash.get(j.hash);
    if (!e) continue;
    incoming.push({ fromPeer: peerName(j.fromNode), name: e.name, id: j.id, ageMs: now - j.firstSeen, size: e.size, attempts: j.attempts,
      nextAttempt: j.nextAttempt, lastError: j.lastError, recipients: j.recipients.filter((r) => !j.doneRecipients.includes(r)), state: j.state });
  }
  return { incoming, inInbox: inbox.length };
}

/** An outgoing packet in the tree, with what the outbox index knows of it (for `queue` and `queue delete`). */
export interface OutgoingPacket { peer: string; toNode: string; name: string; path: string; mtimeMs: number; size: number; id?: string; from?: string; recipients?: string[] }

/**
 * This node's packets still in the tree, each with its index row if there is one; rows for packets no
 * longer there (taken by their node) are forgotten on the way. CONFIG if the tree is missing.
 */
export async function outgoingPackets(tree: string, keyring: Identities, outbox: Outbox): Promise<OutgoingPacket[]> {
  // The scan reads a missing tree as empty: that would list nothing and forget every row.
  await requireTree(tree);
  // Rows the daemon records from now on may be for packets written after the scan read their directory:
  // only rows created before it are known to be for packets that should have been seen. Both clocks are
  // this host's; the daemon stamps a row after its packet is in the tree (recordingEnqueue).
  const scanStart = Date.now();
  const out = await scanOutgoing(tree, keyring.self.fingerprint, { blocking: true });
  const index = outbox.byNames(out.map((e) => e.name));
  // Rows for packets no longer in the tree (delivered): only then is a pass over the index needed.
  if (outbox.count() > index.size) outbox.forgetExcept(new Set(out.map((e) => e.name)), scanStart);
  return out.map((e) => {
    const r = index.get(e.name);
    return { peer: keyring.peers.get(e.to)?.name ?? e.to.slice(0, 16), toNode: e.to, name: e.name, path: e.path, mtimeMs: e.mtimeMs, size: e.size,
      ...(r ? { id: r.id, from: r.from, recipients: r.recipients } : {}) };
  });
}

export function formatQueue(r: QueueReport): string {
  const lines: string[] = [];
  if (!r.outgoing.length && !r.incoming.length && !r.waiting) return 'ferrypost queue is empty\n';
  // mailq's column line; the ids are packet ids (26 characters), not Postfix queue ids.
  if (r.outgoing.length || r.incoming.length) lines.push(`${'-Packet ID-'.padEnd(27)} ${'--Size--'.padStart(10)} ${'--Age--'.padStart(8)}  Sender/Recipient`);
  if (r.outgoing.length) {
    lines.push(`Outgoing: ${r.outgoing.length} packet(s) in the tree, not yet taken by their node`);
    let peer = '';
    for (const o of r.outgoing) {
      if (o.peer !== peer) lines.push(`-- to ${(peer = o.peer)} (${o.toNode})`);
      lines.push(`${(o.id ?? o.name.slice(0, 26)).padEnd(27)} ${String(o.size).padStart(10)} ${age(o.ageMs).padStart(8)}  <${o.from ?? '?'}>`);
      for (const rc of o.recipients ?? []) lines.push(`${' '.repeat(48)}${rc}`);
    }
  }
  if (r.incoming.length) {
    lines.push(`Incoming: ${r.incoming.length} packet(s) deferred`);
    for (const i of r.incoming) {
      const next = i.nextAttempt ? `next try ${new Date(i.nextAttempt).toISOString()}` : 'in progress';
      lines.push(`${i.id.padEnd(27)} ${String(i.size).padStart(10)} ${age(i.ageMs).padStart(8)}  from ${i.fromPeer}, ${i.attempts} attempt(s), ${next}`);
      if (i.lastError) lines.push(`${' '.repeat(48)}(${i.lastError})`);
      for (const rc of i.recipients) lines.push(`${' '.repeat(48)}${rc}`);
    }
  }
  if (r.waiting > 0) lines.push(`Incoming: ${r.waiting} packet(s) not yet processed`);
  const listed = [...r.outgoing, ...r.incoming];
  if (listed.length) lines.push(`-- ${Math.ceil(listed.reduce((n, p) => n + p.size, 0) / 1024)} Kbytes in ${listed.length} packet(s).`);
  return lines.join('\n') + '\n';
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}
