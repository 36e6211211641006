/**
 * Packet encoder: magic line + header JSON line + payload → one-pass signed literal data ('b', empty
 * file name; natively for Ed25519 node keys (native/signature-encode.ts), else openpgp.sign) → zlib
 * (node:zlib, only if it pays: see chooseLevel; streamed payloads in parallel blocks: pdeflate.ts) →
 * SEIPD v1 + MDC with Node's native AES-256-CFB (seipd.ts), the session key encrypted to the recipient
 * natively for v4 Curve25519 keys (native/pkesk.ts), by openpgp.encryptSessionKey otherwise. Keys of
 * other versions (v6) go through openpgp.encrypt (encode-openpgp.ts), SEIPD v1 there too. Small Uint8Array
 * payloads are done in memory without stream machinery; others stream and memory does not grow with
 * the payload.
 * Fails: invalid header (PACKET_MALFORMED), bad level or header too big (INTERNAL) before any output;
 * a payload whose length or SHA-256 differs from the header, or a payload stream that errors, makes
 * the returned stream emit 'error' (INTERNAL) instead of 'end', so a caller writing it to a temp file
 * never renames it into place.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { deflateSync } from 'node:zlib';
import * as openpgp from 'openpgp';
import { FerryError } from '../errors/index.js';
import { encryptWithOpenpgp } from './encode-openpgp.js';
import { MAX_HEADER_BYTES, magicLine, parseHeader, type PacketHeader } from './header.js';
import { ecdhRecipientFor } from './native/ecdh-keys.js';
import { encryptSessionKeyNative } from './native/pkesk.js';
import { nativeSignerFor, signInMemory, signStreaming } from './native/signature-encode.js';
import { parallelZlib } from './pdeflate.js';
import { framePacket, packetHeader } from './pgpstream.js';
import { plaintextSource } from './plaintext.js';
import { seipdV1Encrypt, seipdV1EncryptSync } from './seipd.js';

export interface EncodeOptions {
  header: PacketHeader; // size and sha256 already filled by the caller
  payload: Readable | Uint8Array; // exactly header.size bytes
  signingKey: openpgp.PrivateKey; // decrypted
  encryptionKey: openpgp.PublicKey;
  compressionLevel: number; // 0..9; 0 = no compression; a maximum: see chooseLevel
  /** Streamed payloads: called with the size of each payload chunk as it is read (the daemon paces GC by it). */
  onPayloadBytes?: (n: number) => void;
}

/** Compress only if a sample deflates to at most this fraction of its size. */
export const COMPRESS_IF_RATIO_BELOW = 0.9;
/** Bytes of payload sampled to decide (streamed payloads). */
export const SAMPLE_BYTES = 128 * 1024;
/** Uint8Array payloads up to this size are encoded in memory, in one go. */
const IN_MEMORY_MAX = 1024 * 1024;
const TAG_COMPRESSED = 8;
const TAG_SEIPD = 18;
const ZLIB = 2;
const SESSION_ALGO = 'aes256';
/**
 * The sender's hash preference passed to openpgp. For Ed25519 (EdDSA legacy) keys openpgp still picks
 * SHA-512, the curve's hash (see native/signature-encode.ts preferredHashFor); it applies to other keys.
 */
const SIGN_CONFIG = { preferredHashAlgorithm: openpgp.enums.hash.sha256 };

export async function encodePacket(opts: EncodeOptions): Promise<Readable> {
  const header = parseHeader(opts.header);
  const level = opts.compressionLevel;
  if (!Number.isInteger(level) || level < 0 || level > 9) {
    throw new FerryError('INTERNAL', `compression level must be an integer 0..9, got ${level}`);
  }
  const headerJson = JSON.stringify(header);
  const headerBytes = Buffer.byteLength(headerJson, 'utf8');
  if (headerBytes > MAX_HEADER_BYTES) {
    throw new FerryError('INTERNAL', `packet header is ${headerBytes} bytes, the limit is ${MAX_HEADER_BYTES} (too many recipients?)`);
  }
  const prefix = Buffer.from(`${magicLine()}${headerJson}\n`, 'utf8');
  const native = wantsSeipdV1(opts.encryptionKey);
  if (native && opts.payload instanceof Uint8Array && opts.payload.length <= IN_MEMORY_MAX) {
    return encodeInMemory(opts, header, prefix, opts.payload);
  }

  const plaintext = plaintextSource(prefix, opts.payload, header, opts.onPayloadBytes);
  const useLevel = level === 0 ? 0 : chooseLevel(Buffer.concat([prefix, await plaintext.sample(SAMPLE_BYTES)]), level);
  if (!native) {
    const literal = await openpgp.createMessage({ binary: plaintext.stream, format: 'binary', filename: '' });
    const signed = await openpgp.sign({ message: literal, signingKeys: opts.signingKey, format: 'object', config: SIGN_CONFIG });
    return guarded(await encryptWithOpenpgp(signed, opts.encryptionKey, useLevel), plaintext.failure);
  }
  const sessionKey = randomBytes(32);
  const pkesk = await encryptSessionKey(sessionKey, opts.encryptionKey);
  const signed = await signStream(opts.signingKey, plaintext.stream);
  const inner = useLevel === 0 ? signed : framePacket(TAG_COMPRESSED, deflated(signed, useLevel));
  async function* packet(): AsyncGenerator<Uint8Array> {
    yield pkesk;
    yield* framePacket(TAG_SEIPD, seipdV1Encrypt(SESSION_ALGO, sessionKey, inner));
    const failure = plaintext.failure();
    if (failure) throw failure; // the consumer gets 'error', never 'end'
  }
  return Readable.from(packet(), { objectMode: false });
}

