/**
 * Who is who, without unlocking anything: this node's fingerprint (read from its key file, which stays
 * locked) and the configured peers' names and fingerprints (from the config). For commands that only
 * list or move files by node id (queue, quarantine release); the daemon loads the full Keyring.
 * Fails with FerryError('CONFIG') if the node key file cannot be read or parsed.
 */
import type { Config } from '../config/schema.js';
import { fingerprintOf, readKeyFile } from './load.js';

export interface PeerIdentity {
  name: string;
  fingerprint: string;
}

export interface Identities {
  self: { fingerprint: string };
  peers: ReadonlyMap<string, PeerIdentity>; // by fingerprint
}

export async function loadIdentities(cfg: Config): Promise<Identities> {
  const key = await readKeyFile(cfg.node.key, 'node key');
  const peers = new Map<string, PeerIdentity>();
  for (const p of cfg.peers) peers.set(p.fingerprint.toLowerCase(), { name: p.name, fingerprint: p.fingerprint.toLowerCase() });
  return { self: { fingerprint: fingerprintOf(key) }, peers };
}
