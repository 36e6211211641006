/**
 * Node KeyObjects for v4 ECDH Curve25519 ("cv25519", algorithm 18, OID 1.3.6.1.4.1.3029.1.5.1) keys, the
 * kind `ferrypost init` and GnuPG 2.2 make, built once per key packet and cached, so that each packet's
 * session key is encrypted/decrypted with node:crypto (pkesk.ts) instead of openpgp.js re-importing the
 * raw key into WebCrypto every time.
 * Which key is usable still comes from openpgp:
 * - sender: `getEncryptionKey()` (expiry, revocation, key flags). The answer is cached per PublicKey
 *   object and asked again when older than USABLE_TTL_MS, so a key that expires while the daemon runs
 *   stops being used within a minute (and then openpgp's own error is thrown, as before).
 * - receiver: `getDecryptionKeys(undefined, null)`, exactly what openpgp.decryptSessionKeys asks. With
 *   date null openpgp checks no time (old messages stay readable), so the answer depends on the key
 *   object alone and is cached for its lifetime.
 * Keys of any other kind (RSA, v6 X25519, NIST curves, unusual KDF parameters) get `undefined` / no
 * native entry: the caller uses openpgp as before. Never throws for an unsupported key.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import type * as openpgp from 'openpgp';

export const ALGO_ECDH = 18;
/** Curve25519 (legacy OpenPGP OID), as written in key and KDF param: length octet + OID bytes. */
export const CV25519_OID = Buffer.from('0a2b060104019755010501', 'hex');
/** Sender answers from getEncryptionKey() older than this are asked again. */
export const USABLE_TTL_MS = 60_000;

/** KDF hash ids (RFC 9580 §9.5) → Node names; RFC 6637 allows SHA2-256/384/512. */
const KDF_HASHES: Record<number, string> = { 8: 'sha256', 9: 'sha384', 10: 'sha512' };
/** Key-wrap cipher ids → Node AES key wrap (RFC 3394) and KEK length. */
const KEK_CIPHERS: Record<number, { wrap: string; keyLen: number }> = {
  7: { wrap: 'id-aes128-wrap', keyLen: 16 },
  8: { wrap: 'id-aes192-wrap', keyLen: 24 },
  9: { wrap: 'id-aes256-wrap', keyLen: 32 },
};
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const ANONYMOUS_SENDER = Buffer.from('Anonymous Sender    ', 'latin1');

/** Everything needed to encrypt a session key to one cv25519 key packet. */
export interface EcdhRecipient {
  keyId: Buffer; // 8 bytes: the low 64 bits of the v4 fingerprint
  publicKey: KeyObject;
  /** RFC 6637 §8 KDF "Param": OID ‖ 18 ‖ 03 01 hash cipher ‖ "Anonymous Sender    " ‖ fingerprint. */
  param: Buffer;
  hash: string;
  kek: { wrap: string; keyLen: number };
}

export interface EcdhDecryptor extends EcdhRecipient {
  privateKey: KeyObject;
}

type KeyPacket = openpgp.Key['keyPacket'] | openpgp.Subkey['keyPacket'];

interface Usable {
  at: number;
  packet: Promise<KeyPacket>;
}

const usableCache = new WeakMap<openpgp.PublicKey, Usable>();
const recipientCache = new WeakMap<KeyPacket, EcdhRecipient | null>();
const decryptorCache = new WeakMap<openpgp.PrivateKey, Promise<EcdhDecryptor[]>>();

/**
 * The native recipient for `key`'s encryption key, or undefined if it is not a v4 cv25519 key (use
 * openpgp). Rejects with openpgp's error if the key has no usable encryption key (expired, revoked).
 */
export async function ecdhRecipientFor(key: openpgp.PublicKey, now: number = Date.now()): Promise<EcdhRecipient | undefined> {
  let usable = usableCache.get(key);
  if (!usable || now - usable.at > USABLE_TTL_MS) {
    const packet = key.getEncryptionKey(undefined, new Date(now)).then((k) => k.keyPacket);
    usable = { at: now, packet };
    usableCache.set(key, usable);
    packet.catch(() => {
      if (usableCache.get(key) === usable) usableCache.delete(key); // not cached: ask again next time
    });
  }
  return recipientOf(await usable.packet);
}

/**
 * The native decryption keys of `key`: cached for the key object's lifetime (see the file comment),
 * except while one of its decryption keys is still locked (it may be unlocked in place later).
 */
