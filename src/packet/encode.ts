/**
 * Packet encoder: magic line + header JSON line + payload → one-pass signed literal data ('b', empty
 * file name) → zlib (node:zlib at the configured level; none at level 0) → encrypted to the
 * recipient (SEIPDv1 + MDC for v4 keys). Streams end to end; memory does not grow with the payload.
 * Fails: invalid header (PACKET_MALFORMED), bad level or header too big (INTERNAL) before any output;
 * a payload whose length or SHA-256 differs from the header, or a payload stream that errors, makes
 * the returned stream emit 'error' (INTERNAL) instead of 'end', so a caller writing it to a temp file
 * never renames it into place.
 */
import { createHash } from 'node:crypto';
import { pipeline, Readable, Transform } from 'node:stream';
import { createDeflate } from 'node:zlib';
import * as openpgp from 'openpgp';
import { FerryError } from '../errors/index.js';
import { MAX_HEADER_BYTES, magicLine, parseHeader, type PacketHeader } from './header.js';

export interface EncodeOptions {
  header: PacketHeader; // size and sha256 already filled by the caller
  payload: Readable | Uint8Array; // exactly header.size bytes
  signingKey: openpgp.PrivateKey; // decrypted
  encryptionKey: openpgp.PublicKey;
  compressionLevel: number; // 0..9; 0 = no compression
}

/** The internals of openpgp's CompressedDataPacket we set (its d.ts marks them private). */
interface CompressedPacketFields {
  algorithm: openpgp.enums.compression;
  packets: openpgp.PacketList<openpgp.AnyPacket>;
  compressed: ReadableStream<Uint8Array>;
}

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
  const plaintext = plaintextSource(prefix, opts.payload, header);

  const literal = await openpgp.createMessage({ binary: plaintext.stream, format: 'binary', filename: '' });
  const signed = await openpgp.sign({ message: literal, signingKeys: opts.signingKey, format: 'object' });
  const inner = level === 0 ? signed : compressWithNodeZlib(signed, level);
  const encrypted = await openpgp.encrypt({
    message: inner,
    encryptionKeys: opts.encryptionKey,
    format: 'binary',
    // Compression (if any) is already done above, at the caller's level.
    config: { preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed },
  });
  return guarded(Readable.fromWeb(encrypted as import('node:stream/web').ReadableStream<Uint8Array>), plaintext.failure);
}

/**
 * openpgp compresses with CompressionStream, which has no level; we build the Compressed Data
 * packet ourselves with node:zlib (RFC 1950, OpenPGP algorithm 2 "ZLIB") so the level applies.
 */
function compressWithNodeZlib(signed: openpgp.Message<ReadableStream<Uint8Array>>, level: number): openpgp.Message<ReadableStream<Uint8Array>> {
  const packet = new openpgp.CompressedDataPacket();
  const fields = packet as unknown as CompressedPacketFields;
  fields.algorithm = openpgp.enums.compression.zlib;
  fields.packets = signed.packets;
  const raw = signed.packets.write() as unknown as import('node:stream/web').ReadableStream<Uint8Array>;
  const deflated = Readable.fromWeb(raw).pipe(createDeflate({ level }));
  fields.compressed = Readable.toWeb(deflated) as unknown as ReadableStream<Uint8Array>;
  const list = new openpgp.PacketList<openpgp.AnyPacket>();
  list.push(packet);
  return new openpgp.Message(list);
}

/**
 * prefix, then the payload, checking its length and SHA-256 against the header as it goes. A problem
 * (mismatch, payload stream error) ENDS the stream early and is reported through failure(): openpgp
 * does not propagate an errored source to its output (it surfaces as an uncaught exception), so the
 * caller's guard turns it into an error on the output stream instead.
 */
function plaintextSource(prefix: Uint8Array, payload: Readable | Uint8Array, header: PacketHeader) {
  const source: AsyncIterator<unknown> =
    payload instanceof Uint8Array ? ([payload][Symbol.iterator]() as unknown as AsyncIterator<unknown>) : payload[Symbol.asyncIterator]();
  const hash = createHash('sha256');
  let count = 0;
  let sentPrefix = false;
  let failure: Error | undefined;
  const fail = (controller: ReadableStreamDefaultController<Uint8Array>, e: Error): void => {
    failure ??= e;
    controller.close();
    source.return?.().catch(() => undefined);
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!sentPrefix) {
          sentPrefix = true;
          controller.enqueue(prefix);
          return;
        }
        for (;;) {
          let next: IteratorResult<unknown>;
          try {
            next = await source.next();
          } catch (e) {
            fail(controller, new FerryError('INTERNAL', `reading the payload failed: ${(e as Error).message}`, { cause: e }));
            return;
          }
          const { value, done } = next;
          if (done) {
            const digest = hash.digest('hex');
            if (count !== header.size || digest !== header.sha256) {
              const msg = `payload does not match its header: ${count} bytes sha256 ${digest}, header says ${header.size} bytes sha256 ${header.sha256}`;
              fail(controller, new FerryError('INTERNAL', msg));
            } else controller.close();
            return;
          }
          if (!(value instanceof Uint8Array)) {
            fail(controller, new FerryError('INTERNAL', 'payload stream must yield bytes (Buffer/Uint8Array), not strings'));
            return;
          }
          if (value.length === 0) continue;
          count += value.length;
          if (count > header.size) {
            fail(controller, new FerryError('INTERNAL', `payload is longer than header.size ${header.size}`));
            return;
          }
          hash.update(value);
          controller.enqueue(value);
          return;
        }
      },
      async cancel(reason) {
        await source.return?.(reason);
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, failure: () => failure };
}

/** Passes the encrypted bytes through and errors at the end (instead of ending) if the source failed. */
function guarded(encrypted: Readable, failure: () => Error | undefined): Readable {
  const guard = new Transform({
    transform(chunk, _enc, cb) {
      cb(null, chunk);
    },
    flush(cb) {
      cb(failure() ?? null);
    },
  });
  pipeline(encrypted, guard, () => undefined); // errors reach the consumer through guard
  return guard;
}
