/**
 * Native one-pass signing for v4 Ed25519 (EdDSA legacy) keys: the same packets openpgp.sign writes
 * for them — One-Pass Signature (v3), Literal Data ('b', empty file name, date), Signature (v4, binary,
 * hashed: creation time (critical), issuer key id, openpgp's salt notation, issuer fingerprint; no
 * unhashed subpackets) — with node:crypto and a KeyObject built once per key. The hash is the one
 * openpgp's preference logic picks for the key (SHA-512 for `ferrypost init` keys: Ed25519's curve hash).
 * signInMemory does one buffer; signStreaming hashes while it streams the literal data in partial
 * lengths and writes the Signature packet at the end, so memory does not grow with the payload.
 * Fails: nativeSignerFor returns undefined for anything else (other algorithms, v6, encrypted or
 * invalid keys): the caller uses openpgp.sign, which also reports invalid keys.
 */
import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto';
import * as openpgp from 'openpgp';
import { framePacket, packetHeader } from '../pgpstream.js';
import { ed25519PrivateOf, EDDSA_LEGACY, signingKeyAt, type Validity } from './sig-keys.js';
import { HASH_BYTES, nativeHash, v4Trailer } from './signature-hash.js';

const TAG_SIGNATURE = 2;
const TAG_ONE_PASS = 4;
const TAG_LITERAL = 11;
const SIG_BINARY = 0x00;
const SHA256 = 8;
/** openpgp's salt notation (nonDeterministicSignaturesViaNotation, on by default). */
const SALT_NOTATION = Buffer.from('salt@notations.openpgpjs.org', 'utf8');

export interface NativeSigner {
  key: KeyObject;
  hashId: number;
  hashName: string;
  saltBytes: number;
  keyId: Uint8Array; // 8 bytes
  fingerprint: Uint8Array; // 20 bytes
}

const signers = new WeakMap<Validity, Promise<NativeSigner | undefined>>();

/**
 * The native signer of `priv` at `date` (its signing key then, as openpgp.getSigningKey picks it), or
 * undefined when openpgp.sign must do it. `preferredHash` is the sender preference passed to openpgp.
 */
export async function nativeSignerFor(priv: openpgp.PrivateKey, date: Date, preferredHash: number): Promise<NativeSigner | undefined> {
  const v = await signingKeyAt(priv, null, date);
  let s = signers.get(v);
  if (!s) {
    s = v.ok ? derive(priv, v.key, date, preferredHash) : Promise.resolve(undefined);
    signers.set(v, s);
  }
  return s;
}

async function derive(priv: openpgp.PrivateKey, signingKey: openpgp.Key | openpgp.Subkey, date: Date, preferredHash: number): Promise<NativeSigner | undefined> {
  const packet = signingKey.keyPacket;
  const key = ed25519PrivateOf(packet);
  if (!key) return undefined;
  // Declared on Key in openpgp's code, missing from its d.ts.
  const self = await (priv as unknown as { getPrimarySelfSignature(d: Date): Promise<openpgp.SignaturePacket> }).getPrimarySelfSignature(date);
  const hashId = preferredHashFor(self.preferredHashAlgorithms ?? [], preferredHash);
  const h = nativeHash(hashId);
  if (!h) return undefined;
  return {
    key,
    hashId,
    hashName: h.name,
    saltBytes: h.saltBytes,
    keyId: Buffer.from(packet.getKeyID().toHex(), 'hex'),
    fingerprint: packet.getFingerprintBytes()!,
  };
}

/**
 * openpgp 6's getPreferredHashAlgo for a one-key sign with an EdDSA-legacy Ed25519 key (curve hash
 * SHA-512): the sender preference if the key accepts it and it is at least as strong as the curve hash,
 * else the weakest key preference if it is, else SHA-512. Replicated so the packets stay identical.
 */
export function preferredHashFor(keyPrefs: number[], sender: number): number {
  const curve = 10;
  const len = (h: number): number => HASH_BYTES.get(h) ?? 0;
  const known = keyPrefs.filter((h) => HASH_BYTES.has(h));
  if ((known.includes(sender) || sender === SHA256) && len(sender) >= len(curve)) return sender;
  let strongest = SHA256;
  if (known.length > 0) {
    const sorted = [...new Set(known)].sort((a, b) => len(a) - len(b));
    strongest = len(sorted[0]!) >= len(SHA256) ? sorted[0]! : SHA256;
  }
  return len(strongest) >= len(curve) ? strongest : curve;
}

