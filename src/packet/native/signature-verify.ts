/**
 * Native verification of a one-pass signed message (One-Pass Signature v3 ‖ Literal Data 'b' ‖
 * Signature v4) by a v4 Ed25519 (EdDSA legacy) key, with the checks openpgp.verify makes: OPS and
 * Signature agree, hash prefix, Ed25519 over the digest, not created in the future, not expired, no
 * unknown critical subpacket or notation, no revocation key, and openpgp's own verdict (cached per key,
 * sig-keys.ts) that the signing (sub)key was valid at the signature's creation time.
 * verifyBuffer parses a whole decrypted message; openSignedStream streams the literal data and hashes
 * it on the way. Anything else — other algorithms or hashes, several or nested signatures, text-mode
 * data, compressed data, v6 — is reported as "not native" BEFORE any data is handed out, so the caller
 * gives the untouched bytes to openpgp.verify and behaves exactly as before.
 * Fails: the check's `verified` promise rejects (caller: PACKET_BAD_SIGNATURE / UNKNOWN_SIGNER); a
 * broken packet sequence in the stream throws PgpFormatError from the data iterator.
 */
import { createHash, verify, type Hash } from 'node:crypto';
import * as openpgp from 'openpgp';
import { ByteReader, packetBody, PgpFormatError, readPacketHead } from '../pgpstream.js';
import { ed25519PublicOf, EDDSA_LEGACY, signingKeyAt } from './sig-keys.js';
import { nativeHash, v4Trailer } from './signature-hash.js';

const TAG_SIGNATURE = 2;
const TAG_ONE_PASS = 4;
const TAG_LITERAL = 11;
const SIG_BINARY = 0x00;
/**
 * Longest Signature packet read. A v4 Ed25519 signature is ~120 bytes, RSA-4096 ~600, v6 ones a few
 * hundred, and notations or embedded signatures keep real ones under 2 KiB; the length is the
 * packet's claim (up to 4 GiB), read from data inflated up to 1100:1, so it is checked before the
 * body is allocated. 64 KiB leaves 30x room and bounds the allocation at a fixed, small size.
 */
export const MAX_SIGNATURE_PACKET_BYTES = 64 * 1024;

export type KeyID = openpgp.SignaturePacket['issuerKeyID'];

/** The One-Pass Signature fields openpgp parses (its d.ts does not declare them). */
interface Ops {
  version: number;
  signatureType: number;
  hashAlgorithm: number;
  publicKeyAlgorithm: number;
  issuerKeyID: KeyID;
  flags: number;
  read(bytes: Uint8Array): void;
}

/** What decode.ts checks: the shape of openpgp's verification results. */
export interface SignatureCheck {
  keyID: KeyID;
  verified: Promise<unknown>;
}

/** A One-Pass Signature body we handle natively, given the peers' keys; else undefined. */
function nativeOps(body: Uint8Array, keys: openpgp.PublicKey[]): Ops | undefined {
  if (body.length !== 13 || body[0] !== 3) return undefined;
  const ops = new openpgp.OnePassSignaturePacket() as unknown as Ops;
  ops.read(body);
  // flags 1: not nested (0 would mean another signature follows)
  if (ops.signatureType !== SIG_BINARY || ops.publicKeyAlgorithm !== EDDSA_LEGACY || !nativeHash(ops.hashAlgorithm) || ops.flags !== 1) return undefined;
  const key = keys.find((k) => k.getKeys(ops.issuerKeyID).length > 0);
  // An unknown signer is reported natively (same result); a known key must be one we can use.
  if (key && !ed25519PublicOf(key.getKeys(ops.issuerKeyID)[0]!.keyPacket)) return undefined;
  return ops;
}

/** Packets of a whole message: tag and body (partial lengths joined). Undefined if not well formed. */
function packetsOf(bytes: Uint8Array): { tag: number; body: Uint8Array }[] | undefined {
  const out: { tag: number; body: Uint8Array }[] = [];
  let p = 0;
  while (p < bytes.length) {
    const b0 = bytes[p++]!;
    if ((b0 & 0x80) === 0) return undefined;
    if ((b0 & 0x40) === 0) {
      // old format (gpg writes it for some packets): 1, 2 or 4 length octets, or to the end
      const type = b0 & 3;
      let n = bytes.length - p;
      if (type !== 3) {
        const k = 1 << type;
        if (p + k > bytes.length) return undefined;
        n = 0;
        for (let i = 0; i < k; i++) n = n * 256 + bytes[p + i]!;
        p += k;
      }
      if (p + n > bytes.length) return undefined;
      out.push({ tag: (b0 >> 2) & 0x0f, body: bytes.subarray(p, p + n) });
      p += n;
      continue;
    }
    const parts: Uint8Array[] = [];
    for (;;) {
      if (p >= bytes.length) return undefined;
      const o1 = bytes[p++]!;
      let n: number;
      let partial = false;
      if (o1 < 192) n = o1;
      else if (o1 < 224) n = ((o1 - 192) << 8) + (bytes[p++] ?? NaN) + 192;
      else if (o1 === 255) {
        if (p + 4 > bytes.length) return undefined;
        n = ((bytes[p]! << 24) >>> 0) + (bytes[p + 1]! << 16) + (bytes[p + 2]! << 8) + bytes[p + 3]!;
        p += 4;
      } else {
        n = 1 << (o1 & 0x1f);
        partial = true;
      }
      if (!(p + n <= bytes.length)) return undefined;
      parts.push(bytes.subarray(p, p + n));
      p += n;
      if (!partial) break;
    }
    out.push({ tag: b0 & 0x3f, body: parts.length === 1 ? parts[0]! : Buffer.concat(parts) });
  }
  return out;
}

