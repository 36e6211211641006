/**
 * Packet decoder: decrypts and verifies a packet stream, checks the magic line and header, and streams
 * the payload (only) into a sink while hashing it. Memory stays bounded for any payload size: bytes
 * reach the sink BEFORE the MDC and the signature are known good (natively, and openpgp runs with
 * allowUnauthenticatedStream). Signatures by Ed25519 node keys are checked natively
 * (native/signature-verify.ts), anything else by openpgp. The promise resolves only once everything checked out and the sink has finished; on
 * rejection the sink is destroyed and its contents must be treated as garbage.
 * Fails with FerryError: PACKET_DECRYPT (not for us, corrupt, truncated, MDC, trailing bytes),
 * PACKET_UNKNOWN_SIGNER, PACKET_BAD_SIGNATURE (no, several or a failing signature), PACKET_VERSION,
 * PACKET_MALFORMED (magic, header, length, digest). A failing sink rejects with the sink's own error
 * (e.g. ENOSPC): that is a local problem, not a bad packet. Which error wins: a broken MDC over all
 * else; on the native streamed path (our own packets over 1 MiB) a packet refused part way (bad
 * header, payload past its claimed size, a signer that is not a peer, seen in the One-Pass Signature
 * before any payload) is then refused for that, its rest decrypted for the MDC but never inflated;
 * elsewhere it is read to its end and a bad signature wins over the content.
 */
