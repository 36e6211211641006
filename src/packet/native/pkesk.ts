/**
 * Public-Key Encrypted Session Key packets, version 3 (RFC 9580 §5.1), for v4 ECDH Curve25519
 * recipients (RFC 6637, RFC 9580 §11.5), with node:crypto: an ephemeral X25519 key pair, the shared
 * secret (X25519 output as is, i.e. little-endian, as GnuPG and openpgp.js hash it), the KDF
 * SHA-x(00 00 00 01 ‖ Z ‖ Param) truncated to the KEK size, and AES key wrap (RFC 3394) of
 * algo ‖ session key ‖ checksum ‖ PKCS#5 padding. Same bytes as openpgp.encryptSessionKey makes;
 * GnuPG and openpgp.js read them.
 * Decryption never throws: anything it does not like (not v3/ECDH, malformed, not for the key, unwrap
 * integrity failure, bad padding/checksum, a cipher other than AES-128/256) gives undefined, and the
 * caller hands the PKESKs to openpgp.decryptSessionKeys exactly as before, which rejects what is bad
 * and reads the odd cases (the KDF variants of old Go/openpgp.js senders, AES-192 when preferred, …).
 */
import { createCipheriv, createDecipheriv, createHash, diffieHellman, generateKeyPairSync, timingSafeEqual } from 'node:crypto';
import { packetHeader } from '../pgpstream.js';
import { ALGO_ECDH, x25519PublicKey, type EcdhDecryptor, type EcdhRecipient } from './ecdh-keys.js';

/** X25519's base point (u = 9): deriving with it gives a private key's public u (RFC 7748 §6.1). */
const BASE_POINT = x25519PublicKey(Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 9 : 0)));

export const TAG_PKESK = 1;
const KEY_WRAP_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex'); // RFC 3394 §2.2.3.1 default IV
/** Session-key ciphers read natively (openpgp always accepts these two; others go through openpgp). */
const SESSION_CIPHERS: Record<number, { algorithm: SessionAlgorithm; keyLen: number }> = {
  7: { algorithm: 'aes128', keyLen: 16 },
  9: { algorithm: 'aes256', keyLen: 32 },
};
const SESSION_IDS: Record<SessionAlgorithm, number> = { aes128: 7, aes256: 9 };
/** MPI of 0x40 ‖ u: 32 bytes + the prefix octet whose highest set bit is bit 6 → 263 bits. */
const POINT_MPI_HEAD = Uint8Array.of(0x01, 0x07, 0x40);

export type SessionAlgorithm = 'aes128' | 'aes256';
export interface SessionKey {
  algorithm: SessionAlgorithm;
  data: Buffer;
}
export interface EcdhPkesk {
  keyId: Buffer; // 8 bytes; all zero = wildcard ("anonymous recipient")
  ephemeral: Buffer; // u of the sender's ephemeral X25519 key, 32 bytes
  wrapped: Buffer;
}

/** A whole PKESK packet (header included) carrying `sessionKey` to `r`. */
export function encryptSessionKeyNative(algorithm: string, sessionKey: Uint8Array, r: EcdhRecipient): Buffer {
  const id = SESSION_IDS[algorithm as SessionAlgorithm];
  const keyLen = id === undefined ? undefined : SESSION_CIPHERS[id]!.keyLen;
  if (sessionKey.length !== keyLen) throw new Error(`PKESK: unsupported session key ${algorithm} / ${sessionKey.length} bytes`);
  const m = pkcs5Pad(Buffer.concat([Uint8Array.of(id), sessionKey, checksum(sessionKey)]));
  const eph = generateKeyPairSync('x25519');
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: r.publicKey });
  // The ephemeral public u as X25519(d, 9), never eph.publicKey.export(): Node 20 deadlocks its main
  // thread (a key's mutex taken twice) when a GC during that export collects the key's generation
  // job. A daemon froze that way during a benchmark (gdb: ExportJWKEdKey → GC → ~KeyGenJob →
  // mutex_lock); a bare loop of generateKeyPairSync + export({ format: 'jwk' }) hangs after 2,000 to
  // 500,000+ keys. Deriving holds no lock while it allocates: 1,000,000 keys ran this way.
  const ephemeral = diffieHellman({ privateKey: eph.privateKey, publicKey: BASE_POINT });
  const wrap = createCipheriv(r.kek.wrap, kdf(r, shared), KEY_WRAP_IV);
  const wrapped = Buffer.concat([wrap.update(m), wrap.final()]);
  const body = Buffer.concat([Uint8Array.of(3), r.keyId, Uint8Array.of(ALGO_ECDH), POINT_MPI_HEAD, ephemeral, Uint8Array.of(wrapped.length), wrapped]);
  return Buffer.concat([packetHeader(TAG_PKESK, body.length), body]);
}

