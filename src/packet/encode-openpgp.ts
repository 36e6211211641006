/**
 * The openpgp.encrypt encode path, for recipient keys the native path does not serve (v6 keys):
 * openpgp signs and encrypts; the Compressed Data packet is built here with node:zlib so the level
 * applies. Always SEIPD v1 (AES-256), even to a key that advertises SEIPD v2: ferrypost's decoder
 * refuses AEAD packets, and openpgp.encrypt would pick v2 from the key's features; handing it a
 * session key without an AEAD algorithm is how openpgp.js is told v1. Streams. Fails with openpgp's
 * errors (the caller reports them).
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { createDeflate } from 'node:zlib';
import * as openpgp from 'openpgp';

/** The internals of openpgp's CompressedDataPacket we set (its d.ts marks them private). */
interface CompressedPacketFields {
  algorithm: openpgp.enums.compression;
  packets: openpgp.PacketList<openpgp.AnyPacket>;
  compressed: ReadableStream<Uint8Array>;
}

export async function encryptWithOpenpgp(
  signed: openpgp.Message<ReadableStream<Uint8Array>>,
  encryptionKey: openpgp.PublicKey,
  level: number,
): Promise<Readable> {
  const inner = level === 0 ? signed : compressWithNodeZlib(signed, level);
  const encrypted = await openpgp.encrypt({
    message: inner,
    encryptionKeys: encryptionKey,
    format: 'binary',
    sessionKey: { data: new Uint8Array(randomBytes(32)), algorithm: 'aes256' },
    // Compression (if any) is already done above, at the caller's level.
    config: { preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed },
  });
  return Readable.fromWeb(encrypted as import('node:stream/web').ReadableStream<Uint8Array>);
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