import { createHash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import * as openpgp from 'openpgp';
import { FerryError, isFerryError } from '../errors/index.js';
import { MAX_RATIO, openNative, type NativeOpen } from './decrypt-native.js';
import { InflateWorkerFailure, type InflateWorker } from './inflate-offload.js';
import { PayloadFramer } from './framer.js';
import { MAX_HEADER_BYTES, type PacketHeader } from './header.js';
import { openSignedStream, verifyBuffer, type KeyID, type SignatureCheck } from './native/signature-verify.js';

export interface DecodeOptions {
  input: Readable; // the packet file bytes
  decryptionKey: openpgp.PrivateKey;
  verificationKeys: openpgp.PublicKey[]; // the configured peers' keys
  /**
   * Receives the payload bytes only, e.g. fs.createWriteStream(tmp). A function is called once, when
   * the header has been read and before any payload byte is written, so the caller can choose where
   * the payload goes from the header's claims (the receiver decodes a large message straight into its
   * Maildir temp file). That header is NOT authenticated yet: use it to pick a place, never to trust.
   */
  payloadSink: Writable | ((header: PacketHeader) => Writable | Promise<Writable>);
  maxHeaderBytes?: number; // default 65536
  /** Called with the size of each payload part as it goes to the sink (the daemon paces GC by it). */
  onPayloadBytes?: (n: number) => void;
  /** Inflates large compressed bodies on a worker thread when it is free (the daemon has one). */
  inflateWorker?: InflateWorker | undefined;
  /**
   * The packet's size in bytes, if known (the receiver knows it): openpgp.js, which decodes what the
   * native path does not (and can decompress bzip2), may then decompress at most 1100 times it, as
   * the native path allows. Unknown: no limit there.
   */
  inputBytes?: number | undefined;
}

export interface DecodedPacket {
  header: PacketHeader;
  /** Lowercase hex fingerprint of the PRIMARY key that signed. */
  signer: string;
}

/** Raised inside the read loop when the sink fails; passed through unchanged. */
class SinkFailure {
  constructor(readonly error: unknown) {}
}

export async function decodePacket(opts: DecodeOptions): Promise<DecodedPacket> {
  const sink = new SinkSlot(opts.payloadSink);
  try {
    const result = await decodeInto(opts, sink);
    await finishSink(await sink.get(result.header));
    return result;
  } catch (e) {
    sink.destroy();
    if (e instanceof SinkFailure) throw e.error;
    throw e;
  } finally {
    sink.dispose();
  }
}

/** The payload sink, given or made from the header on first use; watched for errors from then on. */
class SinkSlot {
  private state: SinkState | undefined;
  constructor(private readonly source: DecodeOptions['payloadSink']) {
    if (typeof source !== 'function') this.state = watchSink(source);
  }

  async get(header: PacketHeader): Promise<SinkState> {
    if (this.state) return this.state;
    const make = this.source as (h: PacketHeader) => Writable | Promise<Writable>;
    try {
      this.state = watchSink(await make(header));
    } catch (e) {
      throw new SinkFailure(e); // a local problem (e.g. cannot create the file), not a bad packet
    }
    return this.state;
  }

  destroy(): void {
    this.state?.sink.destroy();
  }

  dispose(): void {
    this.state?.dispose();
  }
}

async function decodeInto(opts: DecodeOptions, sink: SinkSlot): Promise<DecodedPacket> {
  let opened: Opened;
  try {
    opened = await open(opts);
  } catch (e) {
    opts.input.destroy();
    if (e instanceof InflateWorkerFailure) throw e; // a local problem, not a bad packet
    throw decryptError(e);
  }
  const framer = new PayloadFramer(opts.maxHeaderBytes ?? MAX_HEADER_BYTES);
  const reader = Symbol.asyncIterator in opened.data ? opened.data[Symbol.asyncIterator]() : opened.data[Symbol.iterator]();
  const hash = createHash('sha256');
  // A signer we do not know is known from the One-Pass Signature, before any payload reaches the sink.
  let contentError: FerryError | undefined = opened.drain && opened.issuerKeyID && !isKnownSigner(opened.issuerKeyID, opts.verificationKeys) ? unknownSigner(opened.issuerKeyID) : undefined;
  try {
    for (;;) {
      if (contentError && opened.drain) break; // drained below: the MDC still decides the error code
      const { value, done } = await reader.next();
      if (done) break;
      if (contentError) continue; // no drain (openpgp's path): the MDC and the signature decide the error code
      try {
        const parts = framer.push(value);
        if (parts.length === 0) continue;
        const out = await sink.get(framer.headerRead!);
        for (const part of parts) {
          hash.update(part);
          opts.onPayloadBytes?.(part.length);
          await out.write(part);
        }
      } catch (e) {
        if (e instanceof SinkFailure) throw e;
        if (!isFerryError(e)) throw e;
        contentError = e;
      }
    }
  } catch (e) {
    await Promise.resolve(reader.return?.(undefined)).catch(() => undefined);
    opts.input.destroy();
    await opened.close?.();
    if (e instanceof SinkFailure || e instanceof InflateWorkerFailure) throw e; // local problems, not bad packets
    throw decryptError(e);
  }
  if (contentError && opened.drain) {
    try {
      await opened.drain();
    } catch (e) {
      throw decryptError(e);
    } finally {
      opts.input.destroy(); // read to its end on success; closed either way
    }
    if (!opened.integrityChecked()) throw new FerryError('PACKET_DECRYPT', 'cannot decrypt packet: the integrity check was not reached');
    throw unverified(contentError); // the signature was not reached: the packet is refused for what was found first
  }
  if (!opened.integrityChecked()) {
    opts.input.destroy();
    await opened.close?.(); // unreachable on the native path (its data ends after the MDC); cheap insurance
    throw new FerryError('PACKET_DECRYPT', 'cannot decrypt packet: the integrity check was not reached');
  }

  const signer = await checkSignature(opened.signatures(), opts.verificationKeys);
  if (contentError) throw contentError;
  const header = framer.finish(); // PACKET_MALFORMED if the stream ended inside the magic or header
  if (framer.payloadBytes !== header.size) {
    throw new FerryError('PACKET_MALFORMED', `payload is ${framer.payloadBytes} bytes, header says ${header.size}`);
  }
  const digest = hash.digest('hex');
  if (digest !== header.sha256) {
    throw new FerryError('PACKET_MALFORMED', `payload sha256 is ${digest}, header says ${header.sha256}`);
  }
  return { header, signer };
}

interface Opened {
  data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  /** The signatures found; complete once `data` was read to the end. */
  signatures: () => SignatureCheck[];
  /** True once the MDC/AEAD tag was checked (openpgp.decrypt: it errors the data stream instead). */
  integrityChecked: () => boolean;
  /**
   * The native streamed path: finish the integrity check without reading `data` further (no inflation,
   * no signature), for a packet already refused. Elsewhere the refused packet is read to its end.
   */
  drain?: () => Promise<void>;
  /** The signer's key id as the One-Pass Signature claims it, where known before the data. */
  issuerKeyID?: KeyID;
  /** The native path: ends the decryption chain (and an inflate worker's job) when the decode gives up. */
  close?: () => Promise<void>;
}

/**
 * Native path for SEIPD v1 + AES (decrypt-native.ts) with the signature checked natively for our
 * Ed25519 keys (native/signature-verify.ts) or by openpgp.verify for anything else; other packets
 * through openpgp.decrypt, which streams (allowUnauthenticatedStream) and checks the MDC/AEAD tag at
 * the end of the data stream.
 */
async function open(opts: DecodeOptions): Promise<Opened> {
  const native = await openNative(opts.input, opts.decryptionKey, { inflateWorker: opts.inflateWorker });
  if (native.kind !== 'native') return openOther(opts, native.input);
  try {
    return { ...(await openSigned(opts, native)), close: native.close };
  } catch (e) {
    opts.input.destroy(); // first: closing may wait for a read openpgp left pending
    await native.close();
    throw e;
  }
}

/** The native path: SEIPD v1 + AES decrypted here; the signature natively, or by openpgp.verify. */
async function openSigned(opts: DecodeOptions, native: Extract<NativeOpen, { kind: 'native' }>): Promise<Opened> {
  const keys = opts.verificationKeys;
  const integrityChecked = native.integrityChecked;
  // Small messages (most mail): verify from one buffer, no stream machinery. Reading to the end
  // first also means the MDC has already been checked.
  const head = await collectUpTo(native.signed, SMALL_MESSAGE_BYTES);
  if (head.complete) {
    const mine = verifyBuffer(head.bytes, keys);
    if (mine) return { data: [mine.data], signatures: () => mine.signatures, integrityChecked };
    const message = await openpgp.readMessage({ binaryMessage: head.bytes });
    const verified = await openpgp.verify({ message, verificationKeys: keys, format: 'binary', expectSigned: false, config: openpgpLimits(opts) });
    return { data: [verified.data as Uint8Array], signatures: settled(verified.signatures), integrityChecked };
  }
  const signed = await openSignedStream(head.rest, keys);
  if (signed.kind === 'native') return { data: signed.data, signatures: signed.signatures, integrityChecked, drain: native.drain, issuerKeyID: signed.issuerKeyID };
  const message = await openpgp.readMessage({ binaryMessage: pullStream(signed.input) });
  const verified = await openpgp.verify({ message, verificationKeys: keys, format: 'binary', expectSigned: false, config: openpgpLimits(opts) });
  return { data: verified.data as unknown as AsyncIterable<Uint8Array>, signatures: settled(verified.signatures), integrityChecked };
}

/** Anything the native path does not handle: openpgp.decrypt, streaming. */
async function openOther(opts: DecodeOptions, input: AsyncIterable<Uint8Array>): Promise<Opened> {
  const keys = opts.verificationKeys;
  const message = await openpgp.readMessage({ binaryMessage: pullStream(input) });
  const decrypted = await openpgp.decrypt({
    message,
    decryptionKeys: opts.decryptionKey,
    verificationKeys: keys,
    format: 'binary',
    expectSigned: false, // checked after the data has been read to the end
    config: { allowUnauthenticatedStream: true, ...openpgpLimits(opts) },
  });
  return { data: decrypted.data as unknown as AsyncIterable<Uint8Array>, signatures: settled(decrypted.signatures), integrityChecked: () => true };
}

/** The native path's 1100:1 decompression limit (decrypt-native.ts), for openpgp.js. */
function openpgpLimits(opts: DecodeOptions): { maxDecompressedMessageSize?: number } {
  return opts.inputBytes === undefined ? {} : { maxDecompressedMessageSize: MAX_RATIO * opts.inputBytes + (1 << 20) };
}

/** openpgp's results; their promises settle only after the data is read: never leave them unhandled. */
function settled(signatures: VerificationResult[]): () => SignatureCheck[] {
  for (const s of signatures) {
    s.verified.catch(() => undefined);
    s.signature.catch(() => undefined);
  }
  return () => signatures;
}

/** Signed messages up to this size are verified from one buffer. */
const SMALL_MESSAGE_BYTES = 1 << 20;

/** Reads up to `limit` bytes; complete if the input ended within them, else `rest` replays everything. */
async function collectUpTo(
  input: AsyncIterable<Uint8Array>,
  limit: number,
): Promise<{ complete: true; bytes: Uint8Array } | { complete: false; rest: AsyncIterable<Uint8Array> }> {
  const it = input[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const n = await it.next();
    if (n.done) return { complete: true, bytes: Buffer.concat(chunks, size) };
    chunks.push(n.value);
    size += n.value.length;
    if (size > limit) break;
  }
  async function* rest(): AsyncGenerator<Uint8Array> {
    yield* chunks;
    for (let n = await it.next(); !n.done; n = await it.next()) yield n.value;
  }
  return { complete: false, rest: rest() };
}

/**
 * Bytes → web ReadableStream that reads only when pulled. (Readable.toWeb on Node 20 reads ahead
 * without limit when the consumer is slower than the file, e.g. while inflating: a 300 MiB packet
 * then sat in memory.)
 */
function pullStream(input: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const it = input[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const { value, done } = await it.next();
        if (done) controller.close();
        else if (value instanceof Uint8Array) controller.enqueue(value);
        else controller.error(new TypeError('packet input must yield bytes, not strings'));
      },
      async cancel() {
        await it.return?.(undefined);
      },
    },
    { highWaterMark: 0 },
  );
}

