/**
 * Hash algorithms of the native signature path (OpenPGP ids → node:crypto names) and the v4 signature
 * trailer. Only hashes at least as strong as SHA-256 are here: weaker ones (MD5, SHA-1, RIPEMD,
 * SHA-224) go to openpgp, which rejects them for messages / EdDSA with its own errors. Pure.
 */

/** RFC 9580 §9.5 ids. */
const NODE_HASH: ReadonlyMap<number, { name: string; bytes: number; saltBytes: number }> = new Map([
  [8, { name: 'sha256', bytes: 32, saltBytes: 16 }],
  [9, { name: 'sha384', bytes: 48, saltBytes: 24 }],
  [10, { name: 'sha512', bytes: 64, saltBytes: 32 }],
  [12, { name: 'sha3-256', bytes: 32, saltBytes: 16 }],
  [14, { name: 'sha3-512', bytes: 64, saltBytes: 32 }],
]);

export function nativeHash(id: number): { name: string; bytes: number; saltBytes: number } | undefined {
  return NODE_HASH.get(id);
}

/** Digest lengths of every hash openpgp knows (for its preference logic, see signature-encode.ts). */
export const HASH_BYTES: ReadonlyMap<number, number> = new Map([
  [1, 16],
  [2, 20],
  [3, 20],
  [8, 32],
  [9, 48],
  [10, 64],
  [11, 28],
  [12, 32],
  [14, 64],
]);

/** v4 trailer (RFC 9580 §5.2.4): 0x04 0xFF ‖ 4-octet length of the hashed part. */
export function v4Trailer(hashedPartLength: number): Uint8Array {
  const t = new Uint8Array(6);
  t[0] = 0x04;
  t[1] = 0xff;
  new DataView(t.buffer).setUint32(2, hashedPartLength);
  return t;
}
