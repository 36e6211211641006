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
 *   replaces the peer's key file. A different fingerprint is a different node (remove, then add).
 *   Refuses the node itself (the embedded default lists the node as its own peer, with its public key).
 * Fails: FerryError('USAGE') for an unknown peer or another node's key, ('CONFIG') for an unusable key.
 */
import { chown, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import type * as openpgp from 'openpgp';
import { isMap, isSeq, parseDocument } from 'yaml';
import { parseConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { FerryError, isFerryError } from '../errors/index.js';
import { fingerprintOf, readKeyFile } from '../keys/load.js';
import { fsyncDir, replaceDurable } from '../tree/durable.js';
import { scanInbox, scanOutgoing } from '../tree/scan.js';
import { requirePeerKeyUsable } from './peer.js';

export interface PeerRemoveResult {
  fingerprint: string;
  /** It was the default route: mail no other peer's patterns match has no route now. */
  wasDefault: boolean;
  /** Where the key file went, if it was moved. */
  keptKey?: string;
  outgoing: number;
  incoming: number;
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

  // Count what is in flight before anything changes (the tree may be missing: then nothing is).
  const self = await selfFingerprint(cfg);
  const outgoing = (await scanOutgoing(cfg.node.tree, self).catch(() => [])).filter((e) => e.to === peer.fingerprint).length;
  const incoming = (await scanInbox(cfg.node.tree, self).catch(() => [])).filter((e) => e.from === peer.fingerprint).length;

  await writeConfig(configFile, out);
  const peersDir = path.join(path.dirname(cfg.node.key), 'peers');
  let keptKey: string | undefined;
  if (path.dirname(peer.key) === peersDir) {
    keptKey = `${peer.key}.removed-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '')}`;
    await rename(peer.key, keptKey).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      keptKey = undefined; // already gone: nothing to keep
    });
    await fsyncDir(peersDir);
  }
  return { fingerprint: peer.fingerprint, wasDefault: peer.default, ...(keptKey ? { keptKey } : {}), outgoing, incoming };
}

export interface PeerUpdateResult {
  fingerprint: string;
  keyFile: string;
  /** The key's expiry, or null for none. */
  expires: Date | null;
}

export async function updatePeerKey(configFile: string, name: string, keyFile: string): Promise<PeerUpdateResult> {
  const { cfg, peer } = await configWithPeer(configFile, name);
  if (peer.fingerprint === (await selfFingerprint(cfg)) || path.resolve(peer.key) === path.resolve(cfg.node.key)) {
    throw new FerryError('USAGE', `peer "${name}" is this node itself (the embedded default routes mail to it); its key is this node's own, which "peer update" does not replace`);
  }
  const read = await readKeyFile(keyFile, 'key file').catch((e: unknown) => {
    if (isFerryError(e)) throw new FerryError('USAGE', `${e.message} (give the file that "ferrypost key export" wrote on the other node)`);
    throw e;
  });
  const key: openpgp.PublicKey = read.isPrivate() ? read.toPublic() : read;
  const fingerprint = fingerprintOf(key);
  if (fingerprint !== peer.fingerprint) {
    throw new FerryError('USAGE', `${keyFile} holds the key ${fingerprint}, but peer "${name}" is ${peer.fingerprint}: a different key is a different node ("ferrypost peer remove ${name}", then "peer add"); nothing changed`);
  }
  await requirePeerKeyUsable(key, keyFile);
  const old = await stat(peer.key).catch(() => undefined);
  await replaceDurable(peer.key, Buffer.from(key.armor()), { mode: old ? old.mode & 0o777 : 0o644 });
  if (old && process.getuid?.() === 0 && (old.uid !== 0 || old.gid !== 0)) await chown(peer.key, old.uid, old.gid);
  const expiry = await key.getExpirationTime();
  return { fingerprint, keyFile: peer.key, expires: expiry instanceof Date ? expiry : null };
}

async function configWithPeer(configFile: string, name: string): Promise<{ text: string; cfg: Readonly<Config>; peer: Config['peers'][number] }> {
  const text = await readFile(configFile, 'utf8').catch((e: unknown) => {
    throw new FerryError('CONFIG', `cannot read config ${configFile}: ${(e as Error).message}`);
  });
  const cfg = parseConfig(text, configFile);
  const peer = cfg.peers.find((p) => p.name === name);
  if (!peer) throw new FerryError('USAGE', `no peer named "${name}" in ${configFile} (see "ferrypost peer list")`);
  return { text, cfg, peer };
}

async function selfFingerprint(cfg: Readonly<Config>): Promise<string> {
  const { loadIdentities } = await import('../keys/identities.js');
  return (await loadIdentities(cfg)).self.fingerprint;
}

/** The config replaced atomically, keeping its mode, owner and group (root editing a config the daemon's group reads). */
async function writeConfig(configFile: string, out: string): Promise<void> {
  const old = await stat(configFile);
  await replaceDurable(configFile, Buffer.from(out), { mode: old.mode & 0o777 });
  if (process.getuid?.() === 0 && (old.uid !== 0 || old.gid !== 0)) await chown(configFile, old.uid, old.gid);
}