type VerificationResult = Awaited<ReturnType<typeof openpgp.decrypt>>['signatures'][number];

/** Exactly one signature, by a key among verificationKeys, that verifies. Returns the primary fingerprint. */
async function checkSignature(signatures: SignatureCheck[], keys: openpgp.PublicKey[]): Promise<string> {
  if (signatures.length !== 1) {
    const what = signatures.length === 0 ? 'the packet is not signed' : `the packet has ${signatures.length} signatures`;
    throw new FerryError('PACKET_BAD_SIGNATURE', `${what}; exactly one signature by a peer node key is required`);
  }
  const sig = signatures[0]!;
  const keyId = sig.keyID.toHex();
  const key = keys.find((k) => k.getKeys(sig.keyID).length > 0);
  if (!key) throw unknownSigner(sig.keyID);
  const signer = key.getFingerprint().toLowerCase();
  try {
    if ((await sig.verified) !== true) throw new Error('verification did not return true');
  } catch (e) {
    throw new FerryError('PACKET_BAD_SIGNATURE', `signature by ${signer} (key id ${keyId}) does not verify: ${messageOf(e)}`, {
      cause: e,
      detail: { keyId, signer },
    });
  }
  return signer;
}

/** A refusal made before the signature could be checked: say so, so that nobody reads it as the peer's fault. */
function unverified(e: FerryError): FerryError {
  if (e.code === 'PACKET_UNKNOWN_SIGNER') return e;
  return new FerryError(e.code, `${e.message} (signature not checked: refused part way through)`, { cause: e, detail: { ...e.detail, signatureChecked: false } });
}

