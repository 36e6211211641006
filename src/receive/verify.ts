/**
 * Verification of one inbound packet, in the order that costs least first: the sender directory is a
 * configured peer, the file's bytes match its name, then decrypt + verify into a work file, then the
 * header's claims match the path, this node and the clock. Throws FerryError PACKET_* on any failure;
 * the caller quarantines. The work file holds the payload only if this resolves.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { FerryError } from '../errors/index.js';
import type { Keyring } from '../keys/keyring.js';
import { decodePacket } from '../packet/codec.js';
import type { PacketHeader } from '../packet/header.js';
import { hashFile, type TreeEntry } from '../tree/scan.js';

export interface VerifiedPacket {
  header: PacketHeader;
  /** Path of the verified payload (the exact message bytes). */
  workFile: string;
}

/** Checks that need no decryption. */
export async function checkOuter(entry: TreeEntry, keyring: Keyring): Promise<void> {
  if (!keyring.peers.has(entry.from)) {
    throw new FerryError('PACKET_UNKNOWN_SIGNER', `sender directory ${entry.from} is not a configured peer`);
  }
  const actual = await hashFile(entry.path);
  if (!actual.equals(entry.hash)) {
    throw new FerryError('PACKET_HASH', `file content does not match its name (truncated, altered or incompletely synced copy)`, {
      detail: { expected: entry.hash.toString('hex'), actual: actual.toString('hex'), size: entry.size },
    });
  }
}

export async function decryptAndVerify(entry: TreeEntry, keyring: Keyring, workFile: string): Promise<VerifiedPacket> {
  const sink = createWriteStream(workFile, { mode: 0o600 });
  let header: PacketHeader;
  let signer: string;
  try {
    ({ header, signer } = await decodePacket({
      input: createReadStream(entry.path),
      decryptionKey: keyring.self.privateKey,
      verificationKeys: [...keyring.peers.values()].map((p) => p.key),
      payloadSink: sink,
    }));
  } catch (err) {
    sink.destroy();
    await unlink(workFile).catch(() => undefined);
    throw err;
  }
  if (signer !== entry.from) {
    await unlink(workFile).catch(() => undefined);
    throw new FerryError('PACKET_WRONG_SENDER', `signed by peer ${signer} but found in the directory of ${entry.from}`);
  }
  if (header.from_node !== entry.from) {
    await unlink(workFile).catch(() => undefined);
    throw new FerryError('PACKET_WRONG_SENDER', `header says from ${header.from_node} but found in the directory of ${entry.from}`);
  }
  if (header.to_node !== keyring.self.fingerprint || entry.to !== keyring.self.fingerprint) {
    await unlink(workFile).catch(() => undefined);
    throw new FerryError('PACKET_WRONG_RECIPIENT', `addressed to ${header.to_node}, this node is ${keyring.self.fingerprint}`);
  }
  return { header, workFile };
}

/** A packet past its expiry is refused unless the journal already accepted it (then it retries). */
export function checkExpiry(header: PacketHeader, now: number): void {
  const expires = Date.parse(header.expires);
  if (!(expires > now)) {
    throw new FerryError('PACKET_EXPIRED', `packet ${header.id} expired at ${header.expires}`);
  }
}
