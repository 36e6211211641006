/**
 * Verification of one inbound packet, in the order that costs least first: the sender directory is a
 * configured peer, the file's bytes match its name, then decrypt + verify into a work file, then the
 * header's claims match the path, this node and the clock. For a large packet the name check rides on
 * the decryption's single read of the file (one pass over 100 MiB instead of two); its verdict still
 * comes first: a file that does not match its name is PACKET_HASH whatever decryption said, and
 * nothing decrypted from it is used. Throws FerryError PACKET_* on any failure;
 * the caller quarantines. The message (bytes, work file or staged delivery) is returned only if
 * everything passed; on any failure the work file or staged copy has been removed.
 */
import { createWriteStream, readFileSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import { mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FerryError, isFerryError } from '../errors/index.js';
import type { StagedDelivery } from '../inject/types.js';
import type { Keyring } from '../keys/keyring.js';
import { decodePacket } from '../packet/codec.js';
import type { PacketHeader } from '../packet/header.js';
import type { DecryptWorker } from '../packet/decrypt-offload.js';
import { HashingFileReader } from '../tree/hashing-reader.js';
import type { TreeEntry } from '../tree/scan.js';

/** The verified message: in memory if small, else in a work file, or already in its destination's temp file. */
export interface MessageSource {
  bytes?: Uint8Array;
  file?: string;
  /** Written straight into the destination (Maildir tmp/), not yet published; bytes and file are unset. */
  staged?: StagedDelivery;
}

/** Offers a large packet's destination from its (not yet authenticated) header; undefined = use a work file. */
export type Stager = (header: PacketHeader) => Promise<StagedDelivery | undefined>;

export interface VerifiedPacket {
  header: PacketHeader;
  message: MessageSource;
}

/**
 * Read/write size for large packets and work files: fewer calls than 64 KiB (measured under gVisor,
 * where each was dear), and the decrypt worker's input slot size, so that a read fills one slot.
 */
const STREAM_CHUNK = 256 * 1024;
/** Packets up to this size are read into memory; larger ones are streamed from the file. */
export const IN_MEMORY_PACKET_BYTES = 1 << 20;
/**
 * A message is decoded into memory only if its header claims at most this size (the decoder holds the
 * payload to that claim: PayloadFramer). A small packet can hold a much larger message: zlib allows
 * up to 1100:1 (a 100 MiB message of repeated text makes a 0.37 MiB packet), so the packet's size
 * alone would let one packet fill the memory.
 */
export const IN_MEMORY_MESSAGE_BYTES = 4 << 20;

/**
 * Checks that need no decryption. A small packet is read once here, its name checked, and its bytes
 * returned, so decryption does not read the file again. It is read with blocking calls: for a file of
 * at most IN_MEMORY_PACKET_BYTES, open/fstat/read/close cost ~40 µs here against ~190 µs of CPU through
 * the promise API (four thread-pool round trips, each a few syscalls under gVisor). A larger packet's
 * name is checked by decryptAndVerify while it reads the file.
 */
export async function checkOuter(entry: TreeEntry, keyring: Keyring): Promise<Buffer | undefined> {
  if (!keyring.peers.has(entry.from)) {
    throw new FerryError('PACKET_UNKNOWN_SIGNER', `sender directory ${entry.from} is not a configured peer`);
  }
  if (entry.size > IN_MEMORY_PACKET_BYTES) return undefined;
  const bytes = readFileSync(entry.path);
  requireNameMatches(entry, createHash('sha256').update(bytes).digest(), bytes.length);
  return bytes;
}

function requireNameMatches(entry: TreeEntry, actual: Buffer, size: number): void {
  if (!actual.equals(entry.hash)) {
    throw new FerryError('PACKET_HASH', `file content does not match its name (truncated, altered or incompletely synced copy)`, {
      detail: { expected: entry.hash.toString('hex'), actual: actual.toString('hex'), size },
    });
  }
}

export interface DecryptOptions {
  /** Where a large packet's message goes if it is not staged; created here, removed on failure. */
  workFile: string;
  /** The packet's bytes, if checkOuter read them (small packets). */
  packetBytes?: Buffer | undefined;
  /** Large packets: decode straight into the destination when it offers (docs/delivery.md). */
  stage?: Stager | undefined;
  /**
   * Called with the size of each chunk read from a large packet's file into a buffer of its own (not
   * into the decrypt worker's slots) and of each decoded message part: the daemon paces GC by the garbage.
   */
  onBytes?: ((n: number) => void) | undefined;
  /** Decrypts and inflates large packets on a worker thread when it is free. */
  decryptWorker?: DecryptWorker | undefined;
}

export async function decryptAndVerify(entry: TreeEntry, keyring: Keyring, opts: DecryptOptions): Promise<VerifiedPacket> {
  const used = { staged: false };
  try {
    return await decryptOnce(entry, keyring, opts, used);
  } catch (err) {
    // A staged write that failed for a local reason (quota, permissions, disk full in the Maildir) is
    // retried through the work file, so that inject() turns the same error into its usual per-recipient
    // result (deferral, DSN after queue_lifetime) instead of an unclassified error. A bad packet
    // (FerryError) is a bad packet either way.
    if (!used.staged || isFerryError(err)) throw err;
    return await decryptOnce(entry, keyring, { ...opts, stage: undefined }, used);
  }
}

async function decryptOnce(entry: TreeEntry, keyring: Keyring, opts: DecryptOptions, used: { staged: boolean }): Promise<VerifiedPacket> {
  const { workFile, packetBytes, stage } = opts;
  const smallPacket = (packetBytes?.length ?? entry.size) <= IN_MEMORY_PACKET_BYTES;
  let chunks: Buffer[] | undefined; // the message, when decoded into memory
  let staged: StagedDelivery | undefined;
  let working = false;
  /** Memory for a small message in a small packet; else the staged destination if offered, else the work file. */
  const sink = async (h: PacketHeader): Promise<Writable> => {
    if (smallPacket && h.size <= IN_MEMORY_MESSAGE_BYTES) {
      const held: Buffer[] = (chunks = []);
      return new Writable({
        write(chunk: Buffer, _enc, cb) {
          held.push(chunk);
          cb();
        },
      });
    }
    if (stage) used.staged = true; // stage() itself may fail (mkdir in the Maildir)
    staged = stage ? await stage(h) : undefined;
    if (staged) return staged.sink;
    used.staged = false;
    await mkdir(dirname(workFile), { recursive: true });
    working = true;
    return createWriteStream(workFile, { mode: 0o600, highWaterMark: STREAM_CHUNK });
  };
  const discard = async () => {
    if (staged) await staged.discard();
    if (working) await unlink(workFile).catch(() => undefined);
  };
  let header: PacketHeader;
  let signer: string;
  const reader = packetBytes ? undefined : new HashingFileReader(entry.path, { chunk: STREAM_CHUNK, onBytes: opts.onBytes });
  /** Large packets: the name check, decided on the bytes decryption read (PACKET_HASH wins over any decode error). */
  const checkName = async (): Promise<void> => {
    if (!reader) return;
    const { hash, size } = await reader.digest();
    requireNameMatches(entry, hash, size < 0 ? entry.size : size);
  };
  try {
    ({ header, signer } = await decodePacket({
      input: packetBytes ? Readable.from([packetBytes]) : reader!,
      decryptionKey: keyring.self.privateKey,
      verificationKeys: [...keyring.peers.values()].map((p) => p.key),
      payloadSink: sink,
      ...(opts.onBytes ? { onPayloadBytes: opts.onBytes } : {}),
      decryptWorker: opts.decryptWorker,
      inputBytes: packetBytes?.length ?? entry.size,
    }));
    await checkName();
  } catch (err) {
    await discard();
    if (!isFerryError(err) || err.code === 'PACKET_HASH') throw err;
    await checkName(); // throws PACKET_HASH if the file is not what its name says
    throw err;
  } finally {
    reader?.destroy(); // read to its end or destroyed by the decoder already; this closes it whatever happened
  }
  if (signer !== entry.from) {
    await discard();
    throw new FerryError('PACKET_WRONG_SENDER', `signed by peer ${signer} but found in the directory of ${entry.from}`);
  }
  if (header.from_node !== entry.from) {
    await discard();
    throw new FerryError('PACKET_WRONG_SENDER', `header says from ${header.from_node} but found in the directory of ${entry.from}`);
  }
  if (header.to_node !== keyring.self.fingerprint || entry.to !== keyring.self.fingerprint) {
    await discard();
    throw new FerryError('PACKET_WRONG_RECIPIENT', `addressed to ${header.to_node}, this node is ${keyring.self.fingerprint}`);
  }
  const message: MessageSource = chunks ? { bytes: Buffer.concat(chunks) } : staged ? { staged } : { file: workFile };
  return { header, message };
}

/**
 * A packet past its expiry is refused unless the journal already accepted it (then it retries): the
 * refusal, or undefined. Not thrown: the packet is authentic, so its sender is told (process.ts).
 */
export function expiryError(header: PacketHeader, now: number): FerryError | undefined {
  const expires = Date.parse(header.expires);
  if (expires > now) return undefined;
  return new FerryError('PACKET_EXPIRED', `packet ${header.id} expired at ${header.expires}`, { detail: { expires: header.expires, created: header.created } });
}
