/**
 * The fast decode path: parses PKESK + SEIPD v1 framing itself, decrypts the session key natively for
 * our v4 Curve25519 keys (native/pkesk.ts; openpgp.decryptSessionKeys for other keys and whatever the
 * native code does not accept, so bad session keys fail exactly as before), decrypts and checks the
 * MDC with Node's native AES-CFB/SHA-1 (seipd.ts), inflates a Compressed Data packet with node:zlib
 * (inner-message.ts, inflate.ts), all on this thread or, for a large packet, on the decrypt worker
 * when given one and it is free (decrypt-offload.ts), and hands the inner one-pass-signed message on
 * for its signature to be checked (decode.ts). This is the only decryption there is: nothing is handed to
 * openpgp.decrypt, which decrypts, inflates and parses the inner packets itself, without the bounds
 * of this path (a 261 KB SEIPD v2 packet holding a 256 MiB "signature" made it allocate 267 MiB; anyone
 * with a node's PUBLIC key could build one). So SEIPD v2 / AEAD and ciphers other than AES are refused
 * before any of the encrypted data is decrypted: ferrypost keys advertise SEIPD v1 and AES only
 * (keys/generate.ts), ferrypost and GnuPG 2.2 write nothing else to them. A password session key
 * packet (SKESK) next to our PKESK is read (bounded) and ignored: we have no password.
 * Fails: FerryError PACKET_MALFORMED for those refused containers and ciphers ("… are not accepted",
 * detail.signatureChecked false); PgpFormatError / openpgp errors (the caller maps them to
 * PACKET_DECRYPT): not encrypted to a key (no PKESK, no encrypted data, no MDC), no session key for us,
 * MDC wrong or missing, truncated, trailing bytes, bad compressed data, ratio over 1100:1. Errors in the
 * encrypted part surface while the returned data stream is read, never as a clean end.
 */
import * as openpgp from 'openpgp';
import { FerryError } from '../errors/index.js';
import { ecdhDecryptorsFor } from './native/ecdh-keys.js';
import { openSessionKeyNative } from './native/pkesk.js';
import { isSlotReadable } from './decrypt-input.js';
import type { DecryptWorker } from './decrypt-offload.js';
import { innerMessage, mainThreadInflater, MAX_RATIO } from './inner-message.js';
import { ByteReader, packetBody, PgpFormatError, readPacketHead, type PacketHead } from './pgpstream.js';
import { nodeCipherFor, seipdV1Decrypt } from './seipd.js';

const TAG_PKESK = 1;
const TAG_SKESK = 3;
const TAG_SED = 9;
const TAG_MARKER = 10;
const TAG_SEIPD = 18;
const TAG_AEAD = 20;
/**
 * Encrypted data larger than this is decrypted on the decrypt worker when it is free. Below it the
 * hand-over costs more than it saves: a 4 KiB mail decrypts in microseconds.
 */
const WORKER_MIN_BYTES = 256 * 1024;
/**
 * Most session key packets (PKESK + SKESK) a packet may have. Ferrypost writes one (one recipient
 * node); GnuPG adds one per --recipient / --encrypt-to. Each costs an X25519 (and an openpgp.js try
 * when the native one fails): unbounded, 10,000 of them in a 1 MB packet took 4.6 s and 400 MB.
 */
export const MAX_PKESKS = 16;
/**
 * Longest session key packet read: a v3 Curve25519 PKESK is ~90 bytes, RSA-4096 ~530, RSA-16384
 * ~2,060, post-quantum (ML-KEM-1024 + X448) ~1,700. Checked before the body is allocated.
 */
export const MAX_PKESK_BYTES = 8 * 1024;

export interface NativeOpen {
  signed: AsyncIterable<Uint8Array>;
  integrityChecked: () => boolean;
  /**
   * For a caller that stopped reading `signed` early (the packet is refused already, but the MDC
   * still decides how): closes `signed` (which stops the inflater), then runs the rest of the
   * encrypted data through decryption and the integrity check only, without inflating it.
   * Rejects for the decryption's errors (MDC, truncation, trailing bytes).
   */
  drain: () => Promise<void>;
  /**
   * Closes `signed` when the caller gives up on the packet: ends a decrypt worker's job, which
   * would otherwise stay open and keep the worker busy. Never rejects.
   */
  close: () => Promise<void>;
}

