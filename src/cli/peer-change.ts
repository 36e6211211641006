/**
 * `ferrypost peer remove NAME` and `ferrypost peer update NAME KEYFILE`: the other two changes an admin
 * makes to a peer after `peer add`. Both check everything before writing and replace the config
 * atomically (mode, owner and group kept, as `peer add` does); the daemon reads peers at start, so
 * both tell the admin to restart it.
 * - remove: the entry leaves the config; its key file, if `peer add` put it in KEYS/peers/, is
 *   renamed to NAME.asc.removed-<time> (kept for the record, and so that a new peer may take the name).
 *   Packets already in the tree stay: outgoing ones until carried or `queue delete`d, incoming ones
 *   are quarantined as from an unknown signer once the daemon restarts. The count of each is returned.
 * - update: a renewed key of the same node (same primary fingerprint: extended expiry, new subkeys)
 *   is merged into the installed one (an older copy never takes back a revocation or an expiry the file
 *   has). A revoked key stays revoked, and a different fingerprint is a different node: remove, then add.
 *   Refuses the node itself (the embedded default lists the node as its own peer, with its public key).
 * Fails: FerryError('USAGE') for an unknown peer or another node's key, ('CONFIG') for an unusable key.
 */
import { existsSync } from 'node:fs';
import { link, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { isMap, isSeq, parseDocument } from 'yaml';
import { parseConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { FerryError } from '../errors/index.js';
import { fingerprintOf, readKeyFile } from '../keys/load.js';
import { fsyncDir, replaceDurable } from '../tree/durable.js';
import { scanInbox, scanOutgoing } from '../tree/scan.js';
import { keepOwner, readConfig, readPeerKeyFile, requirePeerKeyUsable, writeConfig } from './peer.js';

export interface PeerRemoveResult {
  fingerprint: string;
  /** It was the default route: mail no other peer's patterns match has no route now. */
  wasDefault: boolean;
  /** Where the key file went, if it was moved. */
  keptKey?: string;
  /** Why the key file could not be moved (the peer is removed all the same). */
  keyNotMoved?: string;
  /** Packets in flight, or why they could not be counted. */
  outgoing: number | string;
  incoming: number | string;
}

export async function removePeer(configFile: string, name: string, now = new Date()): Promise<PeerRemoveResult> {
  const { text, cfg, peer } = await configWithPeer(configFile, name);
  const doc = parseDocument(text);
  const seq = doc.get('peers');
  if (!isSeq(seq)) throw new FerryError('CONFIG', `${configFile}: peers is not a list`);
  const index = seq.items.findIndex((item) => isMap(item) && item.get('name') === name);
  if (index < 0) throw new FerryError('USAGE', `no peer named "${name}" in ${configFile} (see "ferrypost peer list")`);
  seq.delete(index);
  const out = doc.toString();
  parseConfig(out, configFile); // never write a config that would not load

  // Counted before anything changes; a tree that cannot be read is said, not taken for an empty one.
  const self = await selfFingerprint(cfg);
  const count = (list: Promise<Array<{ to: string; from: string }>>, match: (e: { to: string; from: string }) => boolean) =>
    list.then((l) => l.filter(match).length, (err: unknown) => (err as Error).message);
  const outgoing = await count(scanOutgoing(cfg.node.tree, self), (e) => e.to === peer.fingerprint);
  const incoming = await count(scanInbox(cfg.node.tree, self), (e) => e.from === peer.fingerprint);

  await writeConfig(configFile, out);
  // The key file is kept under a name no other removal uses (link, then unlink: never over a file).
  // Failing here leaves it where it was: the config no longer names it, so it is only in the way of
  // a later "peer add" under the same name, which says so.
  const peersDir = path.join(path.dirname(cfg.node.key), 'peers');
  let keptKey: string | undefined;
  let keyNotMoved: string | undefined;
  if (path.dirname(peer.key) === peersDir) {
    const stamp = now.toISOString().replace(/[-:]/g, '').replace('.', '');
    try {
      keptKey = await linkUnique(peer.key, `${peer.key}.removed-${stamp}`);
      if (keptKey) {
        await unlink(peer.key);
        await fsyncDir(peersDir);
      }
    } catch (err) {
      keyNotMoved = `${peer.key} stays where it was (${(err as Error).message})`;
      keptKey = undefined;
    }
  }
  return { fingerprint: peer.fingerprint, wasDefault: peer.default, ...(keptKey ? { keptKey } : {}), ...(keyNotMoved ? { keyNotMoved } : {}), outgoing, incoming };
}

/** link(2) to `base`, else `base`-1, -2, ...; undefined if `from` is gone. */
async function linkUnique(from: string, base: string): Promise<string | undefined> {
  for (let n = 0; n < 100; n++) {
    const to = n === 0 ? base : `${base}-${n}`;
    try {
      await link(from, to);
      return to;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      if (code !== 'EEXIST') throw err;
    }
  }
  throw new Error(`no free name ${base}-N`);
}

export interface PeerUpdateResult {
  fingerprint: string;
  keyFile: string;
  /** The key's expiry, or null for none. */
  expires: Date | null;
  /** Set when the file held a secret key: only its public part was stored. */
  warning?: string;
}

export async function updatePeerKey(configFile: string, name: string, keyFile: string): Promise<PeerUpdateResult> {
  const { cfg, peer } = await configWithPeer(configFile, name);
  if (peer.fingerprint === (await selfFingerprint(cfg)) || path.resolve(peer.key) === path.resolve(cfg.node.key)) {
    throw new FerryError('USAGE', `peer "${name}" is this node itself (the embedded default routes mail to it); its key is this node's own, which "peer update" does not replace`);
  }
  const { key: given, warning } = await readPeerKeyFile(keyFile);
  const fingerprint = fingerprintOf(given);
  if (fingerprint !== peer.fingerprint) {
    throw new FerryError('USAGE', `${keyFile} holds the key ${fingerprint}, but peer "${name}" is ${peer.fingerprint}: a different key is a different node ("ferrypost peer remove ${name}", then "peer add"); nothing changed`);
  }
  // Merged into the installed key, never swapped for it: an older copy must not take back a
  // revocation or a later expiry the installed file already has.
  const installed = existsSync(peer.key) ? await readKeyFile(peer.key, 'installed key file') : undefined;
  let key = given;
  if (installed) {
    if (await installed.isRevoked()) {
      throw new FerryError('USAGE', `peer "${name}"'s installed key is revoked, and a revocation is final: "ferrypost peer remove ${name}", then "peer add" the node's new key; nothing changed`);
    }
    key = await (installed.isPrivate() ? installed.toPublic() : installed).update(given);
  }
  await requirePeerKeyUsable(key, keyFile);
  const old = await stat(peer.key).catch(() => undefined);
  // A missing file is made as the directory's owner (root repairing a node another user owns).
  const owner = old ?? (await stat(path.dirname(peer.key)));
  await replaceDurable(peer.key, Buffer.from(key.armor()), { mode: old ? old.mode & 0o777 : 0o644 });
  await keepOwner(peer.key, owner);
  const expiry = await key.getExpirationTime();
  return { fingerprint, keyFile: peer.key, expires: expiry instanceof Date ? expiry : null, ...(warning ? { warning } : {}) };
}

async function configWithPeer(configFile: string, name: string): Promise<{ text: string; cfg: Readonly<Config>; peer: Config['peers'][number] }> {
  const { text, cfg } = await readConfig(configFile);
  const peer = cfg.peers.find((p) => p.name === name);
  if (!peer) throw new FerryError('USAGE', `no peer named "${name}" in ${configFile} (see "ferrypost peer list")`);
  return { text, cfg, peer };
}

async function selfFingerprint(cfg: Readonly<Config>): Promise<string> {
  const { loadIdentities } = await import('../keys/identities.js');
  return (await loadIdentities(cfg)).self.fingerprint;
}
