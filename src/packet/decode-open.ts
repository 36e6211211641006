/**
 * Opening a packet for the decoder (decode.ts): decrypted on the native path (decrypt-native.ts,
 * which refuses what it does not decode: nothing goes to openpgp.decrypt), the signature checked
 * natively or by openpgp.verify, as one `Opened`: the signed data to read, and what to check once it
 * was read.
 */
import * as openpgp from 'openpgp';
import type { DecodeOptions } from './decode.js';
import { openNative, type NativeOpen } from './decrypt-native.js';
import { MAX_RATIO } from './inner-message.js';
import { guardedForOpenpgp, InnerPacketGuard } from './openpgp-guard.js';
import { openSignedStream, verifyBuffer, type KeyID, type SignatureCheck } from './native/signature-verify.js';

export interface Opened {
  data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  /** The signatures found; complete once `data` was read to the end. */
  signatures: () => SignatureCheck[];
  /** True once the MDC was checked. */
  integrityChecked: () => boolean;
  /**
   * The streamed path with the native signature check: finish the integrity check without reading
   * `data` further (no inflation, no signature), for a packet already refused. Elsewhere (openpgp.verify)
   * the refused packet is read to its end.
   */
  drain?: () => Promise<void>;
  /** The signer's key id as the One-Pass Signature claims it, where known before the data. */
  issuerKeyID?: KeyID;
  /** Ends the decryption chain (and a decrypt worker's job) when the decode gives up. */
  close?: () => Promise<void>;
}

/**
 * PKESK + SEIPD v1 + AES decrypted natively (decrypt-native.ts; anything else is refused there) with
 * the signature checked natively for our Ed25519 keys (native/signature-verify.ts) or by openpgp.verify
 * for anything else.
 */
export async function open(opts: DecodeOptions): Promise<Opened> {
  const native = await openNative(opts.input, opts.decryptionKey, { decryptWorker: opts.decryptWorker, inputBytes: opts.inputBytes });
  try {
    return { ...(await openSigned(opts, native)), close: native.close };
  } catch (e) {
    opts.input.destroy(); // first: closing may wait for a read openpgp left pending
    await native.close();
    throw e;
  }
}

/** The native path: SEIPD v1 + AES decrypted here; the signature natively, or by openpgp.verify. */
async function openSigned(opts: DecodeOptions, native: NativeOpen): Promise<Opened> {
  const keys = opts.verificationKeys;
  const integrityChecked = native.integrityChecked;
  // Small messages (most mail): verify from one buffer, no stream machinery. Reading to the end
  // first also means the MDC has already been checked.
  const head = await collectUpTo(native.signed, SMALL_MESSAGE_BYTES);
  if (head.complete) {
    const mine = verifyBuffer(head.bytes, keys);
    if (mine) return { data: [mine.data], signatures: () => mine.signatures, integrityChecked };
    new InnerPacketGuard().push(head.bytes); // what openpgp.js would buffer: bounded (openpgp-guard.ts)
    const message = await openpgp.readMessage({ binaryMessage: head.bytes });
    const verified = await openpgp.verify({ message, verificationKeys: keys, format: 'binary', expectSigned: false, config: openpgpLimits(opts) });
    return { data: [verified.data as Uint8Array], signatures: settled(verified.signatures), integrityChecked };
  }
  const signed = await openSignedStream(head.rest, keys);
  if (signed.kind === 'native') return { data: signed.data, signatures: signed.signatures, integrityChecked, drain: native.drain, issuerKeyID: signed.issuerKeyID };
  const message = await openpgp.readMessage({ binaryMessage: pullStream(guardedForOpenpgp(signed.input)) });
  const verified = await openpgp.verify({ message, verificationKeys: keys, format: 'binary', expectSigned: false, config: openpgpLimits(opts) });
  return { data: verified.data as unknown as AsyncIterable<Uint8Array>, signatures: settled(verified.signatures), integrityChecked };
}

/**
 * The native path's 1100:1 decompression limit (decrypt-native.ts), for openpgp.verify. Insurance
 * only: what it is given was inflated natively, and a Compressed Data packet in it is refused before
 * openpgp.js sees it (openpgp-guard.ts).
 */
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

type VerificationResult = Awaited<ReturnType<typeof openpgp.verify>>['signatures'][number];