export interface NativeOptions {
  /** Decrypts and inflates large packets on a worker thread when it is free (else on this thread). */
  decryptWorker?: DecryptWorker | undefined;
  /** The packet's size, if known: decides, with the SEIPD packet's length, whether it is large. */
  inputBytes?: number | undefined;
}

export async function openNative(input: AsyncIterable<Uint8Array>, decryptionKey: openpgp.PrivateKey, opts: NativeOptions = {}): Promise<NativeOpen> {
  const reader = new ByteReader(input[Symbol.asyncIterator]());
  const pkesks: Uint8Array[] = [];
  // OpenPGP says to ignore a Marker packet, and openpgp.js does. No ferrypost
  // packet has one: one put in changed the file, so it is refused like any other change.
  const noMarker = (h: Awaited<ReturnType<typeof readPacketHead>>): typeof h => {
    if (h?.tag === TAG_MARKER) throw new FerryError('PACKET_MALFORMED', 'the packet holds an OpenPGP Marker packet, which no ferrypost packet has');
    return h;
  };
  let head = noMarker(await readPacketHead(reader));
  // Every session key packet is read (bounded) here. SKESKs (a password) are ignored: we have none.
  let count = 0;
  let skesk = false;
  while (head && (head.tag === TAG_PKESK || head.tag === TAG_SKESK)) {
    const body = await sessionKeyPacket(reader, head, ++count);
    if (head.tag === TAG_PKESK) pkesks.push(body);
    else skesk = true;
    head = noMarker(await readPacketHead(reader));
  }
  if (!head) throw new PgpFormatError('no encrypted data in the packet');
  // A packet for another node is that (PACKET_DECRYPT), whatever its container: only one that may be
  // ours is judged by its shape.
  const requirePkesk = () => {
    if (pkesks.length === 0) throw new PgpFormatError(`no public-key session key packet (PKESK): the packet is not encrypted to a key${skesk ? ', only to a password' : ''}`);
  };
  const forUs = () => {
    requirePkesk();
    if (!pkesks.some((p) => mayBeForKey(p, decryptionKey))) throw new PgpFormatError('no session key for this node in the packet');
  };
  if (head.tag === TAG_AEAD) {
    forUs();
    throw notAccepted('AEAD Encrypted Data packets (LibrePGP OCB, as GnuPG 2.3+ writes to keys that ask for it) are not accepted: this node decodes SEIPD v1 only');
  }
  if (head.tag === TAG_SED) throw new PgpFormatError('encrypted data without integrity protection (Symmetrically Encrypted Data, no MDC) is not accepted');
  if (head.tag !== TAG_SEIPD) {
    throw new PgpFormatError(count === 0 ? `not an encrypted message (its first packet has tag ${head.tag})` : `no encrypted data after the session key packets (a packet of tag ${head.tag} follows them)`);
  }
  const body = packetBody(reader, head)[Symbol.asyncIterator]();
  const first = await body.next();
  if (first.done) throw new PgpFormatError('empty SEIPD packet');
  const version = first.value[0]!;
  if (version === 2) {
    forUs();
    throw notAccepted('SEIPD v2 (AEAD) packets are not accepted: this node decodes SEIPD v1 only');
  }
  if (version !== 1) throw new PgpFormatError(`SEIPD version ${version} is not supported`);
  requirePkesk();

  const sessionKey = openSessionKeyNative(pkesks, await ecdhDecryptorsFor(decryptionKey)) ?? (await openpgpSessionKey(pkesks, decryptionKey));
  if (!sessionKey?.algorithm) throw new PgpFormatError('no session key for this node in the packet');
  if (!nodeCipherFor(sessionKey.algorithm)) throw notAccepted(`packets encrypted with ${sessionKey.algorithm} are not accepted: this node decodes AES only`);

  async function* ciphertext(): AsyncGenerator<Uint8Array> {
    if (first.value!.length > 1) yield first.value!.subarray(1);
    for (let n = await body.next(); !n.done; n = await body.next()) yield n.value;
    if (!(await reader.atEnd())) throw new PgpFormatError('trailing bytes after the encrypted data');
  }
  const size = head.length.kind === 'fixed' ? head.length.n : (opts.inputBytes ?? Infinity);
  // A file reader that can read into the worker's input slots does so from here on (decrypt-input.ts).
  const source = isSlotReadable(input) ? input : undefined;
  const offloaded = size > WORKER_MIN_BYTES ? opts.decryptWorker?.open(sessionKey.algorithm, sessionKey.data, ciphertext(), MAX_RATIO, source) : undefined;
  if (offloaded) return offloaded;

  let verified = false;
  const plain = seipdV1Decrypt(sessionKey.algorithm, sessionKey.data, ciphertext(), () => (verified = true));
  const signed = innerMessage(plain, mainThreadInflater);
  const close = async (): Promise<void> => {
    await signed.return(undefined).catch(() => undefined);
  };
  // Without this, a refused packet was inflated to its end: up to MAX_RATIO times its size in CPU.
  // On this thread only the inner data's reader pulls `plain`, so a decryption error has reached the
  // caller before it could drain; had it not, `plain` would just end and the check be "not reached".
  const drain = async (): Promise<void> => {
    await close(); // stops and closes the inflater first
    for (let n = await plain.next(); !n.done; n = await plain.next());
  };
  return { signed, integrityChecked: () => verified, drain, close };
}

