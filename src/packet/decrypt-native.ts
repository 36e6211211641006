/**
 * The fast decode path: parses PKESK + SEIPD v1 framing itself, decrypts the session key natively for
 * our v4 Curve25519 keys (native/pkesk.ts; openpgp.decryptSessionKeys for other keys and whatever the
 * native code does not accept, so bad session keys fail exactly as before), decrypts and checks the
 * MDC with Node's native AES-CFB/SHA-1 (seipd.ts), inflates a Compressed Data packet with node:zlib
 * on this thread (inflate.ts) or, when large and given one, on the inflate worker (inflate-offload.ts), and hands the inner one-pass-signed message on for its signature to be
 * checked (decode.ts). Anything else (SEIPD v2, non-AES, SKESK, other packets) is handed back untouched for the openpgp.decrypt path (decode.ts, openOther).
 * Fails: PgpFormatError / openpgp errors (the caller maps them to PACKET_DECRYPT): no session key for
 * us, MDC wrong or missing, truncated, trailing bytes, bad compressed data, ratio over 1100:1. Errors in
 * the encrypted part surface while the returned data stream is read, never as a clean end.
 */
import type { Readable } from 'node:stream';
import { inflateRawSync, inflateSync } from 'node:zlib';
import * as openpgp from 'openpgp';
import { ecdhDecryptorsFor } from './native/ecdh-keys.js';
import { openSessionKeyNative } from './native/pkesk.js';
import { SyncInflater } from './inflate.js';
import type { InflateWorker } from './inflate-offload.js';
import { ByteReader, packetBody, PgpFormatError, readPacketHead } from './pgpstream.js';
import { nodeCipherFor, seipdV1Decrypt } from './seipd.js';

const TAG_PKESK = 1;
const TAG_COMPRESSED = 8;
const TAG_SEIPD = 18;
/** deflate cannot exceed ~1032:1; more than this is a decompression bomb, not a packet. */
export const MAX_RATIO = 1100;

export type NativeOpen =
  | {
      kind: 'native';
      signed: AsyncIterable<Uint8Array>;
      integrityChecked: () => boolean;
      /**
       * For a caller that stopped reading `signed` early (the packet is refused already, but the MDC
       * still decides how): closes `signed` (which stops the inflater and waits for an inflate
       * worker's pending read), then runs the rest of the encrypted data through decryption and the
       * integrity check only, without inflating it. Rejects as reading would (MDC, truncation,
       * trailing bytes).
       */
      drain: () => Promise<void>;
      /**
       * Closes `signed` when the caller gives up on the packet: ends an inflate worker's job, which
       * would otherwise stay open and keep the worker busy. Never rejects.
       */
      close: () => Promise<void>;
    }
  | { kind: 'other'; input: AsyncIterable<Uint8Array> };

export interface NativeOptions {
  /** Inflates large compressed bodies on a worker thread when it is free (else on this thread). */
  inflateWorker?: InflateWorker | undefined;
}

export async function openNative(input: Readable, decryptionKey: openpgp.PrivateKey, opts: NativeOptions = {}): Promise<NativeOpen> {
  const reader = new ByteReader(input[Symbol.asyncIterator]());
  reader.startRecording();
  const other = (): NativeOpen => ({ kind: 'other', input: reader.replay() });
  const pkesks: Uint8Array[] = [];
  let head = await readPacketHead(reader);
  while (head && head.tag === TAG_PKESK && head.length.kind === 'fixed') {
    pkesks.push(await reader.exact(head.length.n));
    head = await readPacketHead(reader);
  }
  if (!head || head.tag !== TAG_SEIPD || pkesks.length === 0) return other();
  const body = packetBody(reader, head)[Symbol.asyncIterator]();
  const first = await body.next();
  if (first.done || first.value[0] !== 1) return other();

  const sessionKey = openSessionKeyNative(pkesks, await ecdhDecryptorsFor(decryptionKey)) ?? (await openpgpSessionKey(pkesks, decryptionKey));
  if (!sessionKey?.algorithm || !nodeCipherFor(sessionKey.algorithm)) return other();
  reader.stopRecording();

  async function* ciphertext(): AsyncGenerator<Uint8Array> {
    if (first.value!.length > 1) yield first.value!.subarray(1);
    for (let n = await body.next(); !n.done; n = await body.next()) yield n.value;
    if (!(await reader.atEnd())) throw new PgpFormatError('trailing bytes after the encrypted data');
  }
  let verified = false;
  // The first error of the decryption (truncated, trailing bytes, MDC), whoever read it: an inflate
  // worker's pump may have, and then given it up when the job was closed.
  let failure: { error: unknown } | undefined;
  const plain = recordingError(seipdV1Decrypt(sessionKey.algorithm, sessionKey.data, ciphertext(), () => (verified = true)), (error) => (failure ??= { error }));
  const signed = innerMessage(plain, opts.inflateWorker);
  const close = async (): Promise<void> => {
    await signed.return(undefined).catch(() => undefined);
  };
  // Without this, a refused packet was inflated to its end: up to MAX_RATIO times its size in CPU.
  const drain = async (): Promise<void> => {
    await close(); // stops and closes the inflater first
    if (failure) throw failure.error;
    for (let n = await plain.next(); !n.done; n = await plain.next());
  };
  return { kind: 'native', signed, integrityChecked: () => verified, drain, close };
}