export function ecdhDecryptorsFor(key: openpgp.PrivateKey): Promise<EcdhDecryptor[]> {
  let d = decryptorCache.get(key);
  if (!d) {
    const built = buildDecryptors(key);
    d = built.then((b) => b.native);
    decryptorCache.set(key, d);
    void built.then((b) => {
      if (b.locked && decryptorCache.get(key) === d) decryptorCache.delete(key);
    });
  }
  return d;
}

async function buildDecryptors(key: openpgp.PrivateKey): Promise<{ native: EcdhDecryptor[]; locked: boolean }> {
  let keys: (openpgp.PrivateKey | openpgp.Subkey)[];
  try {
    keys = await key.getDecryptionKeys(undefined, null);
  } catch {
    return { native: [], locked: false }; // none usable: openpgp says why when it is asked
  }
  const out = { native: [] as EcdhDecryptor[], locked: false };
  for (const k of keys) {
    if (!k.keyPacket.isDecrypted()) out.locked = true;
    const d = decryptorOf(k.keyPacket);
    if (d) out.native.push(d);
  }
  return out;
}

/** Built once per key packet (immutable once parsed). */
export function recipientOf(packet: KeyPacket): EcdhRecipient | undefined {
  let r = recipientCache.get(packet);
  if (r === undefined) {
    r = buildRecipient(packet) ?? null;
    recipientCache.set(packet, r);
  }
  return r ?? undefined;
}

function buildRecipient(packet: KeyPacket): EcdhRecipient | undefined {
  if (packet.version !== 4 || (packet.algorithm as number) !== ALGO_ECDH) return undefined;
  const params = packet.publicParams as { oid?: { oid?: Uint8Array }; Q?: Uint8Array; kdfParams?: { hash?: number; cipher?: number } };
  const oid = params.oid?.oid;
  const q = params.Q;
  const kdf = params.kdfParams;
  if (!oid || !Buffer.from(oid).equals(CV25519_OID.subarray(1))) return undefined;
  if (!q || q.length !== 33 || q[0] !== 0x40) return undefined;
  const hash = KDF_HASHES[kdf?.hash ?? -1];
  const kek = KEK_CIPHERS[kdf?.cipher ?? -1];
  const fingerprint = packet.getFingerprintBytes();
  if (!hash || !kek || !fingerprint || fingerprint.length !== 20) return undefined;
  try {
    return {
      keyId: Buffer.from(fingerprint.subarray(12)),
      publicKey: x25519PublicKey(q.subarray(1)),
      param: Buffer.concat([CV25519_OID, Uint8Array.of(ALGO_ECDH, 3, 1, kdf!.hash!, kdf!.cipher!), ANONYMOUS_SENDER, fingerprint]),
      hash,
      kek,
    };
  } catch {
    return undefined; // a point Node refuses: leave it to openpgp
  }
}

function decryptorOf(packet: KeyPacket): EcdhDecryptor | undefined {
  const recipient = recipientOf(packet);
  if (!recipient || !('privateParams' in packet) || !packet.isDecrypted() || packet.isDummy()) return undefined;
  const d = (packet.privateParams as { d?: Uint8Array } | null)?.d;
  if (!d || d.length === 0 || d.length > 32) return undefined;
  try {
    const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, nativeScalar(d)]), format: 'der', type: 'pkcs8' });
    // Guard against a wrong byte order: the secret must give back the key's own public point.
    if (!x25519Raw(createPublicKey(privateKey)).equals(x25519Raw(recipient.publicKey))) return undefined;
    return { ...recipient, privateKey };
  } catch {
    return undefined;
  }
}

/**
 * OpenPGP stores the cv25519 secret as a big-endian MPI (leading zero octets may be dropped); X25519
 * (RFC 7748) takes the 32-byte little-endian scalar: pad on the left, then reverse — as openpgp.js
 * does (`d.slice().reverse()` after padding to the payload size) and RFC 9580 §5.5.5.6.1.1 specifies.
 */
export function nativeScalar(d: Uint8Array): Buffer {
  const be = Buffer.alloc(32);
  be.set(d, 32 - d.length);
  return be.reverse();
}

/** JWK, not DER: Node imports/exports raw OKP keys directly, ~10x cheaper than OpenSSL 3's DER codecs. */
export function x25519PublicKey(u: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64url') }, format: 'jwk' });
}

export function x25519Raw(publicKey: KeyObject): Buffer {
  return Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
}
