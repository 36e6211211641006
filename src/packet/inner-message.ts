/**
 * The packets inside a decrypted SEIPD body, with one Compressed Data packet (if present) inflated.
 * Run on the main thread (decrypt-native.ts) and, for large packets, on the decrypt worker
 * (decrypt-worker.ts): one implementation of this framing, so both give the same bytes and errors.
 * Pure, no I/O. Fails with PgpFormatError (empty data, empty compressed packet, unknown algorithm,
 * data after the compressed packet, ratio over MAX_RATIO) or zlib's own errors (corrupt deflate data).
 */
import { inflateRawSync, inflateSync } from 'node:zlib';
import { SyncInflater } from './inflate.js';
import { ByteReader, packetBody, PgpFormatError, readPacketHead } from './pgpstream.js';

const TAG_COMPRESSED = 8;
/** deflate cannot exceed ~1032:1; more than this is a decompression bomb, not a packet. */
export const MAX_RATIO = 1100;

/**
 * Inflated output buffers of this size on the main thread; the compressed body is read in slices of
 * the same size. 16 KiB measured best on a 100 MiB packet (bench/large-message.mjs): 64 and 256 KiB
 * were no faster and raised the receiver's peak RSS from 107 to 124-127 MiB (the 128 MiB target):
 * larger fresh Buffers pile up between scavenges and come from pages the process then keeps.
 */
const INFLATE_CHUNK = 16 * 1024;

/** Makes the streaming inflater for one large compressed body (algo 1 = raw deflate, 2 = ZLIB). */
export type InflaterFactory = (algo: 1 | 2) => SyncInflater;

/** The main thread's: fresh 16 KiB Buffers the reader may keep. */
export const mainThreadInflater: InflaterFactory = (algo) => new SyncInflater(algo, { outChunk: INFLATE_CHUNK, maxRatio: MAX_RATIO });

/** The decrypted packets, with one Compressed Data packet (if present) inflated. */
export async function* innerMessage(plain: AsyncIterable<Uint8Array>, inflater: InflaterFactory): AsyncGenerator<Uint8Array> {
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
  yield* inflate(first.value[0]!, compressed(), inflater);
  // Reading to the end runs the MDC check; nothing may follow the compressed packet.
  if (!(await pr.atEnd())) throw new PgpFormatError('data after the compressed data packet');
}

/**
 * Compressed bodies up to this size are inflated by one synchronous call when their output fits
 * SYNC_INFLATE_MAX_OUT: a streaming inflate costs a thread-pool round trip per chunk (dispatch alone
 * is 0.1-0.3 ms of the main thread here, gVisor), far more than inflating a 4 KiB mail. Larger
 * bodies, or output beyond the cap, are inflated slice by slice (bounded memory).
 */
const SYNC_INFLATE_MAX_IN = 256 * 1024;
const SYNC_INFLATE_MAX_OUT = 4 * 1024 * 1024;

async function* inflate(algo: number, compressed: AsyncIterable<Uint8Array>, inflater: InflaterFactory): AsyncGenerator<Uint8Array> {
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
  const z = inflater(algo);
  try {
    for (const c of head) yield* z.push(c);
    if (!done) for (let n = await it.next(); !n.done; n = await it.next()) yield* z.push(n.value);
    yield* z.end();
  } finally {
    z.close();
  }
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