async function* recordingError(source: AsyncGenerator<Uint8Array>, onError: (e: unknown) => void): AsyncGenerator<Uint8Array> {
  try {
    yield* source;
  } catch (e) {
    onError(e);
    throw e;
  }
}

/** What openNative did before the native PKESK code: openpgp parses and decrypts the PKESKs. */
async function openpgpSessionKey(bodies: Uint8Array[], decryptionKey: openpgp.PrivateKey): Promise<{ data: Uint8Array; algorithm: string | null } | undefined> {
  const pkesks = new openpgp.PacketList<openpgp.AnyPacket>();
  for (const b of bodies) {
    const pkesk = new openpgp.PublicKeyEncryptedSessionKeyPacket();
    pkesk.read(b);
    pkesks.push(pkesk);
  }
  const [sessionKey] = await openpgp.decryptSessionKeys({ message: new openpgp.Message(pkesks), decryptionKeys: decryptionKey });
  return sessionKey;
}

/** The decrypted packets, with one Compressed Data packet (if present) inflated. */
async function* innerMessage(plain: AsyncIterable<Uint8Array>, worker: InflateWorker | undefined): AsyncGenerator<Uint8Array> {
  const pr = new ByteReader(plain[Symbol.asyncIterator]());
  pr.startRecording();
  const head = await readPacketHead(pr);
  if (!head) throw new PgpFormatError('the encrypted data is empty');
  if (head.tag !== TAG_COMPRESSED) {
    yield* pr.replay();
    return;
  }
  pr.stopRecording();
  const body = packetBody(pr, head, INFLATE_CHUNK)[Symbol.asyncIterator]();
  const first = await body.next();
  if (first.done) throw new PgpFormatError('empty compressed data packet');
  async function* compressed(): AsyncGenerator<Uint8Array> {
    if (first.value!.length > 1) yield first.value!.subarray(1);
    for (let n = await body.next(); !n.done; n = await body.next()) yield n.value;
  }
  yield* inflate(first.value[0]!, compressed(), worker);
  // Reading to the end runs the MDC check; nothing may follow the compressed packet.
  if (!(await pr.atEnd())) throw new PgpFormatError('data after the compressed data packet');
}

/**
 * Compressed bodies up to this size are inflated by one synchronous call when their output fits
 * SYNC_INFLATE_MAX_OUT: a streaming inflate costs a thread-pool round trip per chunk (dispatch alone
 * is 0.1-0.3 ms of the main thread here, gVisor), far more than inflating a 4 KiB mail. Larger
 * bodies, or output beyond the cap, are inflated slice by slice (inflateStream: bounded memory).
 */
const SYNC_INFLATE_MAX_IN = 256 * 1024;
const SYNC_INFLATE_MAX_OUT = 4 * 1024 * 1024;

async function* inflate(algo: number, compressed: AsyncIterable<Uint8Array>, worker: InflateWorker | undefined): AsyncGenerator<Uint8Array> {
  if (algo === 0) {
    yield* compressed;
    return;
  }
  if (algo !== 1 && algo !== 2) throw new PgpFormatError(`unsupported compression algorithm ${algo}`);
  const it = compressed[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let headBytes = 0;
  let done = false;
  while (headBytes <= SYNC_INFLATE_MAX_IN) {
    const n = await it.next();
    if (n.done) {
      done = true;
      break;
    }
    head.push(n.value);
    headBytes += n.value.length;
  }
  if (done) {
    const whole = head.length === 1 ? head[0]! : Buffer.concat(head);
    const out = inflateWhole(algo, whole);
    if (out) {
      if (out.length) yield out;
      return;
    }
  }
  async function* all(): AsyncGenerator<Uint8Array> {
    yield* head;
    if (!done) for (let n = await it.next(); !n.done; n = await it.next()) yield n.value;
  }
  const body = all();
  yield* worker ? worker.inflate(algo, body, MAX_RATIO, () => inflateStream(algo, body)) : inflateStream(algo, body);
}

/** The whole output, or undefined if it would exceed SYNC_INFLATE_MAX_OUT (the caller streams). */
function inflateWhole(algo: number, input: Uint8Array): Buffer | undefined {
  const bound = MAX_RATIO * input.length + (1 << 20);
  try {
    return (algo === 2 ? inflateSync : inflateRawSync)(input, { maxOutputLength: Math.min(bound, SYNC_INFLATE_MAX_OUT) });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE') throw err;
    if (bound <= SYNC_INFLATE_MAX_OUT) throw new PgpFormatError(`compressed data expands more than ${MAX_RATIO}:1`);
    return undefined;
  }
}

/**
 * Inflated output buffers of this size; the compressed body is read in slices of the same size.
 * 16 KiB measured best on a 100 MiB packet (bench/large-message.mjs): 64 and 256 KiB were no faster
 * and raised the receiver's peak RSS from 107 to 124-127 MiB (the 128 MiB target): larger fresh
 * Buffers pile up between scavenges and come from pages the process then keeps.
 */
const INFLATE_CHUNK = 16 * 1024;

/** Larger bodies: inflated on this thread, one slice at a time (inflate.ts says why). */
async function* inflateStream(algo: 1 | 2, compressed: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const z = new SyncInflater(algo, { outChunk: INFLATE_CHUNK, maxRatio: MAX_RATIO });
  try {
    for await (const c of compressed) yield* z.push(c);
    yield* z.end();
  } finally {
    z.close();
  }
}