/** Literal Data fields: format 'b' only; the offset of the data, or undefined. */
function binaryDataOffset(first: Uint8Array): number | undefined {
  if (first.length < 2 || first[0] !== 0x62) return undefined;
  const off = 2 + first[1]! + 4;
  return first.length >= off ? off : undefined;
}

/** A whole decrypted message, verified natively; undefined when openpgp must do it. */
export function verifyBuffer(bytes: Uint8Array, keys: openpgp.PublicKey[]): { data: Uint8Array; signatures: SignatureCheck[] } | undefined {
  const packets = packetsOf(bytes);
  if (!packets || packets.length !== 3) return undefined;
  const [o, l, s] = packets as [{ tag: number; body: Uint8Array }, { tag: number; body: Uint8Array }, { tag: number; body: Uint8Array }];
  if (o.tag !== TAG_ONE_PASS || l.tag !== TAG_LITERAL || s.tag !== TAG_SIGNATURE) return undefined;
  const ops = nativeOps(o.body, keys);
  const off = binaryDataOffset(l.body);
  if (!ops || off === undefined) return undefined;
  const sig = readSignature(s.body);
  if (!sig) return undefined; // openpgp reports what is wrong with it
  const data = l.body.subarray(off);
  const hash = createHash(nativeHash(ops.hashAlgorithm)!.name).update(data);
  return { data, signatures: [check(ops, hash, { packet: sig, body: s.body }, keys)] };
}

export type SignedStream =
  | {
      kind: 'native';
      data: AsyncIterable<Uint8Array>;
      signatures: () => SignatureCheck[];
      /** The signer's key id from the One-Pass Signature, known before any data (not yet verified). */
      issuerKeyID: KeyID;
    }
  | { kind: 'other'; input: AsyncIterable<Uint8Array> };

/**
 * Reads the One-Pass Signature and the start of the Literal Data; if native, `data` streams the literal
 * data (hashing it) and checks what follows, and signatures() is valid once `data` was read to the end.
 */
export async function openSignedStream(input: AsyncIterable<Uint8Array>, keys: openpgp.PublicKey[]): Promise<SignedStream> {
  const reader = new ByteReader(input[Symbol.asyncIterator]());
  reader.startRecording();
  const other = (): SignedStream => ({ kind: 'other', input: reader.replay() });
  const h1 = await readPacketHead(reader);
  if (!h1 || h1.tag !== TAG_ONE_PASS || h1.length.kind !== 'fixed' || h1.length.n !== 13) return other();
  const ops = nativeOps(await reader.exact(13), keys);
  if (!ops) return other();
  const h2 = await readPacketHead(reader);
  if (!h2 || h2.tag !== TAG_LITERAL || h2.length.kind === 'rest') return other();
  const body = packetBody(reader, h2)[Symbol.asyncIterator]();
  const firsts: Uint8Array[] = [];
  let first: Uint8Array = new Uint8Array(0);
  let off: number | undefined;
  let ended = false;
  while (off === undefined && !ended) {
    const n = await body.next();
    if (n.done) ended = true;
    else {
      firsts.push(n.value);
      first = firsts.length === 1 ? n.value : Buffer.concat(firsts);
      if (first.length >= 2 && first[0] !== 0x62) return other();
      off = binaryDataOffset(first);
    }
  }
  if (off === undefined) return other(); // truncated literal header: openpgp reports it
  reader.stopRecording();

  const hash = createHash(nativeHash(ops.hashAlgorithm)!.name);
  let signature: { packet: openpgp.SignaturePacket | undefined; body: Uint8Array } | undefined;
  let done = false;
  async function* data(): AsyncGenerator<Uint8Array> {
    const rest = first.subarray(off);
    if (rest.length) {
      hash.update(rest);
      yield rest;
    }
    for (let n = await body.next(); !n.done; n = await body.next()) {
      hash.update(n.value);
      yield n.value;
    }
    const h3 = await readPacketHead(reader);
    // As openpgp: a missing Signature packet is a broken message (PACKET_DECRYPT), not a bad signature.
    if (!h3) throw new PgpFormatError('Missing trailing signature packets');
    if (h3.tag !== TAG_SIGNATURE || h3.length.kind !== 'fixed') throw new PgpFormatError(`unexpected packet (tag ${h3.tag}) after the literal data`);
    if (h3.length.n > MAX_SIGNATURE_PACKET_BYTES) throw new PgpFormatError(`signature packet of ${h3.length.n} bytes (at most ${MAX_SIGNATURE_PACKET_BYTES})`);
    const b = await reader.exact(h3.length.n);
    signature = { packet: readSignature(b), body: b };
    if (!(await reader.atEnd())) throw new PgpFormatError('data after the signature packet');
    done = true;
  }
  return {
    kind: 'native',
    data: data(),
    issuerKeyID: ops.issuerKeyID,
    signatures: () => {
      if (!done) throw new Error('signatures() before the end of the data');
      return [check(ops, hash, signature, keys)];
    },
  };
}

