/**
 * Who is who, without unlocking anything: this node's fingerprint (read from its key file, which stays
 * locked) and the configured peers' names and fingerprints (from the config). For commands that only
 * list or move files by node id (queue, quarantine release); the daemon loads the full Keyring.
 * The fingerprint comes from the key file's first packet (primary-fingerprint.ts) when it can, so these
 * commands do not load openpgp.js; otherwise openpgp.js reads the key, as before.
 * Fails with FerryError('CONFIG') if the node key file cannot be read or parsed.
 */
import type { Config } from '../config/schema.js';
import { readKeyFileBytes } from './files.js';
import { primaryFingerprint } from './primary-fingerprint.js';

export interface PeerIdentity {
  name: string;
  fingerprint: string;
}

export interface Identities {
  self: { fingerprint: string };
  peers: ReadonlyMap<string, PeerIdentity>; // by fingerprint
}

export async function loadIdentities(cfg: Config): Promise<Identities> {
  const fingerprint = await nodeFingerprint(cfg.node.key);
  const peers = new Map<string, PeerIdentity>();
  for (const p of cfg.peers) peers.set(p.fingerprint.toLowerCase(), { name: p.name, fingerprint: p.fingerprint.toLowerCase() });
  return { self: { fingerprint }, peers };
}

async function nodeFingerprint(file: string): Promise<string> {
  const bytes = await readKeyFileBytes(file, 'node key');
  const quick = primaryFingerprint(bytes);
  if (quick !== undefined) return quick;
  const { fingerprintOf, parseKeyBytes } = await import('./load.js');
  return fingerprintOf(await parseKeyBytes(bytes, file, 'node key'));
}