/** A v3 ECDH PKESK body with a Curve25519-shaped point, or undefined for anything else. */
export function parseEcdhPkesk(body: Uint8Array): EcdhPkesk | undefined {
  // version(1) keyid(8) algo(1) mpi-bits(2) point(33) len(1) wrapped(len)
  if (body.length < 46 || body[0] !== 3 || body[9] !== ALGO_ECDH) return undefined;
  const bits = (body[10]! << 8) | body[11]!;
  if (((bits + 7) >> 3) !== 33 || body[12] !== 0x40) return undefined;
  const len = body[45]!;
  if (46 + len !== body.length) return undefined;
  return { keyId: Buffer.from(body.subarray(1, 9)), ephemeral: Buffer.from(body.subarray(13, 45)), wrapped: Buffer.from(body.subarray(46)) };
}

/** The session key if `p` decrypts with `d` and everything checks out; undefined otherwise. */
export function decryptEcdhPkesk(p: EcdhPkesk, d: EcdhDecryptor): SessionKey | undefined {
  if (p.wrapped.length < 24 || p.wrapped.length % 8 !== 0) return undefined;
  let m: Buffer;
  try {
    const shared = diffieHellman({ privateKey: d.privateKey, publicKey: x25519PublicKey(p.ephemeral) });
    const unwrap = createDecipheriv(d.kek.wrap, kdf(d, shared), KEY_WRAP_IV);
    m = Buffer.concat([unwrap.update(p.wrapped), unwrap.final()]); // throws if the integrity check fails
  } catch {
    return undefined; // a low-order point (all-zero secret), a point Node refuses, the wrong key
  }
  const padding = m[m.length - 1]!;
  if (padding < 1 || padding > 8 || !m.subarray(m.length - padding).every((b) => b === padding)) return undefined;
  const cipher = SESSION_CIPHERS[m[0]!];
  if (!cipher || m.length - padding !== 1 + cipher.keyLen + 2) return undefined;
  const key = m.subarray(1, 1 + cipher.keyLen);
  if (!timingSafeEqual(checksum(key), m.subarray(1 + cipher.keyLen, 3 + cipher.keyLen))) return undefined;
  return { algorithm: cipher.algorithm, data: Buffer.from(key) };
}

/**
 * The first session key that one of `decryptors` opens from the PKESK bodies (matching key id, or the
 * wildcard id), or undefined (not for a native key of ours, or something unusual: use openpgp).
 */
export function openSessionKeyNative(bodies: readonly Uint8Array[], decryptors: readonly EcdhDecryptor[]): SessionKey | undefined {
  if (decryptors.length === 0) return undefined;
  for (const body of bodies) {
    const p = parseEcdhPkesk(body);
    if (!p) continue;
    const wildcard = p.keyId.every((b) => b === 0);
    for (const d of decryptors) {
      if (!wildcard && !p.keyId.equals(d.keyId)) continue;
      const sk = decryptEcdhPkesk(p, d);
      if (sk) return sk;
    }
  }
  return undefined;
}

/** RFC 6637 §7: Hash(00 00 00 01 ‖ Z ‖ Param), leftmost KEK-size octets. */
function kdf(r: EcdhRecipient, shared: Buffer): Buffer {
  return createHash(r.hash).update(Uint8Array.of(0, 0, 0, 1)).update(shared).update(r.param).digest().subarray(0, r.kek.keyLen);
}

/** Sum of the key octets mod 65536, big-endian (RFC 9580 §5.1.3). */
function checksum(key: Uint8Array): Buffer {
  let s = 0;
  for (const b of key) s = (s + b) & 0xffff;
  return Buffer.from([s >> 8, s & 0xff]);
}

/** PKCS#5: 1..8 octets, each the pad length, up to a multiple of 8 (RFC 6637 §8). */
function pkcs5Pad(m: Buffer): Buffer {
  const n = 8 - (m.length % 8);
  return Buffer.concat([m, Buffer.alloc(n, n)]);
}
