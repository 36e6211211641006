/**
 * Pure layout of the synced tree: `TREE/<to-node>/<from-node>/<packet name>`, packet names derived from
 * the SHA-256 of the file bytes (so a half-synced or altered file never matches its name), and the names
 * ferrypost must ignore (Syncthing temps and conflict copies, our own temps, dotfiles). No I/O.
 * Malformed names are reported as `undefined` / false, never thrown.
 */
import { join } from 'node:path';

export const PACKET_SUFFIX = '.pgp';

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
const HASH_BYTES = 32;
/** ceil(256 / 5) */
const HASH_B32_LEN = 52;
const PACKET_NAME_RE = /^[a-z2-7]{52}\.pgp$/;
const NODE_ID_RE = /^[0-9a-f]{40}$/;

/** RFC 4648 base32, lowercase, no padding. */
export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += B32[(acc >>> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += B32[(acc << (5 - bits)) & 31];
  return out;
}

/** Inverse of base32Encode; undefined for a foreign character or non-zero trailing bits (non-canonical). */
export function base32Decode(s: string): Buffer | undefined {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const ch of s) {
    const v = B32.indexOf(ch);
    if (v < 0) return undefined;
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >>> bits) & 0xff);
    }
    acc &= (1 << bits) - 1;
  }
  if (bits >= 5 || acc !== 0) return undefined;
  return Buffer.from(out);
}

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

/** Lines ferrypost needs in TREE/.stignore: our temp files stay local ((?d): deletable if they block a dir removal). */
export const STIGNORE_LINES: readonly string[] = Object.freeze([
  '// ferrypost: temp files being written are local, never synced',
  '(?d).ferrypost.*.tmp',
]);
