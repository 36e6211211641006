/**
 * `ferrypost queue delete`: removes outgoing packets this node wrote that are still in the tree (not yet
 * taken by their node), like Postfix's `postsuper -d`: no bounce, the message is gone. Selected by
 * packet id or file name (or the first 26+ characters of one, as `queue` shows a packet the outbox
 * index does not know), or `--to PEER` for all of one peer's (a name, or a fingerprint for a peer no
 * longer configured). Every
 * selector must match, or nothing is deleted (USAGE). The deletion syncs like any other: a device
 * that already carries a copy and reaches the peer before it learns of the deletion may still deliver
 * it, so the command says "deleted here", not "recalled".
 * Incoming packets are not deleted here: they are the peer's mail, accepted for delivery (deferred ones
 * bounce after queue_lifetime; refused ones are quarantined and `quarantine delete` removes those).
 */
import { dirname } from 'node:path';
import { FerryError } from '../errors/index.js';
import type { Identities } from '../keys/identities.js';
import { fsyncDir } from '../tree/durable.js';
import { nodeTreeFs, unlinkIfPresent, type TreeFs } from '../tree/fs.js';
import type { Outbox } from './outbox.js';
import { outgoingPackets, type OutgoingPacket } from './report.js';

export type { OutgoingPacket };

export type OutgoingSelection = { ids: readonly string[] } | { toPeer: string };

export interface OutgoingDeleteResult {
  deleted: OutgoingPacket[];
  /** Selected, but gone before the unlink: the peer took it meanwhile. */
  vanished: OutgoingPacket[];
}

export async function deleteOutgoing(tree: string, ids: Identities, outbox: Outbox, selection: OutgoingSelection, fs: TreeFs = nodeTreeFs): Promise<OutgoingDeleteResult> {
  const packets = await outgoingPackets(tree, ids, outbox);

  let chosen: OutgoingPacket[];
  if ('toPeer' in selection) {
    // A peer's name, or (for one no longer configured, which `queue` shows by fingerprint) 16 to 40 hex digits of its fingerprint.
    const peer = [...ids.peers.values()].find((p) => p.name === selection.toPeer);
    const hex = /^[0-9a-f]{16,40}$/i.test(selection.toPeer) ? selection.toPeer.toLowerCase() : undefined;
    if (!peer && hex === undefined) throw new FerryError('USAGE', `no peer named ${selection.toPeer} (see "ferrypost peer list"; a removed peer: give its fingerprint as "ferrypost queue" shows it)`);
    chosen = packets.filter((p) => (peer ? p.toNode === peer.fingerprint : p.toNode.startsWith(hex!)));
    if (!peer && new Set(chosen.map((p) => p.toNode)).size > 1) {
      throw new FerryError('USAGE', `${selection.toPeer} is the start of several nodes' fingerprints; give more of it; nothing deleted`);
    }
  } else {
    const unknown: string[] = [];
    const picked = new Map<string, OutgoingPacket>();
    for (const sel of new Set(selection.ids)) {
      const bare = sel.endsWith('.pgp') ? sel.slice(0, -4) : sel;
      let hits = packets.filter((p) => p.id === sel || p.name === sel || p.name === `${bare}.pgp`);
      // `queue` shows the name's first 26 characters for a packet the outbox index does not know.
      if (!hits.length && sel.length >= 26) hits = packets.filter((p) => p.name.startsWith(sel));
      if (hits.length > 1) {
        throw new FerryError('USAGE', `${sel} names ${hits.length} outgoing packets; give the whole file name (see "ferrypost queue --json"); nothing deleted`);
      }
      if (!hits.length) unknown.push(sel);
      for (const h of hits) picked.set(h.path, h);
    }
    if (unknown.length) {
      throw new FerryError('USAGE', `no outgoing packet ${unknown.join(', ')} in the tree (see "ferrypost queue": only outgoing packets can be deleted, and it may have been taken by its node already); nothing deleted`);
    }
    chosen = [...picked.values()];
  }

  const deleted: OutgoingPacket[] = [];
  const vanished: OutgoingPacket[] = [];
  const dirs = new Set<string>();
  for (const p of chosen) {
    if (await unlinkIfPresent(p.path, fs.unlink)) {
      deleted.push(p);
      dirs.add(dirname(p.path));
    } else vanished.push(p);
  }
  for (const d of dirs) await fsyncDir(d, fs);
  return { deleted, vanished };
}
