/**
 * Pure layout of the synced tree: `TREE/<to-node>/<from-node>/<packet name>`, packet names derived from
 * the SHA-256 of the file bytes (so a half-synced or altered file never matches its name), and the names
 * ferrypost must ignore (Syncthing temps and conflict copies, our own temps, dotfiles). No I/O.
 * Malformed names are reported as `undefined` / false, never thrown.
 */
import { join } from 'node:path';
import { base32Decode, base32Encode } from '../packet/base32.js';

export { base32Decode, base32Encode };

export const PACKET_SUFFIX = '.pgp';

const HASH_BYTES = 32;
/** ceil(256 / 5) */
const HASH_B32_LEN = 52;
const PACKET_NAME_RE = /^[a-z2-7]{52}\.pgp$/;
const NODE_ID_RE = /^[0-9a-f]{40}$/;

export function packetNameForHash(sha256: Buffer): string {
  if (sha256.length !== HASH_BYTES) throw new RangeError(`packet hash must be ${HASH_BYTES} bytes, got ${sha256.length}`);
  return base32Encode(sha256) + PACKET_SUFFIX;
}

export function hashFromPacketName(name: string): Buffer | undefined {
  if (!PACKET_NAME_RE.test(name)) return undefined;
  const h = base32Decode(name.slice(0, HASH_B32_LEN));
  return h !== undefined && h.length === HASH_BYTES ? h : undefined;
}

export function isNodeId(s: string): boolean {
  return NODE_ID_RE.test(s);
}

export function packetDir(tree: string, toNode: string, fromNode: string): string {
  return join(tree, toNode, fromNode);
}

export function inboxDir(tree: string, self: string): string {
  return join(tree, self);
}

/**
 * Names that are never packets: dotfiles (covers `.syncthing.*.tmp`, `.ferrypost.*.tmp`, `.stfolder`,
 * `.stignore`, `.stversions`), Windows-style Syncthing temps `~syncthing~*`, conflict copies.
 */
export function isIgnoredName(name: string): boolean {
  return name.startsWith('.') || name.startsWith('~syncthing~') || name.includes('.sync-conflict-');
}

const CONFLICT_RE = /^([a-z2-7]{52})(?:\.sync-conflict-\d{8}-\d{6}-[A-Z0-9]{7})+\.pgp$/; // a conflict of a conflict too

/**
 * The packet name a Syncthing conflict copy was made from (`<name>.sync-conflict-<date>-<time>-<device>.pgp`),
 * or undefined. Names are content hashes, so a conflict means different bytes under one name: one of
 * the two files is damaged, and it may be the one that kept the name.
 */
export function conflictOriginal(name: string): string | undefined {
  const m = CONFLICT_RE.exec(name);
  return m ? `${m[1]}${PACKET_SUFFIX}` : undefined;
}

/** Lines ferrypost needs in TREE/.stignore: our temp files stay local ((?d): deletable if they block a dir removal). */
export const STIGNORE_LINES: readonly string[] = Object.freeze([
  '// ferrypost: temp files being written are local, never synced',
  '(?d).ferrypost.*.tmp',
]);
