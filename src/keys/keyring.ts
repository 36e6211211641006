/**
 * The Keyring: this node's unlocked secret key and the configured peers' public keys, by
 * fingerprint. Loaded once from the config. Fails with FerryError('CONFIG') on any unreadable key,
 * a peer key whose fingerprint differs from the configured one, or two peers with the same name or
 * fingerprint. A peer may be the node itself (delivery to itself).
 */
import type * as openpgp from 'openpgp';
import type { Config } from '../config/schema.js';
import { FerryError } from '../errors/index.js';
import { fingerprintOf, readPrivateKeyFile, readPublicKeyFile, requireUsable, resolvePassphrase } from './load.js';

export interface PeerKey {
  name: string;
  fingerprint: string;
  key: openpgp.PublicKey;
}

export interface Keyring {
  self: { fingerprint: string; privateKey: openpgp.PrivateKey; publicKey: openpgp.PublicKey };
  peers: ReadonlyMap<string, PeerKey>; // by fingerprint
  peerByName(name: string): PeerKey | undefined;
}

export async function loadKeyring(cfg: Config, env: NodeJS.ProcessEnv = process.env): Promise<Keyring> {
  const privateKey = await readPrivateKeyFile(cfg.node.key, resolvePassphrase(cfg.node, env));
  const self = { fingerprint: fingerprintOf(privateKey), privateKey, publicKey: privateKey.toPublic() };

  const peers = new Map<string, PeerKey>();
  const byName = new Map<string, PeerKey>();
  for (const [i, p] of cfg.peers.entries()) {
    const where = `peers[${i}] "${p.name}"`;
    const key = await readPublicKeyFile(p.key).catch((e: unknown) => {
      throw new FerryError('CONFIG', `${where}: ${(e as Error).message}`);
    });
    const fingerprint = fingerprintOf(key);
    const configured = p.fingerprint.toLowerCase();
    if (fingerprint !== configured) {
      throw new FerryError('CONFIG', `${where}: key file ${p.key} has fingerprint ${fingerprint}, config says ${configured}`);
    }
    // Its packets are verified against its signing key and ours are encrypted to it: both must be usable
    // (as `peer add` requires), or every packet from it would be quarantined.
    await requireUsable(key, p.key, `${where}: key file`, true);
    if (peers.has(fingerprint)) {
      throw new FerryError('CONFIG', `${where}: fingerprint ${fingerprint} is already used by peer "${peers.get(fingerprint)!.name}"`);
    }
    if (byName.has(p.name)) throw new FerryError('CONFIG', `${where}: another peer is already named "${p.name}"`);
    const peer: PeerKey = { name: p.name, fingerprint, key };
    peers.set(fingerprint, peer);
    byName.set(p.name, peer);
  }
  return { self, peers, peerByName: (name) => byName.get(name) };
}
