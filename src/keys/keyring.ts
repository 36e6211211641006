/**
 * The Keyring: this node's unlocked secret key and the configured peers' public keys, by
 * fingerprint. Loaded once from the config. Fails with FerryError('CONFIG') on any unreadable key,
 * an unusable node key, a peer key whose fingerprint differs from the configured one, or two peers
 * with the same name or fingerprint. A peer key that is expired or revoked is loaded all the same
 * (its problem recorded: keys/usability.ts), so one peer cannot stop the node. A peer may be the
 * node itself (delivery to itself).
 */
import type * as openpgp from 'openpgp';
import type { Config } from '../config/schema.js';
import { FerryError } from '../errors/index.js';
import { fingerprintOf, readPrivateKeyFile, readPublicKeyFile, resolvePassphrase } from './load.js';
import { createUsabilityView, keyProblem, neverUsable } from './usability.js';

export interface PeerKey {
  name: string;
  fingerprint: string;
  key: openpgp.PublicKey;
  /** Why the key could not be used when it was loaded (expired, revoked), for start-up warnings. */
  problemAtLoad?: string;
}

export interface Keyring {
  self: { fingerprint: string; privateKey: openpgp.PrivateKey; publicKey: openpgp.PublicKey };
  peers: ReadonlyMap<string, PeerKey>; // by fingerprint
  peerByName(name: string): PeerKey | undefined;
  /** Why a peer's key cannot be encrypted to now ("expired on …", "is revoked"), or undefined. */
  peerProblem(fingerprint: string): string | undefined;
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
    const problem = await keyProblem(key);
    const wrong = problem ? await neverUsable(key, problem) : undefined;
    if (wrong) throw new FerryError('CONFIG', `${where}: key file ${p.key} ${wrong}`);
    if (peers.has(fingerprint)) {
      throw new FerryError('CONFIG', `${where}: fingerprint ${fingerprint} is already used by peer "${peers.get(fingerprint)!.name}"`);
    }
    if (byName.has(p.name)) throw new FerryError('CONFIG', `${where}: another peer is already named "${p.name}"`);
    const peer: PeerKey = { name: p.name, fingerprint, key, ...(problem ? { problemAtLoad: problem } : {}) };
    peers.set(fingerprint, peer);
    byName.set(p.name, peer);
  }
  const keys = new Map([...peers].map(([fpr, peer]) => [fpr, peer.key]));
  const problems = new Map([...peers].map(([fpr, peer]) => [fpr, peer.problemAtLoad]));
  return { self, peers, peerByName: (name) => byName.get(name), peerProblem: createUsabilityView(keys, problems) };
}