function readSignature(body: Uint8Array): openpgp.SignaturePacket | undefined {
  try {
    const sig = new openpgp.SignaturePacket();
    sig.read(body);
    return sig;
  } catch {
    return undefined;
  }
}

/** openpgp's verification result for the signature, computed natively. */
function check(ops: Ops, hash: Hash, sig: { packet: openpgp.SignaturePacket | undefined; body: Uint8Array } | undefined, keys: openpgp.PublicKey[]): SignatureCheck {
  const verified = verifyNow(ops, hash, sig, keys, new Date());
  verified.catch(() => undefined); // settled by the caller; never unhandled
  return { keyID: ops.issuerKeyID, verified };
}

async function verifyNow(
  ops: Ops,
  hash: Hash,
  sig: { packet: openpgp.SignaturePacket | undefined; body: Uint8Array } | undefined,
  keys: openpgp.PublicKey[],
  now: Date,
): Promise<true> {
  const key = keys.find((k) => k.getKeys(ops.issuerKeyID).length > 0);
  if (!key) throw new Error(`Could not find signing key with key ID ${ops.issuerKeyID.toHex()}`);
  const signingKey = key.getKeys(ops.issuerKeyID)[0]!;
  if (!sig) throw new Error('Corresponding signature packet missing');
  const s = sig.packet;
  if (!s) throw new Error('Unreadable signature packet');
  if (s.version !== 4 || s.signatureType !== ops.signatureType || s.hashAlgorithm !== ops.hashAlgorithm || s.publicKeyAlgorithm !== ops.publicKeyAlgorithm || !s.issuerKeyID.equals(ops.issuerKeyID)) {
    throw new Error('Corresponding signature packet does not match one-pass signature packet');
  }
  if (s.publicKeyAlgorithm !== signingKey.keyPacket.algorithm) throw new Error('Public key algorithm used to sign signature does not match issuer key algorithm.');
  const pub = ed25519PublicOf(signingKey.keyPacket);
  if (!pub) throw new Error('issuer key is not an Ed25519 key');
  const hashedLen = 6 + ((sig.body[4]! << 8) | sig.body[5]!);
  const digest = hash.update(sig.body.subarray(0, hashedLen)).update(v4Trailer(hashedLen)).digest();
  const rs = signatureRS(sig.body, hashedLen);
  if (s.signedHashValue![0] !== digest[0] || s.signedHashValue![1] !== digest[1]) throw new Error('Signed digest did not match');
  if (!rs || !verify(null, digest, pub, rs)) throw new Error('Signature verification failed');
  const created = s.created;
  if (!created) throw new Error('Signature has no creation time');
  if (created > now) throw new Error('Signature creation time is in the future');
  if (now >= s.getExpirationTime()) throw new Error('Signature is expired');
  for (const u of s.unknownSubpackets as { type: number; critical: boolean }[]) {
    if (u.critical) throw new Error(`Unknown critical signature subpacket type ${u.type}`);
  }
  for (const n of s.rawNotations) {
    if (n.critical && !openpgp.config.knownNotations.includes(n.name)) throw new Error(`Unknown critical notation: ${n.name}`);
  }
  if (s.revocationKeyClass !== null) throw new Error('This key is intended to be revoked with an authorized key, which OpenPGP.js does not support.');
  const valid = await signingKeyAt(key, signingKey.getKeyID(), created);
  if (!valid.ok) throw new Error(`Could not find valid signing key packet in key ${key.getKeyID().toHex()}: ${valid.error.message}`);
  return true;
}

/** R ‖ S (64 bytes) from the two MPIs after the subpackets and the hash prefix; undefined if malformed. */
function signatureRS(body: Uint8Array, hashedLen: number): Buffer | undefined {
  let p = hashedLen;
  if (p + 2 > body.length) return undefined;
  p += 2 + ((body[p]! << 8) | body[p + 1]!) + 2; // unhashed subpackets, hash prefix
  const out = Buffer.alloc(64);
  for (const at of [0, 32]) {
    if (p + 2 > body.length) return undefined;
    const n = (((body[p]! << 8) | body[p + 1]!) + 7) >> 3;
    p += 2;
    if (n > 32 || p + n > body.length) return undefined;
    out.set(body.subarray(p, p + n), at + 32 - n);
    p += n;
  }
  return p === body.length ? out : undefined;
}