function onePassSignature(s: NativeSigner): Uint8Array {
  const body = Buffer.concat([Uint8Array.of(3, SIG_BINARY, s.hashId, EDDSA_LEGACY), s.keyId, Uint8Array.of(1)]);
  return Buffer.concat([packetHeader(TAG_ONE_PASS, body.length), body]);
}

/** Literal Data fields before the data: format 'b', empty file name, date. */
function literalFields(created: number): Uint8Array {
  const f = Buffer.alloc(6);
  f[0] = 0x62;
  f.writeUInt32BE(created, 2);
  return f;
}

function subpacket(type: number, body: Uint8Array): Uint8Array {
  return Buffer.concat([Uint8Array.of(body.length + 1, type), body]); // all ours are < 192 bytes
}

/** Version, type, algorithms and hashed subpackets: what the v4 signature hashes after the data. */
function hashedPart(s: NativeSigner, created: number): Buffer {
  const time = Buffer.alloc(4);
  time.writeUInt32BE(created);
  const salt = randomBytes(s.saltBytes);
  const notation = Buffer.alloc(8);
  notation.writeUInt16BE(SALT_NOTATION.length, 4); // flags 0: not human-readable
  notation.writeUInt16BE(salt.length, 6);
  const subs = Buffer.concat([
    subpacket(0x80 | 2, time), // creation time, critical
    subpacket(16, s.keyId), // issuer key id
    subpacket(20, Buffer.concat([notation, SALT_NOTATION, salt])),
    subpacket(33, Buffer.concat([Uint8Array.of(4), s.fingerprint])),
  ]);
  const head = Buffer.from([4, SIG_BINARY, EDDSA_LEGACY, s.hashId, subs.length >> 8, subs.length & 0xff]);
  return Buffer.concat([head, subs]);
}

function mpi(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  const v = bytes.subarray(i);
  const bits = v.length === 0 ? 0 : (v.length - 1) * 8 + (32 - Math.clz32(v[0]!));
  return Buffer.concat([Uint8Array.of(bits >> 8, bits & 0xff), v]);
}

/** The Signature packet, given the hash of the literal data so far (finished here). */
function signaturePacket(s: NativeSigner, hash: ReturnType<typeof createHash>, hashed: Buffer): Uint8Array {
  const digest = hash.update(hashed).update(v4Trailer(hashed.length)).digest();
  const rs = sign(null, digest, s.key); // EdDSA legacy signs the digest; R ‖ S
  const body = Buffer.concat([hashed, Uint8Array.of(0, 0), digest.subarray(0, 2), mpi(rs.subarray(0, 32)), mpi(rs.subarray(32))]);
  return Buffer.concat([packetHeader(TAG_SIGNATURE, body.length), body]);
}

/** OPS ‖ Literal Data ‖ Signature for data given as a few buffers (concatenated). */
export function signInMemory(s: NativeSigner, data: Uint8Array[], date: Date): Buffer {
  const created = Math.floor(date.getTime() / 1000);
  const hash = createHash(s.hashName);
  let size = 0;
  for (const d of data) {
    hash.update(d);
    size += d.length;
  }
  const fields = literalFields(created);
  return Buffer.concat([
    onePassSignature(s),
    packetHeader(TAG_LITERAL, fields.length + size),
    fields,
    ...data,
    signaturePacket(s, hash, hashedPart(s, created)),
  ]);
}

/** The same, streamed: literal data in partial lengths, the Signature packet once the data ended. */
export async function* signStreaming(s: NativeSigner, data: AsyncIterable<Uint8Array>, date: Date): AsyncGenerator<Uint8Array> {
  const created = Math.floor(date.getTime() / 1000);
  const hash = createHash(s.hashName);
  async function* body(): AsyncGenerator<Uint8Array> {
    yield literalFields(created);
    for await (const c of data) {
      hash.update(c);
      yield c;
    }
  }
  yield onePassSignature(s);
  yield* framePacket(TAG_LITERAL, body());
  yield signaturePacket(s, hash, hashedPart(s, created));
}