/**
 * A packet in a form ferrypost keys do not ask for, refused before any of its encrypted data is
 * decrypted (so its signature was not checked: it may be anyone's, not the peer's mistake).
 */
/**
 * Whether a PKESK body may hold a session key for `key`: a v3 PKESK naming one of its key ids (or the
 * wildcard id 0, as `gpg --throw-keyids` writes), a v6 PKESK naming one of its fingerprints (or none).
 */
function mayBeForKey(pkesk: Uint8Array, key: openpgp.PrivateKey): boolean {
  const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
  const keys = key.getKeys();
  if (pkesk[0] === 3 && pkesk.length >= 9) {
    const id = hex(pkesk.subarray(1, 9));
    return id === '0000000000000000' || keys.some((k) => k.getKeyID().toHex() === id);
  }
  if (pkesk[0] === 6 && pkesk.length >= 2) {
    const len = pkesk[1]!;
    if (len === 0) return true;
    const fpr = hex(pkesk.subarray(3, 2 + len));
    return keys.some((k) => k.getFingerprint() === fpr);
  }
  return false; // another version: no session key this node could open
}

function notAccepted(what: string): FerryError {
  return new FerryError('PACKET_MALFORMED', `${what} (signature not checked: refused before decryption)`, { detail: { signatureChecked: false } });
}

/** The `nth` session key packet's body, refused (PgpFormatError) past MAX_PKESKS or MAX_PKESK_BYTES. */
async function sessionKeyPacket(reader: ByteReader, head: PacketHead, nth: number): Promise<Uint8Array> {
  const what = head.tag === TAG_PKESK ? 'PKESK' : 'SKESK';
  if (nth > MAX_PKESKS) throw new PgpFormatError(`more than ${MAX_PKESKS} PKESK/SKESK packets`);
  // Partial lengths are for data packets only (RFC 4880 §4.2.2.4); an indeterminate one leaves no data.
  if (head.length.kind !== 'fixed') throw new PgpFormatError(`${what} with a ${head.length.kind} length`);
  if (head.length.n > MAX_PKESK_BYTES) throw new PgpFormatError(`${what} of ${head.length.n} bytes (at most ${MAX_PKESK_BYTES})`);
  return reader.exact(head.length.n);
}

/**
 * What openNative did before the native PKESK code: openpgp parses and decrypts the PKESKs, those for
 * one of our key ids or the wildcard id only (the others cannot be ours; openpgp.js would still look).
 */
async function openpgpSessionKey(bodies: Uint8Array[], decryptionKey: openpgp.PrivateKey): Promise<{ data: Uint8Array; algorithm: string | null } | undefined> {
  const ours = decryptionKey.getKeyIDs();
  const pkesks = new openpgp.PacketList<openpgp.AnyPacket>();
  for (const b of bodies) {
    const pkesk = new openpgp.PublicKeyEncryptedSessionKeyPacket();
    pkesk.read(b);
    const id = (pkesk as unknown as { publicKeyID: openpgp.KeyID }).publicKeyID; // parsed, not in openpgp's d.ts
    if (ours.some((k) => k.equals(id, true))) pkesks.push(pkesk); // true: the wildcard id matches too
  }
  const [sessionKey] = await openpgp.decryptSessionKeys({ message: new openpgp.Message(pkesks), decryptionKeys: decryptionKey });
  return sessionKey;
}