/**
 * The level to use: `level` if a deflate of the sample at that level is at most 0.9 of its size,
 * else 0 (store): compressed attachments and encrypted data do not shrink, so deflating them only
 * costs CPU and adds bytes. A sender choice; receivers handle both.
 */
export function chooseLevel(sample: Uint8Array, level: number): number {
  if (level === 0 || sample.length === 0) return 0;
  return deflateSync(sample, { level }).length <= COMPRESS_IF_RATIO_BELOW * sample.length ? level : 0;
}

/**
 * v4 recipient keys get the native SEIPD v1 path, whatever features they advertise: ferrypost's decoder
 * accepts SEIPD v1 only (AEAD is refused before decryption, docs/packet-format.md), and every OpenPGP
 * implementation reads v1. Other key versions go through openpgp.encrypt, also held to v1 there.
 */
function wantsSeipdV1(key: openpgp.PublicKey): boolean {
  return key.keyPacket.version === 4;
}

/** The PKESK: natively for v4 cv25519 keys (native/pkesk.ts), by openpgp for any other kind of key. */
async function encryptSessionKey(sessionKey: Uint8Array, key: openpgp.PublicKey): Promise<Uint8Array> {
  const recipient = await ecdhRecipientFor(key);
  if (recipient) return encryptSessionKeyNative(SESSION_ALGO, sessionKey, recipient);
  return (await openpgp.encryptSessionKey({ data: sessionKey, algorithm: SESSION_ALGO, encryptionKeys: key, format: 'binary' })) as Uint8Array;
}

/** Everything in memory, no streams: the 4 KiB mail case. */
async function encodeInMemory(opts: EncodeOptions, header: PacketHeader, prefix: Buffer, payload: Uint8Array): Promise<Readable> {
  const digest = createHash('sha256').update(payload).digest('hex');
  if (payload.length !== header.size || digest !== header.sha256) {
    const msg = `payload does not match its header: ${payload.length} bytes sha256 ${digest}, header says ${header.size} bytes sha256 ${header.sha256}`;
    return erroring(new FerryError('INTERNAL', msg));
  }
  const sessionKey = randomBytes(32);
  const [pkesk, signed] = await Promise.all([encryptSessionKey(sessionKey, opts.encryptionKey), signBuffers(opts.signingKey, [prefix, payload])]);
  let inner: Uint8Array = signed;
  if (opts.compressionLevel > 0) {
    const z = deflateSync(signed, { level: opts.compressionLevel });
    if (z.length + 1 <= COMPRESS_IF_RATIO_BELOW * signed.length) {
      inner = Buffer.concat([packetHeader(TAG_COMPRESSED, z.length + 1), Uint8Array.of(ZLIB), z]);
    }
  }
  const body = seipdV1EncryptSync(SESSION_ALGO, sessionKey, inner);
  return Readable.from([Buffer.concat([pkesk, packetHeader(TAG_SEIPD, body.length), body])], { objectMode: false });
}

/** One-pass signed literal data for a few buffers: natively for our Ed25519 keys, else openpgp.sign. */
async function signBuffers(key: openpgp.PrivateKey, data: Uint8Array[]): Promise<Uint8Array> {
  const now = new Date();
  const signer = await nativeSignerFor(key, now, SIGN_CONFIG.preferredHashAlgorithm);
  if (signer) return signInMemory(signer, data, now);
  const message = await openpgp.createMessage({ binary: Buffer.concat(data), format: 'binary', filename: '', date: now });
  return openpgp.sign({ message, signingKeys: key, format: 'binary', config: SIGN_CONFIG, date: now });
}

/** The same, streamed. */
async function signStream(key: openpgp.PrivateKey, data: ReadableStream<Uint8Array>): Promise<AsyncIterable<Uint8Array>> {
  const now = new Date();
  const signer = await nativeSignerFor(key, now, SIGN_CONFIG.preferredHashAlgorithm);
  if (signer) return signStreaming(signer, data as unknown as AsyncIterable<Uint8Array>, now);
  const message = await openpgp.createMessage({ binary: data, format: 'binary', filename: '', date: now });
  return (await openpgp.sign({ message, signingKeys: key, format: 'binary', config: SIGN_CONFIG, date: now })) as unknown as AsyncIterable<Uint8Array>;
}

/**
 * The Compressed Data packet body: algorithm octet, then the zlib stream, compressed in blocks on the
 * libuv pool (pdeflate.ts): one zlib stream on one core was the sender's bottleneck on large messages.
 */
async function* deflated(signed: AsyncIterable<Uint8Array>, level: number): AsyncGenerator<Uint8Array> {
  yield Uint8Array.of(ZLIB);
  yield* parallelZlib(signed, level);
}

function erroring(e: Error): Readable {
  return new Readable({
    read() {
      this.destroy(e);
    },
  });
}

/** Passes the encrypted bytes through and errors at the end (instead of ending) if the source failed. */
function guarded(encrypted: Readable, failure: () => Error | undefined): Readable {
  async function* pass(): AsyncGenerator<Uint8Array> {
    yield* encrypted as AsyncIterable<Uint8Array>;
    const f = failure();
    if (f) throw f;
  }
  return Readable.from(pass(), { objectMode: false });
}