function isKnownSigner(keyID: KeyID, keys: openpgp.PublicKey[]): boolean {
  return keys.some((k) => k.getKeys(keyID).length > 0);
}

function unknownSigner(keyID: KeyID): FerryError {
  const keyId = keyID.toHex();
  return new FerryError('PACKET_UNKNOWN_SIGNER', `packet is signed by key id ${keyId}, which is not a configured peer key`, { detail: { keyId } });
}

function decryptError(e: unknown): FerryError {
  if (isFerryError(e)) return e;
  return new FerryError('PACKET_DECRYPT', `cannot decrypt packet: ${messageOf(e)}`, { cause: e });
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

interface SinkState {
  readonly sink: Writable;
  write(chunk: Uint8Array): Promise<void>;
  failure(): unknown;
  dispose(): void;
}

/** Tracks the sink's 'error' from the start (an unlistened 'error' would crash the process). */
function watchSink(sink: Writable): SinkState {
  let error: unknown;
  let failed = false;
  const onError = (e: unknown): void => {
    if (!failed) {
      failed = true;
      error = e;
    }
  };
  sink.on('error', onError);
  return {
    sink,
    failure: () => (failed ? error : undefined),
    async write(chunk) {
      if (failed) throw new SinkFailure(error);
      if (sink.write(chunk)) return;
      await new Promise<void>((resolve, reject) => {
        const done = (e?: unknown): void => {
          sink.off('drain', onDrain);
          sink.off('error', onErr);
          sink.off('close', onClose);
          if (e === undefined) resolve();
          else reject(new SinkFailure(e));
        };
        const onDrain = (): void => done();
        const onErr = (e: unknown): void => done(e);
        const onClose = (): void => done(error ?? new Error('payload sink closed before the payload was written'));
        sink.on('drain', onDrain);
        sink.on('error', onErr);
        sink.on('close', onClose);
      });
    },
    // Keep a no-op listener so a late 'error' (e.g. from destroy) cannot crash the process.
    dispose: () => {
      sink.off('error', onError);
      sink.on('error', () => undefined);
    },
  };
}

async function finishSink(state: SinkState): Promise<void> {
  const { sink } = state;
  if (state.failure() !== undefined) throw new SinkFailure(state.failure());
  await new Promise<void>((resolve, reject) => {
    sink.once('finish', () => resolve());
    sink.once('error', (e) => reject(new SinkFailure(e)));
    sink.end();
  });
}
